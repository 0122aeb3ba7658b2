//! `recon serve`: the small top-up HTTP API, built as a single-writer database service. Reads
//! go to a small pool of read-only connections; creates and cancels queue for the one writer
//! thread, which commits them in groups through the same `ops::topups` functions the command
//! line uses, under the same write lock, so the API and a nightly run never settle or cancel the
//! same top-up twice. The server's limits (timeouts, connections, rate limits) live in
//! [`server`], the group commit in [`writer`].

mod readers;
pub mod server;
mod worklist;
mod writer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use crate::error::Error;
use crate::ids::TopUpId;
use crate::ops::{self, topups::CreateError, topups::Created};
use crate::store::{OpenMode, Store, StoreError};
use crate::topup::{NewTopUp, Status};

pub use server::Limits;
use server::RateLimits;
use writer::{Refused, Write, Writer, Written};

/// What `recon serve` was told.
pub struct Config {
    pub listen: String,
    pub db: PathBuf,
    pub token: String,
    /// How long a write waits for another writer (a nightly run) before answering 503.
    pub wait: Duration,
    pub limits: Limits,
}

struct Shared {
    readers: readers::Readers,
    writer: Writer,
    token_digest: [u8; 32],
    wait: Duration,
    rate_limits: Arc<RateLimits>,
}

/// Page size of `GET /payments/topups` unless `limit` says otherwise, and its maximum.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;
/// Largest request body.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The warning for a server that others can reach over plain HTTP, if it is one.
pub fn plain_http_warning(address: SocketAddr) -> Option<String> {
    (!address.ip().is_loopback()).then(|| {
        format!(
            "listening on {address}, beyond this machine, over plain HTTP: tokens and top-ups \
             travel unencrypted; listen on 127.0.0.1 behind a TLS-terminating proxy instead"
        )
    })
}

/// Binds, prints `listening on http://ADDR` on stdout, and serves until SIGINT or SIGTERM.
pub fn serve(config: Config) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            doing: "starting the HTTP server".to_string(),
            source,
        })?;
    // The writer opens the database first and keeps it open, so its WAL files are there for
    // the read-only connections.
    let store = Store::open(&config.db, OpenMode::MustExist, writer::LOCK_POLL)?;
    let (writer, writer_thread) = Writer::start(store, config.wait)?;
    let readers = readers::Readers::open(&config.db, readers::READERS)?;
    let rate_limits = Arc::new(RateLimits::default());
    let shared = Arc::new(Shared {
        readers,
        writer,
        token_digest: Sha256::digest(config.token.as_bytes()).into(),
        wait: config.wait,
        rate_limits: rate_limits.clone(),
    });
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|e| Error::Usage(format!("cannot listen on {}: {e}", config.listen)))?;
        let address = listener.local_addr().map_err(|source| Error::Io {
            doing: "reading the listening address".to_string(),
            source,
        })?;
        {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            // Scripts and tests read the port from this line when they asked for port 0.
            let _ = writeln!(stdout, "listening on http://{address}");
            let _ = stdout.flush();
        }
        if let Some(warning) = plain_http_warning(address) {
            tracing::warn!("{warning}");
        }
        tracing::info!(%address, db = %config.db.display(), "serving the top-up API");
        let app = router(shared, &config.limits);
        server::run(listener, app, &config.limits, rate_limits, shutdown()).await;
        Ok(())
    });
    // The router (and with it the last writer handle) is gone: the writer answers what it has
    // queued and stops.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if writer_thread.join().is_err() {
        tracing::error!("the API's writer thread panicked");
    }
    served
}

fn router(shared: Arc<Shared>, limits: &Limits) -> Router {
    let protected = Router::new()
        .route("/payments/topups", get(list).post(create))
        .route("/payments/topups/{id}", get(show).delete(cancel))
        .route("/exceptions", get(worklist::list))
        .route("/exceptions/{id}", get(worklist::show))
        .route(
            "/exceptions/{id}/resolution",
            axum::routing::post(worklist::resolve),
        )
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "No such resource", None) })
        .layer(middleware::from_fn_with_state(shared.clone(), authenticate));
    Router::new()
        .route("/health", get(health))
        .merge(protected)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            server::MAX_IN_FLIGHT,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(middleware::from_fn(problems_only))
        .layer(middleware::from_fn(access_log))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .with_state(shared)
}

