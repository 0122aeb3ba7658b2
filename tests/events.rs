//! The outbox: the real binary and the real SQLite file; a run's events are written with its
//! changes or not at all. Their delivery is tested in `webhooks_delivery.rs`.

mod common;

use common::assert_ok;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::Output;

use assert_cmd::Command;
use rust_decimal::Decimal;
use serde_json::Value;

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo");

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    /// A database with the demo top-ups, after the first demo night.
    fn after_demo_night() -> Env {
        let env = Env {
            dir: tempfile::tempdir().unwrap(),
        };
        let topups = format!("{DEMO}/topups.csv");
        assert_ok(&env.recon(&["topups", "import", "--db", &env.db(), &topups]));
        let statement = format!("{DEMO}/2026-11-20.camt053.xml");
        let out = env.path("report").display().to_string();
        assert_ok(&env.recon(&["run", "--db", &env.db(), "--out", &out, &statement]));
        env
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn db(&self) -> String {
        self.path("recon.sqlite").display().to_string()
    }

    fn recon(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_recon"))
            .current_dir(self.dir.path())
            .env_remove("RECON_DB")
            .args(args)
            .output()
            .unwrap()
    }

    fn conn(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.db()).unwrap()
    }

    /// (event id, type, payload, status, attempts) in delivery order.
    fn events(&self) -> Vec<(String, String, String, String, i64)> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT id, type, payload, status, attempts FROM events ORDER BY seq")
            .unwrap();
        stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
    }
}

fn count_type(events: &[(String, String, String, String, i64)], kind: &str) -> usize {
    events.iter().filter(|e| e.1 == kind).count()
}

#[test]
fn a_run_writes_one_settled_event_per_settlement_with_the_topup_payload_and_the_new_balances() {
    let env = Env::after_demo_night();
    let events = env.events();
    let summary: Value =
        serde_json::from_str(&fs::read_to_string(env.path("report/summary.json")).unwrap())
            .unwrap();
    let matched = summary["outcomes"]["MATCHED"]["count"].as_u64().unwrap() as usize;
    assert!(matched > 0);
    // The demo imports one top-up that was already SETTLED: that is a settlement too.
    let imported_settled = fs::read_to_string(format!("{DEMO}/topups.csv"))
        .unwrap()
        .matches(",SETTLED,")
        .count();
    assert_eq!(imported_settled, 1);
    assert_eq!(
        count_type(&events, "topup.settled"),
        matched + imported_settled
    );
    assert_eq!(
        count_type(&events, "cash_balance.updated"),
        matched + imported_settled
    );
    // Imported CONFIRMED top-ups announce themselves; the NEW one does not.
    assert_eq!(count_type(&events, "topup.confirmed"), 10);

    // Each settled event is exactly the top-up as the API shows it now.
    for (_, kind, payload, status, _) in &events {
        assert_eq!(status, "PENDING");
        if kind != "topup.settled" {
            continue;
        }
        let event: Value = serde_json::from_str(payload).unwrap();
        let id = event["id"].as_str().unwrap();
        let out = env.recon(&["topups", "list", "--db", &env.db(), "--format", "json"]);
        let all: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        let now = all.iter().find(|t| t["id"] == id).unwrap();
        assert_eq!(&event, now);
        assert_eq!(event["status"], "SETTLED");
        common::assert_topup_fields(&event);
    }

    // The last balance event of each group and currency is the sum of its settled top-ups.
    let out = env.recon(&[
        "topups",
        "list",
        "--db",
        &env.db(),
        "--status",
        "SETTLED",
        "--format",
        "json",
    ]);
    let settled: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut sums: BTreeMap<(String, String), Decimal> = BTreeMap::new();
    for t in &settled {
        *sums
            .entry((
                t["account_group_id"].as_str().unwrap().to_string(),
                t["currency"].as_str().unwrap().to_string(),
            ))
            .or_default() += t["cash_amount"]
            .as_str()
            .unwrap()
            .parse::<Decimal>()
            .unwrap();
    }
    let mut last: BTreeMap<(String, String), Decimal> = BTreeMap::new();
    for (_, kind, payload, _, _) in &events {
        if kind == "cash_balance.updated" {
            let e: Value = serde_json::from_str(payload).unwrap();
            last.insert(
                (
                    e["account_group_id"].as_str().unwrap().to_string(),
                    e["currency"].as_str().unwrap().to_string(),
                ),
                e["cash_balance"].as_str().unwrap().parse().unwrap(),
            );
        }
    }
    for (key, balance) in &last {
        assert_eq!(Some(balance), sums.get(key), "{key:?}");
    }
    assert!(!last.is_empty());
    assert_ok(&env.recon(&["check", "--db", &env.db()]));
}

#[test]
fn a_run_that_fails_writes_no_event_and_settles_nothing() {
    let env = Env::after_demo_night();
    let before = env.events().len();
    // Make the database refuse the next night's settlement, after the run has recorded rows.
    let settled_events = count_type(&env.events(), "topup.settled");
    env.conn()
        .execute_batch(&format!(
            "CREATE TRIGGER fail_settlement BEFORE INSERT ON events
             WHEN NEW.type = 'topup.settled'
              AND (SELECT count(*) FROM events WHERE type = 'topup.settled') >= {}
             BEGIN SELECT RAISE(ABORT, 'disk says no'); END;",
            settled_events
        ))
        .unwrap();
    let settled_before: i64 = env
        .conn()
        .query_row(
            "SELECT count(*) FROM topups WHERE status = 'SETTLED'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let statement = format!("{DEMO}/2026-11-21.camt053.xml");
    let out_dir = env.path("night2").display().to_string();
    let out = env.recon(&["run", "--db", &env.db(), "--out", &out_dir, &statement]);
    assert_eq!(
        out.status.code(),
        Some(70),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("disk says no"));
    assert_eq!(
        env.events().len(),
        before,
        "no event of the failed run survives"
    );
    let settled_after: i64 = env
        .conn()
        .query_row(
            "SELECT count(*) FROM topups WHERE status = 'SETTLED'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(settled_after, settled_before);
    assert!(!env.path("night2").exists());

    // Without the fault the same night settles, and writes its events.
    env.conn()
        .execute_batch("DROP TRIGGER fail_settlement")
        .unwrap();
    let out = env.recon(&["run", "--db", &env.db(), "--out", &out_dir, &statement]);
    assert_ok(&out);
    assert!(env.events().len() > before);
}
