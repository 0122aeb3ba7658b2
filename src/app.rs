//! One function per command: orchestration only. Business rules live in `matching`, the
//! lifecycle in `topup`, persistence in `store`, output in `report`.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::cli::{
    Cli, Command, CreateArgs, DbArgs, DemoArgs, IdArgs, ImportArgs, ListArgs, ListFormat,
    ProfilesCommand, ReportArgs, RunArgs, RunIdArgs, RunsCommand, RunsFormat, RunsListArgs,
    ShowProfileArgs, TopupsCommand, WebhooksCommand,
};
use crate::config::Settings;
use crate::error::{Error, exit};
use crate::ids::{RunId, TopUpId};
use crate::matching::{Category, EarlierSettlement, Known, Matcher, Outcome};
use crate::reference::{Candidate, find_candidates};
use crate::report::{self, InputSummary, Report, Summary};
use crate::row::Row;
use crate::row::spill::{Mark, Spill, Spilled};
use crate::statement::profile::{Origin, ProfileSet};
use crate::statement::{self, InputError, ReadOptions, StatementFile, Transaction, TxIdentity};
use crate::store::{OpenMode, Store, StoreError, runs, topups};
use crate::topup::{Status, format_timestamp};

/// Runs a parsed command line; output for the user goes to `out`. Returns the exit status.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<u8, Error> {
    let settings = crate::config::resolve(&cli)?;
    let s = &settings;
    match cli.command {
        Command::Run(args) => run_statements(s, &args, out),
        Command::Topups(cmd) => match cmd {
            TopupsCommand::Create(args) => create(s, &args, out),
            TopupsCommand::Import(args) => import(s, &args, out),
            TopupsCommand::Cancel(args) => cancel(s, &args, out),
            TopupsCommand::List(args) => list(s, &args, out),
            TopupsCommand::Show(args) => show(s, &args, out),
        },
        Command::Demo(args) => demo(&args, out),
        Command::Runs(cmd) => match cmd {
            RunsCommand::List(args) => runs_list(s, &args, out),
            RunsCommand::Show(args) => runs_show(s, &args, out),
        },
        Command::Report(args) => rerender(s, &args, out),
        Command::BenchData(args) => bench_data(&args, out),
        Command::Check(_) => check(s, out),
        Command::Backup(args) => backup(s, &args, out),
        Command::Config(_) => config_show(s, out),
        Command::Profiles(cmd) => match cmd {
            ProfilesCommand::List(_) => profiles_list(s, out),
            ProfilesCommand::Show(args) => profiles_show(s, &args, out),
        },
        Command::Webhooks(cmd) => match cmd {
            WebhooksCommand::Deliver(args) => webhooks_deliver(s, &args, out),
            WebhooksCommand::List(args) => webhooks_list(s, &args, out),
            WebhooksCommand::Retry(args) => webhooks_retry(s, &args, out),
        },
        Command::Serve(_) => serve(s),
    }
}

fn open(settings: &Settings, mode: OpenMode) -> Result<Store, Error> {
    Ok(Store::open(
        settings.db()?,
        mode,
        Duration::from_secs(settings.wait_secs),
    )?)
}

fn write_out(out: &mut dyn Write, text: &str) -> Result<(), Error> {
    out.write_all(text.as_bytes()).map_err(|source| Error::Io {
        doing: "writing to standard output".to_string(),
        source,
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("plain data serialises") + "\n"
}

/// One compact JSON object per line, for scripts.
fn to_json_lines<T: serde::Serialize>(items: &[T]) -> String {
    items
        .iter()
        .map(|item| serde_json::to_string(item).expect("plain data serialises") + "\n")
        .collect()
}

fn parse_id(text: &str) -> Result<TopUpId, Error> {
    text.parse().map_err(|e| Error::Usage(format!("{e}")))
}

// ---- topups ---------------------------------------------------------------------------------

fn create(settings: &Settings, args: &CreateArgs, out: &mut dyn Write) -> Result<u8, Error> {
    let request = crate::topup::NewTopUp {
        account_group_id: args.account_group_id.clone(),
        cash_amount: args.amount.clone(),
        currency: args.currency.clone(),
    };
    let now = Utc::now();
    let topup = request.confirm(now).map_err(|errors| {
        let flag = |field| match field {
            "cash_amount" => "--amount",
            "currency" => "--currency",
            _ => "--account-group-id",
        };
        let lines: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", flag(e.field), e.message))
            .collect();
        Error::Usage(lines.join("; "))
    })?;
    let mut store = open(settings, OpenMode::CreateIfMissing)?;
    let tx = store.write()?;
    topups::insert(&tx, &topup, now)?;
    crate::store::commit(tx, "committing")?;
    write_out(out, &to_json(&topup))?;
    Ok(exit::OK)
}

trait NoNanos {
    fn with_nanosecond_zero(self) -> Self;
}

impl NoNanos for DateTime<Utc> {
    /// The API shows whole seconds; keep what we store equal to what we show.
    fn with_nanosecond_zero(self) -> Self {
        chrono::Timelike::with_nanosecond(&self, 0).unwrap_or(self)
    }
}

fn import(settings: &Settings, args: &ImportArgs, out: &mut dyn Write) -> Result<u8, Error> {
    let path = &args.file;
    let file = File::open(path)
        .map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))?;
    let mut reader = BufReader::new(file);
    let format = crate::import::detect_buffered(&mut reader)
        .map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))?;
    let now = Utc::now().with_nanosecond_zero();
    let rows = crate::import::read(reader, format, now)
        .map_err(|e| Error::Data(format!("{}: {e}; nothing was imported", path.display())))?;
    let mut store = open(settings, OpenMode::CreateIfMissing)?;
    let tx = store.write()?;
    topups::insert_many(&tx, &rows, now).map_err(|e| match e {
        StoreError::Import { line, message } => Error::Data(format!(
            "{}: line {line}: {message}; nothing was imported",
            path.display()
        )),
        other => Error::Store(other),
    })?;
    crate::store::commit(tx, "committing the import")?;
    write_out(
        out,
        &format!(
            "imported {} top-up(s) from {}\n",
            rows.len(),
            path.display()
        ),
    )?;
    Ok(exit::OK)
}

fn cancel(settings: &Settings, args: &IdArgs, out: &mut dyn Write) -> Result<u8, Error> {
    let id = parse_id(&args.id)?;
    let mut store = open(settings, OpenMode::MustExist)?;
    let tx = store.write()?;
    let topup = topups::transition(&tx, id, Status::Cancelled, Utc::now(), None)?;
    crate::store::commit(tx, "committing the cancel")?;
    write_out(out, &to_json(&topup))?;
    Ok(exit::OK)
}