async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down");
}

async fn access_log(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let client = server::client(&request);
    let response = next.run(request).await;
    tracing::info!(
        client = %client.map(|c| c.to_string()).unwrap_or_default(),
        %method,
        path = %crate::text::clip(&path, 200),
        status = response.status().as_u16(),
        "request"
    );
    response
}

/// Every error answer is an RFC 9457 problem: those the framework and the layers make (404,
/// 405, 408, 413, 415, ...) are rewritten into one, keeping their headers (`Allow`, ...).
async fn problems_only(request: Request, next: Next) -> Response {
    let sent_body = has_body(&request);
    let mut response = next.run(request).await;
    let unread = [
        StatusCode::UNAUTHORIZED,
        StatusCode::NOT_FOUND,
        StatusCode::METHOD_NOT_ALLOWED,
        StatusCode::REQUEST_TIMEOUT,
        StatusCode::PAYLOAD_TOO_LARGE,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        StatusCode::TOO_MANY_REQUESTS,
    ];
    if sent_body && unread.contains(&response.status()) {
        close_after(&mut response);
    }
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/problem+json");
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let said = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let said = String::from_utf8_lossy(&said);
    let detail = match status {
        StatusCode::NOT_FOUND => "no such path".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => {
            "this path does not take that method (the Allow header lists those it takes)"
                .to_string()
        }
        StatusCode::REQUEST_TIMEOUT => "the request was not read, done and answered within the \
             server's request timeout; retry (a create with the same Idempotency-Key)"
            .to_string(),
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("the body is larger than {} KiB", MAX_BODY_BYTES / 1024)
        }
        _ => crate::text::clip(said.trim(), 200),
    };
    let title = status.canonical_reason().unwrap_or("Error");
    let mut rewritten = problem(status, title, (!detail.is_empty()).then_some(&*detail));
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().append(name, value.clone());
        }
    }
    rewritten
}

/// Whether the client announced a body (which an early answer may leave unread).
fn has_body(request: &Request) -> bool {
    let headers = request.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// Asks the client not to send another request on this connection: an error answered before
/// the body was read leaves the rest of it in the connection, which is then closed.
fn close_after(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
}

/// The token of an `Authorization` header: the scheme `Bearer` in any case, then the token.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn authenticate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .map(|token| Sha256::digest(token.as_bytes()));
    // Comparing digests, not tokens, keeps the comparison's timing independent of the secret.
    if presented.is_some_and(|digest| digest.as_slice() == shared.token_digest) {
        return next.run(request).await;
    }
    if let Some(client) = server::client(&request)
        && let Err(wait) = shared.rate_limits.failed_auth(client.ip())
    {
        return too_many(
            wait,
            "too many requests with a missing or wrong token from this address",
        );
    }
    let mut response = problem(
        StatusCode::UNAUTHORIZED,
        "Missing or wrong bearer token",
        Some("send Authorization: Bearer <token> with the token from the server's token file"),
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"recon\""),
    );
    response
}

