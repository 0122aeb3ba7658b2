//! `summary.json`: what a run read, what came of it, and the conservation check; and the
//! versioned form a run keeps it in (`runs.summary_json`).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::io;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::matching::{Category, Outcome};
use crate::money::Currency;
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
    /// The run that read this file before (absent when none did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_before: Option<ReadBefore>,
}

/// An input read before: by an earlier run, or earlier in the same run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReadBefore {
    pub run_id: String,
    pub started_at: String,
    /// What tells so: `sha256` (the same bytes) or `statement id and account`.
    pub by: String,
    /// The file as that run was given it.
    pub path: String,
    /// The statement read again (by statement id and account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

impl ReadBefore {
    pub const BY_SHA256: &'static str = "sha256";
    pub const BY_STATEMENT: &'static str = "statement id and account";
}

impl InputSummary {
    /// The line that says this input was read before, on the terminal, the page and the
    /// workbook alike.
    pub fn read_before_line(&self) -> Option<String> {
        let before = self.read_before.as_ref()?;
        let then = if before.path == self.path {
            String::new()
        } else {
            format!(", then as {}", before.path)
        };
        let how = match (&before.statement_id, &before.account) {
            (Some(id), Some(account)) => {
                format!("statement {id} of account {account}{then}")
            }
            _ => format!("the same file by SHA-256{then}"),
        };
        Some(format!(
            "{}: already read in run {} on {} ({how})",
            self.path, before.run_id, before.started_at
        ))
    }
}

/// Count and sum of one outcome in one currency.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CurrencyTotal {
    pub count: usize,
    pub sum: Decimal,
}

/// Count of one outcome, and its totals per currency.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OutcomeTotal {
    pub count: usize,
    pub by_currency: BTreeMap<Currency, CurrencyTotal>,
}

/// An outcome as a key of the totals. Ordered by its name, not by [`Outcome`]'s report order:
/// `summary.json`, the page and the workbook have always listed the outcomes alphabetically.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct OutcomeKey(pub Outcome);

impl Ord for OutcomeKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.as_str().cmp(other.0.as_str())
    }
}

impl PartialOrd for OutcomeKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for OutcomeKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for OutcomeKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Outcome::from_name(&name)
            .map(OutcomeKey)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown outcome {name:?}")))
    }
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
    pub outcomes: BTreeMap<OutcomeKey, OutcomeTotal>,
    pub controls: Controls,
    pub open_topups: usize,
    /// Open top-ups older than this many days are flagged as stale.
    pub stale_after_days: i64,
    /// Every top-up the run left open, by age (summary version 2 on; absent before, when
    /// `open_topups.csv` listed them all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_topup_ages: Option<Vec<AgeBucket>>,
    /// What `open_topups.csv` lists: the top-ups that became stale since the previous run
    /// (summary version 2 on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newly_stale: Option<NewlyStale>,
    /// The IANA time zone the page and the workbook show times in beside UTC (summary version
    /// 3 on; absent before, when they showed UTC only, in the layout of their release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The finance team's worklist as the run found it: the exceptions it opened, those still
    /// open from earlier nights by age, and what was resolved since the previous run (absent
    /// from runs before the worklist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worklist: Option<Worklist>,
}

/// The worklist a night's report carries.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Worklist {
    /// The exceptions this run opened.
    pub new: WorklistBucket,
    /// The exceptions still open from earlier runs, by age at this run's start.
    pub carried_over: Vec<WorklistBucket>,
    /// The oldest of them, at most [`WORKLIST_OLDEST`].
    pub oldest: Vec<CarriedException>,
    /// The previous run, since whose start `resolved` counts (none on the first run).
    pub since_run: Option<String>,
    /// Resolutions made or reopened since then, at most [`WORKLIST_RESOLVED`] of them.
    pub resolved: Vec<ResolvedLine>,
    pub resolved_count: usize,
    /// The newest resolution when the run started: the next run names those after it.
    pub resolutions_seen: i64,
}

