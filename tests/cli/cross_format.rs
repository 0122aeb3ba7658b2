//! The same bank transaction delivered twice in different formats (the bank's camt and its CSV
//! or MT940 export of the same night): the second copy is `ALREADY_PROCESSED` with a note
//! naming the first, in the same run or a later one, and never a refund; two real payments
//! that only share amount and date stay apart.

use std::collections::BTreeMap;

use crate::env::{Env, assert_ok, camt, credit, fixture};

const CAMT: &str = "cross_format/2026-11-21.camt053.xml";
const CSV: &str = "cross_format/2026-11-21.csv";
const MT940: &str = "cross_format/2026-11-21.sta";

/// The booked transactions each fixture carries (the camt and the CSV have a pending one more).
const BOOKED: usize = 6;

/// Every row of the report in `out`: (file name, outcome, suggestion), in report order.
fn report_rows(env: &Env, out: &str) -> Vec<(String, String, String)> {
    ["matched.csv", "unmatched.csv", "ignored.csv"]
        .iter()
        .flat_map(|file| env.csv(out, file))
        .map(|row| {
            let file = row["statement_file"]
                .rsplit('/')
                .next()
                .unwrap()
                .to_string();
            (file, row["outcome"].clone(), row["suggestion"].clone())
        })
        .collect()
}

/// How many rows of `rows` came from `file` with `outcome`.
fn count(rows: &[(String, String, String)], file: &str, outcome: &str) -> usize {
    rows.iter()
        .filter(|(f, o, _)| f.as_str() == file && o.as_str() == outcome)
        .count()
}

/// Outcomes per file, to show when an assertion fails.
fn table(rows: &[(String, String, String)]) -> BTreeMap<(String, String), usize> {
    let mut table = BTreeMap::new();
    for (file, outcome, _) in rows {
        *table.entry((file.clone(), outcome.clone())).or_default() += 1;
    }
    table
}

fn name(path: &str) -> &str {
    path.rsplit('/').next().unwrap()
}

/// What the camt of the night decides on its own: two top-ups settled, one paid after it was
/// settled (a real second payment), two donations, a card payment, a pending entry.
fn assert_camt_decided(rows: &[(String, String, String)]) {
    let camt = name(CAMT);
    assert_eq!(count(rows, camt, "MATCHED"), 2, "{:?}", table(rows));
    assert_eq!(count(rows, camt, "ALREADY_SETTLED"), 1, "{:?}", table(rows));
    assert_eq!(count(rows, camt, "NO_REFERENCE"), 2, "{:?}", table(rows));
    assert_eq!(count(rows, camt, "DEBIT"), 1, "{:?}", table(rows));
    assert_eq!(count(rows, camt, "NOT_BOOKED"), 1, "{:?}", table(rows));
}

/// Every booked transaction of `copy` is ALREADY_PROCESSED with a note naming the camt's
/// transaction (its first `first_note`, each `each_note`), and nothing of it is settled,
/// refunded or an exception.
fn assert_copies(rows: &[(String, String, String)], copy: &str, first_note: &str, each_note: &str) {
    let copy = name(copy);
    let of_copy: Vec<_> = rows.iter().filter(|(f, _, _)| f == copy).collect();
    let processed: Vec<_> = of_copy
        .iter()
        .filter(|(_, o, _)| o == "ALREADY_PROCESSED")
        .collect();
    assert_eq!(processed.len(), BOOKED, "{:?}", table(rows));
    assert!(processed[0].2.contains(first_note), "{processed:?}");
    for (_, _, note) in &processed {
        assert!(
            note.starts_with("probably the same bank transaction as ")
                && note.contains(each_note)
                && note.contains("delivered again in another format"),
            "{note}"
        );
    }
    let others: Vec<_> = of_copy
        .iter()
        .filter(|(_, o, _)| o != "ALREADY_PROCESSED" && o != "NOT_BOOKED")
        .collect();
    assert!(others.is_empty(), "{others:?}");
}

