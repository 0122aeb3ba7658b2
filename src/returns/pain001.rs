//! The ISO 20022 `pain.001.001.09` writer: the SEPA credit-transfer file that sends returned
//! money back to its payers, for recon's bank to execute.
//!
//! Names and remittance come from bank statements and are untrusted: [`sepa_text`] reduces them
//! to the EPC's Latin character set and to SEPA's lengths. Everything that decides where money
//! goes (identifiers, IBANs, BICs, amounts, the currency, the date) is checked and refused with a
//! [`Pain001Error`], never changed, so that what the bank executes is what recon meant.

use std::collections::HashSet;
use std::io;

use chrono::{DateTime, NaiveDate, Utc};
use iban::{Iban, IbanLike, ParseBaseIbanError, ParseIbanError};
use quick_xml::Writer;
use quick_xml::escape::partial_escape;
use quick_xml::events::{BytesDecl, BytesText, Event};
use rust_decimal::Decimal;

use crate::money::Currency;
use crate::text::clip;

/// The message's XML namespace, the target namespace of ISO's `pain.001.001.09.xsd`.
pub const NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09";
/// Longest name in a SEPA file: the EPC cuts ISO's 140 characters to 70.
pub const MAX_NAME_CHARS: usize = 70;
/// Longest unstructured remittance text (`Ustrd`).
pub const MAX_REMITTANCE_CHARS: usize = 140;
/// Longest identifier (`MsgId`, `PmtInfId`, `EndToEndId`).
pub const MAX_ID_CHARS: usize = 35;
/// The prefix of the end-to-end id recon gives a return: `RECON-RET-<return id>`.
pub const END_TO_END_PREFIX: &str = "RECON-RET-";

/// The most one SEPA credit transfer carries: 999,999,999.99 EUR.
const MAX_AMOUNT: Decimal = Decimal::from_parts(1_215_752_191, 23, 0, false, 2);
/// The punctuation of the EPC's Latin set, besides letters, digits and the space.
const SEPA_PUNCTUATION: &str = "/-?:().,'+";

/// The account the money leaves: recon's own, from the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Debtor {
    pub name: String,
    pub iban: String,
    pub bic: Option<String>,
}

/// One transfer back to a payer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub end_to_end_id: String,
    pub amount: Decimal,
    pub currency: Currency,
    pub creditor_name: String,
    pub creditor_iban: String,
    pub creditor_bic: Option<String>,
    pub remittance: String,
}

/// One file: the payments a debtor asks its bank to execute on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initiation {
    pub message_id: String,
    pub created_at: DateTime<Utc>,
    pub execution_date: NaiveDate,
    pub debtor: Debtor,
    pub payments: Vec<Payment>,
}

/// Why no file is written. Untrusted text in a message is clipped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Pain001Error {
    #[error("a pain.001 file needs at least one payment; there is none to send")]
    NoPayments,
    #[error("{field} {id:?} cannot be used: {reason}")]
    Id {
        field: &'static str,
        id: String,
        reason: &'static str,
    },
    #[error("end-to-end id {0:?} is given to two payments; each payment needs its own")]
    DuplicateEndToEndId(String),
    #[error("payment {end_to_end_id}: a SEPA credit transfer is in EUR, not {currency}")]
    Currency {
        end_to_end_id: String,
        currency: Currency,
    },
    #[error("payment {end_to_end_id}: the amount {amount} EUR {reason}")]
    Amount {
        end_to_end_id: String,
        amount: String,
        reason: &'static str,
    },
    #[error("{whose} IBAN {iban:?} is not an IBAN: {reason}")]
    Iban {
        whose: String,
        iban: String,
        reason: &'static str,
    },
    #[error(
        "{whose} BIC {bic:?} is not a BIC (8 or 11 letters and digits: bank, a two-letter \
         country, location, and an optional branch)"
    )]
    Bic { whose: String, bic: String },
    #[error("{whose} name {name:?} has no letter or digit a SEPA file can carry")]
    Name { whose: String, name: String },
    #[error(
        "the requested execution date {execution_date} is before the file's creation day \
         {created_on}; a bank executes no transfer in the past"
    )]
    ExecutionDate {
        execution_date: NaiveDate,
        created_on: NaiveDate,
    },
    #[error("writing the XML: {0}")]
    Write(String),
}

