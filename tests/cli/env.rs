//! What every area shares: `Env`, a scratch directory with a database path in which the real
//! `recon` binary runs, the fixtures' paths, statement documents to write, and assertions on a
//! command's output.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use recon::statement::{ReadOptions, StatementFile, read_path};
use serde_json::Value;

/// The demo top-up paid by the first entry of the demo's first statement.
pub const T1: &str = "1ab4fef9-a097-4c6f-9345-647025d5fde6";
/// The demo top-up paid by the demo's second entry (a mangled reference).
pub const T2: &str = "d23f0824-128b-4f33-8c5c-7fd0a6a3a450";
/// The account group of the demo's top-ups.
pub const GROUP: &str = "1ea60f56-b67b-61fc-829a-0242ac130003";

/// `fixtures/<path>` of this checkout.
pub fn fixture(path: &str) -> String {
    format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// `fixtures/demo/<name>`: the demo's top-ups and its two camt.053 statements.
pub fn demo(name: &str) -> String {
    fixture(&format!("demo/{name}"))
}

/// `../shared/samples/<kind>` beside this checkout, or `None` with a visible SKIPPED message.
pub fn shared_samples(kind: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/samples")
        .join(kind);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: {} does not exist; the shared samples are not beside this checkout",
            dir.display()
        );
        None
    }
}

/// A statement file read by the library with the default options, which must succeed.
pub fn read_statement(path: impl AsRef<Path>) -> StatementFile {
    read_path(path.as_ref(), &ReadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// A scratch directory with a database path, and helpers to run recon in it.
pub struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The database's path: `recon.sqlite` in the scratch directory.
    pub fn db(&self) -> String {
        self.path("recon.sqlite").display().to_string()
    }

    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        path
    }

    /// The real binary, to be run in the scratch directory, without the database or the
    /// configuration the caller's environment may name.
    pub fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_recon"));
        command
            .current_dir(self.dir.path())
            .env_remove("RECON_DB")
            .env_remove("RECON_CONFIG");
        command
    }

    /// Runs recon with these arguments and waits for it.
    pub fn recon(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// `recon demo` into `demo/` (its report is in `demo/report`).
    pub fn run_demo(&self) -> Output {
        let dir = self.path("demo").display().to_string();
        self.recon(&["demo", "--dir", &dir])
    }

    /// Imports a file of top-ups into the database `db`, which must succeed.
    pub fn import_into(&self, db: &str, topups: &str) {
        assert_ok(&self.recon(&["topups", "import", "--db", db, topups]));
    }

    /// `recon topups list --status STATUS --format FORMAT` on the scratch database.
    pub fn topups_list(&self, status: &str, format: &str) -> Output {
        let db = self.db();
        self.recon(&[
            "topups", "list", "--db", &db, "--status", status, "--format", format,
        ])
    }

    /// Imports the demo top-ups into a new database.
    pub fn with_demo_topups(self) -> Self {
        self.import_into(&self.db(), &demo("topups.csv"));
        self
    }

    /// `recon run` into the report directory `out`, with these flags and statements.
    pub fn run(&self, out: &str, args: &[&str]) -> Output {
        let out_dir = self.path(out).display().to_string();
        let db = self.db();
        let mut all = vec!["run", "--db", &db, "--out", &out_dir];
        all.extend_from_slice(args);
        self.recon(&all)
    }

    /// `recon run` in inbox mode over the scratch directory's `inbox`, into `archive`,
    /// `quarantine` and `reports`, with these flags.
    pub fn inbox_run(&self, flags: &[&str]) -> Output {
        let dir = |name: &str| self.path(name).display().to_string();
        let (db, inbox, archive, quarantine, reports) = (
            self.db(),
            dir("inbox"),
            dir("archive"),
            dir("quarantine"),
            dir("reports"),
        );
        let mut args = vec![
            "run",
            "--db",
            &db,
            "--inbox",
            &inbox,
            "--archive",
            &archive,
            "--quarantine",
            &quarantine,
            "--reports",
            &reports,
        ];
        args.extend_from_slice(flags);
        self.recon(&args)
    }

    /// `recon run` of these statements into `out`, sent SIGTERM after `after`: its output, or
    /// `None` (said as SKIPPED) when it finished before the signal came.
    pub fn run_terminated(
        &self,
        out: &str,
        statements: &[&str],
        after: Duration,
    ) -> Option<Output> {
        let db = self.db();
        let mut args = vec!["run", "--db", &db, "--out", out];
        args.extend_from_slice(statements);
        let child = self
            .command()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(after);
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let output = child.wait_with_output().unwrap();
        if output.status.code() == Some(0) {
            eprintln!("SKIPPED: the run finished before the signal arrived");
            return None;
        }
        Some(output)
    }

    /// Why the run in `out` rejected its first input.
    pub fn input_error(&self, out: &str) -> String {
        self.summary(out)["inputs"][0]["error"]
            .as_str()
            .expect("the first input was rejected")
            .to_string()
    }

    /// The `summary.json` of the report in `out`.
    pub fn summary(&self, out: &str) -> Value {
        serde_json::from_str(&fs::read_to_string(self.path(out).join("summary.json")).unwrap())
            .unwrap()
    }

    /// The rows of a report CSV in `out`, by column name.
    pub fn csv(&self, out: &str, file: &str) -> Vec<BTreeMap<String, String>> {
        let mut reader = csv::Reader::from_path(self.path(out).join(file)).unwrap();
        reader.deserialize().map(|r| r.unwrap()).collect()
    }

    /// `recon topups show`, which must succeed.
    pub fn topup(&self, id: &str) -> Value {
        let out = self.recon(&["topups", "show", "--db", &self.db(), id]);
        assert_ok(&out);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Every event of the outbox in delivery order, recorded or told from the journal, as
    /// `recon webhooks list --format jsonl` gives them.
    pub fn outbox_events(&self) -> Vec<serde_json::Value> {
        outbox_events(self, &self.db(), &[])
    }

    /// A connection to the database, behind recon's back.
    pub fn conn(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.db()).unwrap()
    }

    pub fn sql_count(&self, sql: &str) -> i64 {
        self.conn().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// `recon bench-data` into the directory `name` (with `more` flags); returns its path.
    pub fn bench_night(
        &self,
        name: &str,
        topups: &str,
        transactions: &str,
        more: &[&str],
    ) -> String {
        let dir = self.path(name).display().to_string();
        let mut args = vec![
            "bench-data",
            "--topups",
            topups,
            "--transactions",
            transactions,
            "--out",
            &dir,
        ];
        args.extend_from_slice(more);
        assert_ok(&self.recon(&args));
        dir
    }

    /// Imports the top-ups of a generated night into the database.
    pub fn import_night(&self, dir: &str) {
        self.import_into(&self.db(), &format!("{dir}/topups.csv"));
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Asserts a command exited with `code`, showing its output when it did not.
pub fn assert_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
}

/// Asserts a command exited 0, showing its output when it did not.
pub fn assert_ok(out: &Output) {
    assert_code(out, 0);
}

/// How many transactions of a run's summary ended in `outcome`.
pub fn outcome_count(summary: &Value, outcome: &str) -> u64 {
    summary["outcomes"][outcome]["count"].as_u64().unwrap()
}

/// The fields of a top-up as the API shows it, in the SPEC's order.
pub const TOPUP_FIELDS: [&str; 7] = [
    "id",
    "created_at",
    "account_group_id",
    "cash_amount",
    "currency",
    "status",
    "settlement_reference",
];

/// Asserts that a JSON value is an object with exactly the top-up's fields, in order.
pub fn assert_topup_fields(value: &Value) {
    let keys: Vec<&str> = value
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(keys, TOPUP_FIELDS, "{value}");
}

/// A camt.053.001.02 document around the given entries.
pub fn camt(statement_id: &str, entries: &[String]) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">
<BkToCstmrStmt><GrpHdr><MsgId>M</MsgId><CreDtTm>2026-11-21T22:00:00</CreDtTm></GrpHdr>
<Stmt><Id>{statement_id}</Id><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct>
{}
</Stmt></BkToCstmrStmt></Document>
"#,
        entries.join("\n")
    )
}

