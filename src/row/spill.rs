//! Rows written aside to a temporary file as they are decided, and read back in the same
//! order: a night of a million transactions must not hold a million rows in memory.
//!
//! The file is ours alone (unnamed, gone when closed, even after a crash), so its format is
//! whatever is quickest to write and read: each row is its length and then its fields in a
//! fixed order, numbers little-endian. An exception is written aside with the decision its
//! suggestion is made from ([`Unmatched`]), the same way.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate};
use rust_decimal::Decimal;

use super::{Row, TEXTS, Texts};
use crate::ids::{AccountGroupId, SettlementReference, TopUpId};
use crate::matching::{Decision, EarlierSettlement, Outcome};
use crate::statement::{CrossKey, Direction, TxIdentity};
use crate::topup::{Status, TopUp};

/// What a spill writes aside: a row, or an exception with its decision.
pub trait Record: Sized {
    /// Appends the record: its length (four bytes), then its fields.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads what [`Record::encode`] wrote, after its length; `None` when it is not such a
    /// record.
    fn decode(record: &[u8], shared: &mut Shared) -> Option<Self>;
}

impl Record for Row {
    fn encode(&self, out: &mut Vec<u8>) {
        encode(self, out);
    }

    fn decode(record: &[u8], shared: &mut Shared) -> Option<Self> {
        decode(record, shared)
    }
}

/// An exception's row and the decision its suggestion is made from, once the run has settled
/// what matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unmatched {
    pub row: Row,
    pub decision: Decision,
}

impl Record for Unmatched {
    fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        encode(&self.row, out);
        encode_decision(&self.decision, out);
        let size = (out.len() - start - 4) as u32;
        out[start..start + 4].copy_from_slice(&size.to_le_bytes());
    }

    fn decode(record: &[u8], shared: &mut Shared) -> Option<Self> {
        let mut input = Input(record);
        let row = input.bytes()?;
        let row = decode(row, shared)?;
        let decision = decode_decision(&mut input)?;
        input.0.is_empty().then_some(Unmatched { row, decision })
    }
}

/// Records of one kind being written aside, in the order they were decided.
pub struct Spill<T = Row> {
    out: BufWriter<File>,
    len: usize,
    bytes: u64,
    record: Vec<u8>,
    kind: PhantomData<fn() -> T>,
}

/// How far a [`Spill`] had got: what [`Spill::truncate`] cuts it back to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Mark {
    len: usize,
    bytes: u64,
}

impl<T: Record> Spill<T> {
    /// A new spill in a temporary file of `dir`.
    pub fn new_in(dir: &Path) -> io::Result<Spill<T>> {
        Ok(Spill {
            out: BufWriter::with_capacity(1 << 16, tempfile::tempfile_in(dir)?),
            len: 0,
            bytes: 0,
            record: Vec::with_capacity(1024),
            kind: PhantomData,
        })
    }

    /// Writes the next record.
    pub fn push(&mut self, record: &T) -> io::Result<()> {
        self.record.clear();
        record.encode(&mut self.record);
        self.out.write_all(&self.record)?;
        self.len += 1;
        self.bytes += self.record.len() as u64;
        Ok(())
    }

    /// How many rows were written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no row was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the spill is now.
    pub fn mark(&self) -> Mark {
        Mark {
            len: self.len,
            bytes: self.bytes,
        }
    }

    /// The rows written since `mark`, read back one by one.
    pub fn since(&mut self, mark: Mark) -> io::Result<Reader<'_, T>> {
        self.out.flush()?;
        Ok(Reader::new(
            self.out.get_ref(),
            mark.bytes,
            self.len - mark.len,
        ))
    }

    /// Forgets every row written since `mark`.
    pub fn truncate(&mut self, mark: Mark) -> io::Result<()> {
        self.out.flush()?;
        let file = self.out.get_mut();
        file.set_len(mark.bytes)?;
        file.seek(SeekFrom::Start(mark.bytes))?;
        self.len = mark.len;
        self.bytes = mark.bytes;
        Ok(())
    }

    /// Every row written, ready to be read (by several readers at once).
    pub fn finish(self) -> io::Result<Spilled<T>> {
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        Ok(Spilled {
            file,
            len: self.len,
            kind: PhantomData,
        })
    }
}

/// Records written aside, complete.
pub struct Spilled<T = Row> {
    file: File,
    len: usize,
    kind: PhantomData<fn() -> T>,
}