/// Writes `initiation` as a pain.001.001.09 document (UTF-8, two-space indentation): one payment
/// information block with one transaction per payment, in the order given. The same initiation
/// gives the same bytes.
pub fn write(initiation: &Initiation) -> Result<String, Pain001Error> {
    let checked = check(initiation)?;
    let bytes = render(&checked).map_err(|e| Pain001Error::Write(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| Pain001Error::Write(e.to_string()))
}

/// Reduces untrusted text to what a SEPA file carries, in at most `max_chars` characters.
///
/// The EPC's Latin set is `a-z A-Z 0-9 / - ? : ( ) . , ' +` and the space. Letters and digits
/// outside it are transliterated (`ä` → `a`, `ß` → `ss`, `É` → `E`, `Ø` → `O`, `北京` → `Bei Jing`),
/// `&` becomes `+`, a symbol whose transliteration is one character of the set keeps it (`’` →
/// `'`, `–` → `-`), and everything else (`<`, `"`, `_`, `@`, emoji, line breaks) becomes a space.
/// Runs of spaces fold into one, the ends are trimmed, and the text is cut at `max_chars`.
pub fn sepa_text(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(max_chars.min(text.len()));
    let mut space = false;
    // Pushes one character; false once the text is full.
    let mut push = |c: char| -> bool {
        if c == ' ' || !is_sepa_char(c) {
            space = !out.is_empty();
            return true;
        }
        if out.len() + usize::from(space) + 1 > max_chars {
            return false;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
        true
    };
    for c in text.chars() {
        let room = match c {
            '&' => push('+'),
            c if c.is_ascii() => push(c),
            c => match transliteration(c) {
                Some(ascii) => ascii.chars().all(&mut push),
                None => push(' '),
            },
        };
        if !room {
            break;
        }
    }
    out
}

/// The return id in one of recon's end-to-end ids (`RECON-RET-42` → 42), or `None` for any
/// other text. Strict: the exact prefix, then a positive decimal id written as recon writes it
/// (no sign, no leading zero, no space), so that a bank's reference that merely contains such a
/// text closes nothing.
pub fn recognise(end_to_end_id: &str) -> Option<i64> {
    let digits = end_to_end_id.strip_prefix(END_TO_END_PREFIX)?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The end-to-end id recon gives the return `return_id`; [`recognise`] reads it back.
pub fn end_to_end_id(return_id: i64) -> String {
    format!("{END_TO_END_PREFIX}{return_id}")
}

fn is_sepa_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ' ' || SEPA_PUNCTUATION.contains(c)
}

/// The ASCII for a non-ASCII character, or `None` for one to drop: letters and digits are
/// transliterated, a symbol only when it stands for one character (emoji become words, so not).
fn transliteration(c: char) -> Option<&'static str> {
    let ascii = deunicode::deunicode_char(c)?;
    if c.is_alphanumeric() || (ascii.len() == 1 && ascii != " ") {
        Some(ascii)
    } else {
        None
    }
}

/// An initiation's values as they go into the file, each checked or cleaned.
struct Checked<'a> {
    message_id: &'a str,
    created_at: String,
    execution_date: String,
    control_sum: String,
    debtor: Party,
    transfers: Vec<Transfer<'a>>,
}

struct Party {
    name: String,
    iban: String,
    bic: Option<String>,
}

struct Transfer<'a> {
    end_to_end_id: &'a str,
    amount: String,
    creditor: Party,
    remittance: String,
}

