//! Delivering the outbox's events to the platform's receiver, listing them with their delivery
//! state, and queueing failed ones again. The delivery state lives in `<db>.deliveries`, apart
//! from the database, so delivery never waits on a nightly run's write lock.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};

use crate::error::Error;
use crate::store::deliveries::Deliveries;
use crate::store::{Store, StoreError};
use crate::topup::format_timestamp;

pub use crate::store::deliveries::{Counts, Delivery, Retention};
pub use crate::webhooks::{Options, Outcome, Schedule, Secrets, Stop};

/// What a delivery did, and what waits.
pub struct Delivered {
    pub outcome: Outcome,
    pub counts: Counts,
    /// Events held back behind a failed one of their account group.
    pub held_back: u64,
    /// Delivered events deleted from the outbox, their retention over.
    pub pruned: u64,
}

/// Delivered events pruned per write transaction: short enough not to hold a nightly run up.
const PRUNE_BATCH: usize = 10_000;

/// Posts what is due, one deliverer at a time; `None` when another deliverer is running.
/// With `reenable`, an endpoint that answered 410 Gone is posted to again.
/// Events delivered more than `retention_days` ago are then deleted from the outbox.
pub fn deliver(
    store: &mut Store,
    options: &Options,
    reenable: bool,
    retention_days: u64,
) -> Result<Option<Delivered>, Error> {
    // One deliverer at a time: two would post the same events twice.
    let Some(_lock) = lock_deliverer(store.path())? else {
        return Ok(None);
    };
    let mut deliveries = Deliveries::open(store.path())?;
    if reenable && deliveries.enable(&options.url)? {
        tracing::warn!(
            "{} answered 410 Gone before; posting to it again",
            options.url
        );
    }
    let outcome = crate::webhooks::deliver(store.conn(), &mut deliveries, options)?;
    let pruned = prune(store, &mut deliveries, retention_start(retention_days))?;
    let counts = deliveries.counts()?;
    let held_back = if counts.failed > 0 {
        deliveries.held_back()?
    } else {
        0
    };
    Ok(Some(Delivered {
        outcome,
        counts,
        held_back,
        pruned,
    }))
}

