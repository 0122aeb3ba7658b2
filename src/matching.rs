//! Pure matching: a transaction, its reference candidates and what the store knows go in, one
//! outcome comes out. No database, files or clock here; the run's own memory (what it settled,
//! which transactions it saw) lives in [`Matcher`], so the order of calls is the order of the run.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;

use rust_decimal::Decimal;

use crate::ids::{SettlementReference, TopUpId};
use crate::reference::{Candidate, Strength};
use crate::statement::identity::{self, Evidence, EvidenceDigest};
use crate::statement::{CrossKey, Direction, Transaction, TxIdentity};
use crate::topup::{Status, TopUp};

/// What happened to one bank transaction. Every transaction read ends in exactly one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Outcome {
    Matched,
    NoReference,
    UnknownReference,
    AmbiguousReference,
    AmountMismatch,
    CurrencyMismatch,
    AlreadySettled,
    TopupCancelled,
    Reversal,
    Debit,
    NotBooked,
    AlreadyProcessed,
}

/// Which report file an outcome goes to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Category {
    Matched,
    Unmatched,
    Ignored,
}

impl Outcome {
    /// Every outcome, in report order.
    pub const ALL: [Outcome; 12] = [
        Outcome::Matched,
        Outcome::NoReference,
        Outcome::UnknownReference,
        Outcome::AmbiguousReference,
        Outcome::AmountMismatch,
        Outcome::CurrencyMismatch,
        Outcome::AlreadySettled,
        Outcome::TopupCancelled,
        Outcome::Reversal,
        Outcome::Debit,
        Outcome::NotBooked,
        Outcome::AlreadyProcessed,
    ];

    /// The name in reports and the database.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Matched => "MATCHED",
            Outcome::NoReference => "NO_REFERENCE",
            Outcome::UnknownReference => "UNKNOWN_REFERENCE",
            Outcome::AmbiguousReference => "AMBIGUOUS_REFERENCE",
            Outcome::AmountMismatch => "AMOUNT_MISMATCH",
            Outcome::CurrencyMismatch => "CURRENCY_MISMATCH",
            Outcome::AlreadySettled => "ALREADY_SETTLED",
            Outcome::TopupCancelled => "TOPUP_CANCELLED",
            Outcome::Reversal => "REVERSAL",
            Outcome::Debit => "DEBIT",
            Outcome::NotBooked => "NOT_BOOKED",
            Outcome::AlreadyProcessed => "ALREADY_PROCESSED",
        }
    }

    /// Parses the name used in reports and the database.
    pub fn from_name(name: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == name)
    }

    /// Matched, needing a human (unmatched), or nothing to do (ignored).
    pub fn category(&self) -> Category {
        match self {
            Outcome::Matched => Category::Matched,
            Outcome::Debit | Outcome::NotBooked | Outcome::AlreadyProcessed => Category::Ignored,
            _ => Category::Unmatched,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A top-up as the store knows it before this run, with how it was settled if it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownTopUp {
    pub topup: TopUp,
    /// A description of the transaction that settled it in an earlier run.
    pub settled_by: Option<String>,
}

/// What the store knows that matters for a batch of transactions.
#[derive(Clone, Debug, Default)]
pub struct Known {
    /// Top-ups whose reference appears among the candidates.
    pub topups: HashMap<SettlementReference, KnownTopUp>,
    /// Transactions processed by earlier runs, among the batch's identities.
    pub processed: HashSet<TxIdentity>,
    /// Transactions of earlier runs read from another family of formats, among the batch's
    /// cross-format keys.
    pub originals: HashMap<CrossKey, Vec<Original>>,
}

/// A transaction of an earlier run as a later copy in another format is compared with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Original {
    /// The family of its file's format ([`crate::statement::family`]).
    pub family: String,
    /// Our account, as its file stated it.
    pub account: Option<String>,
    pub evidence: EvidenceDigest,
    /// How a person finds it: file, place, run.
    pub description: String,
}

/// Who settled a top-up before a payment that came too late.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EarlierSettlement {
    /// An earlier run: the store's description of that transaction.
    Stored(String),
    /// Earlier in this run: the transaction's identity.
    ThisRun(TxIdentity),
    /// Settled, but the store has no transaction for it (e.g. imported as settled).
    Unknown,
}

