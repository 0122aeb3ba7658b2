//! SWIFT MT940 customer statements, including the German `:86:` variant with `?20`..`?29`
//! purpose sub-fields, read into the same transactions as camt. Files come as banks send them:
//! with SWIFT envelopes (`{1:..}{2:..}{4:`, SOH/ETX bytes) or bank header lines (`ABNANL2A`,
//! `940`, `0000 01INGBNL2AXXXX00001`) around the messages, and `:61:` lines filled loosely.

use std::io::BufRead;
use std::sync::{Arc, LazyLock};

use chrono::{Datelike, Months, NaiveDate};
use regex::Regex;

use super::reader::{Batches, FormatRead, ReadError, StatementReader};
use super::{
    Balance, BankRefs, Counterparty, Direction, Limits, Position, Remittance, StatementInfo,
    Transaction, TxIdentity,
};
use crate::money::Currency;

/// The MT940 reader; bytes that are not UTF-8 are read as Windows-1252 (Latin-1).
#[derive(Clone, Copy, Debug, Default)]
pub struct Mt940Reader;

impl StatementReader for Mt940Reader {
    fn read<R: BufRead>(
        &self,
        input: R,
        limits: &Limits,
        sink: &mut dyn FnMut(Vec<Transaction>) -> bool,
    ) -> Result<FormatRead, ReadError> {
        let mut file = MtFile::new(Batches::new(sink, limits));
        let mut lines = Lines::new(input, limits.max_text_bytes);
        while let Some(text) = lines.next_line()? {
            file.line(&text, lines.number)?;
            file.batches.hand_over_full()?;
        }
        file.finish(lines.number)
    }
}

/// The lines of a file, decoded and numbered from 1 as an editor numbers them.
struct Lines<R> {
    input: R,
    bytes: Vec<u8>,
    number: u64,
    max_bytes: usize,
}

impl<R: BufRead> Lines<R> {
    fn new(input: R, max_bytes: usize) -> Self {
        Lines {
            input,
            bytes: Vec::new(),
            number: 0,
            max_bytes,
        }
    }

    /// The next line without its line break, or `None` at the end of the file.
    fn next_line(&mut self) -> Result<Option<String>, ReadError> {
        self.bytes.clear();
        let n = self
            .input
            .read_until(b'\n', &mut self.bytes)
            .map_err(|e| ReadError::on_line(self.number + 1, format!("cannot read: {e}")))?;
        if n == 0 {
            return Ok(None);
        }
        self.number += 1;
        if self.bytes.len() > self.max_bytes {
            return Err(ReadError::on_line(
                self.number,
                format!(
                    "the line is longer than the limit of {} bytes",
                    self.max_bytes
                ),
            ));
        }
        let text = decode_line(&self.bytes);
        let text = text.trim_end_matches(['\r', '\n']);
        let text = if self.number == 1 {
            text.trim_start_matches('\u{feff}')
        } else {
            text
        };
        Ok(Some(text.trim_matches(FRAMING).to_string()))
    }
}

/// SOH and ETX, which SWIFT gateways put around each message.
const FRAMING: [char; 2] = ['\u{1}', '\u{3}'];

static FIELD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^:(\d{2}[A-Z]?):(.*)$").expect("valid regex"));

/// One field (`:61:` with its continuation lines) as read.
struct Field {
    tag: String,
    lines: Vec<String>,
    line: u64,
}

#[derive(Default)]
struct Context {
    reference: Option<String>,
    account: Option<String>,
    number: Option<String>,
    currency: Option<Currency>,
}

/// The message being read: the line of its `:20:`, and whether its closing balance came.
struct Message {
    line: u64,
    closed: bool,
}

/// One MT940 file as it is read: its statements, the message and field being read, and the
/// transaction the field belongs to (`:86:` follows its `:61:`).
struct MtFile<'s> {
    batches: Batches<'s>,
    statements: Vec<StatementInfo>,
    ctx: Context,
    message: Option<Message>,
    pending: Option<Field>,
    open_tx: Option<Transaction>,
}

impl<'s> MtFile<'s> {
    fn new(batches: Batches<'s>) -> Self {
        MtFile {
            batches,
            statements: Vec::new(),
            ctx: Context::default(),
            message: None,
            pending: None,
            open_tx: None,
        }
    }

