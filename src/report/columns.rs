//! The columns of the transaction files, sheets and tables, defined once: `matched.csv` and its
//! siblings, the workbook's transaction sheets and the page's tables all take their headers,
//! order and values from [`TRANSACTION_COLUMNS`], so a new column is one entry there.

use std::borrow::Cow;
use std::path::Path;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::money::{Currency, format_amount};
use crate::row::Row;

/// A column's value in one row, typed, so that each output shows it its own way.
pub enum Value<'r> {
    /// Text recon made: codes, ids, positions.
    Text(Cow<'r, str>),
    /// Text from outside (a bank file, a path given) or made with it (a suggestion names the
    /// payer): the CSV files neutralise formulas in it.
    Foreign(Cow<'r, str>),
    /// A date: text in the files, a date in the workbook.
    Date(Option<NaiveDate>),
    /// The transaction's amount: the files show it with its currency's decimals.
    Amount(Decimal, Currency),
    /// An amount measured against the transaction's (expected, difference): the files show it
    /// as computed, the workbook with `decimals` decimals.
    Money(Option<Decimal>, u32),
}

impl<'r> Value<'r> {
    /// The value as the page shows it; the CSV files neutralise [`Value::Foreign`] text too.
    pub fn into_text(self) -> Cow<'r, str> {
        match self {
            Value::Text(text) | Value::Foreign(text) => text,
            Value::Date(date) => date.map(|d| d.to_string()).unwrap_or_default().into(),
            Value::Amount(amount, currency) => format_amount(amount, currency).into(),
            Value::Money(money, _) => money.map(|m| m.to_string()).unwrap_or_default().into(),
        }
    }
}

/// How the page shows a cell: the class of its header and of its cells.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Style {
    /// Plain text.
    Text,
    /// Ids and account numbers, which people compare character by character.
    Mono,
    /// Amounts, right-aligned in tabular digits.
    Number,
}

/// How the page's transaction tables show a column.
#[derive(Clone, Copy, Debug)]
pub enum Page {
    /// Not on the page.
    Hidden,
    /// Read by the page inside another column's cell.
    Field,
    /// A column of its own.
    Column(PageColumn),
}

/// A column of the page's transaction tables.
#[derive(Clone, Copy, Debug)]
pub struct PageColumn {
    /// The header, for people rather than programs.
    pub header: &'static str,
    pub style: Style,
    /// For a cell that shows more than the column's value: its extra attributes and its
    /// content, as template text that reads the row as `r`.
    pub cell: Option<(&'static str, &'static str)>,
}

/// One column of the transaction rows.
pub struct Column {
    /// The header in the CSV files and the workbook, and the name the page's template reads.
    pub name: &'static str,
    /// Its value in a row.
    pub value: for<'r> fn(&'r Row) -> Value<'r>,
    /// Whether the CSV files have it: every column but the page's own.
    pub csv: bool,
    /// Its place in the workbook's transaction sheets, which show the columns a person reads
    /// first, first. The page's tables show theirs in the same order.
    pub sheet: Option<u8>,
    /// Whether and how the page shows it.
    pub page: Page,
}

const fn page(header: &'static str, style: Style) -> Page {
    Page::Column(PageColumn {
        header,
        style,
        cell: None,
    })
}

/// Text from outside that may be absent: shown empty then.
fn foreign(text: Option<&str>) -> Value<'_> {
    Value::Foreign(text.unwrap_or_default().into())
}

/// The decimals the workbook shows an amount with, and the amounts measured against it: its
/// currency's, or the bank's finer precision.
pub fn sheet_decimals(amount: Decimal, currency: Currency) -> u32 {
    currency.minor_units().max(amount.scale())
}

