//! `report.xlsx`: the same report as a workbook for people who work in spreadsheets. Amounts are
//! numbers with two-decimal formats (the CSV files keep the exact decimal text), dates are
//! dates (those before 1900, which Excel cannot hold, are `YYYY-MM-DD` text), header rows are
//! frozen with filters, and bank text is always written as a string, so a spreadsheet never
//! runs it as a formula. A text longer than a cell holds is cut with a marker naming the file
//! that has it whole: a report's limits never fail the night.

use std::borrow::Cow;
use std::io;

use chrono::{Datelike, NaiveDate, NaiveDateTime};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use rust_xlsxwriter::{DocProperties, Format, Workbook, Worksheet, XlsxError};

use super::columns::{self, Column, Value};
use super::summary::AgeBucket;
use super::{OpenTopUps, Report, Rows, grouped};
use crate::row::Row;
use crate::topup::{TopUp, format_timestamp};

fn money_format(decimals: u32) -> Format {
    let pattern = if decimals == 0 {
        "#,##0".to_string()
    } else {
        format!("#,##0.{}", "0".repeat(decimals as usize))
    };
    Format::new().set_num_format(pattern)
}

/// A cell value; money stays a decimal until the moment it becomes a spreadsheet number.
enum Cell<'a> {
    Text(Cow<'a, str>),
    Money(Option<Decimal>, u32),
    Date(Option<NaiveDate>),
    Count(usize),
    /// A moment (UTC), to the second.
    Moment(NaiveDateTime),
    Flag(bool),
}

/// The cell formats of a workbook, made once: a format per cell costs a hash look-up each.
struct Formats {
    bold: Format,
    date: Format,
    moment: Format,
    /// Money with 0 to 8 decimals.
    money: Vec<Format>,
}

impl Formats {
    fn new() -> Self {
        Formats {
            bold: Format::new().set_bold(),
            date: Format::new().set_num_format("yyyy-mm-dd"),
            moment: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
            money: (0..=8).map(money_format).collect(),
        }
    }

    fn money(&self, decimals: u32) -> &Format {
        &self.money[(decimals as usize).min(self.money.len() - 1)]
    }
}

impl Cell<'_> {
    /// The cell with its text its own.
    fn into_owned(self) -> Cell<'static> {
        match self {
            Cell::Text(text) => Cell::Text(Cow::Owned(text.into_owned())),
            Cell::Money(money, decimals) => Cell::Money(money, decimals),
            Cell::Date(date) => Cell::Date(date),
            Cell::Count(n) => Cell::Count(n),
            Cell::Moment(at) => Cell::Moment(at),
            Cell::Flag(flag) => Cell::Flag(flag),
        }
    }

    /// Characters the cell shows, for the column width.
    fn width(&self) -> usize {
        match self {
            Cell::Text(text) => text.chars().count(),
            Cell::Money(Some(value), _) => value.to_string().len() + 3,
            Cell::Date(Some(_)) => 10,
            Cell::Count(n) => n.to_string().len(),
            Cell::Moment(_) => 19,
            Cell::Flag(_) => 5,
            Cell::Money(None, _) | Cell::Date(None) => 0,
        }
    }
}

/// Column widths that fit the header and every cell (capped), measured before any row is
/// written: a constant-memory sheet writes its columns first.
struct Widths(Vec<usize>);

impl Widths {
    fn new(header: &[&str]) -> Self {
        Widths(header.iter().map(|h| h.len() + 2).collect())
    }

    fn measure(&mut self, cells: &[Cell]) {
        for (w, cell) in self.0.iter_mut().zip(cells) {
            *w = (*w).max(cell.width().min(60) + 2);
        }
    }
}

/// The most a cell's text may hold: Excel's 32,767 characters, counted (as Excel and
/// rust_xlsxwriter count them) in UTF-16 code units.
const CELL_TEXT_MAX: usize = 32_767;

