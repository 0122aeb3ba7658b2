//! Webhook delivery: the real binary and the real SQLite file posting to a real HTTP receiver on
//! 127.0.0.1 that fails, times out and succeeds on purpose, and receivers verifying the posts
//! as Standard Webhooks (with the published Python library where it is installed).

use std::collections::HashMap;
use std::fs;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::env::{assert_ok, demo};

/// A secret as recon's secret files held them before Standard Webhooks: the key's own bytes.
const SECRET: &str = "whsec-test-0123456789";
/// Three account groups (A, B, C) for [`Env::with_groups`].
const GROUPS: [&str; 3] = [
    "aaaaaaaa-0000-4000-8000-000000000001",
    "bbbbbbbb-0000-4000-8000-000000000002",
    "cccccccc-0000-4000-8000-000000000003",
];
/// The retry schedule ten thousand times faster: 0.5 ms, 30 ms, 180 ms, ...
const FAST: [&str; 2] = ["--schedule-scale", "0.0001"];

/// The shared scratch directory (`crate::env::Env`), with the webhook tests' set-ups.
struct Env(crate::env::Env);

impl std::ops::Deref for Env {
    type Target = crate::env::Env;

    fn deref(&self) -> &crate::env::Env {
        &self.0
    }
}

/// One event as `webhooks list` shows it.
#[derive(Debug)]
struct Listed {
    id: String,
    kind: String,
    payload: String,
    status: String,
    attempts: i64,
    json: Value,
}

impl Env {
    /// A database with the demo top-ups, after the first demo night.
    fn after_demo_night() -> Env {
        let env = Env(crate::env::Env::new().with_demo_topups());
        assert_ok(&env.run("report", &[&demo("2026-11-20.camt053.xml")]));
        env.write("secret", format!("{SECRET}\n"));
        env
    }

    /// A database with three top-ups in each of three account groups, created in turns (A B C
    /// A B C A B C): nine `topup.confirmed` events, each group's interleaved with the others'.
    fn with_groups() -> Env {
        let env = Env(crate::env::Env::new());
        for _ in 0..3 {
            for group in GROUPS {
                assert_ok(&env.create_topup(group, "10.00"));
            }
        }
        fs::write(env.path("secret"), format!("{SECRET}\n")).unwrap();
        env
    }

    /// `recon topups create` of a EUR top-up in this account group.
    fn create_topup(&self, group: &str, amount: &str) -> Output {
        self.recon(&[
            "topups",
            "create",
            "--db",
            &self.db(),
            "--account-group-id",
            group,
            "--amount",
            amount,
            "--currency",
            "EUR",
        ])
    }

    fn deliver(&self, url: &str, extra: &[&str]) -> Output {
        let secret = self.path("secret").display().to_string();
        let db = self.db();
        let mut args = vec![
            "webhooks",
            "deliver",
            "--db",
            &db,
            "--url",
            url,
            "--secret-file",
            &secret,
        ];
        args.extend_from_slice(extra);
        self.recon(&args)
    }

    /// Calls `deliver` as cron does, until every event is delivered (at most `calls` times, a
    /// moment apart); the output of each call.
    fn deliver_until_delivered(&self, url: &str, extra: &[&str], calls: usize) -> Vec<Output> {
        let mut outs = Vec::new();
        for _ in 0..calls {
            outs.push(self.deliver(url, extra));
            if self.events().iter().all(|e| e.status == "DELIVERED") {
                return outs;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "not delivered after {calls} calls: {:?}\nlast stderr: {}",
            self.events(),
            String::from_utf8_lossy(&outs.last().unwrap().stderr)
        );
    }

    /// Every event with its delivery state, in outbox order, as `webhooks list` shows them.
    fn events(&self) -> Vec<Listed> {
        self.outbox_events()
            .into_iter()
            .map(|json| Listed {
                id: json["id"].as_str().unwrap().to_string(),
                kind: json["type"].as_str().unwrap().to_string(),
                payload: json["payload"].as_str().unwrap().to_string(),
                status: json["status"].as_str().unwrap().to_string(),
                attempts: json["attempts"].as_i64().unwrap(),
                json,
            })
            .collect()
    }
}

/// What the receiver answers to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reply {
    Status(u16),
    /// Answers 200 only after this long (longer than the sender's timeout).
    Sleep(Duration),
}

#[derive(Clone, Debug)]
struct Received {
    headers: HashMap<String, String>,
    body: String,
    /// When it arrived, and what it was answered.
    at: Instant,
    reply: Reply,
}

