//! Reading a bank's CSV export with a [`Profile`] (detection picks the profile).

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read};

use chrono::NaiveDate;
use encoding_rs_io::DecodeReaderBytesBuilder;
use rust_decimal::Decimal;

use super::profile::{Col, DirectionRule, Profile};
use super::reader::{Batches, FormatRead, ReadError, StatementReader};
use super::{
    BankRefs, Counterparty, Direction, Limits, Position, Remittance, Repeated, Transaction,
    TxIdentity,
};
use crate::money::Currency;

/// A row that could not be read: its line and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BadRow {
    pub line: u64,
    pub message: String,
}

/// The CSV reader, set up with the profile a file is laid out by.
pub struct CsvReader<'p> {
    /// The profile `--profile` names or detection found.
    pub profile: &'p Profile,
    /// List bad rows and read the good ones, instead of refusing the file at the first.
    pub skip_bad_rows: bool,
}

impl StatementReader for CsvReader<'_> {
    fn read<R: BufRead>(
        &self,
        input: R,
        limits: &Limits,
        sink: &mut dyn FnMut(Vec<Transaction>) -> bool,
    ) -> Result<FormatRead, ReadError> {
        let profile = self.profile;
        let (buffered, line_offset) = skip_preamble(input, profile)?;
        let mut rows = Rows {
            reader: csv_reader(profile, LineCounter::new(buffered, line_offset)),
            record: csv::ByteRecord::new(),
        };
        let header = if profile.has_header {
            Some(find_header(&mut rows, profile, line_offset)?)
        } else {
            None
        };
        let layout = match &header {
            Some((names, line)) => Layout::new(profile, Some(names), *line)?,
            None => Layout::new(profile, None, line_offset + 1)?,
        };
        let mut batches = Batches::new(sink, limits);
        let mut bad_rows = Vec::new();
        let mut ordinal = 0u32;
        let mut repeated = (Repeated::default(), Repeated::default());
        while let Some(line) = rows.next()? {
            let record = &rows.record;
            if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
                continue;
            }
            ordinal += 1;
            let filled = layout.fill_omitted(record);
            let record = filled.as_ref().unwrap_or(record);
            match layout.row(record, ordinal, line, limits, &mut repeated) {
                Ok(tx) => batches.push(tx),
                Err(message) if self.skip_bad_rows => bad_rows.push(BadRow { line, message }),
                Err(message) => return Err(ReadError::on_line(line, message)),
            }
            batches
                .within_limit(0)
                .map_err(|message| ReadError::on_line(line, message))?;
            batches.hand_over_full()?;
        }
        batches.finish()?;
        Ok(FormatRead {
            format: format!("csv ({})", profile.name),
            statements: Vec::new(),
            bad_rows,
        })
    }
}

/// The input decoded from the profile's encoding, past the lines before the header; and how
/// many lines that skipped.
fn skip_preamble<R: BufRead>(
    input: R,
    profile: &Profile,
) -> Result<(BufReader<impl Read + use<R>>, u64), ReadError> {
    let decoded = DecodeReaderBytesBuilder::new()
        .encoding(Some(profile.encoding()))
        .utf8_passthru(true)
        .strip_bom(true)
        .build(input);
    let mut buffered = BufReader::new(decoded);
    let mut line_offset = 0u64;
    for _ in 0..profile.skip_lines {
        let mut skipped = Vec::new();
        let n = buffered
            .read_until(b'\n', &mut skipped)
            .map_err(|e| ReadError::on_line(line_offset + 1, format!("cannot read: {e}")))?;
        if n == 0 {
            break;
        }
        line_offset += 1;
    }
    Ok((buffered, line_offset))
}

/// The file's records, each with the physical line it starts on.
struct Rows<R> {
    reader: csv::Reader<LineCounter<R>>,
    record: csv::ByteRecord,
}

impl<R: Read> Rows<R> {
    /// Reads the next record into `self.record`; its line, or `None` at the end of the file.
    fn next(&mut self) -> Result<Option<u64>, ReadError> {
        match self.reader.read_byte_record(&mut self.record) {
            Ok(true) => {
                let byte = self.record.position().map_or(0, |p| p.byte());
                Ok(Some(self.reader.get_mut().line_at(byte)))
            }
            Ok(false) => Ok(None),
            Err(e) => {
                let byte = e.position().map_or(0, |p| p.byte());
                let line = self.reader.get_mut().line_at(byte);
                Err(ReadError::on_line(line, format!("not valid CSV: {e}")))
            }
        }
    }
}