/// The outcome of one transaction and what it was measured against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    /// The reference that decided it (the known one; for unknown references the best candidate).
    pub reference: Option<SettlementReference>,
    /// Every known reference when the remittance names several.
    pub other_references: Vec<SettlementReference>,
    /// The top-up as it was before this transaction.
    pub topup: Option<TopUp>,
    /// For payments of a settled top-up: who settled it.
    pub earlier: Option<EarlierSettlement>,
    /// For a copy of a transaction delivered before in another format: that transaction.
    pub copy_of: Option<String>,
}

impl Decision {
    fn bare(outcome: Outcome) -> Self {
        Decision {
            outcome,
            reference: None,
            other_references: Vec::new(),
            topup: None,
            earlier: None,
            copy_of: None,
        }
    }

    /// The note on a copy of a transaction delivered before in another format.
    pub fn copy_note(&self) -> Option<String> {
        let original = self.copy_of.as_ref()?;
        Some(format!(
            "probably the same bank transaction as {original}, delivered again in another \
             format: counted once, there; nothing to do"
        ))
    }

    /// The top-up's amount when it differs from what was paid, or when a top-up was found.
    pub fn expected_amount(&self) -> Option<Decimal> {
        self.topup.as_ref().map(|t| t.cash_amount)
    }

    /// Paid minus expected, when both are in the same currency.
    pub fn difference(&self, tx: &Transaction) -> Option<Decimal> {
        let topup = self.topup.as_ref()?;
        (topup.currency == tx.currency).then(|| tx.amount - topup.cash_amount)
    }
}

/// Decides outcomes in the order it is called and remembers what this run already did.
///
/// A night's identities are most of what it remembers (32 bytes each, a million of them), so
/// each is kept once, in `claimed`, and the set and the map hold its place there.
#[derive(Default)]
pub struct Matcher {
    /// Every identity claimed so far, in order (a forgotten one stays, unreferenced).
    claimed: Vec<TxIdentity>,
    /// The places in `claimed` of the identities this run holds, by identity.
    seen: hashbrown::HashTable<u32>,
    /// Keyed by default: the identities hash bank text, which is not ours to trust.
    hasher: std::hash::RandomState,
    /// The top-ups this run settled, with the place of the settling transaction's identity.
    settled: HashMap<TopUpId, u32>,
    /// The run's transactions that a later copy in another format may repeat.
    copies: Copies,
}

impl Matcher {
    /// A matcher for a new run.
    pub fn new() -> Self {
        Matcher::default()
    }

    /// A matcher that keeps what it needs to recognise a transaction that a later file of the
    /// run repeats in another format: for runs that read more than one family of formats
    /// (about 60 bytes a transaction).
    pub fn across_formats() -> Self {
        Matcher {
            copies: Copies {
                keep: true,
                ..Copies::default()
            },
            ..Matcher::default()
        }
    }

    /// The next transactions decided come from this file, of this family of formats (`None`:
    /// unknown, and its transactions are not compared across formats).
    pub fn start_file(&mut self, name: Arc<str>, family: Option<&str>) {
        self.copies.files.push((name, family.map(Arc::from)));
    }

    /// Forgets what the file being decided left for its copies (its file was rejected).
    pub fn forget_file(&mut self) {
        self.copies.forget_file();
    }

    /// Forgets one decision, as if its transaction had never been seen (its file was rejected
    /// after it was decided): its identity, and the outcome and top-up it was given.
    pub fn forget(&mut self, identity: TxIdentity, outcome: Outcome, topup: Option<TopUpId>) {
        // Only these outcomes claimed the identity; an earlier transaction holds it otherwise.
        if !matches!(outcome, Outcome::NotBooked | Outcome::AlreadyProcessed) {
            let claimed = &self.claimed;
            let hash = self.hasher.hash_one(identity);
            if let Ok(entry) = self
                .seen
                .find_entry(hash, |&at| claimed[at as usize] == identity)
            {
                entry.remove();
            }
        }
        if let (Outcome::Matched, Some(topup)) = (outcome, topup) {
            self.settled.remove(&topup);
        }
    }

