//! Streaming reader for ISO 20022 bank-to-customer cash management messages: camt.053
//! statements, camt.052 reports and camt.054 notifications, every version. Elements are matched
//! by local name, so any namespace (or none) works; memory holds one entry at a time.

use std::io::{self, BufRead};
use std::sync::Arc;

use chrono::NaiveDate;
use quick_xml::encoding::DecodingReader;
use quick_xml::events::{BytesDecl, BytesStart, Event};
use quick_xml::reader::Reader;
use rust_decimal::Decimal;

use super::reader::{Batches, FormatRead, Place, ReadError, StatementReader};
use super::{
    Balance, BankRefs, Counterparty, Direction, Limits, Position, Remittance, Repeated,
    StatementInfo, Transaction, TxIdentity,
};
use crate::money::{self, Currency, MAX_BANK_DECIMALS};

/// The camt reader, set up with the encoding the document's XML declaration names (none: UTF-8).
#[derive(Clone, Copy, Debug, Default)]
pub struct CamtReader {
    /// From [`detect`](super::detect::detect); a document read without detection is UTF-8.
    pub encoding: Option<&'static encoding_rs::Encoding>,
}

impl StatementReader for CamtReader {
    fn read<R: BufRead>(
        &self,
        input: R,
        limits: &Limits,
        sink: &mut dyn FnMut(Vec<Transaction>) -> bool,
    ) -> Result<FormatRead, ReadError> {
        match self.encoding {
            // Only documents that declare another encoding pay for transcoding. The decoder is
            // set before the first byte: it can change its encoding only while it holds the
            // first 64 bytes, and a declaration may end later (white space, attributes).
            Some(encoding) if encoding != encoding_rs::UTF_8 && encoding.is_ascii_compatible() => {
                let mut source = DecodingReader::new(input);
                source.set_encoding(encoding);
                parse(source, encoding, limits, sink)
            }
            _ => parse(input, encoding_rs::UTF_8, limits, sink),
        }
    }
}

macro_rules! tags {
    ($($name:ident),* $(,)?) => {
        /// The element names this reader acts on; every other name is `Other`.
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        #[allow(clippy::upper_case_acronyms)]
        enum Tag { $($name,)* Other }

        impl Tag {
            fn from_local(name: &[u8]) -> Tag {
                match name {
                    $(n if n == stringify!($name).as_bytes() => Tag::$name,)*
                    _ => Tag::Other,
                }
            }

            fn name(self) -> &'static str {
                match self {
                    $(Tag::$name => stringify!($name),)*
                    Tag::Other => "*",
                }
            }
        }
    };
}

tags!(
    Document,
    BkToCstmrStmt,
    BkToCstmrAcctRpt,
    BkToCstmrDbtCdtNtfctn,
    BkToCstmrStmtV01,
    BkToCstmrAcctRptV01,
    BkToCstmrDbtCdtNtfctnV01,
    Stmt,
    Rpt,
    Ntfctn,
    Id,
    Acct,
    IBAN,
    Othr,
    ElctrncSeqNb,
    Ntry,
    NtryRef,
    Amt,
    CdtDbtInd,
    RvslInd,
    Sts,
    Cd,
    Prtry,
    BookgDt,
    ValDt,
    Dt,
    DtTm,
    AcctSvcrRef,
    AmtDtls,
    TxAmt,
    InstdAmt,
    TxDtls,
    Refs,
    EndToEndId,
    TxId,
    InstrId,
    UETR,
    RltdPties,
    Dbtr,
    Cdtr,
    Pty,
    Nm,
    DbtrAcct,
    CdtrAcct,
    RmtInf,
    Ustrd,
    Strd,
    CdtrRefInf,
    Ref,
    AddtlRmtInf,
    AddtlTxInf,
    AddtlNtryInf,
    Bal,
    Tp,
    CdOrPrtry,
    TxsSummry,
    TtlNtries,
    TtlCdtNtries,
    TtlDbtNtries,
    NbOfNtries,
    Sum,
    FrToDt,
    FrDtTm,
    ToDtTm,
);

/// Reads a camt document decoded from `encoding`, handing its transactions to `sink` as they
/// are read; a declaration naming another encoding is refused.
fn parse<R: BufRead>(
    input: R,
    encoding: &'static encoding_rs::Encoding,
    limits: &Limits,
    sink: &mut dyn FnMut(Vec<Transaction>) -> bool,
) -> Result<FormatRead, ReadError> {
    let mut reader = Reader::from_reader(input);
    let config = reader.config_mut();
    config.expand_empty_elements = false;
    config.check_end_names = true;
    let mut state = State::new(*limits, Batches::new(sink, limits));
    let mut buf = Vec::with_capacity(1 << 12);
    loop {
        let event = match reader.read_event_into(&mut buf) {
            Ok(event) => event,
            Err(error) => {
                let offset = reader.error_position();
                return Err(state.xml_error(error, offset));
            }
        };
        let offset = reader.buffer_position();
        let step = match event {
            Event::Start(e) => state.start(&e).and_then(|()| state.check_depth()),
            Event::Empty(e) => state.start(&e).and_then(|()| state.end()),
            Event::End(_) => state.end(),
            // The indentation between elements is most of a statement's text events; only an
            // element whose text is read needs it decoded.
            Event::Text(e) if !state.reads_text() && state.within_limit(&e) && is_blank(&e) => {
                Ok(())
            }
            Event::Text(e) => state.text(&e.xml10_content()),
            Event::CData(e) => state.text(&e.xml10_content()),
            Event::GeneralRef(e) => state.reference(&e),
            Event::DocType(_) => Err(
                "a DOCTYPE declaration is not accepted in a bank statement (its entities could \
                 be used to attack the reader); ask the bank for a plain camt file"
                    .to_string(),
            ),
            Event::Eof => break,
            Event::Decl(decl) => declaration(&decl, encoding),
            Event::PI(_) | Event::Comment(_) => Ok(()),
        };
        if let Err(message) = step {
            return Err(state.error_at(offset, message));
        }
        buf.clear();
        state.batches.hand_over_full()?;
    }
    state.finish(reader.buffer_position())
}

