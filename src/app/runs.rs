//! `recon run`, `recon runs list | show`, `recon report` and `recon demo`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use uuid::Uuid;

use super::{open, to_json, write_out};
use crate::cli::{DemoArgs, ReportArgs, RunArgs, RunFormat, RunIdArgs, RunsFormat, RunsListArgs};
use crate::config::Settings;
use crate::error::{Error, exit};
use crate::ops::OpenMode;
use crate::ops::inbox::{self, InboxDirs, InboxOutcome};
use crate::ops::run::ReadOptions;
use crate::ops::run::inputs::{self, Selection, Skipped};
use crate::ops::run::{RunOutcome, RunPlan};

pub(super) fn run(
    settings: &Settings,
    args: &RunArgs,
    quiet: bool,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    crate::ops::interrupt::install();
    super::publish_pending(settings, out)?;
    let selection = selection(args)?;
    let plan = |files, report_dir| plan(settings, args.dry_run, files, report_dir);
    let text = args.format == RunFormat::Text;
    let (outcome, skipped) = match (&args.inbox, &args.out) {
        (Some(inbox), _) => {
            let dirs = inbox_dirs(inbox, args)?;
            let done = inbox::run(&dirs, &selection, plan)?;
            if text && !quiet {
                write_out(out, &inbox_notices(&done))?;
            }
            let Some(outcome) = done.run else {
                if text && !quiet {
                    let text = format!("inbox {} holds nothing new to read\n", inbox.display());
                    write_out(out, &text)?;
                }
                return Ok(exit::OK);
            };
            (outcome, Vec::new())
        }
        (None, Some(report_dir)) => {
            let listing = inputs::resolve(&args.statements, &selection)?;
            refuse_existing_report(report_dir, args.force)?;
            let outcome = crate::ops::run::run(&plan(listing.files, report_dir.clone())?)?;
            (outcome, listing.skipped)
        }
        (None, None) => {
            return Err(Error::Usage(
                "give --out DIR with the statements, or --inbox".into(),
            ));
        }
    };
    let code = status(settings, &outcome);
    match args.format {
        RunFormat::Json => write_out(out, &to_json(&outcome.summary))?,
        // Quiet: silent on a night that needs nobody, so that cron mails only when one does.
        RunFormat::Text if quiet && code == exit::OK && !needs_a_person(&outcome) => {}
        RunFormat::Text => {
            let notices: String = skipped.iter().map(skipped_line).collect();
            write_out(out, &(notices + &outcome_text(&outcome, args.dry_run)))?;
        }
    }
    Ok(code)
}

/// Whether anything in the run waits for a person: an exception, a rejected input, an input
/// read before, a failed control or a skipped row.
fn needs_a_person(outcome: &RunOutcome) -> bool {
    let summary = &outcome.summary;
    summary.counts.unmatched > 0
        || summary.inputs_rejected > 0
        || summary.inputs.iter().any(|i| i.read_before.is_some())
        || summary.controls.failed > 0
        || outcome.bad_rows() > 0
}

/// Which files of a folder or the inbox are read.
fn selection(args: &RunArgs) -> Result<Selection, Error> {
    let include = args
        .include
        .iter()
        .map(|p| glob::Pattern::new(p).map_err(|e| Error::Usage(format!("--include {p:?}: {e}"))))
        .collect::<Result<_, _>>()?;
    // Files named on the command line are read as they are; only the inbox waits.
    let stable_for = match args.inbox {
        Some(_) => Duration::from_secs(args.stable_secs),
        None => Duration::ZERO,
    };
    Ok(Selection {
        include,
        stable_for,
    })
}

fn inbox_dirs(inbox: &Path, args: &RunArgs) -> Result<InboxDirs, Error> {
    let dirs = [&args.archive, &args.quarantine, &args.reports];
    let [Some(archive), Some(quarantine), Some(reports)] = dirs else {
        return Err(Error::Usage(
            "inbox mode needs --archive, --quarantine and --reports".into(),
        ));
    };
    Ok(InboxDirs {
        inbox: inbox.to_path_buf(),
        archive: archive.clone(),
        quarantine: quarantine.clone(),
        reports: reports.clone(),
    })
}

