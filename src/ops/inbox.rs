//! Inbox mode, for cron: every file in the inbox is one run into a new dated report directory;
//! only after the commit do the files leave the inbox (read ones to the archive, rejected ones
//! to the quarantine with their error beside them), and `latest` points at the new report.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::Utc;

use super::run::{RunOutcome, RunPlan};
use crate::error::Error;

/// The folders of inbox mode.
pub struct InboxDirs {
    pub inbox: PathBuf,
    pub archive: PathBuf,
    pub quarantine: PathBuf,
    pub reports: PathBuf,
}

/// Runs over the inbox's files into a new dated directory under `reports` (`plan` makes the
/// run's plan for these files and that directory), then files the inputs away; `None` when
/// the inbox is empty.
pub fn run(
    dirs: &InboxDirs,
    plan: impl FnOnce(Vec<PathBuf>, PathBuf) -> Result<RunPlan, Error>,
) -> Result<Option<RunOutcome>, Error> {
    for dir in [&dirs.archive, &dirs.quarantine, &dirs.reports] {
        fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    }
    let files = files(&dirs.inbox)?;
    if files.is_empty() {
        return Ok(None);
    }
    let plan = plan(files, new_report_dir(&dirs.reports))?;
    let outcome = super::run::run(&plan)?;
    if !plan.dry_run {
        file_away(dirs, &outcome)?;
    }
    Ok(Some(outcome))
}

fn io(doing: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { doing, source }
}

/// The inbox's files (not hidden), in name order.
fn files(inbox: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut files = Vec::new();
    let entries = fs::read_dir(inbox)
        .map_err(|e| Error::Usage(format!("cannot read the inbox {}: {e}", inbox.display())))?;
    for entry in entries {
        let path = entry
            .map_err(io(format!("listing {}", inbox.display())))?
            .path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if path.is_file() && !hidden {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
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

/// The database has committed: only now do the files leave the inbox. A crash before this
/// point leaves them there, and the next run finds them ALREADY_PROCESSED.
fn file_away(dirs: &InboxDirs, outcome: &RunOutcome) -> Result<(), Error> {
    let summary = &outcome.summary;
    for input in &summary.inputs {
        let from = PathBuf::from(&input.path);
        let name = from
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        let target_dir = if input.rejected {
            &dirs.quarantine
        } else {
            &dirs.archive
        };
        let mut to = target_dir.join(&name);
        if to.exists() {
            to = target_dir.join(format!("{}.{}", name.to_string_lossy(), summary.run_id));
        }
        move_file(&from, &to).map_err(io(format!(
            "moving {} to {}",
            from.display(),
            to.display()
        )))?;
        if let (true, Some(error)) = (input.rejected, &input.error) {
            let note = PathBuf::from(format!("{}.error.txt", to.display()));
            fs::write(&note, format!("{error}\nrun {}\n", summary.run_id))
                .map_err(io(format!("writing {}", note.display())))?;
        }
    }
    point_latest(&dirs.reports, &outcome.report_dir)
        .map_err(io(format!("updating {}/latest", dirs.reports.display())))
}

/// Renames, or copies and removes across file systems.
fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    if fs::rename(from, to).is_ok() {
        return Ok(());
    }
    fs::copy(from, to)?;
    fs::remove_file(from)
}

/// Points `reports/latest` at the newest report directory, replacing the link atomically.
fn point_latest(reports: &Path, report_dir: &Path) -> std::io::Result<()> {
    let name = report_dir.file_name().unwrap_or_default();
    let temp = reports.join(".latest.tmp");
    let _ = fs::remove_file(&temp);
    #[cfg(unix)]
    std::os::unix::fs::symlink(name, &temp)?;
    #[cfg(not(unix))]
    fs::write(&temp, name.to_string_lossy().as_bytes())?;
    fs::rename(&temp, reports.join("latest"))
}
