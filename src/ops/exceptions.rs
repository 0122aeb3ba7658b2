//! The worklist: the exceptions that stay open until a person resolves them, and the
//! resolutions (settle, return, dismiss, reopen), each audited and announced in one write
//! transaction under the same lock as a run. The command line and the API both resolve
//! through [`resolve_in`].

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use rust_decimal::Decimal;

use crate::ids::TopUpId;
use crate::money::format_amount;
use crate::store::exceptions::{self as store, Exception, Filter, Kind, Resolution, Return};
use crate::store::outbox::{self, EventType};
use crate::store::{Store, StoreError, hints, topups};
use crate::topup::{Status, TopUp, format_timestamp, parse_timestamp};

/// What a listing asks for beyond the store's [`Filter`].
#[derive(Clone, Debug, Default)]
pub struct ListRequest {
    pub filter: Filter,
    pub min_age_days: Option<i64>,
    pub max_age_days: Option<i64>,
    pub min_amount: Option<Decimal>,
    pub max_amount: Option<Decimal>,
}

/// An exception as listed: with its age and the settlement by several payments it may be part
/// of.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub exception: Exception,
    pub age_days: i64,
    pub settles_with: Option<Together>,
}

/// Several open payments of one payer that together pay an open top-up exactly.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Together {
    pub topup_id: String,
    pub amount: String,
    pub currency: String,
    pub transactions: Vec<i64>,
}

/// The exceptions a request wants, oldest first, each with its age at `now`.
pub fn list(
    conn: &Connection,
    request: &ListRequest,
    now: DateTime<Utc>,
) -> Result<Vec<Listed>, StoreError> {
    let mut filter = request.filter.clone();
    if let Some(days) = request.min_age_days {
        filter.opened_until = Some(format_timestamp(now - chrono::Duration::days(days)));
    }
    let found = store::list(conn, &filter)?;
    let together = together(conn, &found)?;
    let mut listed = Vec::with_capacity(found.len());
    for exception in found {
        let age_days = age_days(&exception, now);
        let amount: Option<Decimal> = exception.amount.parse().ok();
        let wanted = request.max_age_days.is_none_or(|max| age_days <= max)
            && request
                .min_amount
                .is_none_or(|min| amount.is_some_and(|a| a >= min))
            && request
                .max_amount
                .is_none_or(|max| amount.is_some_and(|a| a <= max));
        if wanted {
            listed.push(Listed {
                settles_with: together.get(&exception.id).cloned(),
                exception,
                age_days,
            });
        }
    }
    Ok(listed)
}

fn age_days(exception: &Exception, now: DateTime<Utc>) -> i64 {
    parse_timestamp(&exception.opened_at)
        .map(|opened| (now - opened).num_days())
        .unwrap_or(0)
}

/// How many payments of one payer are tried together at most (2^16 sums).
const TOGETHER_MAX: usize = 16;

/// For each open incoming payment among `exceptions`: the open top-up that it pays exactly
/// together with other open payments of the same payer and currency among them (the top-ups
/// tried are those the payments' references name).
fn together(
    conn: &Connection,
    exceptions: &[Exception],
) -> Result<HashMap<i64, Together>, StoreError> {
    let mut groups: BTreeMap<(&str, &str), Vec<&Exception>> = BTreeMap::new();
    let open = exceptions.iter().filter(|e| e.resolution_id.is_none());
    for e in open.filter(|e| settleable(e).is_ok()) {
        if let Some(iban) = e.payer_iban.as_deref() {
            groups.entry((iban, &e.currency)).or_default().push(e);
        }
    }
    let mut found = HashMap::new();
    for members in groups.values_mut().filter(|m| m.len() >= 2) {
        members.truncate(TOGETHER_MAX);
        let ids: Vec<TopUpId> = members
            .iter()
            .filter_map(|e| e.topup_id.as_deref()?.parse().ok())
            .collect();
        let mut candidates: Vec<TopUp> = topups::by_ids(conn, &ids)?.into_values().collect();
        candidates.sort_by_key(|t| (t.created_at, t.id.uuid()));
        for topup in candidates.iter().filter(|t| is_open(t.status)) {
            let amounts: Vec<Option<Decimal>> =
                members.iter().map(|e| e.amount.parse().ok()).collect();
            let Some(subset) = subset_paying(&amounts, topup.cash_amount) else {
                continue;
            };
            let ids: Vec<i64> = subset.iter().map(|i| members[*i].id).collect();
            if ids.iter().any(|id| found.contains_key(id)) {
                continue;
            }
            let suggestion = Together {
                topup_id: topup.id.to_string(),
                amount: topup.cash_amount_text(),
                currency: topup.currency.to_string(),
                transactions: ids.clone(),
            };
            for id in ids {
                found.insert(id, suggestion.clone());
            }
        }
    }
    Ok(found)
}

