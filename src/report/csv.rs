//! `matched.csv`, `unmatched.csv`, `ignored.csv` and `open_topups.csv`.

use std::io;

use chrono::{DateTime, Utc};

use crate::row::spill::Rows;
use crate::store::topups::age_days;
use crate::topup::{TopUp, format_timestamp};

/// The columns of the three transaction files, in order.
pub const ROW_HEADER: [&str; 25] = [
    "outcome",
    "amount",
    "currency",
    "direction",
    "booking_date",
    "value_date",
    "statement_file",
    "statement_id",
    "account",
    "position",
    "entry_ref",
    "bank_ref",
    "end_to_end_id",
    "tx_id",
    "uetr",
    "counterparty_name",
    "counterparty_iban",
    "remittance",
    "extracted_reference",
    "topup_id",
    "expected_amount",
    "difference",
    "suggestion",
    "status",
    "identity",
];

/// Text that a spreadsheet would run as a formula gets a leading apostrophe.
pub fn neutralise(text: &str) -> std::borrow::Cow<'_, str> {
    match text.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{text}").into(),
        _ => text.into(),
    }
}

fn text(value: Option<&str>) -> std::borrow::Cow<'_, str> {
    neutralise(value.unwrap_or(""))
}

/// Writes transaction rows with the header.
pub fn write_rows(out: &mut dyn io::Write, rows: Rows) -> io::Result<()> {
    let mut writer = ::csv::Writer::from_writer(out);
    writer.write_record(ROW_HEADER)?;
    for row in rows.iter() {
        let row = row?;
        let date = |d: Option<chrono::NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
        let money = |d: Option<rust_decimal::Decimal>| d.map(|d| d.to_string()).unwrap_or_default();
        writer.write_record([
            row.outcome.as_str(),
            &row.amount_text(),
            row.currency.as_str(),
            row.direction.code(),
            &date(row.booking_date),
            &date(row.value_date),
            &neutralise(&row.statement_file),
            &text(row.statement_id.as_deref()),
            &text(row.account.as_deref()),
            &row.position_text(),
            &text(row.entry_ref()),
            &text(row.servicer_ref()),
            &text(row.end_to_end_id()),
            &text(row.tx_id()),
            &text(row.uetr()),
            &text(row.counterparty_name()),
            &text(row.counterparty_iban()),
            &neutralise(row.remittance()),
            row.extracted_reference().unwrap_or(""),
            &row.topup_id.map(|id| id.to_string()).unwrap_or_default(),
            &money(row.expected_amount),
            &money(row.difference),
            &text(row.suggestion()),
            &neutralise(&row.status_code),
            &row.identity.to_string(),
        ])?;
    }
    writer.flush()
}

/// Writes `open_topups.csv` one top-up at a time, with each one's age in whole days at `as_of`.
pub struct OpenTopUpsWriter<'w> {
    writer: ::csv::Writer<&'w mut dyn io::Write>,
    as_of: DateTime<Utc>,
}

impl<'w> OpenTopUpsWriter<'w> {
    pub fn new(out: &'w mut dyn io::Write, as_of: DateTime<Utc>) -> io::Result<Self> {
        let mut writer = ::csv::Writer::from_writer(out);
        writer.write_record(TopUp::FIELDS.iter().chain(&["age_days"]))?;
        Ok(OpenTopUpsWriter { writer, as_of })
    }

    pub fn write(&mut self, topup: &TopUp) -> io::Result<()> {
        // The ids are spelled into buffers on the stack: a listing can hold millions of rows.
        let mut id = uuid::Uuid::encode_buffer();
        let mut group = uuid::Uuid::encode_buffer();
        let mut reference = uuid::Uuid::encode_buffer();
        self.writer.write_record([
            topup
                .id
                .uuid()
                .hyphenated()
                .encode_lower(&mut id)
                .as_bytes(),
            format_timestamp(topup.created_at).as_bytes(),
            topup
                .account_group_id
                .uuid()
                .hyphenated()
                .encode_lower(&mut group)
                .as_bytes(),
            topup.cash_amount_text().as_bytes(),
            topup.currency.as_str().as_bytes(),
            topup.status.as_str().as_bytes(),
            topup
                .settlement_reference
                .uuid()
                .hyphenated()
                .encode_lower(&mut reference)
                .as_bytes(),
            age_days(topup, self.as_of).to_string().as_bytes(),
        ])?;
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.writer.flush()
    }
}
