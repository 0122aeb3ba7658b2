//! The fixture nights: the demo top-ups with the statements of `fixtures/`, one night per input
//! format, and every report file compared with its reviewed snapshot in `snapshots/`
//! (`<night>__<file>.snap`). What differs from run to run is masked: the run id, times, the
//! database's and the checkout's paths, the version, and the open top-ups' age in days.
//! `cargo insta review` (or `INSTA_UPDATE=always cargo test --release`) refreshes them after a
//! deliberate change; under `CI=true` a difference fails and nothing is written.

use std::fmt::Write as _;
use std::fs;

use calamine::{Data, Reader, Xlsx, open_workbook};
use chrono::{Duration, NaiveDate};
use regex::Regex;

use crate::env::{Env, assert_ok, fixture};

#[test]
fn the_demo_night_writes_the_reviewed_report() {
    assert_night(
        "demo",
        &["demo/2026-11-20.camt053.xml", "demo/2026-11-21.camt053.xml"],
    );
}

#[test]
fn a_camt_night_with_reversals_writes_the_reviewed_report() {
    assert_night(
        "camt",
        &["camt/newinnovations__camt053__example-camt053-b.xml"],
    );
}

#[test]
fn a_bank_csv_export_night_writes_the_reviewed_report() {
    assert_night(
        "csv",
        &["csv/bank2ynab__bank2ynab__rabobank_CSV_A_20180414_112204.csv"],
    );
}

#[test]
fn an_mt940_night_writes_the_reviewed_report() {
    assert_night(
        "mt940",
        &["mt940/2026-11-21-german.sta", "mt940/2026-11-21-swift.sta"],
    );
}

/// Runs the statements (paths under `fixtures/`) on the demo top-ups into the report directory
/// `night`, and compares each report file, masked, with its snapshot.
fn assert_night(night: &str, statements: &[&str]) {
    let env = Env::new().with_demo_topups();
    let paths: Vec<String> = statements.iter().map(|s| fixture(s)).collect();
    let args: Vec<&str> = paths.iter().map(String::as_str).collect();
    assert_ok(&env.run(night, &args));
    let mask = Mask::new(&env, night);
    let read = |file: &str| fs::read_to_string(env.path(night).join(file)).unwrap();

    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.set_description(format!(
        "recon run on fixtures/demo/topups.csv with fixtures/{}",
        statements.join(", fixtures/")
    ));
    settings.bind(|| {
        for file in ["matched.csv", "unmatched.csv", "ignored.csv"] {
            insta::assert_snapshot!(format!("{night}__{file}"), mask.text(&read(file)));
        }
        let open = mask_column(&read("open_topups.csv"), "age_days");
        insta::assert_snapshot!(format!("{night}__open_topups.csv"), mask.text(&open));
        insta::assert_snapshot!(
            format!("{night}__summary.json"),
            mask.summary(&read("summary.json"))
        );
        let book = workbook_text(&env.path(night).join("report.xlsx"));
        insta::assert_snapshot!(format!("{night}__report.xlsx"), mask.text(&book));
    });
}

/// What differs between two runs of the same night, and its placeholders.
struct Mask {
    /// (value, placeholder), longest value first.
    values: Vec<(String, &'static str)>,
}

impl Mask {
    fn new(env: &Env, night: &str) -> Mask {
        let summary = env.summary(night);
        let text = |key: &str| summary[key].as_str().unwrap().to_string();
        let run_id = text("run_id");
        assert!(uuid::Uuid::parse_str(&run_id).is_ok(), "{run_id}");
        for key in ["started_at", "finished_at"] {
            let time = text(key);
            assert!(
                chrono::DateTime::parse_from_rfc3339(&time).is_ok(),
                "{key}: {time}"
            );
        }
        assert_eq!(text("database"), env.db());
        assert_eq!(text("recon_version"), env!("CARGO_PKG_VERSION"));
        let mut values = vec![
            (env.db(), "[db]"),
            (env.path("").display().to_string(), "[scratch]/"),
            (format!("{}/", env!("CARGO_MANIFEST_DIR")), "[repo]/"),
            (run_id, "[run id]"),
        ];
        values.sort_by_key(|(value, _)| std::cmp::Reverse(value.len()));
        Mask { values }
    }

    fn text(&self, text: &str) -> String {
        self.values
            .iter()
            .fold(text.to_string(), |text, (value, placeholder)| {
                text.replace(value.as_str(), placeholder)
            })
    }

