//! The top-ups' lifecycle as the command line and the API both drive it: create (with the
//! API's idempotency keys), import, cancel, list and show. One code path enforces the
//! lifecycle, writes the events and commits, whoever asks.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::ids::TopUpId;
use crate::store::{Store, StoreError, idempotency, topups};
use crate::topup::{FieldError, NewTopUp, Status, TopUp, ValidTopUp};

pub use crate::store::topups::TopUpRecord;

/// Why a top-up was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// Fields that are not valid, each with its reason.
    #[error("invalid top-up")]
    Invalid(Vec<FieldError>),
    /// The idempotency key was used before for a different request.
    #[error("this key was used for a different request; use a new key")]
    KeyReused,
    #[error(transparent)]
    Failed(#[from] Error),
}

impl From<StoreError> for CreateError {
    fn from(error: StoreError) -> Self {
        CreateError::Failed(Error::Store(error))
    }
}

/// A top-up created now, or the answer a request with the same idempotency key got before.
pub enum Created {
    New(TopUp),
    Replayed { status: u16, body: String },
}

/// The body a created top-up is answered with, and remembered under its idempotency key.
pub fn body(topup: &TopUp) -> String {
    serde_json::to_string(topup).expect("plain data serialises")
}

/// Validates `request`, then (in the store `open` gives, in a transaction of its own) creates
/// it with [`create_in`].
pub fn create(
    request: &NewTopUp,
    key: Option<&str>,
    open: impl FnOnce() -> Result<Store, Error>,
) -> Result<Created, CreateError> {
    let request = request.validate().map_err(CreateError::Invalid)?;
    let mut store = open()?;
    let tx = store.write()?;
    let created = create_in(&tx, &request, key)?;
    crate::store::commit(tx, "committing a new top-up")?;
    Ok(created)
}

/// Creates the `CONFIRMED` top-up with its event inside a write transaction the caller owns and
/// commits (the API's writer commits many requests in one), stamped with the time it is written.
/// With a `key`, the answer is remembered under it: the same key with the same request (as
/// validated: `"30"` and `"30.00"` are the same amount) answers the same again; with another
/// request it is refused.
pub fn create_in(
    conn: &Connection,
    request: &ValidTopUp,
    key: Option<&str>,
) -> Result<Created, CreateError> {
    let fingerprint = key.map(|_| fingerprint(request));
    if let (Some(key), Some(fingerprint)) = (key, &fingerprint) {
        match idempotency::lookup(conn, key)? {
            Some(stored) if &stored.fingerprint == fingerprint => {
                return Ok(Created::Replayed {
                    status: stored.status,
                    body: stored.body,
                });
            }
            Some(_) => return Err(CreateError::KeyReused),
            None => {}
        }
    }
    let now = Utc::now();
    let topup = request.confirm(now);
    topups::insert(conn, &topup, now)?;
    if let (Some(key), Some(fingerprint)) = (key, &fingerprint) {
        idempotency::remember(conn, key, fingerprint, 201, &body(&topup), now)?;
    }
    Ok(Created::New(topup))
}

/// The same request is the same three validated fields, however the client wrote them.
fn fingerprint(request: &ValidTopUp) -> String {
    hex::encode(Sha256::digest(request.canonical_text().as_bytes()))
}

/// How to import a file of top-ups.
pub struct ImportPlan<'a> {
    pub path: &'a Path,
    /// Skip the rows that are the top-up stored under their id (a platform's rolling export);
    /// otherwise a stored id refuses the file.
    pub skip_existing: bool,
    /// Shows the file read and the rows written; hidden unless the caller shows it.
    pub progress: indicatif::ProgressBar,
}

/// What an import did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Imported {
    pub imported: usize,
    /// Rows that were the top-up stored under their id (only with `skip_existing`).
    pub skipped: usize,
}

/// Rows in conflict named in the error; the count says how many more there are.
const CONFLICTS_NAMED: usize = 20;