/// The database settled each paid top-up once, by the camt's payment.
fn assert_settled_once(env: &Env) {
    assert_eq!(
        env.sql_count("SELECT count(*) FROM ledger WHERE outcome = 'MATCHED'"),
        2
    );
    assert_eq!(
        env.sql_count(
            "SELECT count(*) FROM topups t JOIN ledger bt
               ON bt.id = t.settled_by_transaction
             JOIN statement_files sf ON sf.id = bt.file_id
             WHERE sf.path LIKE '%.camt053.xml'"
        ),
        2
    );
}

fn assert_conserved(env: &Env, out: &str, read: u64) {
    let summary = env.summary(out);
    let counts = &summary["counts"];
    assert_eq!(counts["read"].as_u64(), Some(read), "{summary}");
    let sum: u64 = ["matched", "unmatched", "ignored"]
        .iter()
        .map(|k| counts[k].as_u64().unwrap())
        .sum();
    assert_eq!(sum, read, "{summary}");
    assert_eq!(counts["conservation_holds"], true);
}

#[test]
fn camt_and_its_csv_of_one_night_in_one_run_count_every_payment_once() {
    let env = Env::new().with_demo_topups();
    assert_ok(&env.run("out", &[&fixture(CAMT), &fixture(CSV)]));
    let rows = report_rows(&env, "out");
    assert_camt_decided(&rows);
    let first = format!("{} entry 1 detail 1,", name(CAMT));
    assert_copies(&rows, CSV, &first, name(CAMT));
    assert_eq!(count(&rows, name(CSV), "NOT_BOOKED"), 1);
    assert_conserved(&env, "out", 14);
    assert_settled_once(&env);
}

#[test]
fn camt_and_its_mt940_of_one_night_in_one_run_count_every_payment_once() {
    let env = Env::new().with_demo_topups();
    // The MT940 first: the copy is whichever comes second.
    assert_ok(&env.run("out", &[&fixture(MT940), &fixture(CAMT)]));
    let rows = report_rows(&env, "out");
    let mt940 = name(MT940);
    assert_eq!(count(&rows, mt940, "MATCHED"), 2, "{:?}", table(&rows));
    assert_eq!(count(&rows, mt940, "ALREADY_SETTLED"), 1);
    let camt = name(CAMT);
    assert_eq!(
        count(&rows, camt, "ALREADY_PROCESSED"),
        BOOKED,
        "{:?}",
        table(&rows)
    );
    assert_eq!(count(&rows, camt, "NOT_BOOKED"), 1);
    assert_eq!(
        rows.iter().filter(|(f, _, _)| f == camt).count(),
        BOOKED + 1
    );
    let note = rows
        .iter()
        .find(|(f, o, _)| f == camt && o == "ALREADY_PROCESSED")
        .map(|(_, _, note)| note.clone())
        .unwrap();
    assert!(note.contains(&format!("{mt940} line 5")), "{note}");
    assert_conserved(&env, "out", 13);
    assert_eq!(
        env.sql_count("SELECT count(*) FROM ledger WHERE outcome = 'MATCHED'"),
        2
    );
}

#[test]
fn a_night_read_as_camt_and_then_again_as_csv_or_mt940_in_later_runs_is_not_paid_twice() {
    let env = Env::new().with_demo_topups();
    assert_ok(&env.run("first", &[&fixture(CAMT)]));
    assert_camt_decided(&report_rows(&env, "first"));
    for (out, copy) in [("second", CSV), ("third", MT940)] {
        assert_ok(&env.run(out, &[&fixture(copy)]));
        let rows = report_rows(&env, out);
        let first = format!("{} entry 1 detail 1 (run ", name(CAMT));
        assert_copies(&rows, copy, &first, " (run ");
        let summary = env.summary(out);
        assert_eq!(summary["counts"]["unmatched"], 0, "{summary}");
        assert_eq!(summary["counts"]["matched"], 0, "{summary}");
        assert_conserved(&env, out, rows.len() as u64);
    }
    assert_settled_once(&env);
}

