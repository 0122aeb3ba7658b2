//! What a person should do about an exception: one sentence per unmatched transaction.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::matching::{Decision, EarlierSettlement, Outcome};
use crate::money::format_amount;
use crate::row::Row;
use crate::statement::TxIdentity;
use crate::topup::TopUp;

/// An open top-up a payment without a reference may have meant, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Likely {
    pub topup: TopUp,
    /// The payer paid earlier top-ups of this account group.
    pub same_payer: bool,
    pub same_amount: bool,
}

/// What the store found that helps a person with an exception.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hints {
    /// For an unknown reference: the open top-up with the nearest reference, and the edits.
    pub nearest: Option<(TopUp, usize)>,
    /// For a payment without reference: open top-ups it may be for, best first.
    pub likely: Vec<Likely>,
}

/// Each asked-about payer's newest matched payments, at most `window` of them, fed forwards
/// through a run's matched payments: a suggestion names the account groups a payer paid
/// before, newest first.
pub struct PayerWindows<'p, T> {
    payers: &'p HashSet<String>,
    window: usize,
    newest: HashMap<&'p str, VecDeque<T>>,
}

impl<'p, T> PayerWindows<'p, T> {
    /// Windows for the IBANs in `payers`, each keeping the newest `window` payments.
    pub fn new(payers: &'p HashSet<String>, window: usize) -> Self {
        PayerWindows {
            payers,
            window,
            newest: HashMap::new(),
        }
    }

    /// The next matched payment, `iban` paying `topup`; ignored unless the payer was asked about.
    pub fn add(&mut self, iban: &str, topup: T) {
        let Some(iban) = self.payers.get(iban) else {
            return;
        };
        let payments = self.newest.entry(iban.as_str()).or_default();
        if payments.len() == self.window {
            payments.pop_front();
        }
        payments.push_back(topup);
    }

    /// Each payer that paid, with its payments newest first.
    pub fn newest_first(self) -> impl Iterator<Item = (&'p str, Vec<T>)> {
        self.newest
            .into_iter()
            .map(|(iban, payments)| (iban, payments.into_iter().rev().collect()))
    }
}

/// The suggestion for a decided transaction's row; `this_run` names transactions settled
/// earlier in the same run by identity.
pub fn suggest(
    row: &Row,
    decision: &Decision,
    hints: &Hints,
    this_run: &HashMap<TxIdentity, String>,
) -> Option<String> {
    let paid = Paid::of(row);
    let text = match decision.outcome {
        Outcome::Matched | Outcome::Debit | Outcome::NotBooked | Outcome::AlreadyProcessed => {
            return None;
        }
        Outcome::NoReference => no_reference(&hints.likely),
        Outcome::UnknownReference => unknown_reference(decision, hints, &paid),
        Outcome::AmbiguousReference => {
            let refs: Vec<String> = decision
                .other_references
                .iter()
                .map(|r| r.to_string())
                .collect();
            format!(
                "the remittance names several top-ups ({}): ask the payer which one was meant",
                refs.join(", ")
            )
        }
        Outcome::AmountMismatch => amount_mismatch(row, decision.topup.as_ref()?, &paid)?,
        Outcome::CurrencyMismatch => {
            let topup = decision.topup.as_ref()?;
            format!(
                "paid in {}, the top-up expects {} {}: return {}{} or convert by hand",
                row.currency,
                topup.cash_amount_text(),
                topup.currency,
                paid.amount,
                paid.to_payer
            )
        }
        Outcome::AlreadySettled => already_settled(decision, this_run, &paid),
        Outcome::TopupCancelled => {
            format!(
                "the top-up was cancelled: refund {}{}",
                paid.amount, paid.to_payer
            )
        }
        Outcome::Reversal => "the bank reversed an earlier payment: check whether that payment \
                              settled a top-up and correct it by hand"
            .to_string(),
    };
    Some(text)
}

/// The note on an outgoing payment that carries the end-to-end id of a return recon
/// initiated (`RECON-RET-<n>`): the run closes that return with it when the amount and
/// currency are the return's.
pub fn return_note(outcome: Outcome, end_to_end_id: Option<&str>) -> Option<String> {
    let id = end_to_end_id.filter(|id| id.starts_with(crate::ids::RETURN_PREFIX))?;
    (outcome == Outcome::Debit).then(|| {
        format!(
            "the outgoing payment of recon's return {id}: it closes that return (DONE) when its              amount and currency are the return's; see recon returns list"
        )
    })
}

