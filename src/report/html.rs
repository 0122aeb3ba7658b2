//! `report.html`: one self-contained page (no scripts, fonts or files from elsewhere) for the
//! finance team. Rendered with minijinja, which escapes every value, so bank text cannot inject
//! markup. Search and sorting are a few lines of plain JavaScript; without it the page reads the
//! same.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, Serde};
use minijinja::{Environment, Value, context};
use rust_decimal::Decimal;
use serde::Serialize;

use super::columns::{self, Style};
use super::{OpenTopUps, Report, Rows, grouped};
use crate::matching::Outcome;
use crate::money::{Currency, format_amount};
use crate::row::Row;
use crate::topup::format_timestamp;

const TEMPLATE: &str = include_str!("report.html.j2");

/// Rows shown per table of matched, ignored and open items. Every row is in the CSV files and
/// the workbook.
pub const PAGE_ROWS: usize = 2000;

/// Lines each kind of exception lists at most (repeated exceptions share a line); every
/// exception is in `unmatched.csv` and the workbook.
pub const EXCEPTION_LINES: usize = 5000;

/// Exceptions alike (same top-up or reference, same payer) that the page lists each on a line
/// of its own, where to look for each, before it counts the rest on the last of them.
pub const LISTED_ALIKE: usize = 3;

/// What an exception means and what a person usually does about it.
pub fn explain(outcome: Outcome) -> (&'static str, &'static str) {
    match outcome {
        Outcome::NoReference => (
            "The payment names no top-up reference.",
            "find the top-up by payer and amount (see the suggestion) and settle it by hand, or return the money",
        ),
        Outcome::UnknownReference => (
            "The payment names a reference that no top-up has: a typo, or a top-up from elsewhere.",
            "check the suggested near match; otherwise return the money",
        ),
        Outcome::AmbiguousReference => (
            "The payment names several different top-ups.",
            "contact the payer to learn which top-up was meant",
        ),
        Outcome::AmountMismatch => (
            "The top-up exists and is open, but the amount paid differs.",
            "check the amount: ask for the rest of an underpayment, refund an overpayment",
        ),
        Outcome::CurrencyMismatch => (
            "The top-up exists and is open, but was paid in another currency.",
            "refund, or convert and settle by hand",
        ),
        Outcome::AlreadySettled => (
            "The top-up was settled before: this is a second payment.",
            "refund the payer",
        ),
        Outcome::TopupCancelled => (
            "The top-up was cancelled, but money arrived for it.",
            "refund the payer, or reinstate the top-up by hand",
        ),
        Outcome::Reversal => (
            "The bank reversed an earlier booking.",
            "find the reversed payment; if it settled a top-up, undo that settlement by hand",
        ),
        Outcome::Matched | Outcome::Debit | Outcome::NotBooked | Outcome::AlreadyProcessed => {
            ("", "")
        }
    }
}

#[derive(Serialize)]
struct TotalLine {
    outcome: &'static str,
    currency: Currency,
    count: usize,
    sum: String,
}

/// A row as the page shows it: one of rows shared with the report (the exceptions of a
/// night are not copied). Its texts are made when the template reads them, so the page of a
/// large night never holds every exception's texts at once.
#[derive(Debug)]
struct RowObject {
    rows: Arc<[Row]>,
    index: usize,
    /// The line saying how many exceptions like this one follow it, if any do.
    more: Option<String>,
}

impl RowObject {
    fn value(rows: &Arc<[Row]>, index: usize) -> Value {
        Self::with_more(rows, index, None)
    }

    fn with_more(rows: &Arc<[Row]>, index: usize, more: Option<String>) -> Value {
        Value::from_object(RowObject {
            rows: rows.clone(),
            index,
            more,
        })
    }
}

impl Object for RowObject {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        if key == "more" {
            return self.more.clone().map(Value::from);
        }
        let column = columns::page_fields().find(|c| c.name == key)?;
        let value = (column.value)(&self.rows[self.index]).into_text();
        Some(Value::from(value.into_owned()))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(
            columns::page_fields()
                .map(|c| Value::from(c.name))
                .collect(),
        )
    }
}

