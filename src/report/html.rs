//! `report.html`: one self-contained page (no scripts, fonts or files from elsewhere) for the
//! finance team. Rendered with minijinja, which escapes every value, so bank text cannot inject
//! markup. Search and sorting are a few lines of plain JavaScript; without it the page reads the
//! same.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, Serde};
use minijinja::{Environment, Value, context};
use rust_decimal::Decimal;
use serde::Serialize;

use super::columns::{self, Style};
use super::{OpenTopUps, Report, Rows};
use crate::matching::{Category, Outcome};
use crate::money::{Currency, format_amount};
use crate::row::Row;
use crate::topup::format_timestamp;

const TEMPLATE: &str = include_str!("report.html.j2");

/// Rows shown per table of matched, ignored and open items; exceptions are always complete.
/// Every row is in the CSV files and the workbook.
pub const PAGE_ROWS: usize = 2000;

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
}

impl RowObject {
    fn value(rows: &Arc<[Row]>, index: usize) -> Value {
        Value::from_object(RowObject {
            rows: rows.clone(),
            index,
        })
    }
}

impl Object for RowObject {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
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
    format!(
        "{{% macro rows_table(rows) %}}
<table class=\"searchable sortable-table\">
<thead><tr>{head}</tr></thead>
<tbody>
{{% for r in rows %}}<tr>{cells}</tr>
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
fn sums_text(items: impl Iterator<Item = (Currency, Decimal)>) -> String {
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

/// The one-line verdict at the top of the page, and its colour.
fn status_line(report: &Report) -> (String, &'static str) {
    let s = report.summary;
    let exceptions = sums_text(report.unmatched.iter().map(|r| (r.currency, r.amount)));
    let mut parts = Vec::new();
    let mut class = "ok";
    if s.inputs_rejected > 0 {
        parts.push(format!(
            "{} input file(s) rejected: nothing from them was processed",
            s.inputs_rejected
        ));
        class = "bad";
    }
    if s.controls.failed > 0 {
        parts.push(format!("{} statement control(s) failed", s.controls.failed));
        class = "bad";
    }
    let read_before = s.inputs.iter().filter(|i| i.read_before.is_some()).count();
    if read_before > 0 {
        parts.push(format!(
            "{read_before} input file(s) read before: see below"
        ));
        if class == "ok" {
            class = "warn";
        }
    }
    if s.counts.unmatched > 0 {
        parts.push(format!(
            "{} exception(s) worth {exceptions} need a human",
            s.counts.unmatched
        ));
        if class == "ok" {
            class = "warn";
        }
    }
    if parts.is_empty() {
        return (
            format!(
                "All good: {} matched, nothing needs a human",
                s.counts.matched
            ),
            "ok",
        );
    }
    parts.push(format!("{} matched", s.counts.matched));
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

/// Renders the page.
pub fn write(out: &mut dyn io::Write, report: &Report, open: &OpenTopUps) -> io::Result<()> {
    let mut env = Environment::new();
    env.add_template_owned("rows.html", rows_table_template())
        .map_err(io::Error::other)?;
    env.add_template("report.html", TEMPLATE)
        .map_err(io::Error::other)?;
    let mut controls: Vec<&crate::controls::Control> =
        report.summary.controls.results.iter().collect();
    controls.sort_by_key(|c| c.ok);
    let (line, class) = status_line(report);
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
            groups => exception_groups(report),
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
fn exception_groups(report: &Report) -> Vec<Value> {
    Outcome::ALL
        .into_iter()
        .filter(|o| o.category() == Category::Unmatched)
        .filter_map(|outcome| {
            let rows: Vec<usize> = (0..report.unmatched.len())
                .filter(|&i| report.unmatched[i].outcome == outcome)
                .collect();
            if rows.is_empty() {
                return None;
            }
            let (explanation, action) = explain(outcome);
            Some(context! {
                outcome => outcome.as_str(),
                explanation,
                action,
                sums => sums_text(rows.iter().map(|&i| {
                    let row = &report.unmatched[i];
                    (row.currency, row.amount)
                })),
                rows => rows
                    .into_iter()
                    .map(|i| RowObject::value(report.unmatched, i))
                    .collect::<Vec<_>>(),
            })
        })
        .collect()
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
}
