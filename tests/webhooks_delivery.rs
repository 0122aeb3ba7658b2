//! Webhook delivery: the real binary and the real SQLite file posting to a real HTTP receiver on
//! 127.0.0.1 that fails, times out and succeeds on purpose, and receivers verifying the posts
//! as Standard Webhooks (with the published Python library where it is installed).

mod common;

use common::assert_ok;

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use assert_cmd::Command;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo");
/// A secret as recon's secret files held them before Standard Webhooks: the key's own bytes.
const SECRET: &str = "whsec-test-0123456789";

struct Env {
    dir: tempfile::TempDir,
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
        let env = Env {
            dir: tempfile::tempdir().unwrap(),
        };
        let topups = format!("{DEMO}/topups.csv");
        assert_ok(&env.recon(&["topups", "import", "--db", &env.db(), &topups]));
        let statement = format!("{DEMO}/2026-11-20.camt053.xml");
        let out = env.path("report").display().to_string();
        assert_ok(&env.recon(&["run", "--db", &env.db(), "--out", &out, &statement]));
        fs::write(env.path("secret"), format!("{SECRET}\n")).unwrap();
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
            "--backoff-ms",
            "10",
        ];
        args.extend_from_slice(extra);
        self.recon(&args)
    }

    /// Every event with its delivery state, in outbox order, as `webhooks list` shows them.
    fn events(&self) -> Vec<Listed> {
        let out = self.recon(&["webhooks", "list", "--db", &self.db(), "--format", "jsonl"]);
        assert_ok(&out);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| {
                let json: Value = serde_json::from_str(line).unwrap();
                Listed {
                    id: json["id"].as_str().unwrap().to_string(),
                    kind: json["type"].as_str().unwrap().to_string(),
                    payload: json["payload"].as_str().unwrap().to_string(),
                    status: json["status"].as_str().unwrap().to_string(),
                    attempts: json["attempts"].as_i64().unwrap(),
                    json,
                }
            })
            .collect()
    }
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

impl Received {
    fn id(&self) -> &str {
        &self.headers["webhook-id"]
    }

    fn body_json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
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
        let received = Received {
            headers: forged.0.clone(),
            body: forged.1.clone(),
        };
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
    let out = env.deliver(&receiver.url, &["--timeout", "1"]);
    assert_ok(&out);
    let events = env.events();
    assert!(events.iter().all(|e| e.status == "DELIVERED"), "{events:?}");
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
fn an_unreachable_receiver_marks_the_event_failed_keeps_the_rest_and_retry_sends_them() {
    let env = Env::after_demo_night();
    let receiver = Receiver::start(vec![Reply::Status(502); 3]);
    let out = env.deliver(&receiver.url, &["--max-attempts", "3"]);
    assert_eq!(
        out.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 502"));
    let events = env.events();
    assert_eq!(
        (events[0].status.as_str(), events[0].attempts),
        ("FAILED", 3)
    );
    assert!(events[1..].iter().all(|e| e.status == "PENDING"));

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
    let lines: Vec<Value> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["id"], events[0].id.as_str());
    assert_eq!(lines[0]["last_error"], "HTTP 502");

    // The receiver is back: the pending events go, then `retry` queues the failed one again.
    receiver.set_script(vec![]);
    assert_ok(&env.deliver(&receiver.url, &[]));
    assert_eq!(env.events()[0].status, "FAILED");
    assert!(env.events()[1..].iter().all(|e| e.status == "DELIVERED"));
    let retried = env.recon(&["webhooks", "retry", "--db", &env.db()]);
    assert_ok(&retried);
    assert!(String::from_utf8_lossy(&retried.stdout).contains("queued 1 failed event"));
    assert_ok(&env.deliver(&receiver.url, &[]));
    assert!(env.events().iter().all(|e| e.status == "DELIVERED"));
}

#[test]
fn a_receiver_that_refuses_an_event_fails_only_that_event_at_once() {
    let env = Env::after_demo_night();
    let receiver = Receiver::start(vec![Reply::Status(200), Reply::Status(400)]);
    assert_ok(&env.deliver(&receiver.url, &["--max-attempts", "5"]));
    let events = env.events();
    assert_eq!(
        (events[1].status.as_str(), events[1].attempts),
        ("FAILED", 1)
    );
    assert_eq!(
        events.iter().filter(|e| e.status == "DELIVERED").count(),
        events.len() - 1
    );
    // Retrying one event by id; an id that is not a failed event is refused clearly.
    let out = env.recon(&["webhooks", "retry", "--db", &env.db(), &events[0].id]);
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is DELIVERED, not FAILED"));
    assert_ok(&env.recon(&["webhooks", "retry", "--db", &env.db(), &events[1].id]));
    assert_eq!(env.events()[1].status, "PENDING");
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
    let out = env.recon(&[
        "webhooks",
        "deliver",
        "--db",
        &env.db(),
        "--backoff-ms",
        "10",
    ]);
    assert_ok(&out);
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
