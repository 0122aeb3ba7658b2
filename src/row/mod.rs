//! One transaction's outcome, flattened: what the ledger stores and every report shows.

pub mod spill;

use std::sync::Arc;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::ids::TopUpId;
use crate::matching::{Category, Decision, Outcome};
use crate::money::{Currency, format_amount};
use crate::statement::{CrossKey, Direction, Transaction, TxIdentity};

/// A decided transaction with everything a person needs to act on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub outcome: Outcome,
    pub amount: Decimal,
    pub currency: Currency,
    pub direction: Direction,
    pub status_code: Arc<str>,
    pub reversal: bool,
    pub booking_date: Option<NaiveDate>,
    pub value_date: Option<NaiveDate>,
    /// The statement file's path as given, shared by its rows.
    pub statement_file: Arc<str>,
    pub statement_id: Option<Arc<str>>,
    pub account: Option<Arc<str>>,
    pub entry_number: u32,
    pub detail_number: Option<u32>,
    pub line_number: Option<u64>,
    /// The bank's references, the counterparty, the remittance, the reference found and the
    /// suggestion: read through the methods of the same names.
    pub(crate) texts: Texts,
    pub topup_id: Option<TopUpId>,
    pub expected_amount: Option<Decimal>,
    pub difference: Option<Decimal>,
    pub identity: TxIdentity,
    /// The transaction's identity across formats, if it has one (booked, with a booking date).
    pub cross_key: Option<CrossKey>,
}

/// A row's texts as given, to make its [`Texts`] from.
#[derive(Clone, Copy)]
pub(crate) struct TextFields<'a> {
    pub entry_ref: Option<&'a str>,
    pub servicer_ref: Option<&'a str>,
    pub end_to_end_id: Option<&'a str>,
    pub tx_id: Option<&'a str>,
    pub uetr: Option<&'a str>,
    pub counterparty_name: Option<&'a str>,
    pub counterparty_iban: Option<&'a str>,
    pub remittance: &'a str,
    pub extracted_reference: Option<&'a str>,
    pub suggestion: Option<&'a str>,
}

impl<'a> TextFields<'a> {
    /// The order of the texts in [`Texts`], which the accessors of [`Row`] follow.
    fn to_array(self) -> [Option<&'a str>; TEXTS] {
        [
            self.entry_ref,
            self.servicer_ref,
            self.end_to_end_id,
            self.tx_id,
            self.uetr,
            self.counterparty_name,
            self.counterparty_iban,
            Some(self.remittance),
            self.extracted_reference,
            self.suggestion,
        ]
    }
}

const TEXTS: usize = 10;
const SUGGESTION: usize = 9;

/// A row's ten texts in one allocation: a night's rows are most of a run's memory, and ten
/// separate strings (most of them short) cost their own size again in headers and padding.
#[derive(Clone, PartialEq, Eq, Default)]
pub(crate) struct Texts {
    text: Box<str>,
    /// Where each text ends in `text`, in [`TextFields`] order.
    ends: [usize; TEXTS],
    /// Bit `i` is set when text `i` is present (an absent text and an empty one differ).
    present: u16,
}

impl Texts {
    pub(crate) fn new(fields: TextFields) -> Texts {
        Texts::from_array(fields.to_array())
    }

    fn from_array(fields: [Option<&str>; TEXTS]) -> Texts {
        let mut text = String::with_capacity(fields.iter().flatten().map(|f| f.len()).sum());
        let mut ends = [0; TEXTS];
        let mut present = 0;
        for (i, field) in fields.iter().enumerate() {
            if let Some(field) = field {
                text.push_str(field);
                present |= 1 << i;
            }
            ends[i] = text.len();
        }
        Texts {
            text: text.into_boxed_str(),
            ends,
            present,
        }
    }

    fn get(&self, i: usize) -> Option<&str> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        (self.present & (1 << i) != 0).then(|| &self.text[start..self.ends[i]])
    }
}

impl std::fmt::Debug for Texts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries((0..TEXTS).map(|i| self.get(i)))
            .finish()
    }
}

impl Row {
    /// Flattens a transaction and its decision; `statement_file` is the path as given. The
    /// suggestion comes later ([`Row::set_suggestion`]).
    pub fn new(tx: Transaction, decision: &Decision, statement_file: &Arc<str>) -> Row {
        let difference = decision.difference(&tx);
        let remittance = tx.remittance.display();
        let reference = decision.reference.map(|r| r.to_string());
        let texts = Texts::new(TextFields {
            entry_ref: tx.refs.entry_display(),
            servicer_ref: tx.refs.servicer_display(),
            end_to_end_id: tx.refs.end_to_end_id.as_deref(),
            tx_id: tx.refs.tx_id.as_deref(),
            uetr: tx.refs.uetr.as_deref(),
            counterparty_name: tx.counterparty.name.as_deref(),
            counterparty_iban: tx.counterparty.account.as_deref(),
            remittance: &remittance,
            extracted_reference: reference.as_deref(),
            suggestion: decision
                .copy_note()
                .or_else(|| {
                    crate::suggest::return_note(decision.outcome, tx.refs.end_to_end_id.as_deref())
                })
                .as_deref(),
        });
        Row {
            outcome: decision.outcome,
            amount: tx.amount,
            currency: tx.currency,
            direction: tx.direction,
            status_code: tx.status_code,
            reversal: tx.reversal,
            booking_date: tx.booking_date,
            value_date: tx.value_date,
            statement_file: statement_file.clone(),
            statement_id: tx.statement_id,
            account: tx.account,
            entry_number: tx.position.entry,
            detail_number: tx.position.detail,
            line_number: tx.position.line,
            texts,
            topup_id: decision.topup.as_ref().map(|t| t.id),
            expected_amount: decision.expected_amount(),
            difference,
            identity: tx.identity,
            cross_key: tx.cross_key,
        }
    }