/// Counts the line breaks in what the CSV parser reads, so that a record's byte offset becomes
/// the physical line it starts on, as an editor numbers lines: `\n`, `\r\n`, `\r\r\n` (which
/// some exports write) and a lone `\r` each end one. (The csv crate's own count, and the offset
/// it gives a record after a `\r\n`, point at the `\n`: one line short.) Each break is counted
/// at the start of its run of `\r` and `\n` bytes, where no record starts; only the breaks read
/// ahead of the current row are kept.
struct LineCounter<R> {
    inner: R,
    /// Where the line breaks read but not yet passed by [`LineCounter::line_at`] are.
    breaks: VecDeque<u64>,
    /// The start of the current run of `\r` and `\n`, and its last byte.
    run_start: u64,
    run_last: Option<u64>,
    /// `\r`s at the run's end not yet followed by anything.
    crs: u64,
    read: u64,
    /// The line at the last offset asked about.
    line: u64,
}

impl<R> LineCounter<R> {
    /// Counts from `inner`'s first byte, which is on the line after `lines_before`.
    fn new(inner: R, lines_before: u64) -> Self {
        LineCounter {
            inner,
            breaks: VecDeque::new(),
            run_start: 0,
            run_last: None,
            crs: 0,
            read: 0,
            line: lines_before + 1,
        }
    }

    /// The line of the record at `offset` (which may point into the line breaks before it);
    /// offsets must be asked in order.
    fn line_at(&mut self, offset: u64) -> u64 {
        while self.breaks.front().is_some_and(|&b| b <= offset) {
            self.breaks.pop_front();
            self.line += 1;
        }
        self.line
    }

    /// Ends the pending `\r`s: followed by `\n`, one or two of them end a line with it; else
    /// each ends one.
    fn end_crs(&mut self, followed_by_lf: bool) {
        let breaks = if followed_by_lf {
            self.crs.saturating_sub(2)
        } else {
            self.crs
        };
        for _ in 0..breaks {
            self.breaks.push_back(self.run_start);
        }
        self.crs = 0;
    }
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let base = self.read;
        for at in memchr::memchr2_iter(b'\r', b'\n', &buf[..n]) {
            let offset = base + at as u64;
            if self.run_last.is_none_or(|last| last + 1 != offset) {
                self.end_crs(false);
                self.run_start = offset;
            }
            self.run_last = Some(offset);
            if buf[at] == b'\r' {
                self.crs += 1;
            } else {
                self.end_crs(true);
                self.breaks.push_back(self.run_start);
            }
        }
        self.read += n as u64;
        // `\r`s followed by another byte in this chunk, or by the end of the file.
        if n == 0 || self.run_last.is_some_and(|last| last + 1 < self.read) {
            self.end_crs(false);
        }
        Ok(n)
    }
}

fn csv_reader<R: Read>(profile: &Profile, input: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .delimiter(profile.delimiter_byte())
        .quote(profile.quote_byte())
        .has_headers(false)
        .flexible(true)
        .trim(if profile.trim {
            csv::Trim::All
        } else {
            csv::Trim::None
        })
        .from_reader(input)
}

fn field_text(field: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(field).map_err(|_| {
        "the text is not valid UTF-8: the file is in another encoding (set `encoding` in the \
         profile, e.g. \"windows-1252\")"
            .to_string()
    })
}

fn clean_name(field: &[u8]) -> String {
    String::from_utf8_lossy(field)
        .trim_start_matches('\u{feff}')
        .trim()
        .to_string()
}

/// The header row's names and line.
fn find_header<R: Read>(
    rows: &mut Rows<R>,
    profile: &Profile,
    line_offset: u64,
) -> Result<(Vec<String>, u64), ReadError> {
    loop {
        let Some(line) = rows.next()? else {
            return Err(ReadError::on_line(
                line_offset,
                match &profile.header_marker {
                    Some(marker) => format!("no header row starting with {marker:?} found"),
                    None => "the file has no header row".to_string(),
                },
            ));
        };
        let record = &rows.record;
        let first = record.get(0).map(clean_name).unwrap_or_default();
        let is_header = match &profile.header_marker {
            Some(marker) => first == *marker,
            None => !(record.len() == 1 && first.is_empty()),
        };
        if is_header {
            return Ok((record.iter().map(clean_name).collect(), line));
        }
    }
}