/// Every column of the transaction rows, in the CSV files' order.
pub static TRANSACTION_COLUMNS: [Column; 26] = [
    Column {
        name: "outcome",
        value: |r| Value::Text(r.outcome.as_str().into()),
        csv: true,
        sheet: Some(0),
        page: page("Outcome", Style::Text),
    },
    Column {
        name: "amount",
        value: |r| Value::Amount(r.amount, r.currency),
        csv: true,
        sheet: Some(1),
        page: Page::Column(PageColumn {
            header: "Amount",
            style: Style::Number,
            cell: Some((
                r#" data-sort="{{ r.amount }}""#,
                "{{ r.amount }} {{ r.currency }}",
            )),
        }),
    },
    Column {
        name: "currency",
        value: |r| Value::Text(r.currency.as_str().into()),
        csv: true,
        sheet: Some(2),
        page: Page::Field,
    },
    Column {
        name: "direction",
        value: |r| Value::Text(r.direction.code().into()),
        csv: true,
        sheet: Some(3),
        page: Page::Hidden,
    },
    Column {
        name: "booking_date",
        value: |r| Value::Date(r.booking_date),
        csv: true,
        sheet: Some(4),
        page: page("Booked", Style::Text),
    },
    Column {
        name: "value_date",
        value: |r| Value::Date(r.value_date),
        csv: true,
        sheet: Some(5),
        page: page("Value", Style::Text),
    },
    Column {
        name: "statement_file",
        value: |r| Value::Foreign(Cow::Borrowed(&r.statement_file)),
        csv: true,
        sheet: Some(14),
        page: Page::Field,
    },
    Column {
        name: "statement_id",
        value: |r| foreign(r.statement_id.as_deref()),
        csv: true,
        sheet: None,
        page: Page::Hidden,
    },
    Column {
        name: "account",
        value: |r| foreign(r.account.as_deref()),
        csv: true,
        sheet: None,
        page: Page::Hidden,
    },
    Column {
        name: "position",
        value: |r| Value::Text(r.position_text().into()),
        csv: true,
        sheet: Some(15),
        page: Page::Column(PageColumn {
            header: "Where",
            style: Style::Mono,
            cell: Some((
                r#" title="{{ r.statement_file }}""#,
                "{{ r.file_name }} · {{ r.position }}",
            )),
        }),
    },
    Column {
        name: "entry_ref",
        value: |r| foreign(r.entry_ref()),
        csv: true,
        sheet: Some(16),
        page: Page::Hidden,
    },
    Column {
        name: "bank_ref",
        value: |r| foreign(r.servicer_ref()),
        csv: true,
        sheet: Some(17),
        page: Page::Hidden,
    },
    Column {
        name: "end_to_end_id",
        value: |r| foreign(r.end_to_end_id()),
        csv: true,
        sheet: None,
        page: Page::Hidden,
    },
    Column {
        name: "tx_id",
        value: |r| foreign(r.tx_id()),
        csv: true,
        sheet: None,
        page: Page::Hidden,
    },
    Column {
        name: "uetr",
        value: |r| foreign(r.uetr()),
        csv: true,
        sheet: None,
        page: Page::Hidden,
    },
    Column {
        name: "counterparty_name",
        value: |r| foreign(r.counterparty_name()),
        csv: true,
        sheet: Some(6),
        page: page("Payer / payee", Style::Text),
    },
    Column {
        name: "counterparty_iban",
        value: |r| foreign(r.counterparty_iban()),
        csv: true,
        sheet: Some(7),
        page: page("IBAN", Style::Mono),
    },
    Column {
        name: "remittance",
        value: |r| Value::Foreign(r.remittance().into()),
        csv: true,
        sheet: Some(8),
        page: page("Remittance", Style::Text),
    },
    Column {
        name: "extracted_reference",
        // A normalised UUID, never the bank's text as such.
        value: |r| Value::Text(r.extracted_reference().unwrap_or_default().into()),
        csv: true,
        sheet: Some(9),
        page: page("Reference", Style::Mono),
    },
    Column {
        name: "topup_id",
        value: |r| Value::Text(r.topup_id.map(|t| t.to_string()).unwrap_or_default().into()),
        csv: true,
        sheet: Some(10),
        page: page("Top-up", Style::Mono),
    },
    Column {
        name: "expected_amount",
        value: |r| Value::Money(r.expected_amount, sheet_decimals(r.amount, r.currency)),
        csv: true,
        sheet: Some(11),
        page: page("Expected", Style::Number),
    },
    Column {
        name: "difference",
        value: |r| Value::Money(r.difference, sheet_decimals(r.amount, r.currency)),
        csv: true,
        sheet: Some(12),
        page: page("Difference", Style::Number),
    },
    Column {
        name: "suggestion",
        value: |r| foreign(r.suggestion()),
        csv: true,
        sheet: Some(13),
        page: page("Suggestion", Style::Text),
    },
    Column {
        name: "status",
        value: |r| Value::Foreign(Cow::Borrowed(&r.status_code)),
        csv: true,
        sheet: None,
        page: Page::Hidden,
    },
    Column {
        name: "identity",
        value: |r| Value::Text(r.identity.to_string().into()),
        csv: true,
        sheet: None,
        page: Page::Hidden,
    },
    Column {
        name: "file_name",
        value: |r| {
            let path = Path::new(&*r.statement_file);
            Value::Foreign(
                path.file_name()
                    .map_or(Cow::Borrowed(&*r.statement_file), |name| {
                        name.to_string_lossy()
                    }),
            )
        },
        csv: false,
        sheet: None,
        page: Page::Field,
    },
];