    /// The entry's reference (`NtryRef`, else its `AcctSvcrRef`).
    pub fn entry_ref(&self) -> Option<&str> {
        self.texts.get(0)
    }

    /// The transaction's servicer reference, else the entry's.
    pub fn servicer_ref(&self) -> Option<&str> {
        self.texts.get(1)
    }

    /// The payer's end-to-end id (`EndToEndId`).
    pub fn end_to_end_id(&self) -> Option<&str> {
        self.texts.get(2)
    }

    /// The bank's transaction id (`TxId`).
    pub fn tx_id(&self) -> Option<&str> {
        self.texts.get(3)
    }

    /// The SWIFT gpi tracking reference (`UETR`).
    pub fn uetr(&self) -> Option<&str> {
        self.texts.get(4)
    }

    /// The payer of a credit, the payee of a debit.
    pub fn counterparty_name(&self) -> Option<&str> {
        self.texts.get(5)
    }

    /// The other party's IBAN or account id.
    pub fn counterparty_iban(&self) -> Option<&str> {
        self.texts.get(6)
    }

    /// What the payer wrote, else what the bank added, on one line.
    pub fn remittance(&self) -> &str {
        self.texts.get(7).unwrap_or_default()
    }

    /// The settlement reference the decision rests on.
    pub fn extracted_reference(&self) -> Option<&str> {
        self.texts.get(8)
    }

    /// What a person should do about it (exceptions only).
    pub fn suggestion(&self) -> Option<&str> {
        self.texts.get(SUGGESTION)
    }

    /// Sets the suggestion, once the run knows it.
    pub fn set_suggestion(&mut self, suggestion: Option<&str>) {
        let mut fields: [Option<&str>; TEXTS] = std::array::from_fn(|i| self.texts.get(i));
        fields[SUGGESTION] = suggestion;
        self.texts = Texts::from_array(fields);
    }

    /// Which report file the row belongs in.
    pub fn category(&self) -> Category {
        self.outcome.category()
    }

    /// The amount as text with the currency's decimals.
    pub fn amount_text(&self) -> String {
        format_amount(self.amount, self.currency)
    }

    /// Where to find the transaction in its file: `entry 5`, `entry 5 detail 2` or `line 7`.
    pub fn position_text(&self) -> String {
        match (self.line_number, self.detail_number) {
            (Some(line), _) => format!("line {line}"),
            (None, Some(d)) => format!("entry {} detail {d}", self.entry_number),
            (None, None) => format!("entry {}", self.entry_number),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::{TextFields, Texts};

    #[test]
    fn texts_keep_absent_empty_and_present_apart_and_a_new_suggestion_keeps_the_rest() {
        let fields = TextFields {
            entry_ref: Some("E1"),
            servicer_ref: None,
            end_to_end_id: Some(""),
            tx_id: Some("T-ü"),
            uetr: None,
            counterparty_name: Some("Zoë"),
            counterparty_iban: Some("DE02120300000000202051"),
            remittance: "",
            extracted_reference: None,
            suggestion: None,
        };
        let texts = Texts::new(fields);
        let expected = [
            Some("E1"),
            None,
            Some(""),
            Some("T-ü"),
            None,
            Some("Zoë"),
            Some("DE02120300000000202051"),
            Some(""),
            None,
            None,
        ];
        assert_eq!(std::array::from_fn(|i| texts.get(i)), expected);

        let mut row = crate::row::Row {
            texts,
            ..sample_row()
        };
        row.set_suggestion(Some("refund"));
        assert_eq!(row.suggestion(), Some("refund"));
        assert_eq!(row.counterparty_name(), Some("Zoë"));
        assert_eq!(row.servicer_ref(), None);
        assert_eq!(row.end_to_end_id(), Some(""));
        assert_eq!(row.remittance(), "");
        row.set_suggestion(None);
        assert_eq!(row.suggestion(), None);
        assert_eq!(row.tx_id(), Some("T-ü"));
    }

    pub(crate) fn sample_row() -> crate::row::Row {
        use crate::matching::Outcome;
        use crate::statement::{Direction, TxIdentity};
        crate::row::Row {
            outcome: Outcome::NoReference,
            amount: rust_decimal::Decimal::ONE,
            currency: "EUR".parse().unwrap(),
            direction: Direction::Credit,
            status_code: "BOOK".into(),
            reversal: false,
            booking_date: None,
            value_date: None,
            statement_file: "s.xml".into(),
            statement_id: None,
            account: None,
            entry_number: 1,
            detail_number: None,
            line_number: None,
            texts: Texts::default(),
            topup_id: None,
            expected_amount: None,
            difference: None,
            identity: TxIdentity::default(),
            cross_key: None,
        }
    }
}