/// The `rows_table` macro the page's template imports: a table of transaction rows with the
/// page's columns (see [`columns::TRANSACTION_COLUMNS`]).
fn rows_table_template() -> String {
    let (mut head, mut cells) = (String::new(), String::new());
    for (column, page) in columns::page_columns() {
        let (th, td) = match page.style {
            Style::Text => ("", ""),
            // A header is set as text; only the cells of a mono column are monospace.
            Style::Mono => ("", r#" class="mono""#),
            Style::Number => (r#" class="num""#, r#" class="num""#),
        };
        let name = column.name;
        let default = format!("{{{{ r.{name} }}}}");
        let (attributes, content) = page.cell.unwrap_or(("", &default));
        head.push_str(&format!("<th{th}>{}</th>", page.header));
        cells.push_str(&format!("<td{td}{attributes}>{content}</td>"));
    }
    let span = columns::page_columns().len();
    // A repeated exception's line: how many more like it, after it.
    let more = format!(
        "{{% if r.more %}}<tr class=\"more\"><td colspan=\"{span}\" class=\"muted\">{{{{ r.more }}}}</td></tr>{{% endif %}}"
    );
    format!(
        "{{% macro rows_table(rows) %}}
<table class=\"searchable sortable-table\">
<thead><tr>{head}</tr></thead>
<tbody>
{{% for r in rows %}}<tr>{cells}</tr>{more}
{{% endfor %}}
</tbody>
</table>
{{% endmacro %}}"
    )
}

#[derive(Serialize)]
struct OpenView {
    id: String,
    created_at: String,
    amount: String,
    currency: String,
    status: String,
    reference: String,
    age_days: i64,
    stale: bool,
}

#[derive(Serialize)]
struct Bucket {
    label: &'static str,
    count: usize,
    sums: String,
}

/// An age bucket of all open top-ups (summary version 2), as the page shows it.
#[derive(Serialize)]
struct AgeView {
    label: String,
    count: usize,
    sums: String,
    stale: bool,
}

#[derive(Serialize)]
struct Bar {
    label: &'static str,
    count: usize,
    width: usize,
    y: usize,
    color: &'static str,
}

#[derive(Serialize)]
struct Chart {
    height: usize,
    bars: Vec<Bar>,
}

/// `12.00 EUR, 3.50 USD`: sums per currency, in currency order.
pub(super) fn sums_text(items: impl Iterator<Item = (Currency, Decimal)>) -> String {
    let mut by: BTreeMap<Currency, Decimal> = BTreeMap::new();
    for (currency, amount) in items {
        *by.entry(currency).or_default() += amount;
    }
    let parts: Vec<String> = by
        .into_iter()
        .map(|(c, a)| format!("{} {c}", format_amount(a, c)))
        .collect();
    if parts.is_empty() {
        "–".to_string()
    } else {
        parts.join(", ")
    }
}

/// The one-line verdict at the top of the page, and its colour; `exceptions` is what the
/// exceptions come to.
fn status_line(report: &Report, exceptions: &str) -> (String, &'static str) {
    status_line_counted(report, exceptions, &|n| n.to_string())
}

/// The verdict, its counts spelled by `count`.
pub(super) fn status_line_counted(
    report: &Report,
    exceptions: &str,
    count: &dyn Fn(usize) -> String,
) -> (String, &'static str) {
    let s = report.summary;
    let mut parts = Vec::new();
    let mut class = "ok";
    if s.inputs_rejected > 0 {
        parts.push(format!(
            "{} input file(s) rejected: nothing from them was processed",
            count(s.inputs_rejected)
        ));
        class = "bad";
    }
    if s.controls.failed > 0 {
        parts.push(format!(
            "{} statement control(s) failed",
            count(s.controls.failed)
        ));
        class = "bad";
    }
    let read_before = s.inputs.iter().filter(|i| i.read_before.is_some()).count();
    if read_before > 0 {
        parts.push(format!(
            "{} input file(s) read before: see below",
            count(read_before)
        ));
        if class == "ok" {
            class = "warn";
        }
    }
    if s.counts.unmatched > 0 {
        parts.push(format!(
            "{} exception(s) worth {exceptions} need a human",
            count(s.counts.unmatched)
        ));
        if class == "ok" {
            class = "warn";
        }
    }
    if parts.is_empty() {
        return (
            format!(
                "All good: {} matched, nothing needs a human",
                count(s.counts.matched)
            ),
            "ok",
        );
    }
    parts.push(format!("{} matched", count(s.counts.matched)));
    (parts.join(" · "), class)
}

fn chart(report: &Report) -> Chart {
    let c = &report.summary.counts;
    let max = c.matched.max(c.unmatched).max(c.ignored).max(1);
    let bars = [
        ("Matched", c.matched, "#2da44e"),
        ("Needs a human", c.unmatched, "#d4a72c"),
        ("Ignored", c.ignored, "#8c959f"),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (label, count, color))| Bar {
        label,
        count,
        width: count * 240 / max,
        y: 6 + i * 30,
        color,
    })
    .collect();
    Chart { height: 96, bars }
}

/// Renders the page: laid out for analysts (see [`super::page`]) from summary version 3 on,
/// as its release rendered it before.
pub fn write(out: &mut dyn io::Write, report: &Report, open: &OpenTopUps) -> io::Result<()> {
    if report.summary.analyst_layout() {
        return super::page::write(out, report, open);
    }
    let mut env = Environment::new();
    env.add_template_owned("rows.html", rows_table_template())
        .map_err(io::Error::other)?;
    env.add_template("report.html", TEMPLATE)
        .map_err(io::Error::other)?;
    let mut controls: Vec<&crate::controls::Control> =
        report.summary.controls.results.iter().collect();
    controls.sort_by_key(|c| c.ok);
    // A run of a release before the page grouped its exceptions is re-rendered as it was.
    let (limit, alike) = if report.summary.groups_exceptions() {
        (EXCEPTION_LINES, LISTED_ALIKE)
    } else {
        (usize::MAX, usize::MAX)
    };
    let groups = ExceptionLines::gather(report.unmatched.iter(), limit, alike)?;
    let exceptions = sums_text(groups.iter().flat_map(|g| g.sums.clone()));
    let (line, class) = status_line(report, &exceptions);
    let views = |rows: Rows| {
        let shown: Arc<[Row]> = rows
            .iter()
            .take(PAGE_ROWS)
            .map(|row| Ok(row?.into_owned()))
            .collect::<io::Result<_>>()?;
        io::Result::Ok(
            (0..shown.len())
                .map(|i| RowObject::value(&shown, i))
                .collect::<Vec<_>>(),
        )
    };
    let (matched, ignored) = (views(report.matched)?, views(report.ignored)?);
    let template = env.get_template("report.html").map_err(io::Error::other)?;
    // Written as it renders: the page of a large night is megabytes, never held whole.
    template
        .render_captured_to(
            context! {
            s => Value::from(Serde(report.summary)),
            status_line => line,
            status_class => class,
            totals => Value::from(Serde(&totals(report))),
            chart => Value::from(Serde(chart(report))),
            controls => Value::from(Serde(&controls)),
            groups => exception_groups(groups),
            exception_lines => EXCEPTION_LINES,
            matched,
            ignored,
            open => Value::from(Serde(&open_views(report, open))),
            buckets => Value::from(Serde(&buckets(open))),
            stale_count => open.stale,
            aging => Value::from(Serde(&age_views(report))),
            stale_open => report.summary.open_topup_ages.iter().flatten()
                .filter(|b| b.stale).map(|b| b.count).sum::<usize>(),
            page_rows => PAGE_ROWS,
            open_total => open.total,
            generated_at => format_timestamp(report.generated_at),
            read_before => report
                .summary
                .inputs
                .iter()
                .filter_map(|i| i.read_before_line())
                .collect::<Vec<_>>(),
            },
            out,
        )
        .map_err(io::Error::other)?;
    Ok(())
}

/// Count and sum of each outcome in each currency.
fn totals(report: &Report) -> Vec<TotalLine> {
    let mut totals = Vec::new();
    for (outcome, total) in &report.summary.outcomes {
        for (&currency, t) in &total.by_currency {
            totals.push(TotalLine {
                outcome: outcome.0.as_str(),
                currency,
                count: t.count,
                sum: format_amount(t.sum, currency),
            });
        }
    }
    totals
}

/// The exceptions grouped by outcome, each group with what it means and what to do.
fn exception_groups(groups: Vec<ExceptionLines>) -> Vec<Value> {
    groups
        .into_iter()
        .map(|group| {
            let (explanation, action) = explain(group.outcome);
            let (rows, more): (Vec<Row>, Vec<Option<String>>) = group
                .lines
                .into_iter()
                .map(|line| {
                    let more = line.more_text();
                    (line.row, more)
                })
                .unzip();
            let rows: Arc<[Row]> = rows.into();
            context! {
                outcome => group.outcome.as_str(),
                explanation,
                action,
                count => group.count,
                unlisted => group.unlisted,
                sums => sums_text(group.sums.into_iter()),
                rows => more
                    .into_iter()
                    .enumerate()
                    .map(|(i, more)| RowObject::with_more(&rows, i, more))
                    .collect::<Vec<_>>(),
            }
        })
        .collect()
}

/// What makes a later exception of an outcome the same as an earlier one on the page: the
/// top-up it pays (or else the reference it names) and its payer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SameKey {
    reference: Option<String>,
    payer: Option<String>,
}

