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

/// Renders every report file into `dir` under temporary names.
pub fn prepare(dir: &Path, report: &Report) -> Result<Pending, ReportError> {
    fs::create_dir_all(dir).map_err(|source| ReportError {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files = Vec::with_capacity(FILES.len());
    let mut add = |name: &str, render: &dyn Fn(&mut dyn io::Write) -> io::Result<()>| {
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
        files.push((file, path));
        Ok::<(), ReportError>(())
    };
    add("matched.csv", &|w| csv::write_rows(w, report.matched))?;
    add("unmatched.csv", &|w| csv::write_rows(w, report.unmatched))?;
    add("ignored.csv", &|w| csv::write_rows(w, report.ignored))?;
    add("open_topups.csv", &|w| {
        csv::write_open_topups(w, report.open_topups, report.as_of)
    })?;
    add("summary.json", &|w| summary::write(w, report.summary))?;
    add("report.html", &|w| html::write(w, report))?;
    add("report.xlsx", &|w| xlsx::write(w, report))?;
    Ok(Pending { files })
}
