//! Opening an input file safely: size limits, format detection, hashing, error positions.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use quick_xml::encoding::DecodingReader;
use sha2::{Digest, Sha256};

use super::detect::{self, Format};
use super::profile::{Profile, ProfileSet};
use super::{StatementFile, Transaction, camt, csv, identity, mt940};

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
    #[error("cannot read the file: {0}")]
    Io(#[from] io::Error),
    #[error("the file is empty")]
    Empty,
    #[error("the file has {size} bytes, more than the limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("not a statement format recon reads: {0}")]
    NotRecognised(String),
    #[error("line {line}: {message}")]
    Row { line: u64, message: String },
    #[error("line {line}, column {column}{}: {message}", element.as_ref().map(|e| format!(", in {e}")).unwrap_or_default())]
    Parse {
        line: u64,
        column: u64,
        element: Option<String>,
        message: String,
    },
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

/// How many transactions [`read_path_in_batches`] hands over at a time.
pub const BATCH: usize = 4096;

/// Reads one statement file as [`read_path`] does, handing its transactions (identities set)
/// to `sink` in file order as they are read, [`BATCH`] at a time; the returned file holds none
/// of them. An error can still reject the file after some were handed over. `sink` returns
/// false to stop the reading (which then fails).
pub fn read_path_in_batches(
    path: &Path,
    options: &ReadOptions,
    sink: &mut dyn FnMut(Vec<Transaction>) -> bool,
) -> Result<StatementFile, InputError> {
    let limits = &options.limits;
    let fail = |kind: InputErrorKind| InputError {
        path: path.to_path_buf(),
        kind,
    };
    let file = File::open(path).map_err(|e| fail(e.into()))?;
    let size = file.metadata().map_err(|e| fail(e.into()))?.len();
    if size == 0 {
        return Err(fail(InputErrorKind::Empty));
    }
    if size > limits.max_file_bytes {
        return Err(fail(InputErrorKind::TooLarge {
            size,
            limit: limits.max_file_bytes,
        }));
    }
    let mut head = vec![0u8; 1 << 16];
    let head_len = read_head(&file, &mut head).map_err(|e| fail(e.into()))?;
    let head = &head[..head_len];
    let format = detect::detect(head, &options.profiles, options.profile.as_ref())
        .map_err(|message| fail(InputErrorKind::NotRecognised(message)))?;
    let file = File::open(path).map_err(|e| fail(e.into()))?;
    let encoding = match format {
        Format::Camt { encoding } => encoding,
        Format::Mt940 | Format::Csv(_) => return read_lines(path, file, format, options, sink),
    };
    let mut hashing = HashingReader::new(LimitedReader::new(file, limits.max_text_bytes));
    let buffered = BufReader::with_capacity(1 << 16, &mut hashing);
    let mut identities = identity::Assigner::default();
    let mut sink = |mut batch: Vec<Transaction>| {
        identities.assign(&mut batch);
        sink(batch)
    };
    let mut statement = match encoding {
        // Only documents that declare another encoding pay for transcoding.
        Some(encoding) if encoding != encoding_rs::UTF_8 => camt::read_in_batches(
            DecodingReader::new(buffered),
            limits,
            |source, declared| {
                source.set_encoding(declared);
                Ok(())
            },
            BATCH,
            &mut sink,
        ),
        _ => camt::read_in_batches(
            buffered,
            limits,
            |_, declared| {
                if declared == encoding_rs::UTF_8 {
                    Ok(())
                } else {
                    Err(format!(
                        "the encoding declaration ({}) must come first in the file",
                        declared.name()
                    ))
                }
            },
            BATCH,
            &mut sink,
        ),
    }
    .map_err(|e| fail(position_error(path, e)))?;
    // The parser stops at the end of the document; hash whatever follows it too.
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| fail(e.into()))?;
    statement.sha256 = hashing.finish();
    Ok(statement)
}

/// Reads a line-based input: MT940, or CSV with its profile.
fn read_lines(
    path: &Path,
    file: File,
    format: Format,
    options: &ReadOptions,
    sink: &mut dyn FnMut(Vec<Transaction>) -> bool,
) -> Result<StatementFile, InputError> {
    let fail = |kind: InputErrorKind| InputError {
        path: path.to_path_buf(),
        kind,
    };
    let row = |line: u64, message: String| fail(InputErrorKind::Row { line, message });
    let mut hashing = HashingReader::new(file);
    let mut statement = match format {
        Format::Csv(profile) => {
            let read = csv::read(
                &mut hashing,
                profile,
                &options.limits,
                options.skip_bad_rows,
            )
            .map_err(|e| row(e.line, e.message))?;
            StatementFile {
                format: format!("csv ({})", profile.name),
                statements: Vec::new(),
                transactions: read.transactions,
                sha256: String::new(),
                bad_rows: read.bad_rows,
            }
        }
        // MT940 (camt is read by the caller).
        _ => {
            let read = mt940::read(BufReader::new(&mut hashing), &options.limits)
                .map_err(|e| row(e.line, e.message))?;
            StatementFile {
                format: "mt940".to_string(),
                statements: read.statements,
                transactions: read.transactions,
                sha256: String::new(),
                bad_rows: Vec::new(),
            }
        }
    };
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| fail(e.into()))?;
    statement.sha256 = hashing.finish();
    // A line-based file is read whole (bank CSV exports are small beside camt files); it is
    // handed over in batches all the same.
    let mut transactions = std::mem::take(&mut statement.transactions);
    identity::assign(&mut transactions);
    let mut transactions = transactions.into_iter();
    loop {
        let batch: Vec<Transaction> = transactions.by_ref().take(BATCH).collect();
        if batch.is_empty() {
            return Ok(statement);
        }
        if !sink(batch) {
            return Err(fail(io::Error::from(io::ErrorKind::Interrupted).into()));
        }
    }
}

fn read_head(mut file: &File, head: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// SHA-256 of a file, hex; used for rejected files, whose reading stopped early.
pub fn hash_file(path: &Path) -> io::Result<String> {
    let mut hashing = HashingReader::new(File::open(path)?);
    io::copy(&mut hashing, &mut io::sink())?;
    Ok(hashing.finish())
}

/// Turns a parser's byte offset into the line and column a person can open the file at.
fn position_error(path: &Path, error: camt::CamtError) -> InputErrorKind {
    match error {
        camt::CamtError::Io(e) => InputErrorKind::Io(e),
        camt::CamtError::At {
            offset,
            element,
            message,
        } => {
            let (line, column) = line_and_column(path, offset).unwrap_or((0, 0));
            InputErrorKind::Parse {
                line,
                column,
                element,
                message,
            }
        }
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