    /// The outcome of the next transaction of the run.
    pub fn decide(
        &mut self,
        tx: &Transaction,
        candidates: &[Candidate],
        known: &Known,
    ) -> Decision {
        if !tx.booked {
            // Pending entries claim no identity: the same payment will come again, booked.
            return Decision::bare(Outcome::NotBooked);
        }
        if known.processed.contains(&tx.identity) {
            return Decision::bare(Outcome::AlreadyProcessed);
        }
        let mut evidence = EvidenceOf::new(tx);
        let with_reference = !candidates.is_empty();
        if let Some(original) = self.copy_of(tx, with_reference, &mut evidence, known) {
            return Decision {
                copy_of: Some(original),
                ..Decision::bare(Outcome::AlreadyProcessed)
            };
        }
        let Some(claim) = self.claim(tx.identity) else {
            return Decision::bare(Outcome::AlreadyProcessed);
        };
        if let Some(key) = tx.cross_key {
            self.copies.keep(key, tx, &mut evidence);
        }
        if tx.reversal {
            return Decision::bare(Outcome::Reversal);
        }
        if tx.direction == Direction::Debit {
            return Decision::bare(Outcome::Debit);
        }
        let known_refs: Vec<&KnownTopUp> = candidates
            .iter()
            .filter_map(|c| known.topups.get(&c.reference))
            .collect();
        let Some(found) = known_refs.first() else {
            return match candidates.iter().find(|c| c.strength > Strength::Weak) {
                Some(best) => Decision {
                    reference: Some(best.reference),
                    ..Decision::bare(Outcome::UnknownReference)
                },
                None => Decision::bare(Outcome::NoReference),
            };
        };
        let decision = Decision {
            reference: Some(found.topup.settlement_reference),
            topup: Some(found.topup.clone()),
            ..Decision::bare(Outcome::Matched)
        };
        if known_refs.len() > 1 {
            // No single top-up is meant: name none, so nothing is expected or compared.
            return Decision {
                outcome: Outcome::AmbiguousReference,
                topup: None,
                other_references: known_refs
                    .iter()
                    .map(|k| k.topup.settlement_reference)
                    .collect(),
                ..decision
            };
        }
        self.settle_or_explain(tx, claim, found, decision)
    }

    /// The transaction that `tx` repeats in another format, earlier in this run or in an
    /// earlier run, described; `None` when there is none (or `tx` is from the same family of
    /// formats: two files of one format carry a transaction alike, so the identity decides).
    fn copy_of(
        &self,
        tx: &Transaction,
        with_reference: bool,
        evidence: &mut EvidenceOf,
        known: &Known,
    ) -> Option<String> {
        let key = tx.cross_key?;
        let (_, Some(family)) = self.copies.files.last()? else {
            return None;
        };
        let account = tx.account.as_deref();
        let stored = known.originals.get(&key).into_iter().flatten();
        for original in stored.filter(|o| *o.family != **family) {
            let theirs = (original.account.as_deref(), &original.evidence);
            if identity::same_transaction(with_reference, theirs, (account, evidence.get())) {
                return Some(original.description.clone());
            }
        }
        self.copies.this_run(
            key,
            family,
            with_reference,
            (account, evidence.get_if(self.copies.keep)?),
        )
    }

    /// Claims `identity` for this run; returns its place, or `None` when it was claimed before.
    fn claim(&mut self, identity: TxIdentity) -> Option<u32> {
        // A run would run out of memory long before four billion transactions.
        let at = u32::try_from(self.claimed.len()).expect("fewer than 2^32 transactions");
        let (claimed, hasher) = (&self.claimed, &self.hasher);
        match self.seen.entry(
            hasher.hash_one(identity),
            |&other| claimed[other as usize] == identity,
            |&other| hasher.hash_one(claimed[other as usize]),
        ) {
            hashbrown::hash_table::Entry::Occupied(_) => None,
            hashbrown::hash_table::Entry::Vacant(place) => {
                place.insert(at);
                self.claimed.push(identity);
                Some(at)
            }
        }
    }

