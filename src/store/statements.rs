//! The statement files read, kept once each by their SHA-256: the bank's bytes as evidence,
//! compressed with zstd and streamed in and out of SQLite's incremental blob I/O, so that a
//! large file is never held whole in memory.

use std::io::{self, Read, Write};

use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};

use super::{Doing, StoreError};
use crate::ids::RunId;

/// zstd's level for stored statements. Measured on the generated 100k night's 85 MB camt.053
/// (docs/performance.md, 2026-12-07): level 1 compresses about 20× at about three times the
/// speed of level 3, which is no smaller there; higher levels win under 10 % for 15× the time.
pub const ZSTD_LEVEL: i32 = 1;

/// SQLite's largest value (SQLITE_MAX_LENGTH as bundled): a compressed file above it cannot
/// be stored.
pub const MAX_STORED_BYTES: u64 = 1_000_000_000;

/// A statement file kept in the database.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StoredFile {
    #[serde(skip)]
    pub id: i64,
    pub sha256: String,
    /// The format it was read as; none for a file rejected before its format was known.
    pub format: Option<String>,
    /// The original file's size in bytes.
    pub size: u64,
    /// What it takes in the database, compressed.
    pub stored_size: u64,
    pub statement_ids: Vec<String>,
    /// When and by which run it was first stored.
    pub stored_at: String,
    pub run_id: String,
}

/// A file about to be stored: what is known of it besides its bytes.
pub struct NewFile<'a> {
    pub sha256: [u8; 32],
    pub format: Option<&'a str>,
    pub size: u64,
    pub statement_ids: &'a [String],
    pub stored_at: &'a str,
    pub run: RunId,
}

/// Whether a file with this SHA-256 is stored already.
pub fn contains(conn: &Connection, sha256: &[u8; 32]) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT 1 FROM stored_files WHERE sha256 = ?1")
        .and_then(|mut stmt| stmt.exists([&sha256[..]]))
        .doing("looking up a stored statement file")
}

/// Adds a file's row with room for `compressed_len` bytes; its bytes are then written with
/// [`blob`]. Returns the row's id.
pub fn insert(conn: &Connection, file: &NewFile, compressed_len: u64) -> Result<i64, StoreError> {
    let ids = serde_json::to_string(file.statement_ids).unwrap_or_default();
    conn.prepare_cached(
        "INSERT INTO stored_files
             (sha256, format, size, statement_ids, stored_at, run_id, compressed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, zeroblob(?7))",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            &file.sha256[..],
            file.format,
            file.size as i64,
            ids,
            file.stored_at,
            file.run.to_string(),
            compressed_len as i64
        ])
    })
    .doing("storing a statement file")?;
    Ok(conn.last_insert_rowid())
}

/// The compressed bytes of stored file `id`, to read or (not `read_only`) to fill.
pub fn blob(
    conn: &Connection,
    id: i64,
    read_only: bool,
) -> Result<rusqlite::blob::Blob<'_>, StoreError> {
    conn.blob_open(
        rusqlite::MAIN_DB,
        c"stored_files",
        c"compressed",
        id,
        read_only,
    )
    .doing("opening a stored statement file")
}

const COLUMNS: &str =
    "id, hex(sha256), format, size, length(compressed), statement_ids, stored_at, run_id";

fn stored_file(row: &rusqlite::Row) -> rusqlite::Result<StoredFile> {
    let ids: String = row.get(5)?;
    Ok(StoredFile {
        id: row.get(0)?,
        sha256: row.get::<_, String>(1)?.to_ascii_lowercase(),
        format: row.get(2)?,
        size: row.get::<_, i64>(3)? as u64,
        stored_size: row.get::<_, i64>(4)? as u64,
        statement_ids: serde_json::from_str(&ids).unwrap_or_default(),
        stored_at: row.get(6)?,
        run_id: row.get(7)?,
    })
}

/// Every stored file, in the order they were first stored.
pub fn list(conn: &Connection) -> Result<Vec<StoredFile>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM stored_files ORDER BY id");
    let mut stmt = conn.prepare(&sql).doing("listing stored statement files")?;
    stmt.query_map([], stored_file)
        .and_then(|rows| rows.collect())
        .doing("listing stored statement files")
}

