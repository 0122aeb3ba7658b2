//! The outbox: every lifecycle change and every cash balance change leaves an event row, written
//! in the same transaction as the change, for `recon webhooks deliver` to post later. Their
//! delivery state lives beside the database (`store::deliveries`): this table is only read.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{Doing, StoreError};
use crate::topup::{Status, TopUp, format_timestamp};

/// What an event says happened.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EventType {
    TopUpConfirmed,
    TopUpSettled,
    TopUpCancelled,
    CashBalanceUpdated,
    /// A payment is to be sent back to its payer (a PENDING return).
    ExceptionReturned,
    ExceptionDismissed,
    /// A resolution undone.
    ExceptionReopened,
    /// Returns written to a pain.001 file for the bank.
    ReturnExported,
    /// A return's outgoing payment seen in a statement.
    ReturnCompleted,
}

impl EventType {
    /// The name receivers see as the `type` of a post's body.
    pub fn as_str(&self) -> &'static str {
        match self {
            EventType::TopUpConfirmed => "topup.confirmed",
            EventType::TopUpSettled => "topup.settled",
            EventType::TopUpCancelled => "topup.cancelled",
            EventType::CashBalanceUpdated => "cash_balance.updated",
            EventType::ExceptionReturned => "exception.returned",
            EventType::ExceptionDismissed => "exception.dismissed",
            EventType::ExceptionReopened => "exception.reopened",
            EventType::ReturnExported => "return.exported",
            EventType::ReturnCompleted => "return.completed",
        }
    }

    /// The event a top-up reaching `status` announces (`NEW` announces nothing).
    pub fn for_status(status: Status) -> Option<EventType> {
        match status {
            Status::New => None,
            Status::Confirmed => Some(EventType::TopUpConfirmed),
            Status::Settled => Some(EventType::TopUpSettled),
            Status::Cancelled => Some(EventType::TopUpCancelled),
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stored event, as delivery posts it.
#[derive(Clone, Debug)]
pub struct Event {
    /// Delivery order.
    pub seq: i64,
    pub id: String,
    pub kind: String,
    pub created_at: String,
    /// The payload, posted byte for byte as the body's `data`.
    pub payload: String,
}

/// Records an event of the worklist (its payload carries an `account_group_id`, empty when
/// the money belongs to none).
pub fn record(
    conn: &Connection,
    kind: EventType,
    at: DateTime<Utc>,
    payload: &serde_json::Value,
) -> Result<(), StoreError> {
    insert(conn, kind, at, &payload.to_string())
}

fn insert(
    conn: &Connection,
    kind: EventType,
    at: DateTime<Utc>,
    payload: &str,
) -> Result<(), StoreError> {
    // The next seq after both the events recorded and the runs' settlements, read in the
    // insert itself: one statement per event, as before there were derived ones.
    conn.prepare_cached(
        "INSERT INTO events (seq, id, type, created_at, payload)
         VALUES ((SELECT max(next_seq, (SELECT coalesce(max(seq), 0) + 1 FROM events))
                  FROM outbox_head), ?1, ?2, ?3, ?4)",
    )
    .doing("preparing an event")?
    .execute(params![
        Uuid::now_v7().to_string(),
        kind.as_str(),
        format_timestamp(at),
        payload
    ])
    .doing("recording an event")?;
    Ok(())
}

/// Takes `count` seqs for a run's settlements, after every event recorded and every seq taken
/// before, and returns the first. A recorded event takes the next seq after both; the event
/// delivery took in last is never pruned, so no seq is handed out twice.
pub(crate) fn reserve(conn: &Connection, count: i64) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "UPDATE outbox_head
         SET next_seq = max(next_seq, (SELECT coalesce(max(seq), 0) + 1 FROM events)) + ?1
         RETURNING next_seq - ?1",
    )
    .doing("taking event seqs")?
    .query_row([count], |r| r.get(0))
    .doing("taking event seqs")
}