/// Accepts an XML declaration that names the encoding the document is decoded from, or none.
fn declaration(decl: &BytesDecl, decoding: &'static encoding_rs::Encoding) -> Result<(), String> {
    let Some(Ok(label)) = decl.encoding() else {
        return Ok(());
    };
    match encoding_rs::Encoding::for_label(label.as_bytes()) {
        Some(declared) if declared == decoding => Ok(()),
        Some(declared) if declared.is_ascii_compatible() => Err(format!(
            "the encoding declaration ({}) must come first in the file",
            declared.name()
        )),
        // Detection reads the declaration as ASCII: a document in UTF-16 (or another encoding
        // that moves ASCII) is not one recon reads.
        _ => Err(format!(
            "the document declares the encoding {:?}, which recon cannot read",
            crate::text::clip(&label, 30)
        )),
    }
}

/// `YYYY-MM-DD`, alone or followed by a time zone (`Z`, `+01:00`) or by a time of day
/// (`T10:30:00`, `T10:30:00.123456789`, `T10:30`) with a time zone or none: an `xs:date` or
/// `xs:dateTime`, whose date is what counts. Read by hand: a format-string parser costs more than
/// the rest of the element. Anything after it, an hour past 23 or year 0000 makes it no date.
fn iso_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    let head = b.get(..10)?;
    if head[4] != b'-' || head[7] != b'-' {
        return None;
    }
    let year = digits(&head[0..4]).filter(|&y| y > 0)?;
    let rest = match &b[10..] {
        [b'T', time @ ..] => after_time(time)?,
        rest => rest,
    };
    if !is_zone(rest) {
        return None;
    }
    NaiveDate::from_ymd_opt(year as i32, digits(&head[5..7])?, digits(&head[8..10])?)
}

/// The number that ASCII digits spell.
fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |n, c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}

/// What follows a time of day `hh:mm[:ss[.fraction]]` at the start of `b` (a leap second is
/// allowed), or `None` if it is no time of day.
fn after_time(b: &[u8]) -> Option<&[u8]> {
    let two = |at: usize, max: u32| {
        b.get(at..at + 2)
            .and_then(digits)
            .filter(|&v| v <= max)
            .map(|_| ())
    };
    two(0, 23)?;
    (b.get(2) == Some(&b':')).then_some(())?;
    two(3, 59)?;
    if b.get(5) != Some(&b':') {
        return Some(&b[5..]);
    }
    two(6, 60)?;
    let rest = &b[8..];
    match rest {
        [b'.' | b',', fraction @ ..] => {
            let n = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
            (n > 0).then(|| &fraction[n..])
        }
        _ => Some(rest),
    }
}

/// Nothing, `Z`, or an offset `+hh:mm`, `-hh:mm` (also `+hhmm`, `+hh`).
fn is_zone(b: &[u8]) -> bool {
    let within = |pair: [u8; 2], max: u32| digits(&pair).is_some_and(|v| v <= max);
    match b {
        [] | [b'Z'] => true,
        [b'+' | b'-', h1, h2] => within([*h1, *h2], 14),
        [b'+' | b'-', h1, h2, b':', m1, m2] | [b'+' | b'-', h1, h2, m1, m2] => {
            within([*h1, *h2], 14) && within([*m1, *m2], 59)
        }
        _ => false,
    }
}

/// The name after its prefix, as quick-xml's `local_name` has it, found by a byte search: a
/// `str` pattern search costs more than the short name itself.
fn local_name<'e>(e: &'e BytesStart) -> &'e str {
    let name = e.name().into_inner();
    match name.bytes().position(|b| b == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

/// Only spaces, tabs and line breaks: nothing to decode.
fn is_blank(text: &str) -> bool {
    text.bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// What a camt document is, from the element under `Document` (version 001.01 names it with a
/// `V01` suffix; its entries have the same shape).
fn message_kind(tag: Tag) -> Option<&'static str> {
    match tag {
        Tag::BkToCstmrStmt | Tag::BkToCstmrStmtV01 => Some("camt.053"),
        Tag::BkToCstmrAcctRpt | Tag::BkToCstmrAcctRptV01 => Some("camt.052"),
        Tag::BkToCstmrDbtCdtNtfctn | Tag::BkToCstmrDbtCdtNtfctnV01 => Some("camt.054"),
        _ => None,
    }
}

/// The element that holds one statement in a message of `format` (`camt.052...`: `Rpt`).
fn statement_element(format: &str) -> &'static str {
    if format.starts_with("camt.052") {
        "Rpt"
    } else if format.starts_with("camt.054") {
        "Ntfctn"
    } else {
        "Stmt"
    }
}

#[derive(Default)]
struct EntryAcc {
    index: u32,
    amount: Option<(Decimal, Currency)>,
    amount_in_details: Option<(Decimal, Currency)>,
    direction: Option<Direction>,
    reversal: bool,
    status: Option<String>,
    booking_date: Option<NaiveDate>,
    value_date: Option<NaiveDate>,
    entry_ref: Option<String>,
    servicer_ref: Option<String>,
    additional: Option<String>,
    details: Vec<DetailAcc>,
}

#[derive(Default)]
struct DetailAcc {
    amount: Option<(Decimal, Currency)>,
    tx_amount: Option<(Decimal, Currency)>,
    instructed_amount: Option<(Decimal, Currency)>,
    refs: BankRefs,
    debtor: Counterparty,
    creditor: Counterparty,
    remittance: Remittance,
}