/// The smallest set of at least two of `amounts` (by position) that sums to `target`.
fn subset_paying(amounts: &[Option<Decimal>], target: Decimal) -> Option<Vec<usize>> {
    let n = amounts.len().min(TOGETHER_MAX);
    (1u32..(1 << n))
        .filter(|mask| mask.count_ones() >= 2)
        .filter(|mask| {
            let sum = (0..n)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| amounts[i])
                .sum::<Option<Decimal>>();
            sum == Some(target)
        })
        .min_by_key(|mask| (mask.count_ones(), *mask))
        .map(|mask| (0..n).filter(|i| mask & (1 << i) != 0).collect())
}

fn is_open(status: Status) -> bool {
    matches!(status, Status::New | Status::Confirmed)
}

/// An open top-up that may be what an exception pays, and why it fits or not.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Candidate {
    pub topup: TopUp,
    pub fits: bool,
    pub why: String,
}

/// One exception with what may resolve it and what was done about it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Shown {
    #[serde(flatten)]
    pub exception: Exception,
    pub age_days: i64,
    pub candidates: Vec<Candidate>,
    pub settles_with: Option<Together>,
    pub history: Vec<Resolution>,
    pub returns: Vec<Return>,
}

/// One exception, its candidate top-ups (the one its reference names, the near misses and
/// likely ones the night's suggestion is made from) and its history.
pub fn show(conn: &Connection, id: i64, now: DateTime<Utc>) -> Result<Shown, StoreError> {
    let exception = find(conn, id)?;
    let mut candidates = Vec::new();
    let named: Option<TopUpId> = exception.topup_id.as_deref().and_then(|t| t.parse().ok());
    if let Some(named) = named {
        let topup = topups::by_ids(conn, &[named])?.remove(&named);
        candidates.extend(topup.map(|t| judge(&exception, t, "its reference names it")));
    }
    for (topup, why) in hinted(conn, &exception)? {
        if candidates.iter().all(|c| c.topup.id != topup.id) {
            candidates.push(judge(&exception, topup, &why));
        }
    }
    let settles_with = match (&exception.payer_iban, exception.status) {
        (Some(iban), "open") => {
            let filter = Filter {
                open: Some(true),
                payer_iban: Some(iban.clone()),
                currency: Some(exception.currency.clone()),
                ..Filter::default()
            };
            let payer = store::list(conn, &filter)?;
            together(conn, &payer)?.remove(&exception.id)
        }
        _ => None,
    };
    let history = store::history(conn, id)?;
    let mut returns = Vec::new();
    for r in history.iter().filter(|r| r.kind == Kind::Return) {
        returns.extend(store::return_of(conn, r.id)?);
    }
    Ok(Shown {
        age_days: age_days(&exception, now),
        exception,
        candidates,
        settles_with,
        history,
        returns,
    })
}