impl Received {
    fn new(headers: HashMap<String, String>, body: String) -> Received {
        Received {
            headers,
            body,
            at: Instant::now(),
            reply: Reply::Status(0),
        }
    }

    fn id(&self) -> &str {
        &self.headers["webhook-id"]
    }

    fn body_json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    fn group(&self) -> String {
        self.body_json()["data"]["account_group_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn accepted(&self) -> bool {
        matches!(self.reply, Reply::Status(200..=299))
    }
}

/// How the receiver decides its answer: from the request and how many it received before.
type Rule = Box<dyn FnMut(&Received) -> Reply + Send>;

/// A real HTTP server on 127.0.0.1 that answers by a rule and keeps every request.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Received>>>,
    rule: Arc<Mutex<Rule>>,
}

/// A rule that answers from a script, request by request, then 200.
fn scripted(script: Vec<Reply>) -> Rule {
    let mut script: Vec<Reply> = script.into_iter().rev().collect();
    Box::new(move |_| script.pop().unwrap_or(Reply::Status(200)))
}

impl Receiver {
    fn start(script: Vec<Reply>) -> Receiver {
        Receiver::with_rule(scripted(script))
    }

    fn with_rule(rule: Rule) -> Receiver {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let url = format!("http://{}/hooks", server.server_addr().to_ip().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rule = Arc::new(Mutex::new(rule));
        let (seen2, rule2) = (seen.clone(), rule.clone());
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
                let mut received = Received::new(headers, body);
                let reply = (rule2.lock().unwrap())(&received);
                received.reply = reply;
                seen2.lock().unwrap().push(received);
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
        Receiver { url, seen, rule }
    }

    fn set_rule(&self, rule: Rule) {
        *self.rule.lock().unwrap() = rule;
    }

    fn seen(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }
}

/// The Standard Webhooks check a receiver makes, written out: one of the space-separated
/// `v1,<base64>` signatures is the HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}".
fn verify_with(key: &[u8], received: &Received) -> bool {
    let signed = format!(
        "{}.{}.{}",
        received.headers["webhook-id"], received.headers["webhook-timestamp"], received.body
    );
    received.headers["webhook-signature"]
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|signature| {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
            mac.update(signed.as_bytes());
            mac.verify_slice(&STANDARD.decode(signature).unwrap())
                .is_ok()
        })
}

fn verify(received: &Received) -> bool {
    verify_with(SECRET.as_bytes(), received)
}

/// Checks each request with the published Python library (`pip install standardwebhooks`):
/// its verdicts (the verified payload, or None where it refused), or None with a visible
/// SKIPPED message where python3 or the package is not there.
fn python_verifies(
    secret: &str,
    requests: &[(HashMap<String, String>, String)],
) -> Option<Vec<Option<Value>>> {
    const SCRIPT: &str = r#"
import json, sys
try:
    from standardwebhooks import Webhook, WebhookVerificationError
except ImportError as e:
    print("SKIPPED: the Python package standardwebhooks is not importable (" + str(e) + ")")
    sys.exit(3)
webhook = Webhook(sys.argv[1])
for request in json.load(open(sys.argv[2])):
    try:
        print(json.dumps(webhook.verify(request["body"].encode(), request["headers"])))
    except WebhookVerificationError as e:
        print(json.dumps({"refused": str(e)}))
"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("requests.json");
    let list: Vec<Value> = requests
        .iter()
        .map(|(headers, body)| serde_json::json!({"headers": headers, "body": body}))
        .collect();
    fs::write(&file, serde_json::to_string(&list).unwrap()).unwrap();
    let out = match std::process::Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(secret)
        .arg(&file)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("SKIPPED: no python3 to run the Standard Webhooks library ({e})");
            return None;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(3) {
        eprintln!("{}", stdout.trim());
        return None;
    }
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        stdout
            .lines()
            .map(|line| {
                let value: Value = serde_json::from_str(line).unwrap();
                (value.get("refused").is_none()).then_some(value)
            })
            .collect(),
    )
}

/// A Standard Webhooks secret: `whsec_` and the base64 of 32 bytes.
fn standard_secret(byte: u8) -> (String, Vec<u8>) {
    let key: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(7) ^ byte).collect();
    (format!("whsec_{}", STANDARD.encode(&key)), key)
}

