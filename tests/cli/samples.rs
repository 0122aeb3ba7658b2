//! The shared samples in `../shared/samples/` (SKIPPED, with a message, where that folder is not
//! beside the checkout). Every camt sample in `camt053/` is read whole, with the number of
//! transactions an independent count gives (per entry: its `TxDtls`, at least one), computed with
//! Python's ElementTree, not with recon. Every bank CSV export in `csv/` is recognised by its
//! header and read whole with its built-in profile (counts checked with Python's csv module).

use recon::statement::{Direction, ReadOptions, read_path};

use crate::env::{read_statement, shared_samples};

/// Transactions per camt sample.
const CAMT_EXPECTED: &[(&str, usize)] = &[
    (
        "MeinGrundeinkommen__konfipay__failed_debit_with_charges_08.xml",
        1,
    ),
    ("MeinGrundeinkommen__konfipay__mixed_examples_02.xml", 8),
    ("OCA__bank-statement-import__test-camt053-no-ntry.xml", 0),
    ("OCA__bank-statement-import__test-camt053-txdtls.xml", 2),
    ("OCA__bank-statement-import__test-camt053.xml", 4),
    ("Subite-eu__camt-to-coda__BE68793230773034-202411.xml", 268),
    ("Subite-eu__camt-to-coda__LT_centralbank_2024-03-14.xml", 14),
    ("actualbudget__actual__camt.latin1.xml", 2),
    (
        "darko-mijic__iso-20022-camt-053-parser__ISO20022_camt053_extended_SE_incoming_payments_incl_CB_example.xml",
        7,
    ),
    (
        "darko-mijic__iso-20022-camt-053-parser__ISO20022_camt053_extended_SE_outgoing_payments_example.xml",
        4,
    ),
    (
        "darko-mijic__iso-20022-camt-053-parser__camt_053_swedish_account_statement.xml",
        5,
    ),
    (
        "darko-mijic__iso-20022-camt-053-parser__camt_053_ver2_mixed_extended_account_statement.xml",
        5,
    ),
    (
        "darko-mijic__iso-20022-camt-053-parser__camt_053_ver_2_extended_se_account_swish_ecommerce.xml",
        4,
    ),
    (
        "darko-mijic__iso-20022-camt-053-parser__camt_053_ver_2_extended_uk_account.xml",
        2,
    ),
    ("genkgo__camt__camt053.v2.five.decimals.xml", 1),
    ("genkgo__camt__camt053.v2.minimal.xml", 1),
    ("genkgo__camt__camt053.v2.multi.statement.xml", 2),
    ("genkgo__camt__camt053.v3.xml", 1),
    ("genkgo__camt__camt053.v4.xml", 1),
    ("genkgo__camt__camt053.v8.xml", 1),
    ("genkgo__camt__camt53.only-Dt-with-DtTm.xml", 0),
    ("kedder__ofxstatement-iso20022__camt053.xml", 1),
    ("kedder__ofxstatement-iso20022__davider80.xml", 16),
    ("kedder__ofxstatement-iso20022__gcamp6.xml", 5),
    ("kedder__ofxstatement-iso20022__simple.xml", 4),
    ("moov-io__iso20022__FI_camt_053_sample.xml", 13),
    ("newinnovations__camt053__example-camt053-a.xml", 11),
    ("newinnovations__camt053__example-camt053-b.xml", 19),
    ("newinnovations__camt053__test-camt053.xml", 2),
    ("pretix__pretix__camt.053_bundesbank.xml", 11),
    ("prowide__prowide-iso20022__camt.053.001.07.xml", 0),
    (
        "sebastienrousseau__camt053__business_sample_camt.053.001.04.xml",
        3,
    ),
    (
        "stanisci__libeufin__camt053_P_CH2909000000250094239_1110092698_0_2020062503071366_v2009.xml",
        5,
    ),
    (
        "stanisci__libeufin__camt053_P_CH2909000000250094239_1110092698_0_2020112503071366_v2019.xml",
        5,
    ),
    ("stanisci__libeufin__gls_camt053.xml", 4),
    ("stanisci__libeufin__postfinance_camt053.xml", 2),
    ("viafintech__camt_parser__valid_example.xml", 5),
    ("viafintech__camt_parser__valid_example_v4.xml", 32),
    ("viafintech__camt_parser__valid_example_v8.xml", 3),
    ("viafintech__camt_parser__valid_example_with_batch.xml", 3),
    (
        "viafintech__camt_parser__valid_example_with_datetime.xml",
        1,
    ),
    (
        "viafintech__camt_parser__valid_example_with_instdamt.xml",
        1,
    ),
];

/// Profile and transactions per CSV export.
const CSV_EXPECTED: &[(&str, &str, usize)] = &[
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

#[test]
fn every_shared_camt_sample_reads_whole_with_the_expected_transaction_count() {
    let Some(dir) = shared_samples("camt053") else {
        return;
    };
    let mut failures = Vec::new();
    for (name, expected) in CAMT_EXPECTED {
        match read_path(&dir.join(name), &ReadOptions::default()) {
            Ok(file) if file.transactions.len() == *expected => {}
            Ok(file) => failures.push(format!(
                "{name}: {} transactions, expected {expected}",
                file.transactions.len()
            )),
            Err(e) => failures.push(format!("{e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn no_shared_camt_sample_is_left_out_of_the_table() {
    let Some(dir) = shared_samples("camt053") else {
        return;
    };
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        if name.ends_with(".xml") {
            assert!(
                CAMT_EXPECTED.iter().any(|(n, _)| *n == name),
                "{name} is not in the table of expected counts"
            );
        }
    }
}

#[test]
fn every_shared_csv_sample_is_recognised_and_read_whole() {
    let Some(dir) = shared_samples("csv") else {
        return;
    };
    let mut failures = Vec::new();
    for (name, profile, count) in CSV_EXPECTED {
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
        if name.ends_with(".csv") && !CSV_EXPECTED.iter().any(|(n, _, _)| *n == name) {
            failures.push(format!("{name} is not in the table"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn german_exports_read_preambles_pending_rows_and_payer_columns() {
    let Some(dir) = shared_samples("csv") else {
        return;
    };
    let dkb = read_statement(dir.join("nicolettas-muggelbude__RechnungsPilot__dkb.csv"));
    let first = &dkb.transactions[0];
    assert_eq!(first.amount.to_string(), "200");
    assert_eq!(first.direction, Direction::Credit);
    assert_eq!(first.booking_date.unwrap().to_string(), "2025-12-08");
    assert_eq!(
        first.counterparty.name.as_deref(),
        Some("Max Mustermann"),
        "payer of a credit"
    );
    let spk = read_statement(
        dir.join("nicolettas-muggelbude__RechnungsPilot__sparkasse-lzo-camt-v2.csv"),
    );
    assert!(
        spk.transactions.iter().any(|t| !t.booked),
        "Umsatz vorgemerkt rows are pending"
    );
    assert!(spk.transactions.iter().any(|t| t.booked));
    let ing = read_statement(dir.join("nicolettas-muggelbude__RechnungsPilot__ing.csv"));
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
