//! What the user typed: clap structures with raw values only; `app` validates and acts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Settles customer top-ups against the bank's statements and reports every exception.
#[derive(Parser, Debug)]
#[command(
    name = "recon",
    version,
    about,
    long_about = None,
    after_help = "Exit status: 0 done (exceptions are in the report), 2 usage or configuration \
                  error, 65 an input rejected or bad data, 66 a path that must exist does not, 70 \
                  internal error (nothing committed), 73 a file or folder cannot be created, 74 \
                  reading or writing failed (disk full), 75 another recon process holds the \
                  database (or webhook events wait for a retry), 77 permission denied."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Configuration file (default: recon.toml next to the database, else in the current
    /// directory). Every setting in it is also a flag; flags win.
    #[arg(long, global = true, env = "RECON_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Only errors on stderr (for cron); `run` prints its summary only when something needs a
    /// person (an exception, a rejected input, an input read before, a failed control), so cron
    /// mails only then.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More detail on stderr (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log lines as text for people or JSON lines for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines on stderr look.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The database every command works on.
#[derive(Args, Debug, Clone)]
pub struct DbArgs {
    /// SQLite database file with the top-ups and the run ledger (or RECON_DB, or `db` in
    /// recon.toml).
    #[arg(long, env = "RECON_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Seconds to wait when another recon process is writing to the database, before exiting 75
    /// (default 0).
    #[arg(long, value_name = "SECS")]
    pub wait: Option<u64>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Read statements, settle the top-ups they pay, and write the report.
    ///
    /// Every transaction read ends in exactly one outcome (see the README). All database
    /// changes are one transaction: a run that fails or is killed settles nothing, and running
    /// the same statements again settles nothing new.
    Run(RunArgs),
    /// Manage top-ups in the database.
    #[command(subcommand)]
    Topups(TopupsCommand),
    /// Run the whole job on built-in sample data, in a new directory, and show the report.
    Demo(DemoArgs),
    /// List or show the CSV profiles (bank export formats) recon knows.
    #[command(subcommand)]
    Profiles(ProfilesCommand),
    /// Show the effective configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// List past runs or show one.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Write the report of a past run again, from the database alone.
    Report(ReportArgs),
    /// Copy the database to a file with SQLite's online backup API (see the README to restore).
    Backup(BackupArgs),
    /// Check the database: SQLite's integrity check and recon's invariants (exit 0 only when all
    /// hold).
    Check(CheckArgs),
    /// List the statement files kept in the database, or give one's original bytes back.
    #[command(subcommand)]
    Statements(StatementsCommand),
    /// Generate a night for benchmarks and tests: top-ups, a camt.053 statement, the same night
    /// as CSV, and the expected outcome counts.
    BenchData(BenchDataArgs),
    /// Post the outbox of events (top-up confirmed, settled, cancelled; cash balance updated) to
    /// the platform, list them, or queue failed ones again.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// The worklist: the exceptions left open until someone resolves them (settle, return,
    /// dismiss, reopen), each audited.
    #[command(subcommand)]
    Exceptions(ExceptionsCommand),
    /// The payments sent back to payers: list them, or export the pending ones as pain.001.
    #[command(subcommand)]
    Returns(ReturnsCommand),
    /// Serve the top-up HTTP API (create, read, list, cancel) on the same database as the runs.
    ///
    /// A write waits for a nightly run up to --wait seconds (default 10 here, not 0), then
    /// answers 503. Listen on 127.0.0.1 behind a TLS-terminating proxy: it speaks plain HTTP.
    Serve(ServeArgs),
}

#[derive(Subcommand, Debug)]
pub enum WebhooksCommand {
    /// Post every pending event, in order, signed with HMAC-SHA256 (see the README for how a
    /// receiver verifies it). Exits 75 when the receiver stays unreachable.
    Deliver(DeliverArgs),
    /// List events (newest last).
    List(EventsListArgs),
    /// Queue failed events for delivery again: the given ids, or every failed event.
    Retry(RetryArgs),
}

#[derive(Args, Debug)]
pub struct DeliverArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The platform's webhook endpoint, http:// or https:// (or `url` under [webhooks] in
    /// recon.toml).
    #[arg(long, env = "RECON_WEBHOOK_URL", value_name = "URL")]
    pub url: Option<String>,
    /// File holding the signing secret, `whsec_<base64>` as Standard Webhooks writes them; one
    /// per line while secrets rotate, each signing every post (or `secret_file` under
    /// [webhooks]).
    #[arg(long, env = "RECON_WEBHOOK_SECRET_FILE", value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Also send the `Recon-*` headers of recon before Standard Webhooks and post the bare
    /// payload as they did, for receivers not yet verifying the Standard Webhooks way (the
    /// event id and type are not signed in that form).
    #[arg(long)]
    pub legacy_signature: bool,
    /// Attempts per event before it is marked FAILED: the first, then one per step of the retry
    /// schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, 24 h, 24 h; beyond it the last step
    /// repeats). A later call (cron) makes the attempts that fall due.
    #[arg(long, default_value_t = crate::webhooks::DEFAULT_MAX_ATTEMPTS,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
    /// Seconds to wait for the receiver's answer to one post.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub timeout: u64,
    /// No longer used: retries follow the schedule (see --max-attempts). Still accepted so that
    /// existing crontabs keep working.
    #[arg(long, value_name = "MS", hide = true)]
    pub backoff_ms: Option<u64>,
    /// Post at most this many times, then stop (default: everything that is due).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Post again to a receiver that answered 410 Gone (recon stops posting to such a URL).
    #[arg(long)]
    pub reenable_endpoint: bool,
    /// Delete events delivered more than this many days ago from the outbox (default 30, or
    /// `retention_days` under [webhooks]); `recon check` counts what is kept and pruned.
    #[arg(long, value_name = "DAYS")]
    pub retention_days: Option<u64>,
    /// For tests only: every step of the retry schedule multiplied by this factor (e.g. 0.0001).
    #[arg(long, value_name = "FACTOR", hide = true)]
    pub schedule_scale: Option<String>,
}