impl<T: Record> Spilled<T> {
    /// How many rows there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The records from the first, each read as it is asked for.
    pub fn iter(&self) -> Reader<'_, T> {
        Reader::new(&self.file, 0, self.len)
    }
}

/// Rows in memory or written aside: what a report lists.
#[derive(Clone, Copy)]
pub enum Rows<'a> {
    Memory(&'a [Row]),
    Spilled(&'a Spilled),
}

impl<'a> Rows<'a> {
    /// How many rows there are.
    pub fn len(&self) -> usize {
        match self {
            Rows::Memory(rows) => rows.len(),
            Rows::Spilled(spilled) => spilled.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows in order; reading one written aside can fail.
    pub fn iter(&self) -> Box<dyn Iterator<Item = io::Result<Cow<'a, Row>>> + 'a> {
        match *self {
            Rows::Memory(rows) => Box::new(rows.iter().map(|row| Ok(Cow::Borrowed(row)))),
            Rows::Spilled(spilled) => Box::new(spilled.iter().map(|row| row.map(Cow::Owned))),
        }
    }
}

/// Reads records back from a spill's file, at offsets of its own (readers share the file).
pub struct Reader<'f, T = Row> {
    file: &'f File,
    at: u64,
    left: usize,
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    shared: Shared,
    kind: PhantomData<fn() -> T>,
}

/// The texts rows share in memory (a file's name, a status code), shared again when read back.
#[derive(Default)]
pub struct Shared {
    status_code: Option<Arc<str>>,
    statement_file: Option<Arc<str>>,
    statement_id: Option<Arc<str>>,
    account: Option<Arc<str>>,
}

fn share(last: &mut Option<Arc<str>>, text: &str) -> Arc<str> {
    match last {
        Some(arc) if **arc == *text => arc.clone(),
        _ => {
            let arc: Arc<str> = Arc::from(text);
            *last = Some(arc.clone());
            arc
        }
    }
}

impl<'f, T: Record> Reader<'f, T> {
    fn new(file: &'f File, at: u64, rows: usize) -> Reader<'f, T> {
        Reader {
            file,
            at,
            left: rows,
            buffer: vec![0; 1 << 16],
            start: 0,
            end: 0,
            shared: Shared::default(),
            kind: PhantomData,
        }
    }

    /// Makes sure `n` unread bytes are in the buffer.
    fn fill(&mut self, n: usize) -> io::Result<()> {
        if self.end - self.start >= n {
            return Ok(());
        }
        self.buffer.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if self.buffer.len() < n {
            self.buffer.resize(n.next_power_of_two(), 0);
        }
        while self.end < n {
            let read = read_at(self.file, &mut self.buffer[self.end..], self.at)?;
            if read == 0 {
                return Err(damaged("the spill file ends early"));
            }
            self.end += read;
            self.at += read as u64;
        }
        Ok(())
    }

    fn next_row(&mut self) -> io::Result<T> {
        self.fill(4)?;
        let size = u32::from_le_bytes(self.buffer[self.start..self.start + 4].try_into().unwrap())
            as usize;
        self.fill(4 + size)?;
        let record = &self.buffer[self.start + 4..self.start + 4 + size];
        let row = T::decode(record, &mut self.shared).ok_or_else(|| damaged("a row is damaged"))?;
        self.start += 4 + size;
        Ok(row)
    }
}

impl<T: Record> Iterator for Reader<'_, T> {
    type Item = io::Result<T>;

    fn next(&mut self) -> Option<io::Result<T>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let row = self.next_row();
        if row.is_err() {
            self.left = 0;
        }
        Some(row)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

#[cfg(unix)]
fn read_at(file: &File, buffer: &mut [u8], at: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buffer, at)
}

#[cfg(windows)]
fn read_at(file: &File, buffer: &mut [u8], at: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buffer, at)
}

fn damaged(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{what} (rows written aside to a temporary file could not be read back)"),
    )
}

// Which optional fields a record holds, one bit each.
const BOOKING_DATE: u16 = 1;
const VALUE_DATE: u16 = 1 << 1;
const STATEMENT_ID: u16 = 1 << 2;
const ACCOUNT: u16 = 1 << 3;
const DETAIL: u16 = 1 << 4;
const LINE: u16 = 1 << 5;
const TOPUP: u16 = 1 << 6;
const EXPECTED: u16 = 1 << 7;
const DIFFERENCE: u16 = 1 << 8;
const REVERSAL: u16 = 1 << 9;
const DEBIT: u16 = 1 << 10;
const CROSS_KEY: u16 = 1 << 11;

