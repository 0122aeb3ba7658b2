//! The identity of a bank transaction, for "never process the same money twice".
//!
//! Banks' own references are not enough: `AcctSvcrRef` repeats in some banks' files and
//! `EndToEndId` is often `NOTPROVIDED`. The identity is therefore a digest of everything that
//! describes the payment (account, amount, dates, references, counterparty, text) plus its
//! occurrence number among identical transactions in the same file. A re-sent or overlapping
//! statement gives the same identities; two real payments with identical content get
//! different occurrence numbers and stay apart.

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest, Sha256};

use super::Transaction;

/// SHA-256 of a transaction's content and occurrence number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TxIdentity(pub [u8; 32]);

impl fmt::Display for TxIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for TxIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TxIdentity({})", &hex::encode(&self.0[..8]))
    }
}

/// Sets the identity of every transaction of one file, in file order.
pub fn assign(transactions: &mut [Transaction]) {
    Assigner::default().assign(transactions);
}

/// Sets identities of one file's transactions as they are read, a batch at a time: the
/// occurrence numbers run on across batches, so they match [`assign`] over the whole file.
#[derive(Default)]
pub struct Assigner {
    /// How often each content was seen, by the first half of its SHA-256: a file of a million
    /// transactions holds a million of these, and 128 bits are as hard to collide on purpose
    /// (2^64 tries) as they are never to collide by chance.
    occurrences: HashMap<[u8; 16], u32>,
}

impl Assigner {
    /// Sets the identities of the file's next transactions, in file order.
    pub fn assign(&mut self, transactions: &mut [Transaction]) {
        for tx in transactions {
            let content = fingerprint(tx);
            let (half, _) = content.split_first_chunk::<16>().expect("32 bytes");
            let seen = self.occurrences.entry(*half).or_insert(0);
            let mut hasher = Sha256::new();
            hasher.update(content);
            hasher.update(seen.to_be_bytes());
            tx.identity = TxIdentity(hasher.finalize().into());
            *seen += 1;
        }
    }
}

/// Placeholders banks put where they have no reference; they identify nothing.
fn meaningful(value: &Option<String>) -> &str {
    match value.as_deref().map(str::trim) {
        Some(v) if !v.eq_ignore_ascii_case("NOTPROVIDED") && !v.eq_ignore_ascii_case("NONREF") => v,
        _ => "",
    }
}

fn fingerprint(tx: &Transaction) -> [u8; 32] {
    let mut hasher = Sha256::new();
    let mut field = |value: &str| {
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(value.as_bytes());
    };
    field(tx.account.as_deref().unwrap_or(""));
    field(tx.currency.as_str());
    field(tx.direction.code());
    field(&tx.amount.normalize().to_string());
    field(&tx.booking_date.map(|d| d.to_string()).unwrap_or_default());
    field(&tx.value_date.map(|d| d.to_string()).unwrap_or_default());
    field(if tx.reversal { "R" } else { "" });
    for reference in [
        &tx.refs.entry_ref,
        &tx.refs.entry_servicer_ref,
        &tx.refs.servicer_ref,
        &tx.refs.end_to_end_id,
        &tx.refs.tx_id,
        &tx.refs.instruction_id,
        &tx.refs.uetr,
    ] {
        field(meaningful(reference));
    }
    field(tx.counterparty.account.as_deref().unwrap_or(""));
    field(&crate::text::fold_whitespace(
        tx.counterparty.name.as_deref().unwrap_or(""),
    ));
    for text in tx.remittance.search_fields() {
        field(&crate::text::fold_whitespace(&text));
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(amount: &str, text: &str) -> Transaction {
        Transaction::test_credit(amount, "EUR", text)
    }

    #[test]
    fn identities_set_batch_by_batch_are_those_of_the_whole_file() {
        // Identical payments on both sides of a batch boundary keep counting on.
        let file: Vec<Transaction> = (0..7)
            .map(|i| payment(if i % 3 == 0 { "5.00" } else { "7.00" }, "gift"))
            .collect();
        let mut whole = file.clone();
        assign(&mut whole);
        let mut batched = file;
        let mut assigner = Assigner::default();
        let (first, rest) = batched.split_at_mut(4);
        assigner.assign(first);
        assigner.assign(rest);
        assert_eq!(batched, whole);
        let distinct: std::collections::HashSet<_> = whole.iter().map(|t| t.identity).collect();
        assert_eq!(distinct.len(), 7);
    }
}