#[test]
fn a_csv_read_first_and_its_camt_in_a_later_run_are_one_night_too() {
    let env = Env::new().with_demo_topups();
    assert_ok(&env.run("first", &[&fixture(CSV)]));
    assert_ok(&env.run("second", &[&fixture(CAMT)]));
    let rows = report_rows(&env, "second");
    assert_eq!(count(&rows, name(CAMT), "ALREADY_PROCESSED"), BOOKED);
    assert_eq!(count(&rows, name(CAMT), "NOT_BOOKED"), 1);
    assert!(
        rows[0].2.contains(&format!("{} line 2 (run ", name(CSV))),
        "{rows:?}"
    );
}

#[test]
fn a_rejected_copy_leaves_nothing_behind_and_the_good_copy_still_counts_once() {
    let env = Env::new().with_demo_topups();
    // The CSV with a broken last row, first: its rows are decided, then the file is rejected
    // whole, and the camt after it is no copy of what was forgotten.
    let broken =
        std::fs::read_to_string(fixture(CSV)).unwrap() + "2026-11-21,x,1,EUR,a,b,c,d,BOOK\n";
    let broken = env.write("broken.csv", broken);
    let out = env.run(
        "out",
        &[broken.to_str().unwrap(), &fixture(CAMT), &fixture(MT940)],
    );
    assert_eq!(out.status.code(), Some(65));
    let rows = report_rows(&env, "out");
    assert_camt_decided(&rows);
    assert_eq!(rows.iter().filter(|(f, _, _)| f == "broken.csv").count(), 0);
    let first = format!("{} entry 1 detail 1,", name(CAMT));
    assert_copies(&rows, MT940, &first, name(CAMT));
}

/// A camt with one credit (`credit`'s payer, `DE02…2051`) and a canonical CSV row of the same
/// amount and day from `payer`.
fn camt_and_csv(env: &Env, camt_text: &str, csv_text: &str, payer: &str) -> [String; 2] {
    let xml = env.write(
        "night.xml",
        camt("S-1", &[credit("50.00", "EUR", camt_text, "B-1")]),
    );
    let csv = env.write(
        "night.csv",
        format!(
            "booking_date,value_date,amount,currency,remittance,counterparty_name,counterparty_iban,bank_ref,status\n\
             2026-11-21,2026-11-21,50.00,EUR,{csv_text},Other Payer,{payer},B-2,BOOK\n"
        ),
    );
    [xml, csv].map(|p| p.display().to_string())
}

#[test]
fn two_real_payments_of_one_amount_on_one_day_from_different_payers_stay_apart() {
    // Without a reference: different payers, different texts.
    let env = Env::new().with_demo_topups();
    let [a, b] = camt_and_csv(
        &env,
        "Invoice 4711",
        "Rent November",
        "DE75512108001245126199",
    );
    assert_ok(&env.run("out", &[&a, &b]));
    let rows = report_rows(&env, "out");
    assert_eq!(count(&rows, "night.xml", "NO_REFERENCE"), 1, "{rows:?}");
    assert_eq!(count(&rows, "night.csv", "NO_REFERENCE"), 1, "{rows:?}");

    // The same top-up paid by two payers, one payment in each format: the second is paid
    // twice, whichever format it came in.
    let env = Env::new().with_demo_topups();
    let topup = "topup d23f0824-128b-4f33-8c5c-7fd0a6a3a450";
    let [a, b] = camt_and_csv(&env, topup, topup, "DE75512108001245126199");
    assert_ok(&env.run("out", &[&a, &b]));
    let rows = report_rows(&env, "out");
    assert_eq!(count(&rows, "night.xml", "MATCHED"), 1, "{rows:?}");
    assert_eq!(count(&rows, "night.csv", "ALREADY_SETTLED"), 1, "{rows:?}");
    assert!(
        rows[1].2.starts_with("paid twice: refund 50.00 EUR"),
        "{rows:?}"
    );

    // The same, in two runs.
    let env = Env::new().with_demo_topups();
    let [a, b] = camt_and_csv(&env, topup, topup, "DE75512108001245126199");
    assert_ok(&env.run("first", &[&a]));
    assert_ok(&env.run("second", &[&b]));
    assert_eq!(
        count(&report_rows(&env, "second"), "night.csv", "ALREADY_SETTLED"),
        1
    );
}

