//! The returns file: recon's pain.001.001.09 validated against ISO's published schema
//! (`fixtures/xsd/`) with libxml2, hostile bank text in it, and the inputs it refuses.

use std::path::PathBuf;

use chrono::{NaiveDate, TimeZone, Utc};
use recon::money::Currency;
use recon::returns::pain001::{
    Debtor, Initiation, MAX_NAME_CHARS, MAX_REMITTANCE_CHARS, Pain001Error, Payment, write,
};
use regex::Regex;
use rust_decimal::Decimal;

use crate::env::fixture;
use crate::xsd;

fn schema() -> PathBuf {
    PathBuf::from(fixture("xsd/pain.001.001.09.xsd"))
}

/// Validates `xml` against ISO's schema, failing the test with libxml2's messages.
fn assert_valid(xml: &str) {
    if let Err(errors) = xsd::validate(&schema(), xml) {
        panic!(
            "the document does not validate:\n{}\n{xml}",
            errors.join("\n")
        );
    }
}

fn eur(amount: &str) -> (Decimal, Currency) {
    (amount.parse().unwrap(), "EUR".parse().unwrap())
}

fn payment(id: &str, amount: &str, name: &str, iban: &str, remittance: &str) -> Payment {
    let (amount, currency) = eur(amount);
    Payment {
        end_to_end_id: id.to_string(),
        amount,
        currency,
        creditor_name: name.to_string(),
        creditor_iban: iban.to_string(),
        creditor_bic: None,
        remittance: remittance.to_string(),
    }
}

fn initiation(payments: Vec<Payment>) -> Initiation {
    Initiation {
        message_id: "RECON-RETURNS-20261207-1".to_string(),
        created_at: Utc.with_ymd_and_hms(2026, 12, 7, 9, 30, 5).unwrap(),
        execution_date: NaiveDate::from_ymd_opt(2026, 12, 8).unwrap(),
        debtor: Debtor {
            name: "Recon Payments GmbH".to_string(),
            iban: "DE89370400440532013000".to_string(),
            bic: Some("COBADEFFXXX".to_string()),
        },
        payments,
    }
}

fn one() -> Initiation {
    initiation(vec![payment(
        "RECON-RET-1",
        "300.5",
        "Jane Payer",
        "FR1420041010050500013M02606",
        "Return of overpayment TOPUP-1AB4FEF9",
    )])
}

/// The text of every `<tag>` whose parent is `<parent>`, in document order.
fn texts(xml: &str, parent: &str, tag: &str) -> Vec<String> {
    let pattern = format!(r"<{parent}>\s*<{tag}>([^<]*)</{tag}>");
    Regex::new(&pattern)
        .unwrap()
        .captures_iter(xml)
        .map(|c| c[1].to_string())
        .collect()
}

/// `xml` without the indentation between tags, for asserting on nested elements.
fn compact(xml: &str) -> String {
    Regex::new(r">\s+<")
        .unwrap()
        .replace_all(xml, "><")
        .into_owned()
}

fn error(initiation: &Initiation) -> String {
    write(initiation)
        .expect_err("the initiation should be refused")
        .to_string()
}