/// Output formats of `webhooks list`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventsFormat {
    Table,
    Json,
    Jsonl,
}

#[derive(Args, Debug)]
pub struct EventsListArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Only events in this delivery status: pending, delivered or failed.
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// Only the newest N.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Output format (json and jsonl include each event's payload).
    #[arg(long, value_enum, default_value_t = EventsFormat::Table)]
    pub format: EventsFormat,
}

#[derive(Args, Debug)]
pub struct RetryArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Event ids to queue again (default: every failed event).
    #[arg(value_name = "EVENT_ID")]
    pub ids: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Address and port to listen on; port 0 picks a free one, and the address is printed
    /// (default 127.0.0.1:8080, or `listen` under [serve] in recon.toml).
    #[arg(long, env = "RECON_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// File holding the bearer token clients must send as `Authorization: Bearer <token>` (or
    /// `token_file` under [serve]).
    #[arg(long, env = "RECON_API_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Seconds a client has to send a request's whole header; then its connection is closed.
    #[arg(long, value_name = "SECS", default_value_t = crate::api::server::DEFAULT_HEADER_TIMEOUT_SECS)]
    pub header_timeout: u64,
    /// Seconds a request may take from its header to its answer (408 after that); must be
    /// longer than --wait.
    #[arg(long, value_name = "SECS", default_value_t = crate::api::server::DEFAULT_REQUEST_TIMEOUT_SECS)]
    pub request_timeout: u64,
    /// Open connections at most; more wait in the system's listen queue.
    #[arg(long, value_name = "N", default_value_t = crate::api::server::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The backup file to write (must not exist unless --force).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Also decompress every stored statement file and check its SHA-256 (reads them all:
    /// slow on a large database).
    #[arg(long)]
    pub deep: bool,
}

#[derive(Subcommand, Debug)]
pub enum StatementsCommand {
    /// List the stored statement files, oldest first: SHA-256, format, sizes, statement ids,
    /// and the run that first read each.
    List(StatementsListArgs),
    /// Write a stored statement file's original bytes, exactly as the bank sent them.
    Export(StatementsExportArgs),
}

#[derive(Args, Debug)]
pub struct StatementsListArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = StatementsFormat::Table)]
    pub format: StatementsFormat,
}

/// Output formats of `statements list`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatementsFormat {
    Table,
    Csv,
    Json,
}