    fn settle_or_explain(
        &mut self,
        tx: &Transaction,
        claim: u32,
        found: &KnownTopUp,
        decision: Decision,
    ) -> Decision {
        let topup = &found.topup;
        let earlier = match (topup.status, self.settled.get(&topup.id)) {
            (_, Some(&at)) => Some(EarlierSettlement::ThisRun(self.claimed[at as usize])),
            (Status::Settled, None) => Some(
                found
                    .settled_by
                    .clone()
                    .map_or(EarlierSettlement::Unknown, EarlierSettlement::Stored),
            ),
            _ => None,
        };
        let outcome = if topup.status == Status::Cancelled {
            Outcome::TopupCancelled
        } else if earlier.is_some() {
            Outcome::AlreadySettled
        } else if topup.currency != tx.currency {
            Outcome::CurrencyMismatch
        } else if topup.cash_amount != tx.amount {
            Outcome::AmountMismatch
        } else {
            self.settled.insert(topup.id, claim);
            Outcome::Matched
        };
        Decision {
            outcome,
            earlier,
            ..decision
        }
    }
}

/// A transaction's [`EvidenceDigest`], made when first needed: most transactions of a night
/// never need it.
struct EvidenceOf<'t> {
    tx: &'t Transaction,
    digest: Option<EvidenceDigest>,
}

impl<'t> EvidenceOf<'t> {
    fn new(tx: &'t Transaction) -> Self {
        EvidenceOf { tx, digest: None }
    }

    fn get(&mut self) -> &EvidenceDigest {
        let tx = self.tx;
        self.digest.get_or_insert_with(|| {
            let text = tx.remittance.display();
            Evidence::of(tx, &text).digest()
        })
    }

    fn get_if(&mut self, wanted: bool) -> Option<&EvidenceDigest> {
        wanted.then(|| self.get())
    }
}

/// The run's own transactions that a copy in another format, later in the run, may repeat.
#[derive(Default)]
struct Copies {
    /// Whether to keep them: only a run that reads more than one family of formats can meet
    /// a copy of its own transactions.
    keep: bool,
    /// Each file decided so far, with its family of formats.
    files: Vec<(Arc<str>, Option<Arc<str>>)>,
    /// The accounts the run's files stated, each once.
    accounts: Vec<Arc<str>>,
    kept: Vec<Kept>,
    /// The place in `kept` of the newest transaction of each key; older ones follow `previous`.
    newest: hashbrown::HashTable<u32>,
    hasher: std::hash::RandomState,
}

/// One kept transaction, in a few numbers.
struct Kept {
    key: CrossKey,
    /// The place in `kept` of the previous transaction with the same key, or `u32::MAX`.
    previous: u32,
    file: u32,
    /// 1 + its place in `accounts`, or 0 when its file stated none.
    account: u32,
    evidence: EvidenceDigest,
    entry: u32,
    /// 0 when the entry has no details (or the file has no lines).
    detail: u32,
    line: u32,
}

const NONE: u32 = u32::MAX;

