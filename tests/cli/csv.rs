//! Bank CSV exports: every sample in `../shared/samples/csv/` is recognised by its header and
//! read whole with its built-in profile (counts checked with Python's csv module, not recon);
//! the MIT-licensed ones in `fixtures/csv/` are checked field by field.

use crate::env as common;

use std::path::Path;

use recon::statement::{Direction, ReadOptions, StatementFile, read_path};

const EXPECTED: &[(&str, &str, usize)] = &[
    (
        "bank2ynab__bank2ynab__2019-03-02_11-50-46_bunq-statement.csv",
        "bunq",
        7,
    ),
    (
        "bank2ynab__bank2ynab__kbc_export_BE11123456789012_20180304_1422.csv",
        "kbc",
        1,
    ),
    ("bank2ynab__bank2ynab__n26_20171001-20171106.csv", "n26", 1),
    (
        "bank2ynab__bank2ynab__rabobank_CSV_A_20180414_112204.csv",
        "rabobank",
        3,
    ),
    (
        "bank2ynab__bank2ynab__sparkasse_20180226-1000594757-umsatz.csv",
        "sparkasse-mt940",
        1,
    ),
    (
        "bank2ynab__bank2ynab__test_BOI_TransactionExport.csv",
        "bank-of-ireland",
        27,
    ),
    (
        "kedder__ofxstatement-transferwise__wise_sample-statement.csv",
        "wise",
        5,
    ),
    (
        "mlaitinen__ofxstatement-revolut__revolut_2022-january.csv",
        "revolut",
        9,
    ),
    (
        "nicolettas-muggelbude__RechnungsPilot__commerzbank.csv",
        "commerzbank",
        7,
    ),
    ("nicolettas-muggelbude__RechnungsPilot__dkb.csv", "dkb", 8),
    (
        "nicolettas-muggelbude__RechnungsPilot__ing.csv",
        "ing-de",
        20,
    ),
    (
        "nicolettas-muggelbude__RechnungsPilot__sparkasse-lzo-camt-v2.csv",
        "sparkasse-camt",
        10,
    ),
    (
        "nicolettas-muggelbude__RechnungsPilot__sparkasse-lzo-mt940.csv",
        "sparkasse-mt940",
        10,
    ),
    (
        "nicolettas-muggelbude__RechnungsPilot__vr-teilhaberbank.csv",
        "volksbank",
        5,
    ),
];

fn read(path: &Path) -> StatementFile {
    read_path(path, &ReadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn fixture(name: &str) -> StatementFile {
    read(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/csv")
            .join(name),
    )
}

#[test]
fn every_shared_csv_sample_is_recognised_and_read_whole() {
    let Some(dir) = common::shared_samples("csv") else {
        return;
    };
    let mut failures = Vec::new();
    for (name, profile, count) in EXPECTED {
        match read_path(&dir.join(name), &ReadOptions::default()) {
            Ok(file)
                if file.format == format!("csv ({profile})")
                    && file.transactions.len() == *count => {}
            Ok(file) => failures.push(format!(
                "{name}: {} with {} transactions, expected csv ({profile}) with {count}",
                file.format,
                file.transactions.len()
            )),
            Err(e) => failures.push(e.to_string()),
        }
    }
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        if name.ends_with(".csv") && !EXPECTED.iter().any(|(n, _, _)| *n == name) {
            failures.push(format!("{name} is not in the table"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn german_exports_read_preambles_pending_rows_and_payer_columns() {
    let Some(dir) = common::shared_samples("csv") else {
        return;
    };
    let dkb = read(&dir.join("nicolettas-muggelbude__RechnungsPilot__dkb.csv"));
    let first = &dkb.transactions[0];
    assert_eq!(first.amount.to_string(), "200");
    assert_eq!(first.direction, Direction::Credit);
    assert_eq!(first.booking_date.unwrap().to_string(), "2025-12-08");
    assert_eq!(
        first.counterparty.name.as_deref(),
        Some("Max Mustermann"),
        "payer of a credit"
    );
    let spk = read(&dir.join("nicolettas-muggelbude__RechnungsPilot__sparkasse-lzo-camt-v2.csv"));
    assert!(
        spk.transactions.iter().any(|t| !t.booked),
        "Umsatz vorgemerkt rows are pending"
    );
    assert!(spk.transactions.iter().any(|t| t.booked));
    let ing = read(&dir.join("nicolettas-muggelbude__RechnungsPilot__ing.csv"));
    let pension = ing
        .transactions
        .iter()
        .find(|t| t.remittance.display().contains("RV-RENTE"))
        .unwrap();
    assert_eq!(
        pension.amount.to_string(),
        "2647.74",
        "a row without its Buchungstext field is realigned"
    );
}

#[test]
fn separate_debit_and_credit_columns() {
    let boi = fixture("bank2ynab__bank2ynab__test_BOI_TransactionExport.csv");
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
    let rabo = fixture("bank2ynab__bank2ynab__rabobank_CSV_A_20180414_112204.csv");
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
    let kbc = fixture("bank2ynab__bank2ynab__kbc_export_BE11123456789012_20180304_1422.csv");
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
    let spk = fixture("bank2ynab__bank2ynab__sparkasse_20180226-1000594757-umsatz.csv");
    let tx = &spk.transactions[0];
    assert_eq!(tx.direction, Direction::Debit);
    assert_eq!(tx.amount.to_string(), "36.99");
    assert!(tx.remittance.display().contains("SVWZ+02/2018"));
}