/// What was paid (`300.50 EUR`) and to whom money would go back (` to DE…`, or nothing).
struct Paid {
    amount: String,
    to_payer: String,
}

impl Paid {
    fn of(row: &Row) -> Paid {
        Paid {
            amount: format!(
                "{} {}",
                format_amount(row.amount, row.currency),
                row.currency
            ),
            to_payer: row
                .counterparty_iban()
                .map(|iban| format!(" to {iban}"))
                .unwrap_or_default(),
        }
    }
}

/// A payment without a reference: the open top-ups it may be for, or what to do without one.
fn no_reference(likely: &[Likely]) -> String {
    if likely.is_empty() {
        return "no top-up reference in the remittance and no open top-up of this amount: \
                contact the payer, or return the money"
            .to_string();
    }
    let list: Vec<String> = likely
        .iter()
        .map(|l| {
            let why = match (l.same_payer, l.same_amount) {
                (true, true) => "same payer and amount",
                (false, true) => "same amount",
                _ => "same payer",
            };
            format!(
                "{} ({} {}, {why})",
                l.topup.id,
                l.topup.cash_amount_text(),
                l.topup.currency
            )
        })
        .collect();
    format!(
        "no reference; possibly top-up {}: confirm with the payer and settle by hand",
        list.join(" or ")
    )
}

/// A reference no top-up has: the nearest open one, or a typo to look for.
fn unknown_reference(decision: &Decision, hints: &Hints, paid: &Paid) -> String {
    let Paid { amount, to_payer } = paid;
    match &hints.nearest {
        Some((topup, edits)) => format!(
            "did you mean top-up {} (reference {}, {} {}, {edits} edit(s) away)? If so, \
             settle it by hand; otherwise return {amount}{to_payer}",
            topup.id,
            topup.settlement_reference,
            topup.cash_amount_text(),
            topup.currency
        ),
        None => {
            let reference = decision
                .reference
                .map(|r| r.to_string())
                .unwrap_or_default();
            format!(
                "no top-up has reference {reference}: check it for a typo, or return \
                 {amount}{to_payer}"
            )
        }
    }
}

/// Too little or too much for the top-up: ask for the rest, or settle and return the rest.
fn amount_mismatch(row: &Row, topup: &TopUp, paid: &Paid) -> Option<String> {
    let expected = format_amount(topup.cash_amount, topup.currency);
    let diff = row.difference?;
    let diff_text = format_amount(diff.abs(), row.currency);
    let Paid { amount, to_payer } = paid;
    Some(if diff.is_sign_negative() {
        format!(
            "underpaid by {diff_text} {} (expected {expected}): ask the payer for the rest \
             or return {amount}{to_payer}",
            row.currency
        )
    } else {
        format!(
            "overpaid by {diff_text} {} (expected {expected}): settle by hand and return \
             the difference{to_payer}",
            row.currency
        )
    })
}

/// Paid twice: refund, naming what settled the top-up first.
fn already_settled(
    decision: &Decision,
    this_run: &HashMap<TxIdentity, String>,
    paid: &Paid,
) -> String {
    let earlier = match &decision.earlier {
        Some(EarlierSettlement::Stored(desc)) => format!("settled before by {desc}"),
        Some(EarlierSettlement::ThisRun(identity)) => match this_run.get(identity) {
            Some(desc) => format!("settled earlier in this run by {desc}"),
            None => "settled earlier in this run".to_string(),
        },
        Some(EarlierSettlement::Unknown) | None => "settled before".to_string(),
    };
    format!(
        "paid twice: refund {}{}; the top-up was {earlier}",
        paid.amount, paid.to_payer
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payers_window_keeps_its_newest_payments_newest_first_and_only_for_payers_asked_about() {
        let payers: HashSet<String> = ["DE01".to_string()].into();
        let mut windows = PayerWindows::new(&payers, 2);
        for (iban, topup) in [("DE01", 1), ("DE02", 2), ("DE01", 3), ("DE01", 4)] {
            windows.add(iban, topup);
        }
        let found: Vec<_> = windows.newest_first().collect();
        assert_eq!(found, vec![("DE01", vec![4, 3])]);
    }
}
