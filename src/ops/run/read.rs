//! Reading: the statement files in the order given, a batch at a time, handed to the deciding
//! with each transaction's candidate references. With more than one thread the files are read
//! on a thread of their own beside the deciding; either way the decisions follow file order.

use std::path::{Path, PathBuf};

use super::decide::Deciding;
use super::{RunPlan, give_back_memory};
use crate::error::Error;
use crate::ids::RunId;
use crate::reference::{Candidate, find_candidates};
use crate::statement::{self, InputError, ReadOptions, StatementFile, Transaction};
use crate::store::runs;

/// What the reading hands to the deciding, in file order.
pub(super) enum Read<'p> {
    /// The next transactions of the file being read, with their candidate references.
    Batch(&'p Path, Vec<(Transaction, Vec<Candidate>)>),
    /// The file at this position was read to its end, or rejected.
    Done(FileEnd<'p>),
}

/// The end of one file's reading.
pub(super) struct FileEnd<'p> {
    pub position: usize,
    pub path: &'p Path,
    pub result: Result<StatementFile, InputError>,
    /// How many transactions the reader handed over for the file: counted here, apart from
    /// the deciding, so that conservation is checked against a count of its own.
    pub handed: usize,
}

/// Reads the files and decides every transaction in file order, a batch at a time as it is
/// read: the transactions are not kept, only their rows.
pub(super) fn read_and_decide(
    tx: &rusqlite::Transaction,
    run_id: RunId,
    plan: &RunPlan,
) -> Result<Deciding, Error> {
    let clock = std::time::Instant::now();
    let mut deciding = Deciding::new(runs::next_ledger_id(tx)?, &plan.report_dir)?;
    let mut take = |read| deciding.take(tx, run_id, read, &plan.progress);
    if rayon::current_num_threads() > 1 {
        read_beside(&plan.files, &plan.read, take)?;
    } else {
        let mut failed = None;
        read_in_order(&plan.files, &plan.read, &mut |read| {
            // Nothing more is taken after an error, not even the end of the file it stopped.
            failed.is_none() && take(read).map_err(|e| failed = Some(e)).is_ok()
        });
        if let Some(error) = failed {
            return Err(error);
        }
    }
    tracing::debug!(
        elapsed_ms = clock.elapsed().as_millis() as u64,
        "files read and their transactions decided"
    );
    // The reading's memory (freed into its thread's arena) goes back before the settling.
    give_back_memory();
    Ok(deciding)
}

/// The settlement references a transaction's remittance may name.
fn candidates(transaction: &Transaction) -> Vec<Candidate> {
    find_candidates(
        transaction
            .remittance
            .search_fields()
            .iter()
            .map(String::as_str),
    )
}

/// Reads `files` in order, handing `hand` each batch of a file (with candidate references,
/// found on the reading thread), then the file's end; stops when `hand` returns false.
fn read_in_order<'p>(
    files: &'p [PathBuf],
    options: &ReadOptions,
    hand: &mut dyn FnMut(Read<'p>) -> bool,
) {
    for (position, path) in files.iter().enumerate() {
        let mut handed = 0;
        let result = statement::read_path_in_batches(path, options, &mut |batch| {
            handed += batch.len();
            let batch = batch
                .into_iter()
                .map(|transaction| {
                    let candidates = candidates(&transaction);
                    (transaction, candidates)
                })
                .collect();
            hand(Read::Batch(path, batch))
        });
        let end = FileEnd {
            position,
            path,
            result,
            handed,
        };
        if !hand(Read::Done(end)) {
            return;
        }
    }
}

/// Reads `files` in order on a thread of its own and hands each batch to `decide` on this one.
/// At most two batches wait between them, so memory does not grow with the files. An error
/// from `decide` stops the reading.
fn read_beside<'p>(
    files: &'p [PathBuf],
    options: &ReadOptions,
    mut decide: impl FnMut(Read<'p>) -> Result<(), Error>,
) -> Result<(), Error> {
    std::thread::scope(|scope| {
        let (send, receive) = std::sync::mpsc::sync_channel::<Read<'p>>(1);
        scope.spawn(move || read_in_order(files, options, &mut |read| send.send(read).is_ok()));
        // Returning early drops the receiver, and the reader's next send fails and stops it.
        for read in receive {
            decide(read)?;
        }
        Ok(())
    })
}