impl SameKey {
    fn of(row: &Row) -> SameKey {
        SameKey {
            reference: row
                .topup_id
                .map(|id| id.to_string())
                .or_else(|| row.extracted_reference().map(str::to_string)),
            payer: row.counterparty_iban().map(str::to_string),
        }
    }
}

/// One line of an outcome's table: an exception, and the exceptions like it that came after.
#[derive(Debug)]
pub(super) struct Line {
    pub(super) row: Row,
    key: SameKey,
    pub(super) more: usize,
    more_sums: BTreeMap<Currency, Decimal>,
}

impl Line {
    /// `3 more payments for top-up X, same payer: 30.00 EUR`, when any came after.
    pub(super) fn more_text(&self) -> Option<String> {
        self.more_text_with(&|sums| sums_text(sums.iter().map(|(c, a)| (*c, *a))))
    }

    /// [`Line::more_text`] with the sums spelled by `sums`.
    pub(super) fn more_text_with(
        &self,
        sums: &dyn Fn(&BTreeMap<Currency, Decimal>) -> String,
    ) -> Option<String> {
        if self.more == 0 {
            return None;
        }
        let payments = if self.more == 1 {
            "payment"
        } else {
            "payments"
        };
        let what = match (self.row.topup_id, &self.key.reference) {
            (Some(topup), _) => format!(" for top-up {topup}"),
            (None, Some(reference)) => format!(" naming {reference}"),
            (None, None) => " without a reference".to_string(),
        };
        let payer = if self.key.payer.is_some() {
            ", same payer"
        } else {
            ""
        };
        let sums = sums(&self.more_sums);
        Some(format!(
            "{} more {payments}{what}{payer}: {sums}",
            grouped(self.more)
        ))
    }
}

