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
            "Worklist",
            "Resolved",
            "Totals",
            "Exceptions",
            "Matched",
            "Ignored",
            "Open top-ups",
            "Newly stale"
        ]
    );
    // The Summary sheet: one typed value a row.
    let summary = book.worksheet_range("Summary").unwrap();
    let value = |label: &str| {
        let row = summary.rows().find(|r| r[0] == label);
        row.unwrap_or_else(|| panic!("no {label} row"))[1].clone()
    };
    assert_eq!(value("dry run"), Data::Bool(false));
    assert_eq!(value("conservation holds"), Data::Bool(true));
    assert_eq!(value("read"), Data::Float(18.0));
    assert!(
        matches!(value("started"), Data::DateTime(_)),
        "{:?}",
        value("started")
    );
    assert_eq!(value("time zone"), Data::String("UTC".into()));
    // Totals apart, money in and out on lines of their own.
    let totals = book.worksheet_range("Totals").unwrap();
    let reversal = totals.rows().find(|r| r[1] == "REVERSAL").unwrap();
    assert_eq!(reversal[0], Data::String("Needs a human".into()));
    assert_eq!(reversal[2], Data::String("Out".into()));
    let exceptions = book.worksheet_range("Exceptions").unwrap();
    assert_eq!(exceptions.height(), 11, "header and ten exceptions");
    // Grouped by reason, each with what to do.
    let reasons: Vec<String> = exceptions
        .rows()
        .skip(1)
        .map(|r| r[0].to_string())
        .collect();
    let mut sorted = reasons.clone();
    sorted.sort();
    assert_eq!(reasons, sorted);
    assert_eq!(exceptions.get((0, 1)).unwrap().to_string(), "what_to_do");
    assert_eq!(
        exceptions.get((1, 1)).unwrap().to_string(),
        "refund the payer"
    );
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
    // The demo's top-ups are weeks old: the first run lists every open one as newly stale.
    let stale = book.worksheet_range("Newly stale").unwrap();
    assert_eq!(stale.height(), 7);
    assert_eq!(stale.get((0, 1)).unwrap().to_string(), "account_group_id");
    assert!(
        matches!(stale.get((1, 2)), Some(Data::DateTime(at)) if at.as_f64().fract() != 0.0),
        "created_at to the second: {:?}",
        stale.get((1, 2))
    );
    assert_eq!(stale.get((1, 8)), Some(&Data::Bool(true)));
}