/// 429 with `Retry-After` in whole seconds (at least one).
fn too_many(wait: Duration, detail: &str) -> Response {
    let mut response = problem(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests",
        Some(&format!("{detail}; retry after the time Retry-After gives")),
    );
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

/// An RFC 9457 problem body.
fn problem(status: StatusCode, title: &str, detail: Option<&str>) -> Response {
    problem_with(status, title, detail, json!({}))
}

fn problem_with(status: StatusCode, title: &str, detail: Option<&str>, extra: Value) -> Response {
    let mut body = json!({ "type": "about:blank", "title": title, "status": status.as_u16() });
    if let Some(detail) = detail {
        body["detail"] = json!(detail);
    }
    if let (Some(map), Some(more)) = (body.as_object_mut(), extra.as_object()) {
        map.extend(more.clone());
    }
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// The stored answer to an earlier request with the same Idempotency-Key, marked as replayed.
fn replayed(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = json_response(status, body);
    response
        .headers_mut()
        .insert("Idempotent-Replayed", HeaderValue::from_static("true"));
    response
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// How a store error looks to a client.
fn store_problem(error: StoreError) -> Response {
    match error {
        StoreError::TopUpNotFound(id) => problem(
            StatusCode::NOT_FOUND,
            "No such top-up",
            Some(&format!("no top-up with id {id}")),
        ),
        StoreError::ExceptionNotFound(id) => problem(
            StatusCode::NOT_FOUND,
            "No such exception",
            Some(&format!("no exception with id {id}")),
        ),
        StoreError::Refused(why) => problem(
            StatusCode::CONFLICT,
            "The exception cannot be resolved so",
            Some(&why),
        ),
        StoreError::Lifecycle(e) => problem_with(
            StatusCode::CONFLICT,
            "The top-up cannot change to that status",
            Some(&e.to_string()),
            json!({ "current_status": e.from.as_str() }),
        ),
        other => internal(&other),
    }
}

fn internal(error: &dyn std::fmt::Display) -> Response {
    tracing::error!("{error}");
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal error",
        Some("the server log has the details"),
    )
}

/// 503 with `Retry-After` for a write that was not attempted, saying why.
fn refused(shared: &Shared, why: Refused) -> Response {
    let (detail, retry_after) = match why {
        Refused::Locked => (
            format!(
                "another process (a nightly run, an import or a command-line change) held the \
                 database's write lock for the {} s this server waits; nothing was changed; retry \
                 later",
                shared.wait.as_secs_f64()
            ),
            "5",
        ),
        Refused::QueueFull => (
            format!(
                "{} writes are already waiting for the database; nothing was changed; retry shortly",
                writer::MAX_QUEUED
            ),
            "1",
        ),
        Refused::Stopping => (
            "the server is stopping; nothing was changed; retry when it is back".to_string(),
            "5",
        ),
    };
    let mut response = problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "The database is busy",
        Some(&detail),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static(retry_after));
    response
}

/// Runs a read on one of the read-only connections.
async fn with_reader<F>(shared: &Arc<Shared>, work: F) -> Response
where
    F: FnOnce(&Store) -> Result<Response, StoreError> + Send + 'static,
{
    match shared.readers.read(work).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => store_problem(error),
        Err(failed) => internal(&failed),
    }
}

fn parse_id(text: &str) -> Result<TopUpId, crate::ids::BadUuid> {
    text.parse()
}

fn bad_id(error: crate::ids::BadUuid) -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "Bad top-up id",
        Some(&error.to_string()),
    )
}

async fn health(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
) -> Response {
    if let Err(wait) = shared.rate_limits.health(client.ip()) {
        return too_many(wait, "too many health checks from this address");
    }
    with_reader(&shared, |store| {
        store
            .conn()
            // Reads one row, not a count: a health check must not scan millions of top-ups.
            .query_row(
                "SELECT count(*) FROM (SELECT 1 FROM topups LIMIT 1)",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(|source| StoreError::Sqlite {
                doing: "checking health",
                source,
            })?;
        Ok(json_response(
            StatusCode::OK,
            json!({"status": "ok"}).to_string(),
        ))
    })
    .await
}

async fn show(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return bad_id(e),
    };
    with_reader(&shared, move |store| {
        let record = ops::topups::show(store, id)?;
        Ok(json_response(StatusCode::OK, to_json(&record.topup)))
    })
    .await
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Bad query",
                Some(&format!(
                    "the query takes status, limit (1 to 1000) and cursor: {}",
                    e.body_text()
                )),
            );
        }
    };
    let status = match query
        .status
        .as_deref()
        .map(str::parse::<Status>)
        .transpose()
    {
        Ok(status) => status,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "Bad status", Some(&e.to_string())),
    };
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return problem(
            StatusCode::BAD_REQUEST,
            "Bad limit",
            Some("limit must be between 1 and 1000"),
        );
    }
    let after = match query.cursor.as_deref().map(parse_id).transpose() {
        Ok(after) => after,
        Err(e) => return bad_id(e),
    };
    with_reader(&shared, move |store| {
        let (items, more) = match ops::topups::page(store, status, after, limit) {
            Ok(page) => page,
            Err(StoreError::TopUpNotFound(_)) => {
                return Ok(problem(
                    StatusCode::BAD_REQUEST,
                    "Bad cursor",
                    Some("the cursor names no top-up; start again without one"),
                ));
            }
            Err(e) => return Err(e),
        };
        let next = more
            .then(|| items.last().map(|t| t.id.to_string()))
            .flatten();
        Ok(json_response(
            StatusCode::OK,
            json!({ "items": items, "next_cursor": next }).to_string(),
        ))
    })
    .await
}