fn list(settings: &Settings, args: &ListArgs, out: &mut dyn Write) -> Result<u8, Error> {
    let status = match &args.status {
        Some(text) => Some(
            text.parse::<Status>()
                .map_err(|e| Error::Usage(format!("--status: {e}")))?,
        ),
        None => None,
    };
    let store = open(settings, OpenMode::MustExist)?;
    let all = topups::list(store.conn(), status)?;
    let mut text = String::new();
    match args.format {
        ListFormat::Json => text = to_json(&all),
        ListFormat::Jsonl => text = to_json_lines(&all),
        ListFormat::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            let header = crate::topup::TopUp::FIELDS;
            let mut write = || -> csv::Result<()> {
                w.write_record(header)?;
                for t in &all {
                    w.write_record([
                        t.id.to_string(),
                        format_timestamp(t.created_at),
                        t.account_group_id.to_string(),
                        t.cash_amount_text(),
                        t.currency.to_string(),
                        t.status.to_string(),
                        t.settlement_reference.to_string(),
                    ])?;
                }
                w.flush()?;
                Ok(())
            };
            write().map_err(|e| Error::Internal(format!("writing CSV: {e}")))?;
            text = String::from_utf8(w.into_inner().map_err(|e| Error::Internal(e.to_string()))?)
                .expect("CSV of UTF-8 fields is UTF-8");
        }
        ListFormat::Table => {
            text.push_str(&format!(
                "{:<36}  {:<20}  {:>12}  {:<3}  {:<9}  {}\n",
                "ID", "CREATED", "AMOUNT", "CCY", "STATUS", "REFERENCE"
            ));
            for t in &all {
                text.push_str(&format!(
                    "{:<36}  {:<20}  {:>12}  {:<3}  {:<9}  {}\n",
                    t.id,
                    format_timestamp(t.created_at),
                    t.cash_amount_text(),
                    t.currency,
                    t.status,
                    t.settlement_reference
                ));
            }
            text.push_str(&format!("{} top-up(s)\n", all.len()));
        }
    }
    write_out(out, &text)?;
    Ok(exit::OK)
}

fn show(settings: &Settings, args: &IdArgs, out: &mut dyn Write) -> Result<u8, Error> {
    let id = parse_id(&args.id)?;
    let store = open(settings, OpenMode::MustExist)?;
    let record = topups::get(store.conn(), id)?;
    let mut value = serde_json::to_value(&record.topup).expect("plain data serialises");
    let extra = serde_json::json!({
        "updated_at": record.updated_at,
        "cancelled_at": record.cancelled_at,
        "settlement": record.settlement,
    });
    if let (Some(map), Some(more)) = (value.as_object_mut(), extra.as_object()) {
        map.extend(more.clone());
    }
    write_out(out, &to_json(&value))?;
    Ok(exit::OK)
}

// ---- run ------------------------------------------------------------------------------------