/// Exceptions of the worklist of one age span (all ages for the night's new ones): how many,
/// and their money per currency, what came in apart from what went out (reversals), so that
/// the two are never added together.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorklistBucket {
    pub from_days: i64,
    pub to_days: Option<i64>,
    pub count: usize,
    pub money_in: BTreeMap<Currency, CurrencyTotal>,
    pub money_out: BTreeMap<Currency, CurrencyTotal>,
}

impl WorklistBucket {
    /// Counts one exception of `amount`, money out when `out`.
    pub fn add(&mut self, currency: Currency, amount: Decimal, out: bool) {
        self.count += 1;
        let side = if out {
            &mut self.money_out
        } else {
            &mut self.money_in
        };
        let slot = side.entry(currency).or_default();
        slot.count += 1;
        slot.sum += amount;
    }

    /// `0–1 days`, `over 30 days`.
    pub fn label(&self) -> String {
        age_label(self.from_days, self.to_days)
    }
}

/// How many of the oldest carried-over exceptions the worklist names.
pub const WORKLIST_OLDEST: usize = 50;
/// How many resolutions since the previous run the worklist names.
pub const WORKLIST_RESOLVED: usize = 200;

/// An exception still open from an earlier night.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CarriedException {
    pub id: i64,
    pub opened_at: String,
    pub age_days: i64,
    pub reason: String,
    pub amount: Decimal,
    pub currency: Currency,
}

/// A resolution made, or reopened, since the previous run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResolvedLine {
    pub resolution: i64,
    pub kind: String,
    pub by: String,
    pub at: String,
    pub note: String,
    pub exceptions: Vec<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reopened_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reopened_at: Option<String>,
}

/// The open top-ups of one age span: how many, and their sums per currency.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgeBucket {
    /// The youngest and the oldest age in the bucket, in whole days (no oldest: open-ended).
    pub from_days: i64,
    pub to_days: Option<i64>,
    /// Older than the stale threshold.
    pub stale: bool,
    pub count: usize,
    pub by_currency: BTreeMap<Currency, CurrencyTotal>,
}

/// An age span in whole days as the page and the workbook name it.
fn age_label(from_days: i64, to_days: Option<i64>) -> String {
    match to_days {
        Some(to) if to == from_days && to == 1 => "1 day".to_string(),
        Some(to) if to == from_days => format!("{to} days"),
        Some(to) => format!("{from_days}–{to} days"),
        None => format!("over {} days", from_days - 1),
    }
}

impl AgeBucket {
    /// `0–1 days`, `over 30 days`.
    pub fn label(&self) -> String {
        age_label(self.from_days, self.to_days)
    }
}

/// The top-ups that became stale since the previous run: open when the run ended, stale at
/// its start, and not stale at the previous committed run's start by that run's threshold, or
/// not yet in the database then.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewlyStale {
    /// The previous committed run (absent for the first run on the database).
    pub previous_run: Option<String>,
    /// Created at or before this moment: stale at this run's start...
    pub created_until: String,
    /// ...and created after this one (the previous run's stale limit; absent for the first
    /// run: every stale one is listed)...
    pub created_after: Option<String>,
    /// ...or added to the database after the previous run, which held top-ups up to this row
    /// number (absent when the previous run did not record it: a summary version 1).
    pub added_after: Option<i64>,
    /// The highest top-up row number at this run, for the next run's `added_after`.
    pub topups_seen: i64,
    pub count: usize,
}

/// Adds up outcomes as rows are decided.
#[derive(Clone, Debug)]
pub struct Totals {
    pub counts: Counts,
    pub outcomes: BTreeMap<OutcomeKey, OutcomeTotal>,
}

