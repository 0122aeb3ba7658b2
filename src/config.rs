//! Validated settings, built from the command line, the environment and `recon.toml` (flags win
//! over the environment, the environment over the file, the file over defaults), with where each
//! value came from for `recon config show`. Also the CSV profiles in force.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::{
    Cli, Command, ConfigCommand, DbArgs, LimitArgs, ProfilesCommand, RunsCommand, TopupsCommand,
    WebhooksCommand,
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
}

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
    /// `recon serve`: address to listen on, and the bearer token's file.
    pub serve_listen: String,
    pub api_token_file: Option<PathBuf>,
    /// `recon webhooks deliver`: the receiver, and the signing secret's file.
    pub webhook_url: Option<String>,
    pub webhook_secret_file: Option<PathBuf>,
    /// (key, value, source) for `config show`, in a stable order.
    pub shown: Vec<(String, String, Source)>,
    /// Show a progress bar: stderr is a terminal and -q was not given.
    pub progress: bool,
}

/// Picks the first value given: flag, environment, file, default; and notes where it came from.
fn pick<T: Clone + fmt::Display>(
    shown: &mut Vec<(String, String, Source)>,
    key: &str,
    candidates: [(Option<T>, Source); 3],
    default: T,
) -> T {
    let (value, source) = candidates
        .into_iter()
        .find_map(|(v, s)| v.map(|v| (v, s)))
        .unwrap_or((default, Source::Default));
    shown.push((key.to_string(), value.to_string(), source));
    value
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
        Command::Check(a) => (Some(a), None),
        Command::Backup(a) => (Some(&a.db), None),
        Command::Webhooks(WebhooksCommand::Deliver(a)) => (Some(&a.db), None),
        Command::Webhooks(WebhooksCommand::List(a)) => (Some(&a.db), None),
        Command::Webhooks(WebhooksCommand::Retry(a)) => (Some(&a.db), None),
        Command::Serve(a) => (Some(&a.db), None),
        Command::Config(ConfigCommand::Show(a)) => (Some(&a.db), Some(&a.limits)),
        Command::Demo(_) | Command::BenchData(_) | Command::Profiles(_) => (None, None),
    }
}

