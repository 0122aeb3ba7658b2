//! Hostile and broken inputs: each is rejected with a clear message (or read, where it is
//! legitimate), without a panic, in bounded time and memory, while the valid statement beside it
//! is still processed.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::env::{Env, demo, stderr};

/// Runs the hostile file next to the valid demo statement into `report`; returns the hostile
/// file's error.
fn reject(env: &Env, hostile: &Path) -> Option<String> {
    let good = demo("2026-11-20.camt053.xml");
    let out = env.run("report", &["--force", hostile.to_str().unwrap(), &good]);
    let stderr = stderr(&out);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let summary = env.summary("report");
    assert_eq!(
        summary["inputs"][1]["rejected"], false,
        "the valid file is processed"
    );
    assert_eq!(summary["inputs"][1]["transactions"], 13);
    summary["inputs"][0]["error"].as_str().map(str::to_string)
}

fn assert_rejected(error: Option<String>, expected: &str) {
    let error = error.expect("the hostile file is rejected");
    assert!(
        error.contains(expected),
        "expected {expected:?} in: {error}"
    );
}

#[test]
fn entity_expansion_and_external_entities_are_refused() {
    let env = Env::new().with_demo_topups();
    let laughs = env.path("laughs.xml");
    let mut doc =
        String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n");
    for i in 1..10 {
        doc.push_str(&format!(
            " <!ENTITY lol{i} \"{}\">\n",
            format!("&lol{};", i - 1)
                .repeat(10)
                .replace("&lol0;", "&lol;")
        ));
    }
    doc.push_str("]>\n<Document><BkToCstmrStmt><Stmt><Ntry><Amt Ccy=\"EUR\">&lol9;</Amt></Ntry></Stmt></BkToCstmrStmt></Document>\n");
    fs::write(&laughs, doc).unwrap();
    assert_rejected(reject(&env, &laughs), "DOCTYPE");
    let xxe = env.path("xxe.xml");
    fs::write(&xxe, "<?xml version=\"1.0\"?>\n<!DOCTYPE d [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n<Document><BkToCstmrStmt><Stmt><Id>&xxe;</Id></Stmt></BkToCstmrStmt></Document>\n").unwrap();
    assert_rejected(reject(&env, &xxe), "DOCTYPE");
}

#[test]
fn absurd_nesting_and_a_huge_text_node_are_refused_early() {
    let env = Env::new().with_demo_topups();
    let deep = env.path("deep.xml");
    let mut doc = String::from("<Document><BkToCstmrStmt>");
    doc.push_str(&"<a>".repeat(200_000));
    doc.push_str(&"</a>".repeat(200_000));
    doc.push_str("</BkToCstmrStmt></Document>");
    fs::write(&deep, doc).unwrap();
    assert_rejected(reject(&env, &deep), "nested deeper than the limit of 64");
    // A 300 MB text node: the reader stops at the 1 MiB limit, it never buffers the rest.
    let huge = env.path("huge.xml");
    let mut file = fs::File::create(&huge).unwrap();
    file.write_all(b"<Document><BkToCstmrStmt><Stmt><Id>")
        .unwrap();
    let chunk = vec![b'A'; 1 << 20];
    for _ in 0..300 {
        file.write_all(&chunk).unwrap();
    }
    file.write_all(b"</Id></Stmt></BkToCstmrStmt></Document>")
        .unwrap();
    drop(file);
    assert_rejected(reject(&env, &huge), "longer than the limit");
}

#[test]
fn garbage_empty_and_badly_encoded_files_are_refused() {
    let env = Env::new().with_demo_topups();
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("garbage.bin", (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect(), "not a statement format"),
        ("empty.xml", Vec::new(), "the file is empty"),
        ("badutf8.xml", b"<Document><BkToCstmrStmt><Stmt><Id>\xff\xfe\xfd</Id></Stmt></BkToCstmrStmt></Document>".to_vec(), "UTF-8"),
        ("latin1.xml", b"<Document><BkToCstmrStmt><Stmt><Id>Gr\xfc\xdfe</Id></Stmt></BkToCstmrStmt></Document>".to_vec(), "UTF-8"),
        ("pain.xml", b"<?xml version=\"1.0\"?><Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.001.001.09\"><CstmrCdtTrfInitn/></Document>".to_vec(), "pain.001"),
    ];
    for (name, bytes, expected) in cases {
        let path = env.path(name);
        fs::write(&path, bytes).unwrap();
        assert_rejected(reject(&env, &path), expected);
    }
    // The same Latin-1 text with its encoding declared is legitimate and read.
    let declared = env.path("declared.xml");
    fs::write(&declared, b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><Document><BkToCstmrStmt><Stmt><Id>Gr\xfc\xdfe</Id></Stmt></BkToCstmrStmt></Document>").unwrap();
    assert_eq!(reject(&env, &declared), None);
}

#[test]
fn a_csv_with_a_ten_megabyte_line_is_refused() {
    let env = Env::new().with_demo_topups();
    let path = env.path("long.csv");
    let mut text = String::from(
        "booking_date,value_date,amount,currency,remittance,counterparty_name,counterparty_iban,bank_ref,status\n",
    );
    text.push_str("2026-11-21,2026-11-21,1.00,EUR,");
    text.push_str(&"x".repeat(10 << 20));
    text.push_str(",,,,BOOK\n");
    fs::write(&path, text).unwrap();
    assert_rejected(reject(&env, &path), "longer than the limit");
}

#[test]
fn formula_text_in_every_field_is_neutralised_in_the_csv_report() {
    let env = Env::new().with_demo_topups();
    let evil = "=cmd|' /C calc'!A0";
    let path = env.path("formulas.xml");
    fs::write(
        &path,
        format!(
            "<Document><BkToCstmrStmt><Stmt><Id>{evil}</Id><Acct><Id><IBAN>{evil}</IBAN></Id></Acct>
             <Ntry><NtryRef>{evil}</NtryRef><Amt Ccy=\"EUR\">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
             <AcctSvcrRef>{evil}</AcctSvcrRef><NtryDtls><TxDtls><Refs><EndToEndId>{evil}</EndToEndId><TxId>{evil}</TxId><UETR>{evil}</UETR></Refs>
             <RltdPties><Dbtr><Nm>{evil}</Nm></Dbtr><DbtrAcct><Id><IBAN>{evil}</IBAN></Id></DbtrAcct></RltdPties>
             <RmtInf><Ustrd>{evil}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry></Stmt></BkToCstmrStmt></Document>"
        )
        .replace('\'', "&apos;"),
    )
    .unwrap();
    assert_eq!(reject(&env, &path), None);
    let row = &env.csv("report", "unmatched.csv")[0];
    let mut checked = 0;
    for (name, value) in row {
        if value.contains("cmd|") {
            assert!(value.starts_with("'="), "{name}: {value}");
            checked += 1;
        }
    }
    assert!(
        checked >= 9,
        "every text field carried the formula ({checked})"
    );
}
