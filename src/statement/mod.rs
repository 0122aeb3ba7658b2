//! Statement inputs. Every format is read into the same [`Transaction`]; the matching core never
//! sees where a transaction came from beyond the fields here.
//!
//! [`detect`] decides a file's format from its head; each format's module (`camt`, `mt940`,
//! `csv`) is a [`StatementReader`] with the one error type [`ReadError`]; `input` opens the
//! file, hashes it, and hands the reader's transactions on with their identities set.

pub mod camt;
pub mod csv;
pub mod detect;
pub mod identity;
mod input;
pub mod mt940;
pub mod profile;
mod reader;

use std::borrow::Cow;
use std::sync::Arc;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::money::Currency;

pub use detect::family;
pub use identity::{CrossKey, TxIdentity};
pub use input::{
    InputError, InputErrorKind, Limits, ReadOptions, detect_family, hash_file, read_path,
    read_path_in_batches,
};
pub use reader::{BATCH, FormatRead, Place, ReadError, StatementReader};

/// Which way the money moved on our account.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Direction {
    /// Money in (`CRDT`).
    Credit,
    /// Money out (`DBIT`).
    Debit,
}

impl Direction {
    /// The ISO 20022 code.
    pub fn code(&self) -> &'static str {
        match self {
            Direction::Credit => "CRDT",
            Direction::Debit => "DBIT",
        }
    }
}

/// Where a transaction stands in its file, for a person who opens it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Position {
    /// 1-based number of the entry (camt `Ntry`) in the file.
    pub entry: u32,
    /// 1-based number of the `TxDtls` inside the entry, if the entry has any.
    pub detail: Option<u32>,
    /// The line in the file, for line-based formats (CSV rows, MT940 `:61:` lines).
    pub line: Option<u64>,
}

/// The bank's own references; any of them may be missing or meaningless (`NOTPROVIDED`).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct BankRefs {
    pub entry_ref: Option<String>,
    pub entry_servicer_ref: Option<String>,
    pub servicer_ref: Option<String>,
    pub end_to_end_id: Option<String>,
    pub tx_id: Option<String>,
    pub instruction_id: Option<String>,
    pub uetr: Option<String>,
}

impl BankRefs {
    /// The best single reference to show for the entry: `NtryRef`, else its `AcctSvcrRef`.
    pub fn entry_display(&self) -> Option<&str> {
        self.entry_ref
            .as_deref()
            .or(self.entry_servicer_ref.as_deref())
    }

    /// The transaction's servicer reference, else the entry's.
    pub fn servicer_display(&self) -> Option<&str> {
        self.servicer_ref
            .as_deref()
            .or(self.entry_servicer_ref.as_deref())
    }
}

/// The other party: the payer of a credit, the payee of a debit.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Counterparty {
    pub name: Option<String>,
    /// IBAN, or the other account id the bank gave.
    pub account: Option<String>,
}

/// What the payer wrote, kept by origin so the reference search never glues two fields.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Remittance {
    /// Unstructured lines (`Ustrd`) in order; banks split long text into several.
    pub unstructured: Vec<String>,
    /// Structured creditor references (`Strd/CdtrRefInf/Ref`) and additional structured text.
    pub structured: Vec<String>,
    /// Free text the bank added (`AddtlTxInf`, `AddtlNtryInf`).
    pub additional: Vec<String>,
    /// recon's own notes on how it read the transaction (an impossible date booked on the
    /// month's last day, a batch amount the bank did not split): shown after the text in the
    /// report, never searched for a reference.
    pub notes: Vec<String>,
}

impl Remittance {
    /// The text fields to search for a reference; unstructured lines are joined by a space so a
    /// reference split over two lines is found.
    /// They are borrowed where they can be: the reading takes them for every transaction.
    pub fn search_fields(&self) -> Vec<Cow<'_, str>> {
        let mut fields = Vec::with_capacity(1 + self.structured.len() + self.additional.len());
        match &self.unstructured[..] {
            [] => {}
            [line] => fields.push(Cow::Borrowed(line.as_str())),
            lines => fields.push(Cow::Owned(lines.join(" "))),
        }
        fields.extend(self.structured.iter().map(|f| Cow::Borrowed(f.as_str())));
        fields.extend(self.additional.iter().map(|f| Cow::Borrowed(f.as_str())));
        fields
    }

    /// One line for the report: what the payer wrote, else what the bank added; then recon's
    /// notes, each as `[recon: ...]`.
    pub fn display(&self) -> String {
        let mut parts: Vec<&str> = self
            .unstructured
            .iter()
            .chain(&self.structured)
            .map(String::as_str)
            .collect();
        if parts.is_empty() {
            parts = self.additional.iter().map(String::as_str).collect();
        }
        let mut text = crate::text::fold_whitespace(&parts.join(" "));
        for note in &self.notes {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str("[recon: ");
            text.push_str(note);
            text.push(']');
        }
        text
    }
}