/// A `Bal` being read.
#[derive(Default)]
struct BalanceAcc {
    code: Option<String>,
    amount: Option<(Decimal, Currency)>,
    debit: bool,
    date: Option<NaiveDate>,
}

struct State<'s> {
    limits: Limits,
    balance: Option<BalanceAcc>,
    stack: Vec<Tag>,
    text: String,
    /// The open `Amt`'s `Ccy`, read when the element starts; its error is told, as before the
    /// amount was read, when the amount is.
    currency: Option<Result<Currency, String>>,
    format: Option<String>,
    namespace_version: Option<String>,
    root: Option<String>,
    statements: Vec<StatementInfo>,
    entry: Option<EntryAcc>,
    detail: Option<DetailAcc>,
    entries_seen: u32,
    batches: Batches<'s>,
    statement_ids: Repeated,
    accounts: Repeated,
    status_codes: Repeated,
}

impl<'s> State<'s> {
    fn new(limits: Limits, batches: Batches<'s>) -> Self {
        State {
            limits,
            balance: None,
            stack: Vec::with_capacity(32),
            text: String::with_capacity(256),
            currency: None,
            format: None,
            namespace_version: None,
            root: None,
            statements: Vec::new(),
            entry: None,
            detail: None,
            entries_seen: 0,
            batches,
            statement_ids: Repeated::default(),
            accounts: Repeated::default(),
            status_codes: Repeated::default(),
        }
    }

    fn check_depth(&self) -> Result<(), String> {
        if self.stack.len() > self.limits.max_depth {
            return Err(format!(
                "elements are nested deeper than the limit of {}",
                self.limits.max_depth
            ));
        }
        Ok(())
    }

    fn start(&mut self, e: &BytesStart) -> Result<(), String> {
        let local = local_name(e);
        let tag = Tag::from_local(local.as_bytes());
        if self.root.is_none() {
            self.root = Some(crate::text::clip(local, 60));
        }
        let parent = self.stack.last().copied();
        self.text.clear();
        match tag {
            Tag::Document => self.namespace_version = camt_namespace(e),
            _ if parent == Some(Tag::Document) && self.format.is_none() => {
                let Some(kind) = message_kind(tag) else {
                    return Err(not_camt(local, &self.namespace_version));
                };
                self.format = Some(match &self.namespace_version {
                    Some(v) if v.starts_with(kind) => v.clone(),
                    _ => kind.to_string(),
                });
            }
            Tag::Stmt | Tag::Rpt | Tag::Ntfctn if self.in_message() => {
                self.statements.push(StatementInfo::default());
            }
            Tag::Ntry if self.in_statement() => {
                self.entries_seen += 1;
                self.entry = Some(EntryAcc {
                    index: self.entries_seen,
                    ..EntryAcc::default()
                });
            }
            Tag::TxDtls if self.entry.is_some() => self.detail = Some(DetailAcc::default()),
            Tag::Bal if self.in_statement() => self.balance = Some(BalanceAcc::default()),
            Tag::Amt => {
                self.currency = match e.try_get_attribute("Ccy") {
                    Ok(Some(attr)) => Some(
                        attr.value
                            .trim()
                            .parse()
                            .map_err(|e: money::MoneyError| e.to_string()),
                    ),
                    Ok(None) => None,
                    Err(err) => return Err(err.to_string()),
                };
            }
            _ => {}
        }
        self.stack.push(tag);
        Ok(())
    }

    /// Whether the open element's text is ever read (`on_end` uses it); blank text anywhere
    /// else can be skipped without changing what is read.
    fn reads_text(&self) -> bool {
        use Tag::*;
        matches!(
            self.stack.last(),
            Some(
                Id | ElctrncSeqNb
                    | IBAN
                    | FrDtTm
                    | Dt
                    | DtTm
                    | ToDtTm
                    | Cd
                    | Prtry
                    | Amt
                    | CdtDbtInd
                    | RvslInd
                    | Sts
                    | NbOfNtries
                    | Sum
                    | NtryRef
                    | AcctSvcrRef
                    | AddtlNtryInf
                    | EndToEndId
                    | TxId
                    | InstrId
                    | UETR
                    | Nm
                    | Ustrd
                    | Ref
                    | AddtlRmtInf
                    | AddtlTxInf
            )
        )
    }

    fn in_message(&self) -> bool {
        self.format.is_some()
    }

    fn in_statement(&self) -> bool {
        self.in_message() && matches!(self.stack.last(), Some(Tag::Stmt | Tag::Rpt | Tag::Ntfctn))
    }

    /// Whether `more` text would stay within the text limit (a skipped text must not hide an
    /// error).
    fn within_limit(&self, more: &str) -> bool {
        self.text.len() + more.len() <= self.limits.max_text_bytes
    }

    fn text(&mut self, content: &str) -> Result<(), String> {
        if !self.within_limit(content) {
            return Err(format!(
                "a text is longer than the limit of {} bytes",
                self.limits.max_text_bytes
            ));
        }
        self.text.push_str(content);
        Ok(())
    }

    fn reference(&mut self, e: &quick_xml::events::BytesRef) -> Result<(), String> {
        let resolved = match e.resolve_char_ref() {
            Ok(Some(c)) => c,
            Ok(None) => match e.as_ref() {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "apos" => '\'',
                "quot" => '"',
                other => {
                    return Err(format!(
                        "unknown entity &{};: only the five XML entities are accepted",
                        crate::text::clip(other, 30)
                    ));
                }
            },
            Err(err) => return Err(format!("bad character reference: {err}")),
        };
        let mut tmp = [0u8; 4];
        self.text(resolved.encode_utf8(&mut tmp))
    }

