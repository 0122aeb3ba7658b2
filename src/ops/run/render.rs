//! Rendering: the report files are written aside (temporary files in the report directory)
//! from the run's rows, while the run's connection records the ledger; `open_topups.csv` is
//! listed beside the settling, from connections of its own.

use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::RunPlan;
use super::settle::Settled;
use crate::error::Error;
use crate::ids::{RunId, TopUpId};
use crate::report::{self, Report, Summary};
use crate::store::{runs, topups};
use crate::topup::format_timestamp;

/// The run's `summary.json`, from what it decided and settled.
pub(super) fn summary(
    plan: &RunPlan,
    run_id: RunId,
    db: &Path,
    (started, finished): (DateTime<Utc>, DateTime<Utc>),
    settled: &Settled,
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
        open_topups: settled.open_topups,
        stale_after_days: plan.stale_after_days,
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

/// From how many open top-ups a listing is split in two halves, each listed from a connection
/// of its own (finding the middle costs a count: about 0.3 s for 2.5M, against 3–4 s of
/// listing them on one thread).
pub(super) const SPLIT_LISTING_FROM: usize = 200_000;

/// Lists the open top-ups the run leaves into `open_topups.csv`, from a connection of its own
/// while the run's settles: those open before the run (it holds the write lock, so nothing
/// else changes them) less the ones it settles. From `split_from` open top-ups on, a second
/// connection lists the later half on a thread of its own, into a file appended after.
pub(super) fn render_open_after(
    db: &Path,
    dir: &Path,
    as_of: DateTime<Utc>,
    stale_after_days: i64,
    settling: &HashSet<TopUpId>,
    split_from: usize,
) -> Result<report::OpenRendered, Error> {
    let clock = std::time::Instant::now();
    let list = |conn: &rusqlite::Connection,
                range: topups::OpenRange,
                each: &mut dyn FnMut(&crate::topup::TopUp) -> std::io::Result<()>| {
        topups::for_each_open(conn, range, &mut |topup| {
            if settling.contains(&topup.id) {
                Ok(())
            } else {
                each(topup)
            }
        })
    };
    let conn = crate::store::open_reader(db)?;
    let middle = topups::open_midpoint(&conn, split_from)?;
    let open = match &middle {
        None => report::render_open(dir, as_of, stale_after_days, &mut |each| {
            list(&conn, topups::OpenRange::All, each)
        })?,
        Some(middle) => std::thread::scope(|scope| -> Result<_, Error> {
            let rest = scope.spawn(|| -> Result<_, Error> {
                let conn = crate::store::open_reader(db)?;
                Ok(report::render_open_rest(
                    dir,
                    as_of,
                    stale_after_days,
                    &mut |each| list(&conn, topups::OpenRange::From(middle), each),
                )?)
            });
            let first = report::render_open(dir, as_of, stale_after_days, &mut |each| {
                list(&conn, topups::OpenRange::Before(middle), each)
            });
            let rest = rest
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            Ok(first?.then(rest?)?)
        })?,
    };
    tracing::debug!(
        elapsed_ms = clock.elapsed().as_millis() as u64,
        open = open.total(),
        halves = middle.is_some(),
        "open top-ups listed"
    );
    Ok(open)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AccountGroupId, SettlementReference};
    use crate::store::{OpenMode, Store};
    use crate::topup::Status;
    use crate::topup::TopUp;
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

    #[test]
    fn an_open_listing_split_in_two_halves_is_the_listing_in_one_piece() {
        let dir = tempfile::tempdir().unwrap();
        let (db, ids) = open_topups(dir.path(), 900);
        // Settled by the run: left out of both halves.
        let settling: HashSet<TopUpId> = ids.iter().step_by(4).copied().collect();
        let as_of = "2026-11-10T00:00:00Z".parse().unwrap();
        let render = |out: &str, split_from| {
            render_open_after(&db, &dir.path().join(out), as_of, 2, &settling, split_from).unwrap()
        };
        let whole = render("whole", usize::MAX);
        let halves = render("halves", 2);
        assert_eq!(whole.total(), 900 - 225);
        assert_eq!(halves.total(), whole.total());
        assert_eq!(
            String::from_utf8(halves.bytes()).unwrap(),
            String::from_utf8(whole.bytes()).unwrap()
        );
        let (a, b) = (whole.overview(), halves.overview());
        assert_eq!((a.total, a.stale), (b.total, b.stale));
        assert!(
            a.stale > 0 && a.stale < a.total,
            "some are stale: {}",
            a.stale
        );
        assert_eq!(a.buckets, b.buckets);
        let ids = |o: &report::OpenTopUps| o.oldest.iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(ids(a), ids(b));
    }

    #[test]
    fn the_middle_of_the_open_topups_parts_them_into_two_halves() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = open_topups(dir.path(), 301);
        let conn = crate::store::open_reader(&db).unwrap();
        assert_eq!(topups::open_midpoint(&conn, 302).unwrap(), None);
        let middle = topups::open_midpoint(&conn, 301)
            .unwrap()
            .expect("301 are enough");
        let list = |range| {
            let mut ids = Vec::new();
            topups::for_each_open(&conn, range, &mut |t| {
                ids.push(t.id);
                Ok(())
            })
            .unwrap();
            ids
        };
        let (before, from) = (
            list(topups::OpenRange::Before(&middle)),
            list(topups::OpenRange::From(&middle)),
        );
        assert_eq!((before.len(), from.len()), (150, 151));
        assert_eq!([before, from].concat(), list(topups::OpenRange::All));
    }
}