impl Default for Totals {
    fn default() -> Self {
        Totals {
            counts: Counts::default(),
            outcomes: Outcome::ALL
                .iter()
                .map(|&o| (OutcomeKey(o), OutcomeTotal::default()))
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
        let total = self.outcomes.entry(OutcomeKey(row.outcome)).or_default();
        total.count += 1;
        let cur = total.by_currency.entry(row.currency).or_default();
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

/// Writes the summary as pretty JSON.
pub fn write(out: &mut dyn io::Write, summary: &Summary) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, summary)?;
    out.write_all(b"\n")
}

/// The version of the form a run stores its summary in. Version 1 is the shape of
/// `summary.json` when `open_topups.csv` listed every open top-up; summaries stored before the
/// version was recorded are version 1. Version 2 adds `open_topup_ages` and `newly_stale`;
/// version 3 `timezone` (and the page and workbook laid out for analysts, see
/// [`Summary::analyst_layout`]).
pub const STORED_VERSION: u32 = 3;

/// A stored summary: `summary.json`'s fields, with the version beside them rather than around
/// them, so that the database's checks read `$.outcomes` of old and new runs alike.
#[derive(Serialize)]
struct Stored<'a> {
    summary_version: u32,
    #[serde(flatten)]
    summary: &'a Summary,
}

/// The version of a stored summary, read before the rest, whose shape depends on it.
#[derive(Deserialize)]
struct StoredVersion {
    #[serde(default = "unversioned")]
    summary_version: u32,
}

fn unversioned() -> u32 {
    1
}

/// Why a stored summary cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum StoredSummaryError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "it was stored by a newer recon (summary version {0}; this one reads up to \
         {STORED_VERSION}): use that recon"
    )]
    Newer(u32),
}

impl Summary {
    /// Whether the page groups repeated exceptions: runs stored in version 2 or later (those of
    /// version 1 carry no age buckets, and their pages listed every exception).
    pub fn groups_exceptions(&self) -> bool {
        self.open_topup_ages.is_some()
    }

    /// Whether the page and the workbook are laid out for analysts (times in a time zone too,
    /// totals by category, long lists summarised): runs stored in version 3 or later; earlier
    /// runs are rendered again as their release rendered them.
    pub fn analyst_layout(&self) -> bool {
        self.timezone.is_some()
    }

    /// The summary as a run stores it (`runs.summary_json`).
    pub fn to_stored(&self) -> String {
        let stored = Stored {
            summary_version: STORED_VERSION,
            summary: self,
        };
        serde_json::to_string(&stored).expect("plain data serialises")
    }

