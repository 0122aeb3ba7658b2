//! `report.html`: one self-contained page (no scripts or files from elsewhere) for the finance
//! team. Rendered with minijinja, which escapes every value, so bank text cannot inject markup.

use std::io;

use minijinja::value::Serde;
use minijinja::{Environment, Value, context};
use serde::Serialize;

use super::Report;
use super::summary::sum_text;
use crate::row::Row;
use crate::store::topups::age_days;
use crate::topup::format_timestamp;

const TEMPLATE: &str = include_str!("report.html.j2");

#[derive(Serialize)]
struct TotalLine {
    outcome: String,
    currency: String,
    count: usize,
    sum: String,
}

#[derive(Serialize)]
struct RowView {
    outcome: &'static str,
    amount: String,
    currency: String,
    booking_date: String,
    counterparty_name: String,
    counterparty_iban: String,
    remittance: String,
    extracted_reference: String,
    topup_id: String,
    expected_amount: String,
    difference: String,
    suggestion: String,
    statement_file: String,
    position: String,
}

impl RowView {
    fn new(row: &Row) -> Self {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        RowView {
            outcome: row.outcome.as_str(),
            amount: row.amount_text(),
            currency: row.currency.to_string(),
            booking_date: row.booking_date.map(|d| d.to_string()).unwrap_or_default(),
            counterparty_name: text(&row.counterparty_name),
            counterparty_iban: text(&row.counterparty_iban),
            remittance: row.remittance.clone(),
            extracted_reference: text(&row.extracted_reference),
            topup_id: row.topup_id.map(|t| t.to_string()).unwrap_or_default(),
            expected_amount: row
                .expected_amount
                .map(|d| d.to_string())
                .unwrap_or_default(),
            difference: row.difference.map(|d| d.to_string()).unwrap_or_default(),
            suggestion: text(&row.suggestion),
            statement_file: row.statement_file.clone(),
            position: row.position_text(),
        }
    }
}

#[derive(Serialize)]
struct Section {
    title: &'static str,
    rows: Vec<RowView>,
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
}

/// The one-line verdict at the top of the page, and its colour.
fn status_line(report: &Report) -> (String, &'static str) {
    let s = report.summary;
    let mut sums: Vec<String> = Vec::new();
    for (name, total) in &s.outcomes {
        let unmatched = crate::matching::Outcome::from_name(name)
            .is_some_and(|o| o.category() == crate::matching::Category::Unmatched);
        if unmatched {
            for (cur, t) in &total.by_currency {
                sums.push(format!("{} {cur}", sum_text(t, cur)));
            }
        }
    }
    if s.inputs_rejected > 0 {
        return (
            format!(
                "{} input file(s) rejected: nothing from them was processed; {} exception(s)",
                s.inputs_rejected, s.counts.unmatched
            ),
            "bad",
        );
    }
    if s.counts.unmatched == 0 {
        return (
            format!(
                "All good: {} matched, nothing needs a human",
                s.counts.matched
            ),
            "ok",
        );
    }
    (
        format!(
            "{} exception(s) need a human ({}); {} matched",
            s.counts.unmatched,
            sums.join(", "),
            s.counts.matched
        ),
        "warn",
    )
}

/// Renders the page.
pub fn write(out: &mut dyn io::Write, report: &Report) -> io::Result<()> {
    let mut env = Environment::new();
    env.add_template("report.html", TEMPLATE)
        .map_err(io::Error::other)?;
    let mut totals = Vec::new();
    for (name, total) in &report.summary.outcomes {
        for (cur, t) in &total.by_currency {
            totals.push(TotalLine {
                outcome: name.clone(),
                currency: cur.clone(),
                count: t.count,
                sum: sum_text(t, cur),
            });
        }
    }
    let sections = [
        ("Needs a human", report.unmatched),
        ("Matched", report.matched),
        ("Ignored", report.ignored),
    ]
    .map(|(title, rows)| Section {
        title,
        rows: rows.iter().map(RowView::new).collect(),
    });
    let open: Vec<OpenView> = report
        .open_topups
        .iter()
        .map(|t| OpenView {
            id: t.id.to_string(),
            created_at: format_timestamp(t.created_at),
            amount: t.cash_amount_text(),
            currency: t.currency.to_string(),
            status: t.status.to_string(),
            reference: t.settlement_reference.to_string(),
            age_days: age_days(t, report.as_of),
        })
        .collect();
    let (line, class) = status_line(report);
    let template = env.get_template("report.html").map_err(io::Error::other)?;
    let page = template
        .render(context! {
            s => Value::from(Serde(report.summary)),
            status_line => line,
            status_class => class,
            totals => Value::from(Serde(&totals)),
            sections => Value::from(Serde(&sections)),
            open => Value::from(Serde(&open)),
        })
        .map_err(io::Error::other)?;
    out.write_all(page.as_bytes())
}