impl Copies {
    /// Keeps `tx`, of the file being decided, for a later copy to be compared with.
    fn keep(&mut self, key: CrossKey, tx: &Transaction, evidence: &mut EvidenceOf) {
        if !self.keep {
            return;
        }
        let Some(file) = self.files.len().checked_sub(1) else {
            return;
        };
        let account = match tx.account.as_deref() {
            None => 0,
            Some(account) => match self.accounts.iter().position(|a| **a == *account) {
                Some(at) => at + 1,
                None => {
                    self.accounts.push(Arc::from(account));
                    self.accounts.len()
                }
            },
        };
        let at = u32::try_from(self.kept.len()).expect("fewer than 2^32 transactions");
        let (kept, hasher) = (&self.kept, &self.hasher);
        let previous = match self.newest.entry(
            hasher.hash_one(key),
            |&other| kept[other as usize].key == key,
            |&other| hasher.hash_one(kept[other as usize].key),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut place) => {
                std::mem::replace(place.get_mut(), at)
            }
            hashbrown::hash_table::Entry::Vacant(place) => {
                place.insert(at);
                NONE
            }
        };
        self.kept.push(Kept {
            key,
            previous,
            file: file as u32,
            account: account as u32,
            evidence: *evidence.get(),
            entry: tx.position.entry,
            detail: tx.position.detail.unwrap_or(0),
            line: tx
                .position
                .line
                .map_or(0, |l| u32::try_from(l).unwrap_or(u32::MAX)),
        });
    }

    /// The first kept transaction of another family with this key that agrees, described.
    fn this_run(
        &self,
        key: CrossKey,
        family: &str,
        with_reference: bool,
        (account, evidence): (Option<&str>, &EvidenceDigest),
    ) -> Option<String> {
        let hash = self.hasher.hash_one(key);
        let mut at = *self
            .newest
            .find(hash, |&other| self.kept[other as usize].key == key)?;
        let mut found = None;
        // Newest first; the oldest that agrees is the one named.
        while at != NONE {
            let kept = &self.kept[at as usize];
            let (name, kept_family) = &self.files[kept.file as usize];
            let kept_account =
                (kept.account > 0).then(|| &*self.accounts[kept.account as usize - 1]);
            if kept_family.as_deref().is_some_and(|f| f != family)
                && identity::same_transaction(
                    with_reference,
                    (kept_account, &kept.evidence),
                    (account, evidence),
                )
            {
                found = Some(describe_place(
                    name,
                    kept.entry,
                    (kept.detail > 0).then_some(kept.detail),
                    (kept.line > 0).then_some(u64::from(kept.line)),
                ));
            }
            at = kept.previous;
        }
        found
    }

    /// Takes out what the last file kept.
    fn forget_file(&mut self) {
        let Some(file) = self.files.len().checked_sub(1) else {
            return;
        };
        while self.kept.last().is_some_and(|k| k.file as usize == file) {
            let gone = self.kept.pop().expect("a last one");
            let at = self.kept.len() as u32;
            let hash = self.hasher.hash_one(gone.key);
            if let Ok(mut place) = self.newest.find_entry(hash, |&other| other == at) {
                if gone.previous == NONE {
                    place.remove();
                } else {
                    *place.get_mut() = gone.previous;
                }
            }
        }
    }
}

