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

/// Imports every top-up of a CSV or JSON-lines file, all or nothing; returns how many.
pub fn import(path: &Path, open: impl FnOnce() -> Result<Store, Error>) -> Result<usize, Error> {
    let file = File::open(path)
        .map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))?;
    let mut reader = BufReader::new(file);
    let format = crate::import::detect_buffered(&mut reader)
        .map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))?;
    let now = whole_second(Utc::now());
    let rows = crate::import::read(reader, format, now)
        .map_err(|e| Error::Data(format!("{}: {e}; nothing was imported", path.display())))?;
    let mut store = open()?;
    let tx = store.write()?;
    topups::insert_many(&tx, &rows, now).map_err(|e| match e {
        StoreError::Import { line, message } => Error::Data(format!(
            "{}: line {line}: {message}; nothing was imported",
            path.display()
        )),
        other => Error::Store(other),
    })?;
    crate::store::commit(tx, "committing the import")?;
    Ok(rows.len())
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

/// Every top-up, or those of one status, oldest first.
pub fn list(store: &Store, status: Option<Status>) -> Result<Vec<TopUp>, StoreError> {
    topups::list(store.conn(), status)
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
