//! Rendering: the report files are written aside (temporary files in the report directory)
//! from the run's rows, while the run's connection records the ledger; the newly stale top-ups
//! are listed into `open_topups.csv` beside the settling, from a connection of their own, and
//! all open ones counted by age on the run's connection after it.

use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::RunPlan;
use super::settle::Settled;
use crate::error::Error;
use crate::ids::{RunId, TopUpId};
use crate::report::summary::{AgeBucket, CurrencyTotal, NewlyStale};
use crate::report::{self, Report, Summary, aging};
use crate::store::{ages, runs, topups};
use crate::topup::format_timestamp;

/// The run's `summary.json`, from what it decided and settled.
pub(super) fn summary(
    plan: &RunPlan,
    run_id: RunId,
    db: &Path,
    (started, finished): (DateTime<Utc>, DateTime<Utc>),
    settled: &Settled,
    worklist: report::summary::Worklist,
) -> Result<Summary, Error> {
    let decided = &settled.decided;
    let controls = &decided.controls;
    Ok(Summary {
        run_id: run_id.to_string(),
        recon_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: format_timestamp(started),
        finished_at: format_timestamp(finished),
        dry_run: plan.dry_run,
        database: db.display().to_string(),
        inputs_rejected: decided.inputs.iter().filter(|i| i.rejected).count(),
        inputs: decided.inputs.clone(),
        counts: decided.totals.counts.clone(),
        outcomes: decided.totals.outcomes.clone(),
        controls: report::summary::Controls {
            checked: controls.len(),
            failed: controls.iter().filter(|c| !c.ok).count(),
            results: controls.clone(),
        },
        open_topups: settled.open_topups(),
        stale_after_days: plan.stale_after_days,
        open_topup_ages: Some(settled.ages.clone()),
        newly_stale: Some(settled.newly_stale.clone()),
        timezone: Some(plan.timezone.name().to_string()),
        worklist: Some(worklist),
    })
}

/// Renders the report files aside while the run's connection records the ledger and the run;
/// returns the report, ready to publish once the run is committed.
pub(super) fn render_and_record(
    tx: &rusqlite::Transaction,
    plan: &RunPlan,
    run_id: RunId,
    summary: &Summary,
    settled: Settled,
    (started, finished): (DateTime<Utc>, DateTime<Utc>),
) -> Result<report::Pending, Error> {
    let Settled { decided, open, .. } = settled;
    let summary_json = summary.to_stored();
    let rows = &decided.rows;
    let report = Report {
        summary,
        matched: report::Rows::Spilled(&rows.matched),
        unmatched: report::Rows::Spilled(&rows.unmatched),
        ignored: report::Rows::Spilled(&rows.ignored),
        as_of: started,
        generated_at: finished,
    };
    let (pending, recorded) = report::prepare_alongside(&plan.report_dir, &report, open, || {
        decided.ledger.record(tx, run_id, rows)?;
        let c = &summary.counts;
        let totals = runs::RunTotals {
            read: c.read,
            matched: c.matched,
            unmatched: c.unmatched,
            ignored: c.ignored,
        };
        let dir = std::path::absolute(&plan.report_dir).unwrap_or(plan.report_dir.clone());
        runs::finish(tx, run_id, finished, &totals, &summary_json, &dir)?;
        tracing::debug!("run recorded");
        Ok::<_, Error>(())
    })?;
    recorded?;
    Ok(pending)
}

/// The newly stale top-ups the run leaves open, listed in `open_topups.csv`.
pub(super) struct OpenAfter {
    pub listed: report::OpenRendered,
    pub newly_stale: NewlyStale,
}

/// Lists the newly stale top-ups the run leaves open into `open_topups.csv`, from a connection
/// of its own while the run's settles: those open before the run (it holds the write lock, so
/// nothing else changes them) less the ones it settles.
/// Newly stale: stale at `as_of` (the run's start), and not at the previous committed run's
/// start by that run's threshold (see [`runs::previous`]) or added to the database since; the
/// first run lists every stale one.
pub(super) fn open_after(
    db: &Path,
    dir: &Path,
    as_of: DateTime<Utc>,
    stale_after_days: i64,
    settling: &HashSet<TopUpId>,
) -> Result<OpenAfter, Error> {
    let clock = std::time::Instant::now();
    let conn = crate::store::open_reader(db)?;
    let previous = runs::previous(&conn)?;
    let created_until = aging::stale_until(as_of, stale_after_days);
    let created_after = previous
        .as_ref()
        .map(|p| aging::stale_until(p.started_at, p.stale_after_days.unwrap_or(stale_after_days)));
    let added_after = previous.as_ref().and_then(|p| p.topups_seen);
    let which = topups::StaleSince {
        until: &created_until,
        after: created_after.as_deref(),
        added_after,
    };
    let topups_seen = topups::highest_row(&conn)?;
    let listed = report::render_open(dir, as_of, stale_after_days, &mut |each| {
        topups::for_each_open(&conn, &which, &mut |topup| {
            if settling.contains(&topup.id) {
                Ok(())
            } else {
                each(topup)
            }
        })
    })?;
    let newly_stale = NewlyStale {
        previous_run: previous.map(|p| p.id),
        count: listed.total(),
        created_until,
        created_after,
        added_after,
        topups_seen,
    };
    tracing::debug!(
        elapsed_ms = clock.elapsed().as_millis() as u64,
        newly_stale = newly_stale.count,
        "newly stale top-ups listed"
    );
    Ok(OpenAfter {
        listed,
        newly_stale,
    })
}