#[derive(Args, Debug)]
pub struct StatementsExportArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The file's SHA-256 (from `statements list` or a summary.json), or its first 8 or more
    /// hex digits.
    #[arg(value_name = "SHA256")]
    pub sha256: String,
    /// Write the file here instead of standard output (must not exist unless --force).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace an existing --out file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct BenchDataArgs {
    /// Number of open top-ups.
    #[arg(long, default_value_t = 120_000)]
    pub topups: usize,
    /// Number of bank transactions in the statement.
    #[arg(long, default_value_t = 100_000)]
    pub transactions: usize,
    /// Seed: the same seed gives the same files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// When the top-ups were created: a later day (with another seed) makes a second night's
    /// top-ups, imported after the first night's run [default: 2026-11-01T08:00:00Z].
    #[arg(long, value_name = "TIMESTAMP")]
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The day the statement books its transactions on: a history of nights books each on a
    /// day of its own, as a bank does [default: 2026-11-21].
    #[arg(long, value_name = "DATE")]
    pub booked_on: Option<chrono::NaiveDate>,
    /// Directory to write into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The night's outcomes: a realistic mix, or (to measure a worst case) every transaction
    /// the same payment of the first top-up, or every one an unknown reference.
    #[arg(long, value_enum, default_value_t = crate::benchdata::Mix::Realistic, hide = true)]
    pub mix: crate::benchdata::Mix,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print every setting in force and where its value came from (flag, environment, file,
    /// default).
    Show(ShowConfigArgs),
}

#[derive(Args, Debug)]
pub struct ShowConfigArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Subcommand, Debug)]
pub enum RunsCommand {
    /// List committed runs, newest first.
    List(RunsListArgs),
    /// Show a run's summary (the same JSON as its summary.json).
    Show(RunIdArgs),
}

#[derive(Args, Debug)]
pub struct RunsListArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = RunsFormat::Table)]
    pub format: RunsFormat,
}

/// Output formats of `runs list`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunsFormat {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct RunIdArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The run's id (from `runs list` or a summary.json).
    #[arg(value_name = "RUN_ID")]
    pub run: String,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The run's id.
    #[arg(value_name = "RUN_ID")]
    pub run: String,
    /// Directory for the report (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace a report already in --out.
    #[arg(long)]
    pub force: bool,
}

#[derive(Subcommand, Debug)]
pub enum ProfilesCommand {
    /// List built-in and configured profiles.
    List(ConfigArgs),
    /// Print one profile as TOML: a starting point for your own in recon.toml.
    Show(ShowProfileArgs),
}

/// Where user settings come from.
#[derive(Args, Debug, Clone)]
pub struct ConfigArgs {
    /// The database whose directory may hold recon.toml.
    #[arg(long, env = "RECON_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,
}

/// Limits that protect a run from hostile or broken files (defaults in the README).
#[derive(Args, Debug, Clone, Default)]
pub struct LimitArgs {
    /// Largest input file accepted, in bytes.
    #[arg(long, value_name = "BYTES")]
    pub max_file_bytes: Option<u64>,
    /// Most transactions accepted from one file.
    #[arg(long, value_name = "N")]
    pub max_transactions: Option<usize>,
    /// Longest text of one XML element or CSV field, or one MT940 line, in bytes.
    #[arg(long, value_name = "BYTES")]
    pub max_text_bytes: Option<usize>,
    /// Deepest XML element nesting accepted.
    #[arg(long, value_name = "N")]
    pub max_depth: Option<usize>,
}

