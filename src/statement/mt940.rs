//! SWIFT MT940 customer statements, including the German `:86:` variant with `?20`..`?29`
//! purpose sub-fields, read into the same transactions as camt.

use std::io::BufRead;
use std::sync::{Arc, LazyLock};

use chrono::{Datelike, NaiveDate};
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
        mut input: R,
        limits: &Limits,
        sink: &mut dyn FnMut(Vec<Transaction>) -> bool,
    ) -> Result<FormatRead, ReadError> {
        let mut file = MtFile {
            batches: Batches::new(sink, limits),
            statements: Vec::new(),
            ctx: Context::default(),
            pending: None,
            open_tx: None,
        };
        let mut bytes = Vec::new();
        let mut number = 0u64;
        loop {
            bytes.clear();
            let n = input
                .read_until(b'\n', &mut bytes)
                .map_err(|e| ReadError::on_line(number + 1, format!("cannot read: {e}")))?;
            if n == 0 {
                break;
            }
            number += 1;
            if bytes.len() > limits.max_text_bytes {
                return Err(ReadError::on_line(
                    number,
                    format!(
                        "the line is longer than the limit of {} bytes",
                        limits.max_text_bytes
                    ),
                ));
            }
            file.line(&decode_line(&bytes), number)?;
            file.batches.hand_over_full()?;
        }
        file.finish(number)
    }
}

static STATEMENT_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(\d{6})(\d{4})?(RC|RD|C|D)([A-Z])?(\d{1,15},\d{0,5})([NSF][A-Z0-9]{3})([^/]{0,16}?)(?://(.{0,16}))?$")
        .expect("valid regex")
});

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

/// One MT940 file as it is read: its statements, the field being read and the transaction it
/// belongs to (`:86:` follows its `:61:`).
struct MtFile<'s> {
    batches: Batches<'s>,
    statements: Vec<StatementInfo>,
    ctx: Context,
    pending: Option<Field>,
    open_tx: Option<Transaction>,
}

