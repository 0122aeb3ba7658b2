//! Deciding: one outcome per transaction, in file order, by the pure matcher, with what the
//! store knew when the run began; each transaction becomes its row at once, written aside (an
//! exception's with its decision, for its suggestion). A file rejected after some of its
//! transactions were decided is taken out again whole.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use super::read::{FileAt, FileEnd, Read};
use super::record::Ledger;
use crate::controls::{Chains, Control};
use crate::error::Error;
use crate::ids::RunId;
use crate::matching::{Category, Decision, Known, Matcher};
use crate::ops::statements::{self, Evidence};
use crate::reference::Candidate;
use crate::report::InputSummary;
use crate::report::summary::ReadBefore;
use crate::report::summary::Totals;
use crate::row::Row;
use crate::row::spill::{Mark, Record, Spill, Spilled, Unmatched};
use crate::statement::{self, InputError, InputErrorKind, StatementFile, Transaction};
use crate::store::{journal, runs, topups};

/// The decisions of a run so far, made in file order.
pub(super) struct Deciding {
    matcher: Matcher,
    totals: Totals,
    inputs: Vec<InputSummary>,
    rows: DecidedRows,
    // Ledger ids are handed out in document order before any row is written, so that the
    // settlements can point at their transactions and be applied in table order (the
    // foreign keys are checked at commit).
    ledger: Ledger,
    // The matched top-ups in document order (as the matched rows).
    settlements: Vec<topups::ToSettle>,
    controls: Vec<Control>,
    chains: Chains,
    /// Where the file being read began; `None` before its first batch.
    file_start: Option<FileStart>,
    /// Transactions the reader handed over for the files read to their end.
    handed: usize,
}

/// A file's place in what was decided when it began: a file rejected after some of its
/// transactions were decided is taken out again to here.
struct FileStart {
    /// The file's path as given, shared by its rows.
    name: Arc<str>,
    rows: RowsMark,
    ledger: usize,
    settlements: usize,
    totals: Totals,
    progress: u64,
    /// Earlier runs read files of another family of formats than this one's: its
    /// transactions are looked up among theirs, for copies.
    originals_stored: bool,
}

/// Everything a run decided, for the settling, the ledger and the report: the exceptions are
/// first [`Unmatched`] (a row and its decision), then, with their suggestions, rows.
pub(super) struct Decided<U = Row> {
    pub rows: RunRows<U>,
    pub ledger: Ledger,
    pub settlements: Vec<topups::ToSettle>,
    pub inputs: Vec<InputSummary>,
    pub totals: Totals,
    pub controls: Vec<Control>,
    /// Transactions the reader handed over for the files read to their end.
    pub handed: usize,
}

impl Deciding {
    /// `mixed`: the run reads more than one family of formats.
    pub fn new(first_ledger_id: i64, dir: &Path, mixed: bool) -> Result<Self, Error> {
        Ok(Deciding {
            matcher: match mixed {
                true => Matcher::across_formats(),
                false => Matcher::new(),
            },
            totals: Totals::default(),
            inputs: Vec::new(),
            rows: DecidedRows::new(dir)?,
            ledger: Ledger::new(first_ledger_id),
            settlements: Vec::new(),
            controls: Vec::new(),
            chains: Chains::default(),
            file_start: None,
            handed: 0,
        })
    }

    /// Takes the next thing the reading handed over.
    pub fn take(
        &mut self,
        tx: &rusqlite::Transaction,
        run_id: RunId,
        read: Read,
        progress: &indicatif::ProgressBar,
    ) -> Result<(), Error> {
        if crate::ops::interrupt::requested() {
            return Err(Error::Interrupted);
        }
        match read {
            Read::Batch(at, batch) => self.batch(tx, at, batch, progress),
            Read::Done(FileEnd {
                position,
                path,
                result: Ok(file),
                handed,
            }) => {
                self.handed += handed;
                self.file_read(tx, run_id, position, path, file)
            }
            Read::Done(FileEnd {
                position,
                path,
                result: Err(error),
                ..
            }) => self.file_rejected(tx, run_id, position, path, error, progress),
        }
    }