/// `text` as a cell can hold it: whole when it fits, else its beginning with a marker saying
/// how long it was and which file (`whole_in`) has it whole.
fn fit_cell<'t>(text: &'t str, whole_in: &str) -> Cow<'t, str> {
    // A UTF-8 text has at least as many bytes as UTF-16 code units.
    if text.len() <= CELL_TEXT_MAX || text.encode_utf16().count() <= CELL_TEXT_MAX {
        return Cow::Borrowed(text);
    }
    let marker = format!(
        " … [cut: {} characters; the whole text is in {whole_in}]",
        grouped(text.chars().count())
    );
    let mut room = CELL_TEXT_MAX - marker.encode_utf16().count();
    let end = text
        .char_indices()
        .find(|(_, c)| match room.checked_sub(c.len_utf16()) {
            Some(left) => {
                room = left;
                false
            }
            None => true,
        })
        .map_or(text.len(), |(at, _)| at);
    Cow::Owned(format!("{}{marker}", &text[..end]))
}

/// A sheet written row by row straight to a temporary file (rust_xlsxwriter's constant-memory
/// mode): the workbook's memory does not grow with the night.
struct Sheet<'w> {
    sheet: &'w mut Worksheet,
    formats: &'w Formats,
    row: u32,
    columns: u16,
    /// The file that has every text of the sheet whole, named where a text is cut.
    whole_in: &'w str,
}

impl<'w> Sheet<'w> {
    fn new(
        workbook: &'w mut Workbook,
        formats: &'w Formats,
        name: &str,
        header: &[&str],
        widths: &Widths,
        whole_in: &'w str,
    ) -> Result<Self, XlsxError> {
        let sheet = workbook.add_worksheet_with_constant_memory()?;
        sheet.set_name(name)?;
        for (col, width) in widths.0.iter().enumerate() {
            sheet.set_column_width(col as u16, *width as f64)?;
        }
        sheet.set_freeze_panes(1, 0)?;
        for (col, title) in header.iter().enumerate() {
            sheet.write_string_with_format(0, col as u16, *title, &formats.bold)?;
        }
        Ok(Sheet {
            sheet,
            formats,
            row: 0,
            columns: header.len() as u16,
            whole_in,
        })
    }

    fn push(&mut self, cells: &[Cell]) -> Result<(), XlsxError> {
        self.row += 1;
        for (i, cell) in cells.iter().enumerate() {
            let col = i as u16;
            match cell {
                Cell::Text(text) => {
                    let text = fit_cell(text, self.whole_in);
                    self.sheet.write_string(self.row, col, text.as_ref())?;
                }
                Cell::Money(Some(value), decimals) => {
                    // Spreadsheets hold doubles: exact to the cent far beyond any real amount.
                    let number = value.to_f64().unwrap_or_default();
                    self.sheet.write_number_with_format(
                        self.row,
                        col,
                        number,
                        self.formats.money(*decimals),
                    )?;
                }
                // Excel's dates start in 1900: an earlier one would be a negative serial.
                Cell::Date(Some(date)) if date.year() < 1900 => {
                    self.sheet.write_string(self.row, col, date.to_string())?;
                }
                Cell::Date(Some(date)) => {
                    self.sheet.write_datetime_with_format(
                        self.row,
                        col,
                        date,
                        &self.formats.date,
                    )?;
                }
                Cell::Count(n) => {
                    self.sheet.write_number(self.row, col, *n as u32)?;
                }
                Cell::Moment(at) if at.year() < 1900 => {
                    self.sheet.write_string(self.row, col, at.to_string())?;
                }
                Cell::Moment(at) => {
                    self.sheet.write_datetime_with_format(
                        self.row,
                        col,
                        at,
                        &self.formats.moment,
                    )?;
                }
                Cell::Flag(flag) => {
                    self.sheet.write_boolean(self.row, col, *flag)?;
                }
                Cell::Money(None, _) | Cell::Date(None) => {}
            }
        }
        Ok(())
    }

    /// After the `shown` rows, says how many of `total` are only in the CSV file.
    fn overflow(&mut self, total: usize, shown: usize, csv_file: &str) -> Result<(), XlsxError> {
        if total > shown {
            let note = format!("{} more rows are in {csv_file}", total - shown);
            self.push(&[Cell::Text(note.into())])?;
        }
        Ok(())
    }

