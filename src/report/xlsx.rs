//! `report.xlsx`: the same report as a workbook for people who work in spreadsheets. Amounts are
//! numbers with two-decimal formats (the CSV files keep the exact decimal text), dates are
//! dates, header rows are frozen with filters, and bank text is always written as a string, so
//! a spreadsheet never runs it as a formula.

use std::io;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use rust_xlsxwriter::{DocProperties, Format, Workbook, Worksheet, XlsxError};

use super::Report;
use crate::row::Row;
use crate::store::topups::age_days;
use crate::topup::format_timestamp;

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
    Text(&'a str),
    Owned(String),
    Money(Option<Decimal>, u32),
    Date(Option<NaiveDate>),
    Count(usize),
}

struct Sheet<'w> {
    sheet: &'w mut Worksheet,
    row: u32,
    widths: Vec<usize>,
}

impl<'w> Sheet<'w> {
    fn new(sheet: &'w mut Worksheet, name: &str, header: &[&str]) -> Result<Self, XlsxError> {
        sheet.set_name(name)?;
        let bold = Format::new().set_bold();
        for (col, title) in header.iter().enumerate() {
            sheet.write_string_with_format(0, col as u16, *title, &bold)?;
        }
        sheet.set_freeze_panes(1, 0)?;
        Ok(Sheet {
            sheet,
            row: 0,
            widths: header.iter().map(|h| h.len() + 2).collect(),
        })
    }

