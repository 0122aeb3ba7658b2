//! The nightly job end to end: the real binary settles top-ups from statements, each payment
//! once, and a file it rejects leaves no trace while the others are processed. Each test is named
//! after the behaviour a user relies on.

use std::collections::BTreeMap;
use std::fs;

use crate::env::{
    Env, T1, assert_code, assert_ok, camt, credit, demo, outcome_count, stderr, stdout,
};
use serde_json::Value;

#[test]
fn demo_runs_from_any_directory_and_reports_every_outcome() {
    let env = Env::new();
    let out = env.run_demo();
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
    let list = |status: &str| env.topups_list(status, "csv");
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
    assert_eq!(env.sql_count("SELECT count(*) FROM ledger"), 0);
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
    assert_eq!(env.sql_count("SELECT count(*) FROM ledger"), 12001);
    assert_eq!(
        env.sql_count(
            "SELECT count(*) FROM ledger b JOIN statement_files f ON f.id = b.file_id
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