fn encode(row: &Row, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let mut flags = 0;
    for (bit, present) in [
        (BOOKING_DATE, row.booking_date.is_some()),
        (VALUE_DATE, row.value_date.is_some()),
        (STATEMENT_ID, row.statement_id.is_some()),
        (ACCOUNT, row.account.is_some()),
        (DETAIL, row.detail_number.is_some()),
        (LINE, row.line_number.is_some()),
        (TOPUP, row.topup_id.is_some()),
        (EXPECTED, row.expected_amount.is_some()),
        (DIFFERENCE, row.difference.is_some()),
        (REVERSAL, row.reversal),
        (DEBIT, row.direction == Direction::Debit),
        (CROSS_KEY, row.cross_key.is_some()),
    ] {
        if present {
            flags |= bit;
        }
    }
    out.extend_from_slice(&flags.to_le_bytes());
    let outcome = Outcome::ALL.iter().position(|o| *o == row.outcome);
    out.push(outcome.unwrap_or_default() as u8);
    out.extend_from_slice(&row.amount.serialize());
    out.extend_from_slice(row.currency.as_str().as_bytes());
    for date in [row.booking_date, row.value_date].into_iter().flatten() {
        out.extend_from_slice(&date.num_days_from_ce().to_le_bytes());
    }
    out.extend_from_slice(&row.entry_number.to_le_bytes());
    if let Some(detail) = row.detail_number {
        out.extend_from_slice(&detail.to_le_bytes());
    }
    if let Some(line) = row.line_number {
        out.extend_from_slice(&line.to_le_bytes());
    }
    out.extend_from_slice(&row.identity.0);
    if let Some(key) = row.cross_key {
        out.extend_from_slice(&key.0.to_le_bytes());
    }
    if let Some(topup) = row.topup_id {
        out.extend_from_slice(topup.uuid().as_bytes());
    }
    for amount in [row.expected_amount, row.difference].into_iter().flatten() {
        out.extend_from_slice(&amount.serialize());
    }
    let text = |out: &mut Vec<u8>, text: &str| {
        out.extend_from_slice(&(text.len() as u32).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
    };
    text(out, &row.status_code);
    text(out, &row.statement_file);
    for shared in [&row.statement_id, &row.account].into_iter().flatten() {
        text(out, shared);
    }
    out.extend_from_slice(&row.texts.present.to_le_bytes());
    for end in row.texts.ends {
        out.extend_from_slice(&(end as u32).to_le_bytes());
    }
    text(out, &row.texts.text);
    let size = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&size.to_le_bytes());
}

// What a decision's earlier settlement is, in a byte.
const NOT_SETTLED: u8 = 0;
const SETTLED_STORED: u8 = 1;
const SETTLED_THIS_RUN: u8 = 2;
const SETTLED_UNKNOWN: u8 = 3;

