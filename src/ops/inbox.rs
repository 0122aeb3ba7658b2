//! Inbox mode, for cron: the inbox's statement files are one run into a new dated report
//! directory; only after the commit do they leave the inbox (read ones to the archive, rejected
//! ones to the quarantine with their error beside them), and `latest` points at the new report.
//! A file a committed run already read (the process stopped before moving it) is archived
//! without a new run, so `latest` keeps pointing at the report that holds that night.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use chrono::Utc;

use super::run::inputs::{Selection, Skipped};
use super::run::{RunOutcome, RunPlan};
use crate::error::Error;
use crate::store::{OpenMode, Store, runs};

/// The folders of inbox mode.
pub struct InboxDirs {
    pub inbox: PathBuf,
    pub archive: PathBuf,
    pub quarantine: PathBuf,
    pub reports: PathBuf,
}

/// A file archived without reading: a committed run had read it already.
pub struct AlreadyRead {
    pub path: PathBuf,
    pub run_id: String,
    pub started_at: String,
}

/// What inbox mode did.
#[derive(Default)]
pub struct InboxOutcome {
    /// The run over the inbox's new files, if it had any.
    pub run: Option<RunOutcome>,
    /// Entries of the inbox left where they are, and why.
    pub skipped: Vec<Skipped>,
    pub already_read: Vec<AlreadyRead>,
}

/// Runs over the inbox's new statement files into a new dated directory under `reports`
/// (`plan` makes the run's plan for these files and that directory), then files them away.
pub fn run(
    dirs: &InboxDirs,
    selection: &Selection,
    plan: impl FnOnce(Vec<PathBuf>, PathBuf) -> Result<RunPlan, Error>,
) -> Result<InboxOutcome, Error> {
    for dir in [&dirs.archive, &dirs.quarantine, &dirs.reports] {
        fs::create_dir_all(dir).map_err(io_error(format!("creating {}", dir.display())))?;
    }
    let listing = selection.list(&dirs.inbox, false).map_err(|e| match e {
        Error::Usage(_) => Error::Usage(format!(
            "cannot read the inbox {}: {e}",
            dirs.inbox.display()
        )),
        other => other,
    })?;
    let mut outcome = InboxOutcome {
        skipped: listing.skipped,
        ..InboxOutcome::default()
    };
    if listing.files.is_empty() {
        return Ok(outcome);
    }
    let plan = plan(Vec::new(), PathBuf::new())?;
    let new_files = archive_already_read(dirs, &plan, listing.files, &mut outcome.already_read)?;
    if new_files.is_empty() {
        return Ok(outcome);
    }
    let plan = RunPlan {
        files: new_files,
        report_dir: new_report_dir(&dirs.reports),
        ..plan
    };
    let run = super::run::run(&plan)?;
    if !plan.dry_run {
        file_away(dirs, &run).map_err(|e| committed_but(&run, e))?;
    }
    outcome.run = Some(run);
    Ok(outcome)
}

fn io_error(doing: String) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io { doing, source }
}

/// Files a committed run read already go to the archive without a new run (their night's
/// report is that run's); returns the others. When some were, `latest` points at the newest
/// run's report, which a process stopped before pointing it there never did.
fn archive_already_read(
    dirs: &InboxDirs,
    plan: &RunPlan,
    files: Vec<PathBuf>,
    already: &mut Vec<AlreadyRead>,
) -> Result<Vec<PathBuf>, Error> {
    if files.is_empty() {
        return Ok(files);
    }
    let store = Store::open(&plan.db, OpenMode::MustExist, plan.wait)?;
    let mut new_files = Vec::new();
    for path in files {
        let sha256 = crate::statement::hash_file(&path)
            .map_err(io_error(format!("reading {}", path.display())))?;
        match runs::read_before(store.conn(), &sha256)? {
            Some((run_id, started_at)) if !plan.dry_run => {
                let to = archive_name(&dirs.archive, &path, &run_id);
                move_file(&path, &to).map_err(io_error(format!(
                    "moving {} to {}",
                    path.display(),
                    to.display()
                )))?;
                already.push(AlreadyRead {
                    path,
                    run_id,
                    started_at,
                });
            }
            _ => new_files.push(path),
        }
    }
    let reports = std::path::absolute(&dirs.reports).unwrap_or(dirs.reports.clone());
    if !already.is_empty()
        && let Some(newest) = runs::newest_report_dir(store.conn())?
        && newest.parent() == Some(reports.as_path())
    {
        point_latest(&dirs.reports, &newest).map_err(io_error(format!(
            "updating {}/latest",
            dirs.reports.display()
        )))?;
    }
    Ok(new_files)
}