/// Expands directories (their files in name order, hidden files skipped) and checks paths.
fn resolve_inputs(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut files = Vec::new();
    for path in paths {
        let meta = fs::metadata(path)
            .map_err(|e| Error::Usage(format!("cannot read statement {}: {e}", path.display())))?;
        if meta.is_dir() {
            let before = files.len();
            collect_dir(path, &mut files)?;
            if files.len() == before {
                return Err(Error::Usage(format!(
                    "the directory {} holds no statement files",
                    path.display()
                )));
            }
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn collect_dir(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), Error> {
    let read = |e| Error::Usage(format!("cannot list directory {}: {e}", dir.display()));
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(read)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(read)?;
    entries.sort();
    for path in entries {
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect_dir(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

/// A file read to its end (its transactions handed over as it was read), or rejected.
type ReadResult = Result<StatementFile, InputError>;

/// The settlement references a transaction's remittance may name.
fn candidates(transaction: &Transaction) -> Vec<Candidate> {
    find_candidates(
        transaction
            .remittance
            .search_fields()
            .iter()
            .map(String::as_str),
    )
}

/// What the store knows of these transactions' candidate references and identities.
fn lookup(
    conn: &rusqlite::Connection,
    slice: &[(Transaction, Vec<Candidate>)],
) -> Result<Known, Error> {
    let mut asked = HashSet::new();
    let references: Vec<_> = slice
        .iter()
        .flat_map(|(_, candidates)| candidates)
        .map(|c| c.reference)
        .filter(|r| asked.insert(*r))
        .collect();
    let mut known = Known {
        topups: topups::by_references(conn, &references)?,
        ..Known::default()
    };
    known.processed = runs::processed(conn, slice.iter().map(|(t, _)| &t.identity))?;
    Ok(known)
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

/// Where each decided transaction goes in the ledger, in document order, in a byte each (a
/// night has up to a million): the rows of each category are in that same order, so the n-th
/// transaction of a category is its n-th row.
struct Ledger {
    /// The ledger id of the first transaction; the others follow without gaps.
    first_id: i64,
    categories: Vec<Category>,
    /// Where each file recorded begins among the transactions, with its id in
    /// `statement_files`; the files follow each other without gaps too.
    files: Vec<(usize, i64)>,
}

impl Ledger {
    /// The ledger id the next transaction gets.
    fn next_id(&self) -> i64 {
        self.first_id + self.categories.len() as i64
    }
}

/// What a run produced, before it is committed and published.
struct RunResult {
    rows: RunRows,
    ledger: Ledger,
    inputs: Vec<InputSummary>,
    totals: report::summary::Totals,
    controls: Vec<crate::controls::Control>,
}

fn run_statements(settings: &Settings, args: &RunArgs, out: &mut dyn Write) -> Result<u8, Error> {
    match (&args.inbox, &args.out) {
        (Some(inbox), _) => run_inbox(settings, args, inbox, out),
        (None, Some(report_dir)) => {
            let files = resolve_inputs(&args.statements)?;
            refuse_existing_report(report_dir, args.force)?;
            Ok(execute_run(settings, args, files, report_dir, out)?.0)
        }
        (None, None) => Err(Error::Usage(
            "give --out DIR with the statements, or --inbox".into(),
        )),
    }
}

/// Inbox mode: everything in the inbox, a dated report directory, then files moved away.
fn run_inbox(
    settings: &Settings,
    args: &RunArgs,
    inbox: &Path,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let dirs = [&args.archive, &args.quarantine, &args.reports];
    let [Some(archive), Some(quarantine), Some(reports)] = dirs else {
        return Err(Error::Usage(
            "inbox mode needs --archive, --quarantine and --reports".into(),
        ));
    };
    let io = |doing: String| move |source| Error::Io { doing, source };
    for dir in [archive, quarantine, reports] {
        fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    }
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
    if files.is_empty() {
        write_out(
            out,
            &format!("inbox {} is empty: nothing to do\n", inbox.display()),
        )?;
        return Ok(exit::OK);
    }
    let stamp = Utc::now().format("%Y-%m-%dT%H%M%SZ").to_string();
    let mut report_dir = reports.join(&stamp);
    let mut n = 2;
    while report_dir.exists() {
        report_dir = reports.join(format!("{stamp}-{n}"));
        n += 1;
    }
    let (code, summary) = execute_run(settings, args, files, &report_dir, out)?;
    if args.dry_run {
        return Ok(code);
    }
    // The database has committed: only now do the files leave the inbox. A crash before this
    // point leaves them there, and the next run finds them ALREADY_PROCESSED.
    for input in &summary.inputs {
        let from = PathBuf::from(&input.path);
        let name = from
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        let target_dir = if input.rejected { quarantine } else { archive };
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
    point_latest(reports, &report_dir)
        .map_err(io(format!("updating {}/latest", reports.display())))?;
    Ok(code)
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

/// One run over the given files into `report_dir`: returns the exit status and the summary.
fn execute_run(
    settings: &Settings,
    args: &RunArgs,
    files: Vec<PathBuf>,
    report_dir: &Path,
    out: &mut dyn Write,
) -> Result<(u8, Summary), Error> {
    let profile = match &settings.profile {
        Some(arg) => Some(crate::config::resolve_profile(arg, &settings.profiles)?),
        None => None,
    };
    let options = ReadOptions {
        limits: settings.limits,
        profiles: settings.profiles.clone(),
        profile,
        skip_bad_rows: settings.skip_bad_rows,
    };
    let mut store = open(settings, OpenMode::MustExist)?;
    let db_path = store.path().to_path_buf();
    let database = db_path.display().to_string();
    let started = Utc::now();
    let run_id = RunId::from_uuid(Uuid::now_v7());
    let tx = store.write()?;
    runs::start(&tx, run_id, started)?;
    tracing::info!(run = %run_id, inputs = files.len(), dry_run = args.dry_run, "run started");

    let clock = std::time::Instant::now();
    let progress = if settings.progress {
        // How many transactions the files hold is known only once they are read.
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {pos} transactions read and decided {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    // A run that fails leaves no report directory it created. Declared before the rows
    // written aside, `open` and `pending`, so the report's temporary files are gone before it
    // looks.
    let mut created = CreatedDir::new(report_dir);
    fs::create_dir_all(report_dir).map_err(|source| report::ReportError {
        path: report_dir.to_path_buf(),
        source,
    })?;
    let deciding = read_and_decide(&tx, run_id, &files, &options, report_dir, &progress)?;
    let settling = deciding.settling();
    let stale_after_days = settings.stale_after_days;
    let (result, open) = std::thread::scope(|scope| {
        let listing = scope.spawn(|| {
            render_open_after(
                &db_path,
                report_dir,
                started,
                stale_after_days,
                &settling,
                // One thread (`RAYON_NUM_THREADS=1`) means one listing.
                if rayon::current_num_threads() > 1 {
                    SPLIT_LISTING_FROM
                } else {
                    usize::MAX
                },
            )
        });
        // Counted here, while a long listing may still be running, to check it against.
        let result = deciding
            .finish(&tx, started)
            .and_then(|result| Ok((result, topups::count_open(&tx)?)));
        let open = listing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (result, open)
    });
    let ((result, open_topups), open) = (result?, open?);
    drop(settling);
    give_back_memory();
    progress.finish_and_clear();
    tracing::debug!(
        elapsed_ms = clock.elapsed().as_millis() as u64,
        "transactions decided"
    );
    let RunResult {
        mut rows,
        ledger,
        inputs,
        mut totals,
        controls,
    } = result;
    if !totals.check() {
        return Err(Error::Internal(format!(
            "conservation does not hold (read {}, matched {}, unmatched {}, ignored {}); nothing \
             was committed; please report this",
            totals.counts.read,
            totals.counts.matched,
            totals.counts.unmatched,
            totals.counts.ignored
        )));
    }
    if open_topups != open.total() {
        return Err(Error::Internal(format!(
            "the run leaves {open_topups} top-ups open but {} were listed; nothing was \
             committed; please report this",
            open.total()
        )));
    }
    let finished = Utc::now();
    let summary = Summary {
        run_id: run_id.to_string(),
        recon_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: format_timestamp(started),
        finished_at: format_timestamp(finished),
        dry_run: args.dry_run,
        database,
        inputs_rejected: inputs.iter().filter(|i| i.rejected).count(),
        inputs,
        counts: totals.counts.clone(),
        outcomes: totals.outcomes.clone(),
        controls: report::summary::Controls {
            checked: controls.len(),
            failed: controls.iter().filter(|c| !c.ok).count(),
            results: controls,
        },
        open_topups,
        stale_after_days: settings.stale_after_days,
    };
    let summary_json = summary.to_stored();
    // Shared with the page's template, which reads them without a copy.
    let unmatched: Arc<[Row]> = std::mem::take(&mut rows.unmatched).into();
    // The events and the ledger are written while the report renders (the connection stays on
    // this thread); nothing is committed before both are done.
    let (pending, recorded) = report::prepare_alongside(
        report_dir,
        &Report {
            summary: &summary,
            matched: report::Rows::Spilled(&rows.matched),
            unmatched: &unmatched,
            ignored: report::Rows::Spilled(&rows.ignored),
            as_of: started,
            generated_at: finished,
        },
        open,
        || -> Result<(), Error> {
            record_ledger(&tx, run_id, &rows, &unmatched, &ledger)?;
            runs::finish(
                &tx,
                run_id,
                finished,
                &runs::RunTotals {
                    read: summary.counts.read,
                    matched: summary.counts.matched,
                    unmatched: summary.counts.unmatched,
                    ignored: summary.counts.ignored,
                },
                &summary_json,
            )?;
            tracing::debug!(
                elapsed_ms = clock.elapsed().as_millis() as u64,
                "run recorded"
            );
            Ok(())
        },
    )?;
    recorded?;
    tracing::debug!(
        elapsed_ms = clock.elapsed().as_millis() as u64,
        "report rendered"
    );
    let sqlite = |doing| move |source| Error::Store(StoreError::Sqlite { doing, source });
    if args.dry_run {
        tx.rollback().map_err(sqlite("rolling back the dry run"))?;
        tracing::info!(run = %run_id, "dry run: database left unchanged");
    } else {
        crate::store::commit(tx, "committing the run")?;
        tracing::debug!(elapsed_ms = clock.elapsed().as_millis() as u64, "committed");
        tracing::info!(run = %run_id, matched = summary.counts.matched, "committed");
    }
    created.keep();
    for failed in summary.controls.results.iter().filter(|c| !c.ok) {
        tracing::warn!(file = %failed.file, check = %failed.check, "statement control failed: {}", failed.message);
    }
    pending.publish()?;

    let c = &summary.counts;
    let mut line = format!(
        "{}run {}: read {}, matched {}, need a human {}, ignored {}; report in {}\n",
        if args.dry_run { "dry " } else { "" },
        summary.run_id,
        c.read,
        c.matched,
        c.unmatched,
        c.ignored,
        report_dir.display()
    );
    for input in summary.inputs.iter().filter(|i| i.rejected) {
        line.push_str(&format!(
            "rejected {}\n",
            input.error.as_deref().unwrap_or(&input.path)
        ));
    }
    if summary.controls.failed > 0 {
        line.push_str(&format!(
            "{} statement control(s) failed; see summary.json and report.html\n",
            summary.controls.failed
        ));
    }
    let skipped: usize = summary.inputs.iter().map(|i| i.bad_rows.len()).sum();
    if skipped > 0 {
        line.push_str(&format!(
            "skipped {skipped} bad CSV row(s); they are listed in summary.json and report.html\n"
        ));
    }
    write_out(out, &line)?;
    let strict_failure = settings.strict_controls && summary.controls.failed > 0;
    let code = if summary.inputs_rejected > 0 || skipped > 0 || strict_failure {
        exit::DATA
    } else {
        exit::OK
    };
    Ok((code, summary))
}

/// Reads the files and decides every transaction in file order, a batch at a time as it is
/// read: the transactions are not kept, only their rows. [`Deciding::finish`] then settles
/// what matched; the rows are recorded by [`record_ledger`].
///
/// With more than one thread (rayon's count), the files are read on a thread of their own
/// while the batches before are decided; with one, everything happens on this thread. Either
/// way the decisions are the same: they follow file order.
fn read_and_decide(
    tx: &rusqlite::Transaction,
    run_id: RunId,
    files: &[PathBuf],
    options: &ReadOptions,
    report_dir: &Path,
    progress: &indicatif::ProgressBar,
) -> Result<Deciding, Error> {
    let clock = std::time::Instant::now();
    let mut deciding = Deciding::new(runs::next_ledger_id(tx)?, report_dir)?;
    if rayon::current_num_threads() > 1 {
        read_beside(files, options, |read| {
            deciding.take(tx, run_id, read, progress)
        })?;
    } else {
        let mut failed = None;
        read_in_order(files, options, &mut |read| {
            // Nothing more is taken after an error, not even the end of the file it stopped.
            if failed.is_some() {
                return false;
            }
            match deciding.take(tx, run_id, read, progress) {
                Ok(()) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
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

/// From how many open top-ups a listing is split in two halves, each listed from a connection
/// of its own (finding the middle costs a count: about 0.3 s for 2.5M, against 3–4 s of
/// listing them on one thread).
const SPLIT_LISTING_FROM: usize = 200_000;

/// Lists the open top-ups the run leaves into `open_topups.csv`, from a connection of its own
/// while the run's settles: those open before the run (it holds the write lock, so nothing
/// else changes them) less the ones it settles. From `split_from` open top-ups on, a second
/// connection lists the later half on a thread of its own, into a file appended after.
fn render_open_after(
    db: &Path,
    dir: &Path,
    as_of: DateTime<Utc>,
    stale_after_days: i64,
    settling: &HashSet<TopUpId>,
    split_from: usize,
) -> Result<report::OpenRendered, Error> {
    let clock = std::time::Instant::now();
    let list = |conn: &rusqlite::Connection,
                range: topups::OpenRange,
                each: &mut dyn FnMut(&crate::topup::TopUp) -> std::io::Result<()>| {
        topups::for_each_open(conn, range, &mut |topup| {
            if settling.contains(&topup.id) {
                Ok(())
            } else {
                each(topup)
            }
        })
    };
    let conn = crate::store::open_reader(db)?;
    let middle = topups::open_midpoint(&conn, split_from)?;
    let open = match &middle {
        None => report::render_open(dir, as_of, stale_after_days, &mut |each| {
            list(&conn, topups::OpenRange::All, each)
        })?,
        Some(middle) => std::thread::scope(|scope| -> Result<_, Error> {
            let rest = scope.spawn(|| -> Result<_, Error> {
                let conn = crate::store::open_reader(db)?;
                Ok(report::render_open_rest(
                    dir,
                    as_of,
                    stale_after_days,
                    &mut |each| list(&conn, topups::OpenRange::From(middle), each),
                )?)
            });
            let first = report::render_open(dir, as_of, stale_after_days, &mut |each| {
                list(&conn, topups::OpenRange::Before(middle), each)
            });
            let rest = rest
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            Ok(first?.then(rest?)?)
        })?,
    };
    tracing::debug!(
        elapsed_ms = clock.elapsed().as_millis() as u64,
        open = open.total(),
        halves = middle.is_some(),
        "open top-ups listed"
    );
    Ok(open)
}

/// What the reading hands to the deciding, in file order.
enum Read<'p> {
    /// The next transactions of the file being read, with their candidate references.
    Batch(&'p Path, Vec<(Transaction, Vec<Candidate>)>),
    /// The file at this position was read to its end, or rejected.
    Done(usize, &'p Path, ReadResult),
}

/// Finds each transaction's candidate references (on the reading thread, beside the deciding).
fn with_candidates(batch: Vec<Transaction>) -> Vec<(Transaction, Vec<Candidate>)> {
    batch
        .into_iter()
        .map(|transaction| {
            let candidates = candidates(&transaction);
            (transaction, candidates)
        })
        .collect()
}

/// Reads `files` in order, handing `hand` each batch of a file, then the file's end; stops when
/// `hand` returns false.
fn read_in_order<'p>(
    files: &'p [PathBuf],
    options: &ReadOptions,
    hand: &mut dyn FnMut(Read<'p>) -> bool,
) {
    for (position, path) in files.iter().enumerate() {
        let result = statement::read_path_in_batches(path, options, &mut |batch| {
            hand(Read::Batch(path, with_candidates(batch)))
        });
        if !hand(Read::Done(position, path, result)) {
            return;
        }
    }
}

/// Reads `files` in order on a thread of its own and hands each batch to `decide` on this one.
/// At most two batches wait between them, so memory does not grow with the files. An error
/// from `decide` stops the reading.
fn read_beside<'p>(
    files: &'p [PathBuf],
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

/// A file's place in what was decided when it began: a file rejected after some of its
/// transactions were decided is taken out again to here.
struct FileStart {
    /// The file's path as given, shared by its rows.
    name: Arc<str>,
    rows: RowsMark,
    ledger: usize,
    settlements: usize,
    totals: report::summary::Totals,
    progress: u64,
}

/// The rows of a run as they are decided. The matched and the ignored are most of a night and
/// are only read again to be recorded and reported, so they are written aside as they come; the
/// unmatched stay, for their suggestions.
struct DecidedRows {
    matched: Spill,
    unmatched: Vec<Row>,
    ignored: Spill,
}

/// How far [`DecidedRows`] had got.
#[derive(Clone, Copy)]
struct RowsMark {
    matched: Mark,
    unmatched: usize,
    ignored: Mark,
}

/// The rows of a run, all decided.
struct RunRows {
    matched: Spilled,
    unmatched: Vec<Row>,
    ignored: Spilled,
}

/// A failure of the temporary file that rows are written aside to (in the report directory).
fn aside_failed(source: std::io::Error) -> Error {
    Error::Io {
        doing: "writing the run's rows aside to a temporary file in the report directory, or \
                reading them back"
            .to_string(),
        source,
    }
}

impl DecidedRows {
    /// Rows written aside in `dir`.
    fn new(dir: &Path) -> Result<Self, Error> {
        Ok(DecidedRows {
            matched: Spill::new_in(dir).map_err(aside_failed)?,
            unmatched: Vec::new(),
            ignored: Spill::new_in(dir).map_err(aside_failed)?,
        })
    }

    fn mark(&self) -> RowsMark {
        RowsMark {
            matched: self.matched.mark(),
            unmatched: self.unmatched.len(),
            ignored: self.ignored.mark(),
        }
    }

    /// Adds the next row.
    fn push(&mut self, row: Row) -> Result<(), Error> {
        let spill = match row.category() {
            Category::Unmatched => {
                self.unmatched.push(row);
                return Ok(());
            }
            Category::Matched => &mut self.matched,
            Category::Ignored => &mut self.ignored,
        };
        spill.push(&row).map_err(aside_failed)
    }

    /// Takes out every row added since `mark`, showing each to `each` first (in no particular
    /// order).
    fn cut_back(&mut self, mark: RowsMark, each: &mut dyn FnMut(&Row)) -> Result<(), Error> {
        self.unmatched[mark.unmatched..].iter().for_each(&mut *each);
        self.unmatched.truncate(mark.unmatched);
        let mut spilled = |spill: &mut Spill, mark: Mark| -> std::io::Result<()> {
            for row in spill.since(mark)? {
                each(&row?);
            }
            spill.truncate(mark)
        };
        spilled(&mut self.matched, mark.matched).map_err(aside_failed)?;
        spilled(&mut self.ignored, mark.ignored).map_err(aside_failed)
    }

    fn finish(self) -> Result<RunRows, Error> {
        Ok(RunRows {
            matched: self.matched.finish().map_err(aside_failed)?,
            unmatched: self.unmatched,
            ignored: self.ignored.finish().map_err(aside_failed)?,
        })
    }
}

/// The decisions of a run so far, made in file order.
struct Deciding {
    matcher: Matcher,
    totals: report::summary::Totals,
    inputs: Vec<InputSummary>,
    rows: DecidedRows,
    // Ledger ids are handed out in document order before any row is written, so that the
    // settlements can point at their transactions and be applied in table order (the
    // foreign keys are checked at commit).
    ledger: Ledger,
    // The matched top-ups in document order (as the matched rows).
    settlements: Vec<topups::ToSettle>,
    // Each unmatched row's decision, in the same order: its suggestion needs the top-ups as
    // the run leaves them.
    exceptions: Vec<crate::matching::Decision>,
    controls: Vec<crate::controls::Control>,
    chains: HashMap<String, crate::controls::ChainPoint>,
    /// Where the file being read began; `None` before its first batch.
    file_start: Option<FileStart>,
}

impl Deciding {
    fn new(first_ledger_id: i64, dir: &Path) -> Result<Self, Error> {
        Ok(Deciding {
            matcher: Matcher::new(),
            totals: report::summary::Totals::default(),
            inputs: Vec::new(),
            rows: DecidedRows::new(dir)?,
            ledger: Ledger {
                first_id: first_ledger_id,
                categories: Vec::new(),
                files: Vec::new(),
            },
            settlements: Vec::new(),
            exceptions: Vec::new(),
            controls: Vec::new(),
            chains: HashMap::new(),
            file_start: None,
        })
    }

    /// Takes the next thing the reading handed over.
    fn take(
        &mut self,
        tx: &rusqlite::Transaction,
        run_id: RunId,
        read: Read,
        progress: &indicatif::ProgressBar,
    ) -> Result<(), Error> {
        match read {
            Read::Batch(path, batch) => self.batch(tx, path, batch, progress),
            Read::Done(position, path, Ok(file)) => {
                self.file_read(tx, run_id, position, path, file)
            }
            Read::Done(position, path, Err(error)) => {
                self.file_rejected(tx, run_id, position, path, error, progress)
            }
        }
    }

    /// Decides the next transactions of the file being read and makes their rows.
    fn batch(
        &mut self,
        tx: &rusqlite::Transaction,
        path: &Path,
        batch: Vec<(Transaction, Vec<Candidate>)>,
        progress: &indicatif::ProgressBar,
    ) -> Result<(), Error> {
        let start = self.file_start.get_or_insert_with(|| FileStart {
            name: Arc::from(path.display().to_string()),
            rows: self.rows.mark(),
            ledger: self.ledger.categories.len(),
            settlements: self.settlements.len(),
            totals: self.totals.clone(),
            progress: progress.position(),
        });
        let file_name = start.name.clone();
        // Nothing is written before the settlements, so every batch sees the store as the run
        // found it.
        let known = lookup(tx, &batch)?;
        for (transaction, candidates) in batch {
            let mut decision = self.matcher.decide(&transaction, &candidates, &known);
            let ledger_id = self.ledger.next_id();
            let row = Row::new(transaction, &decision, &file_name);
            self.totals.add(&row);
            let category = row.category();
            self.rows.push(row)?;
            match category {
                Category::Matched => {
                    let topup = decision
                        .topup
                        .take()
                        .ok_or_else(|| Error::Internal("a match without a top-up".to_string()))?;
                    self.settlements
                        .push(topups::ToSettle::new(&topup, ledger_id));
                }
                Category::Unmatched => self.exceptions.push(decision),
                Category::Ignored => {}
            }
            self.ledger.categories.push(category);
            progress.inc(1);
        }
        Ok(())
    }

    /// Forgets what was decided of the file being read, if anything.
    fn roll_back_file(&mut self, progress: &indicatif::ProgressBar) -> Result<(), Error> {
        let Some(start) = self.file_start.take() else {
            return Ok(());
        };
        let matcher = &mut self.matcher;
        self.rows.cut_back(start.rows, &mut |row| {
            matcher.forget(row.identity, row.outcome, row.topup_id);
        })?;
        self.ledger.categories.truncate(start.ledger);
        self.settlements.truncate(start.settlements);
        self.exceptions.truncate(start.rows.unmatched);
        self.totals = start.totals;
        progress.set_position(start.progress);
        Ok(())
    }

    /// A file read to its end: recorded with its statements and their controls, and its rows
    /// pointed at it.
    fn file_read(
        &mut self,
        tx: &rusqlite::Transaction,
        run_id: RunId,
        position: usize,
        path: &Path,
        file: StatementFile,
    ) -> Result<(), Error> {
        let file_name = path.display().to_string();
        let start = self.file_start.take();
        let decided = self.ledger.categories.len();
        let first_entry = start.as_ref().map_or(decided, |s| s.ledger);
        let transactions = decided - first_entry;
        let statement_ids: Vec<String> = file
            .statements
            .iter()
            .filter_map(|s| s.id.clone())
            .collect();
        let file_id = runs::record_file(
            tx,
            run_id,
            &runs::FileRecord {
                position,
                path: &file_name,
                sha256: &file.sha256,
                format: Some(&file.format),
                statement_ids: &statement_ids,
                transactions,
                error: None,
            },
        )?;
        self.ledger.files.push((first_entry, file_id));
        self.totals.read(transactions);
        tracing::info!(
            file = file_name.as_str(), format = %file.format, transactions, "read");
        for info in &file.statements {
            self.controls
                .extend(crate::controls::check_statement(&file_name, info));
            if let Some(account) = &info.account {
                let previous = match self.chains.get(account) {
                    Some(point) => Some(point.clone()),
                    None => runs::last_chain_point(tx, account)?,
                };
                self.controls.extend(crate::controls::check_chain(
                    &file_name,
                    info,
                    previous.as_ref(),
                ));
                let next = crate::controls::chain_point(info);
                let advances = match (&previous, next.sequence) {
                    (Some(p), Some(now)) => p.sequence.is_none_or(|before| now > before),
                    _ => true,
                };
                if advances {
                    self.chains.insert(account.clone(), next);
                }
            }
            runs::record_statement(tx, run_id, file_id, info)?;
        }
        self.inputs.push(InputSummary {
            path: file_name,
            sha256: Some(file.sha256),
            format: Some(file.format),
            statements: file.statements,
            transactions,
            rejected: false,
            error: None,
            bad_rows: file.bad_rows,
        });
        Ok(())
    }

    /// A rejected file: what was decided of it is forgotten, and it is recorded with its error.
    fn file_rejected(
        &mut self,
        tx: &rusqlite::Transaction,
        run_id: RunId,
        position: usize,
        path: &Path,
        error: InputError,
        progress: &indicatif::ProgressBar,
    ) -> Result<(), Error> {
        self.roll_back_file(progress)?;
        let file_name = path.display().to_string();
        let sha256 = statement::hash_file(path).unwrap_or_default();
        let message = error.to_string();
        tracing::warn!(file = file_name.as_str(), "rejected: {message}");
        runs::record_file(
            tx,
            run_id,
            &runs::FileRecord {
                position,
                path: &file_name,
                sha256: &sha256,
                format: None,
                statement_ids: &[],
                transactions: 0,
                error: Some(&message),
            },
        )?;
        self.inputs.push(InputSummary {
            path: file_name,
            sha256: Some(sha256).filter(|s| !s.is_empty()),
            format: None,
            statements: Vec::new(),
            transactions: 0,
            rejected: true,
            error: Some(message),
            bad_rows: Vec::new(),
        });
        Ok(())
    }

    /// The top-ups this run settles.
    fn settling(&self) -> HashSet<TopUpId> {
        self.settlements.iter().map(|s| s.id).collect()
    }

    /// Settles what matched, then writes the exceptions' suggestions.
    fn finish(self, tx: &rusqlite::Transaction, at: DateTime<Utc>) -> Result<RunResult, Error> {
        let Deciding {
            rows,
            ledger,
            settlements,
            exceptions,
            inputs,
            totals,
            controls,
            matcher,
            chains,
            file_start: _,
        } = self;
        // What the deciding remembered is not needed to settle: its memory goes first.
        drop((matcher, chains));
        let mut rows = rows.finish()?;
        // Suggestions name a payer's account groups from the payer's matched payments of this
        // run (the newest in the ledger) first.
        let mut payer_groups: HashMap<String, Vec<String>> = exceptions
            .iter()
            .zip(&rows.unmatched)
            .filter(|(decision, _)| decision.outcome == Outcome::NoReference)
            .filter_map(|(_, row)| row.counterparty_iban().map(str::to_string))
            .map(|iban| (iban, Vec::new()))
            .collect();
        // The transactions of this run that settled a top-up paid again later in it.
        let settled_earlier: HashSet<TxIdentity> = exceptions
            .iter()
            .filter_map(|decision| match decision.earlier {
                Some(EarlierSettlement::ThisRun(identity)) => Some(identity),
                _ => None,
            })
            .collect();
        let mut settled_here: HashMap<TxIdentity, String> = HashMap::new();
        if !payer_groups.is_empty() || !settled_earlier.is_empty() {
            // Read forwards, so each payer keeps a window of its newest payments.
            let mut newest: HashMap<&str, std::collections::VecDeque<TopUpId>> = HashMap::new();
            for row in rows.matched.iter() {
                let row = row.map_err(aside_failed)?;
                if let Some(iban) = row.counterparty_iban()
                    && let Some((iban, _)) = payer_groups.get_key_value(iban)
                    && let Some(topup) = row.topup_id
                {
                    let window = newest.entry(iban.as_str()).or_default();
                    if window.len() == crate::store::hints::PAYER_PAYMENTS {
                        window.pop_front();
                    }
                    window.push_back(topup);
                }
                if settled_earlier.contains(&row.identity) {
                    let place = format!("{} {}", row.statement_file, row.position_text());
                    settled_here.insert(row.identity, place);
                }
            }
            let mut groups = Vec::new();
            for (iban, window) in newest {
                let mut newest_first = Vec::with_capacity(window.len());
                for topup in window.iter().rev() {
                    newest_first.push(topups::group_of(tx, *topup)?.to_string());
                }
                groups.push((iban.to_string(), newest_first));
            }
            payer_groups.extend(groups);
        }

        let clock = std::time::Instant::now();
        topups::settle_all(tx, settlements, at)?;
        tracing::debug!(
            elapsed_ms = clock.elapsed().as_millis() as u64,
            "matched top-ups settled and announced"
        );

        // Suggestions look at the top-ups as the run leaves them: a top-up this run settled is
        // never offered for another payment.
        for (row, decision) in rows.unmatched.iter_mut().zip(exceptions) {
            let this_run = row
                .counterparty_iban()
                .and_then(|iban| payer_groups.get(iban))
                .map_or(&[][..], Vec::as_slice);
            let hints = crate::store::hints::for_exception(tx, row, decision.reference, this_run)?;
            let suggestion = crate::suggest::suggest(row, &decision, &hints, &settled_here);
            row.set_suggestion(suggestion.as_deref());
        }
        Ok(RunResult {
            rows,
            ledger,
            inputs,
            totals,
            controls,
        })
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

/// Records every decided transaction in the ledger, in document order.
fn record_ledger(
    tx: &rusqlite::Transaction,
    run_id: RunId,
    rows: &RunRows,
    unmatched: &[Row],
    ledger: &Ledger,
) -> Result<(), Error> {
    let (mut matched, mut ignored) = (rows.matched.iter(), rows.ignored.iter());
    let mut unmatched = unmatched.iter();
    let mut files = ledger.files.iter().peekable();
    let mut file_id = None;
    for (i, category) in ledger.categories.iter().enumerate() {
        while let Some((_, id)) = files.next_if(|(start, _)| *start <= i) {
            file_id = Some(*id);
        }
        let missing = || Error::Internal("the ledger has more rows than were decided".into());
        let file_id = file_id.ok_or_else(missing)?;
        let id = ledger.first_id + i as i64;
        let spilled = match category {
            Category::Unmatched => {
                let row = unmatched.next().ok_or_else(missing)?;
                runs::record_row(tx, run_id, file_id, id, row)?;
                continue;
            }
            Category::Matched => matched.next(),
            Category::Ignored => ignored.next(),
        };
        let row = spilled.ok_or_else(missing)?.map_err(aside_failed)?;
        runs::record_row(tx, run_id, file_id, id, &row)?;
    }
    Ok(())
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

// ---- runs -----------------------------------------------------------------------------------

fn runs_list(settings: &Settings, args: &RunsListArgs, out: &mut dyn Write) -> Result<u8, Error> {
    let store = open(settings, OpenMode::MustExist)?;
    let runs = runs::list(store.conn())?;
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

fn stored_run(store: &Store, run: &str) -> Result<(Summary, i64), Error> {
    let (json, mark) = runs::stored(store.conn(), run)?.ok_or_else(|| {
        Error::Data(format!(
            "no run with id {run}; `recon runs list` shows the runs"
        ))
    })?;
    let summary = Summary::from_stored(&json)
        .map_err(|e| Error::Store(StoreError::Corrupt(format!("run {run}'s summary: {e}"))))?;
    Ok((summary, mark))
}

fn runs_show(settings: &Settings, args: &RunIdArgs, out: &mut dyn Write) -> Result<u8, Error> {
    let store = open(settings, OpenMode::MustExist)?;
    let (summary, _) = stored_run(&store, &args.run)?;
    write_out(out, &to_json(&summary))?;
    Ok(exit::OK)
}

/// Writes a past run's report again from the ledger: the same rows, totals, controls and
/// open top-ups as then; only the generation time differs.
fn rerender(settings: &Settings, args: &ReportArgs, out: &mut dyn Write) -> Result<u8, Error> {
    refuse_existing_report(&args.out, args.force)?;
    let store = open(settings, OpenMode::MustExist)?;
    let (summary, mark) = stored_run(&store, &args.run)?;
    let rows = runs::rows(store.conn(), &args.run)?;
    let open_topups = topups::open_at(store.conn(), mark)?;
    let as_of: DateTime<Utc> = summary.started_at.parse().map_err(|e| {
        Error::Store(StoreError::Corrupt(format!(
            "run {}'s start time: {e}",
            args.run
        )))
    })?;
    let mut by_category: [Vec<Row>; 3] = Default::default();
    for row in rows {
        by_category[category_slot(row.category())].push(row);
    }
    let [matched, unmatched, ignored] = by_category;
    let unmatched: Arc<[Row]> = unmatched.into();
    report::prepare(
        &args.out,
        &Report {
            summary: &summary,
            matched: report::Rows::Memory(&matched),
            unmatched: &unmatched,
            ignored: report::Rows::Memory(&ignored),
            as_of,
            generated_at: Utc::now(),
        },
        &mut |each| open_topups.iter().try_for_each(&mut *each),
    )?
    .publish()?;
    write_out(
        out,
        &format!(
            "report of run {} written to {}\n",
            args.run,
            args.out.display()
        ),
    )?;
    Ok(exit::OK)
}

fn category_slot(category: Category) -> usize {
    match category {
        Category::Matched => 0,
        Category::Unmatched => 1,
        Category::Ignored => 2,
    }
}

// ---- check ------------------------------------------------------------------------------

fn check(settings: &Settings, out: &mut dyn Write) -> Result<u8, Error> {
    let store = open(settings, OpenMode::MustExist)?;
    let findings = crate::store::check::run(store.conn())?;
    let mut text = String::new();
    let mut broken = 0;
    for finding in &findings {
        if finding.problems.is_empty() {
            text.push_str(&format!("ok       {}\n", finding.invariant));
        } else {
            broken += 1;
            text.push_str(&format!("BROKEN   {}\n", finding.invariant));
            for problem in &finding.problems {
                text.push_str(&format!("         - {problem}\n"));
            }
        }
    }
    text.push_str(&if broken == 0 {
        format!("all {} checks hold\n", findings.len())
    } else {
        format!(
            "{broken} of {} checks broken: restore from a backup (`recon backup`) or report this\n",
            findings.len()
        )
    });
    write_out(out, &text)?;
    Ok(if broken == 0 { exit::OK } else { exit::DATA })
}

fn backup(
    settings: &Settings,
    args: &crate::cli::BackupArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    if args.out.exists() && !args.force {
        return Err(Error::Usage(format!(
            "{} exists; choose another file or add --force to replace it",
            args.out.display()
        )));
    }
    let store = open(settings, OpenMode::MustExist)?;
    store.backup(&args.out)?;
    write_out(
        out,
        &format!(
            "backed up {} to {}\n",
            settings.db()?.display(),
            args.out.display()
        ),
    )?;
    Ok(exit::OK)
}

// ---- bench-data ---------------------------------------------------------------------------

fn bench_data(args: &crate::cli::BenchDataArgs, out: &mut dyn Write) -> Result<u8, Error> {
    let spec = crate::benchdata::Spec {
        topups: args.topups,
        transactions: args.transactions,
        seed: args.seed,
        created_at: args.created_at,
    };
    let expected = crate::benchdata::generate(&spec, &args.out).map_err(|source| Error::Io {
        doing: format!("writing the generated night into {}", args.out.display()),
        source,
    })?;
    write_out(
        out,
        &format!(
            "wrote topups.csv, statement.xml, statement.csv and expected.json to {}\nexpected: {}\n",
            args.out.display(),
            serde_json::to_string(&expected).expect("plain data serialises")
        ),
    )?;
    Ok(exit::OK)
}

// ---- profiles -------------------------------------------------------------------------------

fn profiles_list(settings: &Settings, out: &mut dyn Write) -> Result<u8, Error> {
    let mut text = String::new();
    for (profile, origin) in settings.profiles.iter() {
        let from = match origin {
            Origin::BuiltIn => "built-in".to_string(),
            Origin::File(path) => path.clone(),
        };
        text.push_str(&format!(
            "{:<18} {:<10} {}\n",
            profile.name,
            from,
            profile.description.as_deref().unwrap_or("")
        ));
    }
    write_out(out, &text)?;
    Ok(exit::OK)
}

fn profiles_show(
    settings: &Settings,
    args: &ShowProfileArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let profile = crate::config::resolve_profile(&args.name, &settings.profiles)?;
    write_out(out, &ProfileSet::to_toml(&profile))?;
    Ok(exit::OK)
}

fn config_show(settings: &Settings, out: &mut dyn Write) -> Result<u8, Error> {
    let width = settings
        .shown
        .iter()
        .map(|(k, v, _)| k.len() + v.len())
        .max()
        .unwrap_or(0)
        + 6;
    let mut text = String::new();
    for (key, value, source) in &settings.shown {
        let line = if key.starts_with("profiles.") {
            format!("[{key}]")
        } else {
            format!("{key} = {value:?}")
        };
        text.push_str(&format!("{line:<width$} # {source}\n"));
    }
    if settings.config_file.is_none() {
        text.push_str(
            "# no recon.toml in use (give --config FILE or put recon.toml next to the database)\n",
        );
    }
    write_out(out, &text)?;
    Ok(exit::OK)
}

// ---- demo -----------------------------------------------------------------------------------

const DEMO_TOPUPS: &str = include_str!("../fixtures/demo/topups.csv");
const DEMO_STATEMENTS: [(&str, &str); 2] = [
    (
        "2026-11-20.camt053.xml",
        include_str!("../fixtures/demo/2026-11-20.camt053.xml"),
    ),
    (
        "2026-11-21.camt053.xml",
        include_str!("../fixtures/demo/2026-11-21.camt053.xml"),
    ),
];

fn demo(args: &DemoArgs, out: &mut dyn Write) -> Result<u8, Error> {
    let io = |doing: String| move |source| Error::Io { doing, source };
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("recon-demo-{}", Uuid::now_v7().simple())),
    };
    if dir.join("recon.sqlite").exists() {
        return Err(Error::Usage(format!(
            "{} already holds a demo; choose another --dir",
            dir.display()
        )));
    }
    let statements = dir.join("statements");
    fs::create_dir_all(&statements).map_err(io(format!("creating {}", statements.display())))?;
    let topups_path = dir.join("topups.csv");
    fs::write(&topups_path, DEMO_TOPUPS)
        .map_err(io(format!("writing {}", topups_path.display())))?;
    for (name, content) in DEMO_STATEMENTS {
        let path = statements.join(name);
        fs::write(&path, content).map_err(io(format!("writing {}", path.display())))?;
    }
    let settings = Settings::isolated(dir.join("recon.sqlite"));
    let db = DbArgs {
        db: Some(dir.join("recon.sqlite")),
        wait: None,
    };
    write_out(out, &format!("demo in {}\n", dir.display()))?;
    import(
        &settings,
        &ImportArgs {
            db: db.clone(),
            file: topups_path,
        },
        out,
    )?;
    let report_dir = dir.join("report");
    let code = run_statements(
        &settings,
        &RunArgs {
            db,
            out: Some(report_dir.clone()),
            inbox: None,
            archive: None,
            quarantine: None,
            reports: None,
            dry_run: false,
            force: false,
            profile: None,
            skip_bad_rows: false,
            strict_controls: false,
            stale_after_days: None,
            limits: Default::default(),
            statements: vec![statements],
        },
        out,
    )?;
    write_out(
        out,
        &format!(
            "open {} in a browser, or read {}/unmatched.csv\n",
            report_dir.join("report.html").display(),
            report_dir.display()
        ),
    )?;
    Ok(code)
}

// ---- webhooks and the API -------------------------------------------------------------------

/// Reads a secret (signing secret, API token) from its file; it must not be empty.
pub(crate) fn read_secret(path: &Path, what: &str) -> Result<String, Error> {
    let text = fs::read_to_string(path).map_err(|e| {
        Error::Usage(format!(
            "cannot read the {what} file {}: {e}",
            path.display()
        ))
    })?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(Error::Usage(format!(
            "the {what} file {} is empty",
            path.display()
        )));
    }
    Ok(secret.to_string())
}

fn webhooks_deliver(
    settings: &Settings,
    args: &crate::cli::DeliverArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let url = settings.webhook_url.clone().ok_or_else(|| {
        Error::Usage(
            "no webhook receiver given: use --url URL, set RECON_WEBHOOK_URL, or put url under \
             [webhooks] in recon.toml"
                .to_string(),
        )
    })?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Error::Usage(format!(
            "--url {:?} must start with http:// or https://",
            crate::text::clip(&url, 80)
        )));
    }
    let secret_file = settings.webhook_secret_file.as_ref().ok_or_else(|| {
        Error::Usage(
            "no signing secret given: use --secret-file FILE, set RECON_WEBHOOK_SECRET_FILE, or \
             put secret_file under [webhooks] in recon.toml"
                .to_string(),
        )
    })?;
    let options = crate::webhooks::Options {
        url: url.clone(),
        secret: read_secret(secret_file, "webhook secret")?.into_bytes(),
        max_attempts: args.max_attempts,
        timeout: Duration::from_secs(args.timeout.max(1)),
        backoff: Duration::from_millis(args.backoff_ms),
        limit: args.limit,
    };
    let mut store = open(settings, OpenMode::MustExist)?;
    // One deliverer at a time: two would post the same pending events twice.
    let lock_path = PathBuf::from(format!("{}.deliver-lock", store.path().display()));
    let lock = File::create(&lock_path).map_err(|source| Error::Io {
        doing: format!("creating {}", lock_path.display()),
        source,
    })?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            tracing::error!(
                "another `recon webhooks deliver` is running on {}; try again when it has finished",
                store.path().display()
            );
            return Ok(exit::LOCKED);
        }
        Err(fs::TryLockError::Error(source)) => {
            return Err(Error::Io {
                doing: format!("locking {}", lock_path.display()),
                source,
            });
        }
    }
    let outcome = crate::webhooks::deliver(&mut store, &options)?;
    let waiting = crate::store::outbox::pending(store.conn(), 1)?.len();
    write_out(
        out,
        &format!(
            "delivered {} event(s), {} failed{}\n",
            outcome.delivered,
            outcome.failed,
            if waiting > 0 {
                ", more are pending"
            } else {
                ""
            }
        ),
    )?;
    match outcome.stopped {
        Some(why) => {
            tracing::error!(
                "stopped: the receiver at {} is not accepting events ({why}); the remaining events \
                 stay pending for the next `recon webhooks deliver`",
                url
            );
            Ok(exit::LOCKED)
        }
        None => Ok(exit::OK),
    }
}

fn webhooks_list(
    settings: &Settings,
    args: &crate::cli::EventsListArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let status = match &args.status {
        Some(text) => Some(
            text.parse::<crate::store::outbox::Delivery>()
                .map_err(|e| Error::Usage(format!("--status: {e}")))?,
        ),
        None => None,
    };
    let store = open(settings, OpenMode::MustExist)?;
    let events = crate::store::outbox::list(store.conn(), status, args.limit)?;
    let mut text = String::new();
    match args.format {
        crate::cli::EventsFormat::Json => text = to_json(&events),
        crate::cli::EventsFormat::Jsonl => text = to_json_lines(&events),
        crate::cli::EventsFormat::Table => {
            text.push_str(&format!(
                "{:<36}  {:<20}  {:<20}  {:<9}  {:>8}  {}\n",
                "EVENT", "TYPE", "CREATED", "STATUS", "ATTEMPTS", "LAST ERROR"
            ));
            for e in &events {
                text.push_str(&format!(
                    "{:<36}  {:<20}  {:<20}  {:<9}  {:>8}  {}\n",
                    e.id,
                    e.kind,
                    e.created_at,
                    e.status,
                    e.attempts,
                    e.last_error.as_deref().unwrap_or("")
                ));
            }
            text.push_str(&format!("{} event(s)\n", events.len()));
        }
    }
    write_out(out, &text)?;
    Ok(exit::OK)
}

fn webhooks_retry(
    settings: &Settings,
    args: &crate::cli::RetryArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let mut store = open(settings, OpenMode::MustExist)?;
    let tx = store.write()?;
    let queued = crate::store::outbox::retry(&tx, &args.ids)?;
    crate::store::commit(tx, "committing the retry")?;
    write_out(
        out,
        &format!("queued {queued} failed event(s) for delivery again\n"),
    )?;
    Ok(exit::OK)
}

fn serve(settings: &Settings) -> Result<u8, Error> {
    let token_file = settings.api_token_file.as_ref().ok_or_else(|| {
        Error::Usage(
            "the API needs a bearer token: use --token-file FILE, set RECON_API_TOKEN_FILE, or \
             put token_file under [serve] in recon.toml"
                .to_string(),
        )
    })?;
    let token = read_secret(token_file, "API token")?;
    let db = settings.db()?.to_path_buf();
    // Create and migrate the database before the first request, so that errors show at start.
    open(settings, OpenMode::CreateIfMissing)?;
    crate::api::serve(crate::api::Config {
        listen: settings.serve_listen.clone(),
        db,
        token,
        wait: Duration::from_secs(settings.wait_secs),
    })?;
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AccountGroupId, SettlementReference};
    use crate::topup::TopUp;

    /// A database of `n` confirmed top-ups over a week (several at each moment), one in five in
    /// yen, in `dir`.
    fn open_topups(dir: &Path, n: u128) -> (PathBuf, Vec<TopUpId>) {
        let path = dir.join("recon.sqlite");
        let mut store = Store::open(&path, OpenMode::CreateIfMissing, Duration::ZERO).unwrap();
        let first: DateTime<Utc> = "2026-11-01T08:00:00Z".parse().unwrap();
        let topups: Vec<(u64, TopUp)> = (0..n)
            .map(|i| {
                let topup = TopUp {
                    id: TopUpId::from_uuid(Uuid::from_u128(i.wrapping_mul(0x9E37_79B9_7F4A_7C15))),
                    created_at: first + chrono::Duration::hours((i % 170) as i64),
                    account_group_id: AccountGroupId::from_uuid(Uuid::from_u128(i % 3)),
                    cash_amount: rust_decimal::Decimal::new(1000 + i as i64, 2),
                    currency: if i % 5 == 0 { "JPY" } else { "EUR" }.parse().unwrap(),
                    status: Status::Confirmed,
                    settlement_reference: SettlementReference::from_uuid(Uuid::from_u128(
                        0xF00D << 96 | i,
                    )),
                };
                (i as u64 + 1, topup)
            })
            .collect();
        let tx = store.write().unwrap();
        topups::insert_many(&tx, &topups, first).unwrap();
        tx.commit().unwrap();
        (path, topups.iter().map(|(_, t)| t.id).collect())
    }

    #[test]
    fn an_open_listing_split_in_two_halves_is_the_listing_in_one_piece() {
        let dir = tempfile::tempdir().unwrap();
        let (db, ids) = open_topups(dir.path(), 900);
        // Settled by the run: left out of both halves.
        let settling: HashSet<TopUpId> = ids.iter().step_by(4).copied().collect();
        let as_of = "2026-11-10T00:00:00Z".parse().unwrap();
        let render = |out: &str, split_from| {
            render_open_after(&db, &dir.path().join(out), as_of, 2, &settling, split_from).unwrap()
        };
        let whole = render("whole", usize::MAX);
        let halves = render("halves", 2);
        assert_eq!(whole.total(), 900 - 225);
        assert_eq!(halves.total(), whole.total());
        assert_eq!(
            String::from_utf8(halves.bytes()).unwrap(),
            String::from_utf8(whole.bytes()).unwrap()
        );
        let (a, b) = (whole.overview(), halves.overview());
        assert_eq!((a.total, a.stale), (b.total, b.stale));
        assert!(
            a.stale > 0 && a.stale < a.total,
            "some are stale: {}",
            a.stale
        );
        assert_eq!(a.buckets, b.buckets);
        let ids = |o: &report::OpenTopUps| o.oldest.iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(ids(a), ids(b));
    }

    #[test]
    fn the_middle_of_the_open_topups_parts_them_into_two_halves() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = open_topups(dir.path(), 301);
        let conn = crate::store::open_reader(&db).unwrap();
        assert_eq!(topups::open_midpoint(&conn, 302).unwrap(), None);
        let middle = topups::open_midpoint(&conn, 301)
            .unwrap()
            .expect("301 are enough");
        let list = |range| {
            let mut ids = Vec::new();
            topups::for_each_open(&conn, range, &mut |t| {
                ids.push(t.id);
                Ok(())
            })
            .unwrap();
            ids
        };
        let (before, from) = (
            list(topups::OpenRange::Before(&middle)),
            list(topups::OpenRange::From(&middle)),
        );
        assert_eq!((before.len(), from.len()), (150, 151));
        assert_eq!([before, from].concat(), list(topups::OpenRange::All));
    }
}
