//! Settling: the matched top-ups become `SETTLED` (with their history, events and cash
//! balances) while a connection of its own lists the top-ups the run leaves open; then each
//! exception gets its suggestion, which sees the top-ups as the run leaves them.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use chrono::{DateTime, Utc};

use super::decide::{Decided, Deciding, aside_failed};
use super::render::{SPLIT_LISTING_FROM, render_open_after};
use super::{RunPlan, give_back_memory};
use crate::error::Error;
use crate::matching::{EarlierSettlement, Outcome};
use crate::report::OpenRendered;
use crate::report::summary::OutcomeKey;
use crate::statement::TxIdentity;
use crate::store::outbox::Growth;
use crate::store::{hints, topups};
use crate::suggest::PayerWindows;

/// A run decided and settled, with its open top-ups listed.
pub(super) struct Settled {
    pub decided: Decided,
    pub open: OpenRendered,
    /// How many top-ups the run leaves open, counted in the run's transaction.
    pub open_topups: usize,
}

/// Settles what matched and suggests for the exceptions on the run's connection, while the
/// open top-ups are listed from another; then checks that nothing was lost on the way.
pub(super) fn settle_beside_listing(
    tx: &rusqlite::Transaction,
    plan: &RunPlan,
    db: &Path,
    started: DateTime<Utc>,
    deciding: Deciding,
) -> Result<Settled, Error> {
    let settling = deciding.settling();
    let (settled, open) = std::thread::scope(|scope| {
        let listing = scope.spawn(|| {
            // One thread (`RAYON_NUM_THREADS=1`) means one listing.
            let split_from = if rayon::current_num_threads() > 1 {
                SPLIT_LISTING_FROM
            } else {
                usize::MAX
            };
            let stale = plan.stale_after_days;
            render_open_after(db, &plan.report_dir, started, stale, &settling, split_from)
        });
        // Counted here, while a long listing may still be running, to check it against.
        let settled = deciding
            .finish()
            .and_then(|decided| settle(tx, decided, started))
            .and_then(|done| Ok((done, topups::count_open(tx)?)));
        let open = listing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (settled, open)
    });
    let (((decided, growth), open_topups), open) = (settled?, open?);
    drop(settling);
    give_back_memory();
    plan.progress.finish_and_clear();
    let mut settled = Settled {
        decided,
        open,
        open_topups,
    };
    settled.check(&growth)?;
    Ok(settled)
}

impl Settled {
    /// The run's invariants, each against a count made elsewhere than the one it checks: a
    /// breach is a bug, so nothing is committed and the exit status is 70.
    fn check(&mut self, growth: &Growth) -> Result<(), Error> {
        let holds = self.decided.totals.check();
        let totals = &self.decided.totals;
        let c = &totals.counts;
        let conserved = holds && c.read == self.decided.handed;
        if !conserved {
            return Err(breach(format!(
                "conservation does not hold (the readers handed over {}, read {}, matched {}, \
                 unmatched {}, ignored {})",
                self.decided.handed, c.read, c.matched, c.unmatched, c.ignored
            )));
        }
        if self.open_topups != self.open.total() {
            return Err(breach(format!(
                "the run leaves {} top-ups open but {} were listed",
                self.open_topups,
                self.open.total()
            )));
        }
        let matched: Growth = totals
            .outcomes
            .get(&OutcomeKey(Outcome::Matched))
            .into_iter()
            .flat_map(|total| &total.by_currency)
            .filter(|(_, total)| !total.sum.is_zero())
            .map(|(currency, total)| (*currency, total.sum))
            .collect();
        let grew: Growth = growth
            .iter()
            .filter(|(_, sum)| !sum.is_zero())
            .map(|(currency, sum)| (*currency, *sum))
            .collect();
        if matched != grew {
            return Err(breach(format!(
                "the matched payments come to {matched:?} but the cash balances grew by {grew:?}"
            )));
        }
        Ok(())
    }
}