/// Resolves the settings of a command line.
pub fn resolve(cli: &Cli) -> Result<Settings, Error> {
    let (db_args, limit_args) = command_args(&cli.command);
    let profiles_db = match &cli.command {
        Command::Profiles(ProfilesCommand::List(a)) => a.db.clone(),
        Command::Profiles(ProfilesCommand::Show(a)) => a.config.db.clone(),
        _ => None,
    };
    let db_given = db_args.and_then(|a| a.db.clone()).or(profiles_db);
    let env_is =
        |var: &str, value: &Path| std::env::var_os(var).is_some_and(|v| Path::new(&v) == value);
    let config_file = match &cli.config {
        Some(path) => Some(path.clone()),
        None => db_given
            .as_ref()
            .map(|db| db.parent().unwrap_or(Path::new(".")).join("recon.toml"))
            .filter(|p| p.is_file())
            .or_else(|| Some(PathBuf::from("recon.toml")).filter(|p| p.is_file())),
    };
    let mut profiles = ProfileSet::built_in();
    let mut file = FileConfig::default();
    if let Some(path) = &config_file {
        let text = fs::read_to_string(path).map_err(|e| {
            Error::Usage(format!(
                "cannot read the configuration {}: {e}",
                path.display()
            ))
        })?;
        file =
            toml::from_str(&text).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
        profiles
            .add_toml(&text, Origin::File(path.display().to_string()))
            .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    }
    let from_file = || {
        config_file
            .clone()
            .map(Source::File)
            .unwrap_or(Source::Default)
    };
    let base = config_file
        .as_ref()
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut shown = Vec::new();
    if let Some(path) = &config_file {
        let source = match &cli.config {
            Some(p) if env_is("RECON_CONFIG", p) => Source::Env("RECON_CONFIG"),
            Some(_) => Source::Flag("--config"),
            None => Source::Found,
        };
        shown.push(("config".to_string(), path.display().to_string(), source));
    }
    let db = match (db_given, file.db.as_ref()) {
        (Some(db), _) => {
            let source = if env_is("RECON_DB", &db) {
                Source::Env("RECON_DB")
            } else {
                Source::Flag("--db")
            };
            shown.push(("db".into(), db.display().to_string(), source));
            Some(db)
        }
        (None, Some(db)) => {
            // A relative path in the file is relative to the file.
            let db = base.join(db);
            shown.push(("db".into(), db.display().to_string(), from_file()));
            Some(db)
        }
        (None, None) => None,
    };
    let wait_secs = pick(
        &mut shown,
        "wait",
        [
            (db_args.and_then(|a| a.wait), Source::Flag("--wait")),
            (None, Source::Default),
            (file.wait, from_file()),
        ],
        0,
    );
    let defaults = Limits::default();
    let l = limit_args.cloned().unwrap_or_default();
    let limits = Limits {
        max_file_bytes: pick(
            &mut shown,
            "limits.max_file_bytes",
            [
                (l.max_file_bytes, Source::Flag("--max-file-bytes")),
                (None, Source::Default),
                (file.limits.max_file_bytes, from_file()),
            ],
            defaults.max_file_bytes,
        ),
        max_transactions: pick(
            &mut shown,
            "limits.max_transactions",
            [
                (l.max_transactions, Source::Flag("--max-transactions")),
                (None, Source::Default),
                (file.limits.max_transactions, from_file()),
            ],
            defaults.max_transactions,
        ),
        max_text_bytes: pick(
            &mut shown,
            "limits.max_text_bytes",
            [
                (l.max_text_bytes, Source::Flag("--max-text-bytes")),
                (None, Source::Default),
                (file.limits.max_text_bytes, from_file()),
            ],
            defaults.max_text_bytes,
        ),
        max_depth: pick(
            &mut shown,
            "limits.max_depth",
            [
                (l.max_depth, Source::Flag("--max-depth")),
                (None, Source::Default),
                (file.limits.max_depth, from_file()),
            ],
            defaults.max_depth,
        ),
    };
    if limits.max_text_bytes == 0
        || limits.max_depth == 0
        || limits.max_transactions == 0
        || limits.max_file_bytes == 0
    {
        return Err(Error::Usage("limits must be greater than zero".to_string()));
    }
    let run = match &cli.command {
        Command::Run(a) => Some(a),
        _ => None,
    };
    let flag_true = |v: bool| v.then_some(true);
    let stale_after_days = pick(
        &mut shown,
        "run.stale_after_days",
        [
            (
                run.and_then(|r| r.stale_after_days),
                Source::Flag("--stale-after-days"),
            ),
            (None, Source::Default),
            (file.run.stale_after_days, from_file()),
        ],
        14,
    );
    let strict_controls = pick(
        &mut shown,
        "run.strict_controls",
        [
            (
                run.and_then(|r| flag_true(r.strict_controls)),
                Source::Flag("--strict-controls"),
            ),
            (None, Source::Default),
            (file.run.strict_controls, from_file()),
        ],
        false,
    );
    let skip_bad_rows = pick(
        &mut shown,
        "run.skip_bad_rows",
        [
            (
                run.and_then(|r| flag_true(r.skip_bad_rows)),
                Source::Flag("--skip-bad-rows"),
            ),
            (None, Source::Default),
            (file.run.skip_bad_rows, from_file()),
        ],
        false,
    );
    let profile = match (
        run.and_then(|r| r.profile.clone()),
        file.run.profile.clone(),
    ) {
        (Some(p), _) => {
            shown.push(("run.profile".into(), p.clone(), Source::Flag("--profile")));
            Some(p)
        }
        (None, Some(p)) => {
            shown.push(("run.profile".into(), p.clone(), from_file()));
            Some(p)
        }
        (None, None) => None,
    };
    // Flags that clap may also have filled from the environment: name the true source.
    let given = |value: Option<String>, flag: &'static str, var: &'static str| {
        value.map(|v| {
            let from_env = std::env::var(var).is_ok_and(|e| e == v);
            (
                v,
                if from_env {
                    Source::Env(var)
                } else {
                    Source::Flag(flag)
                },
            )
        })
    };
    let mut path_setting = |key: &str,
                            given: Option<(String, Source)>,
                            in_file: Option<&PathBuf>|
     -> Option<PathBuf> {
        let (value, source) = match (given, in_file) {
            (Some((v, source)), _) => (PathBuf::from(v), source),
            // A relative path in the file is relative to the file.
            (None, Some(p)) => (base.join(p), from_file()),
            (None, None) => return None,
        };
        shown.push((key.to_string(), value.display().to_string(), source));
        Some(value)
    };
    let (serve, deliver) = match &cli.command {
        Command::Serve(a) => (Some(a), None),
        Command::Webhooks(WebhooksCommand::Deliver(a)) => (None, Some(a)),
        _ => (None, None),
    };
    let api_token_file = path_setting(
        "serve.token_file",
        given(
            serve.and_then(|a| a.token_file.as_ref().map(|p| p.display().to_string())),
            "--token-file",
            "RECON_API_TOKEN_FILE",
        ),
        file.serve.token_file.as_ref(),
    );
    let webhook_secret_file = path_setting(
        "webhooks.secret_file",
        given(
            deliver.and_then(|a| a.secret_file.as_ref().map(|p| p.display().to_string())),
            "--secret-file",
            "RECON_WEBHOOK_SECRET_FILE",
        ),
        file.webhooks.secret_file.as_ref(),
    );
    let listen_given = given(
        serve.and_then(|a| a.listen.clone()),
        "--listen",
        "RECON_LISTEN",
    );
    let (listen, listen_source) = match (listen_given, &file.serve.listen) {
        (Some(given), _) => given,
        (None, Some(l)) => (l.clone(), from_file()),
        (None, None) => ("127.0.0.1:8080".to_string(), Source::Default),
    };
    shown.push(("serve.listen".into(), listen.clone(), listen_source));
    let url_given = given(
        deliver.and_then(|a| a.url.clone()),
        "--url",
        "RECON_WEBHOOK_URL",
    );
    let webhook_url = match (url_given, &file.webhooks.url) {
        (Some((url, source)), _) => Some((url, source)),
        (None, Some(url)) => Some((url.clone(), from_file())),
        (None, None) => None,
    };
    if let Some((url, source)) = &webhook_url {
        shown.push(("webhooks.url".into(), url.clone(), source.clone()));
    }
    for (p, origin) in profiles.iter() {
        let source = match origin {
            Origin::BuiltIn => Source::Default,
            Origin::File(path) => Source::File(PathBuf::from(path)),
        };
        shown.push((
            format!("profiles.{}", p.name),
            p.description.clone().unwrap_or_default(),
            source,
        ));
    }
    Ok(Settings {
        progress: !cli.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        config_file,
        db,
        wait_secs,
        limits,
        stale_after_days,
        strict_controls,
        skip_bad_rows,
        profile,
        profiles,
        serve_listen: listen,
        api_token_file,
        webhook_url: webhook_url.map(|(url, _)| url),
        webhook_secret_file,
        shown,
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
            serve_listen: "127.0.0.1:8080".to_string(),
            api_token_file: None,
            webhook_url: None,
            webhook_secret_file: None,
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