/// Appends what a suggestion reads of a decision (its outcome is the row's).
fn encode_decision(decision: &Decision, out: &mut Vec<u8>) {
    let outcome = Outcome::ALL.iter().position(|o| *o == decision.outcome);
    out.push(outcome.unwrap_or_default() as u8);
    out.push(u8::from(decision.reference.is_some()));
    if let Some(reference) = decision.reference {
        out.extend_from_slice(reference.uuid().as_bytes());
    }
    out.extend_from_slice(&(decision.other_references.len() as u32).to_le_bytes());
    for reference in &decision.other_references {
        out.extend_from_slice(reference.uuid().as_bytes());
    }
    out.push(u8::from(decision.topup.is_some()));
    if let Some(topup) = &decision.topup {
        out.extend_from_slice(topup.id.uuid().as_bytes());
        out.extend_from_slice(&topup.created_at.timestamp().to_le_bytes());
        out.extend_from_slice(&topup.created_at.timestamp_subsec_nanos().to_le_bytes());
        out.extend_from_slice(topup.account_group_id.uuid().as_bytes());
        out.extend_from_slice(&topup.cash_amount.serialize());
        out.extend_from_slice(topup.currency.as_str().as_bytes());
        let status = Status::ALL.iter().position(|s| *s == topup.status);
        out.push(status.unwrap_or_default() as u8);
        out.extend_from_slice(topup.settlement_reference.uuid().as_bytes());
    }
    match &decision.earlier {
        None => out.push(NOT_SETTLED),
        Some(EarlierSettlement::Stored(text)) => {
            out.push(SETTLED_STORED);
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        Some(EarlierSettlement::ThisRun(identity)) => {
            out.push(SETTLED_THIS_RUN);
            out.extend_from_slice(&identity.0);
        }
        Some(EarlierSettlement::Unknown) => out.push(SETTLED_UNKNOWN),
    }
    out.push(u8::from(decision.copy_of.is_some()));
    if let Some(text) = &decision.copy_of {
        out.extend_from_slice(&(text.len() as u32).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
    }
}

/// Reads what [`encode_decision`] wrote.
fn decode_decision(input: &mut Input) -> Option<Decision> {
    let uuid = |input: &mut Input| input.array().map(uuid::Uuid::from_bytes);
    let outcome = *Outcome::ALL.get(usize::from(input.array::<1>()?[0]))?;
    let reference = match input.array::<1>()? {
        [0] => None,
        [1] => Some(SettlementReference::from_uuid(uuid(input)?)),
        _ => return None,
    };
    let others = u32::from_le_bytes(input.array()?) as usize;
    // Each takes 16 bytes: a count beyond what is left is damage, not an allocation.
    if others > input.0.len() / 16 {
        return None;
    }
    let other_references = (0..others)
        .map(|_| uuid(input).map(SettlementReference::from_uuid))
        .collect::<Option<_>>()?;
    let topup = match input.array::<1>()? {
        [0] => None,
        [1] => Some(TopUp {
            id: TopUpId::from_uuid(uuid(input)?),
            created_at: DateTime::from_timestamp(
                i64::from_le_bytes(input.array()?),
                u32::from_le_bytes(input.array()?),
            )?,
            account_group_id: AccountGroupId::from_uuid(uuid(input)?),
            cash_amount: Decimal::deserialize(input.array()?),
            currency: std::str::from_utf8(&input.array::<3>()?)
                .ok()?
                .parse()
                .ok()?,
            status: *Status::ALL.get(usize::from(input.array::<1>()?[0]))?,
            settlement_reference: SettlementReference::from_uuid(uuid(input)?),
        }),
        _ => return None,
    };
    let earlier = match input.array::<1>()?[0] {
        NOT_SETTLED => None,
        SETTLED_STORED => Some(EarlierSettlement::Stored(input.text()?.to_string())),
        SETTLED_THIS_RUN => Some(EarlierSettlement::ThisRun(TxIdentity(input.array()?))),
        SETTLED_UNKNOWN => Some(EarlierSettlement::Unknown),
        _ => return None,
    };
    let copy_of = match input.array::<1>()? {
        [0] => None,
        [1] => Some(input.text()?.to_string()),
        _ => return None,
    };
    Some(Decision {
        outcome,
        reference,
        other_references,
        topup,
        earlier,
        copy_of,
    })
}

/// Reads what [`encode`] wrote, after its length; `None` when it is not such a record.
fn decode(record: &[u8], shared: &mut Shared) -> Option<Row> {
    let mut input = Input(record);
    let flags = u16::from_le_bytes(input.array()?);
    let has = |bit: u16| flags & bit != 0;
    let outcome = *Outcome::ALL.get(usize::from(input.array::<1>()?[0]))?;
    let amount = Decimal::deserialize(input.array()?);
    let currency = std::str::from_utf8(&input.array::<3>()?)
        .ok()?
        .parse()
        .ok()?;
    let mut date = |bit| -> Option<Option<NaiveDate>> {
        if !has(bit) {
            return Some(None);
        }
        NaiveDate::from_num_days_from_ce_opt(i32::from_le_bytes(input.array()?)).map(Some)
    };
    let booking_date = date(BOOKING_DATE)?;
    let value_date = date(VALUE_DATE)?;
    let entry_number = u32::from_le_bytes(input.array()?);
    let detail_number = match has(DETAIL) {
        true => Some(u32::from_le_bytes(input.array()?)),
        false => None,
    };
    let line_number = match has(LINE) {
        true => Some(u64::from_le_bytes(input.array()?)),
        false => None,
    };
    let identity = TxIdentity(input.array()?);
    let cross_key = match has(CROSS_KEY) {
        true => Some(CrossKey(i64::from_le_bytes(input.array()?))),
        false => None,
    };
    let topup_id = match has(TOPUP) {
        true => Some(TopUpId::from_uuid(uuid::Uuid::from_bytes(input.array()?))),
        false => None,
    };
    let mut amount_if = |bit| -> Option<Option<Decimal>> {
        match has(bit) {
            true => Some(Some(Decimal::deserialize(input.array()?))),
            false => Some(None),
        }
    };
    let expected_amount = amount_if(EXPECTED)?;
    let difference = amount_if(DIFFERENCE)?;
    let status_code = share(&mut shared.status_code, input.text()?);
    let statement_file = share(&mut shared.statement_file, input.text()?);
    let statement_id = match has(STATEMENT_ID) {
        true => Some(share(&mut shared.statement_id, input.text()?)),
        false => None,
    };
    let account = match has(ACCOUNT) {
        true => Some(share(&mut shared.account, input.text()?)),
        false => None,
    };
    let present = u16::from_le_bytes(input.array()?);
    let mut ends = [0; TEXTS];
    for end in &mut ends {
        *end = u32::from_le_bytes(input.array()?) as usize;
    }
    let text = input.text()?;
    let in_order = ends.windows(2).all(|w| w[0] <= w[1]) && ends[TEXTS - 1] == text.len();
    let on_boundaries = ends.iter().all(|&end| text.is_char_boundary(end));
    if !(in_order && on_boundaries && input.0.is_empty()) {
        return None;
    }
    Some(Row {
        outcome,
        amount,
        currency,
        direction: match has(DEBIT) {
            true => Direction::Debit,
            false => Direction::Credit,
        },
        status_code,
        reversal: has(REVERSAL),
        booking_date,
        value_date,
        statement_file,
        statement_id,
        account,
        entry_number,
        detail_number,
        line_number,
        texts: Texts {
            text: text.into(),
            ends,
            present,
        },
        topup_id,
        expected_amount,
        difference,
        identity,
        cross_key,
    })
}

/// What is left of a record to decode.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn text(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }

    /// Bytes after their length.
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        let (bytes, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::TextFields;

    fn row(n: u32) -> Row {
        let mut row = super::super::tests::sample_row();
        row.entry_number = n;
        row.amount = Decimal::new(12_345 + i64::from(n), 2);
        row
    }

    fn full_row() -> Row {
        Row {
            outcome: Outcome::Matched,
            amount: "-1234.5600".parse().unwrap(),
            currency: "JPY".parse().unwrap(),
            direction: Direction::Debit,
            status_code: "BOOK".into(),
            reversal: true,
            booking_date: NaiveDate::from_ymd_opt(2026, 2, 28),
            value_date: NaiveDate::from_ymd_opt(1999, 12, 31),
            statement_file: "in/ü.xml".into(),
            statement_id: Some("STMT-1".into()),
            account: Some("DE02120300000000202051".into()),
            entry_number: 7,
            detail_number: Some(3),
            line_number: Some(u64::MAX),
            texts: Texts::new(TextFields {
                entry_ref: Some("E1"),
                servicer_ref: None,
                end_to_end_id: Some(""),
                tx_id: Some("T-ü"),
                uetr: None,
                counterparty_name: Some("Zoë"),
                counterparty_iban: Some("DE02120300000000202051"),
                remittance: "pay 1ab4fef9 😀",
                extracted_reference: Some("1ab4fef9-a097-4c6f-9345-647025d5fde6"),
                suggestion: Some("refund"),
            }),
            topup_id: Some("1ab4fef9-a097-4c6f-9345-647025d5fde6".parse().unwrap()),
            expected_amount: Some(Decimal::new(-1, 28)),
            difference: Some(Decimal::MAX),
            identity: TxIdentity([7; 32]),
            cross_key: Some(CrossKey(i64::MIN)),
        }
    }

    #[test]
    fn rows_come_back_as_written_with_every_field_present_or_absent() {
        let dir = tempfile::tempdir().unwrap();
        let mut spill = Spill::new_in(dir.path()).unwrap();
        let written = [full_row(), row(1), full_row(), row(2)];
        for row in &written {
            spill.push(row).unwrap();
        }
        let spilled = spill.finish().unwrap();
        assert_eq!(spilled.len(), 4);
        let read: Vec<Row> = spilled.iter().collect::<io::Result<_>>().unwrap();
        assert_eq!(read, written);
        // Two readers at once each read from the start.
        let mut a = spilled.iter();
        let mut b = spilled.iter();
        assert_eq!(a.next().unwrap().unwrap(), written[0]);
        assert_eq!(b.next().unwrap().unwrap(), written[0]);
        assert_eq!(a.next().unwrap().unwrap(), written[1]);
    }

    #[test]
    fn a_spill_cut_back_to_a_mark_forgets_what_came_after_and_goes_on_from_there() {
        let dir = tempfile::tempdir().unwrap();
        let mut spill = Spill::new_in(dir.path()).unwrap();
        spill.push(&row(1)).unwrap();
        let mark = spill.mark();
        // More than the write buffer after the mark, so some of it is already in the file.
        let many: Vec<Row> = (2..2000).map(row).collect();
        for row in &many {
            spill.push(row).unwrap();
        }
        let since: Vec<Row> = spill.since(mark).unwrap().map(Result::unwrap).collect();
        assert_eq!(since, many);
        spill.truncate(mark).unwrap();
        assert_eq!(spill.len(), 1);
        spill.push(&full_row()).unwrap();
        let read: Vec<Row> = spill.finish().unwrap().iter().map(Result::unwrap).collect();
        assert_eq!(read, [row(1), full_row()]);
    }

    #[test]
    fn a_damaged_record_is_an_error_not_a_wrong_row() {
        let mut record = Vec::new();
        encode(&full_row(), &mut record);
        let body = &record[4..];
        assert_eq!(decode(body, &mut Shared::default()), Some(full_row()));
        // Cut anywhere, or with a byte more, it is refused.
        for cut in 0..body.len() {
            assert_eq!(
                decode(&body[..cut], &mut Shared::default()),
                None,
                "cut {cut}"
            );
        }
        let mut longer = body.to_vec();
        longer.push(0);
        assert_eq!(decode(&longer, &mut Shared::default()), None);
        // An outcome beyond the list is refused.
        let mut bad = body.to_vec();
        bad[2] = 200;
        assert_eq!(decode(&bad, &mut Shared::default()), None);
    }

    fn decision(earlier: Option<EarlierSettlement>) -> Decision {
        let reference: SettlementReference =
            "1ab4fef9-a097-4c6f-9345-647025d5fde6".parse().unwrap();
        Decision {
            outcome: Outcome::AlreadySettled,
            reference: Some(reference),
            other_references: vec![reference, SettlementReference::from_uuid(uuid::Uuid::nil())],
            topup: Some(TopUp {
                id: "0b7d1c7e-9f1a-4c43-8f43-1d2b7b1f6a01".parse().unwrap(),
                created_at: "2026-11-01T08:00:00.123456789Z".parse().unwrap(),
                account_group_id: AccountGroupId::from_uuid(uuid::Uuid::from_u128(7)),
                cash_amount: "300.50".parse().unwrap(),
                currency: "EUR".parse().unwrap(),
                status: Status::Settled,
                settlement_reference: reference,
            }),
            earlier,
            copy_of: None,
        }
    }

    #[test]
    fn exceptions_come_back_with_their_decisions_and_a_damaged_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut spill = Spill::<Unmatched>::new_in(dir.path()).unwrap();
        let written = [
            Some(EarlierSettlement::Stored("run x, entry 5".into())),
            Some(EarlierSettlement::ThisRun(TxIdentity([3; 32]))),
            Some(EarlierSettlement::Unknown),
            None,
        ]
        .into_iter()
        .map(|earlier| Unmatched {
            row: full_row(),
            decision: decision(earlier),
        })
        .chain([Unmatched {
            row: row(1),
            decision: Decision {
                outcome: Outcome::NoReference,
                reference: None,
                other_references: Vec::new(),
                topup: None,
                earlier: None,
                copy_of: Some("statement.csv line 4 (run x)".into()),
            },
        }])
        .collect::<Vec<_>>();
        for unmatched in &written {
            spill.push(unmatched).unwrap();
        }
        let read: Vec<Unmatched> = spill.finish().unwrap().iter().map(Result::unwrap).collect();
        assert_eq!(read, written);
        let mut record = Vec::new();
        written[0].encode(&mut record);
        let body = &record[4..];
        for cut in 0..body.len() {
            assert_eq!(
                Unmatched::decode(&body[..cut], &mut Shared::default()),
                None,
                "cut {cut}"
            );
        }
    }
}