    /// Takes one line, numbered `number`. A SWIFT envelope opens the text block with `{4:`: the
    /// first field may follow on the same line, and the previous message's end (`-}`) precede it.
    fn line(&mut self, text: &str, number: u64) -> Result<(), ReadError> {
        match text.split_once("{4:") {
            Some((before, after)) => {
                self.segment(before.trim_matches(FRAMING), number)?;
                self.segment(after, number)
            }
            None => self.segment(text, number),
        }
    }

    /// Takes a line's text: a new field, the end of a message, a continuation of the field
    /// being read, or a line banks put between messages.
    fn segment(&mut self, text: &str, number: u64) -> Result<(), ReadError> {
        if let Some(caps) = FIELD.captures(text) {
            self.apply_pending()?;
            self.pending = Some(Field {
                tag: caps[1].to_string(),
                lines: vec![caps[2].to_string()],
                line: number,
            });
        } else if self.ends_message(text) {
            self.apply_pending()?;
            self.end_message()
                .map_err(|message| ReadError::on_line(number, message))?;
        } else if is_envelope(text) {
            // `{1:...}{2:...}` or a trailer `{5:...}`: framing, never field text.
        } else if let Some(field) = self.pending.as_mut() {
            field.lines.push(text.to_string());
        } else if !is_bank_header(text) {
            return Err(ReadError::on_line(
                number,
                format!(
                    "expected a field such as :20: or :61:, found {:?}",
                    crate::text::clip(text, 30)
                ),
            ));
        }
        Ok(())
    }

    /// Whether `text` ends the message: `-}` always; a lone `-` only once the message has its
    /// closing balance (before that it is text: a wrapped `:86:` line that is just a hyphen).
    fn ends_message(&self, text: &str) -> bool {
        let text = text.trim();
        if text.starts_with("-}") {
            return true;
        }
        let closing_pending = self
            .pending
            .as_ref()
            .is_some_and(|f| f.tag.starts_with("62"));
        text == "-"
            && self
                .message
                .as_ref()
                .is_none_or(|m| m.closed || closing_pending)
    }

    /// Ends the message being read; one that ends before its closing balance is refused.
    fn end_message(&mut self) -> Result<(), String> {
        self.flush();
        match self.message.take() {
            Some(m) if !m.closed => Err(format!(
                "the statement that starts at line {} ends without a closing balance (:62F:); \
                 ask the bank for the complete statement",
                m.line
            )),
            _ => Ok(()),
        }
    }

    /// Ends the file, whose last line is `number`: a message still open without its closing
    /// balance means the file was cut off.
    fn finish(mut self, number: u64) -> Result<FormatRead, ReadError> {
        self.apply_pending()?;
        self.flush();
        if let Some(m) = &self.message
            && !m.closed
        {
            return Err(ReadError::on_line(
                number,
                format!(
                    "the file ends inside the statement that starts at line {} (:20: {}), \
                     before its closing balance (:62F:): the file is cut off; ask the bank to \
                     send it again",
                    m.line,
                    crate::text::clip(self.ctx.reference.as_deref().unwrap_or(""), 30)
                ),
            ));
        }
        if self.statements.is_empty() {
            return Err(ReadError::on_line(
                number,
                "no :20: field found; this is not an MT940 statement",
            ));
        }
        self.batches.finish()?;
        Ok(FormatRead {
            format: "mt940".to_string(),
            statements: self.statements,
            bad_rows: Vec::new(),
        })
    }

    fn apply_pending(&mut self) -> Result<(), ReadError> {
        match self.pending.take() {
            Some(field) => {
                let line = field.line;
                self.apply(field)
                    .map_err(|message| ReadError::on_line(line, message))
            }
            None => Ok(()),
        }
    }

    /// Hands the open transaction on, counted in its statement's totals.
    fn flush(&mut self) {
        let Some(tx) = self.open_tx.take() else {
            return;
        };
        if let Some(statement) = self.statements.last_mut() {
            let totals = &mut statement.totals;
            totals.entries += 1;
            totals.entries_sum += tx.amount;
            match tx.direction {
                Direction::Credit => {
                    totals.booked_credits += 1;
                    totals.booked_credits_sum += tx.amount;
                }
                Direction::Debit => {
                    totals.booked_debits += 1;
                    totals.booked_debits_sum += tx.amount;
                }
            }
        }
        self.batches.push(tx);
    }

