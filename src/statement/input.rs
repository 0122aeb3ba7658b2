//! Opening an input file safely: size limits, format detection, hashing, error positions.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::camt::CamtReader;
use super::csv::CsvReader;
use super::detect::{self, Format};
use super::identity;
use super::mt940::Mt940Reader;
use super::profile::{Profile, ProfileSet};
use super::reader::{FormatRead, Place, ReadError, StatementReader};
use super::{StatementFile, Transaction};

/// Limits that protect a run from hostile or broken files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest input file accepted, in bytes.
    pub max_file_bytes: u64,
    /// Most transactions accepted from one file.
    pub max_transactions: usize,
    /// Longest text of one element, and longest stretch between two markup characters, in bytes.
    pub max_text_bytes: usize,
    /// Deepest element nesting accepted.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 4 << 30,
            max_transactions: 10_000_000,
            max_text_bytes: 1 << 20,
            max_depth: 64,
        }
    }
}

/// How to read inputs: limits, the CSV profiles known, and choices from the command line.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    pub limits: Limits,
    pub profiles: ProfileSet,
    /// Read every CSV with this profile instead of detecting one.
    pub profile: Option<Profile>,
    /// List bad CSV rows and read the good ones, instead of rejecting the file.
    pub skip_bad_rows: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            limits: Limits::default(),
            profiles: ProfileSet::built_in(),
            profile: None,
            skip_bad_rows: false,
        }
    }
}

/// Why an input file was rejected.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct InputError {
    pub path: PathBuf,
    pub kind: InputErrorKind,
}

