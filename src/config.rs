//! Validated settings, built from the command line, the environment and `recon.toml` (flags win
//! over the environment, the environment over the file, the file over defaults), with where each
//! value came from for `recon config show`. Also the CSV profiles in force.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::{
    Cli, Command, ConfigCommand, DbArgs, ExceptionsCommand, LimitArgs, ProfilesCommand,
    ReturnsCommand, RunArgs, RunsCommand, StatementsCommand, TopupsCommand, WebhooksCommand,
};
use crate::error::Error;
use crate::statement::Limits;
use crate::statement::profile::{Origin, Profile, ProfileSet};

/// Where a setting's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    /// A `recon.toml` found next to the database or in the current directory.
    Found,
    Flag(&'static str),
    Env(&'static str),
    File(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Found => {
                f.write_str("found (next to the database, or in the current directory)")
            }
            Source::Flag(flag) => write!(f, "flag {flag}"),
            Source::Env(var) => write!(f, "environment {var}"),
            Source::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// `recon.toml`, every section optional.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    db: Option<PathBuf>,
    wait: Option<u64>,
    #[serde(default)]
    run: RunSection,
    #[serde(default)]
    limits: LimitSection,
    #[serde(default)]
    serve: ServeSection,
    #[serde(default)]
    webhooks: WebhooksSection,
    #[serde(default)]
    report: ReportSection,
    #[serde(default)]
    returns: ReturnsSection,
    /// Parsed separately by [`ProfileSet::add_toml`].
    #[serde(default)]
    #[allow(dead_code)]
    profiles: toml::Table,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RunSection {
    stale_after_days: Option<i64>,
    strict_controls: Option<bool>,
    skip_bad_rows: Option<bool>,
    profile: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReportSection {
    timezone: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitSection {
    max_file_bytes: Option<u64>,
    max_transactions: Option<usize>,
    max_text_bytes: Option<usize>,
    max_depth: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ServeSection {
    listen: Option<String>,
    token_file: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WebhooksSection {
    url: Option<String>,
    secret_file: Option<PathBuf>,
    retention_days: Option<u64>,
}

/// `[returns]`: who pays the returns back, as the pain.001 file names them.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReturnsSection {
    debtor_name: Option<String>,
    debtor_bic: Option<String>,
}

/// Days a delivered event is kept in the outbox, unless set otherwise.
pub const DEFAULT_RETENTION_DAYS: u64 = 30;

/// Every setting in force.
pub struct Settings {
    pub config_file: Option<PathBuf>,
    pub db: Option<PathBuf>,
    pub wait_secs: u64,
    pub limits: Limits,
    pub stale_after_days: i64,
    pub strict_controls: bool,
    pub skip_bad_rows: bool,
    pub profile: Option<String>,
    pub profiles: ProfileSet,
    /// The time zone reports show times in beside UTC (`[report] timezone`, `--timezone`).
    pub timezone: chrono_tz::Tz,
    /// `recon serve`: address to listen on, and the bearer token's file.
    pub serve_listen: String,
    pub api_token_file: Option<PathBuf>,
    /// `recon webhooks deliver`: the receiver, and the signing secret's file.
    pub webhook_url: Option<String>,
    pub webhook_secret_file: Option<PathBuf>,
    /// Days a delivered event stays in the outbox before `webhooks deliver` deletes it.
    pub webhook_retention_days: u64,
    /// `[returns]`: the debtor's name and BIC in the pain.001 files of returns.
    pub returns_debtor_name: Option<String>,
    pub returns_debtor_bic: Option<String>,
    /// (key, value, source) for `config show`, in a stable order.
    pub shown: Vec<(String, SettingValue, Source)>,
    /// Show a progress bar: stderr is a terminal and -q was not given.
    pub progress: bool,
}

/// A setting's value as `recon.toml` holds it, so that `recon config show` prints a file recon
/// reads back. (An integer above TOML's largest, 2^63 - 1, can only come from a flag, and is
/// printed as it is; recon refuses it in a file.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettingValue {
    Integer(i128),
    Boolean(bool),
    String(String),
}

impl fmt::Display for SettingValue {
    /// TOML, on one line: a string is a basic string with its control characters escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingValue::Integer(n) => write!(f, "{n}"),
            SettingValue::Boolean(b) => write!(f, "{b}"),
            SettingValue::String(text) => {
                f.write_str("\"")?;
                for c in text.chars() {
                    match c {
                        '"' | '\\' => write!(f, "\\{c}")?,
                        c if c.is_control() => write!(f, "\\u{:04X}", u32::from(c))?,
                        c => write!(f, "{c}")?,
                    }
                }
                f.write_str("\"")
            }
        }
    }
}

/// The value of a setting as `recon config show` prints it.
trait Shown {
    fn shown(&self) -> SettingValue;
}

impl Shown for u64 {
    fn shown(&self) -> SettingValue {
        SettingValue::Integer(i128::from(*self))
    }
}

impl Shown for usize {
    fn shown(&self) -> SettingValue {
        // usize is at most 64 bits on every target recon builds for.
        SettingValue::Integer(*self as i128)
    }
}

impl Shown for i64 {
    fn shown(&self) -> SettingValue {
        SettingValue::Integer(i128::from(*self))
    }
}

impl Shown for bool {
    fn shown(&self) -> SettingValue {
        SettingValue::Boolean(*self)
    }
}

impl Shown for String {
    fn shown(&self) -> SettingValue {
        SettingValue::String(self.clone())
    }
}

impl Shown for PathBuf {
    fn shown(&self) -> SettingValue {
        SettingValue::String(self.display().to_string())
    }
}

/// The settings of `recon run` (`[run]`).
struct RunSettings {
    stale_after_days: i64,
    strict_controls: bool,
    skip_bad_rows: bool,
    profile: Option<String>,
}

/// The settings of `recon serve` and `recon webhooks deliver` (`[serve]`, `[webhooks]`).
struct EndpointSettings {
    api_token_file: Option<PathBuf>,
    webhook_secret_file: Option<PathBuf>,
    serve_listen: String,
    webhook_url: Option<String>,
    webhook_retention_days: u64,
}

/// Picks each setting from its candidates and notes in `shown` where the value came from.
struct Picker {
    shown: Vec<(String, SettingValue, Source)>,
    /// The source of a value read from `recon.toml`.
    file: Source,
    /// The file's directory: relative paths in the file are relative to the file.
    base: PathBuf,
}

impl Picker {
    fn new(config_file: Option<&Path>) -> Picker {
        Picker {
            shown: Vec::new(),
            file: config_file.map_or(Source::Default, |p| Source::File(p.to_path_buf())),
            base: config_file
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        }
    }

    /// Notes a value in force and where it came from.
    fn show<T: Shown>(&mut self, key: &str, value: T, source: Source) -> T {
        self.shown.push((key.to_string(), value.shown(), source));
        value
    }

    /// The value given (a flag, or the environment), else the one in the file.
    fn given_or_file<T>(
        &self,
        given: Option<(T, Source)>,
        in_file: Option<T>,
    ) -> Option<(T, Source)> {
        given.or_else(|| in_file.map(|v| (v, self.file.clone())))
    }

    /// A setting without a default: given, in the file, or none.
    fn pick<T: Shown>(
        &mut self,
        key: &str,
        given: Option<(T, Source)>,
        in_file: Option<T>,
    ) -> Option<T> {
        let (value, source) = self.given_or_file(given, in_file)?;
        Some(self.show(key, value, source))
    }

    /// A setting with a default: given, in the file, else the default.
    fn pick_or<T: Shown>(
        &mut self,
        key: &str,
        given: Option<(T, Source)>,
        in_file: Option<T>,
        default: T,
    ) -> T {
        let (value, source) = self
            .given_or_file(given, in_file)
            .unwrap_or((default, Source::Default));
        self.show(key, value, source)
    }

    /// A path without a default; a relative path in the file is relative to the file.
    fn path(
        &mut self,
        key: &str,
        given: Option<(PathBuf, Source)>,
        in_file: Option<&PathBuf>,
    ) -> Option<PathBuf> {
        let in_file = in_file.map(|p| self.base.join(p));
        self.pick(key, given, in_file)
    }

    fn limits(&mut self, flags: &LimitArgs, file: &LimitSection) -> Result<Limits, Error> {
        let d = Limits::default();
        let limits = Limits {
            max_file_bytes: self.pick_or(
                "limits.max_file_bytes",
                flag(flags.max_file_bytes, "--max-file-bytes"),
                file.max_file_bytes,
                d.max_file_bytes,
            ),
            max_transactions: self.pick_or(
                "limits.max_transactions",
                flag(flags.max_transactions, "--max-transactions"),
                file.max_transactions,
                d.max_transactions,
            ),
            max_text_bytes: self.pick_or(
                "limits.max_text_bytes",
                flag(flags.max_text_bytes, "--max-text-bytes"),
                file.max_text_bytes,
                d.max_text_bytes,
            ),
            max_depth: self.pick_or(
                "limits.max_depth",
                flag(flags.max_depth, "--max-depth"),
                file.max_depth,
                d.max_depth,
            ),
        };
        let Limits {
            max_file_bytes,
            max_transactions,
            max_text_bytes,
            max_depth,
        } = limits;
        if max_text_bytes == 0 || max_depth == 0 || max_transactions == 0 || max_file_bytes == 0 {
            return Err(Error::Usage("limits must be greater than zero".to_string()));
        }
        Ok(limits)
    }

    /// The report's time zone: an IANA name, UTC unless set.
    fn timezone(
        &mut self,
        flags: Option<&RunArgs>,
        file: &ReportSection,
    ) -> Result<chrono_tz::Tz, Error> {
        let name = self.pick_or(
            "report.timezone",
            flag(flags.and_then(|r| r.timezone.clone()), "--timezone"),
            file.timezone.clone(),
            "UTC".to_string(),
        );
        name.parse().map_err(|_| {
            Error::Usage(format!(
                "unknown time zone {name:?}: give an IANA name such as Europe/Berlin or UTC"
            ))
        })
    }

    fn run(&mut self, flags: Option<&RunArgs>, file: &RunSection) -> RunSettings {
        let flag_true = |v: bool| v.then_some(true);
        RunSettings {
            stale_after_days: self.pick_or(
                "run.stale_after_days",
                flag(flags.and_then(|r| r.stale_after_days), "--stale-after-days"),
                file.stale_after_days,
                14,
            ),
            strict_controls: self.pick_or(
                "run.strict_controls",
                flag(
                    flags.and_then(|r| flag_true(r.strict_controls)),
                    "--strict-controls",
                ),
                file.strict_controls,
                false,
            ),
            skip_bad_rows: self.pick_or(
                "run.skip_bad_rows",
                flag(
                    flags.and_then(|r| flag_true(r.skip_bad_rows)),
                    "--skip-bad-rows",
                ),
                file.skip_bad_rows,
                false,
            ),
            profile: self.pick(
                "run.profile",
                flag(flags.and_then(|r| r.profile.clone()), "--profile"),
                file.profile.clone(),
            ),
        }
    }

    fn endpoints(&mut self, command: &Command, file: &FileConfig) -> EndpointSettings {
        let (serve, deliver) = match command {
            Command::Serve(a) => (Some(a), None),
            Command::Webhooks(WebhooksCommand::Deliver(a)) => (None, Some(a)),
            _ => (None, None),
        };
        let path_given = |path: Option<&PathBuf>, flag, var| {
            given(path.map(|p| p.display().to_string()), flag, var)
                .map(|(p, source)| (PathBuf::from(p), source))
        };
        let token_file = serve.and_then(|a| a.token_file.as_ref());
        let secret_file = deliver.and_then(|a| a.secret_file.as_ref());
        EndpointSettings {
            api_token_file: self.path(
                "serve.token_file",
                path_given(token_file, "--token-file", "RECON_API_TOKEN_FILE"),
                file.serve.token_file.as_ref(),
            ),
            webhook_secret_file: self.path(
                "webhooks.secret_file",
                path_given(secret_file, "--secret-file", "RECON_WEBHOOK_SECRET_FILE"),
                file.webhooks.secret_file.as_ref(),
            ),
            serve_listen: self.pick_or(
                "serve.listen",
                given(
                    serve.and_then(|a| a.listen.clone()),
                    "--listen",
                    "RECON_LISTEN",
                ),
                file.serve.listen.clone(),
                "127.0.0.1:8080".to_string(),
            ),
            webhook_url: self.pick(
                "webhooks.url",
                given(
                    deliver.and_then(|a| a.url.clone()),
                    "--url",
                    "RECON_WEBHOOK_URL",
                ),
                file.webhooks.url.clone(),
            ),
            webhook_retention_days: self.pick_or(
                "webhooks.retention_days",
                flag(deliver.and_then(|a| a.retention_days), "--retention-days"),
                file.webhooks.retention_days,
                DEFAULT_RETENTION_DAYS,
            ),
        }
    }

    /// The CSV profiles in force, after the settings.
    fn profiles(&mut self, profiles: &ProfileSet) {
        for (p, origin) in profiles.iter() {
            let source = match origin {
                Origin::BuiltIn => Source::Default,
                Origin::File(path) => Source::File(PathBuf::from(path)),
            };
            let description = p.description.clone().unwrap_or_default();
            self.show(&format!("profiles.{}", p.name), description, source);
        }
    }
}

/// Whether the environment variable `var` holds `value`.
fn env_is(var: &str, value: &Path) -> bool {
    std::env::var_os(var).is_some_and(|v| Path::new(&v) == value)
}

/// A path flag that clap may also have filled from the environment: its true source.
fn env_source(value: &Path, flag: &'static str, var: &'static str) -> Source {
    if env_is(var, value) {
        Source::Env(var)
    } else {
        Source::Flag(flag)
    }
}

/// Where the configuration file in use was named: `--config`, `RECON_CONFIG`, or found.
fn config_source(flag: Option<&PathBuf>) -> Source {
    match flag {
        Some(p) => env_source(p, "--config", "RECON_CONFIG"),
        None => Source::Found,
    }
}

/// A flag's value, if given.
fn flag<T>(value: Option<T>, flag: &'static str) -> Option<(T, Source)> {
    value.map(|v| (v, Source::Flag(flag)))
}

/// A flag that clap may also have filled from the environment, with its true source.
fn given(value: Option<String>, flag: &'static str, var: &'static str) -> Option<(String, Source)> {
    value.map(|v| {
        let from_env = std::env::var(var).is_ok_and(|e| e == v);
        let source = if from_env {
            Source::Env(var)
        } else {
            Source::Flag(flag)
        };
        (v, source)
    })
}

fn command_args(command: &Command) -> (Option<&DbArgs>, Option<&LimitArgs>) {
    match command {
        Command::Run(a) => (Some(&a.db), Some(&a.limits)),
        Command::Topups(t) => match t {
            TopupsCommand::Create(a) => (Some(&a.db), None),
            TopupsCommand::Import(a) => (Some(&a.db), None),
            TopupsCommand::Cancel(a) | TopupsCommand::Show(a) => (Some(&a.db), None),
            TopupsCommand::List(a) => (Some(&a.db), None),
        },
        Command::Runs(RunsCommand::List(a)) => (Some(&a.db), None),
        Command::Runs(RunsCommand::Show(a)) => (Some(&a.db), None),
        Command::Report(a) => (Some(&a.db), None),
        Command::Check(a) => (Some(&a.db), None),
        Command::Statements(StatementsCommand::List(a)) => (Some(&a.db), None),
        Command::Statements(StatementsCommand::Export(a)) => (Some(&a.db), None),
        Command::Backup(a) => (Some(&a.db), None),
        Command::Webhooks(WebhooksCommand::Deliver(a)) => (Some(&a.db), None),
        Command::Webhooks(WebhooksCommand::List(a)) => (Some(&a.db), None),
        Command::Webhooks(WebhooksCommand::Retry(a)) => (Some(&a.db), None),
        Command::Serve(a) => (Some(&a.db), None),
        Command::Exceptions(e) => match e {
            ExceptionsCommand::List(a) => (Some(&a.db), None),
            ExceptionsCommand::Show(a) => (Some(&a.db), None),
            ExceptionsCommand::Settle(a) => (Some(&a.db), None),
            ExceptionsCommand::Return(a) | ExceptionsCommand::Dismiss(a) => (Some(&a.db), None),
            ExceptionsCommand::Reopen(a) => (Some(&a.db), None),
        },
        Command::Returns(ReturnsCommand::List(a)) => (Some(&a.db), None),
        Command::Returns(ReturnsCommand::Export(a)) => (Some(&a.db), None),
        Command::Config(ConfigCommand::Show(a)) => (Some(&a.db), Some(&a.limits)),
        Command::Demo(_) | Command::BenchData(_) | Command::Profiles(_) => (None, None),
    }
}

/// The database given on the command line or in the environment.
fn db_given(command: &Command) -> Option<PathBuf> {
    let profiles_db = match command {
        Command::Profiles(ProfilesCommand::List(a)) => a.db.clone(),
        Command::Profiles(ProfilesCommand::Show(a)) => a.config.db.clone(),
        _ => None,
    };
    let (db_args, _) = command_args(command);
    db_args.and_then(|a| a.db.clone()).or(profiles_db)
}

/// `--config FILE`, else `recon.toml` next to the database, else in the current directory.
fn config_file(flag: Option<&PathBuf>, db: Option<&PathBuf>) -> Option<PathBuf> {
    match flag {
        Some(path) => Some(path.clone()),
        None => db
            .map(|db| db.parent().unwrap_or(Path::new(".")).join("recon.toml"))
            .filter(|p| p.is_file())
            .or_else(|| Some(PathBuf::from("recon.toml")).filter(|p| p.is_file())),
    }
}

/// Reads `recon.toml` (when one is in use) and adds its profiles to the built-in ones.
fn read_file(path: Option<&Path>) -> Result<(FileConfig, ProfileSet), Error> {
    let mut profiles = ProfileSet::built_in();
    let Some(path) = path else {
        return Ok((FileConfig::default(), profiles));
    };
    let text = fs::read_to_string(path).map_err(|e| {
        Error::Usage(format!(
            "cannot read the configuration {}: {e}",
            path.display()
        ))
    })?;
    let file =
        toml::from_str(&text).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    profiles
        .add_toml(&text, Origin::File(path.display().to_string()))
        .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    Ok((file, profiles))
}

/// Resolves the settings of a command line.
pub fn resolve(cli: &Cli) -> Result<Settings, Error> {
    let (db_args, limit_args) = command_args(&cli.command);
    let db_given = db_given(&cli.command);
    let config_file = config_file(cli.config.as_ref(), db_given.as_ref());
    let (file, profiles) = read_file(config_file.as_deref())?;
    let mut picker = Picker::new(config_file.as_deref());
    if let Some(path) = &config_file {
        picker.show("config", path.clone(), config_source(cli.config.as_ref()));
    }
    let db_given = db_given.map(|db| {
        let source = env_source(&db, "--db", "RECON_DB");
        (db, source)
    });
    let db = picker.path("db", db_given, file.db.as_ref());
    let wait = flag(db_args.and_then(|a| a.wait), "--wait");
    let wait_secs = picker.pick_or("wait", wait, file.wait, 0);
    let limits = picker.limits(&limit_args.cloned().unwrap_or_default(), &file.limits)?;
    let run_args = match &cli.command {
        Command::Run(a) => Some(a),
        _ => None,
    };
    let run = picker.run(run_args, &file.run);
    let timezone = picker.timezone(run_args, &file.report)?;
    let endpoints = picker.endpoints(&cli.command, &file);
    let returns_debtor_name = picker.pick("returns.debtor_name", None, file.returns.debtor_name);
    let returns_debtor_bic = picker.pick("returns.debtor_bic", None, file.returns.debtor_bic);
    picker.profiles(&profiles);
    Ok(Settings {
        progress: !cli.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        config_file,
        db,
        wait_secs,
        limits,
        stale_after_days: run.stale_after_days,
        strict_controls: run.strict_controls,
        skip_bad_rows: run.skip_bad_rows,
        profile: run.profile,
        profiles,
        timezone,
        serve_listen: endpoints.serve_listen,
        api_token_file: endpoints.api_token_file,
        webhook_url: endpoints.webhook_url,
        webhook_retention_days: endpoints.webhook_retention_days,
        webhook_secret_file: endpoints.webhook_secret_file,
        returns_debtor_name,
        returns_debtor_bic,
        shown: picker.shown,
    })
}

impl Settings {
    /// Settings that ignore the user's configuration (for the demo).
    pub fn isolated(db: PathBuf) -> Settings {
        Settings {
            config_file: None,
            db: Some(db),
            wait_secs: 0,
            limits: Limits::default(),
            stale_after_days: 14,
            strict_controls: false,
            skip_bad_rows: false,
            profile: None,
            profiles: ProfileSet::built_in(),
            timezone: chrono_tz::Tz::UTC,
            serve_listen: "127.0.0.1:8080".to_string(),
            api_token_file: None,
            webhook_url: None,
            webhook_retention_days: DEFAULT_RETENTION_DAYS,
            webhook_secret_file: None,
            returns_debtor_name: None,
            returns_debtor_bic: None,
            shown: Vec::new(),
            progress: false,
        }
    }

    /// The database path, or a usage error saying how to give one.
    pub fn db(&self) -> Result<&Path, Error> {
        self.db.as_deref().ok_or_else(|| {
            Error::Usage(
                "no database given: use --db PATH, set RECON_DB, or put db = \"PATH\" in recon.toml"
                    .to_string(),
            )
        })
    }
}

/// `--profile NAME|FILE`: a known profile by name, or a TOML file holding exactly one profile.
pub fn resolve_profile(arg: &str, profiles: &ProfileSet) -> Result<Profile, Error> {
    if let Some(profile) = profiles.get(arg) {
        return Ok(profile.clone());
    }
    let path = Path::new(arg);
    if !path.is_file() {
        let names: Vec<&str> = profiles.iter().map(|(p, _)| p.name.as_str()).collect();
        return Err(Error::Usage(format!(
            "no profile named {arg:?} and no such file; known profiles: {}",
            names.join(", ")
        )));
    }
    let text = fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))?;
    let mut only_file = ProfileSet::empty();
    only_file
        .add_toml(&text, Origin::File(path.display().to_string()))
        .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    let mut found = only_file.iter().map(|(p, _)| p.clone());
    match (found.next(), found.next()) {
        (Some(profile), None) => Ok(profile),
        _ => Err(Error::Usage(format!(
            "{arg} must hold exactly one [profiles.NAME] section to be used with --profile"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_beats_the_file_the_file_beats_the_default_and_each_source_is_noted() {
        let mut picker = Picker::new(Some(Path::new("/etc/recon/recon.toml")));
        assert_eq!(picker.pick_or("a", flag(Some(1u64), "--a"), Some(2), 3), 1);
        assert_eq!(picker.pick_or("b", flag(None, "--b"), Some(2u64), 3), 2);
        assert_eq!(picker.pick_or("c", flag(None, "--c"), None, 3u64), 3);
        assert_eq!(picker.pick::<String>("d", None, None), None);
        // A relative path in the file is relative to the file.
        let secret = PathBuf::from("secret");
        assert_eq!(
            picker.path("e", None, Some(&secret)),
            Some(PathBuf::from("/etc/recon/secret"))
        );
        let file = Source::File(PathBuf::from("/etc/recon/recon.toml"));
        let shown: Vec<_> = picker
            .shown
            .iter()
            .map(|(k, v, s)| (k.as_str(), v.to_string(), s))
            .collect();
        assert_eq!(
            shown,
            [
                ("a", "1".to_string(), &Source::Flag("--a")),
                ("b", "2".to_string(), &file),
                ("c", "3".to_string(), &Source::Default),
                ("e", "\"/etc/recon/secret\"".to_string(), &file),
            ]
        );
    }

    #[test]
    fn a_shown_value_is_toml_on_one_line_that_reads_back_the_same() {
        let text = "C:\\recon \"night\"\nbell\u{7} ü";
        let shown = SettingValue::String(text.to_string()).to_string();
        assert_eq!(shown, r#""C:\\recon \"night\"\u000Abell\u0007 ü""#);
        let table: toml::Table = toml::from_str(&format!("k = {shown}")).unwrap();
        assert_eq!(table["k"].as_str(), Some(text));
        assert_eq!(SettingValue::Integer(-3).to_string(), "-3");
        assert_eq!(SettingValue::Boolean(true).to_string(), "true");
    }
}
