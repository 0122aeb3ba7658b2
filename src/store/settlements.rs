//! A run's settlements as events derived from the journal (issue 22, item 3): the run writes
//! one row for the night (the seqs it took and the journal ids they cover) and the cash
//! balances as they were before it; each `topup.settled` and `cash_balance.updated` event is
//! told again from the journal's MATCHED rows in id order, with the same id and bytes every
//! time it is read.
//!
//! Settlement `i` of a run is its `i`-th MATCHED row; its events are `first_seq + 2i` (the
//! top-up) and `first_seq + 2i + 1` (the cash balance after it).

use std::cell::RefCell;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::outbox::{Event, EventType, balance_payload};
use super::{Doing, StoreError};
use crate::matching::Outcome;
use crate::money::Currency;
use crate::topup::{Status, TopUp, format_timestamp};

/// A run's settled cash balances before it, by (account group, currency).
pub type Before = BTreeMap<(String, Currency), Decimal>;

/// Records that the run `run_id` settled `settlements` top-ups by the journal's MATCHED rows
/// between `first_tx` and `last_tx`, at `at`, from the cash balances `before`: their events
/// take the seqs from `first_seq` on.
pub fn record(
    conn: &Connection,
    run_id: &str,
    settlements: usize,
    (first_tx, last_tx): (i64, i64),
    at: DateTime<Utc>,
    before: &Before,
) -> Result<(), StoreError> {
    let doing = "recording the run's settlements";
    let count = 2 * settlements as i64;
    let first_seq = super::outbox::reserve(conn, count)?;
    conn.prepare_cached(
        "INSERT INTO settlement_events (first_seq, count, run_id, first_tx, last_tx, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .doing(doing)?
    .execute(params![
        first_seq,
        count,
        run_id,
        first_tx,
        last_tx,
        format_timestamp(at)
    ])
    .doing(doing)?;
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO settlement_balances (first_seq, account_group_id, currency, before)
             VALUES (?1, ?2, ?3, ?4)",
        )
        .doing(doing)?;
    for ((group, currency), amount) in before {
        let amount = crate::money::format_amount(*amount, *currency);
        insert
            .execute(params![first_seq, group, currency.as_str(), amount])
            .doing(doing)?;
    }
    Ok(())
}

/// One run's block of derived events.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Block {
    first_seq: i64,
    count: i64,
    run_id: String,
    first_tx: i64,
    last_tx: i64,
    created_at: String,
}

impl Block {
    fn last_seq(&self) -> i64 {
        self.first_seq + self.count - 1
    }
}

const BLOCK_COLUMNS: &str = "first_seq, count, run_id, first_tx, last_tx, created_at";

fn block_from_row(r: &rusqlite::Row) -> rusqlite::Result<Block> {
    Ok(Block {
        first_seq: r.get(0)?,
        count: r.get(1)?,
        run_id: r.get(2)?,
        first_tx: r.get(3)?,
        last_tx: r.get(4)?,
        created_at: r.get(5)?,
    })
}

/// The block that holds `seq`, if any and if `seq` is not pruned (before
/// `outbox_head.told_from`: delivered, past its retention).
fn block_of(conn: &Connection, seq: i64) -> Result<Option<Block>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {BLOCK_COLUMNS} FROM settlement_events
         WHERE first_seq <= ?1 AND ?1 >= (SELECT told_from FROM outbox_head)
         ORDER BY first_seq DESC LIMIT 1"
    ))
    .doing("reading the settlements' events")?
    .query_row([seq], block_from_row)
    .optional()
    .doing("reading the settlements' events")
    .map(|block| block.filter(|b| seq <= b.last_seq()))
}

/// A derived event with the account group it belongs to.
#[derive(Clone, Debug)]
pub struct Derived {
    pub event: Event,
    pub account_group_id: String,
}

/// The derived event with this `seq`, if there is one.
pub fn event(conn: &Connection, seq: i64) -> Result<Option<Derived>, StoreError> {
    let Some(block) = block_of(conn, seq)? else {
        return Ok(None);
    };
    let mut found = derive(conn, &block, seq, 1)?;
    Ok(found.pop())
}

/// The id of the derived event with this `seq`, if there is one, without telling the event.
pub fn id_of(conn: &Connection, seq: i64) -> Result<Option<String>, StoreError> {
    Ok(block_of(conn, seq)?.map(|block| event_id(&block, seq).to_string()))
}