/// What was wrong with an input file.
#[derive(Debug, thiserror::Error)]
pub enum InputErrorKind {
    #[error("the file is empty")]
    Empty,
    #[error("the file has {size} bytes, more than the limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("not a statement format recon reads: {0}")]
    NotRecognised(String),
    /// The file could not be read, or its format's reader refused it.
    #[error(transparent)]
    Read(#[from] ReadError),
}

impl From<io::Error> for InputErrorKind {
    fn from(error: io::Error) -> Self {
        InputErrorKind::Read(error.into())
    }
}

/// The family of a file's format ([`detect::family`]), from its head, or `None` when it is
/// not a statement recon reads (its reading will say why).
pub fn detect_family(path: &Path, options: &ReadOptions) -> Option<String> {
    let head = read_head(path, &options.limits).ok()?;
    detect::detect(&head, &options.profiles, options.profile.as_ref())
        .ok()
        .map(|format| format.family())
}

/// Reads one statement file whole; any problem rejects the whole file (bad CSV rows only
/// when `skip_bad_rows` is off).
pub fn read_path(path: &Path, options: &ReadOptions) -> Result<StatementFile, InputError> {
    let mut transactions = Vec::new();
    let mut file = read_path_in_batches(path, options, &mut |batch| {
        transactions.extend(batch);
        true
    })?;
    file.transactions = transactions;
    Ok(file)
}

/// Reads one statement file as [`read_path`] does, handing its transactions (identities set)
/// to `sink` in file order as they are read, [`BATCH`](super::BATCH) at a time; the returned
/// file holds none of them. An error can still reject the file after some were handed over.
/// `sink` returns false to stop the reading (which then fails).
pub fn read_path_in_batches(
    path: &Path,
    options: &ReadOptions,
    sink: &mut dyn FnMut(Vec<Transaction>) -> bool,
) -> Result<StatementFile, InputError> {
    let fail = |kind: InputErrorKind| InputError {
        path: path.to_path_buf(),
        kind,
    };
    let head = read_head(path, &options.limits).map_err(fail)?;
    let format = detect::detect(&head, &options.profiles, options.profile.as_ref())
        .map_err(|message| fail(InputErrorKind::NotRecognised(message)))?;
    let file = File::open(path).map_err(|e| fail(e.into()))?;
    let mut identities = identity::Assigner::default();
    let mut sink = |mut batch: Vec<Transaction>| {
        identities.assign(&mut batch);
        sink(batch)
    };
    let (read, sha256) =
        read_format(format, file, options, &mut sink).map_err(|e| fail(locate(path, e).into()))?;
    Ok(StatementFile {
        format: read.format,
        statements: read.statements,
        transactions: Vec::new(),
        sha256,
        bad_rows: read.bad_rows,
    })
}

/// Reads `file` with the reader for its format, hashing it in the same pass; returns what the
/// reader found and the file's SHA-256.
fn read_format(
    format: Format,
    file: File,
    options: &ReadOptions,
    sink: &mut dyn FnMut(Vec<Transaction>) -> bool,
) -> Result<(FormatRead, String), ReadError> {
    let limits = &options.limits;
    match format {
        // The XML parser buffers a text or a tag whole: bound it before the parser sees it.
        Format::Camt { encoding } => read_hashed(
            LimitedReader::new(file, limits.max_text_bytes),
            CamtReader { encoding },
            limits,
            sink,
        ),
        Format::Mt940 => read_hashed(file, Mt940Reader, limits, sink),
        Format::Csv(profile) => read_hashed(
            file,
            CsvReader {
                profile,
                skip_bad_rows: options.skip_bad_rows,
            },
            limits,
            sink,
        ),
    }
}

/// Reads `source` with `reader`, and hashes every byte of it, read by the reader or not.
fn read_hashed(
    source: impl Read,
    reader: impl StatementReader,
    limits: &Limits,
    sink: &mut dyn FnMut(Vec<Transaction>) -> bool,
) -> Result<(FormatRead, String), ReadError> {
    let mut hashing = HashingReader::new(source);
    let read = reader.read(
        BufReader::with_capacity(1 << 16, &mut hashing),
        limits,
        sink,
    )?;
    // A reader stops at the end of its document; hash whatever follows it too.
    io::copy(&mut hashing, &mut io::sink())?;
    Ok((read, hashing.finish()))
}

/// The first 64 KiB of a file, for detection, once the file is known to be neither empty nor
/// too large.
fn read_head(path: &Path, limits: &Limits) -> Result<Vec<u8>, InputErrorKind> {
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    if size == 0 {
        return Err(InputErrorKind::Empty);
    }
    if size > limits.max_file_bytes {
        return Err(InputErrorKind::TooLarge {
            size,
            limit: limits.max_file_bytes,
        });
    }
    let mut head = vec![0u8; 1 << 16];
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    head.truncate(filled);
    Ok(head)
}

/// SHA-256 of a file, hex; used for rejected files, whose reading stopped early.
pub fn hash_file(path: &Path) -> io::Result<String> {
    let mut hashing = HashingReader::new(File::open(path)?);
    io::copy(&mut hashing, &mut io::sink())?;
    Ok(hashing.finish())
}

/// Turns a parser's byte offset into the line and column a person can open the file at.
fn locate(path: &Path, error: ReadError) -> ReadError {
    match error {
        ReadError::At {
            place: Place::Byte(offset),
            element,
            message,
        } => {
            let (line, column) = line_and_column(path, offset).unwrap_or((0, 0));
            ReadError::At {
                place: Place::LineColumn(line, column),
                element,
                message,
            }
        }
        other => other,
    }
}

fn line_and_column(path: &Path, offset: u64) -> io::Result<(u64, u64)> {
    let mut reader = BufReader::new(File::open(path)?.take(offset));
    let mut buf = [0u8; 1 << 14];
    let (mut line, mut column) = (1u64, 1u64);
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok((line, column));
        }
        for &b in &buf[..n] {
            if b == b'\n' {
                line += 1;
                column = 1;
            } else if b & 0xC0 != 0x80 {
                column += 1;
            }
        }
    }
}

/// Feeds every byte read through SHA-256, so a file is hashed in the same pass that parses it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
        }
    }

    fn finish(self) -> String {
        hex::encode(self.hasher.finalize())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Refuses input with a longer stretch than `max_run` bytes between two markup characters
/// (`<` or `>`): the XML parser buffers such a stretch whole, so this bounds its memory.
struct LimitedReader<R> {
    inner: R,
    max_run: usize,
    run: usize,
}

impl<R: Read> LimitedReader<R> {
    fn new(inner: R, max_run: usize) -> Self {
        LimitedReader {
            inner,
            max_run,
            run: 0,
        }
    }
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let chunk = &buf[..n];
        self.run = match memchr::memrchr2(b'<', b'>', chunk) {
            Some(last) => n - last - 1,
            None => self.run + n,
        };
        if self.run > self.max_run {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "a text or tag is longer than the limit of {} bytes",
                    self.max_run
                ),
            ));
        }
        Ok(n)
    }
}
