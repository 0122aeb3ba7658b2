//! Looking after the database: its checks and its backups.

use std::path::Path;

use crate::error::Error;
use crate::store::Store;
use crate::store::check::{self, Finding, INTEGRITY};

/// Runs every check on the database `open` gives. A database SQLite cannot even read fails the
/// first check (its integrity) instead of failing the command.
pub fn check(
    open: impl FnOnce() -> Result<Store, Error>,
    deep: bool,
) -> Result<Vec<Finding>, Error> {
    match open().and_then(|store| Ok(check::run(store.conn(), deep)?)) {
        Ok(findings) => Ok(findings),
        Err(error) if error.is_damaged_database() => Ok(vec![Finding {
            invariant: INTEGRITY,
            problems: vec![error.to_string()],
        }]),
        Err(error) => Err(error),
    }
}

/// A consistent copy of the database in `target`, written aside and renamed into place.
pub fn backup(store: &Store, target: &Path) -> Result<(), Error> {
    Ok(store.backup(target)?)
}