    /// Acts on one whole field; the error is the field's, for its line.
    fn apply(&mut self, field: Field) -> Result<(), String> {
        let first = field.lines[0].trim();
        match field.tag.as_str() {
            "20" => self.start_message(first, field.line)?,
            "25" => {
                self.ctx.account = Some(first.to_string());
                if let Some(s) = self.statements.last_mut() {
                    s.account = Some(first.to_string());
                }
            }
            "28C" | "28" => {
                self.ctx.number = Some(first.to_string());
                let reference = self.ctx.reference.as_deref().unwrap_or("");
                if let Some(s) = self.statements.last_mut() {
                    s.electronic_sequence = Some(first.to_string());
                    s.id = Some(format!("{reference}/{first}"));
                }
            }
            "60F" | "60M" => {
                let balance = balance(first)?;
                self.ctx.currency = Some(balance.currency);
                if let Some(s) = self.statements.last_mut() {
                    s.opening = Some(balance);
                }
            }
            "62F" | "62M" => {
                self.flush();
                let balance = balance(first)?;
                if let Some(s) = self.statements.last_mut() {
                    s.closing = Some(balance);
                }
                if let Some(m) = self.message.as_mut() {
                    m.closed = true;
                }
            }
            "61" => {
                self.flush();
                let ordinal = self.batches.read() as u32 + 1;
                self.open_tx = Some(statement_line(&field, &self.ctx, ordinal)?);
                // Refused here, at its own line, rather than when the next field hands it on.
                self.batches.within_limit(1)?;
            }
            "86" => {
                if let Some(tx) = self.open_tx.as_mut() {
                    information(&field.lines, tx);
                }
            }
            "64" | "65" => self.flush(),
            _ => {}
        }
        Ok(())
    }

    /// `:20:` at `line` starts a message (and a statement); the one before must have closed.
    fn start_message(&mut self, reference: &str, line: u64) -> Result<(), String> {
        self.flush();
        if let Some(m) = self.message.take()
            && !m.closed
        {
            return Err(format!(
                "the statement that starts at line {} has no closing balance (:62F:) before \
                 this next :20:; ask the bank for the complete statement",
                m.line
            ));
        }
        self.message = Some(Message {
            line,
            closed: false,
        });
        self.ctx = Context {
            reference: Some(reference.to_string()),
            ..Context::default()
        };
        self.statements.push(StatementInfo {
            id: Some(reference.to_string()),
            ..StatementInfo::default()
        });
        Ok(())
    }
}

/// A SWIFT envelope block (`{1:F01...}{2:O940...}`, `{5:{CHK:...}}`).
fn is_envelope(text: &str) -> bool {
    let b = text.trim_start().as_bytes();
    b.len() >= 3 && b[0] == b'{' && (b'1'..=b'5').contains(&b[1]) && b[2] == b':'
}

/// Lines that banks and SWIFT gateways put before and between messages: `ABNANL2A`, `940`,
/// `0000 01INGBNL2AXXXX00001`, `940 00`, `:940:`, a lone `-`, envelope blocks, blank lines.
fn is_bank_header(text: &str) -> bool {
    let t = text.trim();
    let message_type = t.len() == 5
        && t.starts_with(':')
        && t.ends_with(':')
        && t[1..4].bytes().all(|b| b.is_ascii_digit());
    t.is_empty()
        || t == "-"
        || t.starts_with('{')
        || message_type
        || (t.len() <= 64 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' '))
}

fn decode_line(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => encoding_rs::WINDOWS_1252.decode(bytes).0.into_owned(),
    }
}

/// `C261120EUR1000,00`: mark, date, currency, amount. A day past the month's end (30 February)
/// is read as the month's last day, as for statement lines.
fn balance(text: &str) -> Result<Balance, String> {
    let bad = || {
        format!(
            "{:?} is not a balance (expected e.g. C200101EUR1000,00)",
            crate::text::clip(text, 30)
        )
    };
    let debit = match text.get(0..1) {
        Some("C") => false,
        Some("D") => true,
        _ => return Err(bad()),
    };
    let (date, _) = yymmdd(text.get(1..7).ok_or_else(bad)?).ok_or_else(bad)?;
    let currency: Currency = text
        .get(7..10)
        .ok_or_else(bad)?
        .parse()
        .map_err(|e| format!("{e}"))?;
    let amount = amount(text.get(10..).ok_or_else(bad)?).ok_or_else(bad)?;
    Ok(Balance {
        amount: if debit { -amount } else { amount },
        currency,
        date: Some(date),
    })
}

/// An MT940 amount: digits with a decimal comma, or none (`500`, `500,`, `12,50`).
fn amount(text: &str) -> Option<rust_decimal::Decimal> {
    let (units, cents) = text.split_once(',').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if units.is_empty() || units.len() + cents.len() > 15 || !digits(units) || !digits(cents) {
        return None;
    }
    let plain = if cents.is_empty() {
        units.to_string()
    } else {
        format!("{units}.{cents}")
    };
    crate::money::parse_amount(&plain, crate::money::MAX_BANK_DECIMALS).ok()
}

