//! The outbox and webhook delivery: the real binary, the real SQLite file, and a real HTTP
//! receiver on 127.0.0.1 that fails, times out and succeeds on purpose.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use rust_decimal::Decimal;
use serde_json::Value;
use sha2::Sha256;

use crate::env::{Env, assert_code, assert_ok, assert_topup_fields, demo, stderr, stdout};

const SECRET: &str = "whsec-test-0123456789";

/// A database with the demo top-ups, after the first demo night (its report in `report`), and
/// the webhook secret in `secret`.
fn after_demo_night() -> Env {
    let env = Env::new().with_demo_topups();
    assert_ok(&env.run("report", &[&demo("2026-11-20.camt053.xml")]));
    env.write("secret", format!("{SECRET}\n"));
    env
}

/// `recon webhooks deliver` to `url` with the secret, quick back-off, and `extra` flags.
fn deliver(env: &Env, url: &str, extra: &[&str]) -> Output {
    let secret = env.path("secret").display().to_string();
    let db = env.db();
    let mut args = vec![
        "webhooks",
        "deliver",
        "--db",
        &db,
        "--url",
        url,
        "--secret-file",
        &secret,
        "--backoff-ms",
        "10",
    ];
    args.extend_from_slice(extra);
    env.recon(&args)
}

/// (event id, type, payload, status, attempts) in delivery order.
fn outbox(env: &Env) -> Vec<(String, String, String, String, i64)> {
    let conn = env.conn();
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
    let env = after_demo_night();
    let before = outbox(&env).len();
    // Make the database refuse the next night's settlement, after the run has recorded rows.
    let settled_events = count_type(&outbox(&env), "topup.settled");
    env.conn()
        .execute_batch(&format!(
            "CREATE TRIGGER fail_settlement BEFORE INSERT ON events
             WHEN NEW.type = 'topup.settled'
              AND (SELECT count(*) FROM events WHERE type = 'topup.settled') >= {}
             BEGIN SELECT RAISE(ABORT, 'disk says no'); END;",
            settled_events
        ))
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

/// What the receiver does with the n-th request it gets.
#[derive(Clone, Copy, Debug)]
enum Reply {
    Status(u16),
    /// Answers 200 only after this long (longer than the sender's timeout).
    Sleep(Duration),
}

struct Received {
    headers: HashMap<String, String>,
    body: String,
}

/// A real HTTP server on 127.0.0.1 that answers from a script (then 200) and keeps every request.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Vec<Reply>>>,
}

impl Receiver {
    fn start(script: Vec<Reply>) -> Receiver {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let url = format!("http://{}/hooks", server.server_addr().to_ip().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.into_iter().rev().collect::<Vec<_>>()));
        let (seen2, script2) = (seen.clone(), script.clone());
        thread::spawn(move || {
            for mut request in server.incoming_requests() {
                let mut body = String::new();
                request.as_reader().read_to_string(&mut body).unwrap();
                let headers = request
                    .headers()
                    .iter()
                    .map(|h| {
                        (
                            h.field.to_string().to_ascii_lowercase(),
                            h.value.to_string(),
                        )
                    })
                    .collect();
                seen2.lock().unwrap().push(Received { headers, body });
                let reply = script2.lock().unwrap().pop().unwrap_or(Reply::Status(200));
                match reply {
                    Reply::Status(code) => {
                        let _ = request.respond(tiny_http::Response::empty(code));
                    }
                    Reply::Sleep(pause) => {
                        thread::spawn(move || {
                            thread::sleep(pause);
                            let _ = request.respond(tiny_http::Response::empty(200));
                        });
                    }
                }
            }
        });
        Receiver { url, seen, script }
    }

    fn set_script(&self, script: Vec<Reply>) {
        *self.script.lock().unwrap() = script.into_iter().rev().collect();
    }
}

fn verify(received: &Received) -> bool {
    let timestamp = &received.headers["recon-timestamp"];
    let signature = received.headers["recon-signature"]
        .strip_prefix("v1=")
        .unwrap();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{}", received.body).as_bytes());
    mac.verify_slice(&hex::decode(signature).unwrap()).is_ok()
}

#[test]
fn deliver_retries_errors_and_timeouts_then_posts_every_event_in_order_signed() {
    let env = after_demo_night();
    let receiver = Receiver::start(vec![
        Reply::Status(500),
        Reply::Sleep(Duration::from_secs(3)),
        Reply::Status(503),
    ]);
    let out = deliver(&env, &receiver.url, &["--timeout", "1"]);
    assert_ok(&out);
    let events = outbox(&env);
    assert!(events.iter().all(|e| e.3 == "DELIVERED"), "{events:?}");
    // The first event took four attempts: 500, timeout, 503, then accepted.
    assert_eq!(events[0].4, 4);
    assert!(events[1..].iter().all(|e| e.4 == 1));

    let seen = receiver.seen.lock().unwrap();
    assert_eq!(seen.len(), events.len() + 3);
    for received in seen.iter() {
        assert!(
            verify(received),
            "signature must verify: {:?}",
            received.headers
        );
        assert_eq!(received.headers["content-type"], "application/json");
    }
    // What was accepted, deduplicated by event id, is every event once, in outbox order, with
    // the stored payload as body and the type in its header.
    let mut accepted: Vec<(String, String, String)> = Vec::new();
    for received in seen.iter() {
        let id = received.headers["recon-event-id"].clone();
        if accepted.last().map(|a| &a.0) != Some(&id) {
            accepted.push((
                id,
                received.headers["recon-event-type"].clone(),
                received.body.clone(),
            ));
        }
    }
    let expected: Vec<(String, String, String)> = events
        .iter()
        .map(|e| (e.0.clone(), e.1.clone(), e.2.clone()))
        .collect();
    assert_eq!(accepted, expected);
    drop(seen);

    // Nothing is pending any more: a second delivery posts nothing.
    let before = receiver.seen.lock().unwrap().len();
    assert_ok(&deliver(&env, &receiver.url, &[]));
    assert_eq!(receiver.seen.lock().unwrap().len(), before);
}

