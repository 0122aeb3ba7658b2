//! Recording: every decided transaction goes into the journal under the id it was handed in
//! document order, with the file it came from.

use super::decide::{RunRows, aside_failed};
use crate::error::Error;
use crate::ids::RunId;
use crate::matching::Category;
use crate::store::journal;

/// Where each decided transaction goes in the ledger, in document order, in a byte each (a
/// night has up to a million): the rows of each category are in that same order, so the n-th
/// transaction of a category is its n-th row.
pub(super) struct Ledger {
    /// The ledger id of the first transaction; the others follow without gaps.
    first_id: i64,
    categories: Vec<Category>,
    /// Where each file recorded begins among the transactions, with its id in
    /// `statement_files`; the files follow each other without gaps too.
    files: Vec<(usize, i64)>,
}

impl Ledger {
    /// A ledger whose first transaction gets `first_id`.
    pub fn new(first_id: i64) -> Self {
        Ledger {
            first_id,
            categories: Vec::new(),
            files: Vec::new(),
        }
    }

    /// How many transactions were decided.
    pub fn len(&self) -> usize {
        self.categories.len()
    }

    /// The ledger id the next transaction gets.
    pub fn next_id(&self) -> i64 {
        self.first_id + self.categories.len() as i64
    }

    /// The next transaction's category.
    pub fn push(&mut self, category: Category) {
        self.categories.push(category);
    }

    /// Forgets the transactions from the `len`-th on (a file rejected halfway).
    pub fn truncate(&mut self, len: usize) {
        self.categories.truncate(len);
    }

    /// The file recorded as `file_id` holds the transactions from the `first`-th on.
    pub fn file_begins(&mut self, first: usize, file_id: i64) {
        self.files.push((first, file_id));
    }

    /// Records every decided transaction, in document order: its row is the next one of its
    /// category (the exceptions with their suggestions).
    pub fn record(
        &self,
        tx: &rusqlite::Transaction,
        run_id: RunId,
        rows: &RunRows,
    ) -> Result<(), Error> {
        let (mut matched, mut ignored) = (rows.matched.iter(), rows.ignored.iter());
        let mut unmatched = rows.unmatched.iter();
        let mut files = self.files.iter().peekable();
        let mut file_id = None;
        let mut journal = journal::Writer::new();
        for (i, category) in self.categories.iter().enumerate() {
            while let Some((_, id)) = files.next_if(|(start, _)| *start <= i) {
                file_id = Some(*id);
            }
            let missing = || Error::Internal("the ledger has more rows than were decided".into());
            let file_id = file_id.ok_or_else(missing)?;
            let id = self.first_id + i as i64;
            let spilled = match category {
                Category::Unmatched => unmatched.next(),
                Category::Matched => matched.next(),
                Category::Ignored => ignored.next(),
            };
            let row = spilled.ok_or_else(missing)?.map_err(aside_failed)?;
            journal.record(tx, file_id, id, &row)?;
            crate::store::exceptions::recorded(tx, run_id, id, &row)?;
        }
        journal.finish(tx)?;
        // Every row decided is recorded: a row left over is one the ledger would lose.
        let left_over =
            unmatched.next().is_some() || matched.next().is_some() || ignored.next().is_some();
        debug_assert!(!left_over, "rows decided but not recorded");
        if left_over {
            return Err(Error::Internal(
                "the run decided more rows than its ledger records; nothing was committed".into(),
            ));
        }
        Ok(())
    }
}
