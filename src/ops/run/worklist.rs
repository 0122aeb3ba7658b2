//! The worklist a night's report carries: the exceptions the run opens, those still open from
//! earlier nights by age, and the resolutions since the previous run, read inside the run's
//! transaction (it holds the write lock: no resolution changes them meanwhile).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use rust_decimal::Decimal;

use crate::error::Error;
use crate::matching::{Category, Outcome};
use crate::money::Currency;
use crate::report::summary::{
    CarriedException, OutcomeKey, OutcomeTotal, ResolvedLine, WORKLIST_OLDEST, WORKLIST_RESOLVED,
    Worklist, WorklistBucket,
};
use crate::store::{StoreError, exceptions, runs};
use crate::topup::parse_timestamp;

/// The age spans of the carried-over exceptions, in whole days: 0–1, 2–7, 8–30, over 30.
const SPANS: [(i64, Option<i64>); 4] = [(0, Some(1)), (2, Some(7)), (8, Some(30)), (31, None)];

/// The worklist as a run started at `as_of` finds it; `opened` are the run's own totals.
pub(super) fn worklist(
    conn: &Connection,
    as_of: DateTime<Utc>,
    opened: &BTreeMap<OutcomeKey, OutcomeTotal>,
) -> Result<Worklist, Error> {
    // A reversal takes money back out: its sums are kept apart from the payments that came in.
    let out = |reason: &str| reason == Outcome::Reversal.as_str();
    let mut new = WorklistBucket::default();
    for (outcome, total) in opened {
        if outcome.0.category() != Category::Unmatched {
            continue;
        }
        for (currency, t) in &total.by_currency {
            new.count += t.count;
            let side = if out(outcome.0.as_str()) {
                &mut new.money_out
            } else {
                &mut new.money_in
            };
            let slot = side.entry(*currency).or_default();
            slot.count += t.count;
            slot.sum += t.sum;
        }
    }
    let mut carried_over: Vec<WorklistBucket> = SPANS
        .iter()
        .map(|&(from_days, to_days)| WorklistBucket {
            from_days,
            to_days,
            ..WorklistBucket::default()
        })
        .collect();
    let mut oldest = Vec::new();
    // The run's own exceptions are recorded after this: every open one is from earlier nights.
    exceptions::for_each_open(conn, &mut |open| {
        let bad = |what: &str| StoreError::Corrupt(format!("exception {}: {what}", open.id));
        let opened = parse_timestamp(open.opened_at).map_err(|_| bad("its opening time"))?;
        let amount: Decimal = open.amount.parse().map_err(|_| bad("its amount"))?;
        let currency: Currency = open.currency.parse().map_err(|_| bad("its currency"))?;
        let age_days = (as_of - opened).num_days().max(0);
        let bucket = carried_over
            .iter_mut()
            .rfind(|b| b.from_days <= age_days)
            .expect("the first span starts at 0");
        bucket.add(currency, amount, out(open.reason));
        if oldest.len() < WORKLIST_OLDEST {
            oldest.push(CarriedException {
                id: open.id,
                opened_at: open.opened_at.to_string(),
                age_days,
                reason: open.reason.to_string(),
                amount,
                currency,
            });
        }
        Ok(())
    })?;
    let previous = runs::previous(conn)?;
    let (after, reopened_from) = match &previous {
        Some(p) => (
            exceptions::resolutions_seen_by(conn, &p.id)?,
            Some(crate::topup::format_timestamp(p.started_at)),
        ),
        None => (None, None),
    };
    let resolutions_seen = exceptions::last_resolution(conn)?;
    let all = exceptions::resolved_since(conn, after, reopened_from.as_deref())?;
    let resolved_count = all.len();
    let resolved = all
        .into_iter()
        .take(WORKLIST_RESOLVED)
        .map(
            |(resolution, kind, by, at, note, reopened_by, reopened_at, exceptions)| ResolvedLine {
                resolution,
                kind,
                by,
                at,
                note,
                exceptions,
                reopened_by,
                reopened_at,
            },
        )
        .collect();
    Ok(Worklist {
        new,
        carried_over,
        oldest,
        since_run: previous.map(|p| p.id),
        resolved,
        resolved_count,
        resolutions_seen,
    })
}
