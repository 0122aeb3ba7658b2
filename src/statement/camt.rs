//! Streaming reader for ISO 20022 bank-to-customer cash management messages: camt.053
//! statements, camt.052 reports and camt.054 notifications, every version. Elements are matched
//! by local name, so any namespace (or none) works; memory holds one entry at a time.

use std::io::{self, BufRead};

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

/// `YYYY-MM-DD` at the start of `text` (a date, or the date of a date-time), read by hand: a
/// format-string parser costs more than the rest of the element.
fn iso_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes().get(..10)?;
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    NaiveDate::from_ymd_opt(digits(0..4)? as i32, digits(5..7)?, digits(8..10)?)
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

/// What a camt document is, from the element under `Document`.
fn message_kind(tag: Tag) -> Option<&'static str> {
    match tag {
        Tag::BkToCstmrStmt => Some("camt.053"),
        Tag::BkToCstmrAcctRpt => Some("camt.052"),
        Tag::BkToCstmrDbtCdtNtfctn => Some("camt.054"),
        _ => None,
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
    currency: Option<String>,
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
                    Ok(Some(attr)) => Some(attr.value.trim().to_string()),
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
        let result = self.on_end();
        self.stack.pop();
        self.text.clear();
        result
    }

    /// Acts on the element that just closed, by its path; `self.text` holds its text.
    fn on_end(&mut self) -> Result<(), String> {
        use Tag::*;
        if !self.in_message() {
            return Ok(());
        }
        let text = self.text.trim();
        let value = || (!text.is_empty()).then(|| text.to_string());
        match self.stack.as_slice() {
            // Statement level.
            [.., Stmt | Rpt | Ntfctn, Id] => self.statement_mut().id = value(),
            [.., Stmt | Rpt | Ntfctn, ElctrncSeqNb] => {
                self.statement_mut().electronic_sequence = value()
            }
            [.., Stmt | Rpt | Ntfctn, Acct, Id, IBAN]
            | [.., Stmt | Rpt | Ntfctn, Acct, Id, Othr, Id] => {
                if let Some(v) = value() {
                    self.statement_mut().account = Some(v);
                }
            }
            [.., Stmt | Rpt | Ntfctn, FrToDt, FrDtTm | Dt] => {
                let date = date(text)?;
                self.statement_mut().from_date = Some(date);
            }
            [.., Stmt | Rpt | Ntfctn, FrToDt, ToDtTm] => {
                let date = date(text)?;
                self.statement_mut().to_date = Some(date);
            }
            // Balances and the statement's own totals, for the statement controls.
            [.., Bal] => self.finish_balance(),
            [.., Bal, Tp, CdOrPrtry, Cd] => {
                if let Some(b) = self.balance.as_mut() {
                    b.code = value();
                }
            }
            [.., Bal, Amt] => {
                let amount = self.amount(text)?;
                if let Some(b) = self.balance.as_mut() {
                    b.amount = Some(amount);
                }
            }
            [.., Bal, CdtDbtInd] => {
                let debit = direction(text)? == Direction::Debit;
                if let Some(b) = self.balance.as_mut() {
                    b.debit = debit;
                }
            }
            [.., Bal, Dt, Dt | DtTm] => {
                let date = date(text)?;
                if let Some(b) = self.balance.as_mut() {
                    b.date = Some(date);
                }
            }
            [
                ..,
                TxsSummry,
                group @ (TtlNtries | TtlCdtNtries | TtlDbtNtries),
                field @ (NbOfNtries | Sum),
            ] => {
                let (group, field) = (*group, *field);
                let (count, sum) = if field == NbOfNtries {
                    let count = text.parse::<u64>().map_err(|_| {
                        format!(
                            "{:?} is not a number of entries",
                            crate::text::clip(text, 20)
                        )
                    })?;
                    (Some(count), None)
                } else {
                    // Some banks sign the debit sum; what counts is its size.
                    let sum = money::parse_amount(text.trim_start_matches('-'), MAX_BANK_DECIMALS)
                        .map_err(|e| e.to_string())?;
                    (None, Some(sum))
                };
                let stated = &mut self.statement_mut().stated;
                let (count_slot, sum_slot) = match group {
                    TtlNtries => (&mut stated.entries, &mut stated.entries_sum),
                    TtlCdtNtries => (&mut stated.credits, &mut stated.credits_sum),
                    _ => (&mut stated.debits, &mut stated.debits_sum),
                };
                if count.is_some() {
                    *count_slot = count;
                }
                if sum.is_some() {
                    *sum_slot = sum;
                }
            }
            // Entry level.
            [.., Ntry] => return self.finish_entry(),
            [.., Ntry, NtryRef] => self.entry_mut()?.entry_ref = value(),
            [.., Ntry, Amt] => {
                let amount = self.amount(text)?;
                self.entry_mut()?.amount = Some(amount);
            }
            [.., Ntry, AmtDtls, TxAmt, Amt] => {
                let amount = self.amount(text)?;
                self.entry_mut()?.amount_in_details = Some(amount);
            }
            [.., Ntry, CdtDbtInd] => {
                let direction = direction(text)?;
                self.entry_mut()?.direction = Some(direction);
            }
            [.., Ntry, RvslInd] => {
                let reversal = boolean(text)?;
                self.entry_mut()?.reversal = reversal;
            }
            [.., Ntry, Sts] => {
                if let Some(v) = value() {
                    self.entry_mut()?.status = Some(v);
                }
            }
            [.., Ntry, Sts, Cd | Prtry] => self.entry_mut()?.status = value(),
            [.., Ntry, BookgDt, Dt | DtTm] => {
                let date = date(text)?;
                self.entry_mut()?.booking_date = Some(date);
            }
            [.., Ntry, ValDt, Dt | DtTm] => {
                let date = date(text)?;
                self.entry_mut()?.value_date = Some(date);
            }
            [.., Ntry, AcctSvcrRef] => self.entry_mut()?.servicer_ref = value(),
            [.., Ntry, AddtlNtryInf] => self.entry_mut()?.additional = value(),
            // Transaction details.
            [.., TxDtls] => {
                if let (Some(detail), Some(entry)) = (self.detail.take(), self.entry.as_mut()) {
                    entry.details.push(detail);
                }
            }
            [.., TxDtls, Amt] => {
                let amount = self.amount(text)?;
                self.detail_mut()?.amount = Some(amount);
            }
            [.., TxDtls, AmtDtls, TxAmt, Amt] => {
                let amount = self.amount(text)?;
                self.detail_mut()?.tx_amount = Some(amount);
            }
            [.., TxDtls, AmtDtls, InstdAmt, Amt] => {
                let amount = self.amount(text)?;
                self.detail_mut()?.instructed_amount = Some(amount);
            }
            [.., TxDtls, Refs, field] => {
                let field = *field;
                let v = value();
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
            [.., TxDtls, RltdPties, party @ (Dbtr | Cdtr), Nm]
            | [.., TxDtls, RltdPties, party @ (Dbtr | Cdtr), Pty, Nm] => {
                let party = *party;
                let v = value();
                let detail = self.detail_mut()?;
                let target = if party == Dbtr {
                    &mut detail.debtor
                } else {
                    &mut detail.creditor
                };
                target.name = v;
            }
            [
                ..,
                TxDtls,
                RltdPties,
                acct @ (DbtrAcct | CdtrAcct),
                Id,
                IBAN,
            ]
            | [
                ..,
                TxDtls,
                RltdPties,
                acct @ (DbtrAcct | CdtrAcct),
                Id,
                Othr,
                Id,
            ] => {
                let acct = *acct;
                let v = value();
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
            [.., TxDtls, RmtInf, Ustrd] => {
                // Keep inner spacing: a line may end in the middle of a word or reference.
                let line = self.text.trim_matches(['\r', '\n']).to_string();
                if !line.trim().is_empty() {
                    self.detail_mut()?.remittance.unstructured.push(line);
                }
            }
            [.., TxDtls, RmtInf, Strd, CdtrRefInf, Ref]
            | [.., TxDtls, RmtInf, Strd, AddtlRmtInf] => {
                if let Some(v) = value() {
                    self.detail_mut()?.remittance.structured.push(v);
                }
            }
            [.., TxDtls, AddtlTxInf] => {
                if let Some(v) = value() {
                    self.detail_mut()?.remittance.additional.push(v);
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
        let code = self
            .currency
            .as_deref()
            .ok_or("amount without a Ccy attribute")?;
        let currency: Currency = code.parse().map_err(|e: money::MoneyError| e.to_string())?;
        Ok((value, currency))
    }

    /// Turns a finished entry into its transactions: one per `TxDtls`, or the entry itself.
    fn finish_entry(&mut self) -> Result<(), String> {
        let Some(mut entry) = self.entry.take() else {
            return Ok(());
        };
        let n = entry.index;
        let (entry_amount, entry_currency) = entry
            .amount
            .ok_or_else(|| format!("entry {n} has no Amt"))?;
        let direction = entry
            .direction
            .ok_or_else(|| format!("entry {n} has no CdtDbtInd"))?;
        // Statements hold booked entries; an entry without status is taken as booked.
        let status_code = entry.status.take().unwrap_or_else(|| "BOOK".to_string());
        let booked =
            status_code.eq_ignore_ascii_case("BOOK") || status_code.eq_ignore_ascii_case("BOOKED");
        self.statement_mut();
        // The field itself, so that the shared texts below can be borrowed beside it.
        let statement = self.statements.last_mut().expect("just ensured");
        let totals = &mut statement.totals;
        totals.entries += 1;
        totals.entries_sum += entry_amount;
        if booked {
            match direction {
                Direction::Credit => {
                    totals.booked_credits += 1;
                    totals.booked_credits_sum += entry_amount;
                }
                Direction::Debit => {
                    totals.booked_debits += 1;
                    totals.booked_debits_sum += entry_amount;
                }
            }
        }
        let statement_id = statement.id.as_deref().map(|id| self.statement_ids.get(id));
        let statement_account = statement.account.as_deref().map(|a| self.accounts.get(a));
        let status_code = self.status_codes.get(&status_code);
        let mut details = std::mem::take(&mut entry.details);
        let has_details = !details.is_empty();
        let single = details.len() <= 1;
        if !has_details {
            details.push(DetailAcc::default());
        }
        for (i, mut detail) in details.into_iter().enumerate() {
            let (amount, currency) = detail
                .amount
                .or(detail.tx_amount)
                .or(single.then_some(
                    entry
                        .amount_in_details
                        .unwrap_or((entry_amount, entry_currency)),
                ))
                .or(detail.instructed_amount)
                .ok_or_else(|| {
                    format!("entry {n}: transaction details {} carry no amount", i + 1)
                })?;
            if single && let Some(text) = entry.additional.take() {
                detail.remittance.additional.push(text);
            }
            // The entry's own references go to each of its details; the only one takes them.
            let share = |text: &mut Option<String>| if single { text.take() } else { text.clone() };
            let refs = BankRefs {
                entry_ref: share(&mut entry.entry_ref),
                entry_servicer_ref: share(&mut entry.servicer_ref),
                ..detail.refs
            };
            let (mut counterparty, other) = match direction {
                Direction::Credit => (detail.debtor, detail.creditor),
                Direction::Debit => (detail.creditor, detail.debtor),
            };
            // Returns and reversals sometimes name our own account as the other side.
            let other_named = other.name.is_some() || other.account.is_some();
            if other_named
                && counterparty.account.is_some()
                && counterparty.account.as_deref() == statement_account.as_deref()
            {
                counterparty = other;
            }
            self.batches.push(Transaction {
                position: Position {
                    entry: n,
                    detail: has_details.then_some(i as u32 + 1),
                    line: None,
                },
                statement_id: statement_id.clone(),
                account: statement_account.clone(),
                direction,
                booked,
                status_code: status_code.clone(),
                reversal: entry.reversal,
                amount,
                currency,
                booking_date: entry.booking_date,
                value_date: entry.value_date,
                refs,
                counterparty,
                remittance: detail.remittance,
                identity: TxIdentity::default(),
            });
        }
        self.batches.within_limit(0)
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
        for bad in [
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
