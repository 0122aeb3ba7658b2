//! The outbox's delivery state, in a SQLite file of its own beside the database
//! (`<db>.deliveries`): per event its status, attempts, next attempt and last error, how far the
//! outbox has been taken in, and the endpoints that answered 410 Gone.
//!
//! A nightly run holds the database's write lock for its whole transaction. Delivery only reads
//! the database (in WAL mode a reader never waits for the writer) and writes here, so it records
//! every attempt while a run is going on, and a run never waits for a slow receiver. Before each
//! post it commits a claim on the event, cleared with the result: a deliver that stops in
//! between (killed, power lost) leaves the claim, and the next one knows that the event may have
//! reached the receiver and posts it again (at least once).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};

use super::outbox::{self, Taken};
use super::{Doing, StoreError, classify, schema};

/// How long a write here waits for another one: every transaction on this file is short.
const BUSY_WAIT: Duration = Duration::from_secs(10);

/// The last error of an attempt whose deliver stopped before recording the answer.
pub const INTERRUPTED: &str = "interrupted: the deliver that posted it stopped before recording the \
                               answer (the receiver may have it); posted again";

/// Events taken in from the outbox per transaction.
const INTAKE_BATCH: usize = 10_000;

/// Where an event is on its way to the platform.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Delivery {
    /// Waiting for its next attempt (or its first).
    Pending,
    Delivered,
    /// Out of attempts: waits, with the later events of its account group, for
    /// `recon webhooks retry`.
    Failed,
}

impl Delivery {
    /// The name in the file and in `webhooks list`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Delivery::Pending => "PENDING",
            Delivery::Delivered => "DELIVERED",
            Delivery::Failed => "FAILED",
        }
    }
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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

/// One event's delivery state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// The event's `events.seq` in the database: the delivery order.
    pub seq: i64,
    /// Events of one account group are delivered in order: a later one waits for an earlier.
    pub account_group_id: String,
    pub status: Delivery,
    pub attempts: u32,
    /// Not before this (when pending).
    pub next_attempt_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// An endpoint that answered 410 Gone: nothing more is posted to it until it is enabled again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gone {
    pub url: String,
    pub at: DateTime<Utc>,
    pub event_id: String,
    pub answer: String,
}

/// How many events wait, and when the next one is due.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub pending: u64,
    pub failed: u64,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Delivered events kept in the outbox, and those pruned from it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    pub delivered_kept: u64,
    /// Kept although delivered before the retention's start (the next deliver prunes them).
    pub past_retention: u64,
    pub pruned: u64,
    pub last_pruned_at: Option<DateTime<Utc>>,
}

/// The delivery state file of one database.
pub struct Deliveries {
    conn: Connection,
    path: PathBuf,
}

fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn from_ms(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("time {ms} ms in the delivery state")))
}

fn from_ms_opt(ms: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    ms.map(from_ms).transpose()
}

/// A state row as read: (seq, group, status, attempts, next, last attempt, last error,
/// delivered), the times still in milliseconds.
type RawState = (
    i64,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    Option<i64>,
);

const STATE_COLUMNS: &str = "seq, account_group_id, status, attempts, next_attempt_at_ms, \
                             last_attempt_at_ms, last_error, delivered_at_ms";

fn raw_state(row: &Row) -> rusqlite::Result<RawState> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
    ))
}

fn state(raw: RawState) -> Result<State, StoreError> {
    let (seq, account_group_id, status, attempts, next, last, last_error, delivered) = raw;
    Ok(State {
        seq,
        account_group_id,
        status: status.parse().map_err(StoreError::Corrupt)?,
        attempts: u32::try_from(attempts)
            .map_err(|_| StoreError::Corrupt(format!("{attempts} attempts of event #{seq}")))?,
        next_attempt_at: from_ms(next)?,
        last_attempt_at: from_ms_opt(last)?,
        last_error,
        delivered_at: from_ms_opt(delivered)?,
    })
}

/// A time the database's own event columns hold (recon before the delivery state file).
fn legacy_time(text: Option<&str>) -> Option<i64> {
    text.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
}

impl Deliveries {
    /// The delivery state file of the database at `db`.
    pub fn path_for(db: &Path) -> PathBuf {
        let mut name = db.as_os_str().to_owned();
        name.push(".deliveries");
        PathBuf::from(name)
    }

