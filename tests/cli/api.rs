//! The top-up HTTP API over real HTTP: the real `recon serve` binary on 127.0.0.1 with a real
//! SQLite file, and the command line on the same database.

use std::process::{Child, Stdio};

use serde_json::{Value, json};

use crate::env::{Env, GROUP, assert_topup_fields, start_serve};

const TOKEN: &str = "api-token-for-tests-0123456789abcdef";

/// A running `recon serve` on the database of its `Env`, killed when dropped.
struct Server {
    env: Env,
    child: Child,
    base: String,
    agent: ureq::Agent,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let env = Env::new();
        let (child, base) = start_serve(&env, TOKEN, extra, Stdio::null());
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Server {
            env,
            child,
            base,
            agent,
        }
    }

    /// (status, headers we care about, JSON body)
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (u16, Value, http_headers::Headers) {
        let url = format!("{}{path}", self.base);
        let mut request = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = match body {
            Some(body) => self
                .agent
                .run(
                    request
                        .header("Content-Type", "application/json")
                        .body(body.to_string())
                        .unwrap(),
                )
                .unwrap(),
            None => self.agent.run(request.body(()).unwrap()).unwrap(),
        };
        let status = response.status().as_u16();
        let headers = http_headers::Headers::from(response.headers());
        let text = response.into_body().read_to_string().unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
        };
        (status, value, headers)
    }

    fn create(&self, amount: &str, key: Option<&str>) -> (u16, Value, http_headers::Headers) {
        let body = json!({"account_group_id": GROUP, "cash_amount": amount, "currency": "EUR"});
        let headers: Vec<(&str, &str)> = key.map(|k| ("Idempotency-Key", k)).into_iter().collect();
        self.call(
            "POST",
            "/payments/topups",
            Some(TOKEN),
            &headers,
            Some(&body.to_string()),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

mod http_headers {
    /// The response headers, by lower-case name.
    pub struct Headers(pub std::collections::HashMap<String, String>);

    impl From<&ureq::http::HeaderMap> for Headers {
        fn from(map: &ureq::http::HeaderMap) -> Self {
            Headers(
                map.iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect(),
            )
        }
    }

    impl Headers {
        pub fn get(&self, name: &str) -> Option<&str> {
            self.0.get(name).map(|s| s.as_str())
        }
    }
}

#[test]
fn create_returns_201_with_the_topup_exactly_as_the_spec_shows_it() {
    let server = Server::start(&[]);
    let (status, topup, headers) = server.create("200", None);
    assert_eq!(status, 201, "{topup}");
    assert_topup_fields(&topup);
    assert_eq!(topup["cash_amount"], "200.00");
    assert_eq!(topup["status"], "CONFIRMED");
    assert_eq!(topup["account_group_id"], GROUP);
    assert_eq!(topup["settlement_reference"], topup["id"]);
    let id = topup["id"].as_str().unwrap();
    assert_eq!(
        headers.get("location"),
        Some(&*format!("/payments/topups/{id}"))
    );
    assert_eq!(headers.get("content-type"), Some("application/json"));

    // Read back over HTTP and from the command line on the same database: the same top-up.
    let (status, again, _) = server.call(
        "GET",
        &format!("/payments/topups/{id}"),
        Some(TOKEN),
        &[],
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(again, topup);
    let shown = server.env.topup(id);
    assert_eq!(shown["status"], "CONFIRMED");
    // Created through the same store code: the confirmed event is in the outbox.
    assert_eq!(
        server
            .env
            .sql_count("SELECT count(*) FROM events WHERE type = 'topup.confirmed'"),
        1
    );
}

#[test]
fn invalid_requests_get_400_with_a_problem_body_naming_each_field() {
    let server = Server::start(&[]);
    let body = json!({"account_group_id": "nope", "cash_amount": "0", "currency": "EURO"});
    let (status, problem, headers) = server.call(
        "POST",
        "/payments/topups",
        Some(TOKEN),
        &[],
        Some(&body.to_string()),
    );
    assert_eq!(status, 400);
    assert_eq!(
        headers.get("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(problem["status"], 400);
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["account_group_id", "currency"]);

    let body = json!({"account_group_id": GROUP, "cash_amount": "1.001", "currency": "EUR"});
    let (status, problem, _) = server.call(
        "POST",
        "/payments/topups",
        Some(TOKEN),
        &[],
        Some(&body.to_string()),
    );
    assert_eq!(status, 400);
    assert_eq!(problem["errors"][0]["field"], "cash_amount");

    // A number for the amount is refused (money is never a float), as is an unknown field.
    for body in [
        r#"{"account_group_id":"1ea60f56-b67b-61fc-829a-0242ac130003","cash_amount":200.5,"currency":"EUR"}"#,
        r#"{"account_group_id":"1ea60f56-b67b-61fc-829a-0242ac130003","cash_amount":"2","currency":"EUR","status":"SETTLED"}"#,
        "not json",
    ] {
        let (status, problem, _) =
            server.call("POST", "/payments/topups", Some(TOKEN), &[], Some(body));
        assert_eq!(status, 400, "{body}");
        assert_eq!(problem["title"], "Bad request body");
    }
    assert_eq!(server.env.sql_count("SELECT count(*) FROM topups"), 0);
}

#[test]
fn every_request_without_the_right_token_gets_401_and_changes_nothing() {
    let server = Server::start(&[]);
    let body =
        json!({"account_group_id": GROUP, "cash_amount": "5", "currency": "EUR"}).to_string();
    for token in [None, Some("wrong"), Some("")] {
        for (method, path, body) in [
            ("POST", "/payments/topups", Some(body.as_str())),
            ("GET", "/payments/topups", None),
            (
                "GET",
                "/payments/topups/1ab4fef9-a097-4c6f-9345-647025d5fde6",
                None,
            ),
            (
                "DELETE",
                "/payments/topups/1ab4fef9-a097-4c6f-9345-647025d5fde6",
                None,
            ),
            ("GET", "/anything-else", None),
        ] {
            let (status, _, headers) = server.call(method, path, token, &[], body);
            assert_eq!(status, 401, "{method} {path} with {token:?}");
            assert!(headers.get("www-authenticate").is_some());
        }
    }
    assert_eq!(server.env.sql_count("SELECT count(*) FROM topups"), 0);
    let (status, health, _) = server.call("GET", "/health", None, &[], None);
    assert_eq!((status, health), (200, json!({"status": "ok"})));
}

#[test]
fn an_idempotency_key_makes_a_retried_create_return_the_same_topup_once() {
    let server = Server::start(&[]);
    let (status, first, _) = server.create("10.50", Some("order-42"));
    assert_eq!(status, 201);
    let (status, again, headers) = server.create("10.50", Some("order-42"));
    assert_eq!(status, 201);
    assert_eq!(again, first);
    assert_eq!(headers.get("idempotent-replayed"), Some("true"));
    assert_eq!(server.env.sql_count("SELECT count(*) FROM topups"), 1);

    // The same key for a different request is refused; a new key creates a second top-up.
    let (status, problem, _) = server.create("11.00", Some("order-42"));
    assert_eq!(status, 422);
    assert_eq!(problem["title"], "Idempotency-Key reused");
    let (status, other, _) = server.create("10.50", Some("order-43"));
    assert_eq!(status, 201);
    assert_ne!(other["id"], first["id"]);
    assert_eq!(server.env.sql_count("SELECT count(*) FROM topups"), 2);
}

#[test]
fn list_pages_through_topups_oldest_first_and_filters_by_status() {
    let server = Server::start(&[]);
    let mut created = Vec::new();
    for i in 0..5 {
        let (status, topup, _) = server.create(&format!("{}.00", i + 1), None);
        assert_eq!(status, 201);
        created.push(topup["id"].as_str().unwrap().to_string());
    }
    let (status, _, _) = server.call(
        "DELETE",
        &format!("/payments/topups/{}", created[2]),
        Some(TOKEN),
        &[],
        None,
    );
    assert_eq!(status, 200);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/payments/topups?limit=2&cursor={c}"),
            None => "/payments/topups?limit=2".to_string(),
        };
        let (status, page, _) = server.call("GET", &path, Some(TOKEN), &[], None);
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|t| t["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let mut expected = created.clone();
    // Created within the same second, they are ordered by id after their creation time.
    expected.sort_by_key(|id| {
        let (_, t, _) = server.call(
            "GET",
            &format!("/payments/topups/{id}"),
            Some(TOKEN),
            &[],
            None,
        );
        (t["created_at"].as_str().unwrap().to_string(), id.clone())
    });
    assert_eq!(seen, expected);

    let (_, page, _) = server.call(
        "GET",
        "/payments/topups?status=CANCELLED",
        Some(TOKEN),
        &[],
        None,
    );
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [created[2].as_str()]);

    for bad in [
        "status=PAID",
        "limit=0",
        "limit=5000",
        "cursor=nope",
        "page=2",
    ] {
        let (status, problem, _) = server.call(
            "GET",
            &format!("/payments/topups?{bad}"),
            Some(TOKEN),
            &[],
            None,
        );
        assert_eq!(status, 400, "{bad}: {problem}");
    }
}

#[test]
fn cancel_is_allowed_once_and_then_409_names_the_current_status() {
    let server = Server::start(&[]);
    let (_, topup, _) = server.create("25", None);
    let path = format!("/payments/topups/{}", topup["id"].as_str().unwrap());
    let (status, cancelled, _) = server.call("DELETE", &path, Some(TOKEN), &[], None);
    assert_eq!(status, 200);
    assert_eq!(cancelled["status"], "CANCELLED");
    let (status, problem, _) = server.call("DELETE", &path, Some(TOKEN), &[], None);
    assert_eq!(status, 409);
    assert_eq!(problem["current_status"], "CANCELLED");
    assert!(problem["detail"].as_str().unwrap().contains("is CANCELLED"));
    assert_eq!(
        server
            .env
            .sql_count("SELECT count(*) FROM events WHERE type = 'topup.cancelled'"),
        1
    );

    let missing = "/payments/topups/00000000-0000-4000-8000-000000000000";
    let (status, _, _) = server.call("DELETE", missing, Some(TOKEN), &[], None);
    assert_eq!(status, 404);
    let (status, _, _) = server.call("GET", "/payments/topups/not-a-uuid", Some(TOKEN), &[], None);
    assert_eq!(status, 400);
}

#[test]
fn a_write_while_another_process_holds_the_database_gets_503_and_nothing_half_done() {
    let server = Server::start(&["--wait", "0"]);
    let (status, _, _) = server.create("1", None);
    assert_eq!(status, 201);
    // Hold the write lock the way a nightly run does.
    let holder = server.env.conn();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let (status, problem, headers) = server.create("2", Some("while-locked"));
    assert_eq!(status, 503, "{problem}");
    assert_eq!(headers.get("retry-after"), Some("5"));
    // Reads still work while the run holds the lock.
    let (status, page, _) = server.call("GET", "/payments/topups", Some(TOKEN), &[], None);
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    holder.execute_batch("COMMIT").unwrap();
    // The retry with the same key now creates it, once.
    let (status, _, _) = server.create("2", Some("while-locked"));
    assert_eq!(status, 201);
    assert_eq!(server.env.sql_count("SELECT count(*) FROM topups"), 2);
}
