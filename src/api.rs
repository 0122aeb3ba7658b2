//! `recon serve`: the small top-up HTTP API. Every request opens the same store the command line
//! uses and calls the same `ops::topups` functions under the same write lock, so the API and a nightly run
//! never settle or cancel the same top-up twice.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::ids::TopUpId;
use crate::ops::{self, topups::CreateError, topups::Created};
use crate::store::{OpenMode, Store, StoreError};
use crate::topup::{NewTopUp, Status};

/// What `recon serve` was told.
pub struct Config {
    pub listen: String,
    pub db: PathBuf,
    pub token: String,
    /// How long a write waits for another writer (a nightly run) before answering 503.
    pub wait: Duration,
}

struct Shared {
    db: PathBuf,
    token_digest: [u8; 32],
    wait: Duration,
}

/// Page size of `GET /payments/topups` unless `limit` says otherwise, and its maximum.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// Binds, prints `listening on http://ADDR` on stdout, and serves until SIGINT or SIGTERM.
pub fn serve(config: Config) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            doing: "starting the HTTP server".to_string(),
            source,
        })?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|e| Error::Usage(format!("cannot listen on {}: {e}", config.listen)))?;
        let address = listener.local_addr().map_err(|source| Error::Io {
            doing: "reading the listening address".to_string(),
            source,
        })?;
        let shared = Arc::new(Shared {
            db: config.db,
            token_digest: Sha256::digest(config.token.as_bytes()).into(),
            wait: config.wait,
        });
        {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            // Scripts and tests read the port from this line when they asked for port 0.
            let _ = writeln!(stdout, "listening on http://{address}");
            let _ = stdout.flush();
        }
        tracing::info!(%address, db = %shared.db.display(), "serving the top-up API");
        axum::serve(listener, router(shared))
            .with_graceful_shutdown(shutdown())
            .await
            .map_err(|source| Error::Io {
                doing: "serving HTTP".to_string(),
                source,
            })
    })
}

fn router(shared: Arc<Shared>) -> Router {
    let protected = Router::new()
        .route("/payments/topups", get(list).post(create))
        .route("/payments/topups/{id}", get(show).delete(cancel))
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "No such resource", None) })
        .layer(middleware::from_fn_with_state(shared.clone(), authenticate));
    Router::new()
        .route("/health", get(health))
        .merge(protected)
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(middleware::from_fn(access_log))
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
    let response = next.run(request).await;
    tracing::info!(%method, path = %crate::text::clip(&path, 200), status = response.status().as_u16(), "request");
    response
}

async fn authenticate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|token| Sha256::digest(token.trim().as_bytes()));
    // Comparing digests, not tokens, keeps the comparison's timing independent of the secret.
    if presented.is_some_and(|digest| digest.as_slice() == shared.token_digest) {
        return next.run(request).await;
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

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// How a store error looks to a client.
fn store_problem(error: StoreError) -> Response {
    match error {
        StoreError::Locked(_) => {
            let mut response = problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database is busy",
                Some("a nightly run or an import holds the database; retry shortly"),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            response
        }
        StoreError::TopUpNotFound(id) => problem(
            StatusCode::NOT_FOUND,
            "No such top-up",
            Some(&format!("no top-up with id {id}")),
        ),
        StoreError::Lifecycle(e) => problem_with(
            StatusCode::CONFLICT,
            "The top-up cannot change to that status",
            Some(&e.to_string()),
            json!({ "current_status": e.from.as_str() }),
        ),
        other => {
            tracing::error!("{other}");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
                Some("the server log has the details"),
            )
        }
    }
}

/// Runs store work on the blocking pool with a freshly opened store.
async fn with_store<F>(shared: &Arc<Shared>, work: F) -> Response
where
    F: FnOnce(&mut Store) -> Result<Response, StoreError> + Send + 'static,
{
    let shared = shared.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut store = Store::open(&shared.db, OpenMode::MustExist, shared.wait)?;
        work(&mut store)
    })
    .await;
    match result {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => store_problem(error),
        Err(join) => {
            tracing::error!("request task failed: {join}");
            problem(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", None)
        }
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

async fn health(State(shared): State<Arc<Shared>>) -> Response {
    with_store(&shared, |store| {
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
    with_store(&shared, move |store| {
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
    with_store(&shared, move |store| {
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

async fn create(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let key = match headers.get("Idempotency-Key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(key)) if (1..=255).contains(&key.len()) => Some(key.to_string()),
        Some(_) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Bad Idempotency-Key",
                Some("the key must be 1 to 255 visible ASCII characters"),
            );
        }
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
    let shared = shared.clone();
    let created = tokio::task::spawn_blocking(move || {
        let open = || Ok(Store::open(&shared.db, OpenMode::MustExist, shared.wait)?);
        ops::topups::create(&request, key.as_deref(), open)
    })
    .await;
    match created {
        Ok(Ok(Created::New(topup))) => {
            let mut response = json_response(StatusCode::CREATED, ops::topups::body(&topup));
            if let Ok(location) = HeaderValue::from_str(&format!("/payments/topups/{}", topup.id)) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Ok(Ok(Created::Replayed { status, body })) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response = json_response(status, body);
            response
                .headers_mut()
                .insert("Idempotent-Replayed", HeaderValue::from_static("true"));
            response
        }
        Ok(Err(CreateError::Invalid(errors))) => {
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
        Ok(Err(CreateError::KeyReused)) => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Idempotency-Key reused",
            Some("this key was used for a different request; use a new key"),
        ),
        Ok(Err(CreateError::Failed(Error::Store(error)))) => store_problem(error),
        Ok(Err(CreateError::Failed(error))) => {
            tracing::error!("{error}");
            problem(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", None)
        }
        Err(join) => {
            tracing::error!("request task failed: {join}");
            problem(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", None)
        }
    }
}

async fn cancel(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return bad_id(e),
    };
    with_store(&shared, move |store| {
        let topup = ops::topups::cancel(store, id)?;
        Ok(json_response(StatusCode::OK, to_json(&topup)))
    })
    .await
}
