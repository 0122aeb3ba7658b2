//! The statement files a run read, kept in the database as evidence: storing each once inside
//! the run's transaction, listing them, and giving an auditor the original bytes back.

use std::fs::File;
use std::io::{self, Seek, Write};
use std::path::Path;

use chrono::Utc;

use crate::error::Error;
use crate::ids::RunId;
use crate::store::statements::{self, MAX_STORED_BYTES, NewFile, Unpacking};
use crate::store::{Store, StoreError};
pub use statements::StoredFile;

/// Compressed bytes up to this size wait in memory before they are stored; beyond, in a
/// temporary file, so that a large statement never sits in memory whole.
const SPOOL_IN_MEMORY: usize = 8 << 20;

/// What a run knows of a file it read, to keep it.
pub struct Evidence<'a> {
    pub path: &'a Path,
    /// The SHA-256 the reading found, in hex (empty when the file could not be read).
    pub sha256: &'a str,
    pub format: Option<&'a str>,
    pub statement_ids: &'a [String],
}

/// Stores the file's bytes, compressed, unless a file with the same SHA-256 is stored already.
/// The file is read again from disk, and refused if its bytes are no longer those the run
/// read; the caller's transaction makes it part of the run.
pub fn keep(conn: &rusqlite::Connection, run: RunId, file: &Evidence) -> Result<(), Error> {
    let Some(sha256) = parse_sha(file.sha256) else {
        return Ok(());
    };
    if statements::contains(conn, &sha256)? {
        return Ok(());
    }
    let io = |doing: &str| {
        let doing = format!("{doing} {}", file.path.display());
        move |source| Error::Io { doing, source }
    };
    let clock = std::time::Instant::now();
    let source = File::open(file.path).map_err(io("reading"))?;
    let mut spool = tempfile::spooled_tempfile(SPOOL_IN_MEMORY);
    let (read_sha, size) = statements::compress(source, &mut spool).map_err(io("compressing"))?;
    if read_sha != sha256 {
        return Err(Error::Data(format!(
            "{} changed while the run read it (its SHA-256 was {}, is now {}): nothing was \
             committed; run again once the file is complete",
            file.path.display(),
            file.sha256,
            hex::encode(read_sha)
        )));
    }
    let compressed_len = spool.stream_position().map_err(io("compressing"))?;
    if compressed_len > MAX_STORED_BYTES {
        return Err(Error::Data(format!(
            "{} takes {compressed_len} bytes compressed, more than the database can hold in one \
             value ({MAX_STORED_BYTES}): nothing was committed; lower --max-file-bytes to \
             reject such files instead",
            file.path.display()
        )));
    }
    let stored_at = crate::topup::format_timestamp(Utc::now());
    let new = NewFile {
        sha256,
        format: file.format,
        size,
        statement_ids: file.statement_ids,
        stored_at: &stored_at,
        run,
    };
    let id = statements::insert(conn, &new, compressed_len)?;
    spool.rewind().map_err(io("compressing"))?;
    let mut blob = statements::blob(conn, id, false)?;
    io::copy(&mut spool, &mut blob).map_err(io("storing"))?;
    tracing::debug!(
        file = %file.path.display(),
        size,
        compressed = compressed_len,
        elapsed_ms = clock.elapsed().as_millis() as u64,
        "statement file stored"
    );
    Ok(())
}

/// Every stored statement file, in the order they were first stored.
pub fn list(store: &Store) -> Result<Vec<StoredFile>, Error> {
    Ok(statements::list(store.conn())?)
}

/// The one stored file whose SHA-256 starts with `prefix` (at least 8 hex digits).
pub fn find(store: &Store, prefix: &str) -> Result<StoredFile, Error> {
    let prefix = prefix.trim();
    if prefix.len() < 8 || prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Usage(format!(
            "{prefix:?} is not a SHA-256: give its 64 hex digits, or at least the first 8 \
             (`recon statements list` shows them)"
        )));
    }
    let mut found = statements::by_prefix(store.conn(), prefix)?;
    match found.len() {
        0 => Err(Error::Data(format!(
            "no stored statement file has a SHA-256 starting with {prefix}; `recon statements \
             list` shows them (files read before recon stored statements are not there)"
        ))),
        1 => Ok(found.remove(0)),
        n => Err(Error::Usage(format!(
            "{n} stored statement files have a SHA-256 starting with {prefix}; give more digits"
        ))),
    }
}

/// Writes a stored file's original bytes to `out`, checking them against its SHA-256 (after
/// they are written: a mismatch is an error, and `out` should then be discarded).
pub fn export(store: &Store, file: &StoredFile, out: &mut dyn Write) -> Result<(), Error> {
    let blob = statements::blob(store.conn(), file.id, true)?;
    let damaged = |why: String| {
        Error::Store(StoreError::Corrupt(format!(
            "the stored statement file {} {why}",
            file.sha256
        )))
    };
    let (sha, size) = statements::decompress(blob, out).map_err(|e| match e {
        Unpacking::Damaged(e) => damaged(format!("does not decompress ({e})")),
        Unpacking::Writing(source) => Error::Io {
            doing: format!("writing the stored statement file {}", file.sha256),
            source,
        },
    })?;
    if hex::encode(sha) != file.sha256 || size != file.size {
        return Err(damaged(format!(
            "decompresses to {size} bytes with SHA-256 {}, not the {} bytes stored",
            hex::encode(sha),
            file.size
        )));
    }
    Ok(())
}

/// A SHA-256 in hex as its 32 bytes.
fn parse_sha(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}