    fn finish(self) -> Result<(), XlsxError> {
        self.finish_with_notes(&[])
    }

    /// Filters the rows written so far, then writes `notes` below them after an empty row,
    /// outside the filtered range (a filter would hide or sort them among the rows).
    fn finish_with_notes(mut self, notes: &[String]) -> Result<(), XlsxError> {
        if self.row > 0 {
            self.sheet
                .autofilter(0, 0, self.row, self.columns.saturating_sub(1))?;
        }
        if !notes.is_empty() {
            self.row += 1;
        }
        for note in notes {
            self.push(&[Cell::Text(note.as_str().into())])?;
        }
        Ok(())
    }
}

/// A row's cells, in the order of `columns`.
fn row_cells<'r>(columns: &[&Column], row: &'r Row) -> Vec<Cell<'r>> {
    columns
        .iter()
        .map(|column| match (column.value)(row) {
            Value::Text(text) | Value::Foreign(text) => Cell::Text(text),
            Value::Date(date) => Cell::Date(date),
            Value::Amount(amount, currency) => {
                Cell::Money(Some(amount), columns::sheet_decimals(amount, currency))
            }
            Value::Money(money, decimals) => Cell::Money(money, decimals),
        })
        .collect()
}

fn rows_sheet(
    workbook: &mut Workbook,
    formats: &Formats,
    name: &str,
    rows: Rows,
    csv_file: &str,
) -> Result<(), XlsxError> {
    let mut sheet = sheet_of_rows(workbook, formats, name, rows, csv_file)?;
    sheet.overflow(rows.len(), SHEET_ROWS, csv_file)?;
    sheet.finish()
}

/// A sheet of the first [`SHEET_ROWS`] rows in the transaction columns, left open for what
/// follows them.
fn sheet_of_rows<'w>(
    workbook: &'w mut Workbook,
    formats: &'w Formats,
    name: &str,
    rows: Rows,
    csv_file: &'w str,
) -> Result<Sheet<'w>, XlsxError> {
    let columns = columns::sheet_columns();
    let header: Vec<&str> = columns.iter().map(|c| c.name).collect();
    // Rows written aside are read twice rather than held: once to size the columns.
    let mut widths = Widths::new(&header);
    for r in rows.iter().take(SHEET_ROWS) {
        widths.measure(&row_cells(&columns, &*r?));
    }
    let mut sheet = Sheet::new(workbook, formats, name, &header, &widths, csv_file)?;
    for r in rows.iter().take(SHEET_ROWS) {
        sheet.push(&row_cells(&columns, &*r?))?;
    }
    Ok(sheet)
}

/// Writes a small sheet whose rows are all made first; `whole_in` has its texts whole.
fn small_sheet(
    workbook: &mut Workbook,
    formats: &Formats,
    name: &str,
    header: &[&str],
    rows: &[Vec<Cell>],
    whole_in: &str,
) -> Result<(), XlsxError> {
    let mut widths = Widths::new(header);
    for cells in rows {
        widths.measure(cells);
    }
    let mut sheet = Sheet::new(workbook, formats, name, header, &widths, whole_in)?;
    for cells in rows {
        sheet.push(cells)?;
    }
    sheet.finish()
}

/// Rows a sheet can hold below its header (Excel's limit is 1,048,576 rows); what does not fit
/// is counted in a last row pointing to the CSV file, which always has everything.
const SHEET_ROWS: usize = 1_048_576 - 2;

/// The sheet of `open_topups.csv`'s top-ups lists the oldest ones (the ones to chase); the file
/// has all. A platform with millions of open top-ups must not pay for a million-row sheet
/// every night.
const OPEN_SHEET_ROWS: usize = super::OPEN_LISTED;