#[derive(Args, Debug)]
pub struct ShowProfileArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The profile's name.
    #[arg(value_name = "NAME")]
    pub name: String,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Directory for the report (created if missing).
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "inbox",
        conflicts_with = "inbox"
    )]
    pub out: Option<PathBuf>,
    /// Inbox mode for cron: read every file in DIR (name order), write the report into a new
    /// dated directory under --reports, then move read files to --archive and rejected ones to
    /// --quarantine (only after the database commit).
    #[arg(long, value_name = "DIR", requires_all = ["archive", "quarantine", "reports"])]
    pub inbox: Option<PathBuf>,
    /// Where inbox mode moves the files it read.
    #[arg(long, value_name = "DIR", requires = "inbox")]
    pub archive: Option<PathBuf>,
    /// Where inbox mode moves rejected files, each with a NAME.error.txt beside it.
    #[arg(long, value_name = "DIR", requires = "inbox")]
    pub quarantine: Option<PathBuf>,
    /// Where inbox mode writes each run's report directory (and a `latest` link).
    #[arg(long, value_name = "DIR", requires = "inbox")]
    pub reports: Option<PathBuf>,
    /// Report what would happen without changing the database.
    #[arg(long)]
    pub dry_run: bool,
    /// Replace a report already in --out.
    #[arg(long)]
    pub force: bool,
    /// Read every CSV input with this profile (a name, or a TOML file with one profile)
    /// instead of recognising it by its header.
    #[arg(long, value_name = "NAME|FILE")]
    pub profile: Option<String>,
    /// Read the good rows of a CSV with bad rows and list the bad ones, instead of rejecting the
    /// file (the exit status is then 65).
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// Exit 65 when a statement control fails (balances, the statement's own totals, the chain
    /// of statements per account); by default a failed control is reported and the run exits 0.
    #[arg(long)]
    pub strict_controls: bool,
    /// Open top-ups older than this many days are flagged as stale in the report (default 14).
    #[arg(long, value_name = "DAYS")]
    pub stale_after_days: Option<i64>,
    /// Show the report's times in this time zone beside UTC (an IANA name such as
    /// Europe/Berlin; default UTC).
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Read only the files of a statement folder or the inbox whose names match this pattern
    /// (`*.xml`; may be repeated). Files named on the command line are always read.
    #[arg(long, value_name = "PATTERN")]
    pub include: Vec<String>,
    /// Inbox mode: leave files changed less than this many seconds ago for the next run (they
    /// may still be being written). Writers should write `NAME.part` and rename when done.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub stable_secs: u64,
    /// What to print: a summary for people (its last line the counts), or the run's
    /// summary.json as one JSON document for scripts.
    #[arg(long, value_enum, default_value_t = RunFormat::Text)]
    pub format: RunFormat,
    /// Statement files (camt.052/053/054 XML, MT940, or a bank's CSV export), or directories of
    /// them (read in name order).
    #[arg(
        value_name = "STATEMENT",
        required_unless_present = "inbox",
        conflicts_with = "inbox"
    )]
    pub statements: Vec<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum TopupsCommand {
    /// Create a top-up and print it as the API would (status CONFIRMED).
    Create(CreateArgs),
    /// Load top-ups from CSV (the API's field names as header) or JSON lines; all or nothing.
    Import(ImportArgs),
    /// Cancel an open (NEW or CONFIRMED) top-up.
    Cancel(IdArgs),
    /// List top-ups.
    List(ListArgs),
    /// Show one top-up, and how and when it settled.
    Show(IdArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The customer's account group (UUID).
    #[arg(long, value_name = "UUID")]
    pub account_group_id: String,
    /// Amount, e.g. 200.00 (dot decimal, no more decimals than the currency has).
    #[arg(long, value_name = "AMOUNT")]
    pub amount: String,
    /// ISO 4217 currency code, e.g. EUR.
    #[arg(long, value_name = "CODE")]
    pub currency: String,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// CSV or JSON-lines file of top-ups.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Skip the rows already stored as they are (a platform's rolling export, which repeats
    /// older rows) and count them; a row whose id is stored with other fields is an error, and
    /// nothing is imported then.
    #[arg(long)]
    pub skip_existing: bool,
}

#[derive(Args, Debug)]
pub struct IdArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The top-up's id.
    #[arg(value_name = "ID")]
    pub id: String,
}

/// Output formats of `run`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunFormat {
    Text,
    Json,
}

/// Output formats of `topups list`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Csv,
    Json,
    Jsonl,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Only top-ups in this status (NEW, CONFIRMED, SETTLED, CANCELLED), or `open` (NEW and
    /// CONFIRMED: with `--format csv`, the full listing the report's open_topups.csv is not).
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Directory to work in (default: a new directory under the system's temp directory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum ExceptionsCommand {
    /// List exceptions (open ones by default), oldest first.
    List(ExceptionsListArgs),
    /// Show one exception: the transaction, the top-ups it may pay and why, its history.
    Show(ExceptionIdArgs),
    /// Settle an open top-up with this payment (another amount is recorded as an under- or
    /// overpayment), or with several payments of the same payer.
    Settle(SettleArgs),
    /// Send the money back to the payer: a PENDING return, exported with `recon returns
    /// export`.
    Return(ResolveArgs),
    /// Close the exception: it is handled elsewhere (say how in the note).
    Dismiss(ResolveArgs),
    /// Undo the resolution in force (a settle opens its top-up again and takes the money off
    /// the cash balance; a return is cancelled if not exported yet).
    Reopen(ReopenArgs),
}

/// Output formats of `exceptions list` and `returns list`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorklistFormat {
    Table,
    Csv,
    Json,
}