/// Up to `limit` derived events after `after_seq`, in order (none of those pruned).
pub fn since(conn: &Connection, after_seq: i64, limit: usize) -> Result<Vec<Derived>, StoreError> {
    let after_seq: i64 = conn
        .prepare_cached("SELECT max(?1, told_from - 1) FROM outbox_head")
        .doing("reading the outbox")?
        .query_row([after_seq], |r| r.get(0))
        .doing("reading the outbox")?;
    let mut blocks = conn
        .prepare_cached(&format!(
            "SELECT {BLOCK_COLUMNS} FROM settlement_events
             WHERE first_seq + count - 1 > ?1 ORDER BY first_seq"
        ))
        .doing("reading the settlements' events")?;
    let blocks = blocks
        .query_map([after_seq], block_from_row)
        .doing("reading the settlements' events")?;
    let mut found = Vec::new();
    for block in blocks {
        let block = block.doing("reading the settlements' events")?;
        let from = block.first_seq.max(after_seq + 1);
        found.extend(derive(conn, &block, from, limit - found.len())?);
        if found.len() >= limit {
            break;
        }
    }
    Ok(found)
}

/// The `seq` of the derived event with this id, if there is one.
pub fn seq_of(conn: &Connection, id: &str) -> Result<Option<i64>, StoreError> {
    let Ok(uuid) = Uuid::parse_str(id) else {
        return Ok(None);
    };
    if uuid.get_version_num() != 8 {
        return Ok(None);
    }
    let seq =
        (u64::from_be_bytes(uuid.as_bytes()[8..].try_into().expect("8 bytes")) & SEQ_BITS) as i64;
    Ok((id_of(conn, seq)? == Some(uuid.to_string())).then_some(seq))
}

/// The low 62 bits of a derived event's id: its seq (the rest is the variant).
const SEQ_BITS: u64 = (1 << 62) - 1;

/// A derived event's id: a UUID version 8 whose first 48 bits are the run's time in
/// milliseconds (so ids sort by time, as version 7 ones do), then 12 bits of the run's id,
/// then the seq. The same event gets the same id every time it is told.
fn event_id(block: &Block, seq: i64) -> Uuid {
    let ms = crate::topup::parse_timestamp(&block.created_at)
        .map(|at| at.timestamp_millis())
        .unwrap_or(0) as u64;
    let run = Uuid::parse_str(&block.run_id)
        .map(|u| u.as_u128() as u16)
        .unwrap_or(0);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6..8].copy_from_slice(&(run & 0x0fff).to_be_bytes());
    bytes[8..].copy_from_slice(&((seq as u64) & SEQ_BITS).to_be_bytes());
    Uuid::new_v8(bytes)
}

/// Where the last reading of a block stopped: reading on from there, as delivery does, tells
/// each settlement once however many calls it takes; reading back starts the block again.
struct Cursor {
    db: String,
    block: Block,
    /// The settlement the next MATCHED row is.
    next: i64,
    /// The journal id to read on from.
    next_tx: i64,
    balances: Before,
    /// The events told last, kept for the calls that follow one by one.
    told: Vec<Derived>,
}

thread_local! {
    static CURSOR: RefCell<Option<Cursor>> = const { RefCell::new(None) };
}

/// Events told per reading when a single one is asked for: delivery asks for them in order.
const WINDOW: usize = 256;

/// Up to `limit` events of `block` from `from` on. At least a window's worth is told and kept,
/// so that the calls for one event after another read the journal once between them.
fn derive(
    conn: &Connection,
    block: &Block,
    mut from: i64,
    limit: usize,
) -> Result<Vec<Derived>, StoreError> {
    let db = conn.path().unwrap_or("").to_string();
    let mut cursor = CURSOR
        .with(|c| c.borrow_mut().take())
        .filter(|c| c.db == db && c.block == *block);
    let mut found = Vec::new();
    if let Some(c) = &cursor
        && let Some(hit) = c.told.iter().position(|d| d.event.seq == from)
    {
        found.extend(c.told[hit..].iter().take(limit).cloned());
        from = found.last().map_or(from, |d| d.event.seq + 1);
    }
    if found.len() < limit && from <= block.last_seq() {
        let settlement = (from - block.first_seq) / 2;
        let mut reading = match cursor.take() {
            Some(c) if settlement >= c.next => c,
            _ => start(conn, db, block)?,
        };
        let wanted = (limit - found.len()).max(WINDOW) as i64;
        let mut upto = block.last_seq().min(from + wanted - 1);
        // A settlement's two events are told together: the next call reads on from the next.
        if (upto - block.first_seq) % 2 == 0 {
            upto += 1;
        }
        reading.told.clear();
        tell(conn, &mut reading, from, upto)?;
        found.extend(reading.told.iter().take(limit - found.len()).cloned());
        cursor = Some(reading);
    }
    CURSOR.with(|c| *c.borrow_mut() = cursor);
    Ok(found)
}