fn open_cells<'t>(t: &'t TopUp, report: &Report) -> [Cell<'t>; 8] {
    let age = t.age_days(report.as_of);
    let stale = if age > report.summary.stale_after_days {
        "yes"
    } else {
        ""
    };
    [
        Cell::Text(t.id.to_string().into()),
        Cell::Date(Some(t.created_at.date_naive())),
        Cell::Money(Some(t.cash_amount), t.currency.minor_units()),
        Cell::Text(t.currency.as_str().into()),
        Cell::Text(t.status.as_str().into()),
        Cell::Text(t.settlement_reference.to_string().into()),
        Cell::Count(age.max(0) as usize),
        Cell::Text(stale.into()),
    ]
}

const OPEN_HEADER: [&str; 8] = [
    "id",
    "created",
    "amount",
    "currency",
    "status",
    "settlement_reference",
    "age_days",
    "stale",
];

/// The top-ups of `open_topups.csv`, the oldest [`OPEN_SHEET_ROWS`] of them.
fn open_sheet(
    workbook: &mut Workbook,
    formats: &Formats,
    name: &str,
    report: &Report,
    open: &OpenTopUps,
) -> Result<(), XlsxError> {
    let mut widths = Widths::new(&OPEN_HEADER);
    for t in open.oldest.iter().take(OPEN_SHEET_ROWS) {
        widths.measure(&open_cells(t, report));
    }
    let mut sheet = Sheet::new(
        workbook,
        formats,
        name,
        &OPEN_HEADER,
        &widths,
        "open_topups.csv",
    )?;
    for t in open.oldest.iter().take(OPEN_SHEET_ROWS) {
        sheet.push(&open_cells(t, report))?;
    }
    sheet.overflow(open.total, OPEN_SHEET_ROWS, "open_topups.csv")?;
    sheet.finish()
}

/// Every open top-up by age (summary version 2 on): a row per bucket and currency, an empty
/// bucket as a row of its own.
fn ages_sheet(
    workbook: &mut Workbook,
    formats: &Formats,
    ages: &[AgeBucket],
) -> Result<(), XlsxError> {
    let mut rows: Vec<Vec<Cell>> = Vec::new();
    for bucket in ages {
        let stale = if bucket.stale { "yes" } else { "" };
        let label = bucket.label();
        if bucket.by_currency.is_empty() {
            rows.push(vec![
                Cell::Text(label.clone().into()),
                Cell::Text("".into()),
                Cell::Count(0),
                Cell::Money(None, 0),
                Cell::Text(stale.into()),
            ]);
        }
        for (currency, total) in &bucket.by_currency {
            rows.push(vec![
                Cell::Text(label.clone().into()),
                Cell::Text(currency.as_str().into()),
                Cell::Count(total.count),
                Cell::Money(
                    Some(total.sum),
                    columns::sheet_decimals(total.sum, *currency),
                ),
                Cell::Text(stale.into()),
            ]);
        }
    }
    small_sheet(
        workbook,
        formats,
        "Open top-ups",
        &["age", "currency", "count", "sum", "stale"],
        &rows,
        "summary.json",
    )
}

/// A timestamp of the summary (RFC 3339) as a moment in UTC, or as text if unreadable.
fn moment(at: &str) -> Cell<'_> {
    match chrono::DateTime::parse_from_rfc3339(at) {
        Ok(at) => Cell::Moment(at.naive_utc()),
        Err(_) => Cell::Text(at.into()),
    }
}

