//! The library's top error and the exit status each kind of failure gives.

use std::io;

use crate::report::ReportError;
use crate::store::StoreError;

/// Exit statuses, as documented in the README.
pub mod exit {
    /// The command did its work (a run's exceptions are the report's business).
    pub const OK: u8 = 0;
    /// Usage or configuration error: nothing was done.
    pub const USAGE: u8 = 2;
    /// Bad data: an input rejected, an import refused, a lifecycle change not allowed.
    pub const DATA: u8 = 65;
    /// Internal error (a bug, or the disk failed): nothing was committed.
    pub const INTERNAL: u8 = 70;
    /// Another recon process holds the database, or a webhook receiver is unreachable:
    /// try again later.
    pub const LOCKED: u8 = 75;
}

/// Any failure of a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Data(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("{doing}: {source}")]
    Io { doing: String, source: io::Error },
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Data(_) => exit::DATA,
            Error::Store(e) => match e {
                StoreError::Missing(_) | StoreError::NotOurs(_) | StoreError::Newer { .. } => {
                    exit::USAGE
                }
                StoreError::Locked(_) => exit::LOCKED,
                StoreError::TopUpNotFound(_)
                | StoreError::Lifecycle(_)
                | StoreError::Import { .. }
                | StoreError::Refused(_) => exit::DATA,
                StoreError::Corrupt(_) | StoreError::Sqlite { .. } => exit::INTERNAL,
            },
            Error::Report(_) | Error::Io { .. } | Error::Internal(_) => exit::INTERNAL,
        }
    }
}
