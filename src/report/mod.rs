//! The report of a run: one module per output file. Files are written aside and renamed into
//! place only when all of them are ready ([`Pending::publish`]), so a reader never sees half a
//! report.

pub mod aging;
pub mod columns;
mod csv;
pub mod html;
pub mod page;
pub mod summary;
mod xlsx;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rayon::prelude::*;
use tempfile::NamedTempFile;

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::money::Currency;
pub use crate::row::spill::Rows;
use crate::topup::TopUp;
pub use summary::{InputSummary, Summary};

/// Everything a report shows.
pub struct Report<'a> {
    pub summary: &'a Summary,
    pub matched: Rows<'a>,
    pub unmatched: Rows<'a>,
    pub ignored: Rows<'a>,
    /// The moment ages of open top-ups are measured at (the run's start).
    pub as_of: DateTime<Utc>,
    /// When these files are written (differs when a past run's report is rendered again).
    pub generated_at: DateTime<Utc>,
}

/// How many of the top-ups in `open_topups.csv` the page and the workbook list (the oldest);
/// the file has all.
pub const OPEN_LISTED: usize = 10_000;

/// The top-ups `open_topups.csv` lists, as the other files show them: counts and sums over all
/// of them, gathered while the file streams them, and the oldest few listed. A report of
/// summary version 2 lists the newly stale top-ups (the buckets of all open top-ups are in the
/// summary); of version 1, every open top-up (and the page and workbook show these buckets).
pub struct OpenTopUps {
    pub total: usize,
    pub stale: usize,
    /// (count, sum per currency) per age bucket: 0–3, 4–7, 8–14, over 14 days.
    pub buckets: [(usize, BTreeMap<Currency, Decimal>); 4],
    /// The oldest, at most [`OPEN_LISTED`], oldest first.
    pub oldest: Vec<TopUp>,
}

impl OpenTopUps {
    /// Age bucket labels, in the order of `buckets`.
    pub const BUCKETS: [&'static str; 4] = ["0–3 days", "4–7 days", "8–14 days", "over 14 days"];

    fn new() -> Self {
        OpenTopUps {
            total: 0,
            stale: 0,
            buckets: Default::default(),
            oldest: Vec::new(),
        }
    }

    /// Counts one more open top-up (given oldest first).
    fn add(&mut self, topup: &TopUp, as_of: DateTime<Utc>, stale_after_days: i64) {
        let age = topup.age_days(as_of);
        let bucket = match age {
            ..=3 => 0,
            4..=7 => 1,
            8..=14 => 2,
            _ => 3,
        };
        let (count, sums) = &mut self.buckets[bucket];
        *count += 1;
        *sums.entry(topup.currency).or_default() += topup.cash_amount;
        self.total += 1;
        self.stale += usize::from(age > stale_after_days);
        if self.oldest.len() < OPEN_LISTED {
            self.oldest.push(topup.clone());
        }
    }
}

/// `40000` as `40,000`.
pub(crate) fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Calls its argument once per open top-up, oldest first (from the database, or a list).
pub type ForEachOpen<'a> =
    dyn FnMut(&mut dyn FnMut(&TopUp) -> io::Result<()>) -> io::Result<()> + 'a;

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

/// Removes the temporary files a report left in `dir` when its process was stopped before
/// publishing them (named after the report's files, so nothing else is touched); returns how
/// many there were.
pub fn remove_leftovers(dir: &Path) -> io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ours = FILES
            .iter()
            .any(|file| name.starts_with(&format!(".{file}.")));
        if ours && entry.file_type()?.is_file() {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Renders one file into `dir` under a temporary name, synced to disk.
fn render_aside(
    dir: &Path,
    name: &str,
    render: &mut dyn FnMut(&mut (dyn io::Write + Send)) -> io::Result<()>,
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

/// Renders every report file into `dir` under temporary names. `open` streams the top-ups of
/// `open_topups.csv` into it first (they can be millions: never all in memory), then the
/// other files are rendered side by side.
pub fn prepare(
    dir: &Path,
    report: &Report,
    open: &mut ForEachOpen,
) -> Result<Pending, ReportError> {
    let open = render_open(dir, report.as_of, report.summary.stale_after_days, open)?;
    prepare_alongside(dir, report, open, || ()).map(|(pending, ())| pending)
}

/// `open_topups.csv` rendered under a temporary name, and what the page and the workbook
/// show of its top-ups.
pub struct OpenRendered {
    file: (NamedTempFile, PathBuf),
    overview: OpenTopUps,
}

impl OpenRendered {
    /// How many top-ups the file lists.
    pub fn total(&self) -> usize {
        self.overview.total
    }

    /// What the other files show of the listed top-ups.
    #[cfg(test)]
    pub(crate) fn overview(&self) -> &OpenTopUps {
        &self.overview
    }
}

/// Streams top-ups (oldest first) into `open_topups.csv` under a temporary name in `dir`,
/// gathering what the other files show of them; ages are measured at `as_of`.
pub fn render_open(
    dir: &Path,
    as_of: DateTime<Utc>,
    stale_after_days: i64,
    open: &mut ForEachOpen,
) -> Result<OpenRendered, ReportError> {
    fs::create_dir_all(dir).map_err(|source| ReportError {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut overview = OpenTopUps::new();
    let file = render_aside(dir, "open_topups.csv", &mut |w| {
        let mut writer = csv::OpenTopUpsWriter::new(w, as_of)?;
        open(&mut |topup| {
            overview.add(topup, as_of, stale_after_days);
            writer.write(topup)
        })?;
        writer.finish()
    })?;
    Ok(OpenRendered { file, overview })
}

/// Renders the report files other than `open_topups.csv` (already rendered: `open`) side by
/// side, calling `alongside` on this thread meanwhile (e.g. work on a database connection,
/// which cannot move).
pub fn prepare_alongside<T>(
    dir: &Path,
    report: &Report,
    open: OpenRendered,
    alongside: impl FnOnce() -> T,
) -> Result<(Pending, T), ReportError> {
    let OpenRendered {
        file: open_csv,
        overview,
    } = open;
    let overview = &overview;
    type Render<'r> = Box<dyn Fn(&mut (dyn io::Write + Send)) -> io::Result<()> + Send + Sync + 'r>;
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
            "summary.json",
            Box::new(|w| summary::write(w, report.summary)),
        ),
        (
            "report.html",
            Box::new(|w| html::write(w, report, overview)),
        ),
        (
            "report.xlsx",
            Box::new(|w| xlsx::write(w, report, overview)),
        ),
    ];
    let (files, beside) = std::thread::scope(|scope| {
        let rendering = scope.spawn(move || {
            // The workbook (the slowest) first.
            renders
                .into_par_iter()
                .rev()
                .map(|(name, render)| render_aside(dir, name, &mut |w| render(w)))
                .collect::<Result<Vec<_>, _>>()
        });
        let beside = alongside();
        let files = rendering
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (files, beside)
    });
    let mut files = files?;
    files.reverse();
    files.insert(3, open_csv);
    Ok((Pending { files }, beside))
}