/// Column indexes resolved against the header.
struct Layout<'p> {
    profile: &'p Profile,
    names: Vec<String>,
    header_len: usize,
    index: HashMap<&'static str, usize>,
    remittance: Vec<usize>,
    status: Option<usize>,
    indicator: Option<usize>,
}

impl<'p> Layout<'p> {
    /// The profile's columns found in `header` (on line `line`), or by position.
    fn new(
        profile: &'p Profile,
        header: Option<&[String]>,
        line: u64,
    ) -> Result<Layout<'p>, ReadError> {
        let resolve = |col: &Col| {
            resolve_column(profile, header, col).map_err(|m| ReadError::on_line(line, m))
        };
        let c = &profile.columns;
        let mut index = HashMap::new();
        for (key, col) in [
            ("booking_date", &c.booking_date),
            ("value_date", &c.value_date),
            ("amount", &c.amount),
            ("debit", &c.debit),
            ("credit", &c.credit),
            ("currency", &c.currency),
            ("counterparty_name", &c.counterparty_name),
            ("payer_name", &c.payer_name),
            ("payee_name", &c.payee_name),
            ("counterparty_iban", &c.counterparty_iban),
            ("bank_ref", &c.bank_ref),
            ("account", &c.account),
        ] {
            if let Some(col) = col {
                index.insert(key, resolve(col)?);
            }
        }
        let status = match &profile.status {
            Some(rule) => match resolve(&rule.column) {
                Ok(i) => Some(i),
                Err(_) if rule.optional => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        let indicator = match &profile.direction {
            DirectionRule::Indicator { column, .. } => Some(resolve(column)?),
            _ => None,
        };
        let width = header.map_or(0, <[String]>::len);
        Ok(Layout {
            profile,
            names: column_names(header, width.max(64)),
            header_len: width,
            index,
            remittance: c.remittance.iter().map(resolve).collect::<Result<_, _>>()?,
            status,
            indicator,
        })
    }

    /// A copy of a short row with empty fields where the profile says fields are left out.
    fn fill_omitted(&self, record: &csv::ByteRecord) -> Option<csv::ByteRecord> {
        let short = self
            .header_len
            .checked_sub(record.len())
            .filter(|&n| n > 0)?;
        let omitted = &self.profile.omitted_in_short_rows;
        if omitted.len() < short {
            return None;
        }
        let mut gaps: Vec<usize> = omitted[..short]
            .iter()
            .filter_map(|name| self.names.iter().position(|n| n == name))
            .collect();
        gaps.sort_unstable();
        let mut fields = record.iter();
        let mut filled = csv::ByteRecord::new();
        for i in 0..self.header_len {
            if gaps.binary_search(&i).is_ok() {
                filled.push_field(b"");
            } else {
                filled.push_field(fields.next().unwrap_or(b""));
            }
        }
        filled.set_position(record.position().cloned());
        Some(filled)
    }

    fn name(&self, i: usize) -> String {
        self.names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("{}", i + 1))
    }

