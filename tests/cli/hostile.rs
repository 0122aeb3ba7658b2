//! Hostile and broken inputs: each is rejected with a clear message (or read, where it is
//! legitimate), without a panic, in bounded time and memory, while the valid statement beside it
//! is still processed.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo");

struct Night {
    dir: tempfile::TempDir,
}

impl Night {
    fn new() -> Self {
        let night = Night {
            dir: tempfile::tempdir().unwrap(),
        };
        let out = night.recon(&[
            "topups",
            "import",
            "--db",
            &night.db(),
            &format!("{DEMO}/topups.csv"),
        ]);
        assert!(out.status.success());
        night
    }

    fn db(&self) -> String {
        self.dir.path().join("recon.sqlite").display().to_string()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn recon(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_recon"))
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs the hostile file next to the valid demo statement; returns the hostile file's error.
    fn reject(&self, hostile: &Path) -> Option<String> {
        let out_dir = self.path("report").display().to_string();
        let good = format!("{DEMO}/2026-11-20.camt053.xml");
        let out = self.recon(&[
            "run",
            "--db",
            &self.db(),
            "--out",
            &out_dir,
            "--force",
            hostile.to_str().unwrap(),
            &good,
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        let summary: serde_json::Value =
            serde_json::from_slice(&fs::read(self.path("report/summary.json")).unwrap()).unwrap();
        assert_eq!(
            summary["inputs"][1]["rejected"], false,
            "the valid file is processed"
        );
        assert_eq!(summary["inputs"][1]["transactions"], 13);
        summary["inputs"][0]["error"].as_str().map(str::to_string)
    }
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
    let night = Night::new();
    let laughs = night.path("laughs.xml");
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
    assert_rejected(night.reject(&laughs), "DOCTYPE");
    let xxe = night.path("xxe.xml");
    fs::write(&xxe, "<?xml version=\"1.0\"?>\n<!DOCTYPE d [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n<Document><BkToCstmrStmt><Stmt><Id>&xxe;</Id></Stmt></BkToCstmrStmt></Document>\n").unwrap();
    assert_rejected(night.reject(&xxe), "DOCTYPE");
}

#[test]
fn absurd_nesting_and_a_huge_text_node_are_refused_early() {
    let night = Night::new();
    let deep = night.path("deep.xml");
    let mut doc = String::from("<Document><BkToCstmrStmt>");
    doc.push_str(&"<a>".repeat(200_000));
    doc.push_str(&"</a>".repeat(200_000));
    doc.push_str("</BkToCstmrStmt></Document>");
    fs::write(&deep, doc).unwrap();
    assert_rejected(night.reject(&deep), "nested deeper than the limit of 64");
    // A 300 MB text node: the reader stops at the 1 MiB limit, it never buffers the rest.
    let huge = night.path("huge.xml");
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
    assert_rejected(night.reject(&huge), "longer than the limit");
}

#[test]
fn garbage_empty_and_badly_encoded_files_are_refused() {
    let night = Night::new();
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("garbage.bin", (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect(), "not a statement format"),
        ("empty.xml", Vec::new(), "the file is empty"),
        ("badutf8.xml", b"<Document><BkToCstmrStmt><Stmt><Id>\xff\xfe\xfd</Id></Stmt></BkToCstmrStmt></Document>".to_vec(), "UTF-8"),
        ("latin1.xml", b"<Document><BkToCstmrStmt><Stmt><Id>Gr\xfc\xdfe</Id></Stmt></BkToCstmrStmt></Document>".to_vec(), "UTF-8"),
        ("pain.xml", b"<?xml version=\"1.0\"?><Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.001.001.09\"><CstmrCdtTrfInitn/></Document>".to_vec(), "pain.001"),
    ];
    for (name, bytes, expected) in cases {
        let path = night.path(name);
        fs::write(&path, bytes).unwrap();
        assert_rejected(night.reject(&path), expected);
    }
    // The same Latin-1 text with its encoding declared is legitimate and read.
    let declared = night.path("declared.xml");
    fs::write(&declared, b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><Document><BkToCstmrStmt><Stmt><Id>Gr\xfc\xdfe</Id></Stmt></BkToCstmrStmt></Document>").unwrap();
    assert_eq!(night.reject(&declared), None);
}

#[test]
fn a_csv_with_a_ten_megabyte_line_is_refused() {
    let night = Night::new();
    let path = night.path("long.csv");
    let mut text = String::from(
        "booking_date,value_date,amount,currency,remittance,counterparty_name,counterparty_iban,bank_ref,status\n",
    );
    text.push_str("2026-11-21,2026-11-21,1.00,EUR,");
    text.push_str(&"x".repeat(10 << 20));
    text.push_str(",,,,BOOK\n");
    fs::write(&path, text).unwrap();
    assert_rejected(night.reject(&path), "longer than the limit");
}

#[test]
fn formula_text_in_every_field_is_neutralised_in_the_csv_report() {
    let night = Night::new();
    let evil = "=cmd|' /C calc'!A0";
    let path = night.path("formulas.xml");
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
    assert_eq!(night.reject(&path), None);
    let mut reader = csv::Reader::from_path(night.path("report/unmatched.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let row = reader.records().next().unwrap().unwrap();
    let mut checked = 0;
    for (name, value) in headers.iter().zip(row.iter()) {
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