/// The Summary sheet of summary version 3 on: the run's facts, one typed value a row (times
/// as date-times in UTC, and in the report's time zone when it is another; flags as booleans,
/// counts as numbers); the totals are a sheet of their own.
fn run_sheet(workbook: &mut Workbook, formats: &Formats, report: &Report) -> Result<(), XlsxError> {
    let s = report.summary;
    let zone = super::page::zone(report);
    let local = |at: &str| match chrono::DateTime::parse_from_rfc3339(at) {
        Ok(at) => Cell::Moment(at.with_timezone(&zone).naive_local()),
        Err(_) => Cell::Text(at.to_string().into()),
    };
    let generated = format_timestamp(report.generated_at);
    let mut rows: Vec<Vec<Cell>> = Vec::new();
    let mut push = |label: String, value: Cell<'static>| {
        rows.push(vec![Cell::Text(label.into()), value]);
    };
    // An input read before comes first, where the eye lands.
    for line in s.inputs.iter().filter_map(|i| i.read_before_line()) {
        push("read before".into(), Cell::Text(line.into()));
    }
    push("run id".into(), Cell::Text(s.run_id.clone().into()));
    push("started".into(), moment(&s.started_at).into_owned());
    push("finished".into(), moment(&s.finished_at).into_owned());
    push("generated".into(), moment(&generated).into_owned());
    push(
        "time zone".into(),
        Cell::Text(zone.name().to_string().into()),
    );
    if zone != chrono_tz::Tz::UTC {
        push(format!("started ({})", zone.name()), local(&s.started_at));
        push(format!("finished ({})", zone.name()), local(&s.finished_at));
    }
    push("dry run".into(), Cell::Flag(s.dry_run));
    push("inputs".into(), Cell::Count(s.inputs.len()));
    push("inputs rejected".into(), Cell::Count(s.inputs_rejected));
    push("controls checked".into(), Cell::Count(s.controls.checked));
    push("controls failed".into(), Cell::Count(s.controls.failed));
    push("read".into(), Cell::Count(s.counts.read));
    push("matched".into(), Cell::Count(s.counts.matched));
    push("needs a human".into(), Cell::Count(s.counts.unmatched));
    push("ignored".into(), Cell::Count(s.counts.ignored));
    push(
        "conservation holds".into(),
        Cell::Flag(s.counts.conservation_holds),
    );
    push("open top-ups".into(), Cell::Count(s.open_topups));
    push(
        "stale after days".into(),
        Cell::Count(s.stale_after_days.max(0) as usize),
    );
    small_sheet(
        workbook,
        formats,
        "Summary",
        &["item", "value"],
        &rows,
        "summary.json",
    )
}

/// The worklist as two sheets: the open exceptions' money by age (tonight's new ones first),
/// money in apart from money out, and the resolutions since the previous run.
fn worklist_sheets(
    workbook: &mut Workbook,
    formats: &Formats,
    worklist: &super::summary::Worklist,
) -> Result<(), XlsxError> {
    let mut rows: Vec<Vec<Cell>> = Vec::new();
    let spans = std::iter::once(("new tonight".to_string(), &worklist.new)).chain(
        worklist
            .carried_over
            .iter()
            .map(|b| (format!("carried over, {}", b.label()), b)),
    );
    for (span, bucket) in spans {
        for (way, side) in [("in", &bucket.money_in), ("out", &bucket.money_out)] {
            for (currency, total) in side {
                rows.push(vec![
                    Cell::Text(span.clone().into()),
                    Cell::Text(way.into()),
                    Cell::Text(currency.as_str().to_string().into()),
                    Cell::Count(total.count),
                    Cell::Money(
                        Some(total.sum),
                        columns::sheet_decimals(total.sum, *currency),
                    ),
                ]);
            }
        }
    }
    small_sheet(
        workbook,
        formats,
        "Worklist",
        &["exceptions", "money", "currency", "count", "sum"],
        &rows,
        "summary.json",
    )?;
    let resolved: Vec<Vec<Cell>> = worklist
        .resolved
        .iter()
        .map(|r| {
            vec![
                Cell::Count(r.resolution.max(0) as usize),
                Cell::Text(r.kind.clone().into()),
                Cell::Text(r.by.clone().into()),
                moment(&r.at).into_owned(),
                Cell::Text(r.note.clone().into()),
                Cell::Text(
                    r.exceptions
                        .iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                        .into(),
                ),
                Cell::Text(r.reopened_by.clone().unwrap_or_default().into()),
            ]
        })
        .collect();
    small_sheet(
        workbook,
        formats,
        "Resolved",
        &[
            "resolution",
            "what",
            "by",
            "at",
            "note",
            "exceptions",
            "reopened by",
        ],
        &resolved,
        "summary.json",
    )
}