/// A cursor at the start of `block`, with the balances before its run.
fn start(conn: &Connection, db: String, block: &Block) -> Result<Cursor, StoreError> {
    let doing = "reading the cash balances before a run";
    let mut stmt = conn
        .prepare_cached(
            "SELECT account_group_id, currency, before FROM settlement_balances
             WHERE first_seq = ?1",
        )
        .doing(doing)?;
    let rows = stmt
        .query_map([block.first_seq], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .doing(doing)?;
    let mut balances = Before::new();
    for row in rows {
        let (group, currency, amount) = row.doing(doing)?;
        let currency: Currency = currency
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("currency {currency:?}: {e}")))?;
        let amount: Decimal = amount
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("cash balance {amount:?}: {e}")))?;
        balances.insert((group, currency), amount);
    }
    Ok(Cursor {
        db,
        block: block.clone(),
        next: 0,
        next_tx: block.first_tx,
        balances,
        told: Vec::new(),
    })
}

/// Journal rows read per query while telling.
const CHUNK: i64 = 4096;

/// Reads the block's settlements on from the cursor up to the one of `upto`, keeping the
/// events from `from` to `upto`.
fn tell(conn: &Connection, cursor: &mut Cursor, from: i64, upto: i64) -> Result<(), StoreError> {
    let doing = "telling a run's settlements from the journal";
    let block = cursor.block.clone();
    let last = (upto - block.first_seq) / 2;
    let mut rows = conn
        .prepare_cached(
            "SELECT id, topup FROM journal
             WHERE id >= ?1 AND id <= ?2 AND outcome = ?3 ORDER BY id LIMIT ?4",
        )
        .doing(doing)?;
    let mut topup = conn
        .prepare_cached(&format!(
            "SELECT {} FROM topups t WHERE t.id = ?1",
            super::topups::COLUMNS
        ))
        .doing(doing)?;
    let at = crate::topup::parse_timestamp(&block.created_at).map_err(|e| {
        StoreError::Corrupt(format!("settlements' time {:?}: {e}", block.created_at))
    })?;
    let matched = super::journal::outcome_code(Outcome::Matched);
    while cursor.next <= last {
        let chunk: Vec<(i64, Vec<u8>)> = rows
            .query_map(
                params![cursor.next_tx, block.last_tx, matched, CHUNK],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .doing(doing)?
            .collect::<rusqlite::Result<_>>()
            .doing(doing)?;
        if chunk.is_empty() {
            return Err(StoreError::Corrupt(format!(
                "run {} took {} event seqs for its settlements but its journal has only {} \
                 MATCHED transactions",
                block.run_id, block.count, cursor.next
            )));
        }
        for (tx, id) in chunk {
            if cursor.next > last {
                break;
            }
            let id = Uuid::from_slice(&id)
                .map_err(|e| StoreError::Corrupt(format!("transaction {tx}'s top-up: {e}")))?;
            let mut settled = topup
                .query_row([id.to_string()], super::topups::topup_from_row)
                .optional()
                .doing(doing)?
                .ok_or_else(|| StoreError::TopUpNotFound(id.to_string()))?
                .map_err(StoreError::Corrupt)?;
            settled.status = Status::Settled;
            let key = (settled.account_group_id.to_string(), settled.currency);
            let balance = cursor.balances.entry(key).or_default();
            *balance += settled.cash_amount;
            let seq = block.first_seq + 2 * cursor.next;
            if seq + 1 >= from && seq <= upto {
                let after = *balance;
                tell_one(
                    &block,
                    seq,
                    &settled,
                    after,
                    at,
                    from,
                    upto,
                    &mut cursor.told,
                );
            }
            cursor.next += 1;
            cursor.next_tx = tx + 1;
        }
    }
    Ok(())
}

/// The two events of the settlement of `topup` whose seqs begin at `seq`, those of them from
/// `from` to `upto`.
#[allow(clippy::too_many_arguments)]
fn tell_one(
    block: &Block,
    seq: i64,
    topup: &TopUp,
    after: Decimal,
    at: DateTime<Utc>,
    from: i64,
    upto: i64,
    told: &mut Vec<Derived>,
) {
    let group = topup.account_group_id.to_string();
    let kinds = [
        (seq, EventType::TopUpSettled),
        (seq + 1, EventType::CashBalanceUpdated),
    ];
    for (seq, kind) in kinds {
        if seq < from || seq > upto {
            continue;
        }
        let payload = match kind {
            EventType::TopUpSettled => serde_json::to_string(topup).expect("a top-up serialises"),
            _ => balance_payload(&group, topup, after, topup.cash_amount, at, None),
        };
        told.push(Derived {
            event: Event {
                seq,
                id: event_id(block, seq).to_string(),
                kind: kind.as_str().to_string(),
                created_at: block.created_at.clone(),
                payload,
            },
            account_group_id: group.clone(),
        });
    }
}