/// The open top-ups the suggestion machinery offers for an exception (near misses of an
/// unknown reference, likely ones of a payment without one), with why.
fn hinted(conn: &Connection, e: &Exception) -> Result<Vec<(TopUp, String)>, StoreError> {
    let (Ok(amount), Ok(currency)) = (e.amount.parse(), e.currency.parse()) else {
        return Ok(Vec::new());
    };
    let reference = e.reference.as_deref().and_then(|r| r.parse().ok());
    let ask = match (e.reason.as_str(), reference) {
        ("UNKNOWN_REFERENCE", Some(reference)) => hints::Ask::Nearest {
            reference,
            amount,
            currency,
        },
        ("NO_REFERENCE", _) => hints::Ask::Likely {
            amount,
            currency,
            payer_groups: hints::payer_groups(conn, e.payer_iban.as_deref(), &[])?,
        },
        _ => return Ok(Vec::new()),
    };
    let answer = hints::answer(conn, &[ask])?.pop().unwrap_or_default();
    let mut found = Vec::new();
    if let Some((topup, edits)) = answer.nearest {
        found.push((
            topup,
            format!("its reference is {edits} edit(s) from the one paid"),
        ));
    }
    for likely in answer.likely {
        let why = match (likely.same_payer, likely.same_amount) {
            (true, true) => "the payer paid this account group before, and the amount is the same",
            (true, false) => "the payer paid this account group before",
            _ => "the amount and currency are the same",
        };
        found.push((likely.topup, why.to_string()));
    }
    Ok(found)
}

/// Whether settling `topup` with this one payment is allowed, and what it would record.
fn judge(e: &Exception, topup: TopUp, found: &str) -> Candidate {
    let (fits, why) = if !is_open(topup.status) {
        (
            false,
            format!(
                "{found}; but it is {}: it cannot be settled again",
                topup.status
            ),
        )
    } else if topup.currency.as_str() != e.currency {
        (
            false,
            format!(
                "{found}; but it is in {}, the payment in {}",
                topup.currency, e.currency
            ),
        )
    } else if let Err(why) = settleable(e) {
        (false, format!("{found}; but {why}"))
    } else {
        let received: Decimal = e.amount.parse().unwrap_or_default();
        let difference = received - topup.cash_amount;
        let what = match difference.cmp(&Decimal::ZERO) {
            std::cmp::Ordering::Equal => "the amount is the same".to_string(),
            std::cmp::Ordering::Less => format!(
                "settling records an underpayment of {}",
                format_amount(-difference, topup.currency)
            ),
            std::cmp::Ordering::Greater => format!(
                "settling records an overpayment of {}",
                format_amount(difference, topup.currency)
            ),
        };
        (true, format!("{found}; open, {what}"))
    };
    Candidate { topup, fits, why }
}

/// Why a payment cannot pay a top-up, if it cannot: only incoming credits that are not
/// reversals can.
fn settleable(e: &Exception) -> Result<(), String> {
    if e.direction != "CRDT" {
        return Err(format!("transaction {} is outgoing money (a debit)", e.id));
    }
    if e.reversal {
        return Err(format!("transaction {} is a reversal", e.id));
    }
    Ok(())
}

/// What a person does about an exception.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Settle this open top-up with the exception (and `with`, other payments of the payer).
    Settle {
        topup: TopUpId,
        with: Vec<i64>,
    },
    /// Send the money back to the payer (a PENDING return).
    Return,
    Dismiss,
    /// Undo the resolution in force; `cancel_exported` also cancels a return already
    /// exported, which the bank has confirmed it did not execute.
    Reopen {
        cancel_exported: bool,
    },
}

/// A resolution asked for: the action, a required note, and who.
#[derive(Clone, Debug)]
pub struct Resolve {
    pub action: Action,
    pub note: String,
    pub by: String,
}

/// What a resolution did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Resolved {
    pub resolution: Resolution,
    pub topup: Option<TopUp>,
    #[serde(rename = "return")]
    pub returned: Option<Return>,
}

/// Resolves exception `id` in a write transaction of its own (see [`resolve_in`]).
pub fn resolve(store: &mut Store, id: i64, request: &Resolve) -> Result<Resolved, StoreError> {
    let tx = store.write()?;
    let resolved = resolve_in(&tx, id, request)?;
    crate::store::commit(tx, "committing the resolution")?;
    Ok(resolved)
}

