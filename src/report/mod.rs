//! The report of a run: one module per output file. Files are written aside and renamed into
//! place only when all of them are ready ([`Pending::publish`]), so a reader never sees half a
//! report.

pub mod columns;
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

/// How many open top-ups the page and the workbook list (the oldest); `open_topups.csv` has all.
pub const OPEN_LISTED: usize = 10_000;

/// The open top-ups as a report shows them: counts and sums over all of them, gathered while
/// `open_topups.csv` streams them, and the oldest few listed.
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

    /// Adds the counts of the open top-ups that follow these in the listing.
    fn extend(&mut self, later: OpenTopUps) {
        self.total += later.total;
        self.stale += later.stale;
        for ((count, sums), (later_count, later_sums)) in self.buckets.iter_mut().zip(later.buckets)
        {
            *count += later_count;
            for (currency, sum) in later_sums {
                *sums.entry(currency).or_default() += sum;
            }
        }
        let room = OPEN_LISTED.saturating_sub(self.oldest.len());
        self.oldest.extend(later.oldest.into_iter().take(room));
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

/// Renders every report file into `dir` under temporary names. `open` streams the open
/// top-ups into `open_topups.csv` first (they can be millions: never all in memory), then the
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
/// show of the open top-ups.
pub struct OpenRendered {
    file: (NamedTempFile, PathBuf),
    overview: OpenTopUps,
}

impl OpenRendered {
    /// How many open top-ups the file lists.
    pub fn total(&self) -> usize {
        self.overview.total
    }

    /// The file as rendered so far.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> Vec<u8> {
        fs::read(self.file.0.path()).unwrap()
    }

    /// What the other files show of the open top-ups.
    #[cfg(test)]
    pub(crate) fn overview(&self) -> &OpenTopUps {
        &self.overview
    }

    /// Appends the rest of the listing (see [`render_open_rest`]) to the file, synced again.
    pub fn then(mut self, rest: OpenRest) -> Result<OpenRendered, ReportError> {
        use io::Seek as _;
        let OpenRest { mut file, overview } = rest;
        let path = self.file.1.clone();
        let fail = |source| ReportError {
            path: path.clone(),
            source,
        };
        file.rewind().map_err(fail)?;
        let target = self.file.0.as_file_mut();
        target.seek(io::SeekFrom::End(0)).map_err(fail)?;
        // File to file: the kernel copies (copy_file_range), nothing passes through here.
        io::copy(&mut file, target).map_err(fail)?;
        target.sync_all().map_err(fail)?;
        self.overview.extend(overview);
        Ok(self)
    }
}

/// The open top-ups that follow those of a [`render_open`], listed beside it into an unnamed
/// temporary file, with their counts.
pub struct OpenRest {
    file: fs::File,
    overview: OpenTopUps,
}

/// Streams the open top-ups (oldest first) into `open_topups.csv` under a temporary name in
/// `dir`, gathering what the other files show of them; ages are measured at `as_of`.
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

/// Streams open top-ups that follow those of a [`render_open`] into an unnamed temporary file
/// in `dir`, lines only, for [`OpenRendered::then`]: two connections can list a half each.
pub fn render_open_rest(
    dir: &Path,
    as_of: DateTime<Utc>,
    stale_after_days: i64,
    open: &mut ForEachOpen,
) -> Result<OpenRest, ReportError> {
    let fail = |source| ReportError {
        path: dir.join("open_topups.csv"),
        source,
    };
    fs::create_dir_all(dir).map_err(fail)?;
    let mut file = tempfile::tempfile_in(dir).map_err(fail)?;
    let mut overview = OpenTopUps::new();
    let mut writer = csv::OpenTopUpsWriter::continuing(&mut file, as_of);
    open(&mut |topup| {
        overview.add(topup, as_of, stale_after_days);
        writer.write(topup)
    })
    .and_then(|()| writer.finish())
    .map_err(fail)?;
    Ok(OpenRest { file, overview })
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
