//! The same inputs give the same reports however many threads a run has: with more than one,
//! files are read on a thread of their own while the batches before are decided, but outcomes
//! are decided in file order either way.

use std::path::Path;
use std::process::Command;

fn run(dir: &Path, name: &str, threads: &str, inputs: &[&Path]) -> std::path::PathBuf {
    let db = dir.join(format!("{name}.sqlite"));
    let import = Command::new(env!("CARGO_BIN_EXE_recon"))
        .args(["topups", "import", "--db", db.to_str().unwrap()])
        .arg(dir.join("night/topups.csv"))
        .output()
        .unwrap();
    assert!(import.status.success());
    let out = dir.join(name);
    let status = Command::new(env!("CARGO_BIN_EXE_recon"))
        .env("RAYON_NUM_THREADS", threads)
        .args([
            "run",
            "-q",
            "--db",
            db.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args(inputs)
        .status()
        .unwrap();
    assert!(status.success());
    out
}

/// What a run leaves in its database, up to its ids and timestamps: the ledger, the top-ups'
/// status, history and events, in order.
fn recorded(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let queries = [
        "SELECT id, file_id, entry_number, detail_number, line_number, hex(identity),
                hex(dedup_key), outcome, topup_id, direction, amount, currency, booking_date,
                counterparty_iban, remittance, extracted_reference, expected_amount, difference,
                suggestion
         FROM bank_transactions ORDER BY id",
        "SELECT id, status, settled_by_transaction FROM topups ORDER BY id",
        "SELECT topup_id, status FROM topup_history ORDER BY id",
        "SELECT type, json_remove(payload, '$.updated_at') FROM events ORDER BY seq",
    ];
    let mut out = Vec::new();
    for sql in queries {
        let mut stmt = conn.prepare(sql).unwrap();
        let columns = stmt.column_count();
        let rows = stmt
            .query_map([], |row| {
                let values: Vec<String> = (0..columns)
                    .map(|i| format!("{:?}", row.get::<_, rusqlite::types::Value>(i).unwrap()))
                    .collect();
                Ok(values.join("|"))
            })
            .unwrap();
        out.extend(rows.map(Result::unwrap));
    }
    out
}

#[test]
fn parallel_and_single_threaded_runs_give_byte_identical_reports() {
    let dir = tempfile::tempdir().unwrap();
    let night = dir.path().join("night");
    let spec = recon::benchdata::Spec {
        topups: 3000,
        transactions: 2500,
        seed: 11,
        created_at: None,
    };
    recon::benchdata::generate(&spec, &night).unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
    let a = demo.join("2026-11-20.camt053.xml");
    let b = demo.join("2026-11-21.camt053.xml");
    let xml = night.join("statement.xml");
    let csv = night.join("statement.csv");
    let inputs = [xml.as_path(), a.as_path(), csv.as_path(), b.as_path()];
    let one = run(dir.path(), "one", "1", &inputs);
    let many = run(dir.path(), "many", "4", &inputs);
    for file in [
        "matched.csv",
        "unmatched.csv",
        "ignored.csv",
        "open_topups.csv",
    ] {
        let x = std::fs::read(one.join(file)).unwrap();
        let y = std::fs::read(many.join(file)).unwrap();
        assert!(x == y, "{file} differs");
    }
    let summary = |dir: &Path| {
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
        for key in ["run_id", "started_at", "finished_at", "database"] {
            v[key] = serde_json::Value::Null;
        }
        v
    };
    assert_eq!(summary(&one), summary(&many));
    assert!(summary(&one)["counts"]["read"].as_u64().unwrap() > 5000);
    // The database too: the same ledger, top-ups, history and events.
    let (x, y) = (
        recorded(&dir.path().join("one.sqlite")),
        recorded(&dir.path().join("many.sqlite")),
    );
    assert!(
        x.iter().any(|row| row.contains("\"MATCHED\"")),
        "{:?}",
        &x[..3]
    );
    assert!(x.iter().any(|row| row.contains("cash_balance.updated")));
    assert_eq!(x, y);
}