    fn push(&mut self, cells: &[Cell]) -> Result<(), XlsxError> {
        self.row += 1;
        let date_format = Format::new().set_num_format("yyyy-mm-dd");
        for (i, cell) in cells.iter().enumerate() {
            let col = i as u16;
            let width = match cell {
                Cell::Text(text) => {
                    self.sheet.write_string(self.row, col, *text)?;
                    text.chars().count()
                }
                Cell::Owned(text) => {
                    self.sheet.write_string(self.row, col, text.as_str())?;
                    text.chars().count()
                }
                Cell::Money(Some(value), decimals) => {
                    // Spreadsheets hold doubles: exact to the cent far beyond any real amount.
                    let number = value.to_f64().unwrap_or_default();
                    self.sheet.write_number_with_format(
                        self.row,
                        col,
                        number,
                        &money_format(*decimals),
                    )?;
                    value.to_string().len() + 3
                }
                Cell::Date(Some(date)) => {
                    self.sheet
                        .write_datetime_with_format(self.row, col, date, &date_format)?;
                    10
                }
                Cell::Count(n) => {
                    self.sheet.write_number(self.row, col, *n as u32)?;
                    n.to_string().len()
                }
                Cell::Money(None, _) | Cell::Date(None) => 0,
            };
            if let Some(w) = self.widths.get_mut(i) {
                *w = (*w).max(width.min(60) + 2);
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<(), XlsxError> {
        for (col, width) in self.widths.iter().enumerate() {
            self.sheet.set_column_width(col as u16, *width as f64)?;
        }
        if self.row > 0 {
            let last_col = self.widths.len().saturating_sub(1) as u16;
            self.sheet.autofilter(0, 0, self.row, last_col)?;
        }
        Ok(())
    }
}

const ROW_HEADER: [&str; 18] = [
    "outcome",
    "amount",
    "currency",
    "direction",
    "booking_date",
    "value_date",
    "counterparty_name",
    "counterparty_iban",
    "remittance",
    "extracted_reference",
    "topup_id",
    "expected_amount",
    "difference",
    "suggestion",
    "statement_file",
    "position",
    "entry_ref",
    "bank_ref",
];

fn rows_sheet(workbook: &mut Workbook, name: &str, rows: &[Row]) -> Result<(), XlsxError> {
    let mut sheet = Sheet::new(workbook.add_worksheet(), name, &ROW_HEADER)?;
    for r in rows {
        let decimals = r.currency.minor_units().max(r.amount.scale());
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        sheet.push(&[
            Cell::Text(r.outcome.as_str()),
            Cell::Money(Some(r.amount), decimals),
            Cell::Text(r.currency.as_str()),
            Cell::Text(r.direction.code()),
            Cell::Date(r.booking_date),
            Cell::Date(r.value_date),
            Cell::Owned(text(&r.counterparty_name)),
            Cell::Owned(text(&r.counterparty_iban)),
            Cell::Text(&r.remittance),
            Cell::Owned(text(&r.extracted_reference)),
            Cell::Owned(r.topup_id.map(|t| t.to_string()).unwrap_or_default()),
            Cell::Money(r.expected_amount, decimals),
            Cell::Money(r.difference, decimals),
            Cell::Owned(text(&r.suggestion)),
            Cell::Text(&r.statement_file),
            Cell::Owned(r.position_text()),
            Cell::Owned(text(&r.entry_ref)),
            Cell::Owned(text(&r.servicer_ref)),
        ])?;
    }
    sheet.finish()
}

fn build(report: &Report) -> Result<Workbook, XlsxError> {
    let mut workbook = Workbook::new();
    // Fast compression: a night's workbook is written every run, read a few times.
    workbook.set_zip_compression_level(1);
    workbook.set_properties(
        &DocProperties::new()
            .set_title("recon settlement report")
            .set_creation_datetime(&report.generated_at),
    );
    let s = report.summary;
    let mut summary = Sheet::new(
        workbook.add_worksheet(),
        "Summary",
        &["item", "currency", "count", "sum"],
    )?;
    for (label, value) in [
        ("run id", s.run_id.clone()),
        ("started", s.started_at.clone()),
        ("finished", s.finished_at.clone()),
        ("dry run", s.dry_run.to_string()),
        ("inputs rejected", s.inputs_rejected.to_string()),
        ("controls failed", s.controls.failed.to_string()),
        ("generated", format_timestamp(report.generated_at)),
    ] {
        summary.push(&[Cell::Text(label), Cell::Owned(value)])?;
    }
    for (label, n) in [
        ("read", s.counts.read),
        ("matched", s.counts.matched),
        ("needs a human", s.counts.unmatched),
        ("ignored", s.counts.ignored),
    ] {
        summary.push(&[Cell::Text(label), Cell::Text(""), Cell::Count(n)])?;
    }
    for (outcome, total) in &s.outcomes {
        for (currency, t) in &total.by_currency {
            let decimals = currency
                .parse::<crate::money::Currency>()
                .map_or(2, |c| c.minor_units())
                .max(t.sum.scale());
            summary.push(&[
                Cell::Text(outcome),
                Cell::Text(currency),
                Cell::Count(t.count),
                Cell::Money(Some(t.sum), decimals),
            ])?;
        }
    }
    summary.finish()?;
    rows_sheet(&mut workbook, "Matched", report.matched)?;
    rows_sheet(&mut workbook, "Exceptions", report.unmatched)?;
    rows_sheet(&mut workbook, "Ignored", report.ignored)?;
    let mut open = Sheet::new(
        workbook.add_worksheet(),
        "Open top-ups",
        &[
            "id",
            "created",
            "amount",
            "currency",
            "status",
            "settlement_reference",
            "age_days",
            "stale",
        ],
    )?;
    for t in report.open_topups {
        let age = age_days(t, report.as_of);
        open.push(&[
            Cell::Owned(t.id.to_string()),
            Cell::Date(Some(t.created_at.date_naive())),
            Cell::Money(Some(t.cash_amount), t.currency.minor_units()),
            Cell::Text(t.currency.as_str()),
            Cell::Text(t.status.as_str()),
            Cell::Owned(t.settlement_reference.to_string()),
            Cell::Count(age.max(0) as usize),
            Cell::Text(if age > s.stale_after_days { "yes" } else { "" }),
        ])?;
    }
    open.finish()?;
    Ok(workbook)
}

/// Writes the workbook.
pub fn write(out: &mut dyn io::Write, report: &Report) -> io::Result<()> {
    let mut workbook = build(report).map_err(io::Error::other)?;
    let bytes = workbook.save_to_buffer().map_err(io::Error::other)?;
    out.write_all(&bytes)
}