/// The parts of a `:61:` statement line's first line, as banks fill it:
/// `YYMMDD[MMDD]` `C|D|RC|RD` `[funds code]` `amount` `[type code]` `[customer ref]` `[//bank ref]`.
struct LineParts<'a> {
    value_date: &'a str,
    entry_date: Option<&'a str>,
    mark: &'a str,
    amount: &'a str,
    customer_ref: &'a str,
    bank_ref: Option<&'a str>,
}

/// Splits a `:61:` line as tolerantly as the common MT940 readers do: the funds code letter
/// may be there or not, the amount may lack its decimal comma, the type code may be missing or
/// end in a blank (`NIT `), and the references may be longer than the 16 characters SWIFT
/// allows (an IBAN as the customer reference).
fn split_statement_line(text: &str) -> Option<LineParts<'_>> {
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let value_date = text.get(0..6).filter(|d| is_digits(d))?;
    let mut rest = &text[6..];
    let entry_date = rest.get(0..4).filter(|d| is_digits(d));
    if entry_date.is_some() {
        rest = &rest[4..];
    }
    let mark = ["RC", "RD", "C", "D"]
        .into_iter()
        .find(|m| rest.starts_with(m))?;
    rest = &rest[mark.len()..];
    // The funds code: the third letter of the currency code.
    if rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
        rest = &rest[1..];
    }
    rest = rest.trim_start_matches(' ');
    let amount_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ','))
        .unwrap_or(rest.len());
    let (amount, rest) = rest.split_at(amount_len);
    if !amount.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let rest = rest.get(type_code_len(rest)..)?;
    let (customer_ref, bank_ref) = match rest.split_once("//") {
        Some((customer, bank)) => (customer, Some(bank.trim())),
        None => (rest, None),
    };
    Some(LineParts {
        value_date,
        entry_date,
        mark,
        amount,
        customer_ref: customer_ref.trim(),
        bank_ref,
    })
}

/// The length of the transaction type code at the start of `rest` (`NTRF`, `NMSC`, `S103`,
/// `NIT ` with a blank), or 0 where there is none: the reference follows the amount directly
/// (`NONREF`, an IBAN, `//`).
fn type_code_len(rest: &str) -> usize {
    let b = rest.as_bytes();
    let token = rest.split(['/', ' ']).next().unwrap_or("").as_bytes();
    let iban_like = (15..=34).contains(&token.len())
        && token[..2].iter().all(u8::is_ascii_uppercase)
        && token[2..4].iter().all(u8::is_ascii_digit)
        && token.iter().all(u8::is_ascii_alphanumeric);
    let code_like = b.len() >= 4
        && matches!(b[0], b'N' | b'S' | b'F')
        && b[1] != b' '
        && b[1..4]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b' ');
    let reference_first = rest.starts_with("NONREF") || rest.starts_with("NOTPROVIDED");
    if reference_first || iban_like || !code_like {
        0
    } else {
        4
    }
}

fn statement_line(field: &Field, ctx: &Context, ordinal: u32) -> Result<Transaction, String> {
    let first = field.lines[0].trim();
    let parts = split_statement_line(first).ok_or_else(|| {
        format!(
            "{:?} is not a :61: statement line (expected e.g. 2001020102C100,00NTRFNONREF//BANKREF)",
            crate::text::clip(first, 40)
        )
    })?;
    let mut remittance = Remittance::default();
    let (value_date, booking_date) = line_dates(&parts, &mut remittance.notes)?;
    let (direction, reversal) = match parts.mark {
        "C" => (Direction::Credit, false),
        "D" => (Direction::Debit, false),
        // A reversal of a credit takes the money out again, and the other way round.
        "RC" => (Direction::Debit, true),
        _ => (Direction::Credit, true),
    };
    let amount = amount(parts.amount).ok_or_else(|| {
        format!(
            "{:?} is not an amount (expected digits with a decimal comma, e.g. 100,00)",
            crate::text::clip(parts.amount, 20)
        )
    })?;
    let currency = ctx
        .currency
        .ok_or("a :61: line before any :60F: opening balance: the currency is unknown")?;
    let meaningful = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("NONREF"))
            .map(str::to_string)
    };
    for extra in &field.lines[1..] {
        let extra = extra.trim();
        if !extra.is_empty() && extra != "-" {
            remittance.additional.push(extra.to_string());
        }
    }
    Ok(Transaction {
        position: Position {
            entry: ordinal,
            detail: None,
            line: Some(field.line),
        },
        statement_id: match (&ctx.reference, &ctx.number) {
            (Some(r), Some(n)) => Some(format!("{r}/{n}").into()),
            (r, _) => r.as_deref().map(Arc::from),
        },
        account: ctx.account.as_deref().map(Arc::from),
        direction,
        booked: true,
        status_code: Arc::from("BOOK"),
        reversal,
        amount,
        currency,
        booking_date: Some(booking_date),
        value_date: Some(value_date),
        refs: BankRefs {
            entry_ref: meaningful(Some(parts.customer_ref)),
            servicer_ref: meaningful(parts.bank_ref),
            ..BankRefs::default()
        },
        counterparty: Counterparty::default(),
        remittance,
        identity: TxIdentity::default(),
        cross_key: None,
    })
}