    /// The top-ups this run settles.
    pub fn settling(&self) -> HashSet<crate::ids::TopUpId> {
        self.settlements.iter().map(|s| s.id).collect()
    }

    /// Decides the next transactions of the file being read and makes their rows.
    fn batch(
        &mut self,
        tx: &rusqlite::Transaction,
        at: FileAt,
        batch: Vec<(Transaction, Vec<Candidate>)>,
        progress: &indicatif::ProgressBar,
    ) -> Result<(), Error> {
        if self.file_start.is_none() {
            self.start_file(tx, at, progress)?;
        }
        let start = self.file_start.as_ref().expect("started above");
        let file_name = start.name.clone();
        let family = at.family.filter(|_| start.originals_stored);
        // Nothing is written before the settlements, so every batch sees the store as the run
        // found it.
        let known = lookup(tx, &batch, family)?;
        for (transaction, candidates) in batch {
            let mut decision = self.matcher.decide(&transaction, &candidates, &known);
            let ledger_id = self.ledger.next_id();
            let row = Row::new(transaction, &decision, &file_name);
            self.totals.add(&row);
            let category = row.category();
            if category == Category::Matched {
                let topup = decision
                    .topup
                    .take()
                    .ok_or_else(|| Error::Internal("a match without a top-up".to_string()))?;
                self.settlements
                    .push(topups::ToSettle::new(&topup, ledger_id));
            }
            self.rows.push(row, decision)?;
            self.ledger.push(category);
            progress.inc(1);
        }
        Ok(())
    }

    /// Marks where the file that `at` names begins, and tells the matcher.
    fn start_file(
        &mut self,
        tx: &rusqlite::Transaction,
        at: FileAt,
        progress: &indicatif::ProgressBar,
    ) -> Result<(), Error> {
        let name: Arc<str> = Arc::from(at.path.display().to_string());
        let originals_stored = match at.family {
            Some(family) => runs::read_other_families(tx, family)?,
            None => false,
        };
        self.matcher.start_file(name.clone(), at.family);
        self.file_start = Some(FileStart {
            name,
            rows: self.rows.mark(),
            ledger: self.ledger.len(),
            settlements: self.settlements.len(),
            totals: self.totals.clone(),
            progress: progress.position(),
            originals_stored,
        });
        Ok(())
    }

    /// Forgets what was decided of the file being read, if anything.
    fn roll_back_file(&mut self, progress: &indicatif::ProgressBar) -> Result<(), Error> {
        let Some(start) = self.file_start.take() else {
            return Ok(());
        };
        let matcher = &mut self.matcher;
        matcher.forget_file();
        self.rows.cut_back(start.rows, &mut |row| {
            matcher.forget(row.identity, row.outcome, row.topup_id);
        })?;
        self.ledger.truncate(start.ledger);
        self.settlements.truncate(start.settlements);
        self.totals = start.totals;
        progress.set_position(start.progress);
        Ok(())
    }

    /// A file read to its end: recorded with its statements and their controls, and its rows
    /// pointed at it.
    fn file_read(
        &mut self,
        tx: &rusqlite::Transaction,
        run_id: RunId,
        position: usize,
        path: &Path,
        file: StatementFile,
    ) -> Result<(), Error> {
        let file_name = path.display().to_string();
        let start = self.file_start.take();
        let decided = self.ledger.len();
        let first_entry = start.as_ref().map_or(decided, |s| s.ledger);
        let transactions = decided - first_entry;
        let statement_ids: Vec<String> = file
            .statements
            .iter()
            .filter_map(|s| s.id.clone())
            .collect();
        let read_before = read_before(tx, &file)?;
        let record = runs::FileRecord {
            position,
            path: &file_name,
            sha256: &file.sha256,
            format: Some(&file.format),
            statement_ids: &statement_ids,
            transactions,
            error: None,
        };
        let file_id = runs::record_file(tx, run_id, &record)?;
        let evidence = Evidence {
            path,
            sha256: &file.sha256,
            format: Some(&file.format),
            statement_ids: &statement_ids,
        };
        statements::keep(tx, run_id, &evidence)?;
        self.ledger.file_begins(first_entry, file_id);
        self.totals.read(transactions);
        tracing::info!(
            file = file_name.as_str(), format = %file.format, transactions, "read");
        for info in &file.statements {
            self.controls
                .extend(crate::controls::check_statement(&file_name, info));
            if let Some(account) = &info.account {
                let previous = match self.chains.get(account) {
                    Some(point) => Some(point.clone()),
                    None => runs::last_chain_point(tx, account)?,
                };
                let chained = self.chains.check(&file_name, account, info, previous);
                self.controls.extend(chained);
            }
            runs::record_statement(tx, run_id, file_id, info)?;
        }
        self.inputs.push(InputSummary {
            path: file_name,
            sha256: Some(file.sha256),
            format: Some(file.format),
            statements: file.statements,
            transactions,
            rejected: false,
            error: None,
            bad_rows: file.bad_rows,
            read_before,
        });
        Ok(())
    }