    fn end(&mut self) -> Result<(), String> {
        // The text is lent to `on_end` and given back, so its buffer is kept.
        let text = std::mem::take(&mut self.text);
        let result = self.on_end(&text);
        self.text = text;
        self.stack.pop();
        self.text.clear();
        result
    }

    /// Acts on the element that just closed, by its path below the nearest statement, balance,
    /// summary, entry or transaction details element; `text` is its text.
    fn on_end(&mut self, text: &str) -> Result<(), String> {
        use Tag::*;
        if !self.in_message() {
            return Ok(());
        }
        let Some(at) = self
            .stack
            .iter()
            .rposition(|t| matches!(t, Stmt | Rpt | Ntfctn | Bal | TxsSummry | Ntry | TxDtls))
        else {
            return Ok(());
        };
        // No path this reader acts on is longer than 8 below its anchor.
        let mut path = [Other; 8];
        let tail = &self.stack[at..];
        if tail.len() > path.len() {
            return Ok(());
        }
        path[..tail.len()].copy_from_slice(tail);
        let path = &path[..tail.len()];
        match path[0] {
            Stmt | Rpt | Ntfctn => self.on_statement_end(path, text),
            Bal => self.on_balance_end(path, text),
            TxsSummry => self.on_summary_end(path, text),
            Ntry => self.on_entry_end(path, text),
            _ => self.on_detail_end(path, text),
        }
    }

    /// `Stmt` (or `Rpt`, `Ntfctn`): its id, sequence number, account and period.
    fn on_statement_end(&mut self, path: &[Tag], text: &str) -> Result<(), String> {
        use Tag::*;
        let value = non_empty(text);
        match path[1..] {
            [Id] => self.statement_mut().id = value,
            [ElctrncSeqNb] => self.statement_mut().electronic_sequence = value,
            [Acct, Id, IBAN] | [Acct, Id, Othr, Id] if value.is_some() => {
                self.statement_mut().account = value
            }
            [FrToDt, FrDtTm | Dt] => self.statement_mut().from_date = Some(date(text.trim())?),
            [FrToDt, ToDtTm] => self.statement_mut().to_date = Some(date(text.trim())?),
            _ => {}
        }
        Ok(())
    }