/// The exceptions of one outcome as the page lists them: at most a bounded number of lines,
/// an exception like an earlier listed one (the same top-up or reference, the same payer; or,
/// naming neither, the same payer as the line just before) counted on that one's line.
#[derive(Debug)]
pub(super) struct ExceptionLines {
    pub(super) outcome: Outcome,
    pub(super) count: usize,
    pub(super) sums: BTreeMap<Currency, Decimal>,
    pub(super) lines: Vec<Line>,
    /// The listed lines that name a top-up or reference, by what makes them the same: the last
    /// of them, and how many are listed.
    keyed: HashMap<SameKey, (usize, usize)>,
    /// How many lines at the end are alike (for exceptions naming nothing).
    tail_alike: usize,
    /// Exceptions on no line: they came after the last line was listed.
    pub(super) unlisted: usize,
}

impl ExceptionLines {
    /// Gathers exceptions read in order into lines (at most `limit` per outcome, `alike` of
    /// exceptions alike), in the order of [`Outcome::ALL`]; memory grows with the lines, not
    /// with the exceptions.
    pub(super) fn gather<'r>(
        rows: impl Iterator<Item = io::Result<Cow<'r, Row>>>,
        limit: usize,
        alike: usize,
    ) -> io::Result<Vec<ExceptionLines>> {
        let mut by_outcome: Vec<Option<ExceptionLines>> =
            Outcome::ALL.iter().map(|_| None).collect();
        for row in rows {
            let row = row?;
            let slot = Outcome::ALL.iter().position(|o| *o == row.outcome);
            let lines =
                by_outcome[slot.unwrap_or_default()].get_or_insert_with(|| ExceptionLines {
                    outcome: row.outcome,
                    count: 0,
                    sums: BTreeMap::new(),
                    lines: Vec::new(),
                    keyed: HashMap::new(),
                    tail_alike: 0,
                    unlisted: 0,
                });
            lines.add(row, limit, alike);
        }
        Ok(by_outcome.into_iter().flatten().collect())
    }

    fn add(&mut self, row: Cow<Row>, limit: usize, alike: usize) {
        self.count += 1;
        *self.sums.entry(row.currency).or_default() += row.amount;
        let key = SameKey::of(&row);
        let full = self.lines.len() >= limit;
        // The last line alike, and how many alike are listed.
        let same = if key.reference.is_some() {
            self.keyed.get(&key).copied()
        } else {
            // Naming nothing, only the lines just before can be alike, from a named payer.
            let last = self.lines.len().checked_sub(1);
            last.filter(|&last| key.payer.is_some() && self.lines[last].key == key)
                .map(|last| (last, self.tail_alike))
        };
        match same {
            Some((line, listed)) if listed >= alike || full => {
                let line = &mut self.lines[line];
                line.more += 1;
                *line.more_sums.entry(row.currency).or_default() += row.amount;
            }
            _ if full => self.unlisted += 1,
            _ => {
                let at = self.lines.len();
                let listed = same.map_or(0, |(_, listed)| listed) + 1;
                if key.reference.is_some() {
                    self.keyed.insert(key.clone(), (at, listed));
                }
                let after_alike = self.lines.last().is_some_and(|last| last.key == key);
                self.tail_alike = if after_alike { self.tail_alike + 1 } else { 1 };
                self.lines.push(Line {
                    row: row.into_owned(),
                    key,
                    more: 0,
                    more_sums: BTreeMap::new(),
                });
            }
        }
    }
}