#[test]
fn many_newly_stale_topups_are_all_in_the_csv_while_the_workbook_lists_the_oldest_ten_thousand() {
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
    // Generated top-ups are weeks old: the first run lists every open one as newly stale.
    assert_eq!(env.summary("report")["newly_stale"]["count"], open);

    let mut book: Xlsx<_> = open_workbook(env.path("report/report.xlsx")).unwrap();
    let sheet = book.worksheet_range("Newly stale").unwrap();
    assert_eq!(
        sheet.height(),
        1 + 10_000 + 2,
        "header, the oldest 10,000, an empty row, a note (outside the filtered rows)"
    );
    let first_id = sheet.get((1, 0)).unwrap().to_string();
    assert_eq!(first_id, keys[0].1);
    assert_eq!(sheet.get((10_001, 0)), Some(&calamine::Data::Empty));
    let note = sheet.get((10_002, 0)).unwrap().to_string();
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

/// A statement of more transactions than one frame of stored texts holds (8,192): the run's
/// report is written again byte for byte, and a settlement in a later frame is shown with the
/// bank's texts.
#[test]
fn a_night_of_several_frames_of_texts_is_written_again_identically() {
    let env = Env::new();
    let night = env.bench_night("night", "11000", "9000", &[]);
    env.import_night(&night);
    assert_ok(&env.run("r", &[&format!("{night}/statement.xml")]));
    let frames = env.sql_count("SELECT count(*) FROM journal_texts");
    assert_eq!(frames, 2, "9,000 rows of one file in two frames");
    let run = env.summary("r")["run_id"].as_str().unwrap().to_string();
    let again = env.path("again").display().to_string();
    assert_ok(&env.recon(&["report", &run, "--db", &env.db(), "--out", &again]));
    for file in [
        "matched.csv",
        "unmatched.csv",
        "ignored.csv",
        "summary.json",
    ] {
        assert!(
            fs::read(env.path("r").join(file)).unwrap()
                == fs::read(env.path("again").join(file)).unwrap(),
            "{file}"
        );
    }
    // The last settlement of the night is in the second frame.
    let (topup, tx): (String, i64) = env
        .conn()
        .query_row(
            "SELECT id, settled_by_transaction FROM topups
             WHERE settled_by_transaction IS NOT NULL ORDER BY settled_by_transaction DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(tx > 8192, "{tx}");
    let shown = env.topup(&topup);
    let settlement = &shown["settlement"];
    assert_eq!(settlement["run_id"], run.as_str());
    assert!(
        settlement["counterparty_iban"]
            .as_str()
            .is_some_and(|i| !i.is_empty()),
        "{shown}"
    );
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

/// A text of exactly `bytes` bytes of `words` over and over, as a payer might paste a document.
fn long_text(words: &str, bytes: usize) -> String {
    let mut text = String::with_capacity(bytes);
    for c in words.chars().cycle() {
        if text.len() + c.len_utf8() > bytes - 1 {
            break;
        }
        text.push(c);
    }
    while text.len() < bytes {
        text.push('x');
    }
    text
}

#[test]
fn a_text_longer_than_a_workbook_cell_is_cut_there_with_a_marker_and_the_night_runs() {
    use calamine::{Data, Reader, Xlsx, open_workbook};
    const LIMIT: usize = 1 << 20; // the readers' text limit (--max-text-bytes)
    let env = Env::new().with_demo_topups();
    let ustrd = long_text("Zahlung für Rechnung 2026-0042 laut Vertrag ", LIMIT);
    let additional = long_text("SEPA-Gutschrift Sammler Auftrag ", LIMIT);
    let entry = |inside: &str, reference: &str| {
        format!(
            r#"<Ntry><Amt Ccy="EUR">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
<BookgDt><Dt>2026-11-21</Dt></BookgDt><AcctSvcrRef>{reference}</AcctSvcrRef>{inside}</Ntry>"#
        )
    };
    let camt = env.write(
        "long.xml",
        crate::env::camt(
            "LONG-1",
            &[
                entry(
                    &format!("<NtryDtls><TxDtls><RmtInf><Ustrd>{ustrd}</Ustrd></RmtInf></TxDtls></NtryDtls>"),
                    "L1",
                ),
                entry(&format!("<AddtlNtryInf>{additional}</AddtlNtryInf>"), "L2"),
            ],
        ),
    );
    // A line of MT940 is at most the limit, its line break included.
    let field = long_text("Überweisung Kundennummer 4711 Ref ", LIMIT - ":86:\n".len());
    let mt940 = env.write(
        "long.sta",
        format!(
            ":20:LONG\n:25:DE89370400440532013000EUR\n:28C:1\n:60F:C261120EUR0,00\n\
             :61:2611211121C1,00NTRFNONREF//L3\n:86:{field}\n:62F:C261121EUR1,00\n-\n"
        ),
    );
    let purpose = long_text("Verwendungszweck Miete Oktober ", LIMIT);
    let csv = env.write(
        "long.csv",
        format!(
            "booking_date,value_date,amount,currency,remittance,counterparty_name,counterparty_iban,bank_ref,status\n\
             2026-11-21,2026-11-21,1.00,EUR,{purpose},Payer,,L4,BOOK\n"
        ),
    );
    let out = env.run(
        "r",
        &[
            camt.to_str().unwrap(),
            mt940.to_str().unwrap(),
            csv.to_str().unwrap(),
            &demo("2026-11-20.camt053.xml"),
        ],
    );
    assert_ok(&out);
    let summary = env.summary("r");
    assert_eq!(summary["inputs_rejected"], 0, "{summary}");
    assert!(
        summary["counts"]["matched"].as_u64().unwrap() > 0,
        "the file beside them settles"
    );
    let expected = [&ustrd, &additional, &field, &purpose];

    // The CSV keeps every text whole.
    let unmatched = env.csv("r", "unmatched.csv");
    for text in expected {
        assert!(
            unmatched.iter().any(|r| &r["remittance"] == text),
            "a text of {} bytes is whole in unmatched.csv",
            text.len()
        );
    }

    // The workbook opens, with each text cut within a cell's limit and marked.
    let mut book: Xlsx<_> = open_workbook(env.path("r/report.xlsx")).unwrap();
    let sheet = book.worksheet_range("Exceptions").unwrap();
    let header: Vec<String> = sheet
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let col = header.iter().position(|h| h == "remittance").unwrap();
    let cells: Vec<String> = sheet
        .rows()
        .filter_map(|r| match &r[col] {
            Data::String(s) if s.contains(" … [cut: ") => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(cells.len(), 4, "every long text is cut");
    for text in expected {
        let marker = format!(
            " … [cut: {} characters; the whole text is in unmatched.csv]",
            grouped(text.chars().count())
        );
        let cell = cells
            .iter()
            .find(|c| {
                c.strip_suffix(&marker)
                    .is_some_and(|kept| !kept.is_empty() && text.starts_with(kept))
            })
            .unwrap_or_else(|| panic!("a cell has the text's beginning and {marker:?}"));
        assert!(
            cell.encode_utf16().count() <= 32_767,
            "within a cell's limit"
        );
    }
}

/// `1048576` as `1,048,576`.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
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

/// The first line of `topups.csv` in a generated night: the top-up's id.
fn first_topup(night: &str) -> String {
    let topups = fs::read_to_string(format!("{night}/topups.csv")).unwrap();
    let line = topups.lines().nth(1).unwrap();
    line.split(',').next().unwrap().to_string()
}

#[test]
fn the_page_shows_repeated_exceptions_as_one_line_and_unmatched_csv_keeps_each() {
    let env = Env::new();
    let night = env.bench_night("night", "1", "5000", &["--mix", "copies"]);
    env.import_night(&night);
    assert_ok(&env.run("r", &[&format!("{night}/statement.xml")]));
    let unmatched = env.csv("r", "unmatched.csv");
    assert_eq!(unmatched.len(), 4999);
    assert!(unmatched.iter().all(|r| r["outcome"] == "ALREADY_SETTLED"));
    let html = fs::read_to_string(env.path("r/report.html")).unwrap();
    let topup = first_topup(&night);
    assert!(
        html.contains("<h3>ALREADY_SETTLED · 4,999 · "),
        "the heading counts every exception"
    );
    // The first three payments again are listed, each with its place; the 4,996 after them
    // are one line.
    assert!(
        html.contains(&format!(
            r#"<tr class="more"><td colspan="9" class="muted">4,996 more payments for top-up {topup}, same payer: "#
        )),
        "{}",
        &html[html.find("ALREADY_SETTLED ·").unwrap()..][..3000]
    );
    assert_eq!(html.matches(r#"<tr class="more">"#).count(), 1);
    assert!(
        html.len() < 100_000,
        "the page is small: {} bytes",
        html.len()
    );
}

#[test]
fn the_page_lists_a_bounded_number_of_lines_per_exception_and_says_how_many_more() {
    let env = Env::new();
    let lines = recon::report::page::EXCEPTION_LINES;
    let night = env.bench_night(
        "night",
        "1",
        &(lines + 7).to_string(),
        &["--mix", "unknown"],
    );
    env.import_night(&night);
    assert_ok(&env.run("r", &[&format!("{night}/statement.xml")]));
    assert_eq!(env.csv("r", "unmatched.csv").len(), lines + 7);
    let html = fs::read_to_string(env.path("r/report.html")).unwrap();
    assert!(html.contains(&format!(
        "7 more are not listed here (at most {lines} lines for each kind of exception): all {} are in unmatched.csv and report.xlsx.",
        lines + 7
    )));
    let section = &html[html.find("<h3>UNKNOWN_REFERENCE").unwrap()..];
    let section = &section[..section.find("</table>").unwrap()];
    assert_eq!(
        section.matches(r#"<tr><td title="CRDT">In</td>"#).count(),
        lines
    );
}