/// Every transaction's money by category, outcome, direction and currency, one line each.
fn totals_sheet(
    workbook: &mut Workbook,
    formats: &Formats,
    report: &Report,
) -> Result<(), XlsxError> {
    let money = super::page::Money::gather(report)?;
    let rows: Vec<Vec<Cell>> = money
        .lines
        .iter()
        .map(|((place, outcome, currency, direction), tally)| {
            vec![
                Cell::Text(super::page::CATEGORIES[*place].1.into()),
                Cell::Text((*outcome).into()),
                Cell::Text((*direction).into()),
                Cell::Text(currency.as_str().into()),
                Cell::Count(tally.count),
                Cell::Money(
                    Some(tally.sum),
                    columns::sheet_decimals(tally.sum, *currency),
                ),
            ]
        })
        .collect();
    small_sheet(
        workbook,
        formats,
        "Totals",
        &[
            "category",
            "outcome",
            "direction",
            "currency",
            "count",
            "sum",
        ],
        &rows,
        "summary.json",
    )
}

/// The exceptions grouped by reason (sorted by outcome, then in the order read), each with
/// what a person usually does about it; a pass over the rows per reason, none held.
fn exceptions_sheet(
    workbook: &mut Workbook,
    formats: &Formats,
    rows: Rows,
) -> Result<(), XlsxError> {
    let columns = columns::sheet_columns();
    let rest = &columns[1..];
    let mut header = vec!["outcome", "what_to_do"];
    header.extend(rest.iter().map(|c| c.name));
    let cells = |row: &Row| {
        let mut cells = vec![
            Cell::Text(row.outcome.as_str().into()),
            Cell::Text(super::html::explain(row.outcome).1.into()),
        ];
        cells.extend(row_cells(rest, row).into_iter().map(Cell::into_owned));
        cells
    };
    let mut widths = Widths::new(&header);
    let mut reasons = std::collections::BTreeSet::new();
    for r in rows.iter().take(SHEET_ROWS) {
        let r = r?;
        widths.measure(&cells(&r));
        reasons.insert(r.outcome.as_str());
    }
    let mut sheet = Sheet::new(
        workbook,
        formats,
        "Exceptions",
        &header,
        &widths,
        "unmatched.csv",
    )?;
    let mut written = 0;
    for reason in reasons {
        for r in rows.iter() {
            let r = r?;
            if r.outcome.as_str() == reason && written < SHEET_ROWS {
                sheet.push(&cells(&r))?;
                written += 1;
            }
        }
    }
    let mut notes = Vec::new();
    if rows.len() > written {
        notes.push(format!(
            "{} more rows are in unmatched.csv",
            rows.len() - written
        ));
    }
    sheet.finish_with_notes(&notes)
}

/// Matched or ignored rows (summary version 3 on): as [`rows_sheet`], the note on rows only in
/// the CSV file below the filtered range.
fn listed_sheet(
    workbook: &mut Workbook,
    formats: &Formats,
    name: &str,
    rows: Rows,
    csv_file: &str,
) -> Result<(), XlsxError> {
    let sheet = sheet_of_rows(workbook, formats, name, rows, csv_file)?;
    let mut notes = Vec::new();
    if rows.len() > SHEET_ROWS {
        notes.push(format!(
            "{} more rows are in {csv_file}",
            rows.len() - SHEET_ROWS
        ));
    }
    sheet.finish_with_notes(&notes)
}

const OPEN_HEADER_V3: [&str; 9] = [
    "id",
    "account_group_id",
    "created_at",
    "amount",
    "currency",
    "status",
    "settlement_reference",
    "age_days",
    "stale",
];

fn open_cells_v3<'t>(t: &'t TopUp, report: &Report) -> [Cell<'t>; 9] {
    let age = t.age_days(report.as_of);
    [
        Cell::Text(t.id.to_string().into()),
        Cell::Text(t.account_group_id.to_string().into()),
        Cell::Moment(t.created_at.naive_utc()),
        Cell::Money(Some(t.cash_amount), t.currency.minor_units()),
        Cell::Text(t.currency.as_str().into()),
        Cell::Text(t.status.as_str().into()),
        Cell::Text(t.settlement_reference.to_string().into()),
        Cell::Count(age.max(0) as usize),
        Cell::Flag(age > report.summary.stale_after_days),
    ]
}