/// Records that `topup` has just reached its status: the top-up event, and for a settlement
/// its cash balance event, the new balance being kept in `balances` until
/// [`Balances::write`] (one write per balance however many of its top-ups change).
pub fn announce(
    conn: &Connection,
    topup: &TopUp,
    at: DateTime<Utc>,
    balances: &mut Balances,
) -> Result<(), StoreError> {
    announce_received(conn, topup, at, balances, None)
}

/// As [`announce`]; a settlement by hand with a payment of another amount says in its cash
/// balance event what was `received` and the difference (negative: underpaid).
pub fn announce_received(
    conn: &Connection,
    topup: &TopUp,
    at: DateTime<Utc>,
    balances: &mut Balances,
    received: Option<Decimal>,
) -> Result<(), StoreError> {
    let Some(kind) = EventType::for_status(topup.status) else {
        return Ok(());
    };
    let payload = serde_json::to_string(topup).expect("a top-up serialises");
    insert(conn, kind, at, &payload)?;
    if topup.status != Status::Settled {
        return Ok(());
    }
    let group = topup.account_group_id.to_string();
    let after = balances.change(conn, &group, topup.currency, topup.cash_amount)?;
    let payload = balance_payload(&group, topup, after, topup.cash_amount, at, received);
    insert(conn, EventType::CashBalanceUpdated, at, &payload)
}

/// The body of the `cash_balance.updated` event that `topup`'s settlement (or, with a negative
/// `change`, its undoing) brought to `after`.
pub(crate) fn balance_payload(
    group: &str,
    topup: &TopUp,
    after: Decimal,
    change: Decimal,
    at: DateTime<Utc>,
    received: Option<Decimal>,
) -> String {
    serde_json::to_string(&BalanceUpdated {
        account_group_id: group,
        currency: topup.currency.as_str(),
        cash_balance: crate::money::format_amount(after, topup.currency),
        change: crate::money::format_amount(change, topup.currency),
        topup_id: topup.id.to_string(),
        updated_at: format_timestamp(at),
        received: received.map(|r| crate::money::format_amount(r, topup.currency)),
        difference: received
            .map(|r| crate::money::format_amount(r - topup.cash_amount, topup.currency)),
    })
    .expect("a balance serialises")
}

/// A `cash_balance.updated` event's body, its fields in the order receivers have always seen
/// (a struct: the night writes one per settlement, and a JSON value tree cost more than the
/// text).
#[derive(serde::Serialize)]
struct BalanceUpdated<'a> {
    account_group_id: &'a str,
    currency: &'a str,
    cash_balance: String,
    change: String,
    topup_id: String,
    updated_at: String,
    /// Only for a settlement by hand: the money received and its difference to the top-up.
    #[serde(skip_serializing_if = "Option::is_none")]
    received: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    difference: Option<String>,
}

/// Records that a settled `topup` (as it was) is open again: its cash balance shrinks by its
/// amount, with a `cash_balance.updated` event whose change is negative.
pub fn announce_unsettled(
    conn: &Connection,
    topup: &TopUp,
    at: DateTime<Utc>,
    balances: &mut Balances,
) -> Result<(), StoreError> {
    let group = topup.account_group_id.to_string();
    let after = balances.change(conn, &group, topup.currency, -topup.cash_amount)?;
    let payload = balance_payload(&group, topup, after, -topup.cash_amount, at, None);
    insert(conn, EventType::CashBalanceUpdated, at, &payload)
}

/// Settled cash balances changed in one write transaction, by (account group, currency): each
/// is read once and written once, however many of its top-ups settle.
#[derive(Default)]
pub struct Balances {
    changed: std::collections::BTreeMap<(String, crate::money::Currency), Decimal>,
    /// Each changed balance as it was read, before the first change.
    read: std::collections::BTreeMap<(String, crate::money::Currency), Decimal>,
}

/// How much the settled cash balances grew in one write, per currency.
pub type Growth = std::collections::BTreeMap<crate::money::Currency, Decimal>;

