//! The nightly job as a library call: a [`RunPlan`] in, a [`RunOutcome`] out. Its phases, in
//! the order they happen, each in a module of its own: [`read`] the files in order beside the
//! deciding, [`decide`] one outcome per transaction, [`settle`] the matches and suggest for
//! the exceptions, [`record`] every transaction in the ledger while [`render`] writes the
//! report aside; then the commit and the report's publication, here.

mod decide;
pub mod inputs;
mod read;
mod record;
mod render;
mod settle;
mod worklist;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::Error;
use crate::ids::RunId;
use crate::report::{self, Summary};
pub use crate::statement::ReadOptions;
use crate::store::{OpenMode, Store, StoreError, runs};

/// Everything a run needs, validated: the caller (the command line, the demo, a test) decides
/// it; the run itself reads no flags, environment or configuration.
pub struct RunPlan {
    /// The database, which must exist, and how long to wait for another writer.
    pub db: PathBuf,
    pub wait: Duration,
    /// The statement files, in the order they are read (directories already expanded).
    pub files: Vec<PathBuf>,
    /// Where the report goes (created if missing).
    pub report_dir: PathBuf,
    pub read: ReadOptions,
    pub stale_after_days: i64,
    /// The time zone the report shows times in beside UTC.
    pub timezone: chrono_tz::Tz,
    /// Report what would happen, and roll the database back.
    pub dry_run: bool,
    /// Counts the transactions decided; hidden unless the caller shows it.
    pub progress: indicatif::ProgressBar,
}

/// What a committed (or dry) run did, for the caller to show.
pub struct RunOutcome {
    pub summary: Summary,
    pub report_dir: PathBuf,
}

impl RunOutcome {
    /// CSV rows skipped as bad (`--skip-bad-rows`), over all inputs.
    pub fn bad_rows(&self) -> usize {
        self.summary.inputs.iter().map(|i| i.bad_rows.len()).sum()
    }
}

/// Runs the night: reads, decides, settles, records and renders inside one write transaction,
/// commits it (or rolls it back for a dry run), and only then publishes the report.
pub fn run(plan: &RunPlan) -> Result<RunOutcome, Error> {
    let mut store = Store::open(&plan.db, OpenMode::MustExist, plan.wait)?;
    let db_path = store.path().to_path_buf();
    let started = Utc::now();
    let run_id = RunId::from_uuid(Uuid::now_v7());
    let tx = store.write()?;
    runs::start(&tx, run_id, started)?;
    tracing::info!(run = %run_id, inputs = plan.files.len(), dry_run = plan.dry_run, "run started");
    let clock = Instant::now();
    // A run that fails leaves no report directory it created. Declared before the rows
    // written aside and the report's temporary files, so that they are gone before it looks.
    let mut created = CreatedDir::new(&plan.report_dir);
    let report_error = |source| report::ReportError {
        path: plan.report_dir.clone(),
        source,
    };
    fs::create_dir_all(&plan.report_dir).map_err(report_error)?;
    // What a process killed before its commit left there.
    report::remove_leftovers(&plan.report_dir).map_err(report_error)?;
    let deciding = read::read_and_decide(&tx, run_id, plan)?;
    let settled = settle::settle_beside_listing(&tx, plan, run_id, &db_path, started, deciding)?;
    elapsed(&clock, "transactions decided");
    let times = (started, Utc::now());
    let worklist = worklist::worklist(&tx, started, &settled.decided.totals.outcomes)?;
    let summary = render::summary(plan, run_id, &db_path, times, &settled, worklist)?;
    let pending = render::render_and_record(&tx, plan, run_id, &summary, settled, times)?;
    elapsed(&clock, "report rendered");
    if super::interrupt::requested() {
        return Err(Error::Interrupted);
    }
    commit(tx, plan.dry_run, run_id, summary.counts.matched)?;
    elapsed(&clock, "committed");
    created.keep();
    for failed in summary.controls.results.iter().filter(|c| !c.ok) {
        tracing::warn!(file = %failed.file, check = %failed.check, "statement control failed: {}", failed.message);
    }
    // The crash test stops here: committed, not yet published (the next command publishes).
    if std::env::var_os("RECON_CRASH_AFTER_COMMIT").is_some() {
        std::process::abort();
    }
    pending.publish()?;
    if !plan.dry_run {
        publish_recorded(&mut store, run_id);
    }
    Ok(RunOutcome {
        summary,
        report_dir: plan.report_dir.clone(),
    })
}

/// Records the report as published. Should that fail (another writer took the database the
/// moment the run let go), the next command publishes the report again from the ledger.
fn publish_recorded(store: &mut Store, run_id: RunId) {
    if let Err(error) = super::runs::mark_published(store, &run_id.to_string()) {
        tracing::warn!(run = %run_id, "the report is published but could not be recorded as such ({error}); the next run writes it again");
    }
}

/// Commits the run, or rolls a dry run back.
fn commit(
    tx: rusqlite::Transaction,
    dry_run: bool,
    run_id: RunId,
    matched: usize,
) -> Result<(), Error> {
    if dry_run {
        tx.rollback().map_err(|source| StoreError::Sqlite {
            doing: "rolling back the dry run",
            source,
        })?;
        tracing::info!(run = %run_id, "dry run: database left unchanged");
    } else {
        crate::store::commit(tx, "committing the run")?;
        tracing::info!(run = %run_id, matched, "committed");
    }
    Ok(())
}

/// Logs how long the run has taken so far (`-vv`).
fn elapsed(clock: &Instant, what: &str) {
    tracing::debug!(elapsed_ms = clock.elapsed().as_millis() as u64, "{what}");
}

/// The start of a past run, as its summary stored it.
pub(crate) fn started_at(summary: &Summary) -> Result<DateTime<Utc>, Error> {
    summary.started_at.parse().map_err(|e| {
        Error::Store(StoreError::Corrupt(format!(
            "run {}'s start time: {e}",
            summary.run_id
        )))
    })
}

/// A directory about to be made, removed again when dropped before [`CreatedDir::keep`] (if it
/// is still empty: `remove_dir` never removes files).
struct CreatedDir<'a> {
    dir: Option<&'a Path>,
}

impl<'a> CreatedDir<'a> {
    fn new(dir: &'a Path) -> Self {
        CreatedDir {
            dir: (!dir.exists()).then_some(dir),
        }
    }

    fn keep(&mut self) {
        self.dir = None;
    }
}

impl Drop for CreatedDir<'_> {
    fn drop(&mut self) {
        if let Some(dir) = self.dir {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// Returns freed memory to the system. glibc keeps what a thread freed in that thread's arena
/// (the transactions were parsed on another), so without this the report renders beside the
/// transactions' memory, freed but still counted against the process.
fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory the allocator holds free; no live allocation
    // is touched.
    unsafe {
        libc::malloc_trim(0);
    }
}
