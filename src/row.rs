//! One transaction's outcome, flattened: what the ledger stores and every report shows.

use std::sync::Arc;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::ids::TopUpId;
use crate::matching::{Category, Decision, Outcome};
use crate::money::{Currency, format_amount};
use crate::statement::{Direction, Transaction, TxIdentity};

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
    pub entry_ref: Option<String>,
    pub servicer_ref: Option<String>,
    pub end_to_end_id: Option<String>,
    pub tx_id: Option<String>,
    pub uetr: Option<String>,
    pub counterparty_name: Option<String>,
    pub counterparty_iban: Option<String>,
    pub remittance: String,
    pub extracted_reference: Option<String>,
    pub topup_id: Option<TopUpId>,
    pub expected_amount: Option<Decimal>,
    pub difference: Option<Decimal>,
    pub suggestion: Option<String>,
    pub identity: TxIdentity,
}

impl Row {
    /// Flattens a transaction and its decision; `statement_file` is the path as given.
    pub fn new(
        tx: Transaction,
        decision: &Decision,
        statement_file: &Arc<str>,
        suggestion: Option<String>,
    ) -> Row {
        let difference = decision.difference(&tx);
        let entry_ref = tx.refs.entry_display().map(str::to_string);
        let servicer_ref = tx.refs.servicer_display().map(str::to_string);
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
            entry_ref,
            servicer_ref,
            end_to_end_id: tx.refs.end_to_end_id,
            tx_id: tx.refs.tx_id,
            uetr: tx.refs.uetr,
            counterparty_name: tx.counterparty.name,
            counterparty_iban: tx.counterparty.account,
            remittance: tx.remittance.display(),
            extracted_reference: decision.reference.map(|r| r.to_string()),
            topup_id: decision.topup.as_ref().map(|t| t.id),
            expected_amount: decision.expected_amount(),
            difference,
            suggestion,
            identity: tx.identity,
        }
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