    /// A rejected file: what was decided of it is forgotten, and it is recorded with its error.
    fn file_rejected(
        &mut self,
        tx: &rusqlite::Transaction,
        run_id: RunId,
        position: usize,
        path: &Path,
        error: InputError,
        progress: &indicatif::ProgressBar,
    ) -> Result<(), Error> {
        self.roll_back_file(progress)?;
        let file_name = path.display().to_string();
        let sha256 = statement::hash_file(path).unwrap_or_default();
        let message = error.to_string();
        tracing::warn!(file = file_name.as_str(), "rejected: {message}");
        let record = runs::FileRecord {
            position,
            path: &file_name,
            sha256: &sha256,
            format: None,
            statement_ids: &[],
            transactions: 0,
            error: Some(&message),
        };
        runs::record_file(tx, run_id, &record)?;
        // What the bank sent is kept even when it cannot be read; a file over the size limit
        // was refused unread, and is not.
        if !matches!(error.kind, InputErrorKind::TooLarge { .. }) {
            let evidence = Evidence {
                path,
                sha256: &sha256,
                format: None,
                statement_ids: &[],
            };
            statements::keep(tx, run_id, &evidence)?;
        }
        self.inputs.push(InputSummary {
            path: file_name,
            sha256: Some(sha256).filter(|s| !s.is_empty()),
            format: None,
            statements: Vec::new(),
            transactions: 0,
            rejected: true,
            error: Some(message),
            bad_rows: Vec::new(),
            read_before: None,
        });
        Ok(())
    }

    /// What was decided; the matcher's memory is not needed to settle and goes first.
    pub fn finish(self) -> Result<Decided<Unmatched>, Error> {
        let Deciding {
            matcher,
            totals,
            inputs,
            rows,
            ledger,
            settlements,
            controls,
            chains,
            file_start: _,
            handed,
        } = self;
        drop((matcher, chains));
        Ok(Decided {
            rows: rows.finish()?,
            ledger,
            settlements,
            inputs,
            totals,
            controls,
            handed,
        })
    }
}

/// The run that read this file before (the same SHA-256), or else one of its statements (the
/// same statement id and account); asked before the file is recorded, so never itself.
fn read_before(
    tx: &rusqlite::Transaction,
    file: &StatementFile,
) -> Result<Option<ReadBefore>, Error> {
    let statements: Vec<(&str, &str)> = file
        .statements
        .iter()
        .filter_map(|s| Some((s.id.as_deref()?, s.account.as_deref()?)))
        .collect();
    let Some(first) = runs::first_read(tx, &file.sha256, &statements)? else {
        return Ok(None);
    };
    let (by, statement_id, account) = match first.statement {
        Some((id, account)) => (ReadBefore::BY_STATEMENT, Some(id), Some(account)),
        None => (ReadBefore::BY_SHA256, None, None),
    };
    Ok(Some(ReadBefore {
        run_id: first.run_id,
        started_at: first.started_at,
        by: by.to_string(),
        path: first.path,
        statement_id,
        account,
    }))
}