impl Balances {
    /// Changes the balance of `group` in `currency` by `change` and returns it after: read once
    /// per write, at its first change.
    pub fn change(
        &mut self,
        conn: &Connection,
        group: &str,
        currency: crate::money::Currency,
        change: Decimal,
    ) -> Result<Decimal, StoreError> {
        let key = (group.to_string(), currency);
        let before = match self.changed.get(&key) {
            Some(balance) => *balance,
            None => {
                let stored = balance(conn, group, currency.as_str())?.unwrap_or(Decimal::ZERO);
                self.read.insert(key.clone(), stored);
                stored
            }
        };
        let after = before + change;
        self.changed.insert(key, after);
        Ok(after)
    }

    /// Each changed balance as it was before its first change.
    pub fn before(&self) -> &super::settlements::Before {
        &self.read
    }

    /// Stores every changed balance; returns how much they grew, per currency, to be checked
    /// against the money that settled them.
    pub fn write(self, conn: &Connection, at: DateTime<Utc>) -> Result<Growth, StoreError> {
        let mut growth = Growth::new();
        for (key, settled) in &self.changed {
            let before = self.read.get(key).copied().unwrap_or(Decimal::ZERO);
            *growth.entry(key.1).or_default() += settled - before;
        }
        let mut upsert = conn
            .prepare_cached(
                "INSERT INTO cash_balances (account_group_id, currency, settled, updated_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (account_group_id, currency) DO UPDATE SET settled = ?3, updated_at = ?4",
            )
            .doing("preparing the cash balance update")?;
        let at = format_timestamp(at);
        for ((group, currency), settled) in self.changed {
            let settled = crate::money::format_amount(settled, currency);
            upsert
                .execute(params![group, currency.as_str(), settled, at])
                .doing("updating a cash balance")?;
        }
        Ok(growth)
    }
}

/// The settled cash balance of an account group in one currency, if it ever had one.
pub fn balance(
    conn: &Connection,
    account_group_id: &str,
    currency: &str,
) -> Result<Option<Decimal>, StoreError> {
    let text: Option<String> = conn
        .prepare_cached(
            "SELECT settled FROM cash_balances WHERE account_group_id = ?1 AND currency = ?2",
        )
        .doing("preparing the cash balance read")?
        .query_row([account_group_id, currency], |r| r.get(0))
        .optional()
        .doing("reading a cash balance")?;
    text.map(|t| {
        t.parse()
            .map_err(|e| StoreError::Corrupt(format!("cash balance {t:?}: {e}")))
    })
    .transpose()
}

/// Every cash balance recomputed from the settled top-ups (group, currency) -> sum.
pub fn settled_sums(conn: &Connection) -> Result<HashMap<(String, String), Decimal>, StoreError> {
    let rows = super::text_triples(
        conn,
        "SELECT account_group_id, currency, cash_amount FROM topups WHERE status = 'SETTLED'",
        "summing settled top-ups",
    )?;
    let mut sums: HashMap<(String, String), Decimal> = HashMap::new();
    for (group, currency, amount) in rows {
        let amount: Decimal = amount
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("amount {amount:?}: {e}")))?;
        *sums.entry((group, currency)).or_default() += amount;
    }
    Ok(sums)
}

/// Fills `cash_balances` from the settled top-ups of a database that predates it (migration 2).
pub(crate) fn backfill_cash_balances(conn: &Connection) -> Result<(), StoreError> {
    let at = Utc::now();
    for ((group, currency), sum) in settled_sums(conn)? {
        let text = match currency.parse() {
            Ok(c) => crate::money::format_amount(sum, c),
            Err(_) => sum.to_string(),
        };
        conn.execute(
            "INSERT INTO cash_balances (account_group_id, currency, settled, updated_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![group, currency, text, format_timestamp(at)],
        )
        .doing("filling the cash balances")?;
    }
    Ok(())
}

/// Counts the runs' settlement events before `seq` as pruned: the delivery state has
/// forgotten every event before it (delivered long ago), so a delivery state file made anew
/// does not take them in again.
pub fn prune_told_before(conn: &Connection, seq: i64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE outbox_head SET told_from = max(told_from, ?1)")
        .doing("pruning delivered events")?
        .execute([seq])
        .doing("pruning delivered events")?;
    Ok(())
}

