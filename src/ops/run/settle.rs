//! Settling: the matched top-ups become `SETTLED` with their cash balances (their history and
//! events are told from the journal) while a connection of its own lists the newly stale;
//! then the open top-ups are counted by age and each exception gets its suggestion, both
//! seeing the top-ups as the run leaves them.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use chrono::{DateTime, Utc};

use super::decide::{Decided, Deciding, RunRows, aside_failed};
use super::render::{OpenAfter, open_after, open_ages};
use super::{RunPlan, give_back_memory};
use crate::error::Error;
use crate::ids::RunId;
use crate::matching::{EarlierSettlement, Outcome};
use crate::report::OpenRendered;
use crate::report::summary::{AgeBucket, NewlyStale, OutcomeKey};
use crate::row::spill::{Spill, Spilled, Unmatched};
use crate::statement::TxIdentity;
use crate::store::outbox::Growth;
use crate::store::{ages, hints, topups};
use crate::suggest::PayerWindows;

/// A run decided and settled, with its open top-ups counted by age and the newly stale
/// listed.
pub(super) struct Settled {
    pub decided: Decided,
    /// `open_topups.csv`: the newly stale top-ups.
    pub open: OpenRendered,
    /// Every top-up the run leaves open, by age, counted in the run's transaction.
    pub ages: Vec<AgeBucket>,
    pub newly_stale: NewlyStale,
}

/// Settles what matched and suggests for the exceptions on the run's connection, while the
/// open top-ups are listed from another; then checks that nothing was lost on the way.
pub(super) fn settle_beside_listing(
    tx: &rusqlite::Transaction,
    plan: &RunPlan,
    run_id: RunId,
    db: &Path,
    started: DateTime<Utc>,
    deciding: Deciding,
) -> Result<Settled, Error> {
    let settling = deciding.settling();
    let (settled, open) = std::thread::scope(|scope| {
        let listing = scope.spawn(|| {
            let stale = plan.stale_after_days;
            open_after(db, &plan.report_dir, started, stale, &settling)
        });
        let settled = deciding.finish().and_then(|decided| {
            let open_before = ages::count_open(tx)?;
            let done = settle(tx, run_id, decided, started, &plan.report_dir)?;
            let ages = open_ages(tx, started, plan.stale_after_days)?;
            Ok((done, open_before, ages))
        });
        let open = listing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (settled, open)
    });
    let (((decided, growth), open_before, ages), open) = (settled?, open?);
    drop(settling);
    give_back_memory();
    plan.progress.finish_and_clear();
    let OpenAfter {
        listed,
        newly_stale,
    } = open;
    let mut settled = Settled {
        decided,
        open: listed,
        ages,
        newly_stale,
    };
    settled.check(&growth, open_before)?;
    Ok(settled)
}

impl Settled {
    /// How many top-ups the run leaves open.
    pub fn open_topups(&self) -> usize {
        self.ages.iter().map(|bucket| bucket.count).sum()
    }

