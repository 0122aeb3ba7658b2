//! The identity of a bank transaction, for "never process the same money twice".
//!
//! Banks' own references are not enough: `AcctSvcrRef` repeats in some banks' files and
//! `EndToEndId` is often `NOTPROVIDED`. The identity is therefore a digest of everything that
//! describes the payment (account, amount, dates, references, counterparty, text) plus its
//! occurrence number among identical transactions in the same file. A re-sent or overlapping
//! statement gives the same identities; two real payments with identical content get
//! different occurrence numbers and stay apart.
//!
//! A bank's camt, MT940 and CSV exports of the same night describe each transaction with
//! different fields, so the identity differs between them. The [`CrossKey`] is made only of
//! what every format carries, and [`Evidence`] says whether two transactions with the same key
//! agree on what both state: together they recognise one bank transaction delivered twice in
//! different formats (the README's Outcomes section defines it for users).

use std::collections::HashMap;
use std::fmt;

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use super::Transaction;
use crate::ids::SettlementReference;

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
    /// Where each transaction's numbers, dates and folded texts are written to be hashed.
    scratch: String,
}

impl Assigner {
    /// Sets the identities of the file's next transactions, in file order.
    pub fn assign(&mut self, transactions: &mut [Transaction]) {
        for tx in transactions {
            let content = fingerprint(tx, &mut self.scratch);
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

fn fingerprint(tx: &Transaction, scratch: &mut String) -> [u8; 32] {
    let mut fields = Fields::new(scratch);
    fields.text(tx.account.as_deref().unwrap_or(""));
    fields.text(tx.currency.as_str());
    fields.text(tx.direction.code());
    fields.amount(tx.amount);
    fields.date(tx.booking_date);
    fields.date(tx.value_date);
    fields.text(if tx.reversal { "R" } else { "" });
    for reference in [
        &tx.refs.entry_ref,
        &tx.refs.entry_servicer_ref,
        &tx.refs.servicer_ref,
        &tx.refs.end_to_end_id,
        &tx.refs.tx_id,
        &tx.refs.instruction_id,
        &tx.refs.uetr,
    ] {
        fields.text(meaningful(reference));
    }
    fields.text(tx.counterparty.account.as_deref().unwrap_or(""));
    fields.folded(tx.counterparty.name.as_deref().unwrap_or(""));
    for text in tx.remittance.search_fields() {
        fields.folded(&text);
    }
    fields.finish()
}

/// A SHA-256 of length-prefixed fields. Amounts, dates and folded texts are written into a
/// buffer kept from one transaction to the next, amounts and dates by hand: a new string and
/// the formatting machinery for each cost more than hashing it.
struct Fields<'s> {
    hasher: Sha256,
    scratch: &'s mut String,
}

impl<'s> Fields<'s> {
    fn new(scratch: &'s mut String) -> Self {
        Fields {
            hasher: Sha256::new(),
            scratch,
        }
    }

    fn text(&mut self, value: &str) {
        field(&mut self.hasher, value);
    }

    /// The scratch buffer as a field, once `write` has filled it.
    fn written(&mut self, write: impl FnOnce(&mut String)) {
        self.scratch.clear();
        write(self.scratch);
        field(&mut self.hasher, self.scratch);
    }

    /// The amount as `Display` writes it normalized: `200`, `0.5`, `-12.34`.
    fn amount(&mut self, amount: Decimal) {
        self.written(|out| push_amount(out, amount));
    }

    /// The date as `Display` writes it (`2026-11-21`), empty for none.
    fn date(&mut self, date: Option<NaiveDate>) {
        self.written(|out| {
            if let Some(date) = date {
                push_date(out, date);
            }
        });
    }

    /// The text with its whitespace folded ([`crate::text::fold_whitespace`]).
    fn folded(&mut self, text: &str) {
        self.written(|out| crate::text::push_folded(out, text));
    }

    fn finish(self) -> [u8; 32] {
        self.hasher.finalize().into()
    }
}

/// Hashes one field: its length, then its bytes.
fn field(hasher: &mut Sha256, value: &str) {
    hasher.update((value.len() as u64).to_be_bytes());
    hasher.update(value.as_bytes());
}

/// Appends `amount.normalize()` as `Display` writes it.
fn push_amount(out: &mut String, amount: Decimal) {
    let amount = amount.normalize();
    let Ok(mut rest) = u64::try_from(amount.mantissa().unsigned_abs()) else {
        // No bank amount has more digits than a u64 holds: the formatting machinery may.
        out.push_str(&amount.to_string());
        return;
    };
    // A u64 has at most 20 digits, and a decimal at most 28 after the point.
    let mut digits = [b'0'; 30];
    let mut start = digits.len();
    while rest > 0 || start == digits.len() {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let scale = amount.scale() as usize;
    // The zeros in front stand for `0.0...` when the digits are fewer than the decimals.
    let start = start.min(digits.len() - scale - 1);
    let (whole, fraction) = digits[start..].split_at(digits.len() - start - scale);
    if amount.is_sign_negative() {
        out.push('-');
    }
    push_ascii(out, whole);
    if scale > 0 {
        out.push('.');
        push_ascii(out, fraction);
    }
}

/// Appends `date` as `Display` writes it: `2026-11-21`.
fn push_date(out: &mut String, date: NaiveDate) {
    let year = date.year();
    let Ok(year @ 0..=9999) = u32::try_from(year) else {
        // Years without four digits are signed; no statement has one.
        out.push_str(&date.to_string());
        return;
    };
    let two = |n: u32| [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
    let [y1, y2] = two(year / 100);
    let [y3, y4] = two(year % 100);
    let [m1, m2] = two(date.month());
    let [d1, d2] = two(date.day());
    push_ascii(out, &[y1, y2, y3, y4, b'-', m1, m2, b'-', d1, d2]);
}

/// Appends ASCII digits and signs.
fn push_ascii(out: &mut String, bytes: &[u8]) {
    out.extend(bytes.iter().map(|&b| char::from(b)));
}

/// The cross-format identity of a booked transaction: a digest of its currency, direction,
/// amount, booking date and the settlement references its remittance names, plus its
/// occurrence number among the transactions of its file with the same content. 64 bits, the
/// booking day first: it only finds candidates, which must then agree on their [`Evidence`]
/// too.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CrossKey(pub i64);

/// Gives one file's transactions their cross-format keys, in file order.
#[derive(Default)]
pub struct CrossAssigner {
    occurrences: HashMap<[u8; 16], u32>,
    /// The transaction's references, sorted, and its amount and date as text: buffers kept
    /// from one transaction to the next.
    sorted: Vec<SettlementReference>,
    scratch: String,
}

impl CrossAssigner {
    /// The key of the file's next transaction, whose remittance names `references`; `None`
    /// for a transaction that is not booked or has no booking date (nothing to compare on).
    pub fn key(
        &mut self,
        tx: &Transaction,
        references: impl IntoIterator<Item = SettlementReference>,
    ) -> Option<CrossKey> {
        let booking_date = tx.booking_date.filter(|_| tx.booked)?;
        let sorted = &mut self.sorted;
        sorted.clear();
        sorted.extend(references);
        sorted.sort_unstable();
        sorted.dedup();
        let mut fields = Fields::new(&mut self.scratch);
        fields.text(tx.currency.as_str());
        fields.text(tx.direction.code());
        fields.amount(tx.amount);
        fields.date(Some(booking_date));
        for reference in sorted.iter() {
            let mut hyphenated = [0; uuid::fmt::Hyphenated::LENGTH];
            fields.text(reference.uuid().hyphenated().encode_lower(&mut hyphenated));
        }
        let content = fields.finish();
        let (half, _) = content.split_first_chunk::<16>().expect("32 bytes");
        let seen = self.occurrences.entry(*half).or_insert(0);
        let mut hasher = Sha256::new();
        hasher.update(content);
        hasher.update(seen.to_be_bytes());
        *seen += 1;
        let digest: [u8; 32] = hasher.finalize().into();
        let (first, _) = digest.split_first_chunk::<8>().expect("32 bytes");
        Some(CrossKey::on_day(booking_date, u64::from_be_bytes(*first)))
    }
}

impl CrossKey {
    /// The booking day (days since 1970, 16 bits: until 2149) above 48 bits of the digest, so
    /// that a night's keys land together in the ledger's index instead of all over it.
    fn on_day(booking_date: chrono::NaiveDate, digest: u64) -> CrossKey {
        let day = (booking_date - chrono::DateTime::UNIX_EPOCH.date_naive()).num_days();
        let day = day.clamp(0, 0xFFFF) as u64;
        CrossKey(((day << 48) | (digest & 0xFFFF_FFFF_FFFF)) as i64)
    }
}

/// What two transactions with the same [`CrossKey`] are compared on, as a report row and the
/// ledger keep it: our account, the other party's account, the bank's references and the
/// remittance text.
#[derive(Clone, Copy, Debug, Default)]
pub struct Evidence<'a> {
    pub account: Option<&'a str>,
    pub counterparty: Option<&'a str>,
    pub references: [Option<&'a str>; 5],
    pub text: &'a str,
}

impl<'a> Evidence<'a> {
    /// A transaction's evidence; `text` is its remittance as the report shows it.
    pub fn of(tx: &'a Transaction, text: &'a str) -> Evidence<'a> {
        Evidence {
            account: tx.account.as_deref(),
            counterparty: tx.counterparty.account.as_deref(),
            references: [
                tx.refs.entry_display(),
                tx.refs.servicer_display(),
                tx.refs.end_to_end_id.as_deref(),
                tx.refs.tx_id.as_deref(),
                tx.refs.uetr.as_deref(),
            ],
            text,
        }
    }

    /// The evidence in a few numbers, to be kept for every transaction of a run; the account
    /// is kept apart, as text, because it does not compare by equality.
    pub fn digest(&self) -> EvidenceDigest {
        let mut references = [0; 5];
        for (slot, reference) in references.iter_mut().zip(self.references) {
            *slot = reference.map_or(0, |r| short_hash(&compact(meaningful_str(r))));
        }
        EvidenceDigest {
            counterparty: self.counterparty.map_or(0, |c| short_hash(&compact(c))),
            references,
            text: short_hash(&compact(self.text)),
        }
    }
}

/// [`Evidence`] without our account, hashed: 0 stands for "not stated".
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct EvidenceDigest {
    counterparty: u32,
    references: [u32; 5],
    text: u32,
}

/// Whether two transactions with the same [`CrossKey`] are one bank transaction: they must not
/// disagree (our account, and the other party's account, are the same where both state them),
/// and something beyond amount and date must say they are the same (a settlement reference in
/// the key, the same other party's account, a bank reference in common, or the same text).
pub fn same_transaction(
    with_reference: bool,
    (account_a, a): (Option<&str>, &EvidenceDigest),
    (account_b, b): (Option<&str>, &EvidenceDigest),
) -> bool {
    if let (Some(x), Some(y)) = (account_a, account_b)
        && !same_account(x, y)
    {
        return false;
    }
    let counterparty_stated = a.counterparty != 0 && b.counterparty != 0;
    if counterparty_stated && a.counterparty != b.counterparty {
        return false;
    }
    let reference_shared = a
        .references
        .iter()
        .any(|&r| r != 0 && b.references.contains(&r));
    with_reference || counterparty_stated || reference_shared || (a.text != 0 && a.text == b.text)
}

/// Whether two statements of our account name the same one: equal once spaces, punctuation
/// and a currency code after the number are dropped, or the one's digits end the other's (an
/// IBAN and the national account number inside it, as MT940's `:25:` often gives it).
pub fn same_account(a: &str, b: &str) -> bool {
    let (a, b) = (account_text(a), account_text(b));
    if a == b {
        return true;
    }
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let (da, db) = (digits(&a), digits(&b));
    let (short, long) = if da.len() <= db.len() {
        (da, db)
    } else {
        (db, da)
    };
    short.len() >= 8 && long.ends_with(&short)
}

/// An account as compared: letters and digits, upper-cased, without a trailing currency code.
fn account_text(account: &str) -> String {
    let text = compact(account);
    let bytes = text.as_bytes();
    let n = bytes.len();
    if n > 4 && bytes[n - 3..].iter().all(u8::is_ascii_uppercase) && bytes[n - 4].is_ascii_digit() {
        return text[..n - 3].to_string();
    }
    text
}

/// Letters and digits only, upper-cased: how the formats differ in writing the same text.
fn compact(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect()
}

fn meaningful_str(value: &str) -> &str {
    let v = value.trim();
    if v.eq_ignore_ascii_case("NOTPROVIDED") || v.eq_ignore_ascii_case("NONREF") {
        ""
    } else {
        v
    }
}

/// A 32-bit digest of a compacted text, 0 for none: a chance agreement of two different texts
/// (one in four billion) only counts where everything in the key agrees too.
fn short_hash(text: &str) -> u32 {
    if text.is_empty() {
        return 0;
    }
    let digest = Sha256::digest(text.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(amount: &str, text: &str) -> Transaction {
        Transaction::test_credit(amount, "EUR", text)
    }

    /// The fingerprint as it was written before amounts, dates and texts were written by hand:
    /// identities must never change, or a statement read again would not be known.
    fn fingerprint_by_display(tx: &Transaction) -> [u8; 32] {
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
        let mut fields = Vec::new();
        if !tx.remittance.unstructured.is_empty() {
            fields.push(tx.remittance.unstructured.join(" "));
        }
        fields.extend(tx.remittance.structured.iter().cloned());
        fields.extend(tx.remittance.additional.iter().cloned());
        for text in fields {
            field(&crate::text::fold_whitespace(&text));
        }
        hasher.finalize().into()
    }

    #[test]
    fn fingerprints_are_those_the_display_of_each_field_gives() {
        let mut scratch = String::new();
        let mut tx = booked("-1200.50", "  topup\t1ab4fef9 a097  ");
        tx.remittance
            .unstructured
            .push(" 4c6f-9345-647025d5fde6 ".into());
        tx.remittance.structured.push("RF18 5390 0754 7034".into());
        tx.remittance
            .additional
            .push("\u{a0}SEPA  Gutschrift".into());
        tx.counterparty.name = Some(" Erika\n Mustermann ".into());
        tx.value_date = NaiveDate::from_ymd_opt(10_000, 1, 2);
        tx.refs.end_to_end_id = Some("NOTPROVIDED".into());
        tx.reversal = true;
        let plain = payment("0.10", "");
        let mut lines = payment("7", "");
        lines.remittance.unstructured = vec![String::new(), "a".into(), " ".into()];
        for tx in [tx, plain, lines] {
            assert_eq!(fingerprint(&tx, &mut scratch), fingerprint_by_display(&tx));
        }
    }

    #[test]
    fn amounts_dates_and_references_are_hashed_as_display_writes_them() {
        let mut amounts: Vec<Decimal> = [
            "0",
            "-0",
            "0.00",
            "-0.00",
            "200",
            "200.00",
            "0.5",
            "-12.340",
            "1234567.89",
            "0.001",
            "-0.000000000000000000000000001",
            "0.0000000000000000000000000010",
            "18446744073709551615",
            "-18446744073709551616",
            "79228162514264337593543950335",
            "-7.9228162514264337593543950335",
            "1000000",
            "10.10",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        amounts.extend((0..28).map(|scale| Decimal::new(7_000_100, scale)));
        for amount in amounts {
            let mut by_hand = String::new();
            push_amount(&mut by_hand, amount);
            assert_eq!(by_hand, amount.normalize().to_string(), "{amount:?}");
        }
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        for date in [
            day(2026, 11, 21),
            day(1, 1, 1),
            day(0, 12, 31),
            day(999, 9, 9),
            day(9999, 12, 31),
            day(10000, 1, 1),
            day(-1, 6, 15),
            NaiveDate::MIN,
            NaiveDate::MAX,
        ] {
            let mut by_hand = String::new();
            push_date(&mut by_hand, date);
            assert_eq!(by_hand, date.to_string());
        }
        let reference: SettlementReference = REF.to_uppercase().parse().unwrap();
        let mut hyphenated = [0; uuid::fmt::Hyphenated::LENGTH];
        let by_hand = reference.uuid().hyphenated().encode_lower(&mut hyphenated);
        assert_eq!(*by_hand, reference.to_string());
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
    fn booked(amount: &str, text: &str) -> Transaction {
        let mut tx = payment(amount, text);
        tx.booking_date = chrono::NaiveDate::from_ymd_opt(2026, 11, 21);
        tx
    }

    const REF: &str = "1ab4fef9-a097-4c6f-9345-647025d5fde6";

    fn key(tx: &Transaction, references: &[&str]) -> Option<CrossKey> {
        CrossAssigner::default().key(tx, references.iter().map(|r| r.parse().unwrap()))
    }

    #[test]
    fn cross_keys_of_one_booking_day_share_their_first_bits_and_days_come_in_order() {
        let day = |d: u32, amount: &str| {
            let mut tx = booked(amount, "gift");
            tx.booking_date = chrono::NaiveDate::from_ymd_opt(2026, 11, d);
            key(&tx, &[]).unwrap().0
        };
        assert_eq!(day(21, "1.00") >> 48, day(21, "2.00") >> 48);
        assert_ne!(day(21, "1.00"), day(21, "2.00"));
        assert!(day(21, "9.00") < day(22, "1.00"));
        assert_eq!(day(21, "1.00") >> 48, 20_778, "days since 1970");
    }

    #[test]
    fn the_cross_key_is_made_of_what_every_format_carries_and_nothing_else() {
        let camt = booked("200.00", "TOPUP 1AB4FEF9A0974C6F9345647025D5FDE6");
        // The CSV of the same payment: no account, other references, text and value date.
        let mut csv = booked("200", &format!("topup {REF}"));
        csv.account = None;
        csv.refs.entry_ref = Some("B-1".into());
        csv.counterparty.name = Some("Erika".into());
        csv.value_date = chrono::NaiveDate::from_ymd_opt(2026, 11, 23);
        assert_eq!(key(&camt, &[REF]), key(&csv, &[REF]));
        assert!(key(&camt, &[REF]).is_some());
        let differs = [
            Transaction {
                amount: "200.01".parse().unwrap(),
                ..camt.clone()
            },
            Transaction {
                currency: "USD".parse().unwrap(),
                ..camt.clone()
            },
            Transaction {
                direction: super::super::Direction::Debit,
                ..camt.clone()
            },
            Transaction {
                booking_date: chrono::NaiveDate::from_ymd_opt(2026, 11, 22),
                ..camt.clone()
            },
        ];
        for other in &differs {
            assert_ne!(key(&camt, &[REF]), key(other, &[REF]), "{other:?}");
        }
        assert_ne!(key(&camt, &[REF]), key(&camt, &[]));
        // Pending, or without a booking date: nothing to compare on.
        assert_eq!(
            key(
                &Transaction {
                    booked: false,
                    ..camt.clone()
                },
                &[REF]
            ),
            None
        );
        assert_eq!(key(&payment("200.00", "x"), &[REF]), None);
    }

    #[test]
    fn identical_payments_of_one_file_get_their_keys_in_order_as_in_any_other_file() {
        let gift = booked("10.00", "Spende");
        let keys =
            |assigner: &mut CrossAssigner| [assigner.key(&gift, []), assigner.key(&gift, [])];
        let in_camt = keys(&mut CrossAssigner::default());
        assert_ne!(in_camt[0], in_camt[1]);
        assert_eq!(in_camt, keys(&mut CrossAssigner::default()));
    }

    #[test]
    fn an_account_is_the_same_as_its_iban_with_spaces_a_currency_or_its_national_number() {
        let iban = "DE89370400440532013000";
        for same in [
            "DE89 3704 0044 0532 0130 00",
            "DE89370400440532013000EUR",
            "37040044/0532013000",
            "0532013000",
        ] {
            assert!(same_account(iban, same), "{same}");
            assert!(same_account(same, iban), "{same}");
        }
        for other in [
            "10020030/1234567",
            "DE02120300000000202051",
            "13000",
            "GB29NWBK60161331926819",
        ] {
            assert!(!same_account(iban, other), "{other}");
        }
    }

    fn evidence(
        account: Option<&str>,
        payer: Option<&str>,
        reference: Option<&str>,
        text: &str,
    ) -> (Option<String>, EvidenceDigest) {
        let digest = Evidence {
            account,
            counterparty: payer,
            references: [reference, None, None, None, None],
            text,
        }
        .digest();
        (account.map(str::to_string), digest)
    }

    #[test]
    fn copies_agree_on_what_both_state_and_share_more_than_amount_and_date() {
        let camt = evidence(
            Some("DE89370400440532013000"),
            Some("DE02120300000000202051"),
            Some("B-1"),
            "Invoice 4711",
        );
        let same = |with_reference, other: &(Option<String>, EvidenceDigest)| {
            same_transaction(
                with_reference,
                (camt.0.as_deref(), &camt.1),
                (other.0.as_deref(), &other.1),
            )
        };
        // A CSV without account: the same payer is enough, or a reference, or the text.
        assert!(same(
            false,
            &evidence(None, Some("DE02 1203 0000 0000 2020 51"), None, "")
        ));
        assert!(same(
            false,
            &evidence(None, None, Some("b-1"), "other text")
        ));
        assert!(same(
            false,
            &evidence(None, None, Some("NONREF"), "INVOICE 4711")
        ));
        assert!(same(true, &evidence(None, None, None, "")));
        // Nothing beyond amount and date: not the same.
        assert!(!same(
            false,
            &evidence(None, None, Some("NOTPROVIDED"), "Rent")
        ));
        // A different payer, or account, wins over everything else.
        assert!(!same(
            true,
            &evidence(
                None,
                Some("DE75512108001245126199"),
                Some("B-1"),
                "Invoice 4711"
            )
        ));
        assert!(!same(
            true,
            &evidence(Some("10020030/1234567"), None, Some("B-1"), "Invoice 4711")
        ));
        assert!(same(
            false,
            &evidence(Some("37040044/0532013000"), None, Some("B-1"), "")
        ));
    }
}