/// Deletes these events (delivered long ago) from the outbox.
pub fn prune(conn: &Connection, seqs: &[i64]) -> Result<(), StoreError> {
    let mut delete = conn
        .prepare_cached("DELETE FROM events WHERE seq = ?1")
        .doing("pruning delivered events")?;
    for seq in seqs {
        delete.execute([seq]).doing("pruning delivered events")?;
    }
    Ok(())
}

/// The event with this `seq`, if there is one: recorded, or told from a run's settlements.
pub fn event(conn: &Connection, seq: i64) -> Result<Option<Event>, StoreError> {
    let recorded = conn
        .prepare_cached("SELECT seq, id, type, created_at, payload FROM events WHERE seq = ?1")
        .doing("reading an event")?
        .query_row([seq], |r| {
            Ok(Event {
                seq: r.get(0)?,
                id: r.get(1)?,
                kind: r.get(2)?,
                created_at: r.get(3)?,
                payload: r.get(4)?,
            })
        })
        .optional()
        .doing("reading an event")?;
    match recorded {
        Some(event) => Ok(Some(event)),
        None => Ok(super::settlements::event(conn, seq)?.map(|d| d.event)),
    }
}

/// The id of the event with this `seq`, if there is one.
pub fn event_id(conn: &Connection, seq: i64) -> Result<Option<String>, StoreError> {
    let recorded = conn
        .prepare_cached("SELECT id FROM events WHERE seq = ?1")
        .doing("reading an event")?
        .query_row([seq], |r| r.get(0))
        .optional()
        .doing("reading an event")?;
    match recorded {
        Some(id) => Ok(Some(id)),
        None => super::settlements::id_of(conn, seq),
    }
}

/// The `seq` of the event with this id, if there is one.
pub fn seq_of(conn: &Connection, id: &str) -> Result<Option<i64>, StoreError> {
    let recorded = conn
        .prepare_cached("SELECT seq FROM events WHERE id = ?1")
        .doing("reading an event")?
        .query_row([id], |r| r.get(0))
        .optional()
        .doing("reading an event")?;
    match recorded {
        Some(seq) => Ok(Some(seq)),
        None => super::settlements::seq_of(conn, id),
    }
}

/// An event as delivery takes it in: its order, id and account group, and the delivery
/// status the database itself holds for it (what recon recorded before the delivery state
/// moved to a file of its own; `PENDING` and no attempt for every event written since).
#[derive(Clone, Debug)]
pub struct Taken {
    pub seq: i64,
    pub id: String,
    /// The payload's `account_group_id` (every event has one; empty if not).
    pub account_group_id: String,
    pub status: String,
    pub attempts: i64,
    pub last_attempt_at: Option<String>,
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
}

/// Up to `limit` events after `after_seq`, in order, as delivery takes them in.
pub fn since(conn: &Connection, after_seq: i64, limit: usize) -> Result<Vec<Taken>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, id,
                    coalesce(CAST(json_extract(payload, '$.account_group_id') AS TEXT), ''),
                    status, attempts, last_attempt_at, last_error, delivered_at
             FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )
        .doing("reading new events")?;
    let rows = stmt
        .query_map(params![after_seq, limit as i64], |r| {
            Ok(Taken {
                seq: r.get(0)?,
                id: r.get(1)?,
                account_group_id: r.get(2)?,
                status: r.get(3)?,
                attempts: r.get(4)?,
                last_attempt_at: r.get(5)?,
                last_error: r.get(6)?,
                delivered_at: r.get(7)?,
            })
        })
        .doing("reading new events")?;
    let recorded: Vec<Taken> = rows
        .collect::<rusqlite::Result<_>>()
        .doing("reading new events")?;
    let told = super::settlements::since(conn, after_seq, limit)?
        .into_iter()
        .map(|d| Taken {
            seq: d.event.seq,
            id: d.event.id,
            account_group_id: d.account_group_id,
            status: "PENDING".to_string(),
            attempts: 0,
            last_attempt_at: None,
            last_error: None,
            delivered_at: None,
        });
    let mut merged: Vec<Taken> = recorded.into_iter().chain(told).collect();
    merged.sort_by_key(|t| t.seq);
    merged.truncate(limit);
    Ok(merged)
}
