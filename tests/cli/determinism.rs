//! The same inputs give the same reports however many threads a run has: with more than one,
//! files are read on a thread of their own while the batches before are decided, but outcomes
//! are decided in file order either way.

use std::path::{Path, PathBuf};

use crate::env::{Env, assert_ok, demo};

/// Imports the night's top-ups into `<name>.sqlite` and runs the inputs with `threads` threads
/// into the report directory `name`; returns its path.
fn run(env: &Env, name: &str, threads: &str, inputs: &[&str]) -> PathBuf {
    let db = env.path(&format!("{name}.sqlite")).display().to_string();
    env.import_into(&db, &env.path("night/topups.csv").display().to_string());
    let out = env.path(name);
    let run = env
        .command()
        .env("RAYON_NUM_THREADS", threads)
        .args(["run", "-q", "--db", &db, "--out", out.to_str().unwrap()])
        .args(inputs)
        .output()
        .unwrap();
    assert_ok(&run);
    out
}

/// What a run leaves in its database, up to its ids and timestamps: the ledger, the top-ups'
/// status, history and events, in order.
fn recorded(env: &Env, db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let queries = [
        "SELECT * FROM journal ORDER BY id",
        "SELECT outcome, count(*) FROM ledger GROUP BY outcome ORDER BY outcome",
        "SELECT file_id, first, count, hex(texts) FROM journal_texts ORDER BY first",
        "SELECT hex(key), id FROM processed ORDER BY key",
        "SELECT iban, id FROM payers ORDER BY iban, id",
        "SELECT id, status, settled_by_transaction FROM topups ORDER BY id",
        "SELECT topup_id, status FROM topup_history ORDER BY id",
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
    // The events as delivery tells them, the settlements' ones derived from the journal.
    for mut event in crate::env::outbox_events(env, db.to_str().unwrap(), &[]) {
        let mut payload: serde_json::Value =
            serde_json::from_str(event["payload"].as_str().unwrap()).unwrap();
        payload.as_object_mut().unwrap().remove("updated_at");
        event["payload"] = payload;
        for key in ["id", "created_at", "next_attempt_at"] {
            event.as_object_mut().unwrap().remove(key);
        }
        out.push(event.to_string());
    }
    out
}

#[test]
fn parallel_and_single_threaded_runs_give_byte_identical_reports() {
    let env = Env::new();
    let night = env.bench_night("night", "3000", "2500", &["--seed", "11"]);
    let (a, b) = (
        demo("2026-11-20.camt053.xml"),
        demo("2026-11-21.camt053.xml"),
    );
    let xml = format!("{night}/statement.xml");
    let csv = format!("{night}/statement.csv");
    let inputs = [xml.as_str(), a.as_str(), csv.as_str(), b.as_str()];
    let one = run(&env, "one", "1", &inputs);
    let many = run(&env, "many", "4", &inputs);
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
    let summary = |name: &str| {
        let mut v = env.summary(name);
        for key in ["run_id", "started_at", "finished_at", "database"] {
            v[key] = serde_json::Value::Null;
        }
        // The stale limit is measured from the run's start.
        v["newly_stale"]["created_until"] = serde_json::Value::Null;
        v
    };
    assert_eq!(summary("one"), summary("many"));
    assert!(summary("one")["counts"]["read"].as_u64().unwrap() > 5000);
    // The database too: the same ledger, top-ups, history and events.
    let (x, y) = (
        recorded(&env, &env.path("one.sqlite")),
        recorded(&env, &env.path("many.sqlite")),
    );
    assert!(
        x.iter().any(|row| row.contains("\"MATCHED\"")),
        "{:?}",
        &x[..3]
    );
    assert!(x.iter().any(|row| row.contains("cash_balance.updated")));
    assert_eq!(x, y);
}