/// A report directory named after the time, that does not exist yet.
fn new_report_dir(reports: &Path) -> PathBuf {
    let stamp = Utc::now().format("%Y-%m-%dT%H%M%SZ").to_string();
    let mut report_dir = reports.join(&stamp);
    let mut n = 2;
    while report_dir.exists() {
        report_dir = reports.join(format!("{stamp}-{n}"));
        n += 1;
    }
    report_dir
}

/// Where `from` goes in `dir`: its own name, or with the run id appended when that is taken.
fn archive_name(dir: &Path, from: &Path, run_id: &str) -> PathBuf {
    let name = from.file_name().unwrap_or_default();
    let to = dir.join(name);
    if to.exists() {
        dir.join(format!("{}.{run_id}", name.to_string_lossy()))
    } else {
        to
    }
}

/// The database has committed: only now do the files leave the inbox. A crash before this
/// point leaves them there, and the next run archives them as read already.
fn file_away(dirs: &InboxDirs, outcome: &RunOutcome) -> Result<(), Error> {
    let summary = &outcome.summary;
    for input in &summary.inputs {
        let from = PathBuf::from(&input.path);
        let target_dir = if input.rejected {
            &dirs.quarantine
        } else {
            &dirs.archive
        };
        let to = archive_name(target_dir, &from, &summary.run_id);
        move_file(&from, &to).map_err(io_error(format!(
            "moving {} to {}",
            from.display(),
            to.display()
        )))?;
        if let (true, Some(error)) = (input.rejected, &input.error) {
            let note = PathBuf::from(format!("{}.error.txt", to.display()));
            fs::write(&note, format!("{error}\nrun {}\n", summary.run_id))
                .map_err(io_error(format!("writing {}", note.display())))?;
        }
    }
    point_latest(&dirs.reports, &outcome.report_dir).map_err(io_error(format!(
        "updating {}/latest",
        dirs.reports.display()
    )))
}

/// A failure after the commit: the run stands, and the message says so.
fn committed_but(run: &RunOutcome, error: Error) -> Error {
    Error::AfterCommit(format!(
        "run {} was committed and its report is in {}, but then {error}; nothing needs to run \
         again: the next inbox run archives the files left in the inbox as read already",
        run.summary.run_id,
        run.report_dir.display()
    ))
}

/// Moves a file; across file systems by a copy synced to disk and renamed into place before
/// the original goes. A link's content is archived, and the link removed.
fn move_file(from: &Path, to: &Path) -> io::Result<()> {
    let link = fs::symlink_metadata(from)?.file_type().is_symlink();
    if !link && fs::rename(from, to).is_ok() {
        return Ok(());
    }
    let dir = to.parent().unwrap_or(Path::new("."));
    let mut copy = tempfile::Builder::new()
        .prefix(".recon-move.")
        .tempfile_in(dir)?;
    io::copy(&mut File::open(from)?, copy.as_file_mut())?;
    copy.as_file().sync_all()?;
    copy.persist(to).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()?;
    fs::remove_file(from)
}

/// Points `reports/latest` at a report directory, replacing the link atomically.
fn point_latest(reports: &Path, report_dir: &Path) -> io::Result<()> {
    let name = report_dir.file_name().unwrap_or_default();
    let temp = reports.join(".latest.tmp");
    let _ = fs::remove_file(&temp);
    #[cfg(unix)]
    std::os::unix::fs::symlink(name, &temp)?;
    #[cfg(not(unix))]
    fs::write(&temp, name.to_string_lossy().as_bytes())?;
    fs::rename(&temp, reports.join("latest")).inspect_err(|_| {
        let _ = fs::remove_file(&temp);
    })
}