/// A statement line's value date and entry date (the value date when it has none); a date the
/// calendar does not have gets a note.
fn line_dates(
    parts: &LineParts,
    notes: &mut Vec<String>,
) -> Result<(NaiveDate, NaiveDate), String> {
    let (value_date, moved) = yymmdd(parts.value_date)
        .ok_or_else(|| format!("{:?} is not a date (YYMMDD)", parts.value_date))?;
    if moved {
        notes.push(moved_note("value", parts.value_date, value_date));
    }
    let Some(mmdd) = parts.entry_date else {
        return Ok((value_date, value_date));
    };
    let (entry, moved) = entry_date(mmdd, value_date)
        .ok_or_else(|| format!("{mmdd:?} is not an entry date (MMDD)"))?;
    if moved {
        notes.push(moved_note("entry", mmdd, entry));
    }
    Ok((value_date, entry))
}

/// The note on a date the bank wrote that is no calendar date.
fn moved_note(which: &str, written: &str, used: NaiveDate) -> String {
    format!(
        "the bank's {which} date {written} is not a calendar date; {used}, the month's last \
         day, stands in for it"
    )
}

/// ASCII digits as a number (`str::parse` would take a sign too).
fn number(text: Option<&str>) -> Option<u32> {
    let text = text?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `YYMMDD` (years 80-99 are 19xx), and whether the month's last day stands in for a day the
/// month does not have.
fn yymmdd(text: &str) -> Option<(NaiveDate, bool)> {
    if text.len() != 6 {
        return None;
    }
    let yy = number(text.get(0..2))? as i32;
    let year = if yy < 80 { 2000 + yy } else { 1900 + yy };
    calendar_or_last_day(year, number(text.get(2..4))?, number(text.get(4..6))?)
}

/// The date, or for a day from 29 to 31 that the month does not have (30 February, which
/// banks book fees on), the month's last day and `true`. Anything else is no date.
fn calendar_or_last_day(year: i32, month: u32, day: u32) -> Option<(NaiveDate, bool)> {
    if let Some(date) = NaiveDate::from_ymd_opt(year, month, day) {
        return Some((date, false));
    }
    if !(29..=31).contains(&day) {
        return None;
    }
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let last = first.checked_add_months(Months::new(1))?.pred_opt()?;
    Some((last, true))
}

/// The entry date has no year: take the value date's, across a year end if that is closer.
fn entry_date(mmdd: &str, value: NaiveDate) -> Option<(NaiveDate, bool)> {
    if mmdd.len() != 4 {
        return None;
    }
    let month = number(mmdd.get(0..2))?;
    let day = number(mmdd.get(2..4))?;
    [value.year(), value.year() - 1, value.year() + 1]
        .into_iter()
        .filter_map(|y| calendar_or_last_day(y, month, day))
        .min_by_key(|(d, _)| (*d - value).num_days().abs())
}

/// Reads `:86:`: German structured sub-fields (`?20`..`?29`, `?60`..`?63` purpose, `?32`/`?33`
/// name, `?31` account), SWIFT structured codes (`/EREF/`, `/CNTP/`, `/REMI/`), or free text.
fn information(lines: &[String], tx: &mut Transaction) {
    // Lines of :86: are cut at a fixed width, even inside words: join them tightly.
    let joined: String = lines
        .iter()
        .map(|l| l.trim_end_matches(['\r', '\n']))
        .collect();
    if joined.contains("?2") || joined.contains("?3") {
        german_subfields(&joined, tx);
    } else if joined.starts_with('/') && SWIFT_CODE.is_match(&joined) {
        swift_codes(&joined, tx);
    } else if !joined.trim().is_empty() {
        tx.remittance.unstructured.push(joined.trim().to_string());
    }
}

fn german_subfields(joined: &str, tx: &mut Transaction) {
    let mut name = String::new();
    for part in joined.split('?').skip(1) {
        // Bank text may put any character after a '?': only two ASCII digits make a code.
        let (code, value) = match part.get(..2) {
            Some(code) if code.bytes().all(|b| b.is_ascii_digit()) => (code, &part[2..]),
            _ => ("", part),
        };
        match code {
            "20" | "21" | "22" | "23" | "24" | "25" | "26" | "27" | "28" | "29" | "60" | "61"
            | "62" | "63"
                if !value.trim().is_empty() =>
            {
                tx.remittance.unstructured.push(value.to_string());
            }
            "31" => {
                tx.counterparty.account = Some(value.trim().to_string()).filter(|v| !v.is_empty())
            }
            "32" | "33" => name.push_str(value),
            "00" => tx.remittance.additional.push(value.trim().to_string()),
            _ => {}
        }
    }
    let name = name.trim();
    if !name.is_empty() {
        tx.counterparty.name = Some(name.to_string());
    }
}

static SWIFT_CODE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"/(EREF|CNTP|REMI|MARF|CSID|PREF|RTRN|BENM|ORDP|NAME|ADDR|PURP|ULTC|ULTD|ULTB|SVCL|BUSP|IREF|ISDT|EXCH|OCMT|CHGS)/")
        .expect("valid regex")
});

