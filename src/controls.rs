//! Statement controls: does a statement add up (opening + credits - debits = closing, its own
//! `TxsSummry`), and does it continue the account's previous statement (balance and sequence
//! number)? Pure: the chain's previous point is handed in.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::money::format_amount;
use crate::statement::StatementInfo;

/// The result of one check on one statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Control {
    pub file: String,
    pub statement: Option<String>,
    pub account: Option<String>,
    /// `balance`, `entry_count`, `entry_sum`, `credit_count`, `credit_sum`, `debit_count`,
    /// `debit_sum`, `chain_balance` or `chain_sequence`.
    pub check: String,
    pub ok: bool,
    pub expected: String,
    pub actual: String,
    pub message: String,
}

/// Where an account's chain of statements stood after its last statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainPoint {
    pub statement: Option<String>,
    pub closing: Option<Decimal>,
    pub sequence: Option<u64>,
}

/// One check's result on a statement of a file.
fn result(
    file: &str,
    info: &StatementInfo,
    check: &str,
    ok: bool,
    expected: String,
    actual: String,
    message: String,
) -> Control {
    Control {
        file: file.to_string(),
        statement: info.id.clone(),
        account: info.account.clone(),
        check: check.to_string(),
        ok,
        expected,
        actual,
        message,
    }
}

/// The checks a statement supports on its own.
pub fn check_statement(file: &str, info: &StatementInfo) -> Vec<Control> {
    let mut out = Vec::new();
    let control = |check: &str, ok, expected: String, actual: String, message: String| {
        result(file, info, check, ok, expected, actual, message)
    };
    let t = &info.totals;
    if let (Some(open), Some(close)) = (&info.opening, &info.closing)
        && open.currency == close.currency
    {
        let computed = open.amount + t.booked_credits_sum - t.booked_debits_sum;
        let ok = computed == close.amount;
        let cur = open.currency;
        out.push(control(
            "balance",
            ok,
            format_amount(close.amount, cur),
            format_amount(computed, cur),
            if ok {
                "opening + booked credits - booked debits = closing".to_string()
            } else {
                format!(
                    "opening {} + credits {} - debits {} = {}, but the statement closes at {} {cur}: \
                     entries are missing or the balances are wrong; ask the bank",
                    format_amount(open.amount, cur),
                    format_amount(t.booked_credits_sum, cur),
                    format_amount(t.booked_debits_sum, cur),
                    format_amount(computed, cur),
                    format_amount(close.amount, cur),
                )
            },
        ));
    }
    let s = &info.stated;
    let count = |n: Option<u64>| n.map(Decimal::from);
    let checks = [
        ("entry_count", count(s.entries), Decimal::from(t.entries)),
        (
            "credit_count",
            count(s.credits),
            Decimal::from(t.booked_credits),
        ),
        (
            "debit_count",
            count(s.debits),
            Decimal::from(t.booked_debits),
        ),
        ("entry_sum", s.entries_sum, t.entries_sum),
        ("credit_sum", s.credits_sum, t.booked_credits_sum),
        ("debit_sum", s.debits_sum, t.booked_debits_sum),
    ];
    for (check, stated, read) in checks {
        if let Some(stated) = stated {
            let ok = stated == read;
            out.push(control(
                check,
                ok,
                stated.to_string(),
                read.to_string(),
                if ok {
                    "the statement's summary matches its entries".to_string()
                } else {
                    format!("the statement says {stated} but its entries come to {read}")
                },
            ));
        }
    }
    out
}

/// The checks against the account's previous statement; `None` when there is none.
pub fn check_chain(
    file: &str,
    info: &StatementInfo,
    previous: Option<&ChainPoint>,
) -> Vec<Control> {
    let Some(previous) = previous else {
        return Vec::new();
    };
    let sequence = info
        .electronic_sequence
        .as_deref()
        .and_then(|s| s.trim().parse::<u64>().ok());
    if let (Some(now), Some(before)) = (sequence, previous.sequence)
        && now <= before
    {
        // A statement read before (a re-sent file): nothing to chain.
        return Vec::new();
    }
    let control = |check: &str, ok, expected: String, actual: String, message: String| {
        result(file, info, check, ok, expected, actual, message)
    };
    let after = previous
        .statement
        .as_deref()
        .unwrap_or("the previous statement");
    let mut out = Vec::new();
    if let (Some(now), Some(before)) = (sequence, previous.sequence) {
        let ok = now == before + 1;
        out.push(control(
            "chain_sequence",
            ok,
            (before + 1).to_string(),
            now.to_string(),
            if ok {
                format!("follows {after}")
            } else {
                format!(
                    "statements {} to {} of this account are missing after {after}; ask the bank",
                    before + 1,
                    now - 1
                )
            },
        ));
    }
    if let (Some(open), Some(before)) = (&info.opening, previous.closing) {
        let ok = open.amount == before;
        let cur = open.currency;
        out.push(control(
            "chain_balance",
            ok,
            format_amount(before, cur),
            format_amount(open.amount, cur),
            if ok {
                format!("opens where {after} closed")
            } else {
                format!(
                    "opens at {} {cur} but {after} closed at {} {cur}: a statement is missing",
                    format_amount(open.amount, cur),
                    format_amount(before, cur)
                )
            },
        ));
    }
    out
}