/// The oldest open top-ups the page lists.
fn open_views(report: &Report, open: &OpenTopUps) -> Vec<OpenView> {
    let stale_after = report.summary.stale_after_days;
    open.oldest
        .iter()
        .take(PAGE_ROWS)
        .map(|t| {
            let age = t.age_days(report.as_of);
            OpenView {
                id: t.id.to_string(),
                created_at: format_timestamp(t.created_at),
                amount: t.cash_amount_text(),
                currency: t.currency.to_string(),
                status: t.status.to_string(),
                reference: t.settlement_reference.to_string(),
                age_days: age,
                stale: age > stale_after,
            }
        })
        .collect()
}

/// All open top-ups by age, from the summary (version 2 on; none before).
fn age_views(report: &Report) -> Option<Vec<AgeView>> {
    let ages = report.summary.open_topup_ages.as_ref()?;
    Some(
        ages.iter()
            .map(|bucket| AgeView {
                label: bucket.label(),
                count: bucket.count,
                sums: sums_text(bucket.by_currency.iter().map(|(c, t)| (*c, t.sum))),
                stale: bucket.stale,
            })
            .collect(),
    )
}

/// The open top-ups by age, as a report of summary version 1 shows them.
fn buckets(open: &OpenTopUps) -> Vec<Bucket> {
    OpenTopUps::BUCKETS
        .into_iter()
        .zip(&open.buckets)
        .map(|(label, (count, sums))| Bucket {
            label,
            count: *count,
            sums: sums_text(sums.iter().map(|(c, a)| (*c, *a))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rows_table_escapes_bank_text_and_shows_amount_and_place_in_their_cells() {
        let rows: Arc<[Row]> = vec![columns::hostile_row()].into();
        let mut env = Environment::new();
        env.add_template_owned("rows.html", rows_table_template())
            .unwrap();
        env.add_template(
            "t.html",
            r#"{% from "rows.html" import rows_table %}{{ rows_table(rows) }}"#,
        )
        .unwrap();
        let page = env
            .get_template("t.html")
            .unwrap()
            .render(context! { rows => vec![RowObject::value(&rows, 0)] })
            .unwrap();
        assert!(page.starts_with("\n<table class=\"searchable sortable-table\">\n<thead><tr><th>Outcome</th><th class=\"num\">Amount</th>"), "{page}");
        assert!(
            page.contains("<th>Payer / payee</th><th>IBAN</th>"),
            "{page}"
        );
        assert!(
            page.contains(
                r#"<td class="num" data-sort="40.00">40.00 EUR</td><td>2026-11-20</td><td></td>"#
            ),
            "{page}"
        );
        assert!(
            page.contains("<td>topup &lt;b&gt;1&lt;&#x2f;b&gt;, thanks</td>"),
            "{page}"
        );
        assert!(
            page.contains("<td>=HYPERLINK(&quot;http:&#x2f;&#x2f;evil&quot;)</td>"),
            "{page}"
        );
        assert!(
            page.contains(r#"<td class="num">45.5</td><td class="num">-5.5</td>"#),
            "{page}"
        );
        assert!(
            page.contains(r#"<td class="mono" title="in&#x2f;2026-11-20.xml">2026-11-20.xml · entry 5 detail 2</td></tr>"#),
            "{page}"
        );
    }

    /// An exception of `outcome` for `cents`, naming `reference`, from `payer`.
    fn exception(
        outcome: Outcome,
        reference: Option<&str>,
        payer: Option<&str>,
        cents: i64,
    ) -> Row {
        use crate::row::{TextFields, Texts};
        let mut row = crate::row::tests::sample_row();
        row.outcome = outcome;
        row.amount = Decimal::new(cents, 2);
        row.texts = Texts::new(TextFields {
            entry_ref: None,
            servicer_ref: None,
            end_to_end_id: None,
            tx_id: None,
            uetr: None,
            counterparty_name: None,
            counterparty_iban: payer,
            remittance: "",
            extracted_reference: reference,
            suggestion: None,
        });
        row
    }

    fn gather(rows: &[Row], limit: usize) -> Vec<ExceptionLines> {
        gather_alike(rows, limit, 1)
    }

    fn gather_alike(rows: &[Row], limit: usize, alike: usize) -> Vec<ExceptionLines> {
        ExceptionLines::gather(rows.iter().map(|r| Ok(Cow::Borrowed(r))), limit, alike).unwrap()
    }

    /// Each line's `(amount, more)`.
    fn lines(group: &ExceptionLines) -> Vec<(String, usize)> {
        let line = |l: &Line| (l.row.amount.to_string(), l.more);
        group.lines.iter().map(line).collect()
    }

    #[test]
    fn exceptions_of_one_reference_and_payer_share_a_line_wherever_they_come() {
        use Outcome::{AlreadySettled as Again, NoReference as NoRef};
        let rows = [
            exception(Again, Some("ref-a"), Some("DE01"), 100),
            exception(NoRef, None, Some("DE01"), 200),
            exception(Again, Some("ref-a"), Some("DE02"), 300),
            exception(Again, Some("ref-a"), Some("DE01"), 400),
            exception(Again, Some("ref-b"), Some("DE01"), 500),
            exception(Again, Some("ref-a"), Some("DE01"), 600),
        ];
        let groups = gather(&rows, 100);
        // In the order of the outcomes, whatever the order of the rows.
        let outcomes: Vec<Outcome> = groups.iter().map(|g| g.outcome).collect();
        assert_eq!(outcomes, [NoRef, Again]);
        let again = &groups[1];
        assert_eq!((again.count, again.unlisted), (5, 0));
        assert_eq!(
            lines(again),
            [("1.00".into(), 2), ("3.00".into(), 0), ("5.00".into(), 0)]
        );
        assert_eq!(
            again.lines[0].more_text().as_deref(),
            Some("2 more payments naming ref-a, same payer: 10.00 EUR")
        );
        assert_eq!(again.lines[1].more_text(), None);
        assert_eq!(again.sums[&"EUR".parse().unwrap()], Decimal::new(1900, 2));
    }

    #[test]
    fn exceptions_naming_nothing_share_a_line_only_with_the_one_just_before_of_the_same_payer() {
        let rows = [
            exception(Outcome::NoReference, None, Some("DE01"), 100),
            exception(Outcome::NoReference, None, Some("DE01"), 200),
            exception(Outcome::NoReference, None, Some("DE02"), 300),
            exception(Outcome::NoReference, None, Some("DE01"), 400),
            exception(Outcome::NoReference, None, None, 500),
            exception(Outcome::NoReference, None, None, 600),
        ];
        let groups = gather(&rows, 100);
        assert_eq!(
            lines(&groups[0]),
            [
                ("1.00".into(), 1),
                ("3.00".into(), 0),
                ("4.00".into(), 0),
                ("5.00".into(), 0),
                ("6.00".into(), 0)
            ]
        );
        assert_eq!(
            groups[0].lines[0].more_text().as_deref(),
            Some("1 more payment without a reference, same payer: 2.00 EUR")
        );
    }

    #[test]
    fn an_outcome_lists_at_most_its_limit_of_lines_and_counts_the_rest() {
        let payment = |reference, cents| {
            exception(
                Outcome::UnknownReference,
                Some(reference),
                Some("DE01"),
                cents,
            )
        };
        let mut rows = vec![payment("a", 100), payment("b", 200), payment("c", 300)];
        // Like a listed line after the limit was reached: still counted on it.
        rows.extend((0..1000).map(|_| payment("a", 100)));
        let groups = gather(&rows, 2);
        let group = &groups[0];
        assert_eq!(lines(group), [("1.00".into(), 1000), ("2.00".into(), 0)]);
        assert_eq!((group.count, group.unlisted), (1003, 1));
        assert_eq!(
            group.lines[0].more_text().as_deref(),
            Some("1,000 more payments naming a, same payer: 1000.00 EUR")
        );
    }

    #[test]
    fn the_first_few_alike_are_listed_each_and_the_rest_counted_on_the_last_of_them() {
        let again =
            |payer, cents| exception(Outcome::AlreadySettled, Some("ref-a"), Some(payer), cents);
        let mut rows: Vec<Row> = (1..=5).map(|i| again("DE01", i * 100)).collect();
        rows.insert(2, again("DE02", 900));
        let nothing = |cents| exception(Outcome::NoReference, None, Some("DE03"), cents);
        rows.extend((1..=4).map(nothing));
        let groups = gather_alike(&rows, 100, 3);
        assert_eq!(
            lines(&groups[0]),
            [("0.01".into(), 0), ("0.02".into(), 0), ("0.03".into(), 1)]
        );
        assert_eq!(
            lines(&groups[1]),
            [
                ("1.00".into(), 0),
                ("2.00".into(), 0),
                ("9.00".into(), 0),
                ("3.00".into(), 2),
            ]
        );
        assert_eq!(
            groups[1].lines[3].more_text().as_deref(),
            Some("2 more payments naming ref-a, same payer: 9.00 EUR")
        );
        // A run stored before the page grouped (no limit, nothing alike) lists each.
        let each = gather_alike(&rows, usize::MAX, usize::MAX);
        assert_eq!(
            each.iter().map(|g| g.lines.len()).sum::<usize>(),
            rows.len()
        );
    }
}
