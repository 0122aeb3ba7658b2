//! `matched.csv`, `unmatched.csv`, `ignored.csv` and `open_topups.csv`.

use std::io;

use chrono::{DateTime, Utc};

use crate::money::canonical_amount;
use crate::row::spill::Rows;
use crate::store::topups::age_days;
use crate::topup::{TopUp, push_timestamp};

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
/// Every field is spelled from a typed value (ids, a timestamp, an amount, a code, a number),
/// so none needs quoting: the lines are written by hand into a buffer, which a listing of
/// millions of top-ups notices (the csv crate's scan of each field for quotes, and a string
/// per timestamp and amount, were most of its cost).
pub struct OpenTopUpsWriter<'w> {
    out: &'w mut dyn io::Write,
    lines: Vec<u8>,
    as_of: DateTime<Utc>,
}

impl<'w> OpenTopUpsWriter<'w> {
    /// Lines gathered before they are handed to `out`.
    const BUFFER: usize = 1 << 16;

    pub fn new(out: &'w mut dyn io::Write, as_of: DateTime<Utc>) -> io::Result<Self> {
        let mut writer = Self::continuing(out, as_of);
        for (i, field) in TopUp::FIELDS.iter().chain(&["age_days"]).enumerate() {
            if i > 0 {
                writer.lines.push(b',');
            }
            writer.lines.extend_from_slice(field.as_bytes());
        }
        writer.lines.push(b'\n');
        Ok(writer)
    }

    /// A writer of lines only, for the part of a listing that follows another's.
    pub fn continuing(out: &'w mut dyn io::Write, as_of: DateTime<Utc>) -> Self {
        OpenTopUpsWriter {
            out,
            lines: Vec::with_capacity(Self::BUFFER + 512),
            as_of,
        }
    }

    pub fn write(&mut self, topup: &TopUp) -> io::Result<()> {
        use std::io::Write as _;
        let mut id = uuid::Uuid::encode_buffer();
        let line = &mut self.lines;
        line.extend_from_slice(
            topup
                .id
                .uuid()
                .hyphenated()
                .encode_lower(&mut id)
                .as_bytes(),
        );
        line.push(b',');
        push_timestamp(line, topup.created_at);
        line.push(b',');
        line.extend_from_slice(
            topup
                .account_group_id
                .uuid()
                .hyphenated()
                .encode_lower(&mut id)
                .as_bytes(),
        );
        line.push(b',');
        write!(
            line,
            "{}",
            canonical_amount(topup.cash_amount, topup.currency)
        )?;
        line.push(b',');
        line.extend_from_slice(topup.currency.as_str().as_bytes());
        line.push(b',');
        line.extend_from_slice(topup.status.as_str().as_bytes());
        line.push(b',');
        line.extend_from_slice(
            topup
                .settlement_reference
                .uuid()
                .hyphenated()
                .encode_lower(&mut id)
                .as_bytes(),
        );
        writeln!(line, ",{}", age_days(topup, self.as_of))?;
        if line.len() >= Self::BUFFER {
            self.out.write_all(line)?;
            line.clear();
        }
        Ok(())
    }

    pub fn finish(self) -> io::Result<()> {
        self.out.write_all(&self.lines)?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topup(id: u128, created_at: &str, amount: &str, currency: &str, status: &str) -> TopUp {
        TopUp {
            id: crate::ids::TopUpId::from_uuid(uuid::Uuid::from_u128(id)),
            created_at: created_at.parse().unwrap(),
            account_group_id: crate::ids::AccountGroupId::from_uuid(uuid::Uuid::from_u128(
                0xABCD << 64 | id,
            )),
            cash_amount: amount.parse().unwrap(),
            currency: currency.parse().unwrap(),
            status: status.parse().unwrap(),
            settlement_reference: crate::ids::SettlementReference::from_uuid(
                uuid::Uuid::from_u128(0xF00D << 96 | id),
            ),
        }
    }

    fn listed(topups: &[TopUp], as_of: &str) -> String {
        let mut out = Vec::new();
        let mut writer = OpenTopUpsWriter::new(&mut out, as_of.parse().unwrap()).unwrap();
        for t in topups {
            writer.write(t).unwrap();
        }
        writer.finish().unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn open_topups_are_listed_with_the_apis_forms_and_their_age_in_whole_days() {
        let text = listed(
            &[
                topup(1, "2026-11-01T08:00:00.750Z", "200", "EUR", "CONFIRMED"),
                topup(2, "2026-11-21T23:59:59Z", "1500", "JPY", "NEW"),
                topup(3, "2026-11-22T00:00:00Z", "12.5", "KWD", "CONFIRMED"),
                topup(4, "2026-11-20T12:00:00Z", "0.125", "EUR", "CONFIRMED"),
            ],
            "2026-11-22T12:00:00Z",
        );
        let expected = "\
id,created_at,account_group_id,cash_amount,currency,status,settlement_reference,age_days
00000000-0000-0000-0000-000000000001,2026-11-01T08:00:00Z,00000000-0000-abcd-0000-000000000001,200.00,EUR,CONFIRMED,0000f00d-0000-0000-0000-000000000001,21
00000000-0000-0000-0000-000000000002,2026-11-21T23:59:59Z,00000000-0000-abcd-0000-000000000002,1500,JPY,NEW,0000f00d-0000-0000-0000-000000000002,0
00000000-0000-0000-0000-000000000003,2026-11-22T00:00:00Z,00000000-0000-abcd-0000-000000000003,12.500,KWD,CONFIRMED,0000f00d-0000-0000-0000-000000000003,0
00000000-0000-0000-0000-000000000004,2026-11-20T12:00:00Z,00000000-0000-abcd-0000-000000000004,0.125,EUR,CONFIRMED,0000f00d-0000-0000-0000-000000000004,2
";
        assert_eq!(text, expected);
        // What the csv crate reads back is what the API shows of each top-up.
        let mut reader = ::csv::Reader::from_reader(text.as_bytes());
        let first = reader.records().next().unwrap().unwrap();
        assert_eq!(
            &first[3],
            topup(1, "2026-11-01T08:00:00Z", "200", "EUR", "CONFIRMED").cash_amount_text()
        );
    }

    #[test]
    fn a_listing_longer_than_the_writers_buffer_is_written_whole_and_in_order() {
        let topups: Vec<TopUp> = (0..2000u128)
            .map(|i| topup(i, "2026-11-01T08:00:00Z", "10.00", "EUR", "NEW"))
            .collect();
        let text = listed(&topups, "2026-11-02T08:00:00Z");
        let ids: Vec<String> = ::csv::Reader::from_reader(text.as_bytes())
            .records()
            .map(|r| r.unwrap()[0].to_string())
            .collect();
        let expected: Vec<String> = topups.iter().map(|t| t.id.to_string()).collect();
        assert!(text.len() > 2 * OpenTopUpsWriter::BUFFER);
        assert_eq!(ids, expected);
    }
}
