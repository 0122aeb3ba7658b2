//! The camt reader on published samples kept in `fixtures/camt/` (MIT/Apache, see SOURCES.md):
//! field by field, the shapes of different versions and banks.

use std::path::PathBuf;

use recon::statement::{Direction, ReadOptions, StatementFile, Transaction, read_path};
use rust_decimal::Decimal;

fn read(name: &str) -> StatementFile {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/camt")
        .join(name);
    read_path(&path, &ReadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

fn date(tx: &Transaction) -> Option<String> {
    tx.booking_date.map(|d| d.to_string())
}

#[test]
fn v08_shapes_status_code_datetime_and_party_wrappers() {
    let file = read("genkgo__camt__camt053.v8.xml");
    assert_eq!(file.format, "camt.053.001.08");
    assert_eq!(file.transactions.len(), 1);
    let tx = &file.transactions[0];
    assert!(tx.booked, "Sts/Cd BOOK");
    assert_eq!(date(tx).as_deref(), Some("2014-12-31"), "BookgDt/DtTm");
    assert_eq!(tx.value_date.unwrap().to_string(), "2015-01-02");
    assert_eq!(tx.direction, Direction::Credit);
    assert_eq!(
        tx.counterparty.name.as_deref(),
        Some("NAME NAME"),
        "Dbtr/Pty/Nm"
    );
    assert_eq!(
        tx.counterparty.account.as_deref(),
        Some("NL56AGDH9619008421")
    );
    assert_eq!(
        tx.refs.entry_servicer_ref.as_deref(),
        Some("AAAASESS-FP-CN_98765/01")
    );
    assert_eq!(tx.refs.end_to_end_id.as_deref(), Some("MUELL/FINP/RA12345"));
    assert!(!tx.remittance.structured.is_empty(), "Strd/CdtrRefInf/Ref");
}

#[test]
fn amounts_keep_five_decimals() {
    let file = read("genkgo__camt__camt053.v2.five.decimals.xml");
    assert_eq!(file.transactions[0].amount, dec("8.850"));
    assert_eq!(file.transactions[0].amount.to_string(), "8.850");
}

#[test]
fn a_batch_without_details_is_one_transaction_and_details_are_numbered() {
    let file = read("viafintech__camt_parser__valid_example_with_batch.xml");
    let txs = &file.transactions;
    assert_eq!(txs.len(), 3);
    assert_eq!(txs[0].amount, dec("4753.74"));
    assert_eq!(txs[0].direction, Direction::Debit);
    assert_eq!(txs[0].position.detail, None);
    assert_eq!(txs[1].position.detail, Some(1));
    assert_eq!(txs[1].counterparty.name.as_deref(), Some("TEST"));
    assert_eq!(txs[1].remittance.display(), "TERUGGAAF");
    assert_eq!(
        file.statements[0].account.as_deref(),
        Some("NL18INGB00012345678")
    );
}

#[test]
fn remittance_split_into_140_character_lines_is_kept_in_order() {
    let file = read("MeinGrundeinkommen__konfipay__failed_debit_with_charges_08.xml");
    let tx = &file.transactions[0];
    assert_eq!(tx.amount, dec("15.50"), "TxAmt, not InstdAmt");
    assert_eq!(tx.direction, Direction::Debit);
    assert_eq!(tx.remittance.unstructured.len(), 3);
    assert!(tx.remittance.display().contains("MAND ATE123"));
    // The payee on this returned direct debit is our own account: the payer is shown instead.
    assert_eq!(tx.counterparty.name.as_deref(), Some("Max Mustermann"));
}

#[test]
fn latin1_camt052_is_decoded() {
    let file = read("actualbudget__actual__camt.latin1.xml");
    assert_eq!(file.format, "camt.052.001.08");
    let texts: Vec<String> = file
        .transactions
        .iter()
        .map(|t| t.remittance.display())
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("Überschusssparen")),
        "{texts:?}"
    );
}

#[test]
fn entries_without_status_or_booking_date_are_booked_without_a_date() {
    let file = read("Subite-eu__camt-to-coda__LT_centralbank_2024-03-14.xml");
    assert_eq!(file.transactions.len(), 14);
    assert_eq!(file.statements.len(), 2);
    let tx = &file.transactions[0];
    assert!(tx.booked);
    assert_eq!(tx.booking_date, None);
    assert_eq!(tx.amount, dec("36847"));
    assert_eq!(
        tx.account.as_deref(),
        Some("LT625883379695428516"),
        "Acct/Id/Othr/Id"
    );
}

#[test]
fn reversal_indicator_is_read() {
    let file = read("newinnovations__camt053__example-camt053-b.xml");
    let reversals = file.transactions.iter().filter(|t| t.reversal).count();
    assert_eq!(reversals, 5);
    assert!(file.transactions.iter().all(|t| t.booking_date.is_some()));
}

#[test]
fn comments_inside_batches_and_wrapped_documents_are_read() {
    assert_eq!(
        read("moov-io__iso20022__FI_camt_053_sample.xml")
            .transactions
            .len(),
        13
    );
    let wrapped = read("prowide__prowide-iso20022__camt.053.001.07.xml");
    assert_eq!(wrapped.format, "camt.053.001.07");
    assert!(wrapped.transactions.is_empty());
    assert_eq!(wrapped.statements[0].id.as_deref(), Some("SDFSDF"));
}

#[test]
fn reading_is_deterministic_including_identities() {
    let a = read("moov-io__iso20022__FI_camt_053_sample.xml");
    let b = read("moov-io__iso20022__FI_camt_053_sample.xml");
    assert_eq!(a, b);
    let mut ids: Vec<_> = a.transactions.iter().map(|t| t.identity).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        a.transactions.len(),
        "identities are unique within a file"
    );
}
