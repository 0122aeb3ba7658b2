//! The worklist in SQLite: the exceptions a run leaves open (a copy of each unmatched ledger
//! row's key facts, migration 12), the resolutions that close them, and the returns that send
//! money back. Every query that reads `bank_transactions` is in this module, each marked
//! `LEDGER:` (the ledger table is being reworked into a journal; its ids stay).

use rusqlite::Connection;

use super::{Doing, StoreError};

/// What a resolution does to its exceptions.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Settle,
    Return,
    Dismiss,
}

impl Kind {
    /// The name stored in `resolutions.kind`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Settle => "SETTLE",
            Kind::Return => "RETURN",
            Kind::Dismiss => "DISMISS",
        }
    }
}

/// How many exceptions are open now.
pub fn count_open(conn: &Connection) -> Result<usize, StoreError> {
    conn.query_row(
        "SELECT count(*) FROM exceptions WHERE resolution IS NULL",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as usize)
    .doing("counting open exceptions")
}