fn check(initiation: &Initiation) -> Result<Checked<'_>, Pain001Error> {
    check_id("message id", &initiation.message_id)?;
    if initiation.payments.is_empty() {
        return Err(Pain001Error::NoPayments);
    }
    let created_on = initiation.created_at.date_naive();
    if initiation.execution_date < created_on {
        return Err(Pain001Error::ExecutionDate {
            execution_date: initiation.execution_date,
            created_on,
        });
    }
    let debtor = &initiation.debtor;
    let debtor = party(
        "the debtor's",
        &debtor.name,
        &debtor.iban,
        debtor.bic.as_deref(),
    )?;
    let mut seen = HashSet::new();
    let mut control_sum = Decimal::ZERO;
    let mut transfers = Vec::with_capacity(initiation.payments.len());
    for payment in &initiation.payments {
        let transfer = transfer(payment)?;
        if !seen.insert(transfer.end_to_end_id) {
            return Err(Pain001Error::DuplicateEndToEndId(clip(
                transfer.end_to_end_id,
                40,
            )));
        }
        control_sum += payment.amount;
        transfers.push(transfer);
    }
    Ok(Checked {
        message_id: &initiation.message_id,
        created_at: initiation
            .created_at
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
        execution_date: initiation.execution_date.format("%Y-%m-%d").to_string(),
        control_sum: two_decimals(control_sum),
        debtor,
        transfers,
    })
}

fn transfer(payment: &Payment) -> Result<Transfer<'_>, Pain001Error> {
    let id = &payment.end_to_end_id;
    check_id("end-to-end id", id)?;
    if payment.currency.as_str() != "EUR" {
        return Err(Pain001Error::Currency {
            end_to_end_id: id.clone(),
            currency: payment.currency,
        });
    }
    let amount = payment.amount;
    let reason = if amount <= Decimal::ZERO {
        Some("must be greater than zero")
    } else if amount.normalize().scale() > 2 {
        Some("has more than two decimals; a euro has cents, nothing finer")
    } else if amount > MAX_AMOUNT {
        Some("is over 999999999.99, the most one SEPA credit transfer carries")
    } else {
        None
    };
    if let Some(reason) = reason {
        return Err(Pain001Error::Amount {
            end_to_end_id: id.clone(),
            amount: amount.to_string(),
            reason,
        });
    }
    let whose = format!("payment {id}: the creditor's");
    Ok(Transfer {
        end_to_end_id: id,
        amount: two_decimals(amount),
        creditor: party(
            &whose,
            &payment.creditor_name,
            &payment.creditor_iban,
            payment.creditor_bic.as_deref(),
        )?,
        remittance: sepa_text(&payment.remittance, MAX_REMITTANCE_CHARS),
    })
}

fn party(whose: &str, name: &str, iban: &str, bic: Option<&str>) -> Result<Party, Pain001Error> {
    let cleaned = sepa_text(name, MAX_NAME_CHARS);
    if cleaned.is_empty() {
        return Err(Pain001Error::Name {
            whose: whose.to_string(),
            name: clip(name, 80),
        });
    }
    Ok(Party {
        name: cleaned,
        iban: check_iban(whose, iban)?,
        bic: bic.map(|bic| check_bic(whose, bic)).transpose()?,
    })
}

/// Refuses an identifier SEPA would reject rather than cutting it: a cut end-to-end id would
/// not be recognised when the payment comes back in a statement.
fn check_id(field: &'static str, id: &str) -> Result<(), Pain001Error> {
    let reason = if id.is_empty() {
        "it is empty"
    } else if id.chars().count() > MAX_ID_CHARS {
        "it is longer than 35 characters"
    } else if !id.chars().all(|c| c != ' ' && is_sepa_char(c)) {
        "it has a character outside a-z A-Z 0-9 / - ? : ( ) . , ' +"
    } else if id.starts_with('/') || id.ends_with('/') || id.contains("//") {
        "a SEPA identifier neither starts nor ends with '/' nor contains '//'"
    } else {
        return Ok(());
    };
    Err(Pain001Error::Id {
        field,
        id: clip(id, 40),
        reason,
    })
}

/// The IBAN in its electronic form (no spaces, upper case), its check digits and its country's
/// format verified.
fn check_iban(whose: &str, text: &str) -> Result<String, Pain001Error> {
    let compact: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    let reason = match compact.parse::<Iban>() {
        Ok(iban) => return Ok(iban.electronic_str().to_string()),
        Err(ParseIbanError::InvalidBaseIban {
            source: ParseBaseIbanError::InvalidChecksum,
        }) => "its check digits do not match the rest (a typing error?)",
        Err(ParseIbanError::InvalidBaseIban { .. }) => {
            "it is not two letters, two check digits and up to 30 letters or digits"
        }
        Err(ParseIbanError::InvalidBban(_)) => {
            "its account part does not have its country's length or format"
        }
        Err(ParseIbanError::UnknownCountry(_)) => "its country code is not one that issues IBANs",
    };
    Err(Pain001Error::Iban {
        whose: whose.to_string(),
        iban: clip(text, 40),
        reason,
    })
}

