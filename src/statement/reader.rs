//! What every format reader shares: the one signature ([`StatementReader`]), the one error type
//! ([`ReadError`]), and the batches it hands its transactions over in.

use std::fmt;
use std::io::{self, BufRead};

use super::csv::BadRow;
use super::{Limits, StatementInfo, Transaction};

/// How many transactions a reader hands over at a time.
pub const BATCH: usize = 4096;

/// A reader of one input format, set up with what detection found (a camt document's declared
/// encoding, a CSV file's profile).
pub trait StatementReader {
    /// Reads one file from `input`, handing its transactions to `sink` in file order, [`BATCH`]
    /// at a time, as they are read; the file can still turn out malformed after some were
    /// handed over. `sink` returns false to stop the reading, which then fails with an
    /// `Interrupted` I/O error.
    fn read<R: BufRead>(
        &self,
        input: R,
        limits: &Limits,
        sink: &mut dyn FnMut(Vec<Transaction>) -> bool,
    ) -> Result<FormatRead, ReadError>;

    /// Reads the whole file into memory at once: for tests, benchmarks and fuzzing, where files
    /// are small; a run reads in batches.
    fn read_all<R: BufRead>(
        &self,
        input: R,
        limits: &Limits,
    ) -> Result<(FormatRead, Vec<Transaction>), ReadError> {
        let mut transactions = Vec::new();
        let read = self.read(input, limits, &mut |batch| {
            transactions.extend(batch);
            true
        })?;
        Ok((read, transactions))
    }
}

/// What a reader returns besides the transactions it handed over.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FormatRead {
    /// The format as read, e.g. `camt.053.001.02`, `mt940`, `csv (recon)`.
    pub format: String,
    /// The statements (camt `Stmt`/`Rpt`/`Ntfctn`, MT940 messages) with their balances and
    /// totals; none for CSV.
    pub statements: Vec<StatementInfo>,
    /// CSV rows that could not be read and were skipped (only with `--skip-bad-rows`).
    pub bad_rows: Vec<BadRow>,
}

/// Why a reader could not read a file: the bytes could not be had, or something at a place in
/// them is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The bytes could not be had (or the sink stopped the reading: `Interrupted`).
    #[error("cannot read the file: {0}")]
    Io(#[from] io::Error),
    /// The file's content is wrong at `place`.
    #[error("{place}{}: {message}", element.as_ref().map(|e| format!(", in {e}")).unwrap_or_default())]
    At {
        place: Place,
        /// The path of open elements (`Document/BkToCstmrStmt/Stmt/Ntry[3]/Amt`), for XML.
        element: Option<String>,
        message: String,
    },
}

impl ReadError {
    /// A problem on a line of a line-based file.
    pub fn on_line(line: u64, message: impl Into<String>) -> ReadError {
        ReadError::At {
            place: Place::Line(line),
            element: None,
            message: message.into(),
        }
    }
}

/// Where in a file a problem is, as precisely as its format allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// A 1-based line: a CSV row, an MT940 field.
    Line(u64),
    /// A 1-based line and column.
    LineColumn(u64, u64),
    /// A byte offset, as the XML parser counts: it does not count lines, so whoever has the
    /// file at hand turns this into a [`Place::LineColumn`].
    Byte(u64),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Line(line) => write!(f, "line {line}"),
            Place::LineColumn(line, column) => write!(f, "line {line}, column {column}"),
            Place::Byte(offset) => write!(f, "byte {offset}"),
        }
    }
}

/// The caller's sink, fed [`BATCH`] transactions at a time, and the count of transactions read
/// against the limit.
pub(super) struct Batches<'s> {
    sink: &'s mut dyn FnMut(Vec<Transaction>) -> bool,
    pending: Vec<Transaction>,
    read: usize,
    max: usize,
}

impl<'s> Batches<'s> {
    pub(super) fn new(sink: &'s mut dyn FnMut(Vec<Transaction>) -> bool, limits: &Limits) -> Self {
        Batches {
            sink,
            pending: Vec::new(),
            read: 0,
            max: limits.max_transactions,
        }
    }

    /// Takes the file's next transaction.
    pub(super) fn push(&mut self, tx: Transaction) {
        self.read += 1;
        self.pending.push(tx);
    }

    /// Refuses the file once it has given more transactions than the limit allows, counting
    /// `open` ones read but not yet pushed.
    pub(super) fn within_limit(&self, open: usize) -> Result<(), String> {
        if self.read + open > self.max {
            return Err(format!(
                "the file holds more than the limit of {} transactions",
                self.max
            ));
        }
        Ok(())
    }

    /// How many transactions the file has given so far.
    pub(super) fn read(&self) -> usize {
        self.read
    }

    /// Hands the pending transactions over once they make a batch.
    pub(super) fn hand_over_full(&mut self) -> Result<(), ReadError> {
        if self.pending.len() >= BATCH {
            // A file of more than one batch gets the next one's full size at once: grown from
            // empty, its transactions (some 500 bytes each) would be copied at every doubling.
            let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(BATCH));
            self.hand_over(batch)?;
        }
        Ok(())
    }

    /// Hands the rest over at the end of the file.
    pub(super) fn finish(mut self) -> Result<(), ReadError> {
        if !self.pending.is_empty() {
            let batch = std::mem::take(&mut self.pending);
            self.hand_over(batch)?;
        }
        Ok(())
    }

    fn hand_over(&mut self, batch: Vec<Transaction>) -> Result<(), ReadError> {
        if (self.sink)(batch) {
            Ok(())
        } else {
            Err(io::Error::from(io::ErrorKind::Interrupted).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_place_as_a_person_opens_the_file() {
        assert_eq!(
            ReadError::on_line(3, "bad amount").to_string(),
            "line 3: bad amount"
        );
        let at = ReadError::At {
            place: Place::LineColumn(7, 12),
            element: Some("Document/Ntry[2]/Amt".into()),
            message: "not an amount".into(),
        };
        assert_eq!(
            at.to_string(),
            "line 7, column 12, in Document/Ntry[2]/Amt: not an amount"
        );
    }

    #[test]
    fn transactions_go_over_a_batch_at_a_time_and_stop_at_the_limit() {
        let mut sizes = Vec::new();
        let mut sink = |batch: Vec<Transaction>| {
            sizes.push(batch.len());
            true
        };
        let limits = Limits {
            max_transactions: BATCH + 1,
            ..Limits::default()
        };
        let mut batches = Batches::new(&mut sink, &limits);
        for _ in 0..=BATCH {
            batches.push(Transaction::test_credit("1.00", "EUR", "x"));
            batches.within_limit(0).unwrap();
            batches.hand_over_full().unwrap();
        }
        let refused = batches.within_limit(1).unwrap_err();
        assert_eq!(
            refused,
            "the file holds more than the limit of 4097 transactions"
        );
        assert_eq!(batches.read(), BATCH + 1);
        batches.finish().unwrap();
        assert_eq!(sizes, vec![BATCH, 1]);
    }
}
