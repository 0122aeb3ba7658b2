//! The top-up API under load and abuse (issue #24): the real `recon serve` binary on 127.0.0.1
//! with a free port and a real SQLite file, many clients at once, a nightly run holding the
//! database, slow and unauthenticated clients, and the answers' hygiene.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::env::{Env, GROUP, start_serve, write_token};

const TOKEN: &str = "load-test-token-0123456789abcdef0123";

/// A running `recon serve`, killed when dropped; its stderr (the log) goes to a file.
struct Server {
    env: Env,
    child: Child,
    base: String,
    address: String,
}

/// A response: status, headers by lower-case name, body as text.
struct Answer {
    status: u16,
    headers: std::collections::HashMap<String, String>,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let env = Env::new();
        let log = std::fs::File::create(env.path("log")).unwrap();
        let (child, base) = start_serve(&env, TOKEN, extra, Stdio::from(log));
        let address = base.trim_start_matches("http://").to_string();
        Server {
            env,
            child,
            base,
            address,
        }
    }

    fn db(&self) -> PathBuf {
        self.env.path("recon.sqlite")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.env.path("log")).unwrap()
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into()
    }

    fn call(
        &self,
        agent: &ureq::Agent,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Answer {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = match body {
            Some(body) => agent.run(
                request
                    .header("Content-Type", "application/json")
                    .body(body.to_string())
                    .unwrap(),
            ),
            None => agent.run(request.body(()).unwrap()),
        }
        .unwrap();
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let text = response.into_body().read_to_string().unwrap();
        Answer {
            status,
            headers,
            text,
        }
    }

    fn create(&self, agent: &ureq::Agent, amount: &str, key: Option<&str>) -> Answer {
        let body = json!({"account_group_id": GROUP, "cash_amount": amount, "currency": "EUR"});
        let bearer = format!("Bearer {TOKEN}");
        let mut headers = vec![("Authorization", bearer.as_str())];
        if let Some(key) = key {
            headers.push(("Idempotency-Key", key));
        }
        self.call(
            agent,
            "POST",
            "/payments/topups",
            &headers,
            Some(&body.to_string()),
        )
    }

    fn get(&self, agent: &ureq::Agent, path: &str) -> Answer {
        let bearer = format!("Bearer {TOKEN}");
        self.call(agent, "GET", path, &[("Authorization", &bearer)], None)
    }

    fn count(&self, sql: &str) -> i64 {
        rusqlite::Connection::open(self.db())
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `work(client)` on `clients` threads at once and gathers what they return.
fn at_once<T: Send + 'static>(
    clients: usize,
    work: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let work = Arc::new(work);
    let threads: Vec<_> = (0..clients)
        .map(|client| {
            let work = work.clone();
            thread::spawn(move || work(client))
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

// ---- 1. No 503 without a reason --------------------------------------------------------------

#[test]
fn sixteen_clients_writing_and_reading_at_once_get_no_503() {
    let server = Arc::new(Server::start(&[]));
    let per_client = 60;
    let statuses = {
        let server = server.clone();
        at_once(16, move |client| {
            let agent = Server::agent();
            (0..per_client)
                .map(|i| {
                    if (client + i) % 3 == 0 {
                        ("GET", server.get(&agent, "/payments/topups?limit=5").status)
                    } else {
                        (
                            "POST",
                            server.create(&agent, &format!("{}.25", i + 1), None).status,
                        )
                    }
                })
                .collect::<Vec<_>>()
        })
    };
    let all: Vec<_> = statuses.into_iter().flatten().collect();
    let posts = all.iter().filter(|(m, _)| *m == "POST").count();
    let bad: Vec<_> = all
        .iter()
        .filter(|(m, s)| !matches!((*m, *s), ("POST", 201) | ("GET", 200)))
        .collect();
    assert!(bad.is_empty(), "{} of {}: {bad:?}", bad.len(), all.len());
    assert_eq!(server.count("SELECT count(*) FROM topups"), posts as i64);
    assert_eq!(
        server.count("SELECT count(*) FROM events WHERE type = 'topup.confirmed'"),
        posts as i64
    );
}

#[test]
fn a_write_waits_for_a_nightly_run_and_is_stamped_when_it_is_written() {
    let server = Arc::new(Server::start(&["--wait", "10"]));
    let agent = Server::agent();
    assert_eq!(server.create(&agent, "1", None).status, 201);
    // Hold the write lock the way a nightly run does, for two seconds.
    let holder = rusqlite::Connection::open(server.db()).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let asked = Instant::now();
    let waiting = {
        let server = server.clone();
        thread::spawn(move || server.create(&Server::agent(), "2", Some("during-the-run")))
    };
    thread::sleep(Duration::from_secs(2));
    // Reads go on meanwhile.
    let page = server.get(&agent, "/payments/topups");
    assert_eq!(page.status, 200);
    let released = chrono::Utc::now();
    holder.execute_batch("COMMIT").unwrap();
    let created = waiting.join().unwrap();
    assert_eq!(created.status, 201, "{}", created.text);
    assert!(asked.elapsed() >= Duration::from_secs(2));
    // created_at is when it was written, not when the request arrived.
    let stamped: chrono::DateTime<chrono::Utc> = created.json()["created_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        stamped >= released - chrono::Duration::seconds(1),
        "{stamped} before the run ended at {released}"
    );
    assert_eq!(server.count("SELECT count(*) FROM topups"), 2);
}

#[test]
fn a_write_that_outwaits_the_bound_gets_503_saying_another_process_holds_the_database() {
    let server = Server::start(&["--wait", "1"]);
    let agent = Server::agent();
    let holder = rusqlite::Connection::open(server.db()).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let asked = Instant::now();
    let refused = server.create(&agent, "3", Some("too-late"));
    let took = asked.elapsed();
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(refused.header("retry-after"), Some("5"));
    assert_eq!(
        refused.header("content-type"),
        Some("application/problem+json")
    );
    let detail = refused.json()["detail"].as_str().unwrap().to_string();
    assert!(
        detail.contains("another process") && detail.contains("write lock"),
        "{detail}"
    );
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(server.count("SELECT count(*) FROM topups"), 0);
    // The retry with the same key creates it, once.
    assert_eq!(server.create(&agent, "3", Some("too-late")).status, 201);
    assert_eq!(server.create(&agent, "3", Some("too-late")).status, 201);
    assert_eq!(server.count("SELECT count(*) FROM topups"), 1);
}

#[test]
fn a_refused_request_in_a_group_leaves_the_others_written() {
    let server = Arc::new(Server::start(&[]));
    let agent = Server::agent();
    let topup = server.create(&agent, "10", None).json();
    let path = Arc::new(format!(
        "/payments/topups/{}",
        topup["id"].as_str().unwrap()
    ));
    // Sixteen clients at once: each cancels the same top-up and creates one of its own; one
    // key is sent twice with different amounts.
    let answers = {
        let server = server.clone();
        at_once(16, move |client| {
            let agent = Server::agent();
            let bearer = format!("Bearer {TOKEN}");
            let cancel = server
                .call(&agent, "DELETE", &path, &[("Authorization", &bearer)], None)
                .status;
            let key = if client < 2 {
                "shared-key".to_string()
            } else {
                format!("key-{client}")
            };
            let amount = format!("{}.00", client + 1);
            let create = server.create(&agent, &amount, Some(&key)).status;
            (cancel, create, client < 2)
        })
    };
    let cancelled = answers.iter().filter(|(c, _, _)| *c == 200).count();
    let conflicts = answers.iter().filter(|(c, _, _)| *c == 409).count();
    assert_eq!((cancelled, conflicts), (1, 15), "{answers:?}");
    let created = answers.iter().filter(|(_, c, _)| *c == 201).count();
    let reused = answers.iter().filter(|(_, c, _)| *c == 422).count();
    assert_eq!((created, reused), (15, 1), "{answers:?}");
    assert_eq!(server.count("SELECT count(*) FROM topups"), 16);
    assert_eq!(
        server.count("SELECT count(*) FROM events WHERE type = 'topup.cancelled'"),
        1
    );
}

// ---- 3. Resource limits ----------------------------------------------------------------------

#[test]
fn three_hundred_clients_stuck_in_their_headers_do_not_keep_a_request_out() {
    let server = Server::start(&["--header-timeout", "2"]);
    let stuck: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut socket = TcpStream::connect(&server.address).unwrap();
            socket
                .write_all(b"POST /payments/topups HTTP/1.1\r\nHost: x\r\nContent-Le")
                .unwrap();
            socket
        })
        .collect();
    let agent = Server::agent();
    let asked = Instant::now();
    let created = server.create(&agent, "7", None);
    assert_eq!(created.status, 201, "{}", created.text);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    // After the header timeout the server has hung up on them.
    thread::sleep(Duration::from_secs(3));
    for mut socket in stuck.into_iter().take(20) {
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut rest = Vec::new();
        let closed = match socket.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(closed, "a socket stuck in its header is still open");
    }
}

#[test]
fn a_body_that_never_ends_gets_408_after_the_request_timeout() {
    let server = Server::start(&["--request-timeout", "2", "--wait", "1"]);
    let mut socket = TcpStream::connect(&server.address).unwrap();
    socket
        .write_all(
            format!(
                "POST /payments/topups HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"acc"
            )
            .as_bytes(),
        )
        .unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let asked = Instant::now();
    let mut answer = vec![0; 4096];
    let n = socket.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(asked.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_flood_of_health_checks_gets_429_and_keeps_no_create_out() {
    let server = Arc::new(Server::start(&[]));
    let stop = Arc::new(AtomicBool::new(false));
    let limited = Arc::new(AtomicUsize::new(0));
    let flood: Vec<_> = (0..6)
        .map(|_| {
            let (server, stop, limited) = (server.clone(), stop.clone(), limited.clone());
            thread::spawn(move || {
                let agent = Server::agent();
                let until = Instant::now() + Duration::from_secs(20);
                while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                    if server.call(&agent, "GET", "/health", &[], None).status == 429 {
                        limited.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let agent = Server::agent();
    let statuses: Vec<u16> = (0..100)
        .map(|i| server.create(&agent, &format!("{}", i + 1), None).status)
        .collect();
    stop.store(true, Ordering::Relaxed);
    for thread in flood {
        thread.join().unwrap();
    }
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    assert!(limited.load(Ordering::Relaxed) > 0);
    let limited = server.call(&agent, "GET", "/health", &[], None);
    assert_eq!(limited.status, 429);
    assert!(limited.header("retry-after").is_some());
    assert_eq!(
        limited.header("content-type"),
        Some("application/problem+json")
    );
}

#[test]
fn repeated_wrong_tokens_get_429_and_the_right_token_still_works() {
    let server = Server::start(&[]);
    let agent = Server::agent();
    let wrong = "Bearer wrong-token-wrong-token-wrong-token";
    let statuses: Vec<u16> = (0..40)
        .map(|_| {
            server
                .call(
                    &agent,
                    "GET",
                    "/payments/topups",
                    &[("Authorization", wrong)],
                    None,
                )
                .status
        })
        .collect();
    assert_eq!(statuses[0], 401);
    assert_eq!(*statuses.last().unwrap(), 429, "{statuses:?}");
    assert_eq!(server.get(&agent, "/payments/topups").status, 200);
}

// ---- 4. Hygiene ------------------------------------------------------------------------------

#[test]
fn every_answer_is_no_store_and_nosniff_and_every_error_a_problem() {
    let server = Server::start(&[]);
    let agent = Server::agent();
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str())];
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(70 * 1024));
    /// method, path, headers, body, the status expected
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        Option<&'a str>,
        u16,
    );
    let cases: Vec<Case> = vec![
        ("GET", "/health", &[], None, 200),
        ("GET", "/payments/topups", &auth, None, 200),
        ("GET", "/payments/topups", &[], None, 401),
        ("GET", "/nothing-here", &auth, None, 404),
        ("PUT", "/payments/topups", &auth, Some("{}"), 405),
        ("PATCH", "/health", &[], None, 405),
        ("POST", "/payments/topups", &auth, Some(&big), 413),
        ("POST", "/payments/topups", &auth, Some("nope"), 400),
        (
            "GET",
            "/payments/topups/00000000-0000-4000-8000-000000000000",
            &auth,
            None,
            404,
        ),
    ];
    for (method, path, headers, body, expected) in cases {
        let answer = server.call(&agent, method, path, headers, body);
        assert_eq!(answer.status, expected, "{method} {path}: {}", answer.text);
        assert_eq!(answer.header("cache-control"), Some("no-store"), "{path}");
        assert_eq!(
            answer.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        if expected >= 400 {
            assert_eq!(
                answer.header("content-type"),
                Some("application/problem+json"),
                "{method} {path}"
            );
            let problem = answer.json();
            assert_eq!(problem["status"], expected, "{problem}");
            assert!(problem["title"].is_string(), "{problem}");
        }
    }
}

#[test]
fn the_scheme_name_is_case_insensitive() {
    let server = Server::start(&[]);
    let agent = Server::agent();
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let header = format!("{scheme} {TOKEN}");
        let answer = server.call(
            &agent,
            "GET",
            "/payments/topups",
            &[("Authorization", &header)],
            None,
        );
        assert_eq!(answer.status, 200, "{scheme}");
    }
}

#[test]
fn the_idempotency_key_compares_the_request_as_validated() {
    let server = Server::start(&[]);
    let agent = Server::agent();
    let first = server.create(&agent, "30", Some("same-amount"));
    assert_eq!(first.status, 201);
    let again = server.create(&agent, "30.00", Some("same-amount"));
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json(), first.json());
    assert_eq!(
        server.create(&agent, "30.01", Some("same-amount")).status,
        422
    );
    assert_eq!(server.count("SELECT count(*) FROM topups"), 1);
}

#[test]
fn currencies_outside_iso_4217_and_amounts_not_written_canonically_are_refused() {
    let server = Server::start(&[]);
    let agent = Server::agent();
    let bearer = format!("Bearer {TOKEN}");
    for (amount, currency, field) in [
        ("10", "ABC", "currency"),
        ("10", "XAU", "currency"),
        ("5.", "EUR", "cash_amount"),
        (".5", "EUR", "cash_amount"),
        ("010", "EUR", "cash_amount"),
    ] {
        let body = json!({"account_group_id": GROUP, "cash_amount": amount, "currency": currency});
        let answer = server.call(
            &agent,
            "POST",
            "/payments/topups",
            &[("Authorization", &bearer)],
            Some(&body.to_string()),
        );
        assert_eq!(answer.status, 400, "{amount} {currency}");
        assert_eq!(
            answer.json()["errors"][0]["field"],
            field,
            "{}",
            answer.text
        );
    }
    assert_eq!(server.create(&agent, "0.50", None).status, 201);
    let body = json!({"account_group_id": GROUP, "cash_amount": "1000", "currency": "jpy"});
    let answer = server.call(
        &agent,
        "POST",
        "/payments/topups",
        &[("Authorization", &bearer)],
        Some(&body.to_string()),
    );
    assert_eq!(answer.status, 201, "{}", answer.text);
    assert_eq!(answer.json()["cash_amount"], "1000");
}

#[test]
fn the_access_log_names_the_client() {
    let server = Server::start(&[]);
    let agent = Server::agent();
    assert_eq!(server.get(&agent, "/payments/topups").status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    let log = loop {
        let log = server.log();
        if log.contains("/payments/topups") || Instant::now() > deadline {
            break log;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let line = log
        .lines()
        .find(|l| l.contains("/payments/topups"))
        .unwrap_or_else(|| panic!("no access log line in {log}"));
    assert!(line.contains("client=127.0.0.1:"), "{line}");
}

#[test]
fn a_token_file_open_to_others_or_a_short_token_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite").display().to_string();
    let token = dir.path().join("token");
    let serve = |token: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_recon"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--db",
                &db,
                "--token-file",
            ])
            .arg(token)
            .env_remove("RECON_DB")
            .output()
            .unwrap()
    };
    write_token(&token, "short-token", 0o600);
    let out = serve(&token);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at least 32"), "{stderr}");
    #[cfg(unix)]
    {
        write_token(&token, TOKEN, 0o644);
        let out = serve(&token);
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("chmod 600"), "{stderr}");
    }
}