    /// Reads a summary a run stored, in any version up to [`STORED_VERSION`].
    pub fn from_stored(json: &str) -> Result<Summary, StoredSummaryError> {
        let StoredVersion { summary_version } = serde_json::from_str(json)?;
        if summary_version > STORED_VERSION {
            return Err(StoredSummaryError::Newer(summary_version));
        }
        Ok(serde_json::from_str(json)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What recon 0.1.0 (before the version was recorded) stored for the demo's run.
    const UNVERSIONED: &str = include_str!("testdata/summary_unversioned.json");

    fn row(outcome: Outcome, amount: &str, currency: &str) -> Row {
        Row {
            outcome,
            amount: amount.parse().unwrap(),
            currency: currency.parse().unwrap(),
            ..crate::row::tests::sample_row()
        }
    }

    fn pretty(summary: &Summary) -> String {
        let mut out = Vec::new();
        write(&mut out, summary).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn an_unversioned_stored_summary_reads_back_to_the_same_summary_json() {
        let summary = Summary::from_stored(UNVERSIONED).unwrap();
        assert_eq!(summary.outcomes.len(), Outcome::ALL.len());
        assert_eq!(
            summary.outcomes[&OutcomeKey(Outcome::Matched)].by_currency[&"EUR".parse().unwrap()]
                .sum
                .to_string(),
            "415.00"
        );
        // The JSON as stored, only laid out as summary.json is: nothing lost, nothing moved.
        let stored: serde_json::Value = serde_json::from_str(UNVERSIONED).unwrap();
        let expected = serde_json::to_string_pretty(&stored).unwrap() + "\n";
        assert_eq!(pretty(&summary), expected);
    }

    #[test]
    fn a_stored_summary_carries_its_version_beside_the_fields_and_reads_back() {
        let summary = Summary::from_stored(UNVERSIONED).unwrap();
        let stored = summary.to_stored();
        assert!(
            stored.starts_with(r#"{"summary_version":3,"run_id":"#),
            "{stored}"
        );
        // `recon check` reads `$.outcomes.<OUTCOME>.count` of every run.
        let value: serde_json::Value = serde_json::from_str(&stored).unwrap();
        assert_eq!(value["outcomes"]["MATCHED"]["count"], 5);
        let again = Summary::from_stored(&stored).unwrap();
        assert_eq!(pretty(&again), pretty(&summary));
    }

    #[test]
    fn a_version_1_summary_has_no_buckets_and_a_version_2_one_keeps_them() {
        let old = Summary::from_stored(UNVERSIONED).unwrap();
        assert!(old.open_topup_ages.is_none() && old.newly_stale.is_none());
        // Absent fields stay absent: summary.json of a version 1 run is written as it was.
        assert!(!pretty(&old).contains("open_topup_ages"));
        let eur: Currency = "EUR".parse().unwrap();
        let mut summary = old.clone();
        summary.open_topup_ages = Some(vec![AgeBucket {
            from_days: 15,
            to_days: None,
            stale: true,
            count: 2,
            by_currency: [(
                eur,
                CurrencyTotal {
                    count: 2,
                    sum: "35.50".parse().unwrap(),
                },
            )]
            .into(),
        }]);
        summary.newly_stale = Some(NewlyStale {
            previous_run: None,
            created_until: "2026-11-22T08:00:00Z".to_string(),
            created_after: None,
            added_after: None,
            topups_seen: 13,
            count: 2,
        });
        let again = Summary::from_stored(&summary.to_stored()).unwrap();
        assert_eq!(again.open_topup_ages, summary.open_topup_ages);
        assert_eq!(again.newly_stale, summary.newly_stale);
        assert_eq!(again.open_topup_ages.unwrap()[0].label(), "over 14 days");
    }

    #[test]
    fn a_summary_stored_by_a_newer_recon_is_refused_with_its_version() {
        let newer = UNVERSIONED.replacen('{', r#"{"summary_version":4,"#, 1);
        let error = Summary::from_stored(&newer).unwrap_err();
        assert!(matches!(error, StoredSummaryError::Newer(4)), "{error}");
        assert!(Summary::from_stored(r#"{"run_id": 3}"#).is_err());
    }

    #[test]
    fn totals_list_outcomes_and_currencies_by_name_with_the_currencys_decimals() {
        let mut totals = Totals::default();
        for (outcome, amount, currency) in [
            (Outcome::NoReference, "1", "USD"),
            (Outcome::Matched, "200", "EUR"),
            (Outcome::Matched, "1500", "JPY"),
            (Outcome::Matched, "0.125", "EUR"),
            (Outcome::AmountMismatch, "12.5", "KWD"),
            (Outcome::Matched, "7", "CHF"),
        ] {
            totals.add(&row(outcome, amount, currency));
        }
        totals.read(6);
        assert!(totals.check());
        let json = serde_json::to_value(&totals.outcomes).unwrap();
        let outcomes: Vec<&str> = json.as_object().unwrap().keys().map(|k| &**k).collect();
        let mut names: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        names.sort();
        assert_eq!(outcomes, names);
        let matched = &json["MATCHED"]["by_currency"];
        let currencies: Vec<&str> = matched.as_object().unwrap().keys().map(|k| &**k).collect();
        assert_eq!(currencies, ["CHF", "EUR", "JPY"]);
        assert_eq!(matched["EUR"]["sum"], "200.125");
        assert_eq!(matched["EUR"]["count"], 2);
        assert_eq!(matched["CHF"]["sum"], "7.00");
        assert_eq!(matched["JPY"]["sum"], "1500");
        assert_eq!(
            json["AMOUNT_MISMATCH"]["by_currency"]["KWD"]["sum"],
            "12.500"
        );
    }

    #[test]
    fn an_unknown_outcome_name_is_not_read_as_an_outcome() {
        let error = serde_json::from_str::<OutcomeKey>(r#""PAID_TWICE""#).unwrap_err();
        assert!(error.to_string().contains("unknown outcome"), "{error}");
    }
}