fn skipped_line(skipped: &Skipped) -> String {
    format!("skipped {}: {}\n", skipped.path.display(), skipped.why)
}

/// What inbox mode left in the inbox, and what it archived as read already.
fn inbox_notices(done: &InboxOutcome) -> String {
    let mut text: String = done.skipped.iter().map(skipped_line).collect();
    for read in &done.already_read {
        text.push_str(&format!(
            "archived {} without reading it: run {} read it already on {}\n",
            read.path.display(),
            read.run_id,
            read.started_at
        ));
    }
    text
}

/// The run's settings as a plan; the caller names the files and the report directory.
fn plan(
    settings: &Settings,
    dry_run: bool,
    files: Vec<PathBuf>,
    report_dir: PathBuf,
) -> Result<RunPlan, Error> {
    let profile = match &settings.profile {
        Some(arg) => Some(crate::config::resolve_profile(arg, &settings.profiles)?),
        None => None,
    };
    Ok(RunPlan {
        db: settings.db()?.to_path_buf(),
        wait: Duration::from_secs(settings.wait_secs),
        files,
        report_dir,
        read: ReadOptions {
            limits: settings.limits,
            profiles: settings.profiles.clone(),
            profile,
            skip_bad_rows: settings.skip_bad_rows,
        },
        stale_after_days: settings.stale_after_days,
        timezone: settings.timezone,
        dry_run,
        progress: progress(settings.progress),
    })
}