/// Imports every top-up of a CSV or JSON-lines file, all or nothing. With `skip_existing`, a
/// row that is the top-up stored under its id is skipped and counted, and rows that differ from
/// it are errors naming the line and the stored top-up, and nothing is imported.
pub fn import(
    plan: &ImportPlan,
    open: impl FnOnce() -> Result<Store, Error>,
) -> Result<Imported, Error> {
    let path = plan.path;
    let cannot_read =
        |e: std::io::Error| Error::Usage(format!("cannot read {}: {e}", path.display()));
    let file = File::open(path).map_err(cannot_read)?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = &plan.progress;
    progress.set_message(format!("reading {}", path.display()));
    progress.set_length(size);
    let mut reader = BufReader::new(progress.wrap_read(file));
    let format = crate::import::detect_buffered(&mut reader).map_err(cannot_read)?;
    let now = whole_second(Utc::now());
    let crate::import::ImportRows { mut rows, filled } =
        crate::import::read(reader, format, now)
            .map_err(|e| Error::Data(format!("{}: {e}; nothing was imported", path.display())))?;
    let mut store = open()?;
    let tx = store.write()?;
    let skipped = if plan.skip_existing {
        progress.set_message("comparing with the stored top-ups");
        skip_stored(&tx, path, &mut rows, &filled)?
    } else {
        0
    };
    drop(filled);
    progress.set_message(format!("writing {} top-up(s)", rows.len()));
    topups::insert_many(&tx, &rows, now).map_err(|e| match e {
        StoreError::Import { line, message } => {
            let id = rows.iter().find(|(l, _)| *l == line).map(|(_, t)| t.id);
            let stored = id
                .is_some_and(|id| topups::by_ids(&tx, &[id]).is_ok_and(|found| !found.is_empty()));
            let hint = if stored && !plan.skip_existing {
                " (a file that repeats top-ups stored before, such as a rolling export, imports \
                 with --skip-existing)"
            } else {
                ""
            };
            Error::Data(format!(
                "{}: line {line}: {message}; nothing was imported{hint}",
                path.display()
            ))
        }
        other => Error::Store(other),
    })?;
    crate::store::commit(tx, "committing the import")?;
    Ok(Imported {
        imported: rows.len(),
        skipped,
    })
}

/// Takes out the rows that are the top-up stored under their id; returns how many. Rows that
/// differ from it refuse the import, each named with its line and the stored top-up.
fn skip_stored(
    conn: &rusqlite::Connection,
    path: &Path,
    rows: &mut Vec<(u64, TopUp)>,
    filled: &[crate::import::Filled],
) -> Result<usize, Error> {
    let ids: Vec<TopUpId> = rows.iter().map(|(_, t)| t.id).collect();
    let stored = topups::by_ids(conn, &ids)?;
    if stored.is_empty() {
        return Ok(0);
    }
    let mut conflicts = Vec::new();
    let before = rows.len();
    let mut filled = filled.iter();
    rows.retain(|(line, topup)| {
        let filled = filled.next().copied().unwrap_or_default();
        let Some(stored) = stored.get(&topup.id) else {
            return true;
        };
        let differences = crate::import::differences(topup, filled, stored);
        if !differences.is_empty() {
            conflicts.push(format!(
                "line {line}: top-up {} differs from the stored one ({}): {}",
                topup.id,
                describe(stored),
                differences.join(", ")
            ));
        }
        false
    });
    if conflicts.is_empty() {
        return Ok(before - rows.len());
    }
    let total = conflicts.len();
    conflicts.truncate(CONFLICTS_NAMED);
    if total > CONFLICTS_NAMED {
        conflicts.push(format!("and {} more", total - CONFLICTS_NAMED));
    }
    Err(Error::Data(format!(
        "{}: {total} row(s) conflict with stored top-ups; nothing was imported:\n  {}",
        path.display(),
        conflicts.join("\n  ")
    )))
}

/// A stored top-up in one line, as a conflict names it.
fn describe(topup: &TopUp) -> String {
    format!(
        "created_at {}, account_group_id {}, {} {}, {}, settlement_reference {}",
        crate::topup::format_timestamp(topup.created_at),
        topup.account_group_id,
        topup.cash_amount_text(),
        topup.currency,
        topup.status,
        topup.settlement_reference
    )
}

/// The API shows whole seconds; what is stored is kept equal to what is shown.
fn whole_second(at: DateTime<Utc>) -> DateTime<Utc> {
    chrono::Timelike::with_nanosecond(&at, 0).unwrap_or(at)
}

/// Cancels an open top-up in a transaction of its own (see [`cancel_in`]).
pub fn cancel(store: &mut Store, id: TopUpId) -> Result<TopUp, StoreError> {
    let tx = store.write()?;
    let topup = cancel_in(&tx, id)?;
    crate::store::commit(tx, "committing the cancel")?;
    Ok(topup)
}

/// Cancels an open top-up, with its event, inside a write transaction the caller owns and
/// commits; any other status is refused, naming it.
pub fn cancel_in(conn: &Connection, id: TopUpId) -> Result<TopUp, StoreError> {
    topups::transition(conn, id, Status::Cancelled, Utc::now(), None)
}

/// Calls `each` for every top-up in one of `statuses` (all when none is given), oldest first,
/// as they are read.
pub fn for_each(
    store: &Store,
    statuses: &[Status],
    each: &mut dyn FnMut(&TopUp) -> std::io::Result<()>,
) -> std::io::Result<()> {
    topups::for_each(store.conn(), statuses, each)
}

/// Up to `limit` top-ups after the one named `after` (oldest first), and whether more follow.
pub fn page(
    store: &Store,
    status: Option<Status>,
    after: Option<TopUpId>,
    limit: usize,
) -> Result<(Vec<TopUp>, bool), StoreError> {
    topups::page(store.conn(), status, after, limit)
}

/// One top-up with its timestamps and what settled it.
pub fn show(store: &Store, id: TopUpId) -> Result<TopUpRecord, StoreError> {
    topups::get(store.conn(), id)
}