/// The BIC in upper case, with the shape of ISO 9362 (the XSD's `BICFIDec2014Identifier`).
fn check_bic(whose: &str, text: &str) -> Result<String, Pain001Error> {
    let bic = text.trim().to_ascii_uppercase();
    let b = bic.as_bytes();
    if matches!(b.len(), 8 | 11)
        && b.iter().all(u8::is_ascii_alphanumeric)
        && b[4..6].iter().all(u8::is_ascii_alphabetic)
    {
        return Ok(bic);
    }
    Err(Pain001Error::Bic {
        whose: whose.to_string(),
        bic: clip(text, 40),
    })
}

fn two_decimals(amount: Decimal) -> String {
    let mut amount = amount;
    amount.rescale(2);
    amount.to_string()
}

type Xml = Writer<Vec<u8>>;

fn render(file: &Checked) -> io::Result<Vec<u8>> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.create_element("Document")
        .with_attribute(("xmlns", NAMESPACE))
        .write_inner_content(|w| {
            node(w, "CstmrCdtTrfInitn", |w| {
                group_header(w, file)?;
                payment_information(w, file)
            })
        })?;
    let mut bytes = w.into_inner();
    bytes.push(b'\n');
    Ok(bytes)
}

fn group_header(w: &mut Xml, file: &Checked) -> io::Result<()> {
    node(w, "GrpHdr", |w| {
        leaf(w, "MsgId", file.message_id)?;
        leaf(w, "CreDtTm", &file.created_at)?;
        leaf(w, "NbOfTxs", &file.transfers.len().to_string())?;
        leaf(w, "CtrlSum", &file.control_sum)?;
        node(w, "InitgPty", |w| leaf(w, "Nm", &file.debtor.name))
    })
}

/// The one `PmtInf`: booked one by one (`BtchBookg` false), so that each transfer appears in
/// the statement with its own end-to-end id and closes its return.
fn payment_information(w: &mut Xml, file: &Checked) -> io::Result<()> {
    node(w, "PmtInf", |w| {
        leaf(w, "PmtInfId", file.message_id)?;
        leaf(w, "PmtMtd", "TRF")?;
        leaf(w, "BtchBookg", "false")?;
        leaf(w, "NbOfTxs", &file.transfers.len().to_string())?;
        leaf(w, "CtrlSum", &file.control_sum)?;
        node(w, "PmtTpInf", |w| {
            node(w, "SvcLvl", |w| leaf(w, "Cd", "SEPA"))
        })?;
        node(w, "ReqdExctnDt", |w| leaf(w, "Dt", &file.execution_date))?;
        node(w, "Dbtr", |w| leaf(w, "Nm", &file.debtor.name))?;
        account(w, "DbtrAcct", &file.debtor.iban)?;
        // SEPA lets the debtor's bank go unnamed ("NOTPROVIDED"); the creditor's is left out.
        let bic = file.debtor.bic.as_deref();
        node(w, "DbtrAgt", |w| {
            node(w, "FinInstnId", |w| match bic {
                Some(bic) => leaf(w, "BICFI", bic),
                None => node(w, "Othr", |w| leaf(w, "Id", "NOTPROVIDED")),
            })
        })?;
        leaf(w, "ChrgBr", "SLEV")?;
        for transfer in &file.transfers {
            transaction(w, transfer)?;
        }
        Ok(())
    })
}

