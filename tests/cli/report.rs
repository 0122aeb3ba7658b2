//! The report directory: CSV, HTML and the workbook as a finance person opens them, bank text kept
//! harmless, a past run's report written again, and a report never half written or overwritten.

use std::fs;

use crate::env::{Env, assert_code, assert_ok, camt, credit, demo, stderr};
use serde_json::Value;

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
    // The file's columns are the report's one column table, and hold at least the SPEC's.
    assert_eq!(header, recon::report::columns::csv_header().join(","));
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

#[test]
fn the_workbook_has_numbers_dates_and_bank_text_as_strings() {
    use calamine::{Data, Reader, Xlsx, open_workbook};
    let env = Env::new();
    assert_ok(&env.run_demo());
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

#[test]
fn a_report_that_cannot_be_created_exits_73_and_settles_nothing() {
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
    assert_code(&out, 73);
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
fn dates_before_1900_are_text_in_the_workbook_not_negative_serial_numbers() {
    use calamine::{Data, Reader, Xlsx, open_workbook};
    let env = Env::new().with_demo_topups();
    let entry = credit("1.00", "EUR", "old", "R")
        .replace("<BookgDt><Dt>2026-11-21", "<BookgDt><Dt>1899-12-31");
    let path = env.write("old.xml", camt("S", &[entry]));
    assert_ok(&env.run("r", &[path.to_str().unwrap()]));
    let mut book: Xlsx<_> = open_workbook(env.path("r/report.xlsx")).unwrap();
    let sheet = book.worksheet_range("Exceptions").unwrap();
    let mut rows = sheet.rows();
    let header: Vec<String> = rows.next().unwrap().iter().map(|c| c.to_string()).collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let row = rows.next().unwrap();
    assert_eq!(row[col("booking_date")], Data::String("1899-12-31".into()));
    assert!(
        matches!(row[col("value_date")], Data::DateTime(_)),
        "{:?}",
        row[col("value_date")]
    );
}