/// The CSV files' columns, in order.
pub fn csv_columns() -> impl Iterator<Item = &'static Column> {
    TRANSACTION_COLUMNS.iter().filter(|c| c.csv)
}

/// The header of `matched.csv`, `unmatched.csv` and `ignored.csv`.
pub fn csv_header() -> Vec<&'static str> {
    csv_columns().map(|c| c.name).collect()
}

/// The workbook's transaction sheets' columns, in order.
pub fn sheet_columns() -> Vec<&'static Column> {
    let mut columns: Vec<&Column> = TRANSACTION_COLUMNS
        .iter()
        .filter(|c| c.sheet.is_some())
        .collect();
    columns.sort_by_key(|c| c.sheet);
    columns
}

/// The header of the workbook's transaction sheets.
pub fn sheet_header() -> Vec<&'static str> {
    sheet_columns().into_iter().map(|c| c.name).collect()
}

/// The columns of the page's tables, in the workbook's order.
pub fn page_columns() -> Vec<(&'static Column, PageColumn)> {
    sheet_columns()
        .into_iter()
        .filter_map(|c| match c.page {
            Page::Column(page) => Some((c, page)),
            Page::Hidden | Page::Field => None,
        })
        .collect()
}

/// The columns whose values the page's template can read of a row.
pub fn page_fields() -> impl Iterator<Item = &'static Column> {
    TRANSACTION_COLUMNS
        .iter()
        .filter(|c| !matches!(c.page, Page::Hidden))
}

/// A row with bank text that a spreadsheet or a page must not run, for the outputs' tests.
#[cfg(test)]
pub(crate) fn hostile_row() -> Row {
    use crate::matching::Outcome;
    use crate::row::{TextFields, Texts};
    use crate::statement::{Direction, TxIdentity};
    Row {
        outcome: Outcome::AmountMismatch,
        amount: "40".parse().unwrap(),
        currency: "EUR".parse().unwrap(),
        direction: Direction::Credit,
        status_code: "BOOK".into(),
        reversal: false,
        booking_date: "2026-11-20".parse().ok(),
        value_date: None,
        statement_file: "in/2026-11-20.xml".into(),
        statement_id: Some("=1+1".into()),
        account: None,
        entry_number: 5,
        detail_number: Some(2),
        line_number: None,
        texts: Texts::new(TextFields {
            entry_ref: Some("E1"),
            servicer_ref: None,
            end_to_end_id: Some("@x"),
            tx_id: None,
            uetr: None,
            counterparty_name: Some(r#"=HYPERLINK("http://evil")"#),
            counterparty_iban: Some("DE02120300000000202051"),
            remittance: "topup <b>1</b>, thanks",
            extracted_reference: Some("-not-bank-text"),
            suggestion: Some("+ask for 5.5"),
        }),
        topup_id: None,
        expected_amount: "45.5".parse().ok(),
        difference: "-5.5".parse().ok(),
        identity: TxIdentity::default(),
        cross_key: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_has_one_name_and_the_sheets_places_have_no_gaps() {
        let mut names: Vec<&str> = TRANSACTION_COLUMNS.iter().map(|c| c.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), TRANSACTION_COLUMNS.len());
        assert_eq!(csv_header().len(), 25);
        let places: Vec<Option<u8>> = sheet_columns().iter().map(|c| c.sheet).collect();
        let expected: Vec<Option<u8>> = (0..18).map(Some).collect();
        assert_eq!(places, expected);
        assert_eq!(page_fields().count(), 16);
        // The page shows its columns in the sheets' order, so each needs a place there.
        let own_cells = TRANSACTION_COLUMNS
            .iter()
            .filter(|c| matches!(c.page, Page::Column(_)));
        assert_eq!(own_cells.count(), page_columns().len());
    }

    #[test]
    fn foreign_text_is_marked_and_values_keep_their_types() {
        let row = hostile_row();
        let value = |name: &str| {
            let column = TRANSACTION_COLUMNS.iter().find(|c| c.name == name);
            (column.unwrap().value)(&row)
        };
        assert!(matches!(value("counterparty_name"), Value::Foreign(_)));
        assert!(matches!(value("extracted_reference"), Value::Text(_)));
        assert!(matches!(value("value_date"), Value::Date(None)));
        assert_eq!(value("amount").into_text(), "40.00");
        assert_eq!(value("expected_amount").into_text(), "45.5");
        assert!(matches!(value("difference"), Value::Money(Some(_), 2)));
        assert_eq!(value("file_name").into_text(), "2026-11-20.xml");
        assert_eq!(value("position").into_text(), "entry 5 detail 2");
    }
}