/// Resolves exception `id` inside a write transaction the caller owns and commits: checks
/// the state allows it (else [`StoreError::Refused`], nothing written), records the
/// resolution with what changed, and writes its events.
pub fn resolve_in(conn: &Connection, id: i64, request: &Resolve) -> Result<Resolved, StoreError> {
    let note = request.note.trim();
    if note.is_empty() {
        return Err(refused("a resolution needs a note saying why"));
    }
    let by = request.by.trim();
    if by.is_empty() {
        return Err(refused(
            "a resolution needs a name in --by (who resolves it)",
        ));
    }
    let exception = find(conn, id)?;
    let now = Utc::now();
    if let Action::Reopen { cancel_exported } = request.action {
        return reopen(conn, &exception, by, note, cancel_exported, now);
    }
    if let Some(resolution) = exception.resolution_id {
        return Err(refused(&format!(
            "exception {id} is already {} (resolution {resolution}); reopen it first",
            exception.status
        )));
    }
    let audit = Audit { by, note, at: now };
    match &request.action {
        Action::Settle { topup, with } => settle(conn, &exception, *topup, with, &audit),
        Action::Return => return_money(conn, &exception, &audit),
        Action::Dismiss => dismiss(conn, &exception, &audit),
        Action::Reopen { .. } => unreachable!("handled above"),
    }
}

/// Who resolves, why and when.
struct Audit<'a> {
    by: &'a str,
    note: &'a str,
    at: DateTime<Utc>,
}

fn refused(message: &str) -> StoreError {
    StoreError::Refused(message.to_string())
}

fn find(conn: &Connection, id: i64) -> Result<Exception, StoreError> {
    store::get(conn, id)?.ok_or(StoreError::ExceptionNotFound(id))
}

/// A resolution made now, or the answer a request with the same idempotency key got before.
pub enum Answer {
    New(Box<Resolved>),
    Replayed {
        status: u16,
        body: String,
    },
    /// The key was used before for another request: nothing was done.
    KeyReused,
}

/// As [`resolve_in`], with the API's idempotency key: the same key with the same request
/// answers the same again without resolving twice; with another request it is refused.
pub fn resolve_keyed_in(
    conn: &Connection,
    id: i64,
    request: &Resolve,
    key: Option<&str>,
) -> Result<Answer, StoreError> {
    use crate::store::idempotency;
    let fingerprint = key.map(|_| fingerprint(id, request));
    if let (Some(key), Some(fingerprint)) = (key, &fingerprint) {
        match idempotency::lookup(conn, key)? {
            Some(stored) if &stored.fingerprint == fingerprint => {
                return Ok(Answer::Replayed {
                    status: stored.status,
                    body: stored.body,
                });
            }
            Some(_) => return Ok(Answer::KeyReused),
            None => {}
        }
    }
    let resolved = resolve_in(conn, id, request)?;
    if let (Some(key), Some(fingerprint)) = (key, &fingerprint) {
        let body = serde_json::to_string(&resolved).expect("plain data serialises");
        idempotency::remember(conn, key, fingerprint, 200, &body, Utc::now())?;
    }
    Ok(Answer::New(Box::new(resolved)))
}