/// `/EREF/ref//CNTP/iban/bic/name/city//REMI/USTD//text/` as many banks send it.
fn swift_codes(joined: &str, tx: &mut Transaction) {
    let marks: Vec<(usize, usize, &str)> = SWIFT_CODE
        .captures_iter(joined)
        .filter_map(|c| {
            let whole = c.get(0)?;
            Some((whole.start(), whole.end(), c.get(1)?.as_str()))
        })
        .collect();
    for (i, (_, value_start, code)) in marks.iter().enumerate() {
        let value_end = marks.get(i + 1).map_or(joined.len(), |next| next.0);
        let value = joined[*value_start..value_end].trim_end_matches('/');
        match *code {
            "EREF" => tx.refs.end_to_end_id = Some(value.to_string()).filter(|v| !v.is_empty()),
            "CNTP" | "BENM" | "ORDP" => {
                let mut parts = value.split('/');
                let account = parts.next().unwrap_or("").trim();
                let _bic = parts.next();
                let name = parts.next().unwrap_or("").trim();
                if !account.is_empty() {
                    tx.counterparty.account = Some(account.to_string());
                }
                if !name.is_empty() {
                    tx.counterparty.name = Some(name.to_string());
                }
            }
            "REMI" => {
                let text = value
                    .strip_prefix("USTD//")
                    .or_else(|| value.strip_prefix("STRD/CUR/"))
                    .unwrap_or(value)
                    .trim();
                if !text.is_empty() {
                    tx.remittance.unstructured.push(text.to_string());
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &[u8]) -> Result<(FormatRead, Vec<Transaction>), ReadError> {
        Mt940Reader.read_all(text, &Limits::default())
    }

    const SAMPLE: &str = ":20:STARTUMSE
:25:10020030/1234567
:28C:00001/001
:60F:C261120EUR1000,00
:61:2611201120CR200,00NTRFNONREF//B6K21
:86:166?00SEPA-GUTSCHRIFT?109075?20EREF+NOTPROVIDED?21SVWZ+topup 1ab4fef9-a097-4c6
?22f-9345-647025d5fde6?30DEUTDEFF?31DE02120300000000202051
?32Erika Mustermann
:61:2611201120DR12,50NMSCKREF123
:86:Card payment coffee shop
:61:2611211121RC200,00NRTINONREF
:62F:C261121EUR987,50
-
";

    #[test]
    fn reads_statement_lines_and_german_purpose_subfields() {
        let (read, txs) = read(SAMPLE.as_bytes()).unwrap();
        assert_eq!(read.format, "mt940");
        assert_eq!(read.statements.len(), 1);
        assert_eq!(
            read.statements[0].id.as_deref(),
            Some("STARTUMSE/00001/001")
        );
        assert_eq!(txs.len(), 3);
        let credit = &txs[0];
        assert_eq!(credit.direction, Direction::Credit);
        assert_eq!(credit.amount.to_string(), "200.00");
        assert_eq!(credit.currency.as_str(), "EUR");
        assert_eq!(credit.booking_date.unwrap().to_string(), "2026-11-20");
        assert_eq!(credit.refs.servicer_ref.as_deref(), Some("B6K21"));
        assert_eq!(
            credit.counterparty.name.as_deref(),
            Some("Erika Mustermann")
        );
        assert_eq!(
            credit.counterparty.account.as_deref(),
            Some("DE02120300000000202051")
        );
        let found = crate::reference::find_candidates(
            credit.remittance.search_fields().iter().map(AsRef::as_ref),
        );
        assert_eq!(
            found[0].reference.to_string(),
            "1ab4fef9-a097-4c6f-9345-647025d5fde6"
        );
        assert_eq!(txs[1].direction, Direction::Debit);
        assert_eq!(txs[1].refs.entry_ref.as_deref(), Some("KREF123"));
        assert_eq!(txs[1].remittance.display(), "Card payment coffee shop");
        assert!(txs[2].reversal);
        assert_eq!(txs[2].direction, Direction::Debit);
    }

    #[test]
    fn bad_lines_are_refused_with_their_line() {
        let broken = SAMPLE.replace("2611201120DR12,50", "2611201120XR12,50");
        let err = read(broken.as_bytes()).unwrap_err().to_string();
        assert!(
            err.starts_with("line 9: ") && err.contains("not a :61: statement line"),
            "{err}"
        );
        let no_balance = SAMPLE.replace(":60F:C261120EUR1000,00\n", "");
        let err = read(no_balance.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("currency is unknown"), "{err}");
    }

    #[test]
    fn the_transaction_past_the_limit_is_refused_at_its_own_line() {
        let limits = Limits {
            max_transactions: 2,
            ..Limits::default()
        };
        let err = Mt940Reader
            .read_all(SAMPLE.as_bytes(), &limits)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "line 11: the file holds more than the limit of 2 transactions"
        );
    }

    #[test]
    fn a_multibyte_character_after_a_subfield_marker_is_text_not_a_panic() {
        // Found by fuzzing: the sub-field code was cut at byte 2, inside 'þ'.
        let text = SAMPLE.replace("?2245647025D5FDE6", "?2\u{fe}\u{ff}245647025D5FDE6");
        let (_, txs) = read(text.as_bytes()).unwrap();
        assert_eq!(txs.len(), 3);
    }

    #[test]
    fn entry_dates_cross_the_year_end() {
        let value = NaiveDate::from_ymd_opt(2027, 1, 2).unwrap();
        let (date, moved) = entry_date("1231", value).unwrap();
        assert_eq!((date.to_string(), moved), ("2026-12-31".to_string(), false));
    }

    /// A `:61:` line's (value, entry, mark, amount, customer ref, bank ref).
    type Parts<'a> = (
        &'a str,
        Option<&'a str>,
        &'a str,
        &'a str,
        &'a str,
        Option<&'a str>,
    );

    fn parts(text: &str) -> Option<Parts<'_>> {
        split_statement_line(text).map(|p| {
            (
                p.value_date,
                p.entry_date,
                p.mark,
                p.amount,
                p.customer_ref,
                p.bank_ref,
            )
        })
    }

    #[test]
    fn statement_lines_are_read_as_real_banks_fill_them() {
        let iban = "NL91ABNA0417164300";
        for (line, expected) in [
            (
                "2611201120CR200,00NTRFNONREF//B6K21",
                (
                    "261120",
                    Some("1120"),
                    "C",
                    "200,00",
                    "NONREF",
                    Some("B6K21"),
                ),
            ),
            // No funds code, no decimal comma.
            (
                "261121C500NTRFREF1",
                ("261121", None, "C", "500", "REF1", None),
            ),
            // An IBAN as the customer reference, a bank reference over 16 characters.
            (
                "2611211121D12,50NTRFNL91ABNA0417164300//0123456789ABCDEFGHIJ",
                (
                    "261121",
                    Some("1121"),
                    "D",
                    "12,50",
                    iban,
                    Some("0123456789ABCDEFGHIJ"),
                ),
            ),
            // A type code ending in a blank.
            (
                "261121C1,00NIT NONREF",
                ("261121", None, "C", "1,00", "NONREF", None),
            ),
            // No type code at all: the reference, an IBAN or the bank reference follow.
            (
                "261121C1,00NONREF",
                ("261121", None, "C", "1,00", "NONREF", None),
            ),
            (
                "261121C1,00NL91ABNA0417164300",
                ("261121", None, "C", "1,00", iban, None),
            ),
            (
                "261121RD1,00//X",
                ("261121", None, "RD", "1,00", "", Some("X")),
            ),
            (
                "261121RCR1,00S103ABC",
                ("261121", None, "RC", "1,00", "ABC", None),
            ),
        ] {
            assert_eq!(parts(line), Some(expected), "{line}");
        }
        for broken in [
            "26112C1,00",
            "261121X1,00NTRF",
            "261121C,50NTRF",
            "261121CNTRF",
        ] {
            assert!(parts(broken).is_none(), "{broken}");
        }
    }

    #[test]
    fn an_impossible_calendar_date_is_the_months_last_day_with_a_note() {
        let text = SAMPLE.replace(":61:2611201120DR12,50", ":61:2602300230DR12,50");
        let (_, txs) = read(text.as_bytes()).unwrap();
        let fee = &txs[1];
        assert_eq!(fee.value_date.unwrap().to_string(), "2026-02-28");
        assert_eq!(fee.booking_date.unwrap().to_string(), "2026-02-28");
        assert_eq!(fee.remittance.notes.len(), 2);
        assert!(
            fee.remittance.display().contains(
                "[recon: the bank's value date 260230 is not a calendar date; 2026-02-28, \
                 the month's last day, stands in for it]"
            ),
            "{}",
            fee.remittance.display()
        );
        for (broken, expected) in [
            ("2602320230", "\"260232\" is not a date"),
            ("2613010230", "\"261301\" is not a date"),
            ("2602281332", "\"1332\" is not an entry date"),
        ] {
            let text = SAMPLE.replace("2611201120DR12,50", &format!("{broken}DR12,50"));
            let err = read(text.as_bytes()).unwrap_err().to_string();
            assert!(
                err.starts_with("line 9: ") && err.contains(expected),
                "{err}"
            );
        }
    }

    #[test]
    fn header_lines_framing_and_a_hyphen_line_in_86_are_read_past() {
        let framed = format!(
            "\u{1}{{1:F01ABNANL2AXXXX0000000000}}{{2:O9400000000000ABNANL2AXXXX00000000000000000000N}}{{4:\r\n{}-}}\u{3}\r\n",
            SAMPLE.replace('\n', "\r\n").trim_end_matches("-\r\n")
        );
        let ing = format!("0000 01INGBNL2AXXXX00001\n0000 01INGBNL2AXXXX00001\n940 00\n{SAMPLE}");
        let abn = format!("ABNANL2A\n940\nABNANL2A\n{SAMPLE}ABNANL2A\n940\nABNANL2A\n{SAMPLE}");
        let rabo = format!(":940:\n{SAMPLE}");
        for (name, text, statements) in [
            ("framed", framed, 1),
            ("ing", ing, 1),
            ("abn", abn, 2),
            ("rabo", rabo, 1),
        ] {
            let (read, txs) = read(text.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                (read.statements.len(), txs.len()),
                (statements, 3 * statements),
                "{name}"
            );
        }
        let hyphen = SAMPLE.replace("?22f-9345-647025d5fde6", "?22f-9345\n-\n647025d5fde6");
        let (_, txs) = read(hyphen.as_bytes()).unwrap();
        let found = crate::reference::find_candidates(
            txs[0].remittance.search_fields().iter().map(AsRef::as_ref),
        );
        assert_eq!(
            found[0].reference.to_string(),
            "1ab4fef9-a097-4c6f-9345-647025d5fde6"
        );
        let junk = format!("Datum;Betrag\n{SAMPLE}");
        let err = read(junk.as_bytes()).unwrap_err().to_string();
        assert!(err.starts_with("line 1: expected a field"), "{err}");
    }

    #[test]
    fn a_statement_without_its_closing_balance_is_refused() {
        let cut = SAMPLE.split(":62F:").next().unwrap();
        let err = read(cut.as_bytes()).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "line 11: the file ends inside the statement that starts at line 1 \
                             (:20: STARTUMSE), before its closing balance"
            ),
            "{err}"
        );
        let cut_then_next = format!("{cut}-\n{SAMPLE}");
        let err = read(cut_then_next.as_bytes()).unwrap_err().to_string();
        assert!(
            err.starts_with("line 13: the statement that starts at line 1 has no closing balance"),
            "{err}"
        );
        let cut_block = format!("{{4:\n{cut}-}}\n");
        let err = read(cut_block.as_bytes()).unwrap_err().to_string();
        assert!(
            err.starts_with("line 13: the statement that starts at line 2 ends"),
            "{err}"
        );
    }
}
