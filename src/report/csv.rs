//! `matched.csv`, `unmatched.csv`, `ignored.csv` and `open_topups.csv`.

use std::borrow::Cow;
use std::io;

use chrono::{DateTime, Utc};

use super::columns::{self, Value};
use crate::money::canonical_amount;
use crate::row::spill::Rows;
use crate::topup::{TopUp, push_timestamp};

/// A value as the CSV files spell it: text from outside that a spreadsheet would run as a
/// formula gets a leading apostrophe.
fn field(value: Value<'_>) -> Cow<'_, str> {
    match value {
        Value::Foreign(text) if runs_as_formula(&text) => format!("'{text}").into(),
        value => value.into_text(),
    }
}

fn runs_as_formula(text: &str) -> bool {
    matches!(
        text.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    )
}

/// Writes transaction rows with the header.
pub fn write_rows(out: &mut dyn io::Write, rows: Rows) -> io::Result<()> {
    let mut writer = ::csv::Writer::from_writer(out);
    writer.write_record(columns::csv_header())?;
    for row in rows.iter() {
        let row = row?;
        for column in columns::csv_columns() {
            writer.write_field(&*field((column.value)(&row)))?;
        }
        writer.write_record(None::<&[u8]>)?;
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
        writeln!(line, ",{}", topup.age_days(self.as_of))?;
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

    #[test]
    fn transaction_rows_neutralise_bank_text_that_a_spreadsheet_would_run() {
        let row = super::super::columns::hostile_row();
        let mut out = Vec::new();
        write_rows(&mut out, Rows::Memory(std::slice::from_ref(&row))).unwrap();
        let text = String::from_utf8(out).unwrap();
        let expected = format!(
            "outcome,amount,currency,direction,booking_date,value_date,statement_file,\
             statement_id,account,position,entry_ref,bank_ref,end_to_end_id,tx_id,uetr,\
             counterparty_name,counterparty_iban,remittance,extracted_reference,topup_id,\
             expected_amount,difference,suggestion,status,identity\n\
             AMOUNT_MISMATCH,40.00,EUR,CRDT,2026-11-20,,in/2026-11-20.xml,'=1+1,,\
             entry 5 detail 2,E1,,'@x,,,\"'=HYPERLINK(\"\"http://evil\"\")\",\
             DE02120300000000202051,\"topup <b>1</b>, thanks\",-not-bank-text,,45.5,-5.5,\
             '+ask for 5.5,BOOK,{}\n",
            row.identity
        );
        assert_eq!(text, expected);
    }

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