/// A spinner counting the transactions decided (how many the files hold is known only once
/// they are read), or nothing.
fn progress(shown: bool) -> indicatif::ProgressBar {
    if !shown {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {pos} transactions read and decided {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// What a run tells the user: what needs attention, then one line of counts (the last line,
/// for scripts that read only that).
fn outcome_text(outcome: &RunOutcome, dry_run: bool) -> String {
    let summary = &outcome.summary;
    let mut text = String::new();
    for input in summary.inputs.iter().filter(|i| i.rejected) {
        let why = input.error.as_deref().unwrap_or(&input.path);
        text.push_str(&format!("rejected {why}\n"));
    }
    if summary.controls.failed > 0 {
        text.push_str(&format!(
            "{} statement control(s) failed; see summary.json and report.html\n",
            summary.controls.failed
        ));
    }
    let skipped = outcome.bad_rows();
    if skipped > 0 {
        text.push_str(&format!(
            "skipped {skipped} bad CSV row(s); they are listed in summary.json and report.html\n"
        ));
    }
    for line in summary.inputs.iter().filter_map(|i| i.read_before_line()) {
        text.push_str(&line);
        text.push('\n');
    }
    let c = &summary.counts;
    text.push_str(&format!(
        "{}run {}: read {}, matched {}, need a human {}, ignored {}; report in {}\n",
        if dry_run { "dry " } else { "" },
        summary.run_id,
        c.read,
        c.matched,
        c.unmatched,
        c.ignored,
        outcome.report_dir.display()
    ));
    text
}

/// 65 when an input was rejected or a bad row skipped (or a control failed, when strict).
fn status(settings: &Settings, outcome: &RunOutcome) -> u8 {
    let summary = &outcome.summary;
    let strict_failure = settings.strict_controls && summary.controls.failed > 0;
    if summary.inputs_rejected > 0 || outcome.bad_rows() > 0 || strict_failure {
        exit::DATA
    } else {
        exit::OK
    }
}

/// A report directory is not overwritten by surprise.
fn refuse_existing_report(out: &Path, force: bool) -> Result<(), Error> {
    if out.join("summary.json").exists() && !force {
        return Err(Error::Usage(format!(
            "{} already holds a report; choose a new --out directory or add --force to replace it",
            out.display()
        )));
    }
    Ok(())
}

pub(super) fn list(
    settings: &Settings,
    args: &RunsListArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let store = open(settings, OpenMode::MustExist)?;
    let runs = crate::ops::runs::list(&store)?;
    let text = match args.format {
        RunsFormat::Json => to_json(&runs),
        RunsFormat::Table => {
            let mut text = format!(
                "{:<36}  {:<20}  {:>6}  {:>8}  {:>8}  {:>8}  {:>8}  {}\n",
                "RUN", "STARTED", "INPUTS", "READ", "MATCHED", "HUMAN", "IGNORED", "REJECTED"
            );
            let n = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
            for r in &runs {
                text.push_str(&format!(
                    "{:<36}  {:<20}  {:>6}  {:>8}  {:>8}  {:>8}  {:>8}  {}\n",
                    r.id,
                    r.started_at,
                    r.inputs,
                    n(r.transactions_read),
                    n(r.matched),
                    n(r.unmatched),
                    n(r.ignored),
                    r.inputs_rejected
                ));
            }
            text.push_str(&format!("{} run(s)\n", runs.len()));
            text
        }
    };
    write_out(out, &text)?;
    Ok(exit::OK)
}

pub(super) fn show(
    settings: &Settings,
    args: &RunIdArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let store = open(settings, OpenMode::MustExist)?;
    let (summary, _) = crate::ops::runs::stored_run(&store, &args.run)?;
    write_out(out, &to_json(&summary))?;
    Ok(exit::OK)
}

/// Writes a past run's report again from the ledger.
pub(super) fn rerender(
    settings: &Settings,
    args: &ReportArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    super::publish_pending(settings, out)?;
    refuse_existing_report(&args.out, args.force)?;
    let store = open(settings, OpenMode::MustExist)?;
    crate::ops::runs::rerender(&store, &args.run, &args.out)?;
    let text = format!(
        "report of run {} written to {}\n",
        args.run,
        args.out.display()
    );
    write_out(out, &text)?;
    Ok(exit::OK)
}

const DEMO_TOPUPS: &str = include_str!("../../fixtures/demo/topups.csv");
const DEMO_STATEMENTS: [(&str, &str); 2] = [
    (
        "2026-11-20.camt053.xml",
        include_str!("../../fixtures/demo/2026-11-20.camt053.xml"),
    ),
    (
        "2026-11-21.camt053.xml",
        include_str!("../../fixtures/demo/2026-11-21.camt053.xml"),
    ),
];

/// The whole job on the built-in data, in a new directory: import, run, and where to look.
pub(super) fn demo(args: &DemoArgs, out: &mut dyn Write) -> Result<u8, Error> {
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("recon-demo-{}", Uuid::now_v7().simple())),
    };
    let db = dir.join("recon.sqlite");
    if db.exists() {
        return Err(Error::Usage(format!(
            "{} already holds a demo; choose another --dir",
            dir.display()
        )));
    }
    let statements = write_demo_files(&dir)?;
    let settings = Settings::isolated(db);
    write_out(out, &format!("demo in {}\n", dir.display()))?;
    super::topups::import(&settings, &dir.join("topups.csv"), false, out)?;
    let report_dir = dir.join("report");
    let files = inputs::resolve(&[statements], &Selection::default())?.files;
    let outcome = crate::ops::run::run(&plan(&settings, false, files, report_dir.clone())?)?;
    write_out(out, &outcome_text(&outcome, false))?;
    write_out(
        out,
        &format!(
            "open {} in a browser, or read {}/unmatched.csv\n",
            report_dir.join("report.html").display(),
            report_dir.display()
        ),
    )?;
    Ok(status(&settings, &outcome))
}

/// Writes the demo's top-ups and statements into `dir`; returns the statements' directory.
fn write_demo_files(dir: &Path) -> Result<PathBuf, Error> {
    let io = |doing: String| move |source| Error::Io { doing, source };
    let statements = dir.join("statements");
    fs::create_dir_all(&statements).map_err(io(format!("creating {}", statements.display())))?;
    let topups_path = dir.join("topups.csv");
    fs::write(&topups_path, DEMO_TOPUPS)
        .map_err(io(format!("writing {}", topups_path.display())))?;
    for (name, content) in DEMO_STATEMENTS {
        let path = statements.join(name);
        fs::write(&path, content).map_err(io(format!("writing {}", path.display())))?;
    }
    Ok(statements)
}