/// A booked credit entry with one transaction.
pub fn credit(amount: &str, ccy: &str, remittance: &str, servicer_ref: &str) -> String {
    format!(
        r#"<Ntry><Amt Ccy="{ccy}">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
<BookgDt><Dt>2026-11-21</Dt></BookgDt><ValDt><Dt>2026-11-21</Dt></ValDt><AcctSvcrRef>{servicer_ref}</AcctSvcrRef>
<NtryDtls><TxDtls><Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>
<RltdPties><Dbtr><Nm>Payer</Nm></Dbtr><DbtrAcct><Id><IBAN>DE02120300000000202051</IBAN></Id></DbtrAcct></RltdPties>
<RmtInf><Ustrd>{remittance}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"#
    )
}

/// Writes a token file with these permissions (`recon serve` refuses one open to others).
pub fn write_token(path: &Path, token: &str, mode: u32) {
    fs::write(path, format!("{token}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }
    #[cfg(not(unix))]
    let _ = mode;
}

/// Starts `recon serve` on a free loopback port over `env`'s database, with `token` in a
/// private token file and `extra` flags, its log to `stderr`; returns the process and the base
/// URL it printed.
pub fn start_serve(env: &Env, token: &str, extra: &[&str], stderr: Stdio) -> (Child, String) {
    let token_file = env.path("token");
    write_token(&token_file, token, 0o600);
    let (db, token_file) = (env.db(), token_file.display().to_string());
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--db",
        &db,
        "--token-file",
        &token_file,
    ];
    args.extend_from_slice(extra);
    let mut child = env
        .command()
        .args(&args)
        .env_remove("RECON_LOG")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (child, base)
}

/// How many hidden (temporary) files a report directory holds.
pub fn hidden_files(dir: &Path) -> usize {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count()
}

/// The outbox of the database at `db`, as [`Env::outbox_events`] gives it (`more`: further
/// options of `webhooks list`).
pub fn outbox_events(env: &Env, db: &str, more: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["webhooks", "list", "--db", db, "--format", "jsonl"];
    args.extend_from_slice(more);
    let out = env.recon(&args);
    assert_ok(&out);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}