#[test]
fn an_unreachable_receiver_marks_the_event_failed_keeps_the_rest_and_retry_sends_them() {
    let env = after_demo_night();
    let receiver = Receiver::start(vec![Reply::Status(502); 3]);
    let out = deliver(&env, &receiver.url, &["--max-attempts", "3"]);
    assert_code(&out, 75);
    assert!(stderr(&out).contains("HTTP 502"));
    let events = outbox(&env);
    assert_eq!((events[0].3.as_str(), events[0].4), ("FAILED", 3));
    assert!(events[1..].iter().all(|e| e.3 == "PENDING"));

    let listed = env.recon(&[
        "webhooks",
        "list",
        "--db",
        &env.db(),
        "--status",
        "failed",
        "--format",
        "jsonl",
    ]);
    assert_ok(&listed);
    let lines: Vec<Value> = stdout(&listed)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["id"], events[0].0.as_str());
    assert_eq!(lines[0]["last_error"], "HTTP 502");

    // The receiver is back: the pending events go, then `retry` queues the failed one again.
    receiver.set_script(vec![]);
    assert_ok(&deliver(&env, &receiver.url, &[]));
    assert_eq!(outbox(&env)[0].3, "FAILED");
    assert!(outbox(&env)[1..].iter().all(|e| e.3 == "DELIVERED"));
    let retried = env.recon(&["webhooks", "retry", "--db", &env.db()]);
    assert_ok(&retried);
    assert!(stdout(&retried).contains("queued 1 failed event"));
    assert_ok(&deliver(&env, &receiver.url, &[]));
    assert!(outbox(&env).iter().all(|e| e.3 == "DELIVERED"));
}

#[test]
fn a_receiver_that_refuses_an_event_fails_only_that_event_at_once() {
    let env = after_demo_night();
    let receiver = Receiver::start(vec![Reply::Status(200), Reply::Status(400)]);
    assert_ok(&deliver(&env, &receiver.url, &["--max-attempts", "5"]));
    let events = outbox(&env);
    assert_eq!((events[1].3.as_str(), events[1].4), ("FAILED", 1));
    assert_eq!(
        events.iter().filter(|e| e.3 == "DELIVERED").count(),
        events.len() - 1
    );
    // Retrying one event by id; an id that is not a failed event is refused clearly.
    let out = env.recon(&["webhooks", "retry", "--db", &env.db(), &events[0].0]);
    assert_code(&out, 65);
    assert!(stderr(&out).contains("is DELIVERED, not FAILED"));
    assert_ok(&env.recon(&["webhooks", "retry", "--db", &env.db(), &events[1].0]));
    assert_eq!(outbox(&env)[1].3, "PENDING");
}

#[test]
fn deliver_refuses_a_bad_url_or_an_empty_secret_before_touching_anything() {
    let env = after_demo_night();
    let out = deliver(&env, "ftp://example.org/hooks", &[]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("must start with http://"));
    env.write("secret", "  \n");
    let out = deliver(&env, "http://127.0.0.1:9/hooks", &[]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("is empty"));
    assert!(outbox(&env).iter().all(|e| e.3 == "PENDING" && e.4 == 0));
}

#[test]
fn the_receiver_and_secret_can_come_from_recon_toml() {
    let env = after_demo_night();
    let receiver = Receiver::start(vec![]);
    // Next to the database, with the secret file's path relative to the configuration.
    env.write(
        "recon.toml",
        format!(
            "[webhooks]\nurl = \"{}\"\nsecret_file = \"secret\"\n",
            receiver.url
        ),
    );
    let shown = env.recon(&["config", "show", "--db", &env.db()]);
    assert_ok(&shown);
    let text = stdout(&shown);
    assert!(text.contains("webhooks.url"), "{text}");
    assert!(text.contains("webhooks.secret_file"), "{text}");
    let out = env.recon(&[
        "webhooks",
        "deliver",
        "--db",
        &env.db(),
        "--backoff-ms",
        "10",
    ]);
    assert_ok(&out);
    assert!(outbox(&env).iter().all(|e| e.3 == "DELIVERED"));
    assert!(receiver.seen.lock().unwrap().iter().all(verify));

    // Without any of the three ways to name a receiver, the error says what to give.
    fs::remove_file(env.path("recon.toml")).unwrap();
    let out = env.recon(&["webhooks", "deliver", "--db", &env.db()]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("--url URL"));
}

#[test]
fn a_second_deliverer_at_the_same_time_is_refused_and_posts_nothing() {
    let env = after_demo_night();
    let receiver = Receiver::start(vec![]);
    // Hold the deliverers' lock the way a running `recon webhooks deliver` does.
    let lock = fs::File::create(format!("{}.deliver-lock", env.db())).unwrap();
    lock.lock().unwrap();
    let out = deliver(&env, &receiver.url, &[]);
    assert_code(&out, 75);
    assert!(stderr(&out).contains("another `recon webhooks deliver` is running"));
    assert!(receiver.seen.lock().unwrap().is_empty());
    assert!(outbox(&env).iter().all(|e| e.3 == "PENDING"));
    lock.unlock().unwrap();
    assert_ok(&deliver(&env, &receiver.url, &[]));
    assert!(outbox(&env).iter().all(|e| e.3 == "DELIVERED"));
}