    /// summary.json with its times and version masked, then as any text.
    fn summary(&self, json: &str) -> String {
        let mut json = json.to_string();
        for (key, placeholder) in [
            ("started_at", "[time]"),
            ("finished_at", "[time]"),
            ("recon_version", "[version]"),
        ] {
            let field = Regex::new(&format!(r#"(?m)^  "{key}": "[^"]*""#)).unwrap();
            assert!(field.is_match(&json), "{key} in {json}");
            json = field
                .replace(&json, format!(r#"  "{key}": "{placeholder}""#))
                .into_owned();
        }
        self.text(&masked_ages(&json))
    }
}

/// summary.json with the open top-ups' buckets, which move as the fixtures' top-ups age, shown
/// by their spans and their totals over all buckets (which do not), and the stale limit (a
/// time) masked.
fn masked_ages(json: &str) -> String {
    let limit = Regex::new(r#"(?m)^    "created_until": "[^"]*""#).unwrap();
    assert!(limit.is_match(json), "created_until in {json}");
    let json = limit.replace(json, r#"    "created_until": "[time]""#);
    let start = json
        .find("\n  \"open_topup_ages\": [")
        .expect("open_topup_ages")
        + 1;
    let end = start + json[start..].find("\n  ],\n").unwrap() + "\n  ],".len();
    let value: serde_json::Value =
        serde_json::from_str(&format!("{{{}}}", &json[start..end - 1])).unwrap();
    let buckets = value["open_topup_ages"].as_array().unwrap();
    let spans: Vec<String> = buckets
        .iter()
        .map(|b| format!("{}-{}", b["from_days"], b["to_days"]))
        .collect();
    let mut totals: std::collections::BTreeMap<String, (u64, rust_decimal::Decimal)> =
        Default::default();
    for b in buckets {
        for (currency, total) in b["by_currency"].as_object().unwrap() {
            let entry = totals.entry(currency.clone()).or_default();
            entry.0 += total["count"].as_u64().unwrap();
            entry.1 += total["sum"]
                .as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap();
        }
    }
    let totals: Vec<String> = totals
        .iter()
        .map(|(currency, (count, sum))| format!("{count} {sum} {currency}"))
        .collect();
    format!(
        "{}  \"open_topup_ages\": \"[by age, masked: spans {}; over all: {}]\",{}",
        &json[..start],
        spans.join(" "),
        totals.join(", "),
        &json[end..]
    )
}

/// A CSV text with every value of `column` replaced by `[masked]`.
fn mask_column(text: &str, column: &str) -> String {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    let index = header.iter().position(|h| h == column).unwrap();
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(&header).unwrap();
    for record in reader.records() {
        let record = record.unwrap();
        let masked = record
            .iter()
            .enumerate()
            .map(|(i, value)| if i == index { "[masked]" } else { value });
        writer.write_record(masked).unwrap();
    }
    String::from_utf8(writer.into_inner().unwrap()).unwrap()
}

/// Every sheet of a workbook, a row a line, with each cell's type: text quoted, numbers bare,
/// dates as `date(...)`. The summary sheet's times and the open top-ups' ages are masked.
fn workbook_text(path: &std::path::Path) -> String {
    let mut book: Xlsx<_> = open_workbook(path).unwrap();
    let mut out = String::new();
    for name in book.sheet_names() {
        let sheet = book.worksheet_range(&name).unwrap();
        writeln!(out, "== {name}").unwrap();
        let mut rows = sheet.rows();
        let header: Vec<String> = rows
            .next()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .unwrap_or_default();
        writeln!(out, "{}", line(header.iter().map(|h| format!("{h:?}")))).unwrap();
        if name == "Open top-ups" && header.first().is_some_and(|h| h == "age") {
            // The buckets move as the fixtures' top-ups age; summary.json has their totals.
            writeln!(out, "[by age, masked]").unwrap();
            continue;
        }
        let age = header.iter().position(|h| h == "age_days");
        for row in rows {
            let label = row.first().map(|c| c.to_string()).unwrap_or_default();
            let timed =
                name == "Summary" && ["started", "finished", "generated"].contains(&&*label);
            let cells = row.iter().enumerate().map(|(i, cell)| {
                if Some(i) == age || (timed && i == 1) {
                    "[masked]".to_string()
                } else {
                    cell_text(cell)
                }
            });
            writeln!(out, "{}", line(cells)).unwrap();
        }
    }
    out
}

/// Cells joined by ` | `, without trailing blanks (empty cells at the end leave bare `|`).
fn line(cells: impl Iterator<Item = String>) -> String {
    cells.collect::<Vec<_>>().join(" | ").trim_end().to_string()
}

fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(text) => format!("{text:?}"),
        Data::Float(number) => number.to_string(),
        Data::Int(number) => number.to_string(),
        Data::Bool(value) => value.to_string(),
        Data::DateTime(serial) => {
            // Days since Excel's day 0 (1899-12-30), the time of day as the fraction.
            let epoch = NaiveDate::from_ymd_opt(1899, 12, 30).unwrap();
            let millis = (serial.as_f64() * 86_400_000.0).round() as i64;
            let at = epoch.and_hms_opt(0, 0, 0).unwrap() + Duration::milliseconds(millis);
            if at.time() == chrono::NaiveTime::MIN {
                format!("date({})", at.date())
            } else {
                format!("datetime({at})")
            }
        }
        other => format!("{other:?}"),
    }
}