/// The request's `Idempotency-Key`, if it has one; `Err` when it is malformed (answered by
/// [`bad_idempotency_key`]).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ()> {
    match headers.get("Idempotency-Key").map(|v| v.to_str()) {
        None => Ok(None),
        Some(Ok(key)) if (1..=255).contains(&key.len()) => Ok(Some(key.to_string())),
        Some(_) => Err(()),
    }
}

fn bad_idempotency_key() -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "Bad Idempotency-Key",
        Some("the key must be 1 to 255 visible ASCII characters"),
    )
}

async fn create(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(key) = idempotency_key(&headers) else {
        return bad_idempotency_key();
    };
    let request: NewTopUp = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Bad request body",
                Some(&format!(
                    "expected a JSON object with the strings account_group_id, cash_amount and \
                     currency: {e}"
                )),
            );
        }
    };
    let request = match request.validate() {
        Ok(request) => request,
        Err(errors) => return invalid(&errors),
    };
    let created = match shared.writer.write(Write::Create { request, key }).await {
        Ok(Written::Created(created)) => created,
        Ok(Written::Cancelled(_) | Written::Resolved(_)) => {
            unreachable!("a create is answered as created")
        }
        Err(why) => return refused(&shared, why),
    };
    match created {
        Ok(Created::New(topup)) => {
            let mut response = json_response(StatusCode::CREATED, ops::topups::body(&topup));
            if let Ok(location) = HeaderValue::from_str(&format!("/payments/topups/{}", topup.id)) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Ok(Created::Replayed { status, body }) => replayed(status, body),
        Err(CreateError::Invalid(errors)) => invalid(&errors),
        Err(CreateError::KeyReused) => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Idempotency-Key reused",
            Some("this key was used for a different request; use a new key"),
        ),
        Err(CreateError::Failed(Error::Store(error))) => store_problem(error),
        Err(CreateError::Failed(error)) => internal(&error),
    }
}

fn invalid(errors: &[crate::topup::FieldError]) -> Response {
    let detail = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ");
    problem_with(
        StatusCode::BAD_REQUEST,
        "Invalid top-up",
        Some(&detail),
        json!({ "errors": errors }),
    )
}

async fn cancel(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return bad_id(e),
    };
    match shared.writer.write(Write::Cancel(id)).await {
        Ok(Written::Cancelled(Ok(topup))) => json_response(StatusCode::OK, to_json(&topup)),
        Ok(Written::Cancelled(Err(error))) => store_problem(error),
        Ok(Written::Created(_) | Written::Resolved(_)) => {
            unreachable!("a cancel is answered as cancelled")
        }
        Err(why) => refused(&shared, why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_beyond_loopback_over_plain_http_is_warned_about() {
        for quiet in ["127.0.0.1:8080", "[::1]:8080"] {
            assert_eq!(plain_http_warning(quiet.parse().unwrap()), None, "{quiet}");
        }
        for loud in ["0.0.0.0:8080", "192.168.1.5:8080", "[::]:8080"] {
            let warning = plain_http_warning(loud.parse().unwrap()).unwrap();
            assert!(warning.contains("plain HTTP"), "{warning}");
        }
    }

    #[test]
    fn the_bearer_scheme_is_read_in_any_case() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc "), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }
}