#[test]
fn receivers_verify_each_post_with_the_standard_webhooks_library_under_each_rotated_secret() {
    let env = Env::after_demo_night();
    // A rotation: the new secret and the old one, each signing every post.
    let (new_secret, new_key) = standard_secret(0x5a);
    let (old_secret, old_key) = standard_secret(0xa5);
    fs::write(env.path("secret"), format!("{new_secret}\n{old_secret}\n")).unwrap();
    let receiver = Receiver::start(vec![]);
    assert_ok(&env.deliver(&receiver.url, &[]));
    let events = env.events();
    let seen = receiver.seen.lock().unwrap();
    assert_eq!(seen.len(), events.len());
    let now = chrono::Utc::now().timestamp();
    for (received, event) in seen.iter().zip(&events) {
        assert_eq!(received.id(), event.id);
        let timestamp: i64 = received.headers["webhook-timestamp"].parse().unwrap();
        assert!((now - timestamp).abs() < 120, "{timestamp}");
        assert_eq!(received.headers["webhook-signature"].split(' ').count(), 2);
        assert!(verify_with(&new_key, received) && verify_with(&old_key, received));
        assert!(
            !verify(received),
            "the plain-text test secret signs nothing here"
        );
        assert_eq!(received.headers["content-type"], "application/json");
        // The body: the type and the time of the event, and its payload byte for byte.
        let body = received.body_json();
        assert_eq!(body["type"], event.kind.as_str());
        assert_eq!(body["timestamp"], event.json["created_at"]);
        assert!(
            received
                .body
                .ends_with(&format!(r#","data":{}}}"#, event.payload))
        );
        assert!(!received.headers.contains_key("recon-signature"));
    }

    // What a replay of a captured post looks like: another event's id, or another body, with
    // the captured signature.
    let mut requests: Vec<(HashMap<String, String>, String)> = seen
        .iter()
        .map(|r| (r.headers.clone(), r.body.clone()))
        .collect();
    let mut replayed_id = requests[0].clone();
    replayed_id
        .0
        .insert("webhook-id".to_string(), events[1].id.clone());
    let mut replayed_body = requests[0].clone();
    replayed_body.1 = requests[1].1.clone();
    for forged in [&replayed_id, &replayed_body] {
        let received = Received::new(forged.0.clone(), forged.1.clone());
        assert!(!verify_with(&new_key, &received) && !verify_with(&old_key, &received));
    }
    requests.push(replayed_id);
    requests.push(replayed_body);
    let genuine = seen.len();
    drop(seen);

    // The published library, with either secret alone as the receiver holds it.
    for secret in [&new_secret, &old_secret] {
        let Some(verdicts) = python_verifies(secret, &requests) else {
            return;
        };
        assert_eq!(verdicts.len(), requests.len());
        for (verdict, event) in verdicts[..genuine].iter().zip(&events) {
            let payload = verdict
                .as_ref()
                .expect("the library accepts a genuine post");
            assert_eq!(payload["type"], event.kind.as_str());
            assert_eq!(
                payload["data"],
                serde_json::from_str::<Value>(&event.payload).unwrap()
            );
        }
        assert!(
            verdicts[genuine..].iter().all(Option::is_none),
            "the library refuses a replay under another id or with another body"
        );
    }
}

#[test]
fn the_legacy_signature_switch_also_sends_the_recon_headers_and_the_bare_payload() {
    let env = Env::after_demo_night();
    let receiver = Receiver::start(vec![]);
    assert_ok(&env.deliver(&receiver.url, &["--legacy-signature"]));
    let events = env.events();
    let seen = receiver.seen.lock().unwrap();
    assert_eq!(seen.len(), events.len());
    for (received, event) in seen.iter().zip(&events) {
        assert_eq!(received.body, event.payload);
        assert_eq!(received.headers["recon-event-id"], event.id);
        assert_eq!(received.headers["recon-event-type"], event.kind);
        assert_eq!(
            received.headers["recon-timestamp"],
            received.headers["webhook-timestamp"]
        );
        // The old check, as the README described it before Standard Webhooks.
        let signature = received.headers["recon-signature"]
            .strip_prefix("v1=")
            .unwrap();
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(format!("{}.{}", received.headers["recon-timestamp"], received.body).as_bytes());
        assert!(mac.verify_slice(&hex::decode(signature).unwrap()).is_ok());
        // And the Standard Webhooks headers beside them, over the same body.
        assert!(verify(received));
    }
}

#[test]
fn deliver_retries_errors_and_timeouts_then_posts_every_event_in_order_signed() {
    let env = Env::after_demo_night();
    let receiver = Receiver::start(vec![
        Reply::Status(500),
        Reply::Sleep(Duration::from_secs(3)),
        Reply::Status(503),
    ]);
    // The demo's events are all of one account group: each waits for the one before.
    let outs =
        env.deliver_until_delivered(&receiver.url, &["--timeout", "1", FAST[0], FAST[1]], 200);
    assert_eq!(outs[0].status.code(), Some(75));
    assert_ok(outs.last().unwrap());
    let events = env.events();
    // The first event took four attempts: 500, timeout, 503, then accepted.
    assert_eq!(events[0].attempts, 4);
    assert!(events[1..].iter().all(|e| e.attempts == 1));

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
    // the stored payload as the body's data and the type in the body.
    let mut accepted: Vec<(String, String, Value)> = Vec::new();
    for received in seen.iter() {
        let id = received.id().to_string();
        if accepted.last().map(|a| &a.0) != Some(&id) {
            let body = received.body_json();
            accepted.push((
                id,
                body["type"].as_str().unwrap().to_string(),
                body["data"].clone(),
            ));
        }
    }
    let expected: Vec<(String, String, Value)> = events
        .iter()
        .map(|e| {
            (
                e.id.clone(),
                e.kind.clone(),
                serde_json::from_str(&e.payload).unwrap(),
            )
        })
        .collect();
    assert_eq!(accepted, expected);
    drop(seen);

    // Nothing is pending any more: a second delivery posts nothing.
    let before = receiver.seen.lock().unwrap().len();
    assert_ok(&env.deliver(&receiver.url, &[]));
    assert_eq!(receiver.seen.lock().unwrap().len(), before);
}

#[test]
fn deliver_refuses_a_bad_url_or_an_empty_or_malformed_secret_before_touching_anything() {
    let env = Env::after_demo_night();
    let out = env.deliver("ftp://example.org/hooks", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must start with http://"));
    fs::write(env.path("secret"), "  \n").unwrap();
    let out = env.deliver("http://127.0.0.1:9/hooks", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no secret"));
    fs::write(env.path("secret"), "whsec_MfKQ9r8G\nwhsec_not base64!\n").unwrap();
    let out = env.deliver("http://127.0.0.1:9/hooks", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2: the secret after whsec_"));
    assert!(
        env.events()
            .iter()
            .all(|e| e.status == "PENDING" && e.attempts == 0)
    );
}

#[test]
fn the_receiver_and_secret_can_come_from_recon_toml() {
    let env = Env::after_demo_night();
    let receiver = Receiver::start(vec![]);
    // Next to the database, with the secret file's path relative to the configuration.
    fs::write(
        env.path("recon.toml"),
        format!(
            "[webhooks]\nurl = \"{}\"\nsecret_file = \"secret\"\n",
            receiver.url
        ),
    )
    .unwrap();
    let shown = env.recon(&["config", "show", "--db", &env.db()]);
    assert_ok(&shown);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("webhooks.url"), "{text}");
    assert!(text.contains("webhooks.secret_file"), "{text}");
    // --backoff-ms is no longer used, and still accepted: crontabs that give it keep working.
    let out = env.recon(&[
        "webhooks",
        "deliver",
        "--db",
        &env.db(),
        "--backoff-ms",
        "10",
    ]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--backoff-ms is no longer used"));
    assert!(env.events().iter().all(|e| e.status == "DELIVERED"));
    assert!(receiver.seen.lock().unwrap().iter().all(verify));

    // Without any of the three ways to name a receiver, the error says what to give.
    fs::remove_file(env.path("recon.toml")).unwrap();
    let out = env.recon(&["webhooks", "deliver", "--db", &env.db()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--url URL"));
}

#[test]
fn a_second_deliverer_at_the_same_time_is_refused_and_posts_nothing() {
    let env = Env::after_demo_night();
    let receiver = Receiver::start(vec![]);
    // Hold the deliverers' lock the way a running `recon webhooks deliver` does.
    let lock = fs::File::create(format!("{}.deliver-lock", env.db())).unwrap();
    lock.lock().unwrap();
    let out = env.deliver(&receiver.url, &[]);
    assert_eq!(out.status.code(), Some(75));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("another `recon webhooks deliver` is running")
    );
    assert!(receiver.seen.lock().unwrap().is_empty());
    assert!(env.events().iter().all(|e| e.status == "PENDING"));
    lock.unlock().unwrap();
    assert_ok(&env.deliver(&receiver.url, &[]));
    assert!(env.events().iter().all(|e| e.status == "DELIVERED"));
}

/// The ids of the group's events, in outbox order.
fn ids_of_group(events: &[Listed], group: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| serde_json::from_str::<Value>(&e.payload).unwrap()["account_group_id"] == group)
        .map(|e| e.id.clone())
        .collect()
}

/// Asserts that each group's events reached the receiver in order: every post of an event came
/// after the group's previous event was accepted, and each was accepted once.
fn assert_each_group_in_order(seen: &[Received], events: &[Listed]) {
    for group in GROUPS {
        let expected = ids_of_group(events, group);
        let mut accepted = 0;
        for post in seen.iter().filter(|r| r.group() == group) {
            assert_eq!(
                post.id(),
                expected[accepted],
                "group {group}: a post out of order"
            );
            if post.accepted() {
                accepted += 1;
            }
        }
        assert_eq!(accepted, expected.len(), "group {group}");
    }
}

fn stderr_of(outs: &[Output]) -> String {
    outs.iter()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .collect()
}

#[test]
fn an_event_that_fails_is_retried_on_the_schedule_while_other_groups_go_on_and_its_own_waits() {
    let env = Env::with_groups();
    let events = env.events();
    assert_eq!(events.len(), 9);
    // The receiver refuses the first event of group A four times, in four ways; a refusal is a
    // failed attempt of that event, not a reason to give up on anything.
    let first = events[0].id.clone();
    let mut refusals = vec![503, 401, 404, 302].into_iter();
    let receiver = Receiver::with_rule(Box::new(move |r| {
        let refusal = if r.id() == first {
            refusals.next()
        } else {
            None
        };
        Reply::Status(refusal.unwrap_or(200))
    }));
    let outs = env.deliver_until_delivered(&receiver.url, &FAST, 300);
    assert_eq!(outs[0].status.code(), Some(75));
    assert_ok(outs.last().unwrap());
    let stderr = stderr_of(&outs);
    for said in [
        "HTTP 503",
        "HTTP 401",
        "HTTP 404",
        "HTTP 302, a redirect to nowhere",
    ] {
        assert!(stderr.contains(said), "{said}: {stderr}");
    }
    assert!(!stderr.contains("FAILED"), "{stderr}");

    let events = env.events();
    assert!(events.iter().all(|e| e.status == "DELIVERED"));
    assert_eq!(events[0].attempts, 5);
    assert!(events[1..].iter().all(|e| e.attempts == 1));
    let seen = receiver.seen();
    assert_eq!(seen.len(), events.len() + 4);
    assert_each_group_in_order(&seen, &events);
    // Groups B and C went on while A's first event waited: all of theirs before its retry.
    let retries: Vec<&Received> = seen.iter().filter(|r| r.id() == events[0].id).collect();
    assert!(
        seen.iter()
            .filter(|r| r.group() != GROUPS[0])
            .all(|r| r.at < retries[1].at)
    );
    // The attempts followed the schedule (scaled): 5 s, 5 min, 30 min, 2 h apart at least.
    for (pair, step_secs) in retries.windows(2).zip([5, 300, 1800, 7200]) {
        let apart = pair[1].at - pair[0].at;
        assert!(
            apart >= Duration::from_micros(step_secs * 100),
            "{apart:?} < {step_secs} s scaled"
        );
    }
}

#[test]
fn deliver_returns_when_nothing_is_due_and_a_later_call_picks_up_where_it_stopped() {
    let env = Env::with_groups();
    let receiver = Receiver::start(vec![Reply::Status(503)]);
    // The real schedule: the first retry is 5 s later, and deliver does not wait for it.
    let started = Instant::now();
    let out = env.deliver(&receiver.url, &[]);
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(out.status.code(), Some(75));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .starts_with("delivered 6 event(s), 1 attempt(s) failed; 3 pending (next attempt due "),
        "{stdout}"
    );
    let events = env.events();
    let waiting = ids_of_group(&events, GROUPS[0]);
    for e in &events {
        let expected = if waiting.contains(&e.id) {
            "PENDING"
        } else {
            "DELIVERED"
        };
        assert_eq!(e.status, expected, "{e:?}");
    }
    let first = &events[0].json;
    assert_eq!(first["attempts"], 1);
    assert_eq!(first["last_error"], "HTTP 503");
    let at =
        |field: &str| chrono::DateTime::parse_from_rfc3339(first[field].as_str().unwrap()).unwrap();
    let pause = at("next_attempt_at") - at("last_attempt_at");
    assert!((4..=6).contains(&pause.num_seconds()), "{pause}");

    // Called again before it is due: nothing is posted.
    let out = env.deliver(&receiver.url, &[]);
    assert_ok(&out);
    assert_eq!(receiver.seen().len(), 7);
    // As cron would, once it is due: the group's three events, in order.
    thread::sleep(Duration::from_millis(5200));
    assert_ok(&env.deliver(&receiver.url, &[]));
    let seen = receiver.seen();
    let posted: Vec<&str> = seen[7..].iter().map(Received::id).collect();
    assert_eq!(posted, waiting);
    assert_each_group_in_order(&seen, &env.events());
}

#[test]
fn an_event_out_of_attempts_is_failed_its_group_waits_behind_it_and_retry_sends_it_first() {
    let env = Env::with_groups();
    let events = env.events();
    let first = events[0].id.clone();
    let refused = first.clone();
    let receiver = Receiver::with_rule(Box::new(move |r| {
        Reply::Status(if r.id() == refused { 500 } else { 200 })
    }));
    let extra = ["--max-attempts", "3", FAST[0], FAST[1]];
    let mut last = None;
    for _ in 0..100 {
        last = Some(env.deliver(&receiver.url, &extra));
        if env.events()[0].status == "FAILED" {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let out = last.unwrap();
    assert_eq!(out.status.code(), Some(75));
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("2 pending, 1 failed\n"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 event(s) FAILED after their last attempt (1 in this call, the first")
            && stderr.contains("2 later event(s) of their account groups wait behind them")
            && stderr.contains("`recon webhooks retry`"),
        "{stderr}"
    );
    let events = env.events();
    assert_eq!(
        (events[0].status.as_str(), events[0].attempts),
        ("FAILED", 3)
    );
    let group_a = ids_of_group(&events, GROUPS[0]);
    for e in &events {
        if e.id == first {
            continue;
        }
        if group_a.contains(&e.id) {
            // Waiting behind it, never posted: a receiver never sees them before it.
            assert_eq!((e.status.as_str(), e.attempts), ("PENDING", 0));
            assert!(receiver.seen().iter().all(|r| r.id() != e.id));
        } else {
            assert_eq!(e.status, "DELIVERED");
        }
    }
    // Nothing is due: another call posts nothing, and says again what waits.
    let posts = receiver.seen().len();
    let out = env.deliver(&receiver.url, &extra);
    assert_eq!(out.status.code(), Some(75));
    assert_eq!(receiver.seen().len(), posts);

    let lines = crate::env::outbox_events(&env, &env.db(), &["--status", "failed"]);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["id"], first.as_str());
    assert_eq!(lines[0]["last_error"], "HTTP 500");

    // An id that is not a failed event is refused clearly, and nothing is queued.
    let out = env.recon(&[
        "webhooks",
        "retry",
        "--db",
        &env.db(),
        &events[1].id,
        &first,
    ]);
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is DELIVERED, not FAILED"));
    let out = env.recon(&["webhooks", "retry", "--db", &env.db(), "no-such-event"]);
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no event with id no-such-event"));
    assert_eq!(env.events()[0].status, "FAILED");

    // The receiver is fixed; retry queues the failed event, and it goes first, then its group.
    receiver.set_rule(scripted(vec![]));
    let retried = env.recon(&["webhooks", "retry", "--db", &env.db(), &first]);
    assert_ok(&retried);
    assert!(String::from_utf8_lossy(&retried.stdout).contains("queued 1 failed event"));
    assert_ok(&env.deliver(&receiver.url, &extra));
    let seen = receiver.seen();
    let posted: Vec<&str> = seen[posts..].iter().map(Received::id).collect();
    assert_eq!(posted, group_a);
    let events = env.events();
    assert!(events.iter().all(|e| e.status == "DELIVERED"));
    assert_each_group_in_order(&seen, &events);
}

#[test]
fn a_410_disables_the_endpoint_with_a_clear_message_until_it_is_enabled_again() {
    let env = Env::after_demo_night();
    let receiver = Receiver::start(vec![Reply::Status(410)]);
    let out = env.deliver(&receiver.url, &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("answered HTTP 410 Gone to event")
            && stderr.contains("the endpoint is gone")
            && stderr.contains("--reenable-endpoint"),
        "{stderr}"
    );
    assert_eq!(receiver.seen().len(), 1);
    let events = env.events();
    assert!(
        events
            .iter()
            .all(|e| e.status == "PENDING" && e.attempts == 0)
    );
    assert_eq!(events[0].json["last_error"], "HTTP 410 Gone");

    // Later calls post nothing to it, and say why.
    let out = env.deliver(&receiver.url, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the endpoint is gone"));
    assert_eq!(receiver.seen().len(), 1);
    // Enabled again: everything goes, the event that met the 410 first.
    assert_ok(&env.deliver(&receiver.url, &["--reenable-endpoint"]));
    let events = env.events();
    assert!(events.iter().all(|e| e.status == "DELIVERED"));
    let seen = receiver.seen();
    assert_eq!(seen.len(), events.len() + 1);
    let posted: Vec<&str> = seen[1..].iter().map(Received::id).collect();
    let expected: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(posted, expected);
}

#[test]
fn deliver_beside_a_run_holding_the_write_lock_posts_each_event_once_and_records_it() {
    let env = Env::after_demo_night();
    let receiver = Receiver::start(vec![]);
    // A nightly run holds the database's write lock for its whole transaction: hold it the same
    // way, with an event the "run" has written but not committed.
    let run = rusqlite::Connection::open(env.db()).unwrap();
    run.execute_batch(
        r#"BEGIN IMMEDIATE;
           INSERT INTO events (seq, id, type, created_at, payload)
           VALUES ((SELECT max(next_seq, (SELECT max(seq) + 1 FROM events)) FROM outbox_head),
                   'written-by-the-run', 'topup.settled', '2026-11-21T06:00:00Z',
                   '{"account_group_id":"1ea60f56-b67b-61fc-829a-0242ac130003"}');"#,
    )
    .unwrap();
    // It is held: a writer gives up.
    let writer = env.create_topup(GROUPS[0], "1.00");
    assert_eq!(writer.status.code(), Some(75));

    let out = env.deliver(&receiver.url, &[]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("delivered 21 event(s), 0 attempt"));
    // Each committed event posted once and recorded as delivered, while the lock is still held.
    let events = env.events();
    assert_eq!(events.len(), 21);
    assert!(
        events
            .iter()
            .all(|e| e.status == "DELIVERED" && e.attempts == 1)
    );
    let posted: Vec<String> = receiver.seen().iter().map(|r| r.id().to_string()).collect();
    let expected: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(posted, expected);
    // Called again while the run goes on: nothing is posted twice.
    assert_ok(&env.deliver(&receiver.url, &[]));
    assert_eq!(receiver.seen().len(), 21);

    // The run commits: the next call posts its event, and only that.
    run.execute_batch("COMMIT").unwrap();
    assert_ok(&env.deliver(&receiver.url, &[]));
    let seen = receiver.seen();
    assert_eq!(seen.len(), 22);
    assert_eq!(seen[21].id(), "written-by-the-run");
    assert_ok(&env.deliver(&receiver.url, &[]));
    assert_eq!(receiver.seen().len(), 22);
    assert!(env.events().iter().all(|e| e.status == "DELIVERED"));
}

#[test]
fn a_deliver_stopped_while_posting_leaves_a_claim_and_the_next_posts_only_that_event_again() {
    let env = Env::after_demo_night();
    // The third post is never answered in time: the deliver is killed while it waits.
    let receiver = Receiver::start(vec![
        Reply::Status(200),
        Reply::Status(200),
        Reply::Sleep(Duration::from_secs(60)),
    ]);
    let secret = env.path("secret").display().to_string();
    let mut child = env
        .command()
        .args([
            "webhooks",
            "deliver",
            "--db",
            &env.db(),
            "--url",
            &receiver.url,
            "--secret-file",
            &secret,
            "--timeout",
            "120",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let waited = Instant::now();
    while receiver.seen().len() < 3 {
        assert!(waited.elapsed() < Duration::from_secs(20), "no third post");
        thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let events = env.events();
    let in_flight = &events[2];
    assert_eq!(
        (in_flight.status.as_str(), in_flight.attempts),
        ("PENDING", 0)
    );
    // Its claim was recorded before the post.
    let claimed: Option<i64> = rusqlite::Connection::open(format!("{}.deliveries", env.db()))
        .unwrap()
        .query_row(
            "SELECT claimed_at_ms FROM deliveries WHERE seq = ?1",
            [in_flight.json["seq"].as_i64().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    assert!(claimed.is_some());

    // The next deliver records the interrupted attempt and posts that event again, once; the
    // two accepted before are not posted again.
    let out = env.deliver(&receiver.url, &[]);
    assert_ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("was being posted when the last deliver stopped")
    );
    let events = env.events();
    assert!(events.iter().all(|e| e.status == "DELIVERED"));
    assert_eq!(events[2].attempts, 2);
    let seen = receiver.seen();
    assert_eq!(seen.len(), events.len() + 1);
    for (i, event) in events.iter().enumerate() {
        let posts = seen.iter().filter(|r| r.id() == event.id).count();
        assert_eq!(posts, if i == 2 { 2 } else { 1 }, "{}", event.id);
    }
}

/// Moves every delivery in the delivery state file `days` days into the past.
fn age_deliveries(env: &Env, days: i64) {
    let path = format!("{}.deliveries", env.db());
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute(
        "UPDATE deliveries SET delivered_at_ms = delivered_at_ms - ?1 WHERE status = 'DELIVERED'",
        [days * 86_400_000],
    )
    .unwrap();
}

#[test]
fn delivered_events_are_pruned_after_the_retention_counted_by_check_and_delivery_goes_on() {
    let env = Env::with_groups();
    let receiver = Receiver::start(vec![Reply::Status(200)]);
    assert_ok(&env.deliver(&receiver.url, &[]));
    assert_eq!(env.sql_count("SELECT count(*) FROM events"), 9);
    let check = env.recon(&["check", "--db", &env.db()]);
    assert_ok(&check);
    assert!(
        crate::env::stdout(&check)
            .contains("events   9 delivered kept (0 delivered over 30 day(s) ago"),
        "{}",
        crate::env::stdout(&check)
    );

    // Within the retention nothing goes; 31 days later every event but the last taken in does.
    age_deliveries(&env, 29);
    let out = env.deliver(&receiver.url, &[]);
    assert_ok(&out);
    assert!(!crate::env::stdout(&out).contains("pruned"));
    assert_eq!(env.sql_count("SELECT count(*) FROM events"), 9);
    age_deliveries(&env, 2);
    let check = crate::env::stdout(&env.recon(&["check", "--db", &env.db()]));
    assert!(check.contains("(9 delivered over 30 day(s) ago"), "{check}");
    let out = env.deliver(&receiver.url, &[]);
    assert_ok(&out);
    assert!(
        crate::env::stdout(&out).contains("pruned 8 event(s) delivered over 30 day(s) ago"),
        "{}",
        crate::env::stdout(&out)
    );
    assert_eq!(env.sql_count("SELECT count(*) FROM events"), 1);
    assert_eq!(env.events().len(), 1, "the listing shows what is kept");
    let check = env.recon(&["check", "--db", &env.db()]);
    assert_ok(&check);
    let text = crate::env::stdout(&check);
    assert!(text.contains("events   1 delivered kept"), "{text}");
    assert!(text.contains(", 8 pruned (last on "), "{text}");

    // New events after the prune are taken in and delivered as before, once each.
    assert_ok(&env.create_topup(GROUPS[0], "12.00"));
    let before = receiver.seen().len();
    assert_ok(&env.deliver(&receiver.url, &["--retention-days", "0"]));
    assert_eq!(receiver.seen().len(), before + 1);
    // A retention of 0 days prunes what was just delivered, except the last event taken in.
    assert_eq!(env.sql_count("SELECT count(*) FROM events"), 1);
    assert_eq!(
        receiver
            .seen()
            .iter()
            .filter(|r| r.id() == receiver.seen()[before].id())
            .count(),
        1
    );
}

/// A run's settlement events have no rows of their own: once delivered and past the retention
/// they count as pruned, and a delivery state file made anew does not post them again.
#[test]
fn settlement_events_past_the_retention_are_not_posted_again_by_a_new_delivery_state() {
    let env = Env::after_demo_night();
    let receiver = Receiver::start(vec![Reply::Status(200)]);
    assert_ok(&env.deliver(&receiver.url, &["--retention-days", "0"]));
    let posted = receiver.seen().len();
    assert!(
        receiver.seen().iter().any(|r| &r.id()[14..15] == "8"),
        "the night's settlements were posted"
    );
    // Everything but the last event taken in is pruned; that one is a settlement's.
    let kept = env.events();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].kind, "cash_balance.updated");
    assert_ok(&env.recon(&["check", "--db", &env.db()]));

    // A delivery state made anew takes in only what is kept, and posts nothing twice but it.
    let state = format!("{}.deliveries", env.db());
    fs::rename(&state, format!("{state}.aside")).unwrap();
    let again = env.events();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, kept[0].id);
    assert_ok(&env.deliver(&receiver.url, &[]));
    assert_eq!(receiver.seen().len(), posted + 1);
    assert_eq!(receiver.seen()[posted].id(), kept[0].id);
}