/// Where a transaction is in its file, as a person opens it: the line of a line-based file
/// (CSV, MT940), else the entry and its detail.
pub fn describe_place(file: &str, entry: u32, detail: Option<u32>, line: Option<u64>) -> String {
    match (line, detail) {
        (Some(line), _) => format!("{file} line {line}"),
        (None, Some(detail)) => format!("{file} entry {entry} detail {detail}"),
        (None, None) => format!("{file} entry {entry}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::find_candidates;
    use crate::statement::{Transaction, identity};

    const REF_A: &str = "1ab4fef9-a097-4c6f-9345-647025d5fde6";
    const REF_B: &str = "0b7c4e8a-55a1-4c2e-8d7f-2a9e1c3b4d5f";

    fn tx(amount: &str, currency: &str, text: &str) -> Transaction {
        let mut txs = vec![Transaction::test_credit(amount, currency, text)];
        identity::assign(&mut txs);
        txs.pop().unwrap()
    }

    fn topup(reference: &str, amount: &str, status: Status) -> KnownTopUp {
        KnownTopUp {
            topup: TopUp {
                id: reference.parse().unwrap(),
                created_at: "2026-11-01T00:00:00Z".parse().unwrap(),
                account_group_id: REF_B.parse().unwrap(),
                cash_amount: amount.parse().unwrap(),
                currency: "EUR".parse().unwrap(),
                status,
                settlement_reference: reference.parse().unwrap(),
            },
            settled_by: None,
        }
    }

    fn known(topups: &[KnownTopUp]) -> Known {
        Known {
            topups: topups
                .iter()
                .map(|k| (k.topup.settlement_reference, k.clone()))
                .collect(),
            processed: HashSet::new(),
            originals: HashMap::new(),
        }
    }

    fn decide(matcher: &mut Matcher, t: &Transaction, known: &Known) -> Outcome {
        let candidates = find_candidates(t.remittance.search_fields().iter().map(AsRef::as_ref));
        matcher.decide(t, &candidates, known).outcome
    }

    #[test]
    fn exact_amount_and_currency_of_an_open_topup_matches_once() {
        let known = known(&[topup(REF_A, "200.00", Status::Confirmed)]);
        let mut m = Matcher::new();
        let payment = tx("200", "EUR", &format!("topup {REF_A}"));
        assert_eq!(decide(&mut m, &payment, &known), Outcome::Matched);
        let again = tx("200.00", "EUR", &format!("TOPUP {}", REF_A.to_uppercase()));
        assert_eq!(decide(&mut m, &again, &known), Outcome::AlreadySettled);
    }

    #[test]
    fn each_rule_gives_its_outcome() {
        let k = known(&[
            topup(REF_A, "200.00", Status::Confirmed),
            topup(REF_B, "10.00", Status::Cancelled),
        ]);
        let cases = [
            (
                tx("199.99", "EUR", &format!("topup {REF_A}")),
                Outcome::AmountMismatch,
            ),
            (
                tx("200.00", "USD", &format!("topup {REF_A}")),
                Outcome::CurrencyMismatch,
            ),
            (
                tx("10.00", "EUR", &format!("topup {REF_B}")),
                Outcome::TopupCancelled,
            ),
            (
                tx("10.00", "EUR", &format!("{REF_A} {REF_B}")),
                Outcome::AmbiguousReference,
            ),
            (
                tx("10.00", "EUR", "topup 9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"),
                Outcome::UnknownReference,
            ),
            (tx("10.00", "EUR", "birthday present"), Outcome::NoReference),
        ];
        for (t, expected) in cases {
            assert_eq!(
                decide(&mut Matcher::new(), &t, &k),
                expected,
                "{:?}",
                t.remittance
            );
        }
    }

    #[test]
    fn settled_topups_debits_reversals_and_pending_entries_are_never_settled() {
        let k = known(&[topup(REF_A, "200.00", Status::Settled)]);
        let paid = tx("200.00", "EUR", &format!("topup {REF_A}"));
        assert_eq!(
            decide(&mut Matcher::new(), &paid, &k),
            Outcome::AlreadySettled
        );
        let open = known(&[topup(REF_A, "200.00", Status::New)]);
        let debit = Transaction {
            direction: Direction::Debit,
            ..paid.clone()
        };
        assert_eq!(decide(&mut Matcher::new(), &debit, &open), Outcome::Debit);
        let reversal = Transaction {
            reversal: true,
            ..paid.clone()
        };
        assert_eq!(
            decide(&mut Matcher::new(), &reversal, &open),
            Outcome::Reversal
        );
        let pending = Transaction {
            booked: false,
            ..paid.clone()
        };
        assert_eq!(
            decide(&mut Matcher::new(), &pending, &open),
            Outcome::NotBooked
        );
    }

    #[test]
    fn a_transaction_seen_before_is_already_processed_and_pending_ones_claim_nothing() {
        let open = known(&[topup(REF_A, "200.00", Status::Confirmed)]);
        let paid = tx("200.00", "EUR", &format!("topup {REF_A}"));
        let mut processed = open.clone();
        processed.processed.insert(paid.identity);
        assert_eq!(
            decide(&mut Matcher::new(), &paid, &processed),
            Outcome::AlreadyProcessed
        );
        let mut m = Matcher::new();
        let pending = Transaction {
            booked: false,
            ..paid.clone()
        };
        assert_eq!(decide(&mut m, &pending, &open), Outcome::NotBooked);
        assert_eq!(decide(&mut m, &paid, &open), Outcome::Matched);
        assert_eq!(decide(&mut m, &paid, &open), Outcome::AlreadyProcessed);
    }

    #[test]
    fn a_forgotten_decision_is_undone_and_nothing_else() {
        let k = known(&[
            topup(REF_A, "200.00", Status::Confirmed),
            topup(REF_B, "50.00", Status::Confirmed),
        ]);
        let first = tx("200.00", "EUR", &format!("topup {REF_A}"));
        let second = tx("50.00", "EUR", &format!("topup {REF_B}"));
        let mut m = Matcher::new();
        assert_eq!(decide(&mut m, &first, &k), Outcome::Matched);
        let again = tx("200.00", "EUR", &format!("topup {REF_A}"));
        let settled_b = REF_B.parse().unwrap();
        // A rejected file: the second payment, and the first one repeated in it.
        assert_eq!(decide(&mut m, &second, &k), Outcome::Matched);
        assert_eq!(decide(&mut m, &again, &k), Outcome::AlreadyProcessed);
        m.forget(again.identity, Outcome::AlreadyProcessed, None);
        m.forget(second.identity, Outcome::Matched, Some(settled_b));
        // The rejected file's payment was never seen: it settles when it comes again.
        assert_eq!(decide(&mut m, &second, &k), Outcome::Matched);
        // What was decided before stays decided.
        assert_eq!(decide(&mut m, &first, &k), Outcome::AlreadyProcessed);
        let paid_again = tx("200", "EUR", &format!("again {REF_A}"));
        assert_eq!(decide(&mut m, &paid_again, &k), Outcome::AlreadySettled);
    }

    #[test]
    fn a_topup_paid_twice_in_one_run_names_the_payment_that_settled_it() {
        let k = known(&[
            topup(REF_A, "200.00", Status::Confirmed),
            topup(REF_B, "50.00", Status::Confirmed),
        ]);
        let other = tx("50.00", "EUR", &format!("topup {REF_B}"));
        let first = tx("200.00", "EUR", &format!("topup {REF_A}"));
        let rejected = tx("1.00", "EUR", "pending refund");
        let again = tx("200.00", "EUR", &format!("paid twice {REF_A}"));
        let mut m = Matcher::new();
        assert_eq!(decide(&mut m, &other, &k), Outcome::Matched);
        assert_eq!(decide(&mut m, &first, &k), Outcome::Matched);
        // A transaction claimed and forgotten between them changes nothing.
        assert_eq!(decide(&mut m, &rejected, &k), Outcome::NoReference);
        m.forget(rejected.identity, Outcome::NoReference, None);
        let candidates =
            find_candidates(again.remittance.search_fields().iter().map(AsRef::as_ref));
        let twice = m.decide(&again, &candidates, &k);
        assert_eq!(twice.outcome, Outcome::AlreadySettled);
        assert_eq!(
            twice.earlier,
            Some(EarlierSettlement::ThisRun(first.identity))
        );
    }

    #[test]
    fn one_known_reference_wins_over_unknown_ones() {
        let k = known(&[topup(REF_A, "200.00", Status::Confirmed)]);
        let t = tx(
            "200.00",
            "EUR",
            &format!("order 9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f topup {REF_A}"),
        );
        assert_eq!(decide(&mut Matcher::new(), &t, &k), Outcome::Matched);
    }
    /// A payment of `text` booked on 2026-11-21 with its cross-format key, as the `n`-th
    /// transaction of a file that gives it `servicer_ref`.
    fn booked(amount: &str, text: &str, servicer_ref: &str) -> Transaction {
        let mut t = Transaction::test_credit(amount, "EUR", text);
        t.booking_date = chrono::NaiveDate::from_ymd_opt(2026, 11, 21);
        t.refs.servicer_ref = Some(servicer_ref.into());
        identity::assign(std::slice::from_mut(&mut t));
        let references = find_candidates([text]).into_iter().map(|c| c.reference);
        t.cross_key = identity::CrossAssigner::default().key(&t, references);
        t
    }

    fn decided(matcher: &mut Matcher, t: &Transaction, known: &Known) -> Decision {
        let candidates = find_candidates(t.remittance.search_fields().iter().map(AsRef::as_ref));
        matcher.decide(t, &candidates, known)
    }

    #[test]
    fn a_copy_in_another_format_later_in_the_run_is_already_processed_and_names_the_first() {
        let k = known(&[topup(REF_A, "200.00", Status::Confirmed)]);
        let text = format!("topup {REF_A}");
        let mut m = Matcher::across_formats();
        m.start_file("night.xml".into(), Some("camt"));
        assert_eq!(
            decided(&mut m, &booked("200.00", &text, "B-1"), &k).outcome,
            Outcome::Matched
        );
        m.start_file("night.csv".into(), Some("csv (recon)"));
        let mut copy = booked("200", &text.to_uppercase(), "B-1");
        copy.account = None;
        let decision = decided(&mut m, &copy, &k);
        assert_eq!(decision.outcome, Outcome::AlreadyProcessed);
        assert_eq!(decision.copy_of.as_deref(), Some("night.xml entry 1"));
        assert!(
            decision
                .copy_note()
                .unwrap()
                .starts_with("probably the same bank transaction as night.xml entry 1")
        );
        // A second file of the first one's format: a real second payment.
        m.start_file("other.xml".into(), Some("camt"));
        let again = booked("200.00", &text, "B-2");
        assert_eq!(decided(&mut m, &again, &k).outcome, Outcome::AlreadySettled);
    }

    #[test]
    fn without_room_for_copies_or_a_known_family_nothing_is_taken_for_a_copy() {
        let k = known(&[topup(REF_A, "200.00", Status::Confirmed)]);
        let text = format!("topup {REF_A}");
        for (mut m, family) in [
            (Matcher::new(), Some("csv (recon)")),
            (Matcher::across_formats(), None),
        ] {
            m.start_file("night.xml".into(), Some("camt"));
            assert_eq!(
                decided(&mut m, &booked("200.00", &text, "B-1"), &k).outcome,
                Outcome::Matched
            );
            m.start_file("night.csv".into(), family);
            let copy = booked("200.00", &text, "B-2");
            assert_eq!(decided(&mut m, &copy, &k).outcome, Outcome::AlreadySettled);
        }
    }

    #[test]
    fn a_copy_of_an_earlier_runs_transaction_in_another_format_is_already_processed() {
        let mut k = known(&[topup(REF_A, "200.00", Status::Settled)]);
        let text = format!("topup {REF_A}");
        let copy = booked("200.00", &text, "B-1");
        let original = |family: &str| Original {
            family: family.to_string(),
            account: Some("37040044/0532013000".to_string()),
            evidence: identity::Evidence::of(&copy, "").digest(),
            description: "night.sta line 5 (run R)".to_string(),
        };
        k.originals.insert(
            copy.cross_key.unwrap(),
            vec![original("camt"), original("mt940")],
        );
        let mut m = Matcher::new();
        m.start_file("night.xml".into(), Some("camt"));
        let decision = decided(&mut m, &copy, &k);
        assert_eq!(decision.outcome, Outcome::AlreadyProcessed);
        assert_eq!(
            decision.copy_of.as_deref(),
            Some("night.sta line 5 (run R)")
        );
    }

    #[test]
    fn a_rejected_files_transactions_are_no_originals_afterwards() {
        let k = known(&[topup(REF_A, "200.00", Status::Confirmed)]);
        let text = format!("topup {REF_A}");
        let mut m = Matcher::across_formats();
        m.start_file("bad.csv".into(), Some("csv (recon)"));
        let first = booked("200.00", &text, "B-9");
        let decision = decided(&mut m, &first, &k);
        assert_eq!(decision.outcome, Outcome::Matched);
        m.forget_file();
        m.forget(
            first.identity,
            Outcome::Matched,
            decision.topup.map(|t| t.id),
        );
        m.start_file("night.xml".into(), Some("camt"));
        assert_eq!(
            decided(&mut m, &booked("200.00", &text, "B-1"), &k).outcome,
            Outcome::Matched
        );
    }
}
