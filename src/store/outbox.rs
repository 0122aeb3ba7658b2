//! The outbox: every lifecycle change and every cash balance change leaves an event row, written
//! in the same transaction as the change, for `recon webhooks deliver` to post later.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
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
}

impl EventType {
    /// The name receivers see as the `type` of a post's body.
    pub fn as_str(&self) -> &'static str {
        match self {
            EventType::TopUpConfirmed => "topup.confirmed",
            EventType::TopUpSettled => "topup.settled",
            EventType::TopUpCancelled => "topup.cancelled",
            EventType::CashBalanceUpdated => "cash_balance.updated",
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

/// Where an event is on its way to the platform.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Delivery {
    Pending,
    Delivered,
    Failed,
}

impl Delivery {
    /// The name in the database and in `webhooks list`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Delivery::Pending => "PENDING",
            Delivery::Delivered => "DELIVERED",
            Delivery::Failed => "FAILED",
        }
    }
}

impl FromStr for Delivery {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [Delivery::Pending, Delivery::Delivered, Delivery::Failed]
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| {
                format!(
                    "{:?} is not a delivery status (expected pending, delivered or failed)",
                    crate::text::clip(text, 40)
                )
            })
    }
}

/// One stored event.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Event {
    /// Delivery order.
    pub seq: i64,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: String,
    /// The exact body posted to the platform.
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub last_attempt_at: Option<String>,
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
}

const EVENT_COLUMNS: &str = "seq, id, type, created_at, payload, status, attempts, \
                             last_attempt_at, last_error, delivered_at";

fn event_from_row(row: &Row) -> rusqlite::Result<Event> {
    Ok(Event {
        seq: row.get(0)?,
        id: row.get(1)?,
        kind: row.get(2)?,
        created_at: row.get(3)?,
        payload: row.get(4)?,
        status: row.get(5)?,
        attempts: row.get(6)?,
        last_attempt_at: row.get(7)?,
        last_error: row.get(8)?,
        delivered_at: row.get(9)?,
    })
}

fn insert(
    conn: &Connection,
    kind: EventType,
    at: DateTime<Utc>,
    payload: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO events (id, type, created_at, payload) VALUES (?1, ?2, ?3, ?4)",
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

/// Records that `topup` has just reached its status: the top-up event, and for a settlement
/// its cash balance event, the new balance being kept in `balances` until
/// [`Balances::write`] (one write per balance however many of its top-ups change).
pub fn announce(
    conn: &Connection,
    topup: &TopUp,
    at: DateTime<Utc>,
    balances: &mut Balances,
) -> Result<(), StoreError> {
    let Some(kind) = EventType::for_status(topup.status) else {
        return Ok(());
    };
    let payload = serde_json::to_string(topup).expect("a top-up serialises");
    insert(conn, kind, at, &payload)?;
    if topup.status != Status::Settled {
        return Ok(());
    }
    let currency = topup.currency.as_str();
    let key = (topup.account_group_id.to_string(), topup.currency);
    let before = match balances.changed.get(&key) {
        Some(balance) => *balance,
        None => {
            let stored = balance(conn, &key.0, currency)?.unwrap_or(Decimal::ZERO);
            balances.read.insert(key.clone(), stored);
            stored
        }
    };
    let after = before + topup.cash_amount;
    let payload = serde_json::to_string(&BalanceUpdated {
        account_group_id: &key.0,
        currency,
        cash_balance: crate::money::format_amount(after, topup.currency),
        change: crate::money::format_amount(topup.cash_amount, topup.currency),
        topup_id: topup.id.to_string(),
        updated_at: format_timestamp(at),
    })
    .expect("a balance serialises");
    balances.changed.insert(key, after);
    insert(conn, EventType::CashBalanceUpdated, at, &payload)
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

/// Up to `limit` events waiting for delivery, in order.
pub fn pending(conn: &Connection, limit: usize) -> Result<Vec<Event>, StoreError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE status = 'PENDING' ORDER BY seq LIMIT ?1"
    );
    let mut stmt = conn.prepare_cached(&sql).doing("reading pending events")?;
    let rows = stmt
        .query_map([limit as i64], event_from_row)
        .doing("reading pending events")?;
    rows.collect::<rusqlite::Result<_>>()
        .doing("reading pending events")
}

/// Events in one delivery status (or all), in order; `limit` keeps the newest.
pub fn list(
    conn: &Connection,
    status: Option<Delivery>,
    limit: Option<usize>,
) -> Result<Vec<Event>, StoreError> {
    let sql = format!(
        "SELECT * FROM (SELECT {EVENT_COLUMNS} FROM events WHERE ?1 IS NULL OR status = ?1
                        ORDER BY seq DESC LIMIT ?2) ORDER BY seq"
    );
    let mut stmt = conn.prepare(&sql).doing("listing events")?;
    let limit = limit.map_or(-1, |l| l as i64);
    let rows = stmt
        .query_map(params![status.map(|s| s.as_str()), limit], event_from_row)
        .doing("listing events")?;
    rows.collect::<rusqlite::Result<_>>()
        .doing("listing events")
}

/// Marks an event delivered after the receiver accepted it.
pub fn delivered(conn: &Connection, seq: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
    let at = format_timestamp(at);
    conn.execute(
        "UPDATE events SET status = 'DELIVERED', attempts = attempts + 1, last_attempt_at = ?2,
             delivered_at = ?2, last_error = NULL
         WHERE seq = ?1",
        params![seq, at],
    )
    .doing("marking an event delivered")?;
    Ok(())
}

/// Records a failed attempt; with `give_up` the event becomes `FAILED` until retried.
pub fn attempt_failed(
    conn: &Connection,
    seq: i64,
    at: DateTime<Utc>,
    error: &str,
    give_up: bool,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE events SET attempts = attempts + 1, last_attempt_at = ?2, last_error = ?3,
             status = CASE WHEN ?4 THEN 'FAILED' ELSE status END
         WHERE seq = ?1",
        params![
            seq,
            format_timestamp(at),
            crate::text::clip(error, 500),
            give_up
        ],
    )
    .doing("recording a failed delivery")?;
    Ok(())
}

/// Puts failed events back in the queue: the given ids, or every failed one when `ids` is empty.
/// Returns how many were queued again; an id that is not a failed event is an error.
pub fn retry(conn: &Connection, ids: &[String]) -> Result<usize, StoreError> {
    if ids.is_empty() {
        return conn
            .execute(
                "UPDATE events SET status = 'PENDING', attempts = 0 WHERE status = 'FAILED'",
                [],
            )
            .doing("queueing failed events again");
    }
    let mut queued = 0;
    for id in ids {
        let status: Option<String> = conn
            .query_row("SELECT status FROM events WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .doing("reading an event")?;
        match status.as_deref() {
            Some("FAILED") => {
                queued += conn
                    .execute(
                        "UPDATE events SET status = 'PENDING', attempts = 0 WHERE id = ?1",
                        [id],
                    )
                    .doing("queueing an event again")?;
            }
            Some(other) => {
                return Err(StoreError::Refused(format!(
                    "event {id} is {other}, not FAILED; only failed events can be retried"
                )));
            }
            None => return Err(StoreError::Refused(format!("no event with id {id}"))),
        }
    }
    Ok(queued)
}
