//! The outbox and webhook delivery: the real binary, the real SQLite file, and a real HTTP
//! receiver on 127.0.0.1 that fails, times out and succeeds on purpose.

use std::collections::BTreeMap;
use std::fs;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::env::{Env, assert_code, assert_ok, assert_topup_fields, demo, stderr};

const SECRET: &str = "whsec-test-0123456789";

/// A database with the demo top-ups, after the first demo night (its report in `report`), and
/// the webhook secret in `secret`.
fn after_demo_night() -> Env {
    let env = Env::new().with_demo_topups();
    assert_ok(&env.run("report", &[&demo("2026-11-20.camt053.xml")]));
    env.write("secret", format!("{SECRET}\n"));
    env
}

/// (event id, type, payload, status, attempts) in delivery order.
fn outbox(env: &Env) -> Vec<(String, String, String, String, i64)> {
    env.outbox_events()
        .iter()
        .map(|e| {
            let text = |key: &str| e[key].as_str().unwrap().to_string();
            let attempts = e["attempts"].as_i64().unwrap();
            (
                text("id"),
                text("type"),
                text("payload"),
                text("status"),
                attempts,
            )
        })
        .collect()
}

fn count_type(events: &[(String, String, String, String, i64)], kind: &str) -> usize {
    events.iter().filter(|e| e.1 == kind).count()
}

#[test]
fn a_run_writes_one_settled_event_per_settlement_with_the_topup_payload_and_the_new_balances() {
    let env = after_demo_night();
    let events = outbox(&env);
    let summary = env.summary("report");
    let matched = summary["outcomes"]["MATCHED"]["count"].as_u64().unwrap() as usize;
    assert!(matched > 0);
    // The demo imports one top-up that was already SETTLED: that is a settlement too.
    let imported_settled = fs::read_to_string(demo("topups.csv"))
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
        assert_topup_fields(&event);
    }

    // The last balance event of each group and currency is the sum of its settled top-ups.
    let out = env.topups_list("SETTLED", "json");
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
    let env = after_demo_night();
    let before = outbox(&env).len();
    // Make the database refuse the next night's settlement, after the run has recorded rows.
    env.conn()
        .execute_batch(
            "CREATE TRIGGER fail_settlement BEFORE INSERT ON settlement_events
             BEGIN SELECT RAISE(ABORT, 'disk says no'); END;",
        )
        .unwrap();
    let settled_before = env.sql_count("SELECT count(*) FROM topups WHERE status = 'SETTLED'");
    let statement = demo("2026-11-21.camt053.xml");
    let out = env.run("night2", &[&statement]);
    assert_code(&out, 70);
    assert!(stderr(&out).contains("disk says no"));
    assert_eq!(
        outbox(&env).len(),
        before,
        "no event of the failed run survives"
    );
    let settled_after = env.sql_count("SELECT count(*) FROM topups WHERE status = 'SETTLED'");
    assert_eq!(settled_after, settled_before);
    assert!(!env.path("night2").exists());

    // Without the fault the same night settles, and writes its events.
    env.conn()
        .execute_batch("DROP TRIGGER fail_settlement")
        .unwrap();
    let out = env.run("night2", &[&statement]);
    assert_ok(&out);
    assert!(outbox(&env).len() > before);
}

/// A night of many settlements: their events, told from the journal rather than stored, follow
/// each other without gaps, each settlement's top-up then its cash balance, each id once and the
/// same at every reading (whole, or only the newest), each balance the one before plus the change.
#[test]
fn a_nights_settlement_events_are_told_from_the_journal_alike_at_every_reading() {
    let env = Env::new();
    let night = env.bench_night("night", "1200", "1000", &[]);
    env.import_night(&night);
    let imported = env.outbox_events().len();
    assert_ok(&env.run("report", &[&format!("{night}/statement.xml")]));
    let settled = env.sql_count("SELECT count(*) FROM topups WHERE status = 'SETTLED'") as usize;
    // Several windows' worth: delivery reads them on, one window after the other.
    assert!(settled > 400, "{settled}");
    assert_eq!(
        env.sql_count("SELECT count(*) FROM topup_history WHERE status = 'SETTLED'"),
        0
    );

    let events = env.outbox_events();
    let told = &events[imported..];
    assert_eq!(told.len(), 2 * settled);
    let first = told[0]["seq"].as_i64().unwrap();
    let mut ids = std::collections::HashSet::new();
    let mut balance = Decimal::ZERO;
    for (i, pair) in told.chunks(2).enumerate() {
        let (topup, cash) = (&pair[0], &pair[1]);
        assert_eq!(topup["seq"].as_i64().unwrap(), first + 2 * i as i64);
        assert_eq!(cash["seq"].as_i64().unwrap(), first + 2 * i as i64 + 1);
        assert_eq!(topup["type"], "topup.settled");
        assert_eq!(cash["type"], "cash_balance.updated");
        let t: Value = serde_json::from_str(topup["payload"].as_str().unwrap()).unwrap();
        let c: Value = serde_json::from_str(cash["payload"].as_str().unwrap()).unwrap();
        assert_eq!(t["status"], "SETTLED");
        assert_topup_fields(&t);
        assert_eq!(c["topup_id"], t["id"]);
        assert_eq!(c["change"], t["cash_amount"]);
        let change: Decimal = c["change"].as_str().unwrap().parse().unwrap();
        balance += change;
        assert_eq!(c["cash_balance"].as_str().unwrap(), balance.to_string());
        for e in pair {
            let id = e["id"].as_str().unwrap();
            assert_eq!(&id[14..15], "8", "a derived id is a UUID version 8: {id}");
            assert!(ids.insert(id.to_string()), "{id} twice");
        }
    }
    let stored: String = env
        .conn()
        .query_row("SELECT settled FROM cash_balances", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, balance.to_string());

    // Read again, whole or only the newest: the same ids and the same bytes.
    assert_eq!(env.outbox_events(), events);
    let newest = crate::env::outbox_events(&env, &env.db(), &["--limit", "7"]);
    assert_eq!(newest, events[events.len() - 7..]);
    assert_ok(&env.recon(&["check", "--db", &env.db()]));
}