#[test]
fn one_payment_validates_against_the_iso_schema() {
    let xml = write(&one()).unwrap();
    assert_valid(&xml);
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.001.001.09\">"));
    assert_eq!(texts(&xml, "GrpHdr", "MsgId"), ["RECON-RETURNS-20261207-1"]);
    assert!(xml.contains("<CreDtTm>2026-12-07T09:30:05Z</CreDtTm>"));
    // Two decimals everywhere, the control sums included.
    assert!(
        xml.contains("<InstdAmt Ccy=\"EUR\">300.50</InstdAmt>"),
        "{xml}"
    );
    assert_eq!(xml.matches("<CtrlSum>300.50</CtrlSum>").count(), 2);
    assert_eq!(xml.matches("<NbOfTxs>1</NbOfTxs>").count(), 2);
    for part in [
        "<PmtMtd>TRF</PmtMtd>",
        "<BtchBookg>false</BtchBookg>",
        "<PmtTpInf><SvcLvl><Cd>SEPA</Cd></SvcLvl></PmtTpInf>",
        "<ReqdExctnDt><Dt>2026-12-08</Dt></ReqdExctnDt>",
        "<BICFI>COBADEFFXXX</BICFI>",
        "<ChrgBr>SLEV</ChrgBr>",
        "<EndToEndId>RECON-RET-1</EndToEndId>",
        "<Ustrd>Return of overpayment TOPUP-1AB4FEF9</Ustrd>",
    ] {
        assert!(compact(&xml).contains(part), "{part} missing in\n{xml}");
    }
    assert_eq!(texts(&xml, "InitgPty", "Nm"), ["Recon Payments GmbH"]);
    assert_eq!(texts(&xml, "Dbtr", "Nm"), ["Recon Payments GmbH"]);
    assert_eq!(texts(&xml, "Cdtr", "Nm"), ["Jane Payer"]);
    assert_eq!(
        texts(&xml, "Id", "IBAN"),
        ["DE89370400440532013000", "FR1420041010050500013M02606"]
    );
    // No creditor BIC known: no creditor agent (SEPA finds the bank from the IBAN).
    assert!(!xml.contains("<CdtrAgt>"));
}

#[test]
fn several_payments_validate_in_their_order_with_count_and_control_sum() {
    let mut with_bic = payment("RECON-RET-3", "0.01", "Bob", "NL91ABNA0417164300", "");
    with_bic.creditor_bic = Some(" abnanl2a ".to_string());
    let mut file = initiation(vec![
        payment(
            "RECON-RET-2",
            "1200",
            "Alice",
            "DE89 3704 0044 0532 0130 00",
            "first",
        ),
        with_bic,
        payment(
            "RECON-RET-10",
            "999999999.99",
            "Carol",
            "gb29nwbk60161331926819",
            "third",
        ),
    ]);
    file.debtor.bic = None;
    let xml = write(&file).unwrap();
    assert_valid(&xml);
    assert_eq!(
        texts(&xml, "PmtId", "EndToEndId"),
        ["RECON-RET-2", "RECON-RET-3", "RECON-RET-10"]
    );
    assert_eq!(xml.matches("<NbOfTxs>3</NbOfTxs>").count(), 2);
    assert_eq!(xml.matches("<CtrlSum>1000001200.00</CtrlSum>").count(), 2);
    for amount in ["1200.00", "0.01", "999999999.99"] {
        assert!(xml.contains(&format!("<InstdAmt Ccy=\"EUR\">{amount}</InstdAmt>")));
    }
    // IBANs in their electronic form, the BIC upper-cased, the debtor's bank not provided.
    assert_eq!(
        texts(&xml, "Id", "IBAN"),
        [
            "DE89370400440532013000",
            "DE89370400440532013000",
            "NL91ABNA0417164300",
            "GB29NWBK60161331926819"
        ]
    );
    let flat = compact(&xml);
    assert!(flat.contains("<CdtrAgt><FinInstnId><BICFI>ABNANL2A</BICFI></FinInstnId></CdtrAgt>"));
    assert_eq!(xml.matches("<CdtrAgt>").count(), 1);
    assert!(
        flat.contains(
            "<DbtrAgt><FinInstnId><Othr><Id>NOTPROVIDED</Id></Othr></FinInstnId></DbtrAgt>"
        )
    );
    // An empty remittance leaves `RmtInf` out rather than writing an empty `Ustrd`.
    assert_eq!(texts(&xml, "RmtInf", "Ustrd"), ["first", "third"]);
}

#[test]
fn the_same_initiation_gives_the_same_bytes() {
    let file = initiation(vec![
        payment("RECON-RET-5", "10", "Zoë", "DE89370400440532013000", "a"),
        payment(
            "RECON-RET-6",
            "20",
            "Chloé",
            "FR1420041010050500013M02606",
            "b",
        ),
    ]);
    assert_eq!(write(&file).unwrap(), write(&file.clone()).unwrap());
}

