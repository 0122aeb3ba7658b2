//! `summary.json`: what a run read, what came of it, and the conservation check.

use std::collections::BTreeMap;
use std::io;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::matching::{Category, Outcome};
use crate::money::format_amount;
use crate::row::Row;
use crate::statement::StatementInfo;

/// One input of the run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InputSummary {
    pub path: String,
    pub sha256: Option<String>,
    pub format: Option<String>,
    pub statements: Vec<StatementInfo>,
    pub transactions: usize,
    pub rejected: bool,
    pub error: Option<String>,
    /// CSV rows skipped with `--skip-bad-rows`, with line and reason.
    pub bad_rows: Vec<crate::statement::csv::BadRow>,
}

/// Count and sum of one outcome in one currency.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CurrencyTotal {
    pub count: usize,
    pub sum: Decimal,
}

/// Count of one outcome, and its totals per currency.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OutcomeTotal {
    pub count: usize,
    pub by_currency: BTreeMap<String, CurrencyTotal>,
}

/// The conservation counts: read = matched + unmatched + ignored.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Counts {
    pub read: usize,
    pub matched: usize,
    pub unmatched: usize,
    pub ignored: usize,
    pub conservation_holds: bool,
}

/// The statement controls of a run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Controls {
    pub checked: usize,
    pub failed: usize,
    pub results: Vec<crate::controls::Control>,
}

/// The whole `summary.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    pub run_id: String,
    pub recon_version: String,
    pub started_at: String,
    pub finished_at: String,
    pub dry_run: bool,
    pub database: String,
    pub inputs: Vec<InputSummary>,
    pub inputs_rejected: usize,
    pub counts: Counts,
    pub outcomes: BTreeMap<String, OutcomeTotal>,
    pub controls: Controls,
    pub open_topups: usize,
    /// Open top-ups older than this many days are flagged as stale.
    pub stale_after_days: i64,
}

/// Adds up outcomes as rows are decided.
#[derive(Clone, Debug)]
pub struct Totals {
    pub counts: Counts,
    pub outcomes: BTreeMap<String, OutcomeTotal>,
}

impl Default for Totals {
    fn default() -> Self {
        Totals {
            counts: Counts::default(),
            outcomes: Outcome::ALL
                .iter()
                .map(|o| (o.as_str().to_string(), OutcomeTotal::default()))
                .collect(),
        }
    }
}

impl Totals {
    /// Counts one decided transaction.
    pub fn add(&mut self, row: &Row) {
        match row.category() {
            Category::Matched => self.counts.matched += 1,
            Category::Unmatched => self.counts.unmatched += 1,
            Category::Ignored => self.counts.ignored += 1,
        }
        let total = self
            .outcomes
            .entry(row.outcome.as_str().to_string())
            .or_default();
        total.count += 1;
        let cur = total
            .by_currency
            .entry(row.currency.as_str().to_string())
            .or_default();
        cur.count += 1;
        cur.sum += row.amount;
        // Show sums with the currency's decimals (200 -> 200.00), never dropping precision.
        let scale = cur.sum.scale().max(row.currency.minor_units());
        cur.sum.rescale(scale);
    }

    /// Counts transactions read from inputs (before deciding).
    pub fn read(&mut self, n: usize) {
        self.counts.read += n;
    }

    /// Checks conservation: every transaction read was counted in exactly one category, and
    /// the per-outcome counts add up to the same number.
    pub fn check(&mut self) -> bool {
        let c = &self.counts;
        let by_outcome: usize = self.outcomes.values().map(|o| o.count).sum();
        let holds = c.read == c.matched + c.unmatched + c.ignored && by_outcome == c.read;
        self.counts.conservation_holds = holds;
        holds
    }
}

/// Shows a sum with its currency's decimals.
pub fn sum_text(total: &CurrencyTotal, currency: &str) -> String {
    match currency.parse() {
        Ok(currency) => format_amount(total.sum, currency),
        Err(_) => total.sum.to_string(),
    }
}

/// Writes the summary as pretty JSON.
pub fn write(out: &mut dyn io::Write, summary: &Summary) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, summary)?;
    out.write_all(b"\n")
}
