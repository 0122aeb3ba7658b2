//! camt.052/053/054: the reader on published samples kept in `fixtures/camt/` (MIT/Apache, see
//! SOURCES.md), field by field, the shapes of different versions and banks; and documents that
//! are not camt, or broken ones, rejected through the binary with a message naming the problem.

use recon::statement::{Direction, StatementFile, Transaction};
use rust_decimal::Decimal;

use crate::env::{
    Env, T1, T2, assert_code, assert_ok, camt, credit, demo, fixture, outcome_count, read_statement,
};

fn read(name: &str) -> StatementFile {
    read_statement(fixture(&format!("camt/{name}")))
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
        ("nostatement.xml", camt("S", &[]).replace(
            "<Stmt><Id>S</Id><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct>\n\n</Stmt>", ""),
            "the camt.053.001.02 document holds no statement (no <Stmt> element)"),
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

/// A booked credit entry of `total` EUR whose transaction details carry the remittance texts
/// and, where given, an amount of their own.
fn batch_entry(total: &str, details: &[(&str, Option<&str>)]) -> String {
    let details: String = details
        .iter()
        .map(|(text, amount)| {
            let amount = amount
                .map(|a| format!("<Amt Ccy=\"EUR\">{a}</Amt>"))
                .unwrap_or_default();
            format!("<TxDtls>{amount}<RmtInf><Ustrd>{text}</Ustrd></RmtInf></TxDtls>")
        })
        .collect();
    format!(
        "<Ntry><Amt Ccy=\"EUR\">{total}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>\
         <BookgDt><Dt>2026-11-21</Dt></BookgDt><NtryDtls><Btch><NbOfTxs>{}</NbOfTxs></Btch>\
         {details}</NtryDtls></Ntry>",
        details.matches("<TxDtls>").count()
    )
}

#[test]
fn a_batch_entry_whose_details_carry_no_amount_is_one_transaction_per_detail_never_lost() {
    let env = Env::new().with_demo_topups();
    let t3 = "9531985d-5d9d-49f8-9818-e811892f902b";
    let none = batch_entry(
        "300.00",
        &[
            (&format!("topup {T1}"), None),
            (&format!("topup {T2}"), None),
        ],
    );
    let some = batch_entry(
        "325.50",
        &[
            (&format!("topup {T2}"), Some("50.00")),
            (&format!("topup {T1}"), None),
            (&format!("topup {t3}"), None),
        ],
    );
    let path = env.write("batch.xml", camt("S", &[none, some]));
    assert_ok(&env.run("r", &[path.to_str().unwrap()]));
    let summary = env.summary("r");
    assert_eq!(summary["counts"]["read"], 5, "one transaction per detail");
    assert_eq!(
        outcome_count(&summary, "MATCHED"),
        1,
        "the detail with its own amount"
    );
    let rows = env.csv("r", "unmatched.csv");
    let row = |position: &str| {
        rows.iter()
            .find(|r| r["position"] == position)
            .unwrap_or_else(|| panic!("{position}: {rows:?}"))
    };
    let first = row("entry 1 detail 1");
    assert_eq!(first["amount"], "300.00");
    assert!(
        first["remittance"].contains(
            "[recon: the bank gave this transaction of a batch entry no amount of its own: 300.00 \
             EUR is what the entry's other transactions leave of its 300.00 EUR]"
        ),
        "{}",
        first["remittance"]
    );
    let second = row("entry 1 detail 2");
    assert_eq!(second["amount"], "0.00");
    assert!(
        second["remittance"].contains("the entry's 300.00 EUR is reported on its detail 1, 0 here"),
        "{}",
        second["remittance"]
    );
    assert_eq!(
        row("entry 2 detail 2")["amount"],
        "275.50",
        "325.50 less the 50.00 given"
    );
    assert_eq!(row("entry 2 detail 3")["amount"], "0.00");
}

#[test]
fn camt_version_001_01_with_its_v01_message_names_is_read() {
    let text = camt(
        "R1",
        &[credit("200.00", "EUR", &format!("topup {T1}"), "A1")],
    )
    .replace("camt.053.001.02", "camt.052.001.01")
    .replace("BkToCstmrStmt>", "BkToCstmrAcctRptV01>")
    .replace("<Stmt>", "<Rpt>")
    .replace("</Stmt>", "</Rpt>")
    // Version 001.01 has no NtryDtls: the details stand right in the entry.
    .replace("<NtryDtls>", "")
    .replace("</NtryDtls>", "");
    let env = Env::new().with_demo_topups();
    let path = env.write("camt052v01.xml", text);
    assert_ok(&env.run("r", &[path.to_str().unwrap()]));
    let summary = env.summary("r");
    assert_eq!(summary["inputs"][0]["format"], "camt.052.001.01");
    assert_eq!(outcome_count(&summary, "MATCHED"), 1);
    let unknown = camt("S", &[])
        .replace("camt.053.001.02", "camt.052.001.01")
        .replace("BkToCstmrStmt>", "BkToCstmrAcctRptV99>");
    let path = env.write("unknown.xml", unknown);
    assert_code(&env.run("r2", &[path.to_str().unwrap()]), 65);
    let error = env.input_error("r2");
    assert!(
        error.contains(
            "the camt.052.001.01 document's message is <BkToCstmrAcctRptV99>, which recon does \
             not know"
        ) && !error.contains("not a bank statement"),
        "{error}"
    );
}

#[test]
fn dates_with_trailing_text_an_impossible_time_or_year_0000_are_refused_with_their_place() {
    let env = Env::new().with_demo_topups();
    for (n, written) in ["2026-11-21garbage", "2026-11-21T25:99", "0000-11-21"]
        .into_iter()
        .enumerate()
    {
        let entry = credit("1.00", "EUR", "x", "R").replace(
            "<ValDt><Dt>2026-11-21</Dt>",
            &format!("<ValDt><Dt>{written}</Dt>"),
        );
        let path = env.write(&format!("date{n}.xml"), camt("S", &[entry]));
        let out = env.run(&format!("r{n}"), &[path.to_str().unwrap()]);
        assert_code(&out, 65);
        let error = env.input_error(&format!("r{n}"));
        assert!(
            error.contains(&format!("{written:?} is not a date"))
                && error.contains("line 6, column ")
                && error.contains("Ntry[1]/ValDt"),
            "{written}: {error}"
        );
    }
}