/// The same request is the same exception, action, note and person.
fn fingerprint(id: i64, request: &Resolve) -> String {
    use sha2::{Digest, Sha256};
    let text = format!(
        "resolution\n{id}\n{:?}\n{}\n{}",
        request.action,
        request.note.trim(),
        request.by.trim()
    );
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn settle(
    conn: &Connection,
    first: &Exception,
    topup_id: TopUpId,
    with: &[i64],
    audit: &Audit,
) -> Result<Resolved, StoreError> {
    let mut payments = vec![first.clone()];
    for other in with.iter().filter(|w| **w != first.id) {
        if payments.iter().any(|p| p.id == *other) {
            continue;
        }
        let e = find(conn, *other)?;
        if e.resolution_id.is_some() {
            return Err(refused(&format!(
                "exception {other} is already {}; reopen it first",
                e.status
            )));
        }
        payments.push(e);
    }
    payments.sort_by_key(|p| p.id);
    let topup = topups::by_ids(conn, &[topup_id])?
        .remove(&topup_id)
        .ok_or_else(|| StoreError::TopUpNotFound(topup_id.to_string()))?;
    if !is_open(topup.status) {
        return Err(refused(&format!(
            "top-up {topup_id} is {}: only an open (NEW or CONFIRMED) top-up can be settled",
            topup.status
        )));
    }
    let received = check_payments(&payments, &topup)?;
    let ids: Vec<i64> = payments.iter().map(|p| p.id).collect();
    let before = outbox::balance(
        conn,
        &topup.account_group_id.to_string(),
        topup.currency.as_str(),
    )?
    .unwrap_or_default();
    let difference = received - topup.cash_amount;
    let changes = serde_json::json!({
        "topup_id": topup_id.to_string(),
        "topup_status": { "from": topup.status.as_str(), "to": "SETTLED" },
        "transactions": ids,
        "expected": topup.cash_amount_text(),
        "received": format_amount(received, topup.currency),
        "difference": format_amount(difference, topup.currency),
        "payment": match difference.cmp(&Decimal::ZERO) {
            std::cmp::Ordering::Less => "underpayment",
            std::cmp::Ordering::Equal => "exact",
            std::cmp::Ordering::Greater => "overpayment",
        },
        "cash_balance": {
            "account_group_id": topup.account_group_id.to_string(),
            "currency": topup.currency.as_str(),
            "from": format_amount(before, topup.currency),
            "to": format_amount(before + topup.cash_amount, topup.currency),
        },
    });
    let resolution = store::insert_resolution(
        conn,
        &store::NewResolution {
            kind: Kind::Settle,
            by: audit.by,
            at: audit.at,
            note: audit.note,
            topup: Some((topup_id.to_string(), topup.status.as_str().to_string())),
            changes,
            transactions: &ids,
        },
    )?;
    let settled = topups::settle_by_hand(conn, topup, audit.at, ids[0], received)?;
    Ok(Resolved {
        resolution: resolution_now(conn, resolution)?,
        topup: Some(settled),
        returned: None,
    })
}

/// Checks that the payments may together pay `topup`; returns what they come to.
fn check_payments(payments: &[Exception], topup: &TopUp) -> Result<Decimal, StoreError> {
    let mut received = Decimal::ZERO;
    for p in payments {
        settleable(p).map_err(|why| refused(&format!("{why}: it cannot pay a top-up")))?;
        if p.currency != topup.currency.as_str() {
            return Err(refused(&format!(
                "transaction {} is in {}, top-up {} in {}: the currency differs",
                p.id, p.currency, topup.id, topup.currency
            )));
        }
        received += p
            .amount
            .parse::<Decimal>()
            .map_err(|e| StoreError::Corrupt(format!("exception {} amount: {e}", p.id)))?;
    }
    if payments.len() > 1 {
        let payer = payments[0].payer_iban.as_deref();
        let same = payer.is_some() && payments.iter().all(|p| p.payer_iban.as_deref() == payer);
        if !same {
            return Err(refused(
                "several payments settle one top-up only when they come from the same payer \
                 (the same IBAN), and these do not",
            ));
        }
    }
    Ok(received)
}

fn return_money(conn: &Connection, e: &Exception, audit: &Audit) -> Result<Resolved, StoreError> {
    let (iban, account) = return_address(e)?;
    let creditor = e.payer_name.as_deref().unwrap_or(iban);
    let booked = e.booking_date.as_deref().unwrap_or("");
    // SEPA allows 140 characters of unstructured remittance.
    let remittance: String = format!(
        "Return of your payment of {} {} {booked}",
        e.amount, e.currency
    )
    .trim_end()
    .chars()
    .take(140)
    .collect();
    let resolution = store::insert_resolution(
        conn,
        &store::NewResolution {
            kind: Kind::Return,
            by: audit.by,
            at: audit.at,
            note: audit.note,
            topup: None,
            changes: serde_json::json!({}),
            transactions: &[e.id],
        },
    )?;
    let returned = store::insert_return(
        conn,
        &store::NewReturn {
            resolution,
            tx: e.id,
            amount: &e.amount,
            currency: &e.currency,
            creditor_name: creditor,
            creditor_iban: iban,
            debtor_account: account,
            remittance: &remittance,
            at: audit.at,
        },
    )?;
    let changes = serde_json::json!({
        "return_id": returned.id,
        "end_to_end_id": returned.end_to_end_id,
        "status": "PENDING",
        "amount": returned.amount,
        "currency": returned.currency,
        "creditor_name": returned.creditor_name,
        "creditor_iban": returned.creditor_iban,
        "debtor_account": returned.debtor_account,
    });
    store::set_changes(conn, resolution, &changes)?;
    announce(
        conn,
        EventType::ExceptionReturned,
        e,
        resolution,
        audit,
        Some(&changes),
    )?;
    Ok(Resolved {
        resolution: resolution_now(conn, resolution)?,
        topup: None,
        returned: Some(returned),
    })
}

/// Where a return goes and is paid from: the payer's IBAN and our account it arrived on; a
/// payment recon cannot send back in a SEPA credit transfer is refused, saying why.
fn return_address(e: &Exception) -> Result<(&str, &str), StoreError> {
    let outside = "pay it back outside recon and dismiss the exception with a note";
    if e.direction != "CRDT" || e.reversal {
        return Err(refused(&format!(
            "transaction {} is not an incoming credit: only money received can be returned",
            e.id
        )));
    }
    let Some(iban) = e.payer_iban.as_deref().filter(|i| !i.trim().is_empty()) else {
        return Err(refused(&format!(
            "transaction {} has no payer IBAN: recon cannot address a return; {outside}",
            e.id
        )));
    };
    if !iban_is_valid(iban) {
        return Err(refused(&format!(
            "transaction {}'s payer account {iban:?} is not a valid IBAN: recon cannot address \
             a return; {outside}",
            e.id
        )));
    }
    if e.currency != "EUR" {
        return Err(refused(&format!(
            "transaction {} is in {}: a return is a SEPA credit transfer, in EUR only; {outside}",
            e.id, e.currency
        )));
    }
    let Some(account) = e.account.as_deref().filter(|a| !a.trim().is_empty()) else {
        return Err(refused(&format!(
            "transaction {} names no account it arrived on, to pay the return from",
            e.id
        )));
    };
    Ok((iban, account))
}

/// An IBAN's shape and ISO 7064 check digits (mod 97), spaces aside.
fn iban_is_valid(text: &str) -> bool {
    let iban: Vec<u8> = text.bytes().filter(|b| *b != b' ').collect();
    let shaped = (15..=34).contains(&iban.len())
        && iban[..2].iter().all(u8::is_ascii_uppercase)
        && iban[2..4].iter().all(u8::is_ascii_digit)
        && iban
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !shaped {
        return false;
    }
    let rearranged = iban[4..].iter().chain(&iban[..4]);
    let remainder = rearranged.fold(0u32, |acc, b| match b {
        b'0'..=b'9' => (acc * 10 + u32::from(b - b'0')) % 97,
        _ => (acc * 100 + u32::from(b - b'A' + 10)) % 97,
    });
    remainder == 1
}

fn dismiss(conn: &Connection, e: &Exception, audit: &Audit) -> Result<Resolved, StoreError> {
    let resolution = store::insert_resolution(
        conn,
        &store::NewResolution {
            kind: Kind::Dismiss,
            by: audit.by,
            at: audit.at,
            note: audit.note,
            topup: None,
            changes: serde_json::json!({ "reason": e.reason }),
            transactions: &[e.id],
        },
    )?;
    announce(
        conn,
        EventType::ExceptionDismissed,
        e,
        resolution,
        audit,
        None,
    )?;
    Ok(Resolved {
        resolution: resolution_now(conn, resolution)?,
        topup: None,
        returned: None,
    })
}

fn reopen(
    conn: &Connection,
    e: &Exception,
    by: &str,
    note: &str,
    cancel_exported: bool,
    now: DateTime<Utc>,
) -> Result<Resolved, StoreError> {
    let Some(id) = e.resolution_id else {
        return Err(refused(&format!(
            "exception {} is open: there is no resolution to reopen",
            e.id
        )));
    };
    let resolution = resolution_now(conn, id)?;
    let mut topup = None;
    let mut returned = None;
    match resolution.kind {
        Kind::Settle => {
            let (Some(t), Some(before)) = (&resolution.topup_id, &resolution.topup_status_before)
            else {
                return Err(StoreError::Corrupt(format!(
                    "resolution {id} names no top-up"
                )));
            };
            let t: TopUpId = t.parse().map_err(|e| StoreError::Corrupt(format!("{e}")))?;
            let before: Status = before
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("{e}")))?;
            topup = Some(topups::unsettle(conn, t, before, now)?);
        }
        Kind::Return => {
            let r = store::return_of(conn, id)?
                .ok_or_else(|| StoreError::Corrupt(format!("resolution {id} has no return")))?;
            match r.status.as_str() {
                "PENDING" => {}
                "EXPORTED" if cancel_exported => {}
                "EXPORTED" => {
                    return Err(refused(&format!(
                        "return {} was exported to the bank at {}: it may be paid. Reopen it \
                         only once the bank confirms it did not execute it, with \
                         --cancel-exported",
                        r.end_to_end_id,
                        r.exported_at.as_deref().unwrap_or("?")
                    )));
                }
                status => {
                    return Err(refused(&format!(
                        "return {} is {status}: the money went back, it cannot be reopened",
                        r.end_to_end_id
                    )));
                }
            }
            store::set_return_status(conn, r.id, &r.status, "CANCELLED", now, None)?;
            returned = store::return_of(conn, id)?;
        }
        Kind::Dismiss => {}
    }
    store::reopen(conn, id, by, now, note)?;
    let audit = Audit { by, note, at: now };
    let what = serde_json::json!({
        "kind": resolution.kind,
        "transactions": resolution.transactions,
        "topup": topup.as_ref().map(|t| serde_json::json!({"id": t.id.to_string(), "status": t.status.as_str()})),
        "return": returned.as_ref().map(|r| serde_json::json!({"end_to_end_id": r.end_to_end_id, "status": r.status})),
    });
    announce(
        conn,
        EventType::ExceptionReopened,
        e,
        id,
        &audit,
        Some(&what),
    )?;
    Ok(Resolved {
        resolution: resolution_now(conn, id)?,
        topup,
        returned,
    })
}