    /// The run's invariants, each against a count made elsewhere than the one it checks: a
    /// breach is a bug, so nothing is committed and the exit status is 70.
    fn check(&mut self, growth: &Growth, open_before: usize) -> Result<(), Error> {
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
        let open_after = self.open_topups();
        if open_before.checked_sub(c.matched) != Some(open_after) {
            return Err(breach(format!(
                "{open_before} top-ups were open before the run, which settled {}, but {} are \
                 counted by age after it",
                c.matched, open_after
            )));
        }
        let stale: usize = self.ages.iter().filter(|b| b.stale).map(|b| b.count).sum();
        if self.newly_stale.count > stale {
            return Err(breach(format!(
                "{} top-ups listed as newly stale but {stale} are stale",
                self.newly_stale.count
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

/// Settles what matched, then gives each exception its suggestion (its rows written aside
/// again, in `dir`).
fn settle(
    tx: &rusqlite::Transaction,
    run_id: RunId,
    decided: Decided<Unmatched>,
    at: DateTime<Utc>,
    dir: &Path,
) -> Result<(Decided, Growth), Error> {
    let Decided {
        rows,
        ledger,
        settlements,
        inputs,
        totals,
        controls,
        handed,
    } = decided;
    let (payer_groups, settled_here) = payers_and_earlier(tx, &rows)?;
    let clock = std::time::Instant::now();
    let growth = topups::settle_all(tx, &run_id.to_string(), settlements, at)?;
    tracing::debug!(
        elapsed_ms = clock.elapsed().as_millis() as u64,
        "matched top-ups settled and announced"
    );
    let unmatched = suggest_all(tx, &rows.unmatched, &payer_groups, &settled_here, dir)?;
    let rows = RunRows {
        matched: rows.matched,
        unmatched,
        ignored: rows.ignored,
    };
    let decided = Decided {
        rows,
        ledger,
        settlements: Vec::new(),
        inputs,
        totals,
        controls,
        handed,
    };
    Ok((decided, growth))
}

/// Exceptions whose suggestions one pass over the open top-ups answers: a night's, unless it
/// has more; then a pass per so many, so that memory stays bounded whatever the night.
const SUGGEST_CHUNK: usize = 50_000;

/// The exceptions' rows with their suggestions, in their order, written aside in `dir`.
/// Suggestions look at the top-ups as the run leaves them (a top-up this run settled is never
/// offered for another payment): one pass over the open top-ups answers a chunk of them.
fn suggest_all(
    tx: &rusqlite::Transaction,
    exceptions: &Spilled<Unmatched>,
    payer_groups: &HashMap<String, Vec<String>>,
    settled_here: &HashMap<TxIdentity, String>,
    dir: &Path,
) -> Result<Spilled, Error> {
    let mut rows = Spill::new_in(dir).map_err(aside_failed)?;
    let mut exceptions = exceptions.iter().peekable();
    while exceptions.peek().is_some() {
        let chunk: Vec<Unmatched> = exceptions
            .by_ref()
            .take(SUGGEST_CHUNK)
            .collect::<Result<_, _>>()
            .map_err(aside_failed)?;
        let mut asks = Vec::with_capacity(chunk.len());
        for Unmatched { row, decision } in &chunk {
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
            exceptions = asks.len(),
            "open top-ups looked through for suggestions"
        );
        for (Unmatched { mut row, decision }, hints) in chunk.into_iter().zip(answers) {
            let suggestion = crate::suggest::suggest(&row, &decision, &hints, settled_here);
            row.set_suggestion(suggestion.as_deref());
            rows.push(&row).map_err(aside_failed)?;
        }
    }
    rows.finish().map_err(aside_failed)
}

/// What suggestions need from this run's matched payments, in one pass over them: the
/// account groups each payer of an exception without reference paid this run (newest
/// first), and where each transaction paid again later in the run first settled its top-up.
#[allow(clippy::type_complexity)]
fn payers_and_earlier(
    tx: &rusqlite::Transaction,
    rows: &RunRows<Unmatched>,
) -> Result<(HashMap<String, Vec<String>>, HashMap<TxIdentity, String>), Error> {
    let mut payers: HashSet<String> = HashSet::new();
    let mut settled_earlier: HashSet<TxIdentity> = HashSet::new();
    for exception in rows.unmatched.iter() {
        let Unmatched { row, decision } = exception.map_err(aside_failed)?;
        if decision.outcome == Outcome::NoReference
            && let Some(iban) = row.counterparty_iban()
            && !payers.contains(iban)
        {
            payers.insert(iban.to_string());
        }
        if let Some(EarlierSettlement::ThisRun(identity)) = decision.earlier {
            settled_earlier.insert(identity);
        }
    }
    let mut settled_here = HashMap::new();
    let mut windows = PayerWindows::new(&payers, hints::PAYER_PAYMENTS);
    if !payers.is_empty() || !settled_earlier.is_empty() {
        for row in rows.matched.iter() {
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
