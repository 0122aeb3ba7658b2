//! `report.html` as an analyst reads it (summary version 3 on): tables laid out to fit a
//! 1400 px page (fixed layout, ids and IBANs in one monospace line cut with an ellipsis, the
//! whole value in the page for hover and copy), amounts with thousands separators, totals by
//! settled / needs a human / ignored with subtotals per currency and direction, a chart in
//! money, times in the run's time zone beside UTC. The exceptions are listed (bounded, alike
//! ones on one line, as [`super::html`] gathers them); matched and ignored rows are summed and
//! only the first few listed, the rest left to the CSV files and the workbook, so the page of a
//! large night stays small enough to open at once.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use minijinja::value::{Object, Serde};
use minijinja::{Environment, Value, context};
use rust_decimal::Decimal;
use serde::Serialize;

use super::columns::TRANSACTION_COLUMNS;
use super::html::{ExceptionLines, LISTED_ALIKE, explain, status_line_counted};
use super::{OpenTopUps, Report, Rows, grouped};
use crate::matching::Category;
use crate::money::{Currency, format_amount};
use crate::row::Row;
use crate::statement::Direction;
use crate::topup::format_timestamp;

const TEMPLATE: &str = include_str!("page.html.j2");

/// Matched, ignored and newly stale rows the page lists (the first ones); the CSV files and
/// the workbook have them all.
pub const LISTED_ROWS: usize = 100;

/// Lines each kind of exception lists at most (alike ones sharing a line); the rest are
/// counted, and are all in `unmatched.csv` and the workbook. A browser takes seconds over each
/// ten thousand lines: a night of 13,000 exceptions listed whole took 18 s to open.
pub const EXCEPTION_LINES: usize = 200;

/// `1250.5` EUR as `1,250.50`: the currency's decimals (or the bank's finer ones), thousands
/// separated by commas whatever the machine's locale.
pub fn money_text(amount: Decimal, currency: Currency) -> String {
    let plain = format_amount(amount, currency);
    let (sign, digits) = match plain.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", plain.as_str()),
    };
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    let mut out = String::with_capacity(plain.len() + whole.len() / 3);
    out.push_str(sign);
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    if let Some(fraction) = fraction {
        out.push('.');
        out.push_str(fraction);
    }
    out
}

/// `1,200.00 EUR, 3.50 USD`: sums per currency, in currency order (`–` for none).
fn sums_line(sums: &BTreeMap<Currency, Decimal>) -> String {
    let parts: Vec<String> = sums
        .iter()
        .map(|(c, a)| format!("{} {c}", money_text(*a, *c)))
        .collect();
    if parts.is_empty() {
        "–".to_string()
    } else {
        parts.join(", ")
    }
}

/// A moment as the page shows it: in the report's time zone and in UTC (once, when the zone
/// is UTC).
fn when(at: DateTime<Utc>, zone: Tz) -> String {
    let utc = format_timestamp(at);
    if zone == Tz::UTC {
        return utc;
    }
    let local = at.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S %Z");
    format!("{local} ({utc})")
}

/// A timestamp of the summary (RFC 3339) as [`when`] shows it; kept as it is if unreadable.
fn when_text(at: &str, zone: Tz) -> String {
    match DateTime::parse_from_rfc3339(at) {
        Ok(at) => when(at.with_timezone(&Utc), zone),
        Err(_) => at.to_string(),
    }
}

/// `In` for money received, `Out` for money sent.
fn direction_word(direction: Direction) -> &'static str {
    match direction {
        Direction::Credit => "In",
        Direction::Debit => "Out",
    }
}

/// The categories in the order the page shows them, with their headings.
pub(super) const CATEGORIES: [(Category, &str); 3] = [
    (Category::Matched, "Settled"),
    (Category::Unmatched, "Needs a human"),
    (Category::Ignored, "Ignored"),
];

/// Count and sum of the rows of one outcome, currency and direction, and more of them.
#[derive(Default, Clone)]
pub(super) struct Tally {
    pub(super) count: usize,
    pub(super) sum: Decimal,
}