    /// The text of field `i`, or an error naming the column.
    fn field<'r>(
        &self,
        record: &'r csv::ByteRecord,
        i: usize,
        limits: &Limits,
    ) -> Result<&'r str, String> {
        let raw = record.get(i).ok_or_else(|| {
            format!(
                "the row has {} fields, so column {} (field {}) is missing",
                record.len(),
                self.name(i),
                i + 1
            )
        })?;
        if raw.len() > limits.max_text_bytes {
            return Err(format!(
                "column {} is longer than the limit of {} bytes",
                self.name(i),
                limits.max_text_bytes
            ));
        }
        field_text(raw).map_err(|e| format!("{e} in column {}", self.name(i)))
    }

    fn optional(
        &self,
        record: &csv::ByteRecord,
        key: &str,
        limits: &Limits,
    ) -> Result<Option<String>, String> {
        Ok(self.optional_str(record, key, limits)?.map(str::to_string))
    }

    /// The column's trimmed text, if the profile has the column and the row fills it.
    fn optional_str<'r>(
        &self,
        record: &'r csv::ByteRecord,
        key: &str,
        limits: &Limits,
    ) -> Result<Option<&'r str>, String> {
        match self.index.get(key) {
            Some(&i) => {
                let text = self.field(record, i, limits)?.trim();
                Ok((!text.is_empty()).then_some(text))
            }
            None => Ok(None),
        }
    }

    fn amount(
        &self,
        record: &csv::ByteRecord,
        key: &str,
        limits: &Limits,
    ) -> Result<Option<rust_decimal::Decimal>, String> {
        let Some(&i) = self.index.get(key) else {
            return Ok(None);
        };
        let text = self.field(record, i, limits)?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        self.profile
            .parse_amount(text)
            .map(Some)
            .map_err(|e| format!("{e} in column {}", self.name(i)))
    }

    /// The transaction of one row, the file's `ordinal`-th, on line `line`.
    fn row(
        &self,
        record: &csv::ByteRecord,
        ordinal: u32,
        line: u64,
        limits: &Limits,
        (accounts, status_codes): &mut (Repeated, Repeated),
    ) -> Result<Transaction, String> {
        let booking_date = self.date(record, "booking_date", limits)?;
        let value_date = self.date(record, "value_date", limits)?;
        let (direction, amount) = self.direction_and_amount(record, limits)?;
        let currency = self.currency(record, limits)?;
        let (booked, status_code) = self.status(record, limits)?;
        let name = match self.optional(record, "counterparty_name", limits)? {
            Some(name) => Some(name),
            None => match direction {
                Direction::Credit => self.optional(record, "payer_name", limits)?,
                Direction::Debit => self.optional(record, "payee_name", limits)?,
            },
        };
        Ok(Transaction {
            position: Position {
                entry: ordinal,
                detail: None,
                line: Some(line),
            },
            statement_id: None,
            account: self
                .optional_str(record, "account", limits)?
                .map(|a| accounts.get(a)),
            direction,
            booked,
            status_code: status_codes.get(status_code),
            reversal: false,
            amount,
            currency,
            booking_date,
            value_date,
            refs: BankRefs {
                entry_ref: self.optional(record, "bank_ref", limits)?,
                ..BankRefs::default()
            },
            counterparty: Counterparty {
                name,
                account: self.optional(record, "counterparty_iban", limits)?,
            },
            remittance: Remittance {
                unstructured: self.remittance(record, limits)?,
                ..Remittance::default()
            },
            identity: TxIdentity::default(),
            cross_key: None,
        })
    }

    fn date(
        &self,
        record: &csv::ByteRecord,
        key: &str,
        limits: &Limits,
    ) -> Result<Option<NaiveDate>, String> {
        match self.index.get(key) {
            Some(&i) => self
                .profile
                .parse_date(self.field(record, i, limits)?)
                .map_err(|e| format!("{e} in column {}", self.name(i))),
            None => Ok(None),
        }
    }

    /// Which way the money moved, as the profile's direction rule reads it, and how much.
    fn direction_and_amount(
        &self,
        record: &csv::ByteRecord,
        limits: &Limits,
    ) -> Result<(Direction, Decimal), String> {
        match &self.profile.direction {
            DirectionRule::Sign => {
                let v = self.required_amount(record, limits)?;
                let direction = if v.is_sign_negative() && !v.is_zero() {
                    Direction::Debit
                } else {
                    Direction::Credit
                };
                Ok((direction, v.abs()))
            }
            DirectionRule::Indicator { credit, debit, .. } => {
                let direction = self.indicated(record, credit, debit, limits)?;
                Ok((direction, self.required_amount(record, limits)?.abs()))
            }
            DirectionRule::Columns => {
                let debit = self.amount(record, "debit", limits)?;
                let credit = self.amount(record, "credit", limits)?;
                match (debit, credit) {
                    (Some(d), None) => Ok((Direction::Debit, d.abs())),
                    (None, Some(c)) => Ok((Direction::Credit, c.abs())),
                    (Some(_), Some(_)) => {
                        Err("both the debit and the credit column are filled".to_string())
                    }
                    (None, None) => {
                        Err("neither the debit nor the credit column is filled".to_string())
                    }
                }
            }
        }
    }

    /// The `amount` column's value, which must be there.
    fn required_amount(
        &self,
        record: &csv::ByteRecord,
        limits: &Limits,
    ) -> Result<Decimal, String> {
        self.amount(record, "amount", limits)?.ok_or_else(|| {
            format!(
                "the amount is empty in column {}",
                self.name(self.index["amount"])
            )
        })
    }

    /// The direction an indicator column gives (`CREDIT` / `DEBIT`).
    fn indicated(
        &self,
        record: &csv::ByteRecord,
        credit: &[String],
        debit: &[String],
        limits: &Limits,
    ) -> Result<Direction, String> {
        let i = self.indicator.expect("resolved with the layout");
        let value = self.field(record, i, limits)?.trim();
        if credit.iter().any(|c| c.eq_ignore_ascii_case(value)) {
            Ok(Direction::Credit)
        } else if debit.iter().any(|d| d.eq_ignore_ascii_case(value)) {
            Ok(Direction::Debit)
        } else {
            Err(format!(
                "{:?} is neither credit ({}) nor debit ({}) in column {}",
                crate::text::clip(value, 30),
                credit.join(", "),
                debit.join(", "),
                self.name(i)
            ))
        }
    }

    /// The row's currency column, else the profile's fixed currency.
    fn currency(&self, record: &csv::ByteRecord, limits: &Limits) -> Result<Currency, String> {
        match (self.index.get("currency"), &self.profile.currency) {
            (Some(&i), _) => self
                .field(record, i, limits)?
                .parse()
                .map_err(|e| format!("{e} in column {}", self.name(i))),
            (None, Some(fixed)) => fixed.parse().map_err(|e| format!("{e}")),
            (None, None) => Err("no currency".to_string()),
        }
    }

    /// Whether the row is booked, and its status code, as the profile's status rule says.
    fn status<'r>(
        &self,
        record: &'r csv::ByteRecord,
        limits: &Limits,
    ) -> Result<(bool, &'r str), String> {
        let (Some(rule), Some(i)) = (&self.profile.status, self.status) else {
            return Ok((true, "BOOK"));
        };
        let value = self.field(record, i, limits)?.trim();
        if rule.booked.iter().any(|b| b.eq_ignore_ascii_case(value)) {
            Ok((true, if value.is_empty() { "BOOK" } else { value }))
        } else if rule.pending.iter().any(|b| b.eq_ignore_ascii_case(value)) {
            Ok((false, value))
        } else {
            Err(format!(
                "{:?} is not a known status in column {} (booked: {}; pending: {})",
                crate::text::clip(value, 30),
                self.name(i),
                rule.booked.join(", "),
                rule.pending.join(", ")
            ))
        }
    }

    /// The purpose columns' texts, in the profile's order, empty ones left out.
    fn remittance(&self, record: &csv::ByteRecord, limits: &Limits) -> Result<Vec<String>, String> {
        let mut unstructured = Vec::new();
        for &i in &self.remittance {
            let text = self.field(record, i, limits)?.trim();
            if !text.is_empty() {
                unstructured.push(text.to_string());
            }
        }
        Ok(unstructured)
    }
}