/// The open top-ups in each of the report's age buckets at `as_of`, as the run's connection
/// sees them (after its settlements): counted from the totals per day, so that millions of
/// them cost neither time nor memory here.
pub(super) fn open_ages(
    conn: &rusqlite::Connection,
    as_of: DateTime<Utc>,
    stale_after_days: i64,
) -> Result<Vec<AgeBucket>, Error> {
    let spans = aging::spans(stale_after_days);
    let created: Vec<_> = spans
        .iter()
        .map(|&span| aging::created_span(as_of, span))
        .collect();
    let open = ages::open_by_created(conn, &created)?;
    Ok(spans
        .iter()
        .enumerate()
        .map(|(i, &(from_days, to_days))| AgeBucket {
            from_days,
            to_days,
            stale: from_days > stale_after_days.max(0),
            count: open.values().map(|spans| spans[i].0).sum(),
            by_currency: open
                .iter()
                .filter(|(_, spans)| spans[i].0 > 0)
                .map(|(&currency, spans)| {
                    let (count, mut sum) = spans[i];
                    // Shown with the currency's decimals (200 -> 200.00), as the totals are.
                    sum.rescale(sum.scale().max(currency.minor_units()));
                    (currency, CurrencyTotal { count, sum })
                })
                .collect(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AccountGroupId, SettlementReference};
    use crate::money::Currency;
    use crate::store::{OpenMode, Store};
    use crate::topup::Status;
    use crate::topup::TopUp;
    use rust_decimal::Decimal;
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::time::Duration;
    use uuid::Uuid;

    /// A database of `n` confirmed top-ups over a week (several at each moment), one in five in
    /// yen, in `dir`.
    fn open_topups(dir: &Path, n: u128) -> (PathBuf, Vec<TopUpId>) {
        let path = dir.join("recon.sqlite");
        let mut store = Store::open(&path, OpenMode::CreateIfMissing, Duration::ZERO).unwrap();
        let first: DateTime<Utc> = "2026-11-01T08:00:00Z".parse().unwrap();
        let topups: Vec<(u64, TopUp)> = (0..n)
            .map(|i| {
                let topup = TopUp {
                    id: TopUpId::from_uuid(Uuid::from_u128(i.wrapping_mul(0x9E37_79B9_7F4A_7C15))),
                    created_at: first + chrono::Duration::hours((i % 170) as i64),
                    account_group_id: AccountGroupId::from_uuid(Uuid::from_u128(i % 3)),
                    cash_amount: rust_decimal::Decimal::new(1000 + i as i64, 2),
                    currency: if i % 5 == 0 { "JPY" } else { "EUR" }.parse().unwrap(),
                    status: Status::Confirmed,
                    settlement_reference: SettlementReference::from_uuid(Uuid::from_u128(
                        0xF00D << 96 | i,
                    )),
                };
                (i as u64 + 1, topup)
            })
            .collect();
        let tx = store.write().unwrap();
        topups::insert_many(&tx, &topups, first).unwrap();
        tx.commit().unwrap();
        (path, topups.iter().map(|(_, t)| t.id).collect())
    }

    /// The buckets counted are those of each top-up's age as recon measures it, after the
    /// run's settlements; a first run lists every stale one.
    #[test]
    fn open_topups_by_age_are_counted_as_each_ones_age_says_after_the_settled() {
        let dir = tempfile::tempdir().unwrap();
        let (db, ids) = open_topups(dir.path(), 900);
        let settling: HashSet<TopUpId> = ids.iter().step_by(4).copied().collect();
        let as_of: DateTime<Utc> = "2026-11-10T01:30:00.5Z".parse().unwrap();
        let open = open_after(&db, &dir.path().join("out"), as_of, 3, &settling).unwrap();
        // The run settles them after the listing began, on its own connection.
        let mut store = Store::open(&db, OpenMode::MustExist, Duration::ZERO).unwrap();
        let tx = store.write().unwrap();
        for id in &settling {
            topups::transition(&tx, *id, Status::Settled, as_of, None).unwrap();
        }
        let ages = open_ages(&tx, as_of, 3).unwrap();
        tx.commit().unwrap();
        let conn = crate::store::open_reader(&db).unwrap();
        let all = topups::list(&conn, None).unwrap();
        let left: Vec<&TopUp> = all.iter().filter(|t| !settling.contains(&t.id)).collect();
        assert_eq!(left.len(), 900 - 225);
        let mut expected: Vec<(usize, BTreeMap<Currency, Decimal>)> =
            vec![Default::default(); ages.len()];
        for t in &left {
            let age = t.age_days(as_of);
            let i = ages
                .iter()
                .position(|b| age >= b.from_days && b.to_days.is_none_or(|to| age <= to))
                .unwrap();
            expected[i].0 += 1;
            *expected[i].1.entry(t.currency).or_default() += t.cash_amount;
        }
        let counted: Vec<(usize, BTreeMap<Currency, Decimal>)> = ages
            .iter()
            .map(|b| {
                let sums = b.by_currency.iter().map(|(c, t)| (*c, t.sum)).collect();
                (b.count, sums)
            })
            .collect();
        assert_eq!(counted, expected);
        assert!(expected.iter().filter(|(n, _)| *n > 0).count() >= 3);
        let stale: Vec<TopUpId> = left
            .iter()
            .filter(|t| t.age_days(as_of) > 3)
            .map(|t| t.id)
            .collect();
        assert_eq!(open.newly_stale.count, stale.len());
        assert!(!stale.is_empty() && stale.len() < left.len());
        let stale_counted: usize = ages.iter().filter(|b| b.stale).map(|b| b.count).sum();
        assert_eq!(stale_counted, stale.len());
        assert_eq!(open.newly_stale.previous_run, None);
        assert_eq!(open.listed.overview().oldest.len(), stale.len());
    }
}