/// The stored files whose SHA-256 in hex starts with `prefix` (hex digits, any case).
pub fn by_prefix(conn: &Connection, prefix: &str) -> Result<Vec<StoredFile>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM stored_files
         WHERE substr(hex(sha256), 1, length(?1)) = upper(?1) ORDER BY id"
    );
    let mut stmt = conn
        .prepare(&sql)
        .doing("finding a stored statement file")?;
    stmt.query_map([prefix], stored_file)
        .and_then(|rows| rows.collect())
        .doing("finding a stored statement file")
}

/// The id and SHA-256 of every stored file, for `recon check --deep`.
pub fn keys(conn: &Connection) -> Result<Vec<(i64, [u8; 32])>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT id, sha256 FROM stored_files ORDER BY id")
        .doing("listing stored statement files")?;
    stmt.query_map([], |row| {
        let sha: Vec<u8> = row.get(1)?;
        Ok((row.get(0)?, sha.try_into().unwrap_or([0; 32])))
    })
    .and_then(|rows| rows.collect())
    .doing("listing stored statement files")
}

/// Compresses everything `source` gives into `sink`; returns the SHA-256 and size of what was
/// read, so that the caller can tell it stored the bytes it meant to.
pub fn compress(source: impl Read, sink: impl Write) -> io::Result<([u8; 32], u64)> {
    let mut encoder = zstd::Encoder::new(sink, ZSTD_LEVEL)?;
    // zstd's own checksum of the frame: a damaged blob fails to decompress, not just to hash.
    encoder.include_checksum(true)?;
    let mut hashing = Hashing::new(source);
    let size = io::copy(&mut hashing, &mut encoder)?;
    encoder.finish()?.flush()?;
    Ok((hashing.finish(), size))
}

/// Why a stored file's bytes could not be given back.
#[derive(Debug, thiserror::Error)]
pub enum Unpacking {
    /// The stored bytes are not a whole zstd frame, or fail its checksum.
    #[error("the stored bytes do not decompress: {0}")]
    Damaged(io::Error),
    /// Writing the original bytes out failed.
    #[error(transparent)]
    Writing(io::Error),
}

/// Decompresses a stored file's bytes into `sink`; returns the SHA-256 and size of what was
/// written.
pub fn decompress(
    compressed: impl Read,
    mut sink: impl Write,
) -> Result<([u8; 32], u64), Unpacking> {
    let decoder = zstd::Decoder::new(compressed).map_err(Unpacking::Damaged)?;
    let mut hashing = Hashing::new(decoder);
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0;
    loop {
        let n = match hashing.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Unpacking::Damaged(e)),
        };
        sink.write_all(&buf[..n]).map_err(Unpacking::Writing)?;
        size += n as u64;
    }
    sink.flush().map_err(Unpacking::Writing)?;
    Ok((hashing.finish(), size))
}

/// Feeds every byte read through SHA-256.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
        }
    }

    fn finish(self) -> [u8; 32] {
        self.hasher.finalize().into()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_bytes_decompress_to_the_original_with_its_hash() {
        let original = b"<Document>".repeat(10_000);
        let mut compressed = Vec::new();
        let (sha, size) = compress(&original[..], &mut compressed).unwrap();
        assert_eq!(size, original.len() as u64);
        assert!(compressed.len() < original.len() / 10);
        let mut back = Vec::new();
        let (sha_back, size_back) = decompress(&compressed[..], &mut back).unwrap();
        assert_eq!(back, original);
        assert_eq!((sha_back, size_back), (sha, size));
        assert_eq!(sha, <[u8; 32]>::from(Sha256::digest(&original)));
    }

    #[test]
    fn a_damaged_frame_fails_to_decompress() {
        let original = b"<Document>".repeat(1000);
        let mut compressed = Vec::new();
        compress(&original[..], &mut compressed).unwrap();
        let middle = compressed.len() / 2;
        compressed[middle] ^= 0xFF;
        let mut back = Vec::new();
        let outcome = decompress(&compressed[..], &mut back);
        assert!(outcome.is_err() || back != original);
    }
}
