//! What the commands and the API do, never printing: each command in `app` and each handler in
//! `api` is a thin wrapper around a function here, so both go through one code path.

pub mod admin;
pub mod exceptions;
pub mod inbox;
pub mod interrupt;
pub mod returns;
pub mod run;
pub mod runs;
pub mod statements;
pub mod topups;
pub mod webhooks;

use std::path::Path;
use std::time::Duration;

use crate::error::Error;
pub use crate::store::{OpenMode, Store};

/// Opens (and migrates) the database at `db`, waiting up to `wait` for another writer.
pub fn open(db: &Path, mode: OpenMode, wait: Duration) -> Result<Store, Error> {
    Ok(Store::open(db, mode, wait)?)
}
