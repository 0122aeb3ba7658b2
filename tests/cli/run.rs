//! End-to-end tests: the real `recon` binary on real files in a temporary directory, with the
//! real SQLite database. Each test is named after the behaviour a user relies on.

use crate::env as common;

use common::assert_ok;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;
#[allow(unused_imports)]
use std::process::Command as _StdCommand;

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo");
const T1: &str = "1ab4fef9-a097-4c6f-9345-647025d5fde6";
const GROUP: &str = "1ea60f56-b67b-61fc-829a-0242ac130003";

/// A scratch directory with a database path and helpers to run recon in it.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn db(&self) -> String {
        self.path("recon.sqlite").display().to_string()
    }

    fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        path
    }

    fn recon(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_recon"))
            .current_dir(self.dir.path())
            .env_remove("RECON_DB")
            .args(args)
            .output()
            .unwrap()
    }

    /// Imports the demo top-ups into a new database.
    fn with_demo_topups(self) -> Self {
        let out = self.recon(&[
            "topups",
            "import",
            "--db",
            &self.db(),
            &format!("{DEMO}/topups.csv"),
        ]);
        assert_ok(&out);
        self
    }

    /// `recon run` into the report directory `out`, with these flags and statements.
    fn run(&self, out: &str, args: &[&str]) -> Output {
        let out_dir = self.path(out).display().to_string();
        let db = self.db();
        let mut all = vec!["run", "--db", &db, "--out", &out_dir];
        all.extend_from_slice(args);
        self.recon(&all)
    }

    /// Why the run in `out` rejected its first input.
    fn input_error(&self, out: &str) -> String {
        self.summary(out)["inputs"][0]["error"]
            .as_str()
            .expect("the first input was rejected")
            .to_string()
    }

    fn summary(&self, out: &str) -> Value {
        serde_json::from_str(&fs::read_to_string(self.path(out).join("summary.json")).unwrap())
            .unwrap()
    }

    fn csv(&self, out: &str, file: &str) -> Vec<BTreeMap<String, String>> {
        let mut reader = csv::Reader::from_path(self.path(out).join(file)).unwrap();
        reader.deserialize().map(|r| r.unwrap()).collect()
    }

    fn topup(&self, id: &str) -> Value {
        let out = self.recon(&["topups", "show", "--db", &self.db(), id]);
        assert_ok(&out);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn sql_count(&self, sql: &str) -> i64 {
        let conn = rusqlite::Connection::open(self.db()).unwrap();
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// `recon bench-data` into the directory `name` (with `more` flags); returns its path.
    fn bench_night(&self, name: &str, topups: &str, transactions: &str, more: &[&str]) -> String {
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
    fn import_night(&self, dir: &str) {
        let db = self.db();
        assert_ok(&self.recon(&[
            "topups",
            "import",
            "--db",
            &db,
            &format!("{dir}/topups.csv"),
        ]));
    }
}

fn demo(name: &str) -> String {
    format!("{DEMO}/{name}")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn assert_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
}

fn outcome_count(summary: &Value, outcome: &str) -> u64 {
    summary["outcomes"][outcome]["count"].as_u64().unwrap()
}

/// A camt.053.001.02 document around the given entries.
fn camt(statement_id: &str, entries: &[String]) -> String {
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
fn credit(amount: &str, ccy: &str, remittance: &str, servicer_ref: &str) -> String {
    format!(
        r#"<Ntry><Amt Ccy="{ccy}">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
<BookgDt><Dt>2026-11-21</Dt></BookgDt><ValDt><Dt>2026-11-21</Dt></ValDt><AcctSvcrRef>{servicer_ref}</AcctSvcrRef>
<NtryDtls><TxDtls><Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>
<RltdPties><Dbtr><Nm>Payer</Nm></Dbtr><DbtrAcct><Id><IBAN>DE02120300000000202051</IBAN></Id></DbtrAcct></RltdPties>
<RmtInf><Ustrd>{remittance}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"#
    )
}

// ---- the whole job ---------------------------------------------------------------------------

#[test]
fn demo_runs_from_any_directory_and_reports_every_outcome() {
    let env = Env::new();
    let dir = env.path("demo").display().to_string();
    let out = env.recon(&["demo", "--dir", &dir]);
    assert_ok(&out);
    assert!(stdout(&out).contains("report.html"), "{}", stdout(&out));
    let summary = env.summary("demo/report");
    let counts = &summary["counts"];
    assert_eq!(counts["read"], 18);
    assert_eq!(counts["matched"], 5);
    assert_eq!(counts["unmatched"], 10);
    assert_eq!(counts["ignored"], 3);
    assert_eq!(counts["conservation_holds"], true);
    let expected = [
        ("MATCHED", 5),
        ("NO_REFERENCE", 2),
        ("UNKNOWN_REFERENCE", 1),
        ("AMBIGUOUS_REFERENCE", 1),
        ("AMOUNT_MISMATCH", 1),
        ("CURRENCY_MISMATCH", 1),
        ("ALREADY_SETTLED", 2),
        ("TOPUP_CANCELLED", 1),
        ("REVERSAL", 1),
        ("DEBIT", 1),
        ("NOT_BOOKED", 1),
        ("ALREADY_PROCESSED", 1),
    ];
    for (outcome, count) in expected {
        assert_eq!(outcome_count(&summary, outcome), count, "{outcome}");
    }
    assert_eq!(
        summary["outcomes"]["MATCHED"]["by_currency"]["EUR"]["sum"],
        "415.00"
    );
    for file in [
        "matched.csv",
        "unmatched.csv",
        "ignored.csv",
        "open_topups.csv",
        "summary.json",
        "report.html",
        "report.xlsx",
    ] {
        assert!(env.path("demo/report").join(file).is_file(), "{file}");
    }
    assert_eq!(env.csv("demo/report", "open_topups.csv").len(), 6);
}

#[test]
fn run_settles_matched_topups_and_records_which_transaction_did() {
    let env = Env::new().with_demo_topups();
    let out = env.run("r1", &[&demo("2026-11-20.camt053.xml")]);
    assert_ok(&out);
    let topup = env.topup(T1);
    assert_eq!(topup["status"], "SETTLED");
    let settlement = &topup["settlement"];
    assert!(
        settlement["statement_file"]
            .as_str()
            .unwrap()
            .ends_with("2026-11-20.camt053.xml")
    );
    assert_eq!(settlement["entry_number"], 1);
    assert_eq!(settlement["amount"], "200.00");
    assert_eq!(settlement["counterparty_iban"], "DE02120300000000202051");
    let matched = env.csv("r1", "matched.csv");
    let row = matched.iter().find(|r| r["topup_id"] == T1).unwrap();
    assert_eq!(row["extracted_reference"], T1);
    assert_eq!(row["booking_date"], "2026-11-20");
    assert_eq!(row["amount"], "200.00");
    // The open top-ups are those open before the run less those it settled: exactly what the
    // database lists as open once it committed.
    let listed: Vec<String> = env
        .csv("r1", "open_topups.csv")
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert!(!listed.contains(&T1.to_string()));
    let list = |status: &str| {
        env.recon(&[
            "topups",
            "list",
            "--db",
            &env.db(),
            "--status",
            status,
            "--format",
            "csv",
        ])
    };
    let still_open = list("confirmed");
    assert_ok(&still_open);
    let mut expected: Vec<String> = csv::Reader::from_reader(&still_open.stdout[..])
        .deserialize::<BTreeMap<String, String>>()
        .map(|r| r.unwrap()["id"].clone())
        .collect();
    let new = list("new");
    assert_ok(&new);
    expected.extend(
        csv::Reader::from_reader(&new.stdout[..])
            .deserialize::<BTreeMap<String, String>>()
            .map(|r| r.unwrap()["id"].clone()),
    );
    let (mut listed, mut expected) = (listed, expected);
    listed.sort();
    expected.sort();
    assert!(!listed.is_empty());
    assert_eq!(listed, expected);
}

#[test]
fn running_the_same_statements_again_settles_nothing_new() {
    let env = Env::new().with_demo_topups();
    let files = [
        demo("2026-11-20.camt053.xml"),
        demo("2026-11-21.camt053.xml"),
    ];
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    assert_ok(&env.run("first", &files));
    let settled_before = env.sql_count("SELECT count(*) FROM topups WHERE status = 'SETTLED'");
    assert_ok(&env.run("second", &files));
    let summary = env.summary("second");
    assert_eq!(summary["counts"]["read"], 18);
    assert_eq!(summary["counts"]["matched"], 0);
    // Every booked transaction was seen; only the pending one is reported as pending again.
    assert_eq!(outcome_count(&summary, "ALREADY_PROCESSED"), 17);
    assert_eq!(outcome_count(&summary, "NOT_BOOKED"), 1);
    assert_eq!(
        env.sql_count("SELECT count(*) FROM topups WHERE status = 'SETTLED'"),
        settled_before
    );
    assert_eq!(env.sql_count("SELECT count(*) FROM runs"), 2);
}

#[test]
fn dry_run_writes_the_same_report_and_leaves_the_database_untouched() {
    let env = Env::new().with_demo_topups();
    let out_dir = env.path("dry").display().to_string();
    let stmt = demo("2026-11-20.camt053.xml");
    let out = env.recon(&[
        "run",
        "--db",
        &env.db(),
        "--out",
        &out_dir,
        "--dry-run",
        &stmt,
    ]);
    assert_ok(&out);
    assert!(stdout(&out).starts_with("dry run"), "{}", stdout(&out));
    let dry = env.summary("dry");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["counts"]["matched"], 4);
    assert_eq!(env.topup(T1)["status"], "CONFIRMED");
    assert_eq!(env.sql_count("SELECT count(*) FROM bank_transactions"), 0);
    assert_eq!(env.sql_count("SELECT count(*) FROM runs"), 0);
    assert_ok(&env.run("real", &[&stmt]));
    let real = env.summary("real");
    assert_eq!(real["outcomes"], dry["outcomes"]);
    assert_eq!(
        env.csv("real", "unmatched.csv").len(),
        env.csv("dry", "unmatched.csv").len()
    );
}

#[test]
fn a_payment_later_in_the_same_run_for_a_settled_topup_is_already_settled() {
    let env = Env::new().with_demo_topups();
    let stmt = env.write(
        "twice.xml",
        camt(
            "S1",
            &[
                credit("200.00", "EUR", &format!("topup {T1}"), "R1"),
                credit(
                    "200.00",
                    "EUR",
                    &format!("TOPUP {}", T1.replace('-', "").to_uppercase()),
                    "R2",
                ),
            ],
        ),
    );
    assert_ok(&env.run("r", &[stmt.to_str().unwrap()]));
    let summary = env.summary("r");
    assert_eq!(outcome_count(&summary, "MATCHED"), 1);
    assert_eq!(outcome_count(&summary, "ALREADY_SETTLED"), 1);
    let unmatched = env.csv("r", "unmatched.csv");
    assert!(
        unmatched[0]["suggestion"].contains("refund 200.00 EUR to DE02120300000000202051"),
        "{:?}",
        unmatched[0]
    );
}

#[test]
fn a_topup_paid_again_thousands_of_entries_later_is_already_settled_and_a_rerun_processes_nothing()
{
    // The store is asked about a large file a slice at a time; a payment in a later slice
    // still sees the settlement made earlier in the run, and a second run sees every one.
    let env = Env::new().with_demo_topups();
    let mut entries = vec![credit("200.00", "EUR", &format!("topup {T1}"), "R0")];
    entries.extend(
        (1..=9000).map(|i| credit("1.00", "EUR", "rent", &format!("D{i}")).replace("CRDT", "DBIT")),
    );
    entries.push(credit("200.00", "EUR", &format!("topup {T1}"), "R9"));
    let stmt = env.write("long.xml", camt("S1", &entries));
    let stmt = stmt.to_str().unwrap();
    assert_ok(&env.run("r", &[stmt]));
    let summary = env.summary("r");
    assert_eq!(outcome_count(&summary, "MATCHED"), 1);
    assert_eq!(outcome_count(&summary, "DEBIT"), 9000);
    assert_eq!(outcome_count(&summary, "ALREADY_SETTLED"), 1);
    let unmatched = env.csv("r", "unmatched.csv");
    assert_eq!(unmatched[0]["position"], "entry 9002 detail 1");
    assert!(
        unmatched[0]["suggestion"].contains(&format!(
            "settled earlier in this run by {stmt} entry 1 detail 1"
        )),
        "{:?}",
        unmatched[0]
    );

    let again = env.run("r2", &[stmt]);
    assert_ok(&again);
    let summary = env.summary("r2");
    assert_eq!(outcome_count(&summary, "ALREADY_PROCESSED"), 9002);
    assert_eq!(summary["counts"]["matched"], 0);
}

#[test]
fn identical_payments_in_one_file_are_two_payments_and_shared_servicer_refs_do_not_merge() {
    let env = Env::new().with_demo_topups();
    let same = credit("10.00", "EUR", "gift", "SAME-REF");
    let other = credit("11.00", "EUR", "gift", "SAME-REF");
    let stmt = env.write("dup.xml", camt("S1", &[same.clone(), same, other]));
    assert_ok(&env.run("r", &[stmt.to_str().unwrap()]));
    assert_eq!(outcome_count(&env.summary("r"), "NO_REFERENCE"), 3);
    // The same bank transactions in a re-issued statement (other id, other file) are seen.
    let again = env.write(
        "reissued.xml",
        camt(
            "S1-REISSUED",
            &[
                credit("10.00", "EUR", "gift", "SAME-REF"),
                credit("10.00", "EUR", "gift", "SAME-REF"),
            ],
        ),
    );
    assert_ok(&env.run("r2", &[again.to_str().unwrap()]));
    assert_eq!(outcome_count(&env.summary("r2"), "ALREADY_PROCESSED"), 2);
}

// ---- rejected inputs ---------------------------------------------------------------------------

#[test]
fn a_malformed_file_is_rejected_with_its_position_and_the_others_are_processed() {
    let env = Env::new().with_demo_topups();
    let good = demo("2026-11-20.camt053.xml");
    let text = fs::read_to_string(&good).unwrap();
    let broken = env.write("broken.xml", &text[..text.len() / 2]);
    let out = env.run("r", &[broken.to_str().unwrap(), &good]);
    assert_code(&out, 65);
    assert!(
        stdout(&out).contains("rejected") && stdout(&out).contains("broken.xml"),
        "{}",
        stdout(&out)
    );
    let summary = env.summary("r");
    assert_eq!(summary["inputs_rejected"], 1);
    let rejected = &summary["inputs"][0];
    assert_eq!(rejected["rejected"], true);
    let error = rejected["error"].as_str().unwrap();
    assert!(
        error.contains("broken.xml") && error.contains("line ") && error.contains("truncated"),
        "{error}"
    );
    assert_eq!(summary["counts"]["matched"], 4);
    assert_eq!(env.topup(T1)["status"], "SETTLED");
    assert_eq!(
        env.sql_count("SELECT count(*) FROM statement_files WHERE error IS NOT NULL"),
        1
    );
}

#[test]
fn a_file_cut_off_after_thousands_of_entries_leaves_no_trace_and_its_payments_count_elsewhere() {
    // Transactions are decided as a file is read; one that turns out truncated at its end
    // must be taken out whole: no ledger row, no settlement, no identity claimed, and none of
    // the rows written aside (its debits are far more than one write buffer of them).
    let env = Env::new().with_demo_topups();
    // The debits come first, so they are decided (and written aside) before the cut is found.
    let mut entries = vec![credit("200.00", "EUR", &format!("topup {T1}"), "R0")];
    entries.extend(
        (1..=3000).map(|i| credit("2.00", "EUR", "fee", &format!("D{i}")).replace("CRDT", "DBIT")),
    );
    entries.extend((1..=9000).map(|i| credit("1.00", "EUR", "gift", &format!("G{i}"))));
    let whole = camt("S1", &entries);
    let cut = &whole[..whole.rfind("<Ntry>").unwrap() + 20];
    let broken = env.write("cut.xml", cut);
    let good = env.write("whole.xml", &whole);
    let out = env.run("r", &[broken.to_str().unwrap(), good.to_str().unwrap()]);
    assert_code(&out, 65);
    let summary = env.summary("r");
    assert_eq!(summary["inputs"][0]["rejected"], true);
    assert_eq!(summary["counts"]["read"], 12001);
    // The payments of the cut file come again, whole, in the next file: they count there.
    assert_eq!(outcome_count(&summary, "MATCHED"), 1);
    assert_eq!(outcome_count(&summary, "NO_REFERENCE"), 9000);
    assert_eq!(outcome_count(&summary, "DEBIT"), 3000);
    assert_eq!(outcome_count(&summary, "ALREADY_PROCESSED"), 0);
    assert_eq!(
        env.sql_count("SELECT count(*) FROM bank_transactions"),
        12001
    );
    assert_eq!(
        env.sql_count(
            "SELECT count(*) FROM bank_transactions b JOIN statement_files f ON f.id = b.file_id
             WHERE f.path LIKE '%whole.xml'"
        ),
        12001
    );
    assert_eq!(env.topup(T1)["status"], "SETTLED");
    assert_eq!(env.csv("r", "matched.csv").len(), 1);
    assert_eq!(env.csv("r", "unmatched.csv").len(), 9000);
    let ignored = env.csv("r", "ignored.csv");
    assert_eq!(ignored.len(), 3000);
    assert!(
        ignored
            .iter()
            .all(|row| row["statement_file"].ends_with("whole.xml")),
        "every ignored row comes from the whole file"
    );
    // The report directory holds the report and nothing else.
    let mut names: Vec<String> = fs::read_dir(env.path("r"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ignored.csv",
            "matched.csv",
            "open_topups.csv",
            "report.html",
            "report.xlsx",
            "summary.json",
            "unmatched.csv"
        ]
    );
}

#[test]
fn bad_documents_are_rejected_with_a_message_naming_the_problem() {
    let cases: &[(&str, String, &str)] = &[
        ("pain.xml", r#"<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"><CstmrCdtTrfInitn><GrpHdr/></CstmrCdtTrfInitn></Document>"#.into(), "pain.001"),
        ("doctype.xml", r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><Document><BkToCstmrStmt/></Document>"#.into(), "DOCTYPE"),
        ("entity.xml", camt("S", &[credit("1.00", "EUR", "hi &foo;", "R")]), "unknown entity &foo;"),
        ("amount.xml", camt("S", &[credit("12,5O", "EUR", "x", "R")]), "\"12,5O\" is not an amount"),
        ("currency.xml", camt("S", &[credit("12.50", "EURO", "x", "R")]), "\"EURO\" is not a currency"),
        ("noamount.xml", camt("S", &[r#"<Ntry><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts></Ntry>"#.into()]), "entry 1 has no Amt"),
        ("direction.xml", camt("S", &[credit("1.00", "EUR", "x", "R").replace("CRDT", "CREDIT")]), "not a credit/debit indicator"),
        ("date.xml", camt("S", &[credit("1.00", "EUR", "x", "R").replace("2026-11-21", "21.11.2026")]), "not a date"),
        ("garbage.bin", "\u{0}\u{1}binary".into(), "not a statement format"),
        ("empty.xml", String::new(), "the file is empty"),
        ("html.xml", "<html><body>hi</body></html>".into(), "root element is <html>"),
        ("latin1-undeclared.xml", String::new(), "UTF-8"),
    ];
    for (name, content, expected) in cases {
        let env = Env::new().with_demo_topups();
        let path = if *name == "latin1-undeclared.xml" {
            let mut bytes =
                camt("S", &[credit("1.00", "EUR", "Gr\u{fc}\u{df}e", "R")]).into_bytes();
            bytes = String::from_utf8(bytes)
                .unwrap()
                .chars()
                .map(|c| c as u32 as u8)
                .collect();
            env.write(name, bytes)
        } else {
            env.write(name, content)
        };
        let good = demo("2026-11-20.camt053.xml");
        let out = env.run("r", &[path.to_str().unwrap(), &good]);
        assert_code(&out, 65);
        let error = env.input_error("r");
        assert!(
            error.contains(expected) && error.contains(name),
            "{name}: {error}"
        );
        assert_eq!(
            env.summary("r")["counts"]["matched"],
            4,
            "{name}: the good file is still processed"
        );
    }
}

#[test]
fn a_declared_latin1_document_is_read() {
    let env = Env::new().with_demo_topups();
    let text = camt(
        "S",
        &[credit(
            "200.00",
            "EUR",
            &format!("Gr\u{fc}\u{df}e topup {T1}"),
            "R",
        )],
    )
    .replace("encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\"");
    let bytes: Vec<u8> = text.chars().map(|c| c as u32 as u8).collect();
    let path = env.write("latin1.xml", bytes);
    assert_ok(&env.run("r", &[path.to_str().unwrap()]));
    let matched = env.csv("r", "matched.csv");
    assert!(
        matched[0]["remittance"].starts_with("Grüße topup"),
        "{:?}",
        matched[0]
    );
}

#[test]
fn usage_problems_exit_2_and_change_nothing() {
    let env = Env::new().with_demo_topups();
    let empty = env.path("empty-dir");
    fs::create_dir_all(&empty).unwrap();
    let out = env.run("r", &[empty.to_str().unwrap()]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("holds no statement files"),
        "{}",
        stderr(&out)
    );
    let out = env.run("r", &["does-not-exist.xml"]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("does-not-exist.xml"),
        "{}",
        stderr(&out)
    );
    let out = env.recon(&[
        "run",
        "--db",
        "missing.sqlite",
        "--out",
        "r",
        &demo("2026-11-20.camt053.xml"),
    ]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("no database at missing.sqlite"),
        "{}",
        stderr(&out)
    );
    assert!(!env.path("missing.sqlite").exists());
    assert_eq!(env.sql_count("SELECT count(*) FROM runs"), 0);
}

#[test]
fn an_existing_report_is_not_overwritten_without_force() {
    let env = Env::new().with_demo_topups();
    let stmt = demo("2026-11-20.camt053.xml");
    assert_ok(&env.run("r", &[&stmt]));
    let before = fs::read_to_string(env.path("r/summary.json")).unwrap();
    let out = env.run("r", &[&stmt]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(env.path("r/summary.json")).unwrap(),
        before
    );
    let out_dir = env.path("r").display().to_string();
    assert_ok(&env.recon(&[
        "run",
        "--db",
        &env.db(),
        "--out",
        &out_dir,
        "--force",
        &stmt,
    ]));
    assert_ne!(
        fs::read_to_string(env.path("r/summary.json")).unwrap(),
        before
    );
}

// ---- the database ------------------------------------------------------------------------------

#[test]
fn a_foreign_or_newer_database_is_refused_and_not_changed() {
    let env = Env::new();
    let stmt = demo("2026-11-20.camt053.xml");
    let foreign = env.path("foreign.sqlite");
    {
        let conn = rusqlite::Connection::open(&foreign).unwrap();
        conn.execute_batch("CREATE TABLE accounts (id INTEGER); INSERT INTO accounts VALUES (1);")
            .unwrap();
    }
    let text = env.write("notes.sqlite", "just some text, not a database at all....................................................................................");
    for path in [&foreign, &text] {
        let before = fs::read(path).unwrap();
        let out = env.recon(&["run", "--db", path.to_str().unwrap(), "--out", "r", &stmt]);
        assert_code(&out, 2);
        assert!(
            stderr(&out).contains("is not a recon database"),
            "{}",
            stderr(&out)
        );
        assert_eq!(fs::read(path).unwrap(), before);
    }
    let env = env.with_demo_topups();
    rusqlite::Connection::open(env.db())
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let out = env.run("r", &[&stmt]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("newer recon (schema version 99"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        env.sql_count("SELECT count(*) FROM topups WHERE status = 'SETTLED'"),
        1
    );
}

#[test]
fn a_second_writer_exits_75_and_settles_nothing() {
    let env = Env::new().with_demo_topups();
    let holder = rusqlite::Connection::open(env.db()).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let out = env.run("r", &[&demo("2026-11-20.camt053.xml")]);
    assert_code(&out, 75);
    assert!(
        stderr(&out).contains("another recon process"),
        "{}",
        stderr(&out)
    );
    let out = env.recon(&["topups", "cancel", "--db", &env.db(), T1]);
    assert_code(&out, 75);
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(
        env.sql_count("SELECT count(*) FROM topups WHERE status = 'SETTLED'"),
        1
    );
    assert!(!env.path("r/summary.json").exists());
}

// ---- top-ups -----------------------------------------------------------------------------------

#[test]
fn create_prints_the_topup_exactly_as_the_api_does() {
    let env = Env::new();
    let out = env.recon(&[
        "topups",
        "create",
        "--db",
        &env.db(),
        "--account-group-id",
        GROUP,
        "--amount",
        "200",
        "--currency",
        "eur",
    ]);
    assert_ok(&out);
    let text = stdout(&out);
    let fields = [
        "id",
        "created_at",
        "account_group_id",
        "cash_amount",
        "currency",
        "status",
        "settlement_reference",
    ];
    let positions: Vec<usize> = fields
        .iter()
        .map(|f| text.find(&format!("\"{f}\":")).unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "fields in API order: {text}"
    );
    let topup: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(topup["cash_amount"], "200.00");
    assert_eq!(topup["currency"], "EUR");
    assert_eq!(topup["status"], "CONFIRMED");
    assert_eq!(topup["account_group_id"], GROUP);
    let created = topup["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 20, "{created}");
    let id = topup["id"].as_str().unwrap();
    assert_eq!(
        env.topup(id)["settlement_reference"],
        topup["settlement_reference"]
    );
    let db = env.db();
    for bad in [
        ["--amount", "200.001"],
        ["--amount", "-5"],
        ["--currency", "EURO"],
    ] {
        let mut args = vec![
            "topups",
            "create",
            "--db",
            &db,
            "--account-group-id",
            GROUP,
            "--amount",
            "1",
            "--currency",
            "EUR",
        ];
        args.extend_from_slice(&bad);
        assert_code(&env.recon(&args), 2);
    }
}

#[test]
fn cancel_only_open_topups_and_name_the_status_otherwise() {
    let env = Env::new().with_demo_topups();
    let open = "9531985d-5d9d-49f8-9818-e811892f902b";
    let out = env.recon(&["topups", "cancel", "--db", &env.db(), open]);
    assert_ok(&out);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["status"],
        "CANCELLED"
    );
    let out = env.recon(&["topups", "cancel", "--db", &env.db(), open]);
    assert_code(&out, 65);
    assert!(stderr(&out).contains("is CANCELLED"), "{}", stderr(&out));
    let settled = "6b0d549b-6f03-475a-9600-a35a099950d8";
    let out = env.recon(&["topups", "cancel", "--db", &env.db(), settled]);
    assert_code(&out, 65);
    assert!(stderr(&out).contains("is SETTLED"), "{}", stderr(&out));
    let out = env.recon(&[
        "topups",
        "cancel",
        "--db",
        &env.db(),
        "00000000-0000-4000-8000-000000000000",
    ]);
    assert_code(&out, 65);
    assert!(
        stderr(&out).contains("no top-up with id"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn list_filters_by_status_and_writes_the_api_header_first() {
    let env = Env::new().with_demo_topups();
    let out = env.recon(&["topups", "list", "--db", &env.db(), "--format", "csv"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.starts_with(
            "id,created_at,account_group_id,cash_amount,currency,status,settlement_reference\n"
        ),
        "{text}"
    );
    assert_eq!(text.lines().count(), 14);
    let out = env.recon(&[
        "topups",
        "list",
        "--db",
        &env.db(),
        "--status",
        "cancelled",
        "--format",
        "json",
    ]);
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["status"], "CANCELLED");
    let out = env.recon(&["topups", "list", "--db", &env.db()]);
    assert!(stdout(&out).contains("13 top-up(s)"), "{}", stdout(&out));
    assert_code(
        &env.recon(&["topups", "list", "--db", &env.db(), "--status", "PAID"]),
        2,
    );
    // What list writes, import reads back.
    let other = Env::new();
    let exported = other.write("export.csv", text);
    assert_ok(&other.recon(&[
        "topups",
        "import",
        "--db",
        &other.db(),
        exported.to_str().unwrap(),
    ]));
    assert_eq!(other.sql_count("SELECT count(*) FROM topups"), 13);
}

#[test]
fn import_reads_json_lines() {
    let env = Env::new();
    let file = env.write(
        "t.jsonl",
        format!(
            "{{\"id\":\"{T1}\",\"created_at\":\"2020-08-24T14:15:22Z\",\"account_group_id\":\"{GROUP}\",\"cash_amount\":\"200.00\",\"currency\":\"EUR\",\"status\":\"CONFIRMED\",\"settlement_reference\":\"{T1}\"}}\n\n"
        ),
    );
    assert_ok(&env.recon(&[
        "topups",
        "import",
        "--db",
        &env.db(),
        file.to_str().unwrap(),
    ]));
    let topup = env.topup(T1);
    assert_eq!(topup["created_at"], "2020-08-24T14:15:22Z");
    assert_eq!(topup["cash_amount"], "200.00");
}

#[test]
fn a_bad_import_row_is_refused_with_its_line_and_nothing_is_written() {
    let header = "id,created_at,account_group_id,cash_amount,currency,status,settlement_reference";
    let good = format!("{T1},2020-08-24T14:15:22Z,{GROUP},200.00,EUR,CONFIRMED,{T1}");
    let second_id = "0b7c4e8a-55a1-4c2e-8d7f-2a9e1c3b4d5f";
    let row = |amount: &str, currency: &str, status: &str, id: &str, reference: &str| {
        format!("{id},2020-08-24T14:15:22Z,{GROUP},{amount},{currency},{status},{reference}")
    };
    let cases = [
        (
            row("10.00", "EUR", "NEW", "not-a-uuid", second_id),
            "id: \"not-a-uuid\" is not a UUID",
        ),
        (
            row("10.0O", "EUR", "NEW", second_id, second_id),
            "cash_amount",
        ),
        (row("10.00", "E1R", "NEW", second_id, second_id), "currency"),
        (row("10.00", "EUR", "PAID", second_id, second_id), "status"),
        (row("10.00", "EUR", "NEW", T1, second_id), "appears twice"),
        (row("10.00", "EUR", "NEW", second_id, T1), "appears twice"),
    ];
    for (bad, expected) in cases {
        let env = Env::new();
        let file = env.write("t.csv", format!("{header}\n{good}\n{bad}\n"));
        let out = env.recon(&[
            "topups",
            "import",
            "--db",
            &env.db(),
            file.to_str().unwrap(),
        ]);
        assert_code(&out, 65);
        let err = stderr(&out);
        assert!(
            err.contains("line 3")
                && err.contains(expected)
                && err.contains("nothing was imported"),
            "{bad}: {err}"
        );
        assert!(
            !env.path("recon.sqlite").exists() || env.sql_count("SELECT count(*) FROM topups") == 0
        );
    }
    // A duplicate of a top-up already in the database is refused too, with the line.
    let env = Env::new().with_demo_topups();
    let file = env.write(
        "t.csv",
        format!(
            "{header}\n{}\n{good}\n",
            row("1.00", "EUR", "NEW", second_id, second_id)
        ),
    );
    let out = env.recon(&[
        "topups",
        "import",
        "--db",
        &env.db(),
        file.to_str().unwrap(),
    ]);
    assert_code(&out, 65);
    assert!(
        stderr(&out).contains("line 3") && stderr(&out).contains("already exists"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.sql_count("SELECT count(*) FROM topups"), 13);
}

// ---- the report --------------------------------------------------------------------------------

#[test]
fn bank_text_is_neutralised_in_csv_and_escaped_in_html() {
    let env = Env::new().with_demo_topups();
    assert_ok(&env.run("r", &[&demo("2026-11-20.camt053.xml")]));
    let unmatched = env.csv("r", "unmatched.csv");
    let formula = unmatched
        .iter()
        .find(|r| r["outcome"] == "TOPUP_CANCELLED")
        .unwrap();
    assert!(
        formula["counterparty_name"].starts_with("'=HYPERLINK"),
        "{formula:?}"
    );
    let html = fs::read_to_string(env.path("r/report.html")).unwrap();
    assert!(html.contains("Birthday money for Lena &lt;3"));
    assert!(!html.contains("Lena <3"));
    assert!(
        !html.contains("<script src") && !html.contains("<link"),
        "self-contained"
    );
    let header = fs::read_to_string(env.path("r/unmatched.csv")).unwrap();
    let header = header.lines().next().unwrap();
    for column in [
        "outcome",
        "amount",
        "currency",
        "booking_date",
        "value_date",
        "statement_file",
        "entry_ref",
        "counterparty_name",
        "counterparty_iban",
        "remittance",
        "extracted_reference",
        "topup_id",
        "expected_amount",
        "difference",
        "suggestion",
    ] {
        assert!(
            header.split(',').any(|c| c == column),
            "{column} in {header}"
        );
    }
}

#[test]
fn amount_mismatch_reports_expected_amount_and_difference() {
    let env = Env::new().with_demo_topups();
    assert_ok(&env.run("r", &[&demo("2026-11-20.camt053.xml")]));
    let row = env
        .csv("r", "unmatched.csv")
        .into_iter()
        .find(|r| r["outcome"] == "AMOUNT_MISMATCH")
        .unwrap();
    assert_eq!(row["amount"], "70.00");
    assert_eq!(row["expected_amount"], "75.50");
    assert_eq!(row["difference"], "-5.50");
    assert!(
        row["suggestion"].starts_with("underpaid by 5.50 EUR"),
        "{row:?}"
    );
}

// ---- CSV and MT940 -----------------------------------------------------------------------------

const CANONICAL_HEADER: &str = "booking_date,value_date,amount,currency,remittance,counterparty_name,counterparty_iban,bank_ref,status";
const T2: &str = "d23f0824-128b-4f33-8c5c-7fd0a6a3a450";

fn canonical(rows: &[&str]) -> String {
    format!("{CANONICAL_HEADER}\n{}\n", rows.join("\n"))
}

#[test]
fn canonical_csv_settles_and_the_same_file_again_is_already_processed() {
    let env = Env::new().with_demo_topups();
    let csv = env.write(
        "day1.csv",
        canonical(&[
            &format!(
                "2026-11-21,2026-11-21,200.00,EUR,topup {T1},Erika,DE02120300000000202051,B1,BOOK"
            ),
            "2026-11-21,2026-11-21,-5.00,EUR,fee,,,,",
        ]),
    );
    let out = env.run("r1", &[csv.to_str().unwrap()]);
    assert_ok(&out);
    let summary = env.summary("r1");
    assert_eq!(summary["inputs"][0]["format"], "csv (recon)");
    assert_eq!(outcome_count(&summary, "MATCHED"), 1);
    assert_eq!(outcome_count(&summary, "DEBIT"), 1);
    assert_eq!(env.topup(T1)["status"], "SETTLED");
    assert_eq!(env.csv("r1", "matched.csv")[0]["position"], "line 2");
    assert_ok(&env.run("r2", &[csv.to_str().unwrap()]));
    assert_eq!(outcome_count(&env.summary("r2"), "ALREADY_PROCESSED"), 2);
}

#[test]
fn overlapping_exports_process_only_new_rows_and_identical_rows_count_twice() {
    let env = Env::new().with_demo_topups();
    let gift = "2026-11-20,2026-11-20,10.00,EUR,gift,Oma,AT611904300234573201,,BOOK";
    let pending = format!("2026-11-20,,50.00,EUR,topup {T2},Max,,,PDNG");
    let yesterday = env.write("yesterday.csv", canonical(&[gift, gift, &pending]));
    assert_ok(&env.run("r1", &[yesterday.to_str().unwrap()]));
    let first = env.summary("r1");
    assert_eq!(
        outcome_count(&first, "NO_REFERENCE"),
        2,
        "two real identical payments"
    );
    assert_eq!(outcome_count(&first, "NOT_BOOKED"), 1);
    // Today's export repeats yesterday's rows, the pending one now booked, plus a third gift.
    let booked = format!("2026-11-20,2026-11-20,50.00,EUR,topup {T2},Max,,,BOOK");
    let today = env.write("today.csv", canonical(&[gift, gift, &booked, gift]));
    assert_ok(&env.run("r2", &[today.to_str().unwrap()]));
    let second = env.summary("r2");
    assert_eq!(outcome_count(&second, "ALREADY_PROCESSED"), 2);
    assert_eq!(
        outcome_count(&second, "MATCHED"),
        1,
        "the pending row did not block it"
    );
    assert_eq!(
        outcome_count(&second, "NO_REFERENCE"),
        1,
        "the third identical gift is new"
    );
    assert_eq!(env.topup(T2)["status"], "SETTLED");
}

#[test]
fn a_bad_csv_row_names_line_and_column_and_rejects_the_file_whole() {
    let env = Env::new().with_demo_topups();
    let csv = env.write(
        "bad.csv",
        canonical(&[
            &format!("2026-11-21,2026-11-21,200.00,EUR,topup {T1},Erika,,,BOOK"),
            "2026-11-21,2026-11-21,12.5O,EUR,gift,,,,BOOK",
        ]),
    );
    let out = env.run("r", &[csv.to_str().unwrap()]);
    assert_code(&out, 65);
    let error = env.input_error("r");
    assert!(
        error.contains("bad.csv: line 3")
            && error.contains("\"12.5O\" is not an amount")
            && error.contains("in column amount"),
        "{error}"
    );
    assert_eq!(
        env.topup(T1)["status"],
        "CONFIRMED",
        "nothing from a rejected file is settled"
    );
    let cases = [
        ("2026-13-21,2026-11-21,1.00,EUR,x,,,,BOOK", "is not a date"),
        (
            "2026-11-21,2026-11-21,1.00,EURO,x,,,,BOOK",
            "is not a currency code",
        ),
        (
            "2026-11-21,2026-11-21,1.00,EUR,x,,,,MAYBE",
            "is not a known status in column status",
        ),
    ];
    for (row, expected) in cases {
        let csv = env.write("bad2.csv", canonical(&[row]));
        let out = env.run("r2", &["--force", csv.to_str().unwrap()]);
        assert_code(&out, 65);
        let error = env.input_error("r2");
        assert!(
            error.contains("line 2") && error.contains(expected),
            "{row}: {error}"
        );
    }
}

#[test]
fn skip_bad_rows_settles_the_good_rows_and_lists_the_bad_ones() {
    let env = Env::new().with_demo_topups();
    let csv = env.write(
        "bad.csv",
        canonical(&[
            "2026-11-21,2026-11-21,12.5O,EUR,gift,,,,BOOK",
            &format!("2026-11-21,2026-11-21,200.00,EUR,topup {T1},Erika,,,BOOK"),
        ]),
    );
    let out = env.run("r", &["--skip-bad-rows", csv.to_str().unwrap()]);
    assert_code(&out, 65);
    assert!(
        stdout(&out).contains("skipped 1 bad CSV row"),
        "{}",
        stdout(&out)
    );
    let summary = env.summary("r");
    assert_eq!(summary["inputs"][0]["rejected"], false);
    assert_eq!(summary["inputs"][0]["bad_rows"][0]["line"], 2);
    assert_eq!(outcome_count(&summary, "MATCHED"), 1);
    assert_eq!(env.topup(T1)["status"], "SETTLED");
    assert!(
        fs::read_to_string(env.path("r/report.html"))
            .unwrap()
            .contains("12.5O")
    );
}

#[test]
fn an_unrecognised_csv_is_rejected_naming_the_closest_profiles() {
    let env = Env::new().with_demo_topups();
    let csv = env.write(
        "mystery.csv",
        "Buchungstag;Betrag;Waehrung;Notiz\n01.01.2026;1,00;EUR;x\n",
    );
    let out = env.run("r", &[csv.to_str().unwrap()]);
    assert_code(&out, 65);
    let error = env.input_error("r");
    assert!(
        error.contains("no CSV profile fits")
            && error.contains("closest: ")
            && error.contains("recon profiles show"),
        "{error}"
    );
}

#[test]
fn user_profiles_come_from_recon_toml_next_to_the_database_or_a_file() {
    let env = Env::new().with_demo_topups();
    let profile = r#"
[profiles.mybank]
description = "My bank's export"
delimiter = ";"
decimal_separator = ","
date_format = ["dd.MM.yyyy"]
currency = "EUR"
[profiles.mybank.columns]
booking_date = "Tag"
amount = "Summe"
remittance = ["Zweck 1", "Zweck 2"]
"#;
    let csv = env.write(
        "mybank.csv",
        format!(
            "Tag;Summe;Zweck 1;Zweck 2\n21.11.2026;200,00;topup {};{}\n",
            &T1[..20],
            &T1[20..]
        ),
    );
    // Unknown without the profile.
    assert_code(&env.run("r0", &[csv.to_str().unwrap()]), 65);
    env.write("recon.toml", profile);
    let out = env.recon(&["profiles", "list", "--db", &env.db()]);
    assert!(
        stdout(&out).contains("mybank") && stdout(&out).contains("recon.toml"),
        "{}",
        stdout(&out)
    );
    let out = env.recon(&["profiles", "show", "--db", &env.db(), "mybank"]);
    assert!(
        stdout(&out).contains("[profiles.mybank]") && stdout(&out).contains("Zweck 2"),
        "{}",
        stdout(&out)
    );
    assert_ok(&env.run("r1", &[csv.to_str().unwrap()]));
    assert_eq!(env.summary("r1")["inputs"][0]["format"], "csv (mybank)");
    assert_eq!(
        env.topup(T1)["status"],
        "SETTLED",
        "a reference split over two purpose columns"
    );
    // The same profile from a file, given by --profile.
    let other = Env::new().with_demo_topups();
    let file = other.write("p.toml", profile);
    let csv = other.write("mybank.csv", fs::read(&csv).unwrap());
    let out_dir = other.path("r").display().to_string();
    let out = other.recon(&[
        "run",
        "--db",
        &other.db(),
        "--out",
        &out_dir,
        "--profile",
        file.to_str().unwrap(),
        csv.to_str().unwrap(),
    ]);
    assert_ok(&out);
    assert_eq!(other.topup(T1)["status"], "SETTLED");
    let out_dir = other.path("r2").display().to_string();
    let out = other.recon(&[
        "run",
        "--db",
        &other.db(),
        "--out",
        &out_dir,
        "--profile",
        "nope",
        csv.to_str().unwrap(),
    ]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("no profile named \"nope\""),
        "{}",
        stderr(&out)
    );
    let broken = other.write(
        "broken.toml",
        "[profiles.x]\ndelimiter = ';;'\n[profiles.x.columns]\namount = 'A'\ncurrency = 'C'\n",
    );
    let out = other.recon(&[
        "run",
        "--db",
        &other.db(),
        "--out",
        &out_dir,
        "--config",
        broken.to_str().unwrap(),
        csv.to_str().unwrap(),
    ]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("delimiter must be one ASCII character"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn every_built_in_profile_reads_its_sample_through_the_binary() {
    let env = Env::new().with_demo_topups();
    let mut samples: Vec<PathBuf> =
        fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/csv"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "csv"))
            .collect();
    if let Some(shared) = common::shared_samples("csv") {
        samples.extend(
            fs::read_dir(shared)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "csv")),
        );
    }
    let mut profiles_seen = std::collections::BTreeSet::new();
    for sample in &samples {
        let out_dir = env.path("r").display().to_string();
        let out = env.recon(&[
            "run",
            "--db",
            &env.db(),
            "--out",
            &out_dir,
            "--dry-run",
            "--force",
            sample.to_str().unwrap(),
        ]);
        assert_ok(&out);
        let summary = env.summary("r");
        let format = summary["inputs"][0]["format"].as_str().unwrap().to_string();
        let profile = format
            .trim_start_matches("csv (")
            .trim_end_matches(')')
            .to_string();
        assert!(
            summary["counts"]["read"].as_u64().unwrap() > 0,
            "{}",
            sample.display()
        );
        // The same file with the profile named explicitly reads the same.
        let out = env.recon(&[
            "run",
            "--db",
            &env.db(),
            "--out",
            &out_dir,
            "--dry-run",
            "--force",
            "--profile",
            &profile,
            sample.to_str().unwrap(),
        ]);
        assert_ok(&out);
        assert_eq!(env.summary("r")["counts"], summary["counts"]);
        profiles_seen.insert(profile);
    }
    let expected = if samples.len() > 6 { 13 } else { 6 };
    assert_eq!(profiles_seen.len(), expected, "{profiles_seen:?}");
}

#[test]
fn mt940_statements_settle_with_german_and_swift_purpose_fields() {
    let env = Env::new().with_demo_topups();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/mt940");
    assert_ok(&env.run(
        "r",
        &[
            &format!("{dir}/2026-11-21-german.sta"),
            &format!("{dir}/2026-11-21-swift.sta"),
        ],
    ));
    let summary = env.summary("r");
    assert_eq!(summary["inputs"][0]["format"], "mt940");
    assert_eq!(summary["counts"]["read"], 5);
    assert_eq!(outcome_count(&summary, "MATCHED"), 3);
    assert_eq!(outcome_count(&summary, "REVERSAL"), 1);
    assert_eq!(outcome_count(&summary, "DEBIT"), 1);
    let matched = env.csv("r", "matched.csv");
    let split = matched.iter().find(|r| r["topup_id"] == T1).unwrap();
    assert_eq!(split["counterparty_name"], "Erika Mustermann");
    assert_eq!(split["counterparty_iban"], "DE02120300000000202051");
    let swift = matched.iter().find(|r| r["topup_id"] == T2).unwrap();
    assert_eq!(swift["counterparty_name"], "Max Muster");
    let bad = env.write(
        "bad.sta",
        ":20:X\n:25:DE1/2\n:60F:C261121EUR1,00\n:61:2611211121ZZ1,00NTRFNONREF\n",
    );
    let out = env.run("r2", &[bad.to_str().unwrap()]);
    assert_code(&out, 65);
    let error = env.input_error("r2");
    assert!(
        error.contains("line 4") && error.contains("not a :61: statement line"),
        "{error}"
    );
}

// ---- statement controls ------------------------------------------------------------------------

#[test]
fn statement_controls_report_failures_and_strict_controls_exit_65() {
    let env = Env::new().with_demo_topups();
    assert_ok(&env.run("r1", &[&demo("2026-11-20.camt053.xml")]));
    let summary = env.summary("r1");
    assert_eq!(summary["controls"]["failed"], 0);
    assert_eq!(summary["controls"]["checked"], 1);
    // The next statement, with a wrong closing balance and a gap in the sequence numbers.
    let text = fs::read_to_string(demo("2026-11-21.camt053.xml")).unwrap();
    let broken = text
        .replace(
            "<Amt Ccy=\"EUR\">486.00</Amt>",
            "<Amt Ccy=\"EUR\">487.00</Amt>",
        )
        .replace(
            "<ElctrncSeqNb>2</ElctrncSeqNb>",
            "<ElctrncSeqNb>3</ElctrncSeqNb>",
        );
    let path = env.write("next.xml", broken);
    let out = env.run("r2", &[path.to_str().unwrap()]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("2 statement control(s) failed"),
        "{}",
        stdout(&out)
    );
    let summary = env.summary("r2");
    let failed: Vec<&str> = summary["controls"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["balance", "chain_sequence"]);
    assert!(
        fs::read_to_string(env.path("r2/report.html"))
            .unwrap()
            .contains("control")
    );
    let strict = Env::new().with_demo_topups();
    let path = strict.write("next.xml", fs::read(&path).unwrap());
    let out = strict.run("r", &["--strict-controls", path.to_str().unwrap()]);
    assert_code(&out, 65);
    assert_eq!(
        strict.summary("r")["counts"]["matched"],
        3,
        "matching still happened"
    );
}

// ---- suggestions -------------------------------------------------------------------------------

#[test]
fn unknown_and_missing_references_get_suggestions_from_open_topups() {
    let env = Env::new().with_demo_topups();
    assert_ok(&env.run("r1", &[&demo("2026-11-20.camt053.xml")]));
    let unmatched = env.csv("r1", "unmatched.csv");
    let unknown = unmatched
        .iter()
        .find(|r| r["outcome"] == "UNKNOWN_REFERENCE")
        .unwrap();
    assert!(
        unknown["suggestion"]
            .starts_with("did you mean top-up 92276658-1e27-41c0-8a6a-63ec24ede6a4"),
        "{unknown:?}"
    );
    // Two substituted digits are still found; three are not.
    let t13 = "92276658-1e27-41c0-8a6a-63ec24ede6a4";
    let two = "92276658-1e27-41c0-8a6a-63ec24ede600";
    let three = "92276658-1e27-41c0-8a6a-63ec24ed0000";
    let stmt = env.write(
        "typos.xml",
        camt(
            "S9",
            &[
                credit("12.00", "EUR", &format!("topup {two}"), "X1"),
                credit("12.00", "EUR", &format!("topup {three}"), "X2"),
            ],
        ),
    );
    assert_ok(&env.run("r2", &[stmt.to_str().unwrap()]));
    let rows = env.csv("r2", "unmatched.csv");
    assert!(
        rows[0]["suggestion"].contains(&format!("did you mean top-up {t13}")),
        "{:?}",
        rows[0]
    );
    assert!(
        rows[1]["suggestion"].starts_with("no top-up has reference"),
        "{:?}",
        rows[1]
    );
    // Erika's payment settled a top-up of account group GROUP: her next payment without a
    // reference points at that group's open top-up of the same amount first.
    let stmt = env.write(
        "noref.xml",
        camt("S10", &[credit("10.00", "EUR", "thanks", "X3")]),
    );
    assert_ok(&env.run("r3", &[stmt.to_str().unwrap()]));
    let row = &env.csv("r3", "unmatched.csv")[0];
    assert!(
        row["suggestion"]
            .contains("0fd630f1-f29d-4da9-953f-48f1a09f76b5 (10.00 EUR, same payer and amount)"),
        "{row:?}"
    );
}

#[test]
fn a_topup_settled_in_the_run_is_not_suggested_for_another_payment_of_the_run() {
    // The typo comes first in the statement, the exact payment of the same top-up after it:
    // by the end of the run that top-up is settled, so the report must not offer it.
    let env = Env::new().with_demo_topups();
    let t13 = "92276658-1e27-41c0-8a6a-63ec24ede6a4";
    let typo = "92276658-1e27-41c0-8a6a-63ec24ede600";
    let stmt = env.write(
        "late.xml",
        camt(
            "S11",
            &[
                credit("12.00", "EUR", &format!("topup {typo}"), "Y1"),
                credit("12.00", "EUR", &format!("topup {t13}"), "Y2"),
            ],
        ),
    );
    assert_ok(&env.run("r1", &[stmt.to_str().unwrap()]));
    let matched = env.csv("r1", "matched.csv");
    assert_eq!(matched.len(), 1);
    assert_eq!(matched[0]["topup_id"], t13);
    let unmatched = env.csv("r1", "unmatched.csv");
    assert_eq!(unmatched.len(), 1);
    assert!(
        !unmatched[0]["suggestion"].contains(t13),
        "{:?}",
        unmatched[0]
    );
}

#[test]
fn a_payment_matched_later_in_the_run_names_the_payers_account_group() {
    // The payment without a reference comes first; the same payer's matched payment after it
    // tells which account group the payer tops up, as it would in the next night's run.
    let env = Env::new().with_demo_topups();
    let stmt = env.write(
        "payer.xml",
        camt(
            "S12",
            &[
                credit("10.00", "EUR", "thanks", "Z1"),
                credit(
                    "200.00",
                    "EUR",
                    "topup 1ab4fef9-a097-4c6f-9345-647025d5fde6",
                    "Z2",
                ),
            ],
        ),
    );
    assert_ok(&env.run("r1", &[stmt.to_str().unwrap()]));
    assert_eq!(env.csv("r1", "matched.csv").len(), 1);
    let row = &env.csv("r1", "unmatched.csv")[0];
    assert_eq!(row["outcome"], "NO_REFERENCE");
    assert!(
        row["suggestion"]
            .contains("0fd630f1-f29d-4da9-953f-48f1a09f76b5 (10.00 EUR, same payer and amount)"),
        "{row:?}"
    );
}

// ---- workbook and run history ------------------------------------------------------------------

#[test]
fn the_workbook_has_numbers_dates_and_bank_text_as_strings() {
    use calamine::{Data, Reader, Xlsx, open_workbook};
    let env = Env::new();
    let dir = env.path("demo").display().to_string();
    assert_ok(&env.recon(&["demo", "--dir", &dir]));
    let mut book: Xlsx<_> = open_workbook(env.path("demo/report/report.xlsx")).unwrap();
    assert_eq!(
        book.sheet_names(),
        [
            "Summary",
            "Matched",
            "Exceptions",
            "Ignored",
            "Open top-ups"
        ]
    );
    let exceptions = book.worksheet_range("Exceptions").unwrap();
    assert_eq!(exceptions.height(), 11, "header and ten exceptions");
    let header: Vec<String> = exceptions
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let mismatch = exceptions
        .rows()
        .find(|r| r[0] == "AMOUNT_MISMATCH")
        .unwrap();
    assert_eq!(mismatch[col("amount")], Data::Float(70.0));
    assert_eq!(mismatch[col("difference")], Data::Float(-5.5));
    assert!(
        matches!(mismatch[col("booking_date")], Data::DateTime(_)),
        "{:?}",
        mismatch[col("booking_date")]
    );
    let formula = exceptions
        .rows()
        .find(|r| r[0] == "TOPUP_CANCELLED")
        .unwrap();
    assert_eq!(
        formula[col("counterparty_name")],
        Data::String("=HYPERLINK(\"http://evil.example\")".into())
    );
    let open = book.worksheet_range("Open top-ups").unwrap();
    assert_eq!(open.height(), 7);
}

#[test]
fn past_runs_are_listed_shown_and_their_report_written_again_identically() {
    let env = Env::new().with_demo_topups();
    assert_ok(&env.run("r1", &[&demo("2026-11-20.camt053.xml")]));
    assert_ok(&env.run("r2", &[&demo("2026-11-21.camt053.xml")]));
    let out = env.recon(&["runs", "list", "--db", &env.db(), "--format", "json"]);
    assert_ok(&out);
    let runs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.len(), 2);
    let first = env.summary("r1")["run_id"].as_str().unwrap().to_string();
    assert_eq!(runs[1]["id"], first.as_str(), "newest first");
    let out = env.recon(&["runs", "show", "--db", &env.db(), &first]);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown, env.summary("r1"));
    // The first run's report again, after the second run changed the top-ups.
    let again = env.path("again").display().to_string();
    assert_ok(&env.recon(&["report", &first, "--db", &env.db(), "--out", &again]));
    for file in [
        "matched.csv",
        "unmatched.csv",
        "ignored.csv",
        "open_topups.csv",
        "summary.json",
    ] {
        assert_eq!(
            fs::read_to_string(env.path("r1").join(file)).unwrap(),
            fs::read_to_string(env.path("again").join(file)).unwrap(),
            "{file}"
        );
    }
    let strip = |html: String| html.split("report generated").next().unwrap().to_string();
    assert_eq!(
        strip(fs::read_to_string(env.path("r1/report.html")).unwrap()),
        strip(fs::read_to_string(env.path("again/report.html")).unwrap())
    );
    let out = env.recon(&[
        "report",
        "00000000-0000-7000-8000-000000000000",
        "--db",
        &env.db(),
        "--out",
        &again,
        "--force",
    ]);
    assert_code(&out, 65);
    assert!(stderr(&out).contains("no run with id"), "{}", stderr(&out));
}

#[test]
fn a_backup_is_a_complete_database_that_checks_clean() {
    let env = Env::new().with_demo_topups();
    assert_ok(&env.run("r", &[&demo("2026-11-20.camt053.xml")]));
    let copy = env.path("backup.sqlite").display().to_string();
    assert_ok(&env.recon(&["backup", "--db", &env.db(), "--out", &copy]));
    assert_code(
        &env.recon(&["backup", "--db", &env.db(), "--out", &copy]),
        2,
    );
    let out = env.recon(&["check", "--db", &copy]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("all 12 checks hold"),
        "{}",
        stdout(&out)
    );
    let list = |db: &str| stdout(&env.recon(&["topups", "list", "--db", db, "--format", "csv"]));
    assert_eq!(list(&copy), list(&env.db()));
    assert!(
        !env.path("backup.sqlite-wal").exists(),
        "a single self-contained file"
    );
}

#[test]
fn check_passes_after_runs_and_imports() {
    let env = Env::new().with_demo_topups();
    assert_ok(&env.run(
        "r1",
        &[
            &demo("2026-11-20.camt053.xml"),
            &demo("2026-11-21.camt053.xml"),
        ],
    ));
    assert_ok(&env.recon(&[
        "topups",
        "cancel",
        "--db",
        &env.db(),
        "9531985d-5d9d-49f8-9818-e811892f902b",
    ]));
    let out = env.recon(&["check", "--db", &env.db()]);
    assert_ok(&out);
    // Break an invariant behind recon's back: check names it and exits 65.
    let conn = rusqlite::Connection::open(env.db()).unwrap();
    conn.execute(
        "UPDATE topups SET status = 'SETTLED' WHERE id = '0fd630f1-f29d-4da9-953f-48f1a09f76b5'",
        [],
    )
    .unwrap();
    drop(conn);
    let out = env.recon(&["check", "--db", &env.db()]);
    assert_code(&out, 65);
    assert!(
        stdout(&out).contains(
            "top-up 0fd630f1-f29d-4da9-953f-48f1a09f76b5 is SETTLED but no transaction settled it"
        ),
        "{}",
        stdout(&out)
    );
}

// ---- configuration -----------------------------------------------------------------------------

#[test]
fn settings_come_from_flags_then_environment_then_recon_toml_then_defaults() {
    let env = Env::new().with_demo_topups();
    env.write(
        "recon.toml",
        "db = \"recon.sqlite\"\nwait = 5\n[run]\nstale_after_days = 7\n[limits]\nmax_depth = 40\n",
    );
    let config = env.path("recon.toml").display().to_string();
    let out = env.recon(&["config", "show", "--config", &config, "--wait", "9"]);
    assert_ok(&out);
    let text = stdout(&out);
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} =")))
            .unwrap_or_else(|| panic!("{key} in {text}"))
            .to_string()
    };
    assert!(
        line("wait").contains("\"9\"") && line("wait").ends_with("# flag --wait"),
        "{text}"
    );
    assert!(
        line("limits.max_depth").contains("\"40\"")
            && line("limits.max_depth").contains("recon.toml"),
        "{text}"
    );
    assert!(
        line("limits.max_text_bytes").ends_with("# default"),
        "{text}"
    );
    assert!(line("run.stale_after_days").contains("\"7\""), "{text}");
    assert!(
        line("db").contains("recon.sqlite") && line("db").contains("recon.toml"),
        "{text}"
    );
    // The database from the file: no --db needed.
    let out = env.recon(&["topups", "list", "--config", &config]);
    assert_ok(&out);
    assert!(stdout(&out).contains("13 top-up(s)"));
    // The environment names the database too, and a flag beats it.
    let out = Command::new(env!("CARGO_BIN_EXE_recon"))
        .args(["config", "show"])
        .env("RECON_DB", env.db())
        .current_dir(env.path("."))
        .output()
        .unwrap();
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("db =") && l.ends_with("# environment RECON_DB")),
        "{}",
        stdout(&out)
    );
    // A limit from the configuration is enforced: the demo statement nests deeper than 3.
    env.write("strict.toml", "[limits]\nmax_depth = 3\n");
    let strict = env.path("strict.toml").display().to_string();
    let out_dir = env.path("r").display().to_string();
    let out = env.recon(&[
        "run",
        "--db",
        &env.db(),
        "--config",
        &strict,
        "--out",
        &out_dir,
        &demo("2026-11-20.camt053.xml"),
    ]);
    assert_code(&out, 65);
    assert!(
        env.input_error("r")
            .contains("nested deeper than the limit of 3")
    );
    // An unknown key is a configuration error, not silently ignored.
    env.write("typo.toml", "[limits]\nmax_dept = 3\n");
    let typo = env.path("typo.toml").display().to_string();
    let out = env.recon(&["config", "show", "--config", &typo]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("max_dept"), "{}", stderr(&out));
    let out = Command::new(env!("CARGO_BIN_EXE_recon"))
        .args(["runs", "list"])
        .env_remove("RECON_DB")
        .env_remove("RECON_CONFIG")
        .current_dir(env.path("r"))
        .output()
        .unwrap();
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("no database given"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn logs_go_to_stderr_as_text_or_json_and_quiet_keeps_only_the_summary_line() {
    let env = Env::new().with_demo_topups();
    let stmt = demo("2026-11-20.camt053.xml");
    let out_dir = env.path("q").display().to_string();
    let out = env.recon(&["run", "-q", "--db", &env.db(), "--out", &out_dir, &stmt]);
    assert_ok(&out);
    assert_eq!(stderr(&out), "", "quiet under cron");
    assert_eq!(stdout(&out).lines().count(), 1, "{}", stdout(&out));
    let out_dir = env.path("j").display().to_string();
    let garbage = env.write("garbage.txt", "not a statement");
    let out = env.recon(&[
        "run",
        "--log-format",
        "json",
        "--db",
        &env.db(),
        "--out",
        &out_dir,
        &stmt,
        garbage.to_str().unwrap(),
    ]);
    assert_code(&out, 65);
    let lines: Vec<Value> = stderr(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().any(|l| {
        l["level"] == "WARN"
            && l["fields"]["file"]
                .as_str()
                .unwrap()
                .ends_with("garbage.txt")
    }));
    assert!(lines.iter().any(|l| l["fields"]["message"] == "committed"));
    let out = env.recon(&["run", "--db", &env.db(), "--out", &out_dir, &stmt]);
    assert!(
        stderr(&out).starts_with("recon: error: "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn inbox_mode_archives_after_the_commit_and_a_rerun_after_a_crash_changes_nothing() {
    let env = Env::new().with_demo_topups();
    let inbox = env.path("inbox");
    fs::create_dir_all(&inbox).unwrap();
    for name in ["2026-11-20.camt053.xml", "2026-11-21.camt053.xml"] {
        fs::copy(demo(name), inbox.join(name)).unwrap();
    }
    env.write("inbox/junk.txt", "not a statement");
    let dirs = |name: &str| env.path(name).display().to_string();
    let run = || {
        env.recon(&[
            "run",
            "-q",
            "--db",
            &env.db(),
            "--inbox",
            &dirs("inbox"),
            "--archive",
            &dirs("archive"),
            "--quarantine",
            &dirs("quarantine"),
            "--reports",
            &dirs("reports"),
        ])
    };
    let out = run();
    assert_code(&out, 65);
    assert!(env.path("archive/2026-11-20.camt053.xml").is_file());
    assert!(env.path("archive/2026-11-21.camt053.xml").is_file());
    assert!(env.path("quarantine/junk.txt").is_file());
    let note = fs::read_to_string(env.path("quarantine/junk.txt.error.txt")).unwrap();
    assert!(note.contains("not a statement format"), "{note}");
    assert_eq!(fs::read_dir(&inbox).unwrap().count(), 0);
    let latest = env.path("reports/latest");
    let summary: Value =
        serde_json::from_slice(&fs::read(latest.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["counts"]["matched"], 5);
    let settled = env.sql_count("SELECT count(*) FROM topups WHERE status = 'SETTLED'");
    // A crash after the commit but before archiving leaves a file in the inbox: the next run
    // finds everything in it processed, settles nothing, and archives it.
    fs::copy(
        demo("2026-11-20.camt053.xml"),
        inbox.join("2026-11-20.camt053.xml"),
    )
    .unwrap();
    let out = run();
    assert_ok(&out);
    let summary: Value =
        serde_json::from_slice(&fs::read(latest.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["counts"]["matched"], 0);
    assert_eq!(outcome_count(&summary, "ALREADY_PROCESSED"), 12);
    assert_eq!(
        env.sql_count("SELECT count(*) FROM topups WHERE status = 'SETTLED'"),
        settled
    );
    assert_eq!(fs::read_dir(&inbox).unwrap().count(), 0);
    assert_eq!(
        fs::read_dir(env.path("archive")).unwrap().count(),
        3,
        "kept beside the first copy"
    );
    let out = run();
    assert_ok(&out);
    assert!(stdout(&out).contains("is empty: nothing to do"));
    // --out and --inbox exclude each other.
    assert_code(
        &env.recon(&[
            "run",
            "--db",
            &env.db(),
            "--inbox",
            &dirs("inbox"),
            "--out",
            "x",
        ]),
        2,
    );
}

#[test]
fn a_report_that_cannot_be_written_exits_70_and_settles_nothing() {
    let env = Env::new().with_demo_topups();
    let blocker = env.write("not-a-dir", "a file where the report directory should go");
    let out = env.recon(&[
        "run",
        "--db",
        &env.db(),
        "--out",
        blocker.to_str().unwrap(),
        &demo("2026-11-20.camt053.xml"),
    ]);
    assert_code(&out, 70);
    assert!(
        stderr(&out).contains("cannot write the report file"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        env.sql_count("SELECT count(*) FROM topups WHERE status = 'SETTLED'"),
        1,
        "only the imported one"
    );
    assert_eq!(env.sql_count("SELECT count(*) FROM runs"), 0);
}

#[test]
fn a_large_import_builds_the_same_indexes_and_refuses_a_duplicate_with_nothing_imported() {
    // Large loads set the plain indexes aside and build them at the end, in the same transaction.
    let env = Env::new();
    let night = env.bench_night("night", "12000", "10", &[]);
    let indexes = |db: &str| -> Vec<String> {
        let conn = rusqlite::Connection::open(db).unwrap();
        let mut stmt = conn
            .prepare("SELECT name || ':' || sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    let small = env.path("small.sqlite").display().to_string();
    assert_ok(&env.recon(&["topups", "import", "--db", &small, &demo("topups.csv")]));

    // The big file plus a top-up the database already has: refused whole, at the database.
    let db = env.db();
    assert_ok(&env.recon(&["topups", "import", "--db", &db, &demo("topups.csv")]));
    let before = env.sql_count("SELECT count(*) FROM topups");
    let topups = fs::read_to_string(env.path("night/topups.csv")).unwrap();
    let demo_line = fs::read_to_string(demo("topups.csv"))
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    let broken = env.write("broken.csv", format!("{topups}{demo_line}\n"));
    let out = env.recon(&["topups", "import", "--db", &db, broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(stderr(&out).contains("line 12002"), "{}", stderr(&out));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing was imported"));
    assert_eq!(env.sql_count("SELECT count(*) FROM topups"), before);
    assert_eq!(
        indexes(&db),
        indexes(&small),
        "a refused load keeps every index"
    );

    let topups_csv = format!("{night}/topups.csv");
    assert_ok(&env.recon(&["topups", "import", "--db", &db, &topups_csv]));
    assert_eq!(env.sql_count("SELECT count(*) FROM topups"), before + 12000);
    assert_eq!(
        env.sql_count("SELECT count(*) FROM events WHERE type = 'topup.confirmed'"),
        10 + 12000
    );
    assert_eq!(indexes(&db), indexes(&small));
    let check = env.recon(&["check", "--db", &db]);
    assert_ok(&check);
}

#[test]
fn many_open_topups_are_all_in_the_csv_while_the_workbook_lists_the_oldest_ten_thousand() {
    use calamine::{Reader, Xlsx, open_workbook};
    let env = Env::new();
    let night = env.bench_night("night", "10050", "20", &[]);
    env.import_night(&night);
    let out = env.run("report", &[&format!("{night}/statement.xml")]);
    assert_ok(&out);
    let open = env.sql_count("SELECT count(*) FROM topups WHERE status IN ('NEW', 'CONFIRMED')");
    assert!(open > 10_000, "{open}");
    let csv_rows = env.csv("report", "open_topups.csv");
    assert_eq!(csv_rows.len() as i64, open);
    // Oldest first, ties by id.
    let keys: Vec<(String, String)> = csv_rows
        .iter()
        .map(|r| (r["created_at"].clone(), r["id"].clone()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(env.summary("report")["open_topups"], open);

    let mut book: Xlsx<_> = open_workbook(env.path("report/report.xlsx")).unwrap();
    let sheet = book.worksheet_range("Open top-ups").unwrap();
    assert_eq!(
        sheet.height(),
        1 + 10_000 + 1,
        "header, the oldest 10,000, a note"
    );
    let first_id = sheet.get((1, 0)).unwrap().to_string();
    assert_eq!(first_id, keys[0].1);
    let note = sheet.get((10_001, 0)).unwrap().to_string();
    assert_eq!(
        note,
        format!("{} more rows are in open_topups.csv", open - 10_000)
    );
    let page = fs::read_to_string(env.path("report/report.html")).unwrap();
    assert!(page.contains(&format!("Open top-ups ({open})")));
}

#[test]
fn a_second_generated_night_finds_its_expected_outcomes_among_the_first_nights_topups() {
    let env = Env::new();
    let db = env.db();
    let mut open_before = 0;
    for (night, seed, created_at) in [
        ("first", "1", "2026-11-01T08:00:00Z"),
        ("second", "2", "2026-11-02T08:00:00Z"),
    ] {
        let dir = env.bench_night(
            night,
            "1200",
            "1000",
            &["--seed", seed, "--created-at", created_at],
        );
        let csv = fs::read_to_string(format!("{dir}/topups.csv")).unwrap();
        assert!(
            csv.lines().skip(1).all(|l| l.contains(created_at)),
            "{night}"
        );
        env.import_night(&dir);
        let report = format!("{night}-report");
        assert_ok(&env.run(&report, &[&format!("{dir}/statement.xml")]));
        let expected: BTreeMap<String, u64> =
            serde_json::from_str(&fs::read_to_string(format!("{dir}/expected.json")).unwrap())
                .unwrap();
        let summary = env.summary(&report);
        for (outcome, count) in &expected {
            assert_eq!(
                outcome_count(&summary, outcome),
                *count,
                "{night}: {outcome}"
            );
        }
        // The second night's statement pays none of the first night's top-ups.
        let open = summary["open_topups"].as_u64().unwrap();
        assert_eq!(open, open_before + 1200 - expected["MATCHED"], "{night}");
        open_before = open;
    }
    let open = env.csv("second-report", "open_topups.csv");
    let newer = open
        .iter()
        .filter(|r| r["created_at"] == "2026-11-02T08:00:00Z")
        .count();
    assert!(newer > 0 && newer < open.len(), "{newer} of {}", open.len());
    assert_ok(&env.recon(&["check", "--db", &db]));
}

/// The `sqlite_floor` example, which `cargo test` builds beside this test's own binary.
fn floor_example() -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let profile = deps.parent().unwrap().parent().unwrap();
    let example = profile
        .join("examples")
        .join(format!("sqlite_floor{}", std::env::consts::EXE_SUFFIX));
    assert!(
        example.exists(),
        "{} is missing: `cargo test` builds the examples, `cargo test --test cli` alone does not",
        example.display()
    );
    example
}

#[test]
fn the_floor_example_replays_a_nights_rows_into_a_copy_and_leaves_both_databases_alone() {
    let env = Env::new();
    let night = env.bench_night("night", "1200", "1000", &[]);
    env.import_night(&night);
    let db = env.db();
    let before = env.path("before.sqlite");
    fs::copy(&db, &before).unwrap();
    let history_before = env.sql_count("SELECT count(*) FROM topup_history");
    assert_ok(&env.run("report", &[&format!("{night}/statement.xml")]));
    let settled = env.sql_count("SELECT count(*) FROM topup_history") - history_before;
    assert!(
        settled > 500,
        "most of the night's payments settle: {settled}"
    );
    let (before_bytes, after_bytes) = (fs::read(&before).unwrap(), fs::read(&db).unwrap());

    let floor = |args: &[&Path]| Command::new(floor_example()).args(args).output().unwrap();
    let out = floor(&[&before, Path::new(&db)]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "replaying 0 new top-ups, 1000 ledger rows, {settled} history rows and {} events",
            2 * settled
        )),
        "two events per settlement: {text}"
    );
    for phase in ["settling the top-ups", "ledger rows", "commit", "all"] {
        assert!(
            text.lines().any(|l| l.starts_with(phase)),
            "{phase}: {text}"
        );
    }
    // The import's floor: the database as the import left it, replayed into a new one.
    let out = floor(&[Path::new("--from-empty"), &before]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains(&format!(
            "replaying 1200 new top-ups, 0 ledger rows, {history_before} history rows"
        )),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        fs::read(&before).unwrap(),
        before_bytes,
        "BEFORE is only read"
    );
    assert_eq!(fs::read(&db).unwrap(), after_bytes, "AFTER is only read");
    let leftovers: Vec<_> = fs::read_dir(env.path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|name| name.starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "the copy is removed: {leftovers:?}");

    // A database is not its own night: nothing to replay is an error, not a floor of zero.
    let out = floor(&[Path::new(&db), Path::new(&db)]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("AFTER holds no rows BEFORE does not"),
        "{}",
        stderr(&out)
    );
}