/// The 0-based index of a profile's column: its position, or where the header has its name
/// (of alternative names, the first the header has).
fn resolve_column(
    profile: &Profile,
    header: Option<&[String]>,
    col: &Col,
) -> Result<usize, String> {
    let names = match col {
        Col::Position(p) if *p >= 1 => return Ok(p - 1),
        Col::Position(_) => return Err("column positions start at 1".to_string()),
        Col::Name(name) => std::slice::from_ref(name),
        Col::Names(names) => names.as_slice(),
    };
    names
        .iter()
        .find_map(|name| header?.iter().position(|h| h == name))
        .ok_or_else(|| {
            let wanted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
            format!(
                "the header has no column {} that profile {} expects (header: {})",
                wanted.join(" or "),
                profile.name,
                header.map(|h| h.join(", ")).unwrap_or_default()
            )
        })
}

/// The header's names, then 1-based numbers for columns past it, `width` in all.
fn column_names(header: Option<&[String]>, width: usize) -> Vec<String> {
    (0..width)
        .map(|i| {
            header
                .and_then(|h| h.get(i))
                .cloned()
                .unwrap_or_else(|| format!("{}", i + 1))
        })
        .collect()
}

/// The header row a profile would find in the head of a file (decoded with its encoding), for
/// detection to try the profile on.
pub(super) fn header_in(head: &[u8], profile: &Profile) -> Vec<String> {
    let (text, _, _) = profile.encoding().decode(head);
    let mut rest: &str = &text;
    for _ in 0..profile.skip_lines {
        rest = rest.split_once('\n').map_or("", |(_, r)| r);
    }
    let mut reader = csv_reader(profile, rest.as_bytes());
    let mut record = csv::ByteRecord::new();
    for _ in 0..64 {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            _ => break,
        }
        let first = record.get(0).map(clean_name).unwrap_or_default();
        let is_header = match &profile.header_marker {
            Some(marker) => first == *marker,
            None => true,
        };
        if is_header {
            return record.iter().map(clean_name).collect();
        }
    }
    Vec::new()
}
