//! Bank CSV exports: the MIT-licensed samples in `fixtures/csv/` field by field and through the
//! binary with every built-in profile, recon's own canonical CSV, overlapping exports, bad rows,
//! and profiles of one's own in recon.toml.

use std::fs;
use std::path::PathBuf;

use recon::statement::{Direction, StatementFile};

use crate::env::{
    Env, T1, T2, assert_code, assert_ok, fixture, outcome_count, read_statement, shared_samples,
    stderr, stdout,
};

/// A file of `fixtures/csv/`, read.
fn csv_fixture(name: &str) -> StatementFile {
    read_statement(fixture(&format!("csv/{name}")))
}

const CANONICAL_HEADER: &str = "booking_date,value_date,amount,currency,remittance,counterparty_name,counterparty_iban,bank_ref,status";

fn canonical(rows: &[&str]) -> String {
    format!("{CANONICAL_HEADER}\n{}\n", rows.join("\n"))
}

#[test]
fn separate_debit_and_credit_columns() {
    let boi = csv_fixture("bank2ynab__bank2ynab__test_BOI_TransactionExport.csv");
    let credit = &boi.transactions[0];
    assert_eq!(
        (credit.direction, credit.amount.to_string().as_str()),
        (Direction::Credit, "428.03")
    );
    let debit = &boi.transactions[2];
    assert_eq!(
        (debit.direction, debit.amount.to_string().as_str()),
        (Direction::Debit, "512.0")
    );
    assert_eq!(
        credit.booking_date.unwrap().to_string(),
        "2017-09-01",
        "dd/MM/yyyy"
    );
}

#[test]
fn explicit_signs_latin1_and_several_purpose_columns() {
    let rabo = csv_fixture("bank2ynab__bank2ynab__rabobank_CSV_A_20180414_112204.csv");
    let won = rabo
        .transactions
        .iter()
        .find(|t| t.direction == Direction::Credit)
        .unwrap();
    assert_eq!(won.amount.to_string(), "50.00");
    assert_eq!(
        won.counterparty.name.as_deref(),
        Some("Nederlandse Loterij Organisatie B.V.")
    );
    assert!(
        won.remittance.display().starts_with("Gefeliciteerd"),
        "{}",
        won.remittance.display()
    );
    assert_eq!(rabo.transactions[0].amount.to_string(), "337.49");
    assert_eq!(rabo.transactions[0].direction, Direction::Debit);
}

#[test]
fn space_padded_fields_are_trimmed() {
    let kbc = csv_fixture("bank2ynab__bank2ynab__kbc_export_BE11123456789012_20180304_1422.csv");
    let tx = &kbc.transactions[0];
    assert_eq!(tx.amount.to_string(), "3.40");
    assert_eq!(tx.account.as_deref(), Some("BE11123456789012"));
    assert_eq!(
        tx.counterparty.account, None,
        "a blank-padded empty field is empty"
    );
}

#[test]
fn glued_german_purpose_tags_keep_their_text() {
    let spk = csv_fixture("bank2ynab__bank2ynab__sparkasse_20180226-1000594757-umsatz.csv");
    let tx = &spk.transactions[0];
    assert_eq!(tx.direction, Direction::Debit);
    assert_eq!(tx.amount.to_string(), "36.99");
    assert!(tx.remittance.display().contains("SVWZ+02/2018"));
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
    let mut samples: Vec<PathBuf> = fs::read_dir(fixture("csv"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    if let Some(shared) = shared_samples("csv") {
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
fn bad_rows_in_crlf_files_name_the_physical_line_an_editor_shows() {
    let env = Env::new().with_demo_topups();
    let good = format!("2026-11-21,2026-11-21,200.00,EUR,topup {T1},Erika,,,BOOK");
    let bad = "2026-11-21,2026-11-21,12.5O,EUR,gift,,,,BOOK";
    // A quoted purpose over two lines, a blank line: the bad row is on line 6 however the
    // lines end.
    let rows = [
        good.as_str(),
        "2026-11-21,2026-11-21,1.00,EUR,\"two\nlines\",,,,BOOK",
        "",
        bad,
    ];
    for (name, end) in [
        ("lf", "\n"),
        ("crlf", "\r\n"),
        ("crcrlf", "\r\r\n"),
        ("cr", "\r"),
    ] {
        let text = canonical(&rows).replace('\n', end);
        let csv = env.write(&format!("{name}.csv"), text);
        let out = env.run(name, &[csv.to_str().unwrap()]);
        assert_code(&out, 65);
        let error = env.input_error(name);
        assert!(
            error.contains(&format!("{name}.csv: line 6: \"12.5O\" is not an amount")),
            "{name}: {error}"
        );
    }
    let text = canonical(&[bad, &good]).replace('\n', "\r\n");
    let csv = env.write("skip.csv", text);
    let out = env.run("skip", &["--skip-bad-rows", csv.to_str().unwrap()]);
    assert_code(&out, 65);
    let summary = env.summary("skip");
    assert_eq!(summary["inputs"][0]["bad_rows"][0]["line"], 2);
    assert_eq!(env.csv("skip", "matched.csv")[0]["position"], "line 3");
}

#[test]
fn an_older_commerzbank_export_is_read_by_the_alternative_column_name() {
    let env = Env::new().with_demo_topups();
    // Before 2024 Commerzbank called the account's IBAN column "IBAN Auftraggeberkonto".
    let csv = env.write(
        "commerzbank-2019.csv",
        format!(
            "\u{feff}Buchungstag;Wertstellung;Umsatzart;Buchungstext;Betrag;Währung;\
             Auftraggeberkonto;Bankleitzahl Auftraggeberkonto;IBAN Auftraggeberkonto;Kategorie\r\n\
             21.11.2026;21.11.2026;Gutschrift;TOPUP {T1};200,00;EUR;123456700;50040000;\
             DE79500400000123456700;Sonstiges\r\n"
        ),
    );
    assert_ok(&env.run("r", &[csv.to_str().unwrap()]));
    let summary = env.summary("r");
    assert_eq!(summary["inputs"][0]["format"], "csv (commerzbank)");
    let matched = env.csv("r", "matched.csv");
    assert_eq!(matched[0]["account"], "DE79500400000123456700");
    let profile = stdout(&env.recon(&["profiles", "show", "commerzbank"]));
    assert!(
        profile.contains(
            "account = [\n    \"IBAN Kontoinhaber\",\n    \"IBAN Auftraggeberkonto\",\n]"
        ) || profile.contains("account = [\"IBAN Kontoinhaber\", \"IBAN Auftraggeberkonto\"]"),
        "{profile}"
    );
}

#[test]
fn dates_with_trailing_text_an_impossible_time_or_year_0000_are_refused_with_their_line() {
    let env = Env::new().with_demo_topups();
    for (n, written) in ["2026-11-21garbage", "2026-11-21T25:99", "0000-11-21"]
        .into_iter()
        .enumerate()
    {
        let csv = env.write(
            &format!("date{n}.csv"),
            canonical(&[
                "2026-11-21,2026-11-21,1.00,EUR,x,,,,BOOK",
                &format!("{written},2026-11-21,1.00,EUR,x,,,,BOOK"),
            ]),
        );
        let out = env.run(&format!("r{n}"), &[csv.to_str().unwrap()]);
        assert_code(&out, 65);
        let error = env.input_error(&format!("r{n}"));
        assert!(
            error.contains(&format!(
                "line 3: {written:?} is not a date (expected yyyy-MM-dd) in column booking_date"
            )),
            "{written}: {error}"
        );
    }
}