#[test]
fn a_payment_to_another_account_is_not_a_copy_of_ours() {
    // The MT940 of another account (`:25:`) with the same payment as the camt's first.
    let env = Env::new().with_demo_topups();
    let other = std::fs::read_to_string(fixture(MT940))
        .unwrap()
        .replace(":25:37040044/0532013000", ":25:10020030/1234567");
    let other = env.write("other.sta", other);
    assert_ok(&env.run("out", &[&fixture(CAMT), other.to_str().unwrap()]));
    let rows = report_rows(&env, "out");
    assert_eq!(
        count(&rows, "other.sta", "ALREADY_PROCESSED"),
        0,
        "{:?}",
        table(&rows)
    );
    assert_eq!(
        count(&rows, "other.sta", "ALREADY_SETTLED"),
        3,
        "{:?}",
        table(&rows)
    );
}

#[test]
fn two_files_of_one_format_are_compared_by_their_full_identity_only() {
    // Two camt statements of the account with a payment of the same top-up, amount and day
    // but their own bank references: two payments, the second paid twice.
    let env = Env::new().with_demo_topups();
    let topup = "topup d23f0824-128b-4f33-8c5c-7fd0a6a3a450";
    let a = env.write(
        "a.xml",
        camt("S-1", &[credit("50.00", "EUR", topup, "B-1")]),
    );
    let b = env.write(
        "b.xml",
        camt("S-2", &[credit("50.00", "EUR", topup, "B-2")]),
    );
    assert_ok(&env.run("out", &[a.to_str().unwrap(), b.to_str().unwrap()]));
    let rows = report_rows(&env, "out");
    assert_eq!(count(&rows, "a.xml", "MATCHED"), 1, "{rows:?}");
    assert_eq!(count(&rows, "b.xml", "ALREADY_SETTLED"), 1, "{rows:?}");
}

#[test]
fn the_generated_night_and_its_csv_give_no_refund() {
    // `recon bench-data`'s camt and "the same night as CSV", in one run and in two.
    let env = Env::new();
    let night = env.bench_night("night", "600", "500", &["--seed", "5"]);
    env.import_night(&night);
    let (xml, csv) = (
        format!("{night}/statement.xml"),
        format!("{night}/statement.csv"),
    );
    assert_ok(&env.run("one", &[&xml, &csv]));
    let expected: BTreeMap<String, usize> =
        serde_json::from_str(&std::fs::read_to_string(format!("{night}/expected.json")).unwrap())
            .unwrap();
    let rows = report_rows(&env, "one");
    for (outcome, n) in &expected {
        assert_eq!(count(&rows, "statement.xml", outcome), *n, "{outcome}");
    }
    let pending = expected["NOT_BOOKED"];
    assert_eq!(
        count(&rows, "statement.csv", "ALREADY_PROCESSED"),
        500 - pending
    );
    assert_eq!(count(&rows, "statement.csv", "NOT_BOOKED"), pending);

    let env2 = Env::new();
    env2.import_night(&night);
    assert_ok(&env2.run("first", &[&xml]));
    assert_ok(&env2.run("second", &[&csv]));
    let rows = report_rows(&env2, "second");
    assert_eq!(
        count(&rows, "statement.csv", "ALREADY_PROCESSED"),
        500 - pending
    );
    assert_eq!(count(&rows, "statement.csv", "NOT_BOOKED"), pending);
}
