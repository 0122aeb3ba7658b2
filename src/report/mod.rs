//! The report of a run: one module per output file. Files are written aside and renamed into
//! place only when all of them are ready ([`Pending::publish`]), so a reader never sees half a
//! report.

mod csv;
pub mod html;
pub mod summary;
mod xlsx;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rayon::prelude::*;
use tempfile::NamedTempFile;

use crate::row::Row;
use crate::topup::TopUp;
pub use summary::{InputSummary, Summary};

/// Everything a report shows.
pub struct Report<'a> {
    pub summary: &'a Summary,
    pub matched: &'a [Row],
    pub unmatched: &'a [Row],
    pub ignored: &'a [Row],
    pub open_topups: &'a [TopUp],
    /// The moment ages of open top-ups are measured at (the run's start).
    pub as_of: DateTime<Utc>,
    /// When these files are written (differs when a past run's report is rendered again).
    pub generated_at: DateTime<Utc>,
}

/// A problem writing the report.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the report file {}: {source}", path.display())]
pub struct ReportError {
    pub path: PathBuf,
    pub source: io::Error,
}

/// Report files written aside, not yet visible under their names.
pub struct Pending {
    files: Vec<(NamedTempFile, PathBuf)>,
}

impl Pending {
    /// Renames every file into place.
    pub fn publish(self) -> Result<(), ReportError> {
        for (file, path) in self.files {
            file.persist(&path).map_err(|e| ReportError {
                path: path.clone(),
                source: e.error,
            })?;
        }
        Ok(())
    }
}

/// The names of the files a report consists of.
pub const FILES: [&str; 7] = [
    "matched.csv",
    "unmatched.csv",
    "ignored.csv",
    "open_topups.csv",
    "summary.json",
    "report.html",
    "report.xlsx",
];

/// Renders one file into `dir` under a temporary name, synced to disk.
fn render_aside(
    dir: &Path,
    name: &str,
    render: &dyn Fn(&mut dyn io::Write) -> io::Result<()>,
) -> Result<(NamedTempFile, PathBuf), ReportError> {
    let path = dir.join(name);
    let fail = |source| ReportError {
        path: path.clone(),
        source,
    };
    let mut file = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .tempfile_in(dir)
        .map_err(fail)?;
    {
        let mut out = io::BufWriter::with_capacity(1 << 16, file.as_file_mut());
        render(&mut out).map_err(fail)?;
        io::Write::flush(&mut out).map_err(fail)?;
    }
    // Temporary files are private; a report is an ordinary file for whoever reads reports.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(fail)?;
    }
    file.as_file().sync_all().map_err(fail)?;
    tracing::debug!(file = name, "report file rendered");
    Ok((file, path))
}

/// Renders every report file into `dir` under temporary names.
pub fn prepare(dir: &Path, report: &Report) -> Result<Pending, ReportError> {
    fs::create_dir_all(dir).map_err(|source| ReportError {
        path: dir.to_path_buf(),
        source,
    })?;
    type Render<'r> = Box<dyn Fn(&mut dyn io::Write) -> io::Result<()> + Sync + 'r>;
    let renders: Vec<(&str, Render)> = vec![
        (
            "matched.csv",
            Box::new(|w| csv::write_rows(w, report.matched)),
        ),
        (
            "unmatched.csv",
            Box::new(|w| csv::write_rows(w, report.unmatched)),
        ),
        (
            "ignored.csv",
            Box::new(|w| csv::write_rows(w, report.ignored)),
        ),
        (
            "open_topups.csv",
            Box::new(|w| csv::write_open_topups(w, report.open_topups, report.as_of)),
        ),
        (
            "summary.json",
            Box::new(|w| summary::write(w, report.summary)),
        ),
        ("report.html", Box::new(|w| html::write(w, report))),
        ("report.xlsx", Box::new(|w| xlsx::write(w, report))),
    ];
    // The files are independent: rendered side by side, the workbook (the slowest) first.
    let mut files = renders
        .into_par_iter()
        .rev()
        .map(|(name, render)| render_aside(dir, name, render.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    files.reverse();
    Ok(Pending { files })
}