impl Tally {
    fn add(&mut self, amount: Decimal) {
        self.count += 1;
        self.sum += amount;
    }
}

/// Every row's amount by category, outcome, currency and direction: the summary sums
/// outcomes without telling money in from money out.
#[derive(Default)]
pub(super) struct Money {
    /// (category's place, outcome, currency, direction) → tally.
    pub(super) lines: BTreeMap<(usize, &'static str, Currency, &'static str), Tally>,
}

impl Money {
    /// Adds up the rows of the three lists, reading each once.
    pub(super) fn gather(report: &Report) -> io::Result<Money> {
        let mut money = Money::default();
        for rows in [report.matched, report.unmatched, report.ignored] {
            for row in rows.iter() {
                let row = row?;
                let place = CATEGORIES
                    .iter()
                    .position(|(c, _)| *c == row.category())
                    .unwrap_or_default();
                let key = (
                    place,
                    row.outcome.as_str(),
                    row.currency,
                    direction_word(row.direction),
                );
                money.lines.entry(key).or_default().add(row.amount);
            }
        }
        Ok(money)
    }

    /// The subtotals of one category: (currency, direction) → tally.
    fn subtotals(&self, place: usize) -> BTreeMap<(Currency, &'static str), Tally> {
        let mut subtotals: BTreeMap<(Currency, &'static str), Tally> = BTreeMap::new();
        for ((p, _, currency, direction), tally) in &self.lines {
            if *p == place {
                let sub = subtotals.entry((*currency, direction)).or_default();
                sub.count += tally.count;
                sub.sum += tally.sum;
            }
        }
        subtotals
    }

    /// A category's money per direction, then per currency.
    fn by_direction(&self, place: usize) -> BTreeMap<&str, BTreeMap<Currency, Decimal>> {
        let mut by_direction: BTreeMap<&str, BTreeMap<Currency, Decimal>> = BTreeMap::new();
        for ((currency, direction), tally) in self.subtotals(place) {
            *by_direction
                .entry(direction)
                .or_default()
                .entry(currency)
                .or_default() += tally.sum;
        }
        by_direction
    }

    /// `1,200.00 EUR in and 200.00 EUR out`: a category's money, each direction apart.
    fn worth(&self, place: usize) -> String {
        let parts: Vec<String> = self
            .by_direction(place)
            .iter()
            .map(|(direction, sums)| format!("{} {}", sums_line(sums), direction.to_lowercase()))
            .collect();
        parts.join(" and ")
    }

    /// `In 1,200.00 EUR; out 200.00 EUR`: a category's money, each direction apart.
    fn category_line(&self, place: usize) -> String {
        let parts: Vec<String> = self
            .by_direction(place)
            .iter()
            .map(|(direction, sums)| format!("{direction} {}", sums_line(sums)))
            .collect();
        if parts.is_empty() {
            "nothing".to_string()
        } else {
            parts.join("; ")
        }
    }
}

#[derive(Serialize)]
struct TotalRow {
    outcome: &'static str,
    direction: &'static str,
    currency: Currency,
    count: String,
    sum: String,
    subtotal: bool,
}

#[derive(Serialize)]
struct TotalGroup {
    heading: &'static str,
    count: String,
    rows: Vec<TotalRow>,
}

/// The totals table: per category its outcomes, then its subtotals per currency and direction.
fn total_groups(report: &Report, money: &Money) -> Vec<TotalGroup> {
    let c = &report.summary.counts;
    let counts = [c.matched, c.unmatched, c.ignored];
    CATEGORIES
        .iter()
        .enumerate()
        .map(|(place, (_, heading))| {
            let mut rows: Vec<TotalRow> = money
                .lines
                .iter()
                .filter(|((p, ..), _)| *p == place)
                .map(|((_, outcome, currency, direction), t)| TotalRow {
                    outcome,
                    direction,
                    currency: *currency,
                    count: grouped(t.count),
                    sum: money_text(t.sum, *currency),
                    subtotal: false,
                })
                .collect();
            rows.extend(
                money
                    .subtotals(place)
                    .into_iter()
                    .map(|((currency, direction), t)| TotalRow {
                        outcome: "Subtotal",
                        direction,
                        currency,
                        count: grouped(t.count),
                        sum: money_text(t.sum, currency),
                        subtotal: true,
                    }),
            );
            TotalGroup {
                heading,
                count: grouped(counts[place]),
                rows,
            }
        })
        .collect()
}

#[derive(Serialize)]
struct Bar {
    label: String,
    text: String,
    /// Of the largest bar of the currency, in percent.
    percent: u32,
    class: &'static str,
}

#[derive(Serialize)]
struct CurrencyChart {
    currency: Currency,
    bars: Vec<Bar>,
}

/// The chart: per currency, the money of each category and direction as bars.
fn charts(money: &Money) -> Vec<CurrencyChart> {
    let mut by_currency: BTreeMap<Currency, Vec<(usize, &'static str, Tally)>> = BTreeMap::new();
    for place in 0..CATEGORIES.len() {
        for ((currency, direction), tally) in money.subtotals(place) {
            by_currency
                .entry(currency)
                .or_default()
                .push((place, direction, tally));
        }
    }
    by_currency
        .into_iter()
        .map(|(currency, parts)| {
            let max = parts
                .iter()
                .map(|(_, _, t)| t.sum.abs())
                .max()
                .unwrap_or_default();
            let bars = parts
                .into_iter()
                .map(|(place, direction, t)| {
                    let percent = if max.is_zero() {
                        0
                    } else {
                        let share = t.sum.abs() * Decimal::from(100) / max;
                        share.round().try_into().unwrap_or(0u32).max(1)
                    };
                    Bar {
                        label: format!("{} · {}", CATEGORIES[place].1, direction.to_lowercase()),
                        text: format!(
                            "{} {currency} ({})",
                            money_text(t.sum, currency),
                            grouped(t.count)
                        ),
                        percent,
                        class: ["ok", "warn", "muted"][place],
                    }
                })
                .collect();
            CurrencyChart { currency, bars }
        })
        .collect()
}

/// A row as the page shows it: its columns by name, and the page's own fields (direction
/// word, amounts with separators). Texts are made when the template reads them.
#[derive(Debug)]
struct PageRow {
    rows: Arc<[Row]>,
    index: usize,
    /// The line saying how many exceptions like this one follow it, if any do.
    more: Option<String>,
}

impl PageRow {
    fn value(rows: &Arc<[Row]>, index: usize, more: Option<String>) -> Value {
        Value::from_object(PageRow {
            rows: rows.clone(),
            index,
            more,
        })
    }
}

impl Object for PageRow {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let row = &self.rows[self.index];
        let money = |amount: Option<Decimal>| {
            Value::from(amount.map_or(String::new(), |a| money_text(a, row.currency)))
        };
        let text = match key.as_str()? {
            "more" => return self.more.clone().map(Value::from),
            "dir" => direction_word(row.direction).to_string(),
            "amount_text" => money_text(row.amount, row.currency),
            "expected_text" => return Some(money(row.expected_amount)),
            "difference_text" => return Some(money(row.difference)),
            "topup_or_reference" => row
                .topup_id
                .map(|id| id.to_string())
                .or_else(|| row.extracted_reference().map(str::to_string))
                .unwrap_or_default(),
            name => {
                let column = TRANSACTION_COLUMNS.iter().find(|c| c.name == name)?;
                (column.value)(row).into_text().into_owned()
            }
        };
        Some(Value::from(text))
    }
}

/// A column of the page's transaction tables: header, width (CSS; none shares what is left),
/// cell class and content (template text reading the row as `r`), and the cell's title.
struct PageColumn {
    header: &'static str,
    width: Option<&'static str>,
    class: &'static str,
    content: &'static str,
    title: Option<&'static str>,
}

const fn col(
    header: &'static str,
    width: Option<&'static str>,
    class: &'static str,
    content: &'static str,
    title: Option<&'static str>,
) -> PageColumn {
    PageColumn {
        header,
        width,
        class,
        content,
        title,
    }
}

const OUTCOME: PageColumn = col(
    "Outcome",
    Some("9.5rem"),
    "id",
    "{{ r.outcome }}",
    Some("{{ r.outcome }}"),
);
const DIRECTION: PageColumn = col(
    "Dir",
    Some("2.75rem"),
    "",
    "{{ r.dir }}",
    Some("{{ r.direction }}"),
);
const AMOUNT: PageColumn = col(
    "Amount",
    Some("7.5rem"),
    "num",
    "{{ r.amount_text }} {{ r.currency }}",
    None,
);
const BOOKED: PageColumn = col(
    "Booked",
    Some("5.75rem"),
    "",
    "{{ r.booking_date }}",
    Some("value date {{ r.value_date }}"),
);
/// The payer's name over the IBAN (one monospace line, cut with an ellipsis).
const PAYER: PageColumn = col(
    "Payer / payee, IBAN",
    Some("10rem"),
    "",
    "{{ r.counterparty_name }}<div class=\"id\" title=\"{{ r.counterparty_iban }}\">{{ r.counterparty_iban }}</div>",
    None,
);
const REMITTANCE: PageColumn = col("Remittance", Some("16%"), "", "{{ r.remittance }}", None);
const TOPUP: PageColumn = col(
    "Top-up / reference",
    Some("8rem"),
    "id",
    "{{ r.topup_or_reference }}",
    Some("top-up {{ r.topup_id or \"none\" }} · reference {{ r.extracted_reference or \"none\" }}"),
);
/// The amount expected over the difference.
const EXPECTED: PageColumn = col(
    "Expected, difference",
    Some("7.5rem"),
    "num",
    "{{ r.expected_text }}{% if r.difference_text %}<div>{{ r.difference_text }}</div>{% endif %}",
    None,
);
const SUGGESTION: PageColumn = col("Suggestion", None, "", "{{ r.suggestion }}", None);
const WHERE: PageColumn = col(
    "Where",
    Some("7.5rem"),
    "id",
    "{{ r.file_name }} · {{ r.position }}",
    Some("{{ r.statement_file }} · {{ r.position }}"),
);

/// The exceptions' tables (their outcome is the group's heading).
const EXCEPTION_COLUMNS: [&PageColumn; 9] = [
    &DIRECTION,
    &AMOUNT,
    &BOOKED,
    &PAYER,
    &REMITTANCE,
    &TOPUP,
    &EXPECTED,
    &SUGGESTION,
    &WHERE,
];

/// The matched and ignored rows' tables.
const LISTED_COLUMNS: [&PageColumn; 8] = [
    &OUTCOME,
    &DIRECTION,
    &AMOUNT,
    &BOOKED,
    &PAYER,
    &REMITTANCE,
    &TOPUP,
    &WHERE,
];

/// A macro `NAME(rows)` of the page's template: a table of rows with `columns`.
fn table_macro(name: &str, columns: &[&PageColumn]) -> String {
    let (mut cols, mut head, mut cells) = (String::new(), String::new(), String::new());
    for column in columns {
        match column.width {
            Some(width) => cols.push_str(&format!("<col style=\"width:{width}\">")),
            None => cols.push_str("<col>"),
        }
        let class = if column.class.is_empty() {
            String::new()
        } else {
            format!(" class=\"{}\"", column.class)
        };
        let th_class = if column.class == "num" {
            " class=\"num\""
        } else {
            ""
        };
        head.push_str(&format!("<th{th_class}>{}</th>", column.header));
        let title = column
            .title
            .map(|t| format!(" title=\"{t}\""))
            .unwrap_or_default();
        let sort = if column.header == "Amount" {
            " data-sort=\"{{ r.amount }}\""
        } else {
            ""
        };
        cells.push_str(&format!("<td{class}{title}{sort}>{}</td>", column.content));
    }
    let span = columns.len();
    format!(
        "{{% macro {name}(rows) %}}
<table class=\"rows searchable sortable-table\">
<colgroup>{cols}</colgroup>
<thead><tr>{head}</tr></thead>
<tbody>
{{% for r in rows %}}<tr>{cells}</tr>{{% if r.more %}}<tr class=\"more\"><td colspan=\"{span}\" class=\"muted\">{{{{ r.more }}}}</td></tr>{{% endif %}}
{{% endfor %}}
</tbody>
</table>
{{% endmacro %}}"
    )
}

/// The exceptions grouped by outcome, each with what it means and what to do.
fn exception_groups(groups: Vec<ExceptionLines>) -> Vec<Value> {
    groups
        .into_iter()
        .map(|group| {
            let (explanation, action) = explain(group.outcome);
            let (rows, more): (Vec<Row>, Vec<Option<String>>) = group
                .lines
                .into_iter()
                .map(|line| {
                    let more = line.more_text_with(&sums_line);
                    (line.row, more)
                })
                .unzip();
            let rows: Arc<[Row]> = rows.into();
            context! {
                outcome => group.outcome.as_str(),
                explanation,
                action,
                count => grouped(group.count),
                unlisted => (group.unlisted > 0).then(|| grouped(group.unlisted)),
                sums => sums_line(&group.sums),
                rows => more
                    .into_iter()
                    .enumerate()
                    .map(|(i, more)| PageRow::value(&rows, i, more))
                    .collect::<Vec<_>>(),
            }
        })
        .collect()
}

/// The first [`LISTED_ROWS`] rows of a list, as the page's tables read them.
fn first_rows(rows: Rows) -> io::Result<Vec<Value>> {
    let shown: Arc<[Row]> = rows
        .iter()
        .take(LISTED_ROWS)
        .map(|row| Ok(row?.into_owned()))
        .collect::<io::Result<_>>()?;
    Ok((0..shown.len())
        .map(|i| PageRow::value(&shown, i, None))
        .collect())
}

#[derive(Serialize)]
struct OpenRow {
    id: String,
    account_group_id: String,
    created: String,
    amount: String,
    amount_sort: String,
    currency: String,
    status: String,
    reference: String,
    age_days: i64,
}

/// The first newly stale top-ups the page lists.
fn open_rows(report: &Report, open: &OpenTopUps, zone: Tz) -> Vec<OpenRow> {
    open.oldest
        .iter()
        .take(LISTED_ROWS)
        .map(|t| OpenRow {
            id: t.id.to_string(),
            account_group_id: t.account_group_id.to_string(),
            created: when(t.created_at, zone),
            amount: money_text(t.cash_amount, t.currency),
            amount_sort: t.cash_amount_text(),
            currency: t.currency.to_string(),
            status: t.status.to_string(),
            reference: t.settlement_reference.to_string(),
            age_days: t.age_days(report.as_of),
        })
        .collect()
}

#[derive(Serialize)]
struct AgeView {
    label: String,
    count: String,
    sums: String,
    stale: bool,
}

/// All open top-ups by age, from the summary.
fn age_views(report: &Report) -> Vec<AgeView> {
    let ages = report.summary.open_topup_ages.iter().flatten();
    ages.map(|bucket| AgeView {
        label: bucket.label(),
        count: grouped(bucket.count),
        sums: sums_line(
            &bucket
                .by_currency
                .iter()
                .map(|(c, t)| (*c, t.sum))
                .collect(),
        ),
        stale: bucket.stale,
    })
    .collect()
}

/// The report's time zone: the run's, UTC if it named none this recon knows.
pub(super) fn zone(report: &Report) -> Tz {
    let name = report.summary.timezone.as_deref().unwrap_or("UTC");
    name.parse().unwrap_or(Tz::UTC)
}

/// Renders the page.
pub fn write(out: &mut dyn io::Write, report: &Report, open: &OpenTopUps) -> io::Result<()> {
    let mut env = Environment::new();
    let tables = format!(
        "{}\n{}",
        table_macro("exception_table", &EXCEPTION_COLUMNS),
        table_macro("rows_table", &LISTED_COLUMNS)
    );
    env.add_template_owned("tables.html", tables)
        .map_err(io::Error::other)?;
    env.add_template("page.html", TEMPLATE)
        .map_err(io::Error::other)?;
    let s = report.summary;
    let zone = zone(report);
    let money = Money::gather(report)?;
    let mut controls: Vec<&crate::controls::Control> = s.controls.results.iter().collect();
    controls.sort_by_key(|c| c.ok);
    let groups = ExceptionLines::gather(report.unmatched.iter(), EXCEPTION_LINES, LISTED_ALIKE)?;
    // Money out (a reversal) is said apart from money in, never added to it.
    let (line, class) = status_line_counted(report, &money.worth(1), &grouped);
    let stale_open: usize = s
        .open_topup_ages
        .iter()
        .flatten()
        .filter(|b| b.stale)
        .map(|b| b.count)
        .sum();
    let template = env.get_template("page.html").map_err(io::Error::other)?;
    template
        .render_captured_to(
            context! {
                s => Value::from(Serde(s)),
                zone => zone.name(),
                utc => zone == Tz::UTC,
                started => when_text(&s.started_at, zone),
                finished => when_text(&s.finished_at, zone),
                generated_at => when(report.generated_at, zone),
                status_line => line,
                status_class => class,
                counts => context! {
                    read => grouped(s.counts.read),
                    matched => grouped(s.counts.matched),
                    unmatched => grouped(s.counts.unmatched),
                    ignored => grouped(s.counts.ignored),
                },
                totals => Value::from(Serde(total_groups(report, &money))),
                charts => Value::from(Serde(charts(&money))),
                matched_money => money.category_line(0),
                exception_money => money.category_line(1),
                ignored_money => money.category_line(2),
                controls => Value::from(Serde(&controls)),
                groups => exception_groups(groups),
                exception_lines => grouped(EXCEPTION_LINES),
                matched => first_rows(report.matched)?,
                ignored => first_rows(report.ignored)?,
                more_matched => s.counts.matched > LISTED_ROWS,
                more_ignored => s.counts.ignored > LISTED_ROWS,
                listed_rows => LISTED_ROWS,
                aging => Value::from(Serde(age_views(report))),
                stale_open => grouped(stale_open),
                open_total => grouped(open.total),
                more_open => open.total > LISTED_ROWS,
                open => Value::from(Serde(open_rows(report, open, zone))),
                read_before => s.inputs.iter().filter_map(|i| i.read_before_line()).collect::<Vec<_>>(),
                worklist => s.worklist.as_ref().map(|w| Value::from(Serde(worklist_view(w, zone)))),
            },
            out,
        )
        .map_err(io::Error::other)?;
    Ok(())
}

/// The worklist as the page leads with it: what needs action today.
#[derive(Serialize)]
struct WorklistView {
    new_count: String,
    new_money: String,
    carried_count: String,
    carried: Vec<WorklistBucketView>,
    oldest: Vec<WorklistOldView>,
    more_carried: Option<String>,
    since_run: Option<String>,
    resolved: Vec<WorklistResolvedView>,
    more_resolved: Option<String>,
}

#[derive(Serialize)]
struct WorklistBucketView {
    label: String,
    count: String,
    money: String,
}

#[derive(Serialize)]
struct WorklistOldView {
    id: i64,
    opened: String,
    age_days: i64,
    reason: String,
    amount: String,
    currency: String,
}

#[derive(Serialize)]
struct WorklistResolvedView {
    kind: String,
    by: String,
    at: String,
    note: String,
    exceptions: String,
    reopened: Option<String>,
}

/// "1,250.00 EUR in, 20.00 EUR out": what came in apart from what went out.
fn money_line(bucket: &crate::report::summary::WorklistBucket) -> String {
    let side = |by: &BTreeMap<Currency, crate::report::summary::CurrencyTotal>, way: &str| {
        (!by.is_empty()).then(|| {
            let sums = by.iter().map(|(c, t)| (*c, t.sum)).collect();
            format!("{} {way}", sums_line(&sums))
        })
    };
    [side(&bucket.money_in, "in"), side(&bucket.money_out, "out")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ")
}

fn worklist_view(w: &crate::report::summary::Worklist, zone: Tz) -> WorklistView {
    let carried_total: usize = w.carried_over.iter().map(|b| b.count).sum();
    WorklistView {
        new_count: grouped(w.new.count),
        new_money: money_line(&w.new),
        carried_count: grouped(carried_total),
        carried: w
            .carried_over
            .iter()
            .map(|b| WorklistBucketView {
                label: b.label(),
                count: grouped(b.count),
                money: money_line(b),
            })
            .collect(),
        oldest: w
            .oldest
            .iter()
            .map(|e| WorklistOldView {
                id: e.id,
                opened: when_text(&e.opened_at, zone),
                age_days: e.age_days,
                reason: e.reason.clone(),
                amount: money_text(e.amount, e.currency),
                currency: e.currency.to_string(),
            })
            .collect(),
        more_carried: (carried_total > w.oldest.len())
            .then(|| grouped(carried_total - w.oldest.len())),
        since_run: w.since_run.clone(),
        resolved: w
            .resolved
            .iter()
            .map(|r| WorklistResolvedView {
                kind: r.kind.to_lowercase(),
                by: r.by.clone(),
                at: when_text(&r.at, zone),
                note: r.note.clone(),
                exceptions: r
                    .exceptions
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                reopened: r.reopened_at.as_ref().map(|at| {
                    format!(
                        "reopened by {} at {}",
                        r.reopened_by.as_deref().unwrap_or("?"),
                        when_text(at, zone)
                    )
                }),
            })
            .collect(),
        more_resolved: (w.resolved_count > w.resolved.len())
            .then(|| grouped(w.resolved_count - w.resolved.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_grouped_by_thousands_with_the_currencys_decimals() {
        let eur: Currency = "EUR".parse().unwrap();
        let jpy: Currency = "JPY".parse().unwrap();
        let text = |a: &str, c| money_text(a.parse().unwrap(), c);
        assert_eq!(text("0", eur), "0.00");
        assert_eq!(text("999.5", eur), "999.50");
        assert_eq!(text("1250", eur), "1,250.00");
        assert_eq!(text("-1234567.891", eur), "-1,234,567.891");
        assert_eq!(text("-100", eur), "-100.00");
        assert_eq!(text("1500000", jpy), "1,500,000");
    }

    #[test]
    fn a_moment_is_shown_in_the_zone_and_in_utc() {
        let at: DateTime<Utc> = "2026-11-22T08:00:00Z".parse().unwrap();
        assert_eq!(when(at, Tz::UTC), "2026-11-22T08:00:00Z");
        assert_eq!(
            when(at, chrono_tz::Europe::Berlin),
            "2026-11-22 09:00:00 CET (2026-11-22T08:00:00Z)"
        );
        assert_eq!(
            when_text("2026-07-01T10:30:00Z", chrono_tz::America::New_York),
            "2026-07-01 06:30:00 EDT (2026-07-01T10:30:00Z)"
        );
    }

    #[test]
    fn a_table_gives_each_column_a_width_or_a_share_and_cuts_ids_on_one_line() {
        let table = table_macro("t", &EXCEPTION_COLUMNS);
        assert!(
            table.contains("<colgroup><col style=\"width:2.75rem\">"),
            "{table}"
        );
        assert!(
            table.contains(
                r#"<div class="id" title="{{ r.counterparty_iban }}">{{ r.counterparty_iban }}</div>"#
            ),
            "{table}"
        );
        assert_eq!(
            table.matches("<col>").count(),
            1,
            "the suggestion takes what the others leave"
        );
    }
}