#[test]
fn hostile_bank_text_is_transliterated_cut_and_still_validates() {
    let long = "Ä".repeat(50) + &"x".repeat(100);
    let file = initiation(vec![
        payment(
            "RECON-RET-7",
            "5",
            "Müller & Söhne <GmbH> \"Straße\" 🦄🎉",
            "DE89370400440532013000",
            "]]><![CDATA[ <script>alert('x')</script> &amp; naïve\r\nSEPA-Ref: 12_34",
        ),
        payment(
            "RECON-RET-8",
            "6",
            &long,
            "DE89370400440532013000",
            &long.repeat(3),
        ),
        payment(
            "RECON-RET-9",
            "7",
            "北京 Ørsted Œuvre ‘quoted’ – ok",
            "DE89370400440532013000",
            "🦄",
        ),
    ]);
    let xml = write(&file).unwrap();
    assert_valid(&xml);
    let names = texts(&xml, "Cdtr", "Nm");
    assert_eq!(names[0], "Muller + Sohne GmbH Strasse");
    assert_eq!(names[1], "A".repeat(50) + &"x".repeat(20));
    assert_eq!(names[1].chars().count(), MAX_NAME_CHARS);
    assert_eq!(names[2], "Bei Jing Orsted OEuvre 'quoted' - ok");
    let remittance = texts(&xml, "RmtInf", "Ustrd");
    assert_eq!(
        remittance[0],
        "CDATA script alert('x') /script +amp naive SEPA-Ref: 12 34"
    );
    assert_eq!(remittance[1].chars().count(), MAX_REMITTANCE_CHARS);
    // A remittance of nothing SEPA carries is left out.
    assert_eq!(remittance.len(), 2);
    assert!(!xml.contains("]]>") && !xml.contains("<script") && !xml.contains("&amp;"));
}

#[test]
fn a_broken_document_fails_validation() {
    let good = write(&one()).unwrap();
    assert_valid(&good);
    let moved = good
        .replace("<PmtMtd>TRF</PmtMtd>", "")
        .replace("</BtchBookg>", "</BtchBookg><PmtMtd>TRF</PmtMtd>");
    // Each broken document, and a word libxml2's message about it must contain.
    let broken = [
        (good.replacen("<NbOfTxs>1</NbOfTxs>", "", 1), "NbOfTxs )"),
        (
            moved,
            "Expected is ( {urn:iso:std:iso:20022:tech:xsd:pain.001.001.09}PmtMtd )",
        ),
        (
            good.replace("FR1420041010050500013M02606", "fr14 2004"),
            "'fr14 2004' is not accepted",
        ),
        (
            good.replace(">300.50<", ">300,50<"),
            "'300,50' is not a valid value",
        ),
        (
            good.replace("<PmtMtd>TRF</PmtMtd>", "<PmtMtd>CASH</PmtMtd>"),
            "'CASH'",
        ),
        (
            good.replace("RECON-RETURNS-20261207-1", &"X".repeat(36)),
            "maximum length of '35'",
        ),
        (
            good.replace("<ChrgBr>SLEV</ChrgBr>", "<ChrgBr>SLEV</ChrgBr><Foo/>"),
            "Foo'",
        ),
        (
            good.replace("pain.001.001.09\"", "pain.001.001.03\""),
            "No matching global declaration",
        ),
        (good.replace("</Document>", ""), "not well-formed"),
    ];
    for (xml, expected) in broken {
        let errors = xsd::validate(&schema(), &xml).expect_err(expected);
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{expected}: {errors:?}"
        );
    }
}