/// An invariant broken: nothing is committed.
fn breach(what: String) -> Error {
    Error::Internal(format!("{what}; nothing was committed; please report this"))
}

/// Settles what matched, then writes each exception's suggestion: one pass over the open
/// top-ups as the run leaves them answers them all (a top-up this run settled is never
/// offered for another payment).
fn settle(
    tx: &rusqlite::Transaction,
    mut decided: Decided,
    at: DateTime<Utc>,
) -> Result<(Decided, Growth), Error> {
    let (payer_groups, settled_here) = payers_and_earlier(tx, &decided)?;
    let clock = std::time::Instant::now();
    let settlements = std::mem::take(&mut decided.settlements);
    let growth = topups::settle_all(tx, settlements, at)?;
    tracing::debug!(
        elapsed_ms = clock.elapsed().as_millis() as u64,
        "matched top-ups settled and announced"
    );
    let exceptions = std::mem::take(&mut decided.exceptions);
    let mut asks = Vec::with_capacity(exceptions.len());
    for (row, decision) in decided.rows.unmatched.iter().zip(&exceptions) {
        let this_run = row
            .counterparty_iban()
            .and_then(|iban| payer_groups.get(iban))
            .map_or(&[][..], Vec::as_slice);
        asks.push(hints::ask_for(tx, row, decision.reference, this_run)?);
    }
    let clock = std::time::Instant::now();
    let answers = hints::answer(tx, &asks)?;
    tracing::debug!(
        elapsed_ms = clock.elapsed().as_millis() as u64,
        "open top-ups looked through for suggestions"
    );
    let each = decided
        .rows
        .unmatched
        .iter_mut()
        .zip(exceptions)
        .zip(answers);
    for ((row, decision), hints) in each {
        let suggestion = crate::suggest::suggest(row, &decision, &hints, &settled_here);
        row.set_suggestion(suggestion.as_deref());
    }
    Ok((decided, growth))
}

/// What suggestions need from this run's matched payments, in one pass over them: the
/// account groups each payer of an exception without reference paid this run (newest
/// first), and where each transaction paid again later in the run first settled its top-up.
#[allow(clippy::type_complexity)]
fn payers_and_earlier(
    tx: &rusqlite::Transaction,
    decided: &Decided,
) -> Result<(HashMap<String, Vec<String>>, HashMap<TxIdentity, String>), Error> {
    let exceptions = decided.exceptions.iter().zip(&decided.rows.unmatched);
    let payers: HashSet<String> = exceptions
        .clone()
        .filter(|(decision, _)| decision.outcome == Outcome::NoReference)
        .filter_map(|(_, row)| row.counterparty_iban().map(str::to_string))
        .collect();
    let settled_earlier: HashSet<TxIdentity> = exceptions
        .filter_map(|(decision, _)| match decision.earlier {
            Some(EarlierSettlement::ThisRun(identity)) => Some(identity),
            _ => None,
        })
        .collect();
    let mut settled_here = HashMap::new();
    let mut windows = PayerWindows::new(&payers, hints::PAYER_PAYMENTS);
    if !payers.is_empty() || !settled_earlier.is_empty() {
        for row in decided.rows.matched.iter() {
            let row = row.map_err(aside_failed)?;
            if let (Some(iban), Some(topup)) = (row.counterparty_iban(), row.topup_id) {
                windows.add(iban, topup);
            }
            if settled_earlier.contains(&row.identity) {
                let place = format!("{} {}", row.statement_file, row.position_text());
                settled_here.insert(row.identity, place);
            }
        }
    }
    let mut groups: HashMap<String, Vec<String>> = payers
        .iter()
        .map(|iban| (iban.clone(), Vec::new()))
        .collect();
    for (iban, newest_first) in windows.newest_first() {
        let mut names = Vec::with_capacity(newest_first.len());
        for topup in newest_first {
            names.push(topups::group_of(tx, topup)?.to_string());
        }
        groups.insert(iban.to_string(), names);
    }
    Ok((groups, settled_here))
}