#[derive(Args, Debug)]
pub struct ExceptionsListArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// open (default), resolved or all.
    #[arg(long, value_name = "STATUS", default_value = "open")]
    pub status: String,
    /// Only this outcome, e.g. AMOUNT_MISMATCH or NO_REFERENCE.
    #[arg(long, value_name = "OUTCOME")]
    pub reason: Option<String>,
    /// Only this currency.
    #[arg(long, value_name = "CODE")]
    pub currency: Option<String>,
    /// Only exceptions open at least this many days.
    #[arg(long, value_name = "DAYS")]
    pub min_age_days: Option<i64>,
    /// Only exceptions open at most this many days.
    #[arg(long, value_name = "DAYS")]
    pub max_age_days: Option<i64>,
    /// Only payments naming a top-up of this account group.
    #[arg(long, value_name = "UUID")]
    pub account_group: Option<String>,
    /// Only amounts of at least this much.
    #[arg(long, value_name = "AMOUNT")]
    pub min_amount: Option<String>,
    /// Only amounts of at most this much.
    #[arg(long, value_name = "AMOUNT")]
    pub max_amount: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = WorklistFormat::Table)]
    pub format: WorklistFormat,
}

#[derive(Args, Debug)]
pub struct ExceptionIdArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The exception's id (its ledger id, from `exceptions list`).
    #[arg(value_name = "ID")]
    pub id: i64,
}

/// What every resolution records: why and who.
#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Why (required; kept with the resolution and sent in its event).
    #[arg(long, value_name = "TEXT")]
    pub note: String,
    /// Who resolves it (default: the OS user).
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
}

#[derive(Args, Debug)]
pub struct ResolveArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The exception's id.
    #[arg(value_name = "ID")]
    pub id: i64,
    #[command(flatten)]
    pub audit: AuditArgs,
}

#[derive(Args, Debug)]
pub struct SettleArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The exception's id, then any other payments of the same payer that pay it together.
    #[arg(value_name = "ID", required = true)]
    pub ids: Vec<i64>,
    /// The open top-up to settle.
    #[arg(long, value_name = "TOPUP_ID")]
    pub topup: String,
    #[command(flatten)]
    pub audit: AuditArgs,
}

#[derive(Args, Debug)]
pub struct ReopenArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The exception's id.
    #[arg(value_name = "ID")]
    pub id: i64,
    /// Also cancel a return already exported, once the bank confirms it did not execute it.
    #[arg(long)]
    pub cancel_exported: bool,
    #[command(flatten)]
    pub audit: AuditArgs,
}

#[derive(Subcommand, Debug)]
pub enum ReturnsCommand {
    /// List returns, oldest first.
    List(ReturnsListArgs),
    /// Write the pending returns of one account as a pain.001.001.09 file for the bank, and
    /// mark them EXPORTED.
    Export(ReturnsExportArgs),
}

#[derive(Args, Debug)]
pub struct ReturnsListArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Only returns in this status: PENDING, EXPORTED, DONE or CANCELLED.
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = WorklistFormat::Table)]
    pub format: WorklistFormat,
}

#[derive(Args, Debug)]
pub struct ReturnsExportArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The pain.001 file to write (replaced if it exists).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Our account (IBAN) whose pending returns to export; needed when several accounts have
    /// some.
    #[arg(long, value_name = "IBAN")]
    pub account: Option<String>,
    /// The debtor's name in the file (or `debtor_name` under [returns] in recon.toml).
    #[arg(long, value_name = "NAME")]
    pub debtor_name: Option<String>,
    /// The requested execution date, YYYY-MM-DD (default: today).
    #[arg(long, value_name = "DATE")]
    pub execution_date: Option<String>,
}
