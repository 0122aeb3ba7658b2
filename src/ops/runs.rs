//! Past runs: listed, their summaries, and their reports written again from the ledger (the
//! same rows, totals, controls and open top-ups as then, in the form of the run's summary
//! version; only the generation time differs),
//! including a report whose publication a stopped process never finished.

use std::path::{Path, PathBuf};

use chrono::Utc;

use crate::error::Error;
use crate::matching::Category;
use crate::report::{self, Report, Summary};
use crate::row::Row;
use crate::store::{Store, StoreError, runs, topups};

pub use crate::store::runs::RunInfo;

/// Every committed run, newest first.
pub fn list(store: &Store) -> Result<Vec<RunInfo>, Error> {
    Ok(runs::list(store.conn())?)
}

/// A stored run's summary and where the top-ups' history stood at its end.
pub fn stored_run(store: &Store, run: &str) -> Result<(Summary, topups::Mark), Error> {
    let (json, mark) = runs::stored(store.conn(), run)?.ok_or_else(|| {
        Error::Data(format!(
            "no run with id {run}; `recon runs list` shows the runs"
        ))
    })?;
    let summary = Summary::from_stored(&json)
        .map_err(|e| Error::Store(StoreError::Corrupt(format!("run {run}'s summary: {e}"))))?;
    Ok((summary, mark))
}

/// A run whose report was published late, by [`publish_pending`].
pub struct Published {
    pub run_id: String,
    pub report_dir: PathBuf,
}

/// Publishes the report of every committed run whose process stopped before publishing it
/// (rendered again from the ledger into its directory, its temporary files removed), and
/// records each as published.
pub fn publish_pending(store: &mut Store) -> Result<Vec<Published>, Error> {
    let mut done = Vec::new();
    for (run_id, report_dir) in runs::unpublished(store.conn())? {
        report::remove_leftovers(&report_dir).map_err(|source| Error::Io {
            doing: format!("removing temporary files from {}", report_dir.display()),
            source,
        })?;
        std::fs::create_dir_all(&report_dir).map_err(|source| report::ReportError {
            path: report_dir.clone(),
            source,
        })?;
        rerender(store, &run_id, &report_dir)?;
        mark_published(store, &run_id)?;
        tracing::warn!(
            run = run_id.as_str(),
            dir = %report_dir.display(),
            "published the report of a run that committed but stopped before publishing it"
        );
        done.push(Published { run_id, report_dir });
    }
    Ok(done)
}

/// Records in a write of its own that `run`'s report is published.
pub fn mark_published(store: &mut Store, run: &str) -> Result<(), Error> {
    let tx = store.write()?;
    runs::published(&tx, run, Utc::now())?;
    crate::store::commit(tx, "recording the report's publication")?;
    Ok(())
}

/// Writes run `run`'s report into `out` (which the caller has checked may be written).
pub fn rerender(store: &Store, run: &str, out: &Path) -> Result<(), Error> {
    let (summary, mark) = stored_run(store, run)?;
    let rows = crate::store::journal::run_rows(store.conn(), run)?;
    let as_of = super::run::started_at(&summary)?;
    let mut by_category: [Vec<Row>; 3] = Default::default();
    for row in rows {
        let slot = match row.category() {
            Category::Matched => 0,
            Category::Unmatched => 1,
            Category::Ignored => 2,
        };
        by_category[slot].push(row);
    }
    let [matched, unmatched, ignored] = by_category;
    let report = Report {
        summary: &summary,
        matched: report::Rows::Memory(&matched),
        unmatched: report::Rows::Memory(&unmatched),
        ignored: report::Rows::Memory(&ignored),
        as_of,
        generated_at: Utc::now(),
    };
    // `open_topups.csv` listed every open top-up until summary version 2, the newly stale since.
    let which = summary
        .newly_stale
        .as_ref()
        .map(|newly| topups::StaleSince {
            until: &newly.created_until,
            after: newly.created_after.as_deref(),
            added_after: newly.added_after,
        });
    report::prepare(out, &report, &mut |each| {
        topups::for_each_open_at(store.conn(), mark, which.as_ref(), each)
    })?
    .publish()?;
    Ok(())
}