/// The chains of the accounts a run has read statements of: where each stands after the
/// statements read so far, so that a run holding several days of one account chains them in
/// order. A statement read again (its sequence not past the chain's) leaves the chain alone.
#[derive(Debug, Default)]
pub struct Chains {
    points: std::collections::HashMap<String, ChainPoint>,
}

impl Chains {
    /// Where `account`'s chain stands after this run's statements, if the run read one.
    pub fn get(&self, account: &str) -> Option<&ChainPoint> {
        self.points.get(account)
    }

    /// Checks `info` against `previous` (this run's point for the account, else the stored
    /// one) and advances the account's chain past it.
    pub fn check(
        &mut self,
        file: &str,
        account: &str,
        info: &StatementInfo,
        previous: Option<ChainPoint>,
    ) -> Vec<Control> {
        let controls = check_chain(file, info, previous.as_ref());
        let next = chain_point(info);
        let advances = match (&previous, next.sequence) {
            (Some(p), Some(now)) => p.sequence.is_none_or(|before| now > before),
            _ => true,
        };
        if advances {
            self.points.insert(account.to_string(), next);
        }
        controls
    }
}

/// The chain point a statement leaves behind.
pub fn chain_point(info: &StatementInfo) -> ChainPoint {
    ChainPoint {
        statement: info.id.clone(),
        closing: info.closing.as_ref().map(|b| b.amount),
        sequence: info
            .electronic_sequence
            .as_deref()
            .and_then(|s| s.trim().parse().ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statement::{Balance, EntryTotals, StatedTotals};

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn statement(
        opening: &str,
        credits: &str,
        debits: &str,
        closing: &str,
        seq: &str,
    ) -> StatementInfo {
        let eur = "EUR".parse().unwrap();
        StatementInfo {
            id: Some(format!("S{seq}")),
            account: Some("DE89370400440532013000".into()),
            electronic_sequence: Some(seq.into()),
            opening: Some(Balance {
                amount: dec(opening),
                currency: eur,
                date: None,
            }),
            closing: Some(Balance {
                amount: dec(closing),
                currency: eur,
                date: None,
            }),
            totals: EntryTotals {
                entries: 2,
                entries_sum: dec(credits) + dec(debits),
                booked_credits: 1,
                booked_credits_sum: dec(credits),
                booked_debits: 1,
                booked_debits_sum: dec(debits),
            },
            stated: StatedTotals::default(),
            ..StatementInfo::default()
        }
    }

    #[test]
    fn balances_must_add_up() {
        let good = check_statement("f", &statement("100", "50", "30", "120", "1"));
        assert!(good.iter().all(|c| c.ok), "{good:?}");
        let bad = check_statement("f", &statement("100", "50", "30", "121", "1"));
        assert_eq!(bad[0].check, "balance");
        assert!(!bad[0].ok);
        assert!(
            bad[0]
                .message
                .contains("= 120.00, but the statement closes at 121.00 EUR"),
            "{}",
            bad[0].message
        );
    }

    #[test]
    fn the_statements_own_summary_is_checked() {
        let mut info = statement("100", "50", "30", "120", "1");
        info.stated = StatedTotals {
            entries: Some(3),
            credits_sum: Some(dec("50.00")),
            ..StatedTotals::default()
        };
        let results = check_statement("f", &info);
        let count = results.iter().find(|c| c.check == "entry_count").unwrap();
        assert!(!count.ok);
        assert!(results.iter().find(|c| c.check == "credit_sum").unwrap().ok);
    }

    #[test]
    fn the_chain_needs_the_next_number_and_the_previous_closing() {
        let first = statement("100", "50", "30", "120", "1");
        let point = chain_point(&first);
        let next = statement("120", "0", "0", "120", "2");
        assert!(check_chain("f", &next, Some(&point)).iter().all(|c| c.ok));
        let gap = statement("125", "0", "0", "125", "4");
        let results = check_chain("f", &gap, Some(&point));
        assert!(results.iter().all(|c| !c.ok), "{results:?}");
        assert!(
            results[0].message.contains("statements 2 to 3"),
            "{}",
            results[0].message
        );
        // The same statement again is not a chain break.
        assert!(check_chain("f", &first, Some(&point)).is_empty());
        assert!(check_chain("f", &first, None).is_empty());
    }
}