    /// Opens (or creates) the delivery state file of the database at `db` and migrates it.
    pub fn open(db: &Path) -> Result<Deliveries, StoreError> {
        let path = Self::path_for(db);
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags)
            .map_err(|e| classify(&path, e, "opening the delivery state"))?;
        conn.busy_timeout(BUSY_WAIT)
            .doing("setting the busy timeout")?;
        let mut deliveries = Deliveries { conn, path };
        deliveries.migrate()?;
        deliveries
            .conn
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
            .map_err(|e| classify(&deliveries.path, e, "configuring the delivery state"))?;
        Ok(deliveries)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let read = |conn: &Connection| -> Result<(i32, i64, i64), StoreError> {
            conn.query_row(
                "SELECT (SELECT application_id FROM pragma_application_id),
                        (SELECT user_version FROM pragma_user_version),
                        (SELECT count(*) FROM sqlite_master)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(|e| classify(&path, e, "reading the delivery state's header"))
        };
        let known = schema::DELIVERIES_MIGRATIONS.len() as i64;
        let (app_id, version, tables) = read(&self.conn)?;
        if app_id != schema::DELIVERIES_APPLICATION_ID && !(app_id == 0 && tables == 0) {
            return Err(StoreError::NotOurs(path));
        }
        if version > known {
            return Err(StoreError::Newer {
                path,
                found: version,
                known,
            });
        }
        if version == known {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify(&path, e, "migrating the delivery state"))?;
        // Read again under the lock: another process may have migrated meanwhile.
        let (_, version, _) = read(&tx)?;
        for (i, migration) in schema::DELIVERIES_MIGRATIONS
            .iter()
            .enumerate()
            .skip(version as usize)
        {
            tx.execute_batch(migration.sql)
                .doing("migrating the delivery state")?;
            if let Some(then) = migration.then {
                then(&tx)?;
            }
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .doing("migrating the delivery state")?;
        }
        tx.pragma_update(None, "application_id", schema::DELIVERIES_APPLICATION_ID)
            .doing("migrating the delivery state")?;
        tx.commit()
            .doing("committing the delivery state's migration")
    }

    fn intake_mark(&self) -> Result<(i64, Option<String>), StoreError> {
        self.conn
            .query_row("SELECT seq, event_id FROM intake", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .doing("reading the intake mark")
    }

    /// Takes in the events written to the outbox since the last call, each due at `now`, and
    /// returns how many. An event that recon recorded in the database itself before this file
    /// existed keeps the status it has there (delivered, failed, or pending with its attempts).
    pub fn take_in(
        &mut self,
        outbox: &Connection,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let mut taken = 0;
        loop {
            let (mark, mark_id) = self.intake_mark()?;
            if mark > 0 && outbox::event_id(outbox, mark)? != mark_id {
                return Err(StoreError::Refused(format!(
                    "{} does not belong to this database: it has taken in event #{mark} ({}), \
                     which the database does not hold (was the database restored from an older \
                     copy?). Put back the delivery state file that goes with it, or move {} \
                     aside to start over: every event then counts as pending unless the \
                     database itself marks it delivered, and is posted again",
                    self.path.display(),
                    mark_id.as_deref().unwrap_or("?"),
                    self.path.display()
                )));
            }
            let batch = outbox::since(outbox, mark, INTAKE_BATCH)?;
            let Some(last) = batch.last() else {
                return Ok(taken);
            };
            let path = self.path.clone();
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| classify(&path, e, "taking in events"))?;
            let current: i64 = tx
                .query_row("SELECT seq FROM intake", [], |r| r.get(0))
                .doing("reading the intake mark")?;
            if current == mark {
                insert_taken(&tx, &batch, now)?;
                tx.execute(
                    "UPDATE intake SET seq = ?1, event_id = ?2",
                    params![last.seq, last.id],
                )
                .doing("moving the intake mark")?;
                taken += batch.len();
            }
            // Otherwise another process took them in meanwhile: read on from its mark.
            tx.commit().doing("committing the events taken in")?;
        }
    }

    /// Up to `limit` events not delivered yet, after `after_seq`, in delivery order.
    pub fn undelivered(&self, after_seq: i64, limit: usize) -> Result<Vec<State>, StoreError> {
        let sql = format!(
            "SELECT {STATE_COLUMNS} FROM deliveries WHERE status <> 'DELIVERED' AND seq > ?1
             ORDER BY seq LIMIT ?2"
        );
        let mut stmt = self
            .conn
            .prepare_cached(&sql)
            .doing("reading undelivered events")?;
        let rows = stmt
            .query_map(params![after_seq, limit as i64], raw_state)
            .doing("reading undelivered events")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .doing("reading undelivered events")?;
        rows.into_iter().map(state).collect()
    }