impl MtFile<'_> {
    /// Takes one line, numbered `number`: a new field, the end of a message, or a continuation.
    fn line(&mut self, text: &str, number: u64) -> Result<(), ReadError> {
        let text = text.trim_end_matches(['\r', '\n']);
        let text = if number == 1 {
            text.trim_start_matches('\u{feff}')
        } else {
            text
        };
        // SWIFT envelopes put the first field after "{4:" on the same line or the next.
        let text = text.rsplit_once("{4:").map_or(text, |(_, rest)| rest);
        if let Some(caps) = FIELD.captures(text) {
            self.apply_pending()?;
            self.pending = Some(Field {
                tag: caps[1].to_string(),
                lines: vec![caps[2].to_string()],
                line: number,
            });
        } else if text.trim() == "-" || text.trim() == "-}" || text.starts_with("-}") {
            self.apply_pending()?;
            self.flush();
        } else if let Some(field) = self.pending.as_mut() {
            field.lines.push(text.to_string());
        } else if !text.trim().is_empty() && !text.starts_with('{') {
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

    /// Ends the file, whose last line is `number`.
    fn finish(mut self, number: u64) -> Result<FormatRead, ReadError> {
        self.apply_pending()?;
        self.flush();
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
            "20" => {
                self.flush();
                self.ctx = Context {
                    reference: Some(first.to_string()),
                    ..Context::default()
                };
                self.statements.push(StatementInfo {
                    id: Some(first.to_string()),
                    ..StatementInfo::default()
                });
            }
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
}

fn decode_line(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => encoding_rs::WINDOWS_1252.decode(bytes).0.into_owned(),
    }
}

/// `C261120EUR1000,00`: mark, date, currency, amount.
fn balance(text: &str) -> Result<Balance, String> {
    let bad = || {
        format!(
            "{:?} is not a balance (expected e.g. C200101EUR1000,00)",
            crate::text::clip(text, 30)
        )
    };
    let mark = text.get(0..1).ok_or_else(bad)?;
    let date = yymmdd(text.get(1..7).ok_or_else(bad)?).ok_or_else(bad)?;
    let currency: Currency = text
        .get(7..10)
        .ok_or_else(bad)?
        .parse()
        .map_err(|e| format!("{e}"))?;
    let amount = crate::money::parse_amount(
        &text.get(10..).ok_or_else(bad)?.replace(',', "."),
        crate::money::MAX_BANK_DECIMALS,
    )
    .map_err(|_| bad())?;
    Ok(Balance {
        amount: if mark == "D" { -amount } else { amount },
        currency,
        date: Some(date),
    })
}

fn statement_line(field: &Field, ctx: &Context, ordinal: u32) -> Result<Transaction, String> {
    let first = field.lines[0].trim();
    let caps = STATEMENT_LINE.captures(first).ok_or_else(|| {
        format!(
            "{:?} is not a :61: statement line (expected e.g. 2001020102C100,00NTRFNONREF//BANKREF)",
            crate::text::clip(first, 40)
        )
    })?;
    let value_date =
        yymmdd(&caps[1]).ok_or_else(|| format!("{:?} is not a date (YYMMDD)", &caps[1]))?;
    let booking_date = match caps.get(2) {
        Some(mmdd) => Some(
            entry_date(mmdd.as_str(), value_date)
                .ok_or_else(|| format!("{:?} is not an entry date (MMDD)", mmdd.as_str()))?,
        ),
        None => None,
    };
    let (direction, reversal) = match &caps[3] {
        "C" => (Direction::Credit, false),
        "D" => (Direction::Debit, false),
        // A reversal of a credit takes the money out again, and the other way round.
        "RC" => (Direction::Debit, true),
        _ => (Direction::Credit, true),
    };
    let amount =
        crate::money::parse_amount(&caps[5].replace(',', "."), crate::money::MAX_BANK_DECIMALS)
            .map_err(|e| e.to_string())?;
    let currency = ctx
        .currency
        .ok_or("a :61: line before any :60F: opening balance: the currency is unknown")?;
    let meaningful = |v: Option<regex::Match>| {
        v.map(|m| m.as_str().trim().to_string())
            .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("NONREF"))
    };
    let mut remittance = Remittance::default();
    for extra in &field.lines[1..] {
        if !extra.trim().is_empty() {
            remittance.additional.push(extra.trim().to_string());
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
        booking_date: booking_date.or(Some(value_date)),
        value_date: Some(value_date),
        refs: BankRefs {
            entry_ref: meaningful(caps.get(7)),
            servicer_ref: meaningful(caps.get(8)),
            ..BankRefs::default()
        },
        counterparty: Counterparty::default(),
        remittance,
        identity: TxIdentity::default(),
    })
}

fn yymmdd(text: &str) -> Option<NaiveDate> {
    let yy: i32 = text.get(0..2)?.parse().ok()?;
    let year = if yy < 80 { 2000 + yy } else { 1900 + yy };
    NaiveDate::from_ymd_opt(
        year,
        text.get(2..4)?.parse().ok()?,
        text.get(4..6)?.parse().ok()?,
    )
}

/// The entry date has no year: take the value date's, across a year end if that is closer.
fn entry_date(mmdd: &str, value: NaiveDate) -> Option<NaiveDate> {
    let month: u32 = mmdd.get(0..2)?.parse().ok()?;
    let day: u32 = mmdd.get(2..4)?.parse().ok()?;
    [value.year(), value.year() - 1, value.year() + 1]
        .into_iter()
        .filter_map(|y| NaiveDate::from_ymd_opt(y, month, day))
        .min_by_key(|d| (*d - value).num_days().abs())
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
            credit.remittance.search_fields().iter().map(String::as_str),
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
        assert_eq!(entry_date("1231", value).unwrap().to_string(), "2026-12-31");
    }
}