/// One shared copy of a text that repeats from transaction to transaction (a statement's id
/// and account, a status code) instead of an allocation per transaction.
#[derive(Default)]
pub(crate) struct Repeated(Option<Arc<str>>);

impl Repeated {
    pub(crate) fn get(&mut self, text: &str) -> Arc<str> {
        match &self.0 {
            Some(last) if **last == *text => last.clone(),
            _ => self.0.insert(Arc::from(text)).clone(),
        }
    }
}

/// One bank transaction: a camt `TxDtls`, an entry without details, or a CSV row.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Transaction {
    pub position: Position,
    /// Shared by every transaction of its statement.
    pub statement_id: Option<Arc<str>>,
    pub account: Option<Arc<str>>,
    pub direction: Direction,
    /// Booked (`BOOK`) transactions are final; anything else is informational.
    pub booked: bool,
    /// The status code as the bank gave it (`BOOK`, `PDNG`, ...), shared while it repeats.
    pub status_code: Arc<str>,
    /// The entry is the reversal of an earlier one (`RvslInd`).
    pub reversal: bool,
    pub amount: Decimal,
    pub currency: Currency,
    pub booking_date: Option<NaiveDate>,
    pub value_date: Option<NaiveDate>,
    pub refs: BankRefs,
    pub counterparty: Counterparty,
    pub remittance: Remittance,
    /// Identity for de-duplication across files and runs; set by [`identity::assign`].
    pub identity: TxIdentity,
    /// Identity across formats (the same transaction in the bank's camt and its CSV); set by
    /// the run from the settlement references found ([`identity::CrossAssigner`]).
    pub cross_key: Option<CrossKey>,
}

#[cfg(test)]
impl Transaction {
    /// A booked credit to our account with `text` as its remittance, identity not yet set: the
    /// unit tests' payment.
    pub(crate) fn test_credit(amount: &str, currency: &str, text: &str) -> Transaction {
        Transaction {
            position: Position {
                entry: 1,
                ..Position::default()
            },
            statement_id: None,
            account: Some("DE89370400440532013000".into()),
            direction: Direction::Credit,
            booked: true,
            status_code: "BOOK".into(),
            reversal: false,
            amount: amount.parse().unwrap(),
            currency: currency.parse().unwrap(),
            booking_date: None,
            value_date: None,
            refs: BankRefs::default(),
            counterparty: Counterparty::default(),
            remittance: Remittance {
                unstructured: vec![text.into()],
                ..Remittance::default()
            },
            identity: TxIdentity::default(),
            cross_key: None,
        }
    }
}

/// A balance as the bank states it: signed (a debit balance is negative), in its currency.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct Balance {
    pub amount: Decimal,
    pub currency: Currency,
    pub date: Option<NaiveDate>,
}

/// Counts and sums as a statement's `TxsSummry` states them (absent parts are `None`).
#[derive(Clone, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct StatedTotals {
    pub entries: Option<u64>,
    pub entries_sum: Option<Decimal>,
    pub credits: Option<u64>,
    pub credits_sum: Option<Decimal>,
    pub debits: Option<u64>,
    pub debits_sum: Option<Decimal>,
}

/// What the entries of a statement add up to, as read.
#[derive(Clone, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct EntryTotals {
    pub entries: u64,
    pub entries_sum: Decimal,
    pub booked_credits: u64,
    pub booked_credits_sum: Decimal,
    pub booked_debits: u64,
    pub booked_debits_sum: Decimal,
}

/// One statement (camt `Stmt`, `Rpt` or `Ntfctn`, an MT940 message) as listed in the summary.
#[derive(Clone, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct StatementInfo {
    pub id: Option<String>,
    pub account: Option<String>,
    pub electronic_sequence: Option<String>,
    pub from_date: Option<NaiveDate>,
    pub to_date: Option<NaiveDate>,
    /// Opening booked balance (`OPBD`, else the previous closing `PRCD`).
    pub opening: Option<Balance>,
    /// Closing booked balance (`CLBD`).
    pub closing: Option<Balance>,
    pub stated: StatedTotals,
    pub totals: EntryTotals,
}

/// Everything read from one input file.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StatementFile {
    /// The format as detected, e.g. `camt.053.001.02`.
    pub format: String,
    pub statements: Vec<StatementInfo>,
    pub transactions: Vec<Transaction>,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
    /// CSV rows that could not be read and were skipped (only with `--skip-bad-rows`).
    pub bad_rows: Vec<csv::BadRow>,
}
