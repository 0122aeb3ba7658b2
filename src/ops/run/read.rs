//! Reading: the statement files in the order given, a batch at a time, handed to the deciding
//! with each transaction's candidate references. With more than one thread the files are read
//! on a thread of their own beside the deciding; either way the decisions follow file order.

use std::path::{Path, PathBuf};

use super::decide::Deciding;
use super::{RunPlan, give_back_memory};
use crate::error::Error;
use crate::ids::RunId;
use crate::reference::{Candidate, find_candidates};
use crate::statement::{self, InputError, ReadOptions, StatementFile, Transaction, identity};

/// What the reading hands to the deciding, in file order.
pub(super) enum Read<'p> {
    /// The next transactions of the file being read, with their candidate references.
    Batch(FileAt<'p>, Vec<(Transaction, Vec<Candidate>)>),
    /// The file at this position was read to its end, or rejected.
    Done(FileEnd<'p>),
}

/// The file a batch comes from.
#[derive(Clone, Copy)]
pub(super) struct FileAt<'p> {
    pub path: &'p Path,
    /// The family of its format, from its head (`None` if that did not tell).
    pub family: Option<&'p str>,
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
    let (families, mixed) = families(plan);
    let mut deciding = Deciding::new(crate::store::journal::next_id(tx)?, &plan.report_dir, mixed)?;
    let mut take = |read| deciding.take(tx, run_id, read, &plan.progress);
    let files = (&plan.files[..], &families[..]);
    if rayon::current_num_threads() > 1 {
        read_beside(files, &plan.read, take)?;
    } else {
        let mut failed = None;
        read_in_order(files, &plan.read, &mut |read| {
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

/// Each file's family of formats, from its head, before any is read, and whether there is more
/// than one: a run of one family cannot meet a copy of its own transactions in another.
fn families(plan: &RunPlan) -> (Vec<Option<String>>, bool) {
    let families: Vec<Option<String>> = plan
        .files
        .iter()
        .map(|path| statement::detect_family(path, &plan.read))
        .collect();
    let distinct: std::collections::HashSet<&String> = families.iter().flatten().collect();
    let mixed = distinct.len() > 1;
    (families, mixed)
}

/// The settlement references a transaction's remittance may name.
fn candidates(transaction: &Transaction) -> Vec<Candidate> {
    find_candidates(
        transaction
            .remittance
            .search_fields()
            .iter()
            .map(AsRef::as_ref),
    )
}

/// The files in order, each with the family of its format.
type Files<'p> = (&'p [PathBuf], &'p [Option<String>]);

/// Reads `files` in order, handing `hand` each batch of a file (with candidate references and
/// cross-format keys, found on the reading thread), then the file's end; stops when `hand`
/// returns false.
fn read_in_order<'p>(
    (files, families): Files<'p>,
    options: &ReadOptions,
    hand: &mut dyn FnMut(Read<'p>) -> bool,
) {
    for (position, path) in files.iter().enumerate() {
        let mut handed = 0;
        let at = FileAt {
            path,
            family: families.get(position).and_then(Option::as_deref),
        };
        let mut cross = identity::CrossAssigner::default();
        let result = statement::read_path_in_batches(path, options, &mut |batch| {
            handed += batch.len();
            let batch = batch
                .into_iter()
                .map(|mut transaction| {
                    let candidates = candidates(&transaction);
                    transaction.cross_key =
                        cross.key(&transaction, candidates.iter().map(|c| c.reference));
                    (transaction, candidates)
                })
                .collect();
            hand(Read::Batch(at, batch))
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
    files: Files<'p>,
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
