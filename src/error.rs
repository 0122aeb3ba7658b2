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
    /// A file or folder that must exist does not (sysexits' EX_NOINPUT).
    pub const NO_INPUT: u8 = 66;
    /// Internal error (a bug, or an invariant broken): nothing was committed.
    pub const INTERNAL: u8 = 70;
    /// A file or folder cannot be created where it was asked for (EX_CANTCREAT).
    pub const CANT_CREATE: u8 = 73;
    /// Reading or writing failed: a full disk, a failing device (EX_IOERR).
    pub const IO: u8 = 74;
    /// recon may not read or write there (EX_NOPERM).
    pub const NO_PERMISSION: u8 = 77;
    /// Stopped by SIGINT or SIGTERM before the commit (128 + SIGINT, as shells report it).
    pub const INTERRUPTED: u8 = 130;
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
    #[error("stopped by a signal before the commit: nothing was committed and no report written")]
    Interrupted,
    /// A failure after the run committed: the message names the run, which stands.
    #[error("{0}")]
    AfterCommit(String),
}

impl Error {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Data(_) => exit::DATA,
            Error::Store(e) => store_code(e),
            Error::Report(e) => io_code(e.source.kind(), true),
            Error::Io { doing, source } => {
                let writing = ["creating", "writing", "moving", "updating"]
                    .iter()
                    .any(|verb| doing.starts_with(verb));
                io_code(source.kind(), writing)
            }
            Error::Internal(_) => exit::INTERNAL,
            Error::Interrupted => exit::INTERRUPTED,
            Error::AfterCommit(_) => exit::IO,
        }
    }

    /// What to do, where the message itself names only the cause.
    pub fn hint(&self) -> Option<&'static str> {
        if let Error::AfterCommit(_) = self {
            return Some(
                "the run stands and is not to be run again: remove the cause named above (free \
                 space, permissions, something in the way), then the next inbox run files away \
                 what is left",
            );
        }
        match self.exit_code() {
            exit::NO_PERMISSION => Some(
                "recon may not read or write the path named above: check its permissions and \
                 owner, or choose another path",
            ),
            exit::CANT_CREATE => Some(
                "the folder named above does not exist or is not a folder: create it first, or \
                 choose another path",
            ),
            exit::NO_INPUT => Some("the path named above does not exist: check it"),
            exit::IO => Some(
                "reading or writing failed: check the free space and the health of the disk \
                 holding the path named above, then run again",
            ),
            exit::DATA if self.is_damaged_database() => Some(
                "the database file is damaged: restore it from a backup (`recon backup` makes \
                 them; see Backups in the README), then run `recon check`",
            ),
            _ => None,
        }
    }

    /// Standard output was closed by its reader (`recon topups list | head -1`): not an error.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
    }

    /// There is no database at the path given.
    pub fn is_missing_database(&self) -> bool {
        matches!(self, Error::Store(StoreError::Missing(_)))
    }

    /// SQLite found the database file damaged.
    pub fn is_damaged_database(&self) -> bool {
        matches!(self, Error::Store(StoreError::Sqlite { source, .. }) if is_damage(source))
    }
}

fn is_damage(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

fn store_code(error: &StoreError) -> u8 {
    use rusqlite::ErrorCode;
    match error {
        StoreError::Missing(_) | StoreError::NotOurs(_) | StoreError::Newer { .. } => exit::USAGE,
        StoreError::Locked(_) => exit::LOCKED,
        StoreError::TopUpNotFound(_)
        | StoreError::ExceptionNotFound(_)
        | StoreError::Lifecycle(_)
        | StoreError::Import { .. }
        | StoreError::Refused(_) => exit::DATA,
        StoreError::Sqlite { source, .. } => match source.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => exit::DATA,
            Some(ErrorCode::DiskFull | ErrorCode::SystemIoFailure) => exit::IO,
            Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => exit::NO_PERMISSION,
            Some(ErrorCode::CannotOpen) => exit::CANT_CREATE,
            _ => exit::INTERNAL,
        },
        StoreError::Corrupt(_) => exit::INTERNAL,
    }
}

/// The sysexits status of a failed file operation; `writing` when recon was creating or
/// writing the path (a missing folder is then one it cannot create in).
fn io_code(kind: io::ErrorKind, writing: bool) -> u8 {
    use io::ErrorKind::*;
    match kind {
        PermissionDenied | ReadOnlyFilesystem => exit::NO_PERMISSION,
        NotFound | NotADirectory | IsADirectory | AlreadyExists if writing => exit::CANT_CREATE,
        NotFound | NotADirectory => exit::NO_INPUT,
        _ => exit::IO,
    }
}