/// What the store knows of these transactions' candidate references and identities, and with
/// `family` (the file's), the transactions of earlier runs that they may repeat in another.
fn lookup(
    conn: &rusqlite::Connection,
    slice: &[(Transaction, Vec<Candidate>)],
    family: Option<&str>,
) -> Result<Known, Error> {
    let mut asked = HashSet::new();
    let references: Vec<_> = slice
        .iter()
        .flat_map(|(_, candidates)| candidates)
        .map(|c| c.reference)
        .filter(|r| asked.insert(*r))
        .collect();
    let mut known = Known {
        topups: topups::by_references(conn, &references)?,
        ..Known::default()
    };
    known.processed = journal::processed(
        conn,
        slice.iter().map(|(t, _)| (&t.identity, t.booking_date)),
    )?;
    if let Some(family) = family {
        let keys = slice.iter().filter_map(|(t, _)| t.cross_key);
        known.originals = journal::originals(conn, keys, family)?;
    }
    Ok(known)
}

/// The rows of a run as they are decided, written aside as they come: a night can be a million
/// transactions of any outcome, and its rows are only read again to be recorded and reported
/// (the exceptions' first to be given their suggestions).
struct DecidedRows {
    matched: Spill,
    unmatched: Spill<Unmatched>,
    ignored: Spill,
}

/// How far [`DecidedRows`] had got.
#[derive(Clone, Copy)]
struct RowsMark {
    matched: Mark,
    unmatched: Mark,
    ignored: Mark,
}

/// The rows of a run, all decided; the exceptions as `U`.
pub(super) struct RunRows<U = Row> {
    pub matched: Spilled,
    pub unmatched: Spilled<U>,
    pub ignored: Spilled,
}

/// A failure of the temporary file that rows are written aside to (in the report directory).
pub(super) fn aside_failed(source: std::io::Error) -> Error {
    Error::Io {
        doing: "writing the run's rows aside to a temporary file in the report directory, or \
                reading them back"
            .to_string(),
        source,
    }
}

impl DecidedRows {
    /// Rows written aside in `dir`.
    fn new(dir: &Path) -> Result<Self, Error> {
        Ok(DecidedRows {
            matched: Spill::new_in(dir).map_err(aside_failed)?,
            unmatched: Spill::new_in(dir).map_err(aside_failed)?,
            ignored: Spill::new_in(dir).map_err(aside_failed)?,
        })
    }

    fn mark(&self) -> RowsMark {
        RowsMark {
            matched: self.matched.mark(),
            unmatched: self.unmatched.mark(),
            ignored: self.ignored.mark(),
        }
    }

    /// Adds the next row; an exception's with its decision.
    fn push(&mut self, row: Row, decision: Decision) -> Result<(), Error> {
        let spill = match row.category() {
            Category::Unmatched => {
                let unmatched = Unmatched { row, decision };
                return self.unmatched.push(&unmatched).map_err(aside_failed);
            }
            Category::Matched => &mut self.matched,
            Category::Ignored => &mut self.ignored,
        };
        spill.push(&row).map_err(aside_failed)
    }

    /// Takes out every row added since `mark`, showing each to `each` first (in no particular
    /// order).
    fn cut_back(&mut self, mark: RowsMark, each: &mut dyn FnMut(&Row)) -> Result<(), Error> {
        cut(&mut self.unmatched, mark.unmatched, &mut |u| each(&u.row))?;
        cut(&mut self.matched, mark.matched, each)?;
        cut(&mut self.ignored, mark.ignored, each)
    }

    fn finish(self) -> Result<RunRows<Unmatched>, Error> {
        Ok(RunRows {
            matched: self.matched.finish().map_err(aside_failed)?,
            unmatched: self.unmatched.finish().map_err(aside_failed)?,
            ignored: self.ignored.finish().map_err(aside_failed)?,
        })
    }
}

/// Takes out of `spill` every record written since `mark`, showing each to `each` first.
fn cut<T: Record>(spill: &mut Spill<T>, mark: Mark, each: &mut dyn FnMut(&T)) -> Result<(), Error> {
    let mut cut = || -> std::io::Result<()> {
        for record in spill.since(mark)? {
            each(&record?);
        }
        spill.truncate(mark)
    };
    cut().map_err(aside_failed)
}