    /// One event's state, if it has been taken in.
    pub fn state(&self, seq: i64) -> Result<Option<State>, StoreError> {
        let sql = format!("SELECT {STATE_COLUMNS} FROM deliveries WHERE seq = ?1");
        self.conn
            .query_row(&sql, [seq], raw_state)
            .optional()
            .doing("reading an event's delivery")?
            .map(state)
            .transpose()
    }

    /// Claims the event for an attempt starting at `at`, before it is posted: committed, so that
    /// a deliver that stops before recording the result leaves a trace.
    pub fn claim(&self, seq: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE deliveries SET claimed_at_ms = ?2 WHERE seq = ?1",
                params![seq, ms(at)],
            )
            .map_err(|e| classify(&self.path, e, "claiming an event"))?;
        Ok(())
    }

    /// Records the claims a deliver left when it stopped while posting as interrupted attempts,
    /// each event due again at `now` (the receiver may have it: it is posted again, at least
    /// once). Returns the events' seqs.
    pub fn recover_claims(&mut self, now: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify(&path, e, "recovering interrupted attempts"))?;
        let seqs = {
            let mut stmt = tx
                .prepare("SELECT seq FROM deliveries WHERE claimed_at_ms IS NOT NULL ORDER BY seq")
                .doing("reading interrupted attempts")?;
            stmt.query_map([], |r| r.get::<_, i64>(0))
                .doing("reading interrupted attempts")?
                .collect::<rusqlite::Result<Vec<_>>>()
                .doing("reading interrupted attempts")?
        };
        tx.execute(
            "UPDATE deliveries SET attempts = attempts + 1, last_attempt_at_ms = claimed_at_ms,
                 last_error = ?1, next_attempt_at_ms = ?2, claimed_at_ms = NULL
             WHERE claimed_at_ms IS NOT NULL",
            params![INTERRUPTED, ms(now)],
        )
        .doing("recovering interrupted attempts")?;
        tx.commit().doing("recovering interrupted attempts")?;
        Ok(seqs)
    }

    /// Records that the receiver accepted the event at `at`.
    pub fn delivered(&self, seq: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE deliveries SET status = 'DELIVERED', attempts = attempts + 1,
                     last_attempt_at_ms = ?2, delivered_at_ms = ?2, last_error = NULL,
                     claimed_at_ms = NULL
                 WHERE seq = ?1",
                params![seq, ms(at)],
            )
            .map_err(|e| classify(&self.path, e, "recording a delivery"))?;
        Ok(())
    }

    /// Records a failed attempt: the event is tried again at `next`, or with `None` it is
    /// `FAILED` until retried.
    pub fn attempt_failed(
        &self,
        seq: i64,
        at: DateTime<Utc>,
        error: &str,
        next: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE deliveries SET attempts = attempts + 1, last_attempt_at_ms = ?2,
                     last_error = ?3, next_attempt_at_ms = coalesce(?4, next_attempt_at_ms),
                     status = CASE WHEN ?4 IS NULL THEN 'FAILED' ELSE status END,
                     claimed_at_ms = NULL
                 WHERE seq = ?1",
                params![seq, ms(at), crate::text::clip(error, 500), next.map(ms)],
            )
            .map_err(|e| classify(&self.path, e, "recording a failed delivery"))?;
        Ok(())
    }

    /// Records that `url` answered 410 Gone to an event: the event keeps its place and its
    /// attempts (the endpoint is gone, the event is not at fault), and nothing more is posted
    /// to `url` until [`Deliveries::enable`].
    pub fn endpoint_gone(
        &mut self,
        url: &str,
        seq: i64,
        event_id: &str,
        at: DateTime<Utc>,
        answer: &str,
    ) -> Result<Gone, StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify(&path, e, "recording a gone endpoint"))?;
        tx.execute(
            "UPDATE deliveries SET last_attempt_at_ms = ?2, last_error = ?3, claimed_at_ms = NULL
             WHERE seq = ?1",
            params![seq, ms(at), crate::text::clip(answer, 500)],
        )
        .doing("recording a gone endpoint")?;
        tx.execute(
            "INSERT OR REPLACE INTO gone_endpoints (url, at_ms, event_id, answer)
             VALUES (?1, ?2, ?3, ?4)",
            params![url, ms(at), event_id, crate::text::clip(answer, 500)],
        )
        .doing("recording a gone endpoint")?;
        tx.commit().doing("recording a gone endpoint")?;
        Ok(Gone {
            url: url.to_string(),
            at: from_ms(ms(at))?,
            event_id: event_id.to_string(),
            answer: answer.to_string(),
        })
    }

    /// Whether `url` answered 410 Gone, and when.
    pub fn gone(&self, url: &str) -> Result<Option<Gone>, StoreError> {
        let raw: Option<(i64, String, String)> = self
            .conn
            .query_row(
                "SELECT at_ms, event_id, answer FROM gone_endpoints WHERE url = ?1",
                [url],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .doing("reading the gone endpoints")?;
        raw.map(|(at, event_id, answer)| {
            Ok(Gone {
                url: url.to_string(),
                at: from_ms(at)?,
                event_id,
                answer,
            })
        })
        .transpose()
    }

    /// Posts to `url` again after it answered 410 Gone; whether it had.
    pub fn enable(&self, url: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM gone_endpoints WHERE url = ?1", [url])
            .map_err(|e| classify(&self.path, e, "enabling an endpoint"))?
            > 0)
    }

    /// Queues failed events again, due at `now` with their attempts counted from zero: the
    /// given ones (seq and id), or every failed event when `events` is empty. An event that is
    /// not failed is refused by its id, and then none is queued.
    pub fn retry(
        &mut self,
        events: &[(i64, String)],
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify(&path, e, "queueing failed events again"))?;
        let queued = if events.is_empty() {
            tx.execute(
                "UPDATE deliveries SET status = 'PENDING', attempts = 0, next_attempt_at_ms = ?1
                 WHERE status = 'FAILED'",
                [ms(now)],
            )
            .doing("queueing failed events again")?
        } else {
            let mut queued = 0;
            for (seq, id) in events {
                let status: Option<String> = tx
                    .query_row("SELECT status FROM deliveries WHERE seq = ?1", [seq], |r| {
                        r.get(0)
                    })
                    .optional()
                    .doing("reading an event's delivery")?;
                match status.as_deref() {
                    Some("FAILED") => {
                        queued += tx
                            .execute(
                                "UPDATE deliveries SET status = 'PENDING', attempts = 0,
                                     next_attempt_at_ms = ?2
                                 WHERE seq = ?1",
                                params![seq, ms(now)],
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
            queued
        };
        tx.commit().doing("committing the retry")?;
        Ok(queued)
    }

    /// Events in one delivery status (or all), in order; `limit` keeps the newest.
    pub fn list(
        &self,
        status: Option<Delivery>,
        limit: Option<usize>,
    ) -> Result<Vec<State>, StoreError> {
        let sql = format!(
            "SELECT * FROM (SELECT {STATE_COLUMNS} FROM deliveries
                            WHERE ?1 IS NULL OR status = ?1 ORDER BY seq DESC LIMIT ?2)
             ORDER BY seq"
        );
        let mut stmt = self.conn.prepare(&sql).doing("listing deliveries")?;
        let limit = limit.map_or(-1, |l| l as i64);
        let rows = stmt
            .query_map(params![status.map(|s| s.as_str()), limit], raw_state)
            .doing("listing deliveries")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .doing("listing deliveries")?;
        rows.into_iter().map(state).collect()
    }

    /// How many events are pending and failed, and the earliest next attempt of an event that
    /// is first in its account group (the later ones wait for it).
    pub fn counts(&self) -> Result<Counts, StoreError> {
        let pending: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM deliveries WHERE status <> 'DELIVERED' AND status = 'PENDING'",
                [],
                |r| r.get(0),
            )
            .doing("counting pending events")?;
        // SQLite takes the bare columns from the row with min(seq).
        let next: Option<i64> = self
            .conn
            .query_row(
                "SELECT min(next_attempt_at_ms) FROM (
                     SELECT status, next_attempt_at_ms, min(seq) FROM deliveries
                     WHERE status <> 'DELIVERED' GROUP BY account_group_id)
                 WHERE status = 'PENDING'",
                [],
                |r| r.get(0),
            )
            .doing("reading the next attempt")?;
        let failed: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM deliveries WHERE status = 'FAILED'",
                [],
                |r| r.get(0),
            )
            .doing("counting failed events")?;
        Ok(Counts {
            pending: pending as u64,
            failed: failed as u64,
            next_attempt_at: from_ms_opt(next)?,
        })
    }

    /// Up to `limit` events delivered before `before`, oldest first: the outbox may delete them.
    /// The last event taken in stays, so that the database can still be recognised by it.
    pub fn prunable(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<i64>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq FROM deliveries
                 WHERE status = 'DELIVERED' AND delivered_at_ms < ?1
                   AND seq <> (SELECT seq FROM intake)
                 ORDER BY delivered_at_ms LIMIT ?2",
            )
            .doing("finding delivered events to prune")?;
        stmt.query_map(params![ms(before), limit as i64], |r| r.get(0))
            .doing("finding delivered events to prune")?
            .collect::<rusqlite::Result<Vec<i64>>>()
            .doing("finding delivered events to prune")
    }

    /// The lowest seq whose delivery state is kept: every event before it was taken in and
    /// pruned since (the last one taken in is never pruned).
    pub fn lowest(&self) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row("SELECT min(seq) FROM deliveries", [], |r| r.get(0))
            .doing("reading the delivery state")
    }

    /// Forgets events the outbox has deleted, and counts them as pruned.
    pub fn forget_pruned(&mut self, seqs: &[i64], at: DateTime<Utc>) -> Result<(), StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify(&path, e, "forgetting pruned events"))?;
        {
            let mut delete = tx
                .prepare_cached("DELETE FROM deliveries WHERE seq = ?1 AND status = 'DELIVERED'")
                .doing("forgetting pruned events")?;
            for seq in seqs {
                delete.execute([seq]).doing("forgetting pruned events")?;
            }
        }
        tx.execute(
            "UPDATE pruned SET events = events + ?1, at_ms = ?2",
            params![seqs.len() as i64, ms(at)],
        )
        .doing("counting pruned events")?;
        tx.commit().doing("committing the pruned events")
    }

    /// Delivered events kept, those delivered before `before`, and how many were pruned (and
    /// when last).
    pub fn retention(&self, before: DateTime<Utc>) -> Result<Retention, StoreError> {
        let doing = "counting delivered events";
        let (kept, due): (i64, i64) = self
            .conn
            .query_row(
                "SELECT count(*), count(*) FILTER (WHERE delivered_at_ms < ?1)
                 FROM deliveries WHERE status = 'DELIVERED'",
                [ms(before)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .doing(doing)?;
        let (pruned, at): (i64, Option<i64>) = self
            .conn
            .query_row("SELECT events, at_ms FROM pruned", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .doing(doing)?;
        Ok(Retention {
            delivered_kept: kept as u64,
            past_retention: due as u64,
            pruned: pruned as u64,
            last_pruned_at: from_ms_opt(at)?,
        })
    }

    /// Pending events that wait behind a failed event of their account group.
    pub fn held_back(&self) -> Result<u64, StoreError> {
        let held: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM deliveries AS d
                 WHERE d.status <> 'DELIVERED' AND d.status = 'PENDING'
                   AND EXISTS (SELECT 1 FROM deliveries AS f
                               WHERE f.status = 'FAILED' AND f.account_group_id = d.account_group_id
                                 AND f.seq < d.seq)",
                [],
                |r| r.get(0),
            )
            .doing("counting events held back")?;
        Ok(held as u64)
    }
}

/// Inserts the states of events just taken in.
fn insert_taken(conn: &Connection, batch: &[Taken], now: DateTime<Utc>) -> Result<(), StoreError> {
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO deliveries (seq, account_group_id, status, attempts, next_attempt_at_ms,
                 last_attempt_at_ms, last_error, delivered_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .doing("preparing the intake")?;
    for event in batch {
        let status = match event.status.as_str() {
            "DELIVERED" => Delivery::Delivered,
            "FAILED" => Delivery::Failed,
            _ => Delivery::Pending,
        };
        insert
            .execute(params![
                event.seq,
                event.account_group_id,
                status.as_str(),
                event.attempts,
                ms(now),
                legacy_time(event.last_attempt_at.as_deref()),
                event.last_error,
                legacy_time(event.delivered_at.as_deref()),
            ])
            .doing("taking in an event")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{OpenMode, Store};

    fn topup_event(conn: &Connection, seq: i64, group: &str, status: &str) {
        conn.execute(
            "INSERT INTO events (seq, id, type, created_at, payload, status, attempts,
                 last_attempt_at, delivered_at)
             VALUES (?1, 'e' || ?1, 'topup.settled', '2026-11-20T08:00:00Z', ?2, ?3,
                     CASE WHEN ?3 = 'PENDING' THEN 0 ELSE 2 END,
                     '2026-11-20T09:00:00Z',
                     CASE WHEN ?3 = 'DELIVERED' THEN '2026-11-20T09:00:00Z' END)",
            params![
                seq,
                serde_json::json!({ "account_group_id": group }).to_string(),
                status
            ],
        )
        .unwrap();
    }

    #[test]
    fn intake_keeps_what_the_database_itself_recorded_and_refuses_another_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        let store = Store::open(&db, OpenMode::CreateIfMissing, Duration::ZERO).unwrap();
        topup_event(store.conn(), 1, "g1", "DELIVERED");
        topup_event(store.conn(), 2, "g1", "FAILED");
        topup_event(store.conn(), 3, "g2", "PENDING");
        let now = Utc::now();
        let mut deliveries = Deliveries::open(&db).unwrap();
        assert_eq!(deliveries.take_in(store.conn(), now).unwrap(), 3);
        assert_eq!(deliveries.take_in(store.conn(), now).unwrap(), 0);
        let states = deliveries.list(None, None).unwrap();
        let statuses: Vec<(Delivery, u32, &str)> = states
            .iter()
            .map(|s| (s.status, s.attempts, s.account_group_id.as_str()))
            .collect();
        assert_eq!(
            statuses,
            [
                (Delivery::Delivered, 2, "g1"),
                (Delivery::Failed, 2, "g1"),
                (Delivery::Pending, 0, "g2")
            ]
        );
        assert_eq!(
            states[0].delivered_at,
            Some("2026-11-20T09:00:00Z".parse().unwrap())
        );
        assert_eq!(deliveries.held_back().unwrap(), 0);
        topup_event(store.conn(), 4, "g1", "PENDING");
        assert_eq!(deliveries.take_in(store.conn(), now).unwrap(), 1);
        assert_eq!(deliveries.held_back().unwrap(), 1);
        drop(deliveries);

        // Another database (say, restored from an older copy) beside this state file.
        store
            .conn()
            .execute("DELETE FROM events WHERE seq = 4", [])
            .unwrap();
        topup_event(store.conn(), 5, "g3", "PENDING");
        store
            .conn()
            .execute("UPDATE events SET seq = 4 WHERE seq = 5", [])
            .unwrap();
        let mut deliveries = Deliveries::open(&db).unwrap();
        let refused = deliveries.take_in(store.conn(), now).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("does not belong to this database"),
            "{refused}"
        );
    }

    #[test]
    fn a_claim_left_by_a_deliver_that_stopped_is_an_interrupted_attempt_due_again() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        let store = Store::open(&db, OpenMode::CreateIfMissing, Duration::ZERO).unwrap();
        topup_event(store.conn(), 1, "g1", "PENDING");
        topup_event(store.conn(), 2, "g1", "PENDING");
        let mut deliveries = Deliveries::open(&db).unwrap();
        let t0: DateTime<Utc> = "2026-11-20T10:00:00Z".parse().unwrap();
        deliveries.take_in(store.conn(), t0).unwrap();
        // Claimed and accepted: nothing left to recover.
        deliveries.claim(1, t0).unwrap();
        deliveries.delivered(1, t0).unwrap();
        // Claimed, then the process is gone.
        let t1 = t0 + chrono::TimeDelta::seconds(1);
        deliveries.claim(2, t1).unwrap();
        drop(deliveries);

        let mut deliveries = Deliveries::open(&db).unwrap();
        let t2 = t0 + chrono::TimeDelta::minutes(5);
        assert_eq!(deliveries.recover_claims(t2).unwrap(), [2]);
        let state = deliveries.state(2).unwrap().unwrap();
        assert_eq!(
            (state.status, state.attempts, state.next_attempt_at),
            (Delivery::Pending, 1, t2)
        );
        assert_eq!(state.last_attempt_at, Some(t1));
        assert_eq!(state.last_error.as_deref(), Some(INTERRUPTED));
        assert_eq!(deliveries.state(1).unwrap().unwrap().attempts, 1);
        assert!(deliveries.recover_claims(t2).unwrap().is_empty());
    }

    #[test]
    fn a_file_that_is_not_a_delivery_state_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        Connection::open(Deliveries::path_for(&db))
            .unwrap()
            .execute_batch("CREATE TABLE mine (x)")
            .unwrap();
        assert!(matches!(Deliveries::open(&db), Err(StoreError::NotOurs(_))));
    }
}
