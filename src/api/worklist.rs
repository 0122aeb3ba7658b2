//! The worklist over HTTP: `GET /exceptions` (the filters of `recon exceptions list`, a page at
//! a time), `GET /exceptions/{id}`, and `POST /exceptions/{id}/resolution`, which goes through
//! the one writer and `ops::exceptions` like a create, with the same idempotency keys.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::writer::{Write, Written};
use super::{
    DEFAULT_PAGE, MAX_PAGE, Shared, json_response, problem, refused, replayed, store_problem,
    with_reader,
};
use crate::ops::exceptions::{self, Action, Answer, ListRequest, Resolve};
use crate::store::exceptions::Filter;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    status: Option<String>,
    reason: Option<String>,
    currency: Option<String>,
    min_age_days: Option<i64>,
    max_age_days: Option<i64>,
    account_group: Option<String>,
    min_amount: Option<rust_decimal::Decimal>,
    max_amount: Option<rust_decimal::Decimal>,
    limit: Option<usize>,
    cursor: Option<i64>,
}

fn bad_query(detail: &str) -> Response {
    problem(StatusCode::BAD_REQUEST, "Bad query", Some(detail))
}

pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => {
            return bad_query(&format!(
                "the query takes status, reason, currency, min_age_days, max_age_days, \
                 account_group, min_amount, max_amount, limit and cursor: {}",
                e.body_text()
            ));
        }
    };
    let open = match q.status.as_deref().unwrap_or("open") {
        "open" => Some(true),
        "resolved" => Some(false),
        "all" => None,
        _ => return bad_query("status is open, resolved or all"),
    };
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return bad_query("limit must be between 1 and 1000");
    }
    let request = ListRequest {
        filter: Filter {
            open,
            reason: q.reason.map(|r| r.to_ascii_uppercase()),
            currency: q.currency.map(|c| c.to_ascii_uppercase()),
            account_group_id: q.account_group.map(|g| g.to_ascii_lowercase()),
            after: q.cursor,
            ..Filter::default()
        },
        min_age_days: q.min_age_days,
        max_age_days: q.max_age_days,
        min_amount: q.min_amount,
        max_amount: q.max_amount,
    };
    with_reader(&shared, move |store| {
        let mut items = exceptions::list(store.conn(), &request, chrono::Utc::now())?;
        let more = items.len() > limit;
        items.truncate(limit);
        let next = more.then(|| items.last().map(|l| l.exception.id)).flatten();
        Ok(json_response(
            StatusCode::OK,
            json!({ "items": items, "next_cursor": next }).to_string(),
        ))
    })
    .await
}

fn parse_id(text: &str) -> Option<i64> {
    text.parse().ok()
}

fn bad_id() -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "Bad exception id",
        Some("an exception's id is its ledger id, a whole number"),
    )
}

pub(super) async fn show(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let Some(id) = parse_id(&id) else {
        return bad_id();
    };
    with_reader(&shared, move |store| {
        let shown = exceptions::show(store.conn(), id, chrono::Utc::now())?;
        Ok(json_response(StatusCode::OK, super::to_json(&shown)))
    })
    .await
}

/// The body of `POST /exceptions/{id}/resolution`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    kind: String,
    note: String,
    by: Option<String>,
    topup_id: Option<String>,
    #[serde(default)]
    with: Vec<i64>,
    #[serde(default)]
    cancel_exported: bool,
}

fn bad_body(detail: &str) -> Response {
    problem(StatusCode::BAD_REQUEST, "Bad request body", Some(detail))
}

/// The action a body asks for, or what is wrong with it.
fn action(body: &Body) -> Result<Action, String> {
    let needs_no_topup = || match body.topup_id.is_some() || !body.with.is_empty() {
        true => Err("topup_id and with are only for kind settle".to_string()),
        false => Ok(()),
    };
    match body.kind.as_str() {
        "settle" => {
            let topup = body
                .topup_id
                .as_deref()
                .ok_or("kind settle needs topup_id, the open top-up to settle")?
                .parse()
                .map_err(|e| format!("topup_id: {e}"))?;
            Ok(Action::Settle {
                topup,
                with: body.with.clone(),
            })
        }
        "return" => needs_no_topup().map(|_| Action::Return),
        "dismiss" => needs_no_topup().map(|_| Action::Dismiss),
        "reopen" => needs_no_topup().map(|_| Action::Reopen {
            cancel_exported: body.cancel_exported,
        }),
        _ => Err("kind is settle, return, dismiss or reopen".to_string()),
    }
}

pub(super) async fn resolve(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(id) = parse_id(&id) else {
        return bad_id();
    };
    let Ok(key) = super::idempotency_key(&headers) else {
        return super::bad_idempotency_key();
    };
    let body: Body = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => {
            return bad_body(&format!(
                "expected a JSON object with kind, note, and by, topup_id, with, \
                 cancel_exported where they apply: {e}"
            ));
        }
    };
    let action = match action(&body) {
        Ok(action) => action,
        Err(why) => return bad_body(&why),
    };
    let request = Resolve {
        action,
        note: body.note,
        by: body.by.unwrap_or_else(|| "api".to_string()),
    };
    let answer = match shared
        .writer
        .write(Write::Resolve { id, request, key })
        .await
    {
        Ok(Written::Resolved(answer)) => answer,
        Ok(_) => unreachable!("a resolution is answered as resolved"),
        Err(why) => return refused(&shared, why),
    };
    match answer {
        Ok(Answer::New(resolved)) => json_response(StatusCode::OK, super::to_json(&*resolved)),
        Ok(Answer::Replayed { status, body }) => replayed(status, body),
        Ok(Answer::KeyReused) => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Idempotency-Key reused",
            Some("this key was used for a different request; use a new key"),
        ),
        Err(error) => store_problem(error),
    }
}