/// The newly stale top-ups (summary version 3 on): with their account group and the moment
/// they were created (UTC), the stale flag a boolean, the note below the filtered range.
fn newly_stale_sheet(
    workbook: &mut Workbook,
    formats: &Formats,
    report: &Report,
    open: &OpenTopUps,
) -> Result<(), XlsxError> {
    let mut widths = Widths::new(&OPEN_HEADER_V3);
    for t in open.oldest.iter().take(OPEN_SHEET_ROWS) {
        widths.measure(&open_cells_v3(t, report));
    }
    let mut sheet = Sheet::new(
        workbook,
        formats,
        "Newly stale",
        &OPEN_HEADER_V3,
        &widths,
        "open_topups.csv",
    )?;
    for t in open.oldest.iter().take(OPEN_SHEET_ROWS) {
        sheet.push(&open_cells_v3(t, report))?;
    }
    let mut notes = Vec::new();
    if open.total > OPEN_SHEET_ROWS {
        notes.push(format!(
            "{} more rows are in open_topups.csv",
            open.total - OPEN_SHEET_ROWS
        ));
    }
    sheet.finish_with_notes(&notes)
}

/// Every open top-up by age (summary version 3 on): the stale flag a boolean.
fn ages_sheet_v3(
    workbook: &mut Workbook,
    formats: &Formats,
    ages: &[AgeBucket],
) -> Result<(), XlsxError> {
    let mut rows: Vec<Vec<Cell>> = Vec::new();
    for bucket in ages {
        let label = bucket.label();
        let totals: Vec<(Option<&crate::money::Currency>, usize, Option<Decimal>)> =
            if bucket.by_currency.is_empty() {
                vec![(None, 0, None)]
            } else {
                bucket
                    .by_currency
                    .iter()
                    .map(|(c, t)| (Some(c), t.count, Some(t.sum)))
                    .collect()
            };
        for (currency, count, sum) in totals {
            let decimals = match (currency, sum) {
                (Some(c), Some(sum)) => columns::sheet_decimals(sum, *c),
                _ => 0,
            };
            rows.push(vec![
                Cell::Text(label.clone().into()),
                Cell::Text(currency.map_or("", |c| c.as_str()).to_string().into()),
                Cell::Count(count),
                Cell::Money(sum, decimals),
                Cell::Flag(bucket.stale),
            ]);
        }
    }
    small_sheet(
        workbook,
        formats,
        "Open top-ups",
        &["age", "currency", "count", "sum", "stale"],
        &rows,
        "summary.json",
    )
}

/// The workbook of summary version 3 on, laid out for analysts.
fn build_analyst(
    workbook: &mut Workbook,
    formats: &Formats,
    report: &Report,
    open: &OpenTopUps,
) -> Result<(), XlsxError> {
    run_sheet(workbook, formats, report)?;
    if let Some(worklist) = &report.summary.worklist {
        worklist_sheets(workbook, formats, worklist)?;
    }
    totals_sheet(workbook, formats, report)?;
    exceptions_sheet(workbook, formats, report.unmatched)?;
    listed_sheet(workbook, formats, "Matched", report.matched, "matched.csv")?;
    listed_sheet(workbook, formats, "Ignored", report.ignored, "ignored.csv")?;
    ages_sheet_v3(
        workbook,
        formats,
        report
            .summary
            .open_topup_ages
            .as_deref()
            .unwrap_or_default(),
    )?;
    newly_stale_sheet(workbook, formats, report, open)
}

