//! Reading a bank's CSV export with a [`Profile`] (detection picks the profile).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};

use encoding_rs_io::DecodeReaderBytesBuilder;

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
        let mut reader = csv_reader(profile, buffered);
        let mut record = csv::ByteRecord::new();
        let header = if profile.has_header {
            Some(find_header(&mut reader, &mut record, profile, line_offset)?)
        } else {
            None
        };
        let layout = Layout::new(profile, header.as_ref())?;
        let mut batches = Batches::new(sink, limits);
        let mut bad_rows = Vec::new();
        let mut ordinal = 0u32;
        let mut repeated = (Repeated::default(), Repeated::default());
        while read_record(&mut reader, &mut record, line_offset)? {
            let line = record.position().map_or(0, |p| p.line()) + line_offset;
            if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
                continue;
            }
            ordinal += 1;
            let filled = layout.fill_omitted(&record);
            let record = filled.as_ref().unwrap_or(&record);
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

/// The next record, or false at the end of the file.
fn read_record<R: Read>(
    reader: &mut csv::Reader<R>,
    record: &mut csv::ByteRecord,
    line_offset: u64,
) -> Result<bool, ReadError> {
    reader.read_byte_record(record).map_err(|e| {
        ReadError::on_line(
            e.position().map_or(0, |p| p.line()) + line_offset,
            format!("not valid CSV: {e}"),
        )
    })
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

fn find_header<R: Read>(
    reader: &mut csv::Reader<R>,
    record: &mut csv::ByteRecord,
    profile: &Profile,
    line_offset: u64,
) -> Result<Vec<String>, ReadError> {
    loop {
        if !read_record(reader, record, line_offset)? {
            return Err(ReadError::on_line(
                line_offset,
                match &profile.header_marker {
                    Some(marker) => format!("no header row starting with {marker:?} found"),
                    None => "the file has no header row".to_string(),
                },
            ));
        }
        let first = record.get(0).map(clean_name).unwrap_or_default();
        let is_header = match &profile.header_marker {
            Some(marker) => first == *marker,
            None => !(record.len() == 1 && first.is_empty()),
        };
        if is_header {
            return Ok(record.iter().map(clean_name).collect());
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
    fn new(profile: &'p Profile, header: Option<&Vec<String>>) -> Result<Layout<'p>, ReadError> {
        let resolve = |col: &Col| -> Result<usize, ReadError> {
            match col {
                Col::Position(p) if *p >= 1 => Ok(p - 1),
                Col::Position(_) => Err(ReadError::on_line(1, "column positions start at 1")),
                Col::Name(name) => header
                    .and_then(|h| h.iter().position(|n| n == name))
                    .ok_or_else(|| {
                        ReadError::on_line(
                            1,
                            format!(
                                "the header has no column {name:?} that profile {} expects \
                                 (header: {})",
                                profile.name,
                                header.map(|h| h.join(", ")).unwrap_or_default()
                            ),
                        )
                    }),
            }
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
        let remittance = c.remittance.iter().map(resolve).collect::<Result<_, _>>()?;
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
        let width = header.map_or(0, Vec::len);
        let names = (0..width.max(64))
            .map(|i| {
                header
                    .and_then(|h| h.get(i))
                    .cloned()
                    .unwrap_or_else(|| format!("{}", i + 1))
            })
            .collect();
        Ok(Layout {
            profile,
            names,
            header_len: width,
            index,
            remittance,
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

    fn row(
        &self,
        record: &csv::ByteRecord,
        ordinal: u32,
        line: u64,
        limits: &Limits,
        (accounts, status_codes): &mut (Repeated, Repeated),
    ) -> Result<Transaction, String> {
        let p = self.profile;
        let date = |key: &str| -> Result<Option<chrono::NaiveDate>, String> {
            match self.index.get(key) {
                Some(&i) => p
                    .parse_date(self.field(record, i, limits)?)
                    .map_err(|e| format!("{e} in column {}", self.name(i))),
                None => Ok(None),
            }
        };
        let booking_date = date("booking_date")?;
        let value_date = date("value_date")?;
        let (direction, amount) = match &p.direction {
            DirectionRule::Sign => {
                let v = self.amount(record, "amount", limits)?.ok_or_else(|| {
                    format!(
                        "the amount is empty in column {}",
                        self.name(self.index["amount"])
                    )
                })?;
                let direction = if v.is_sign_negative() && !v.is_zero() {
                    Direction::Debit
                } else {
                    Direction::Credit
                };
                (direction, v.abs())
            }
            DirectionRule::Indicator { credit, debit, .. } => {
                let i = self.indicator.expect("resolved with the layout");
                let value = self.field(record, i, limits)?.trim();
                let direction = if credit.iter().any(|c| c.eq_ignore_ascii_case(value)) {
                    Direction::Credit
                } else if debit.iter().any(|d| d.eq_ignore_ascii_case(value)) {
                    Direction::Debit
                } else {
                    return Err(format!(
                        "{:?} is neither credit ({}) nor debit ({}) in column {}",
                        crate::text::clip(value, 30),
                        credit.join(", "),
                        debit.join(", "),
                        self.name(i)
                    ));
                };
                let v = self.amount(record, "amount", limits)?.ok_or_else(|| {
                    format!(
                        "the amount is empty in column {}",
                        self.name(self.index["amount"])
                    )
                })?;
                (direction, v.abs())
            }
            DirectionRule::Columns => {
                let debit = self.amount(record, "debit", limits)?;
                let credit = self.amount(record, "credit", limits)?;
                match (debit, credit) {
                    (Some(d), None) => (Direction::Debit, d.abs()),
                    (None, Some(c)) => (Direction::Credit, c.abs()),
                    (Some(_), Some(_)) => {
                        return Err("both the debit and the credit column are filled".to_string());
                    }
                    (None, None) => {
                        return Err("neither the debit nor the credit column is filled".to_string());
                    }
                }
            }
        };
        let currency: Currency = match (self.index.get("currency"), &p.currency) {
            (Some(&i), _) => self
                .field(record, i, limits)?
                .parse()
                .map_err(|e| format!("{e} in column {}", self.name(i)))?,
            (None, Some(fixed)) => fixed.parse().map_err(|e| format!("{e}"))?,
            (None, None) => return Err("no currency".to_string()),
        };
        let (booked, status_code) = match (&p.status, self.status) {
            (Some(rule), Some(i)) => {
                let value = self.field(record, i, limits)?.trim();
                if rule.booked.iter().any(|b| b.eq_ignore_ascii_case(value)) {
                    (true, if value.is_empty() { "BOOK" } else { value })
                } else if rule.pending.iter().any(|b| b.eq_ignore_ascii_case(value)) {
                    (false, value)
                } else {
                    return Err(format!(
                        "{:?} is not a known status in column {} (booked: {}; pending: {})",
                        crate::text::clip(value, 30),
                        self.name(i),
                        rule.booked.join(", "),
                        rule.pending.join(", ")
                    ));
                }
            }
            _ => (true, "BOOK"),
        };
        let status_code = status_codes.get(status_code);
        let mut unstructured = Vec::new();
        for &i in &self.remittance {
            let text = self.field(record, i, limits)?.trim();
            if !text.is_empty() {
                unstructured.push(text.to_string());
            }
        }
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
            status_code,
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
                unstructured,
                ..Remittance::default()
            },
            identity: TxIdentity::default(),
        })
    }
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