    /// `Bal`: its type, amount, sign and date, for the statement controls.
    fn on_balance_end(&mut self, path: &[Tag], text: &str) -> Result<(), String> {
        use Tag::*;
        let text = text.trim();
        match path[1..] {
            [] => self.finish_balance(),
            [Tp, CdOrPrtry, Cd] => {
                if let Some(b) = self.balance.as_mut() {
                    b.code = non_empty(text);
                }
            }
            [Amt] => {
                let amount = self.amount(text)?;
                if let Some(b) = self.balance.as_mut() {
                    b.amount = Some(amount);
                }
            }
            [CdtDbtInd] => {
                let debit = direction(text)? == Direction::Debit;
                if let Some(b) = self.balance.as_mut() {
                    b.debit = debit;
                }
            }
            [Dt, Dt | DtTm] => {
                let date = date(text)?;
                if let Some(b) = self.balance.as_mut() {
                    b.date = Some(date);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// `TxsSummry`: the statement's own counts and sums, for the statement controls.
    fn on_summary_end(&mut self, path: &[Tag], text: &str) -> Result<(), String> {
        use Tag::*;
        let text = text.trim();
        let [
            _,
            group @ (TtlNtries | TtlCdtNtries | TtlDbtNtries),
            field @ (NbOfNtries | Sum),
        ] = *path
        else {
            return Ok(());
        };
        let stated = &mut self.statement_mut().stated;
        let (count_slot, sum_slot) = match group {
            TtlNtries => (&mut stated.entries, &mut stated.entries_sum),
            TtlCdtNtries => (&mut stated.credits, &mut stated.credits_sum),
            _ => (&mut stated.debits, &mut stated.debits_sum),
        };
        if field == NbOfNtries {
            let count = text.parse::<u64>().map_err(|_| {
                format!(
                    "{:?} is not a number of entries",
                    crate::text::clip(text, 20)
                )
            })?;
            *count_slot = Some(count);
        } else {
            // Some banks sign the debit sum; what counts is its size.
            let sum = money::parse_amount(text.trim_start_matches('-'), MAX_BANK_DECIMALS)
                .map_err(|e| e.to_string())?;
            *sum_slot = Some(sum);
        }
        Ok(())
    }

    /// `Ntry`: the entry's own elements, and the entry itself once it closes.
    fn on_entry_end(&mut self, path: &[Tag], text: &str) -> Result<(), String> {
        use Tag::*;
        let text = text.trim();
        // Only the references and the status are kept as text: the other elements' text is
        // not copied into a string of its own.
        let value = || non_empty(text);
        match path[1..] {
            [] => return self.finish_entry(),
            [NtryRef] => self.entry_mut()?.entry_ref = value(),
            [Amt] => {
                let amount = self.amount(text)?;
                self.entry_mut()?.amount = Some(amount);
            }
            [AmtDtls, TxAmt, Amt] => {
                let amount = self.amount(text)?;
                self.entry_mut()?.amount_in_details = Some(amount);
            }
            [CdtDbtInd] => {
                let direction = direction(text)?;
                self.entry_mut()?.direction = Some(direction);
            }
            [RvslInd] => {
                let reversal = boolean(text)?;
                self.entry_mut()?.reversal = reversal;
            }
            [Sts] if !text.is_empty() => self.entry_mut()?.status = value(),
            [Sts, Cd | Prtry] => self.entry_mut()?.status = value(),
            [BookgDt, Dt | DtTm] => {
                let date = date(text)?;
                self.entry_mut()?.booking_date = Some(date);
            }
            [ValDt, Dt | DtTm] => {
                let date = date(text)?;
                self.entry_mut()?.value_date = Some(date);
            }
            [AcctSvcrRef] => self.entry_mut()?.servicer_ref = value(),
            [AddtlNtryInf] => self.entry_mut()?.additional = value(),
            _ => {}
        }
        Ok(())
    }

    /// `TxDtls`: a transaction's amounts, references, parties and remittance; the details
    /// join their entry once they close.
    fn on_detail_end(&mut self, path: &[Tag], text: &str) -> Result<(), String> {
        use Tag::*;
        let trimmed = text.trim();
        match path[1..] {
            [] => {
                if let (Some(detail), Some(entry)) = (self.detail.take(), self.entry.as_mut()) {
                    entry.details.push(detail);
                }
            }
            [Amt] => self.detail_mut()?.amount = Some(self.amount(trimmed)?),
            [AmtDtls, TxAmt, Amt] => self.detail_mut()?.tx_amount = Some(self.amount(trimmed)?),
            [AmtDtls, InstdAmt, Amt] => {
                self.detail_mut()?.instructed_amount = Some(self.amount(trimmed)?)
            }
            [Refs, field] => {
                let v = non_empty(trimmed);
                let refs = &mut self.detail_mut()?.refs;
                match field {
                    AcctSvcrRef => refs.servicer_ref = v,
                    EndToEndId => refs.end_to_end_id = v,
                    TxId => refs.tx_id = v,
                    InstrId => refs.instruction_id = v,
                    UETR => refs.uetr = v,
                    _ => {}
                }
            }
            [RltdPties, ..] => self.on_party_end(&path[2..], trimmed)?,
            [RmtInf, Ustrd] => {
                // Keep inner spacing: a line may end in the middle of a word or reference.
                let line = text.trim_matches(['\r', '\n']);
                if !line.trim().is_empty() {
                    self.detail_mut()?
                        .remittance
                        .unstructured
                        .push(line.to_string());
                }
            }
            [RmtInf, Strd, CdtrRefInf, Ref] | [RmtInf, Strd, AddtlRmtInf] => {
                if let Some(v) = non_empty(trimmed) {
                    self.detail_mut()?.remittance.structured.push(v);
                }
            }
            [AddtlTxInf] => {
                if let Some(v) = non_empty(trimmed) {
                    self.detail_mut()?.remittance.additional.push(v);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// `TxDtls/RltdPties`: the debtor's and creditor's names (v02 `Dbtr/Nm`, v08
    /// `Dbtr/Pty/Nm`) and accounts (`IBAN` or `Othr/Id`).
    fn on_party_end(&mut self, path: &[Tag], text: &str) -> Result<(), String> {
        use Tag::*;
        let v = non_empty(text);
        match *path {
            [party @ (Dbtr | Cdtr), Nm] | [party @ (Dbtr | Cdtr), Pty, Nm] => {
                let detail = self.detail_mut()?;
                let target = if party == Dbtr {
                    &mut detail.debtor
                } else {
                    &mut detail.creditor
                };
                target.name = v;
            }
            [acct @ (DbtrAcct | CdtrAcct), Id, IBAN]
            | [acct @ (DbtrAcct | CdtrAcct), Id, Othr, Id] => {
                let detail = self.detail_mut()?;
                let target = if acct == DbtrAcct {
                    &mut detail.debtor
                } else {
                    &mut detail.creditor
                };
                if v.is_some() {
                    target.account = v;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn finish_balance(&mut self) {
        let Some(b) = self.balance.take() else { return };
        let (Some(code), Some((amount, currency))) = (b.code, b.amount) else {
            return;
        };
        let balance = Balance {
            amount: if b.debit { -amount } else { amount },
            currency,
            date: b.date,
        };
        let statement = self.statement_mut();
        match code.as_str() {
            "OPBD" => statement.opening = Some(balance),
            "PRCD" if statement.opening.is_none() => statement.opening = Some(balance),
            "CLBD" => statement.closing = Some(balance),
            _ => {}
        }
    }

    fn statement_mut(&mut self) -> &mut StatementInfo {
        if self.statements.is_empty() {
            self.statements.push(StatementInfo::default());
        }
        self.statements.last_mut().expect("just ensured")
    }

    fn entry_mut(&mut self) -> Result<&mut EntryAcc, String> {
        self.entry
            .as_mut()
            .ok_or_else(|| "entry element outside a statement".to_string())
    }

    fn detail_mut(&mut self) -> Result<&mut DetailAcc, String> {
        self.detail
            .as_mut()
            .ok_or_else(|| "transaction details outside an entry".to_string())
    }

    fn amount(&self, text: &str) -> Result<(Decimal, Currency), String> {
        let value = money::parse_amount(text, MAX_BANK_DECIMALS).map_err(|e| e.to_string())?;
        let currency = self
            .currency
            .clone()
            .ok_or("amount without a Ccy attribute")??;
        Ok((value, currency))
    }

    /// Turns a finished entry into its transactions: one per `TxDtls`, or the entry itself.
    fn finish_entry(&mut self) -> Result<(), String> {
        let Some(mut entry) = self.entry.take() else {
            return Ok(());
        };
        let n = entry.index;
        let entry_amount = entry
            .amount
            .ok_or_else(|| format!("entry {n} has no Amt"))?;
        let direction = entry
            .direction
            .ok_or_else(|| format!("entry {n} has no CdtDbtInd"))?;
        // Statements hold booked entries; an entry without status is taken as booked.
        let status_code = entry.status.take().unwrap_or_else(|| "BOOK".to_string());
        let booked =
            status_code.eq_ignore_ascii_case("BOOK") || status_code.eq_ignore_ascii_case("BOOKED");
        let shared = self.count_entry(&entry, entry_amount.0, direction, booked, &status_code);
        let mut details = std::mem::take(&mut entry.details);
        let has_details = !details.is_empty();
        if !has_details {
            details.push(DetailAcc::default());
        }
        let amounts = detail_amounts(&entry, &details, entry_amount);
        let single = details.len() == 1;
        for (i, (mut detail, (amount, note))) in details.into_iter().zip(amounts).enumerate() {
            detail.remittance.notes.extend(note);
            let number = has_details.then_some(i as u32 + 1);
            let tx = detail_transaction(&mut entry, detail, number, single, &shared, amount);
            self.batches.push(tx);
        }
        self.batches.within_limit(0)
    }

    /// Counts an entry in its statement's totals; returns what the entry's transactions share.
    fn count_entry(
        &mut self,
        entry: &EntryAcc,
        amount: Decimal,
        direction: Direction,
        booked: bool,
        status_code: &str,
    ) -> EntryShared {
        self.statement_mut();
        // The field itself, so that the shared texts below can be borrowed beside it.
        let statement = self.statements.last_mut().expect("just ensured");
        let totals = &mut statement.totals;
        totals.entries += 1;
        totals.entries_sum += amount;
        if booked {
            match direction {
                Direction::Credit => {
                    totals.booked_credits += 1;
                    totals.booked_credits_sum += amount;
                }
                Direction::Debit => {
                    totals.booked_debits += 1;
                    totals.booked_debits_sum += amount;
                }
            }
        }
        EntryShared {
            index: entry.index,
            direction,
            booked,
            status_code: self.status_codes.get(status_code),
            statement_id: statement.id.as_deref().map(|id| self.statement_ids.get(id)),
            account: statement.account.as_deref().map(|a| self.accounts.get(a)),
        }
    }

    /// Ends the document at `offset`: hands the last transactions over, then refuses a
    /// document that was cut off or is no camt.
    fn finish(self, offset: u64) -> Result<FormatRead, ReadError> {
        let element = self.element_path();
        self.batches.finish()?;
        let fail = |message: String| ReadError::At {
            place: Place::Byte(offset),
            element,
            message,
        };
        if let Some(open) = self.stack.last() {
            // A cut-off file is well-formed up to the cut; only the open elements tell.
            return Err(fail(format!(
                "the file ends inside <{}> ({} element(s) still open): it is truncated; ask the \
                 bank to send it again",
                open.name(),
                self.stack.len()
            )));
        }
        let Some(format) = self.format else {
            return Err(fail(match self.root {
                Some(root) => format!(
                    "no camt.052/053/054 document found (the root element is <{root}>); \
                     check that this is a bank statement"
                ),
                None => "no XML element found; the file is not a camt document".to_string(),
            }));
        };
        if self.statements.is_empty() {
            // A document without statements is no empty statement: refused, so it is seen.
            return Err(fail(format!(
                "the {format} document holds no statement (no <{}> element): there is nothing \
                 to read in it; check that this is the bank's whole statement file",
                statement_element(&format)
            )));
        }
        Ok(FormatRead {
            format,
            statements: self.statements,
            bad_rows: Vec::new(),
        })
    }

    fn element_path(&self) -> Option<String> {
        if self.stack.is_empty() {
            return None;
        }
        let mut path = String::new();
        for tag in &self.stack {
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(tag.name());
            if *tag == Tag::Ntry && self.entries_seen > 0 {
                path.push_str(&format!("[{}]", self.entries_seen));
            }
        }
        Some(path)
    }

    fn error_at(&self, offset: u64, message: String) -> ReadError {
        ReadError::At {
            place: Place::Byte(offset),
            element: self.element_path(),
            message,
        }
    }

    /// A parser error: a failure to read is an I/O error, anything else (bad bytes, the input
    /// limit, bad XML) is the document's, at its place.
    fn xml_error(&self, error: quick_xml::Error, offset: u64) -> ReadError {
        if let quick_xml::Error::Io(io) = &error
            && io.kind() != io::ErrorKind::InvalidData
        {
            return ReadError::Io(io::Error::new(io.kind(), io.to_string()));
        }
        let message = match error {
            quick_xml::Error::Io(io) => io.to_string(),
            other => format!("not well-formed XML: {other}"),
        };
        self.error_at(offset, message)
    }
}

/// What every transaction of an entry shares.
struct EntryShared {
    index: u32,
    direction: Direction,
    booked: bool,
    status_code: Arc<str>,
    statement_id: Option<Arc<str>>,
    account: Option<Arc<str>>,
}

/// Each transaction's amount: its own (`Amt`, else `AmtDtls/TxAmt/Amt`), else the entry's when
/// it is the entry's only one, else its `InstdAmt`. The schema lets a batch entry's details
/// carry none of these: the first such detail is reported with what the others leave of the
/// entry's amount (all of it when no detail has one), any further one with zero, and each says
/// so in a note.
fn detail_amounts(
    entry: &EntryAcc,
    details: &[DetailAcc],
    (total, currency): (Decimal, Currency),
) -> Vec<((Decimal, Currency), Option<String>)> {
    let single = details.len() == 1;
    let own: Vec<Option<(Decimal, Currency)>> = details
        .iter()
        .map(|d| {
            d.amount
                .or(d.tx_amount)
                .or(single.then_some(entry.amount_in_details.unwrap_or((total, currency))))
                .or(d.instructed_amount)
        })
        .collect();
    let Some(first) = own.iter().position(Option::is_none) else {
        return own.into_iter().flatten().map(|a| (a, None)).collect();
    };
    let given: Decimal = own
        .iter()
        .flatten()
        .filter(|(_, c)| *c == currency)
        .map(|(a, _)| *a)
        .sum();
    let rest = (total - given).max(Decimal::ZERO);
    let shown = |amount| money::format_amount(amount, currency);
    own.into_iter()
        .enumerate()
        .map(|(i, amount)| match amount {
            Some(amount) => (amount, None),
            None if i == first => (
                (rest, currency),
                Some(format!(
                    "the bank gave this transaction of a batch entry no amount of its own: {} \
                     {currency} is what the entry's other transactions leave of its {} {currency}",
                    shown(rest),
                    shown(total)
                )),
            ),
            None => (
                (Decimal::new(0, total.scale()), currency),
                Some(format!(
                    "the bank gave this transaction of a batch entry no amount of its own: the \
                     entry's {} {currency} is reported on its detail {}, 0 here",
                    shown(total),
                    first + 1
                )),
            ),
        })
        .collect()
}

/// The transaction of `detail`, the entry's detail `number` (`None`: the entry has no
/// details, and `detail` stands in for it). The entry's own references go to each of its
/// details, and its additional text to the only one.
fn detail_transaction(
    entry: &mut EntryAcc,
    mut detail: DetailAcc,
    number: Option<u32>,
    single: bool,
    shared: &EntryShared,
    (amount, currency): (Decimal, Currency),
) -> Transaction {
    if single && let Some(text) = entry.additional.take() {
        detail.remittance.additional.push(text);
    }
    let share = |text: &mut Option<String>| if single { text.take() } else { text.clone() };
    let refs = BankRefs {
        entry_ref: share(&mut entry.entry_ref),
        entry_servicer_ref: share(&mut entry.servicer_ref),
        ..detail.refs
    };
    Transaction {
        position: Position {
            entry: shared.index,
            detail: number,
            line: None,
        },
        statement_id: shared.statement_id.clone(),
        account: shared.account.clone(),
        direction: shared.direction,
        booked: shared.booked,
        status_code: shared.status_code.clone(),
        reversal: entry.reversal,
        amount,
        currency,
        booking_date: entry.booking_date,
        value_date: entry.value_date,
        refs,
        counterparty: counterparty(
            shared.direction,
            detail.debtor,
            detail.creditor,
            shared.account.as_deref(),
        ),
        remittance: detail.remittance,
        identity: TxIdentity::default(),
        cross_key: None,
    }
}

/// The other party: the payer of a credit, the payee of a debit. Returns and reversals
/// sometimes name our own account as the other side: then it is the one named opposite.
fn counterparty(
    direction: Direction,
    debtor: Counterparty,
    creditor: Counterparty,
    own_account: Option<&str>,
) -> Counterparty {
    let (counterparty, other) = match direction {
        Direction::Credit => (debtor, creditor),
        Direction::Debit => (creditor, debtor),
    };
    let other_named = other.name.is_some() || other.account.is_some();
    if other_named
        && counterparty.account.is_some()
        && counterparty.account.as_deref() == own_account
    {
        other
    } else {
        counterparty
    }
}

/// The trimmed text, if any.
fn non_empty(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The version in a camt namespace (`urn:iso:std:iso:20022:tech:xsd:camt.053.001.02`).
fn camt_namespace(e: &BytesStart) -> Option<String> {
    e.attributes().flatten().find_map(|attr| {
        let key: &str = attr.key.as_ref();
        if key != "xmlns" && !key.starts_with("xmlns:") {
            return None;
        }
        let value = attr.value;
        let version = value.rsplit(':').next()?;
        version
            .starts_with("camt.05")
            .then(|| crate::text::clip(version, 30))
    })
}

fn not_camt(local_name: &str, namespace: &Option<String>) -> String {
    if let Some(version) = namespace.as_ref().filter(|n| n.starts_with("camt.05")) {
        return format!(
            "the {version} document's message is <{}>, which recon does not know (it reads \
             BkToCstmrStmt, BkToCstmrAcctRpt and BkToCstmrDbtCdtNtfctn, of every version)",
            crate::text::clip(local_name, 40)
        );
    }
    let known = match local_name {
        "CstmrCdtTrfInitn" => " (pain.001, a payment order)",
        "CstmrDrctDbtInitn" => " (pain.008, a direct debit order)",
        "CstmrPmtStsRpt" => " (pain.002, a payment status report)",
        "FIToFICstmrCdtTrf" => " (pacs.008, an interbank transfer)",
        _ => "",
    };
    format!(
        "this is an ISO 20022 <{}> document{known}{}, not a bank statement; recon reads \
         camt.053 statements (and camt.052/054)",
        crate::text::clip(local_name, 40),
        namespace
            .as_ref()
            .map(|n| format!(" [{n}]"))
            .unwrap_or_default()
    )
}

fn direction(text: &str) -> Result<Direction, String> {
    match text {
        "CRDT" => Ok(Direction::Credit),
        "DBIT" => Ok(Direction::Debit),
        other => Err(format!(
            "{:?} is not a credit/debit indicator (expected CRDT or DBIT)",
            crate::text::clip(other, 20)
        )),
    }
}

fn boolean(text: &str) -> Result<bool, String> {
    match text {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(format!(
            "{:?} is not a boolean (expected true or false)",
            crate::text::clip(other, 20)
        )),
    }
}

/// Reads `2024-03-14`, `2024-03-14+01:00` or a date-time; the date part is what counts.
fn date(text: &str) -> Result<NaiveDate, String> {
    iso_date(text).ok_or_else(|| {
        format!(
            "{:?} is not a date (expected YYYY-MM-DD)",
            crate::text::clip(text, 30)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Latin-1 document with `declaration` (which names its encoding) in front.
    fn latin1_document(declaration: &str) -> Vec<u8> {
        let mut bytes = declaration.as_bytes().to_vec();
        bytes.extend(b"<Document><BkToCstmrStmt><Stmt><Id>Gr\xfc\xdfe</Id></Stmt></BkToCstmrStmt></Document>");
        bytes
    }

    #[test]
    fn a_declaration_past_the_decoders_first_64_bytes_is_read_not_a_panic() {
        let declaration = format!(
            "{}<?xml version=\"1.0\" encoding=\"ISO-8859-1\" standalone=\"yes\"?>\n",
            " ".repeat(80)
        );
        let reader = CamtReader {
            encoding: Some(encoding_rs::WINDOWS_1252),
        };
        let (file, _) = reader
            .read_all(&latin1_document(&declaration)[..], &Limits::default())
            .unwrap();
        assert_eq!(file.statements[0].id.as_deref(), Some("Grüße"));
    }

    #[test]
    fn a_second_declaration_naming_another_encoding_is_refused_not_a_panic() {
        let mut bytes = latin1_document("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>");
        let at = bytes.len() - "</Document>".len();
        let later = format!(
            "<!--{}--><?xml version=\"1.0\" encoding=\"UTF-8\"?>",
            "x".repeat(200)
        );
        bytes.splice(at..at, later.bytes());
        let reader = CamtReader {
            encoding: Some(encoding_rs::WINDOWS_1252),
        };
        let refused = reader
            .read_all(&bytes[..], &Limits::default())
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("the encoding declaration (UTF-8) must come first"),
            "{refused}"
        );
    }

    #[test]
    fn a_declared_encoding_that_moves_ascii_is_refused_by_name() {
        let doc = b"<?xml version=\"1.0\" encoding=\"UTF-16\"?><Document/>";
        let reader = CamtReader {
            encoding: Some(encoding_rs::UTF_16LE),
        };
        let refused = reader
            .read_all(&doc[..], &Limits::default())
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("declares the encoding \"UTF-16\", which recon cannot read"),
            "{refused}"
        );
    }

    #[test]
    fn dates_are_read_by_hand_exactly_as_iso_8601_says() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day);
        assert_eq!(iso_date("2026-11-20"), d(2026, 11, 20));
        assert_eq!(iso_date("2024-02-29+01:00"), d(2024, 2, 29));
        assert_eq!(iso_date("2026-11-20T23:59:59.123Z"), d(2026, 11, 20));
        assert_eq!(iso_date("2026-11-20T23:59:59.123456789"), d(2026, 11, 20));
        assert_eq!(iso_date("2026-11-20T08:15:00-05:00"), d(2026, 11, 20));
        assert_eq!(iso_date("2026-11-20T08:15+0100"), d(2026, 11, 20));
        assert_eq!(iso_date("2026-11-20Z"), d(2026, 11, 20));
        assert_eq!(iso_date("1899-12-31"), d(1899, 12, 31));
        for bad in [
            "2026-11-21garbage",
            "2026-11-21T25:99",
            "2026-11-21T24:00:00",
            "2026-11-21T10:60:00",
            "2026-11-21T10:30:61",
            "2026-11-21T10:30:00.",
            "2026-11-21T10:30:00Zx",
            "2026-11-21T",
            "2026-11-21 10:30:00",
            "2026-11-21+25:00",
            "0000-01-01",
            "2025-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026/11/20",
            "2026-1-20",
            "20261120",
            "2026-11-2",
            "2026-11-2x",
            "",
            "２０２６-11-20",
        ] {
            assert_eq!(iso_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn every_known_element_name_is_found_and_others_are_other() {
        for tag in [
            Tag::Document,
            Tag::Ntry,
            Tag::TxDtls,
            Tag::IBAN,
            Tag::ToDtTm,
            Tag::Amt,
        ] {
            assert_eq!(Tag::from_local(tag.name().as_bytes()), tag);
        }
        assert_eq!(Tag::from_local(b"ntry"), Tag::Other);
        assert_eq!(Tag::from_local(b""), Tag::Other);
        assert_eq!(Tag::from_local(b"NtryX"), Tag::Other);
    }

    #[test]
    fn blanks_are_kept_inside_read_text_and_skipped_between_elements() {
        // Blank text between two entities inside a read element is part of it; indentation with
        // CRLF between elements (prefixed names too) is not.
        let xml = "<?xml version=\"1.0\"?>\r\n<d:Document xmlns:d=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.02\">\r\n \
            <d:BkToCstmrStmt>\r\n  <d:Stmt>\r\n   <d:Id>S1</d:Id>\r\n   <d:Ntry>\r\n    \
            <d:Amt Ccy=\"EUR\">1.00</d:Amt>\r\n    <d:CdtDbtInd>CRDT</d:CdtDbtInd>\r\n    \
            <d:Sts>BOOK</d:Sts>\r\n    <d:NtryDtls><d:TxDtls>\r\n     <d:RltdPties><d:Dbtr>\
            <d:Nm>A &amp; &lt;B&gt;</d:Nm></d:Dbtr></d:RltdPties>\r\n     <d:RmtInf>\r\n      \
            <d:Ustrd>x&amp; &#65;  &lt;y</d:Ustrd>\r\n     </d:RmtInf>\r\n    </d:TxDtls>\
            </d:NtryDtls>\r\n   </d:Ntry>\r\n  </d:Stmt>\r\n </d:BkToCstmrStmt>\r\n</d:Document>\r\n";
        let (file, transactions) = CamtReader::default()
            .read_all(xml.as_bytes(), &Limits::default())
            .unwrap();
        assert_eq!(file.format, "camt.053.001.02");
        let tx = &transactions[0];
        assert_eq!(tx.counterparty.name.as_deref(), Some("A & <B>"));
        assert_eq!(tx.remittance.unstructured, vec!["x& A  <y".to_string()]);
        assert_eq!(tx.statement_id.as_deref(), Some("S1"));
        assert!(tx.booked);
    }
}