fn transaction(w: &mut Xml, transfer: &Transfer) -> io::Result<()> {
    node(w, "CdtTrfTxInf", |w| {
        node(w, "PmtId", |w| {
            leaf(w, "EndToEndId", transfer.end_to_end_id)
        })?;
        node(w, "Amt", |w| {
            w.create_element("InstdAmt")
                .with_attribute(("Ccy", "EUR"))
                .write_text_content(BytesText::from_escaped(partial_escape(&transfer.amount)))?;
            Ok(())
        })?;
        if let Some(bic) = &transfer.creditor.bic {
            node(w, "CdtrAgt", |w| {
                node(w, "FinInstnId", |w| leaf(w, "BICFI", bic))
            })?;
        }
        node(w, "Cdtr", |w| leaf(w, "Nm", &transfer.creditor.name))?;
        account(w, "CdtrAcct", &transfer.creditor.iban)?;
        if !transfer.remittance.is_empty() {
            node(w, "RmtInf", |w| leaf(w, "Ustrd", &transfer.remittance))?;
        }
        Ok(())
    })
}

fn account(w: &mut Xml, name: &str, iban: &str) -> io::Result<()> {
    node(w, name, |w| node(w, "Id", |w| leaf(w, "IBAN", iban)))
}

fn node(w: &mut Xml, name: &str, inner: impl FnOnce(&mut Xml) -> io::Result<()>) -> io::Result<()> {
    w.create_element(name).write_inner_content(inner)?;
    Ok(())
}

/// An element with text, escaped here whatever it holds (`<`, `>` and `&`; the SEPA set has no
/// quote to escape, and `'` stays readable).
fn leaf(w: &mut Xml, name: &str, text: &str) -> io::Result<()> {
    w.create_element(name)
        .write_text_content(BytesText::from_escaped(partial_escape(text)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sepa_text_transliterates_replaces_folds_and_cuts() {
        for (text, max, expected) in [
            ("Jane Payer", 70, "Jane Payer"),
            ("Jürgen Weiß-Çelik", 70, "Jurgen Weiss-Celik"),
            ("Ærø Œuvre Søren Łódź", 70, "AEro OEuvre Soren Lodz"),
            ("Müller & Söhne", 70, "Muller + Sohne"),
            ("  a\t\r\n b  ", 70, "a b"),
            ("<b>x</b> \"y\" _z_ @w #v", 70, "b x /b y z w v"),
            ("]]>", 70, ""),
            ("🦄🎉 ok 😀", 70, "ok"),
            ("O’Brien – 1€", 70, "O'Brien - 1"),
            ("1/2-3?4:5(6).7,8'9+0", 70, "1/2-3?4:5(6).7,8'9+0"),
            // Cut at the limit, never leaving a space at the end.
            ("abc def", 4, "abc"),
            ("abc def", 5, "abc d"),
            ("ßßß", 5, "sssss"),
            ("ßßß", 4, "ssss"),
            ("", 70, ""),
        ] {
            assert_eq!(sepa_text(text, max), expected, "{text:?}");
        }
    }

    #[test]
    fn sepa_text_only_ever_yields_the_sepa_set_within_the_limit() {
        let hostile: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        for max in [1, 35, 70, 140, 100_000] {
            let out = sepa_text(&hostile, max);
            assert!(out.len() <= max);
            assert!(out.chars().all(is_sepa_char), "{out}");
            assert!(!out.starts_with(' ') && !out.ends_with(' ') && !out.contains("  "));
        }
    }

    #[test]
    fn recognise_reads_recons_end_to_end_ids_and_nothing_else() {
        for id in [1, 42, 1_000_000, i64::MAX] {
            assert_eq!(recognise(&end_to_end_id(id)), Some(id));
        }
        assert_eq!(recognise("RECON-RET-42"), Some(42));
        for junk in [
            "",
            "RECON-RET-",
            "RECON-RET-0",
            "RECON-RET-007",
            "RECON-RET--1",
            "RECON-RET-+1",
            "RECON-RET- 1",
            "RECON-RET-1 ",
            " RECON-RET-1",
            "RECON-RET-1x",
            "RECON-RET-1.0",
            "RECON-RET-1/2",
            "recon-ret-1",
            "RECON-RET1",
            "XRECON-RET-1",
            "RECON-RET-RECON-RET-1",
            "RECON-RET-٣",
            "RECON-RET-１",
            "RECON-RET-9223372036854775808",
            "RECON-RET-99999999999999999999999",
            "NOTPROVIDED",
        ] {
            assert_eq!(recognise(junk), None, "{junk:?}");
        }
    }
}