fn build(report: &Report, open: &OpenTopUps) -> Result<Workbook, XlsxError> {
    let mut workbook = Workbook::new();
    // Fast compression: a night's workbook is written every run, read a few times.
    workbook.set_zip_compression_level(1);
    workbook.set_properties(
        &DocProperties::new()
            .set_title("recon settlement report")
            .set_creation_datetime(&report.generated_at),
    );
    let formats = Formats::new();
    if report.summary.analyst_layout() {
        build_analyst(&mut workbook, &formats, report, open)?;
        return Ok(workbook);
    }
    let s = report.summary;
    let mut summary: Vec<Vec<Cell>> = Vec::new();
    // An input read before comes first, where the eye lands.
    for line in s.inputs.iter().filter_map(|i| i.read_before_line()) {
        summary.push(vec![
            Cell::Text("read before".into()),
            Cell::Text(line.into()),
        ]);
    }
    for (label, value) in [
        ("run id", s.run_id.clone()),
        ("started", s.started_at.clone()),
        ("finished", s.finished_at.clone()),
        ("dry run", s.dry_run.to_string()),
        ("inputs rejected", s.inputs_rejected.to_string()),
        ("controls failed", s.controls.failed.to_string()),
        ("generated", format_timestamp(report.generated_at)),
    ] {
        summary.push(vec![Cell::Text(label.into()), Cell::Text(value.into())]);
    }
    for (label, n) in [
        ("read", s.counts.read),
        ("matched", s.counts.matched),
        ("needs a human", s.counts.unmatched),
        ("ignored", s.counts.ignored),
    ] {
        summary.push(vec![
            Cell::Text(label.into()),
            Cell::Text("".into()),
            Cell::Count(n),
        ]);
    }
    for (outcome, total) in &s.outcomes {
        for (currency, t) in &total.by_currency {
            summary.push(vec![
                Cell::Text(outcome.0.as_str().into()),
                Cell::Text(currency.as_str().into()),
                Cell::Count(t.count),
                Cell::Money(Some(t.sum), columns::sheet_decimals(t.sum, *currency)),
            ]);
        }
    }
    small_sheet(
        &mut workbook,
        &formats,
        "Summary",
        &["item", "currency", "count", "sum"],
        &summary,
        "summary.json",
    )?;
    rows_sheet(
        &mut workbook,
        &formats,
        "Matched",
        report.matched,
        "matched.csv",
    )?;
    rows_sheet(
        &mut workbook,
        &formats,
        "Exceptions",
        report.unmatched,
        "unmatched.csv",
    )?;
    rows_sheet(
        &mut workbook,
        &formats,
        "Ignored",
        report.ignored,
        "ignored.csv",
    )?;
    match &s.open_topup_ages {
        Some(ages) => {
            ages_sheet(&mut workbook, &formats, ages)?;
            open_sheet(&mut workbook, &formats, "Newly stale", report, open)?;
        }
        None => open_sheet(&mut workbook, &formats, "Open top-ups", report, open)?,
    }
    Ok(workbook)
}

/// Writes the workbook.
pub fn write(
    out: &mut (dyn io::Write + Send),
    report: &Report,
    open: &OpenTopUps,
) -> io::Result<()> {
    let mut workbook = build(report, open).map_err(io::Error::other)?;
    // Zipped straight into the file: the workbook of a large night is tens of megabytes.
    workbook.save_to_writer(out).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_that_fits_a_cell_is_kept_whole() {
        let text = "ä".repeat(CELL_TEXT_MAX);
        assert!(matches!(fit_cell(&text, "x.csv"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_longer_text_is_cut_to_the_limit_with_a_marker_counting_characters() {
        // Each '😀' is two UTF-16 units, as Excel counts them.
        let text = format!("a{}", "😀".repeat(20_000));
        let cell = fit_cell(&text, "unmatched.csv");
        assert!(
            cell.ends_with(" … [cut: 20,001 characters; the whole text is in unmatched.csv]"),
            "{}",
            &cell[cell.len() - 80..]
        );
        let units = cell.encode_utf16().count();
        assert!(
            (CELL_TEXT_MAX - 1..=CELL_TEXT_MAX).contains(&units),
            "{units}"
        );
        assert!(text.starts_with(cell.split(" … [cut").next().unwrap()));
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(grouped(7), "7");
        assert_eq!(grouped(40_000), "40,000");
        assert_eq!(grouped(1_048_576), "1,048,576");
    }
}