#[test]
fn bad_inputs_are_refused_with_a_clear_error() {
    let with = |change: &dyn Fn(&mut Initiation)| {
        let mut file = one();
        change(&mut file);
        error(&file)
    };
    assert_eq!(
        with(&|f| f.payments.clear()),
        "a pain.001 file needs at least one payment; there is none to send"
    );
    assert_eq!(
        with(&|f| f.payments[0].creditor_iban = "DE89370400440532013001".into()),
        "payment RECON-RET-1: the creditor's IBAN \"DE89370400440532013001\" is not an IBAN: \
         its check digits do not match the rest (a typing error?)"
    );
    assert_eq!(
        with(&|f| f.debtor.iban = "DE5137040044053201300".into()),
        "the debtor's IBAN \"DE5137040044053201300\" is not an IBAN: its account part does not \
         have its country's length or format"
    );
    assert_eq!(
        with(&|f| f.debtor.iban = "XY43370400440532013000".into()),
        "the debtor's IBAN \"XY43370400440532013000\" is not an IBAN: its country code is not one \
         that issues IBANs"
    );
    assert_eq!(
        with(&|f| f.payments[0].creditor_iban = "not an iban <>".into()),
        "payment RECON-RET-1: the creditor's IBAN \"not an iban <>\" is not an IBAN: it is not \
         two letters, two check digits and up to 30 letters or digits"
    );
    assert_eq!(
        with(&|f| f.payments[0].creditor_bic = Some("DEUT1EFF".into())),
        "payment RECON-RET-1: the creditor's BIC \"DEUT1EFF\" is not a BIC (8 or 11 letters and \
         digits: bank, a two-letter country, location, and an optional branch)"
    );
    assert_eq!(
        with(&|f| f.payments[0].currency = "USD".parse().unwrap()),
        "payment RECON-RET-1: a SEPA credit transfer is in EUR, not USD"
    );
    for (amount, reason) in [
        ("0", "must be greater than zero"),
        ("-5.00", "must be greater than zero"),
        (
            "1.005",
            "has more than two decimals; a euro has cents, nothing finer",
        ),
        (
            "1000000000.00",
            "is over 999999999.99, the most one SEPA credit transfer carries",
        ),
    ] {
        assert_eq!(
            with(&|f| f.payments[0].amount = amount.parse().unwrap()),
            format!("payment RECON-RET-1: the amount {amount} EUR {reason}")
        );
    }
    assert_eq!(
        with(&|f| f.payments.push(f.payments[0].clone())),
        "end-to-end id \"RECON-RET-1\" is given to two payments; each payment needs its own"
    );
    assert_eq!(
        with(&|f| f.payments[0].creditor_name = "🦄 <> 🎉".into()),
        "payment RECON-RET-1: the creditor's name \"🦄 <> 🎉\" has no letter or digit a SEPA \
         file can carry"
    );
    assert_eq!(
        with(&|f| f.execution_date = NaiveDate::from_ymd_opt(2026, 12, 6).unwrap()),
        "the requested execution date 2026-12-06 is before the file's creation day 2026-12-07; \
         a bank executes no transfer in the past"
    );
}

#[test]
fn identifiers_are_refused_not_cut() {
    let with_id = |id: &str| {
        let mut file = one();
        file.payments[0].end_to_end_id = id.to_string();
        error(&file)
    };
    let long = "RECON-RET-".to_string() + &"1".repeat(26);
    assert_eq!(
        with_id(&long),
        format!("end-to-end id {long:?} cannot be used: it is longer than 35 characters")
    );
    assert_eq!(
        with_id(""),
        "end-to-end id \"\" cannot be used: it is empty"
    );
    for bad in ["RECON RET 1", "RECON_RET_1", "RÉCON-1", "A<B"] {
        assert_eq!(
            with_id(bad),
            format!(
                "end-to-end id {bad:?} cannot be used: it has a character outside a-z A-Z 0-9 \
                 / - ? : ( ) . , ' +"
            )
        );
    }
    for bad in ["/RECON-1", "RECON-1/", "RECON//1"] {
        assert_eq!(
            with_id(bad),
            format!(
                "end-to-end id {bad:?} cannot be used: a SEPA identifier neither starts nor ends \
                 with '/' nor contains '//'"
            )
        );
    }
    let mut file = one();
    file.message_id = "X".repeat(36);
    assert!(matches!(
        write(&file),
        Err(Pain001Error::Id {
            field: "message id",
            ..
        })
    ));
    // 35 characters exactly is fine.
    let mut file = one();
    file.message_id = "M".repeat(35);
    file.payments[0].end_to_end_id = "RECON-RET-".to_string() + &"9".repeat(25);
    assert_valid(&write(&file).unwrap());
}