fn resolution_now(conn: &Connection, id: i64) -> Result<Resolution, StoreError> {
    store::resolution(conn, id)?
        .ok_or_else(|| StoreError::Corrupt(format!("resolution {id} vanished")))
}

/// An event of the worklist about exception `e`.
fn announce(
    conn: &Connection,
    kind: EventType,
    e: &Exception,
    resolution: i64,
    audit: &Audit,
    details: Option<&serde_json::Value>,
) -> Result<(), StoreError> {
    let mut payload = serde_json::json!({
        "account_group_id": e.account_group_id.clone().unwrap_or_default(),
        "exception_id": e.id,
        "resolution_id": resolution,
        "reason": e.reason,
        "amount": e.amount,
        "currency": e.currency,
        "by": audit.by,
        "note": audit.note,
        "at": format_timestamp(audit.at),
    });
    if let (Some(map), Some(details)) = (payload.as_object_mut(), details) {
        map.insert("details".to_string(), details.clone());
    }
    outbox::record(conn, kind, audit.at, &payload)
}

/// Who resolves when `--by` is not given: the OS user, else `unknown`.
pub fn default_by() -> String {
    ["USER", "USERNAME", "LOGNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ibans_are_checked_by_their_check_digits() {
        assert!(iban_is_valid("DE89370400440532013000"));
        assert!(iban_is_valid("DE89 3704 0044 0532 0130 00"));
        assert!(iban_is_valid("FR1420041010050500013M02606"));
        assert!(!iban_is_valid("DE89370400440532013001"));
        assert!(!iban_is_valid("de89370400440532013000"));
        assert!(!iban_is_valid("DE8937"));
    }

    #[test]
    fn the_smallest_set_of_payments_that_pays_a_topup_is_found() {
        let d = |t: &str| Some(t.parse::<Decimal>().unwrap());
        let amounts = [d("60.00"), d("15.00"), d("40.00"), d("25.00"), None];
        assert_eq!(
            subset_paying(&amounts, "100.00".parse().unwrap()),
            Some(vec![0, 2])
        );
        assert_eq!(
            subset_paying(&amounts, "40.00".parse().unwrap()),
            Some(vec![1, 3])
        );
        assert_eq!(subset_paying(&amounts, "1.00".parse().unwrap()), None);
    }
}