/// When the retention of delivered events began: those delivered before go.
pub fn retention_start(days: u64) -> DateTime<Utc> {
    let days = i64::try_from(days).unwrap_or(i64::MAX);
    Utc::now()
        .checked_sub_signed(TimeDelta::try_days(days).unwrap_or(TimeDelta::MAX))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Deletes the events delivered before `before` from the outbox, a batch per transaction, and
/// then from the delivery state. A stop in between leaves delivered states whose event is
/// gone: the listing passes over them, and the next prune forgets them. Should a nightly run
/// hold the database, pruning waits for the next delivery.
fn prune(
    store: &mut Store,
    deliveries: &mut Deliveries,
    before: DateTime<Utc>,
) -> Result<u64, Error> {
    let mut pruned = 0;
    loop {
        let seqs = deliveries.prunable(before, PRUNE_BATCH)?;
        if seqs.is_empty() {
            break;
        }
        let Some(tx) = write_unless_busy(store)? else {
            return Ok(pruned);
        };
        crate::store::outbox::prune(&tx, &seqs)?;
        crate::store::commit(tx, "committing the pruned events")?;
        deliveries.forget_pruned(&seqs, Utc::now())?;
        pruned += seqs.len() as u64;
    }
    // The runs' settlement events have no rows to delete: every one before the lowest event
    // the delivery state still holds counts as pruned, so that a delivery state made anew does
    // not post them again. Should the database be busy now, the next prune says it.
    if pruned > 0
        && let Some(lowest) = deliveries.lowest()?
        && let Some(tx) = write_unless_busy(store)?
    {
        crate::store::outbox::prune_told_before(&tx, lowest)?;
        crate::store::commit(tx, "committing the pruned events")?;
    }
    Ok(pruned)
}

/// The database's write transaction for pruning, or none while a nightly run holds it.
fn write_unless_busy(store: &mut Store) -> Result<Option<rusqlite::Transaction<'_>>, Error> {
    match store.write() {
        Ok(tx) => Ok(Some(tx)),
        Err(StoreError::Locked(_)) => {
            tracing::info!("the database is busy: delivered events are pruned next time");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Delivered events kept in the outbox and pruned from it, against a retention of `days`;
/// `None` when nothing was ever delivered (there is no delivery state file).
pub fn retention(db: &Path, days: u64) -> Result<Option<Retention>, Error> {
    if !Deliveries::path_for(db).exists() {
        return Ok(None);
    }
    let deliveries = Deliveries::open(db)?;
    Ok(Some(deliveries.retention(retention_start(days))?))
}

/// Takes `<db>.deliver-lock`, held until the file is dropped; `None` (with a message) when
/// another deliverer holds it.
fn lock_deliverer(db: &Path) -> Result<Option<File>, Error> {
    let lock_path = PathBuf::from(format!("{}.deliver-lock", db.display()));
    let lock = File::create(&lock_path).map_err(|source| Error::Io {
        doing: format!("creating {}", lock_path.display()),
        source,
    })?;
    match lock.try_lock() {
        Ok(()) => Ok(Some(lock)),
        Err(fs::TryLockError::WouldBlock) => {
            tracing::error!(
                "another `recon webhooks deliver` is running on {}; try again when it has finished",
                db.display()
            );
            Ok(None)
        }
        Err(fs::TryLockError::Error(source)) => Err(Error::Io {
            doing: format!("locking {}", lock_path.display()),
            source,
        }),
    }
}

/// One event as `webhooks list` shows it: the outbox's row and its delivery state.
#[derive(serde::Serialize)]
pub struct Listed {
    pub seq: i64,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: String,
    pub payload: String,
    pub status: &'static str,
    pub attempts: u32,
    pub last_attempt_at: Option<String>,
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
    /// When the next attempt is due (pending events).
    pub next_attempt_at: Option<String>,
}

/// Up to `limit` events (of one delivery status, if given) with their delivery state.
pub fn list(
    store: &Store,
    status: Option<Delivery>,
    limit: Option<usize>,
) -> Result<Vec<Listed>, Error> {
    let mut deliveries = Deliveries::open(store.path())?;
    deliveries.take_in(store.conn(), Utc::now())?;
    let mut events = Vec::new();
    for state in deliveries.list(status, limit)? {
        let event = crate::store::outbox::event(store.conn(), state.seq)?;
        if event.is_none() && state.status == Delivery::Delivered {
            continue; // pruned from the outbox, not yet forgotten here
        }
        let event = event.ok_or_else(|| {
            Error::Store(StoreError::Corrupt(format!(
                "event #{} is in {} but not in the database",
                state.seq,
                deliveries.path().display()
            )))
        })?;
        events.push(Listed {
            seq: event.seq,
            id: event.id,
            kind: event.kind,
            created_at: event.created_at,
            payload: event.payload,
            status: state.status.as_str(),
            attempts: state.attempts,
            last_attempt_at: state.last_attempt_at.map(format_timestamp),
            last_error: state.last_error,
            delivered_at: state.delivered_at.map(format_timestamp),
            next_attempt_at: (state.status == Delivery::Pending)
                .then(|| format_timestamp(state.next_attempt_at)),
        });
    }
    Ok(events)
}

/// Queues these failed events for delivery again: due now, before the later events of their
/// account groups. Returns how many were queued.
pub fn retry(store: &Store, ids: &[String]) -> Result<usize, Error> {
    let mut deliveries = Deliveries::open(store.path())?;
    deliveries.take_in(store.conn(), Utc::now())?;
    let mut events = Vec::new();
    for id in ids {
        let seq = crate::store::outbox::seq_of(store.conn(), id)?
            .ok_or_else(|| StoreError::Refused(format!("no event with id {id}")))?;
        events.push((seq, id.clone()));
    }
    Ok(deliveries.retry(&events, Utc::now())?)
}
