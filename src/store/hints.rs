//! Look-ups behind the suggestions for exceptions: the open top-up whose reference is nearest to
//! an unknown one, and open top-ups that a payment without a reference may have meant. A night's
//! exceptions are answered together by one pass over the open top-ups (in the listing's index),
//! taken only when one of them asks: four reference-fragment indexes and two more on every
//! top-up cost more at each import and settlement than the pass costs (migration 10).

use foldhash::HashMap;

use rusqlite::Connection;

use super::{Doing, StoreError};
use crate::ids::SettlementReference;
use crate::money::{Currency, format_amount};
use crate::suggest::{Hints, Likely};
use crate::topup::TopUp;

/// Where quarter `k` of a reference's 32 digits lies in its hyphenated text: two byte ranges.
const QUARTERS: [[(usize, usize); 2]; 4] = [
    [(0, 4), (4, 8)],
    [(9, 13), (14, 18)],
    [(19, 23), (24, 28)],
    [(28, 32), (32, 36)],
];

/// How many open top-ups one fragment, one amount or one account group offers at most (as the
/// indexed look-ups did: a fragment shared by more is no near miss).
const PER_FRAGMENT: usize = 50;
const PER_AMOUNT: usize = 50;
const PER_GROUP: usize = 3;

/// How many of a payer's latest matched payments name the payer's account groups: reading all
/// of them would read a frequent payer's whole history for every exception.
pub const PAYER_PAYMENTS: usize = 50;

/// What one exception asks of the open top-ups.
#[derive(Clone, Debug)]
pub enum Ask {
    /// Nothing: no suggestion looks at the open top-ups.
    Nothing,
    /// An unknown reference: the open top-up whose reference is within two edits (or one
    /// swapped pair), preferring the same amount and currency, then the fewest edits, then the
    /// oldest.
    Nearest {
        reference: SettlementReference,
        amount: rust_decimal::Decimal,
        currency: Currency,
    },
    /// A payment without a reference: open top-ups of the payer's account groups (newest
    /// first, at most five) with the same amount, then any with the same amount and currency,
    /// then the payer's other open ones; at most three.
    Likely {
        amount: rust_decimal::Decimal,
        currency: Currency,
        payer_groups: Vec<String>,
    },
}

/// The one quarter `k` of a reference's digits each open top-up is compared by, as text.
type Fragment = [u8; 8];

/// An unknown reference's fragments that a near miss may share: quarter `k` shifted by up to
/// two places either way (an insertion or deletion before it), in the order they are tried.
fn fragments(reference: SettlementReference) -> Vec<(usize, Fragment)> {
    let digits = reference.uuid().simple().to_string();
    let mut out = Vec::with_capacity(20);
    for k in 0..4 {
        for shift in -2i32..=2 {
            let start = 8 * k as i32 + shift;
            let part = usize::try_from(start)
                .ok()
                .and_then(|s| digits.as_bytes().get(s..s + 8));
            if let Some(part) = part {
                out.push((k, part.try_into().expect("eight bytes")));
            }
        }
    }
    out
}

/// The quarters of a stored reference's hyphenated text (none if it is not that long).
fn quarters(text: &[u8]) -> Option<[Fragment; 4]> {
    if text.len() < 36 {
        return None;
    }
    let mut out = [[0u8; 8]; 4];
    for (k, [(a, b), (c, d)]) in QUARTERS.iter().enumerate() {
        out[k][..4].copy_from_slice(&text[*a..*b]);
        out[k][4..].copy_from_slice(&text[*c..*d]);
    }
    Some(out)
}

/// The open top-ups the night's asks want, gathered in one pass in the listing's order
/// (oldest first, ties by id): memory bounded by the asks, not by the open top-ups.
#[derive(Default)]
struct Wanted {
    /// By quarter, by fragment: open top-ups with their rowid.
    fragments: [HashMap<Fragment, Vec<(i64, TopUp)>>; 4],
    /// By currency, by amount as stored (as bytes: the pass compares millions of rows'
    /// columns without checking each is UTF-8).
    amounts: HashMap<Vec<u8>, HashMap<Vec<u8>, Vec<TopUp>>>,
    /// By account group.
    groups: HashMap<Vec<u8>, Vec<TopUp>>,
    /// How many amounts and groups have not all they want yet.
    unfilled: usize,
}

impl Wanted {
    fn new(asks: &[Ask]) -> Wanted {
        let mut wanted = Wanted::default();
        for ask in asks {
            match ask {
                Ask::Nothing => {}
                Ask::Nearest { reference, .. } => {
                    for (k, part) in fragments(*reference) {
                        wanted.fragments[k].entry(part).or_default();
                    }
                }
                Ask::Likely {
                    amount,
                    currency,
                    payer_groups,
                } => {
                    wanted
                        .amounts
                        .entry(currency.as_str().as_bytes().to_vec())
                        .or_default()
                        .entry(format_amount(*amount, *currency).into_bytes())
                        .or_default();
                    for group in payer_groups {
                        wanted.groups.entry(group.as_bytes().to_vec()).or_default();
                    }
                }
            }
        }
        wanted.unfilled =
            wanted.amounts.values().map(HashMap::len).sum::<usize>() + wanted.groups.len();
        wanted
    }

    fn is_empty(&self) -> bool {
        self.unfilled == 0 && self.fragments.iter().all(HashMap::is_empty)
    }

    /// Takes one open top-up's row (the seven top-up columns, then its rowid); says whether
    /// the pass can stop.
    fn take(&mut self, row: &rusqlite::Row) -> Result<bool, StoreError> {
        fn text<'r>(row: &'r rusqlite::Row, i: usize) -> Result<&'r [u8], StoreError> {
            row.get_ref(i)
                .and_then(|v| Ok(v.as_bytes()?))
                .map_err(|e| StoreError::Corrupt(format!("an open top-up's column {i}: {e}")))
        }
        let quarters = quarters(text(row, 6)?).unwrap_or_default();
        let hits: Vec<(usize, &Fragment)> = (0..4)
            .map(|k| (k, &quarters[k]))
            .filter(|(k, quarter)| self.fragments[*k].contains_key(*quarter))
            .collect();
        let (currency, amount) = (text(row, 4)?, text(row, 3)?);
        let same = self
            .amounts
            .get(currency)
            .and_then(|amounts| amounts.get(amount))
            .is_some_and(|same| same.len() < PER_AMOUNT);
        let group = text(row, 2)?;
        let in_group = self
            .groups
            .get(group)
            .is_some_and(|group| group.len() < PER_GROUP);
        if hits.is_empty() && !same && !in_group {
            return Ok(false);
        }
        let topup = super::topups::topup_from_row(row)
            .doing("looking up suggestions")?
            .map_err(StoreError::Corrupt)?;
        for (k, quarter) in hits {
            let rowid: i64 = row.get(7).doing("looking up suggestions")?;
            let found = self.fragments[k].get_mut(quarter).expect("a hit");
            found.push((rowid, topup.clone()));
            // The lowest rowids, as the fragment's index gave them first.
            if found.len() == 2 * PER_FRAGMENT {
                found.sort_by_key(|(rowid, _)| *rowid);
                found.truncate(PER_FRAGMENT);
            }
        }
        if same {
            let same = self
                .amounts
                .get_mut(currency)
                .and_then(|a| a.get_mut(amount));
            let same = same.expect("an amount asked for");
            same.push(topup.clone());
            self.unfilled -= usize::from(same.len() == PER_AMOUNT);
        }
        if in_group {
            let group = self.groups.get_mut(group).expect("a group asked for");
            group.push(topup);
            self.unfilled -= usize::from(group.len() == PER_GROUP);
        }
        Ok(self.unfilled == 0 && self.fragments.iter().all(HashMap::is_empty))
    }
}

/// Answers each of the night's asks, in order, from one pass over the open top-ups as `conn`
/// sees them (none if nothing asks).
pub fn answer(conn: &Connection, asks: &[Ask]) -> Result<Vec<Hints>, StoreError> {
    let mut wanted = Wanted::new(asks);
    if !wanted.is_empty() {
        let doing = "looking up suggestions";
        let sql = format!(
            "SELECT {}, t.rowid FROM topups t WHERE t.status IN ('NEW', 'CONFIRMED')
             ORDER BY t.created_at, t.id",
            super::topups::COLUMNS
        );
        let mut stmt = conn.prepare_cached(&sql).doing(doing)?;
        let mut rows = stmt.query([]).doing(doing)?;
        while let Some(row) = rows.next().doing(doing)? {
            if wanted.take(row)? {
                break;
            }
        }
    }
    // A fragment's first top-ups in rowid order, as its index gave them.
    for by_fragment in &mut wanted.fragments {
        for found in by_fragment.values_mut() {
            found.sort_by_key(|(rowid, _)| *rowid);
            found.truncate(PER_FRAGMENT);
        }
    }
    Ok(asks
        .iter()
        .map(|ask| match ask {
            Ask::Nothing => Hints::default(),
            Ask::Nearest {
                reference,
                amount,
                currency,
            } => Hints {
                nearest: nearest(&wanted, *reference, *amount, *currency),
                likely: Vec::new(),
            },
            Ask::Likely {
                amount,
                currency,
                payer_groups,
            } => Hints {
                nearest: None,
                likely: likely(&wanted, *amount, *currency, payer_groups),
            },
        })
        .collect())
}

fn nearest(
    wanted: &Wanted,
    reference: SettlementReference,
    amount: rust_decimal::Decimal,
    currency: Currency,
) -> Option<(TopUp, usize)> {
    let digits = reference.uuid().simple().to_string();
    let mut found: Vec<&TopUp> = Vec::new();
    for (k, part) in fragments(reference) {
        for (_, topup) in wanted.fragments[k].get(&part).into_iter().flatten() {
            if found.iter().all(|f| f.id != topup.id) {
                found.push(topup);
            }
        }
    }
    found
        .into_iter()
        .filter(|t| t.settlement_reference != reference)
        .map(|t| {
            let distance =
                strsim::osa_distance(&digits, &t.settlement_reference.uuid().simple().to_string());
            (t, distance)
        })
        .filter(|(_, distance)| *distance <= 2)
        .min_by_key(|(t, distance)| {
            let same = t.cash_amount == amount && t.currency == currency;
            (!same, *distance, t.created_at)
        })
        .map(|(t, distance)| (t.clone(), distance))
}

fn likely(
    wanted: &Wanted,
    amount: rust_decimal::Decimal,
    currency: Currency,
    payer_groups: &[String],
) -> Vec<Likely> {
    let same_amount = wanted
        .amounts
        .get(currency.as_str().as_bytes())
        .and_then(|amounts| amounts.get(format_amount(amount, currency).as_bytes()))
        .map_or(&[][..], Vec::as_slice);
    let payers = payer_groups
        .iter()
        .flat_map(|group| wanted.groups.get(group.as_bytes()).into_iter().flatten());
    let mut ranked: Vec<Likely> = Vec::new();
    let mut add = |topup: &TopUp, same_payer: bool, same_amount: bool| {
        if ranked.len() < 3 && ranked.iter().all(|l| l.topup.id != topup.id) {
            ranked.push(Likely {
                topup: topup.clone(),
                same_payer,
                same_amount,
            });
        }
    };
    for t in same_amount
        .iter()
        .filter(|t| payer_groups.contains(&t.account_group_id.to_string()))
    {
        add(t, true, true);
    }
    for t in same_amount {
        add(t, false, true);
    }
    for t in payers {
        add(t, true, false);
    }
    ranked
}

/// The account groups a payer paid lately, newest first, at most five: `this_run` (the groups
/// of the payer's matched payments in the run not yet recorded, latest first) before the
/// ledger's.
pub fn payer_groups(
    conn: &Connection,
    payer_iban: Option<&str>,
    this_run: &[String],
) -> Result<Vec<String>, StoreError> {
    let mut payer_groups: Vec<String> = Vec::new();
    let Some(iban) = payer_iban else {
        return Ok(payer_groups);
    };
    let mut recent: Vec<String> = this_run.iter().take(PAYER_PAYMENTS).cloned().collect();
    if recent.len() < PAYER_PAYMENTS {
        let earlier =
            super::journal::payer_account_groups(conn, iban, PAYER_PAYMENTS - recent.len())?;
        recent.extend(earlier);
    }
    for group in recent {
        if payer_groups.len() < 5 && !payer_groups.contains(&group) {
            payer_groups.push(group);
        }
    }
    Ok(payer_groups)
}

/// What one decided transaction's row asks (only exceptions ask anything); `reference` is the
/// one its decision found, `this_run` as for [`payer_groups`].
pub fn ask_for(
    conn: &Connection,
    row: &crate::row::Row,
    reference: Option<SettlementReference>,
    this_run: &[String],
) -> Result<Ask, StoreError> {
    use crate::matching::Outcome;
    Ok(match (row.outcome, reference) {
        (Outcome::UnknownReference, Some(reference)) => Ask::Nearest {
            reference,
            amount: row.amount,
            currency: row.currency,
        },
        (Outcome::NoReference, _) => Ask::Likely {
            amount: row.amount,
            currency: row.currency,
            payer_groups: payer_groups(conn, row.counterparty_iban(), this_run)?,
        },
        _ => Ask::Nothing,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::{OpenMode, Store, topups};
    use crate::topup::Status;

    const GROUP: &str = "1ea60f56-b67b-61fc-829a-0242ac130003";

    fn topup(id: &str, day: u32, amount: &str, status: Status) -> TopUp {
        TopUp {
            id: id.parse().unwrap(),
            created_at: format!("2026-11-{day:02}T08:00:00Z").parse().unwrap(),
            account_group_id: GROUP.parse().unwrap(),
            cash_amount: amount.parse().unwrap(),
            currency: "EUR".parse().unwrap(),
            status,
            settlement_reference: id.parse().unwrap(),
        }
    }

    #[test]
    fn one_pass_finds_a_shifted_near_miss_and_the_first_open_topups_of_an_amount_and_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let store = Store::open(&path, OpenMode::CreateIfMissing, Duration::ZERO).unwrap();
        let now = chrono::Utc::now();
        let target = "92276658-1e27-41c0-8a6a-63ec24ede6a4";
        for t in [
            topup(
                "00000000-0000-4000-8000-000000000003",
                3,
                "10.00",
                Status::New,
            ),
            topup(target, 2, "12.00", Status::Confirmed),
            topup(
                "00000000-0000-4000-8000-000000000001",
                1,
                "10.00",
                Status::Confirmed,
            ),
            // Its reference's second quarter is the target's: a candidate, but not open.
            topup(
                "aaaaaaaa-1e27-41c0-8a6a-aaaaaaaaaaaa",
                1,
                "12.00",
                Status::Cancelled,
            ),
        ] {
            topups::insert(store.conn(), &t, now).unwrap();
        }
        // One digit deleted near the start and one inserted near the end: two edits, and no
        // quarter of the target where it was, only shifted by one.
        let digits = "922766581e2741c08a6a63ec24ede6a4";
        let typo = format!("{}{}f{}", &digits[..3], &digits[4..30], &digits[30..]);
        let reference = SettlementReference::from_uuid(uuid::Uuid::parse_str(&typo).unwrap());
        let asks = [
            Ask::Nothing,
            Ask::Nearest {
                reference,
                amount: "12.00".parse().unwrap(),
                currency: "EUR".parse().unwrap(),
            },
            Ask::Likely {
                amount: "10.00".parse().unwrap(),
                currency: "EUR".parse().unwrap(),
                payer_groups: vec![GROUP.to_string()],
            },
        ];
        let answers = answer(store.conn(), &asks).unwrap();
        assert_eq!(answers[0], Hints::default());
        let (nearest, edits) = answers[1].nearest.clone().unwrap();
        assert_eq!((nearest.id.to_string().as_str(), edits), (target, 2));
        let likely: Vec<(String, bool, bool)> = answers[2]
            .likely
            .iter()
            .map(|l| (l.topup.id.to_string(), l.same_payer, l.same_amount))
            .collect();
        let id = |n: u8| format!("00000000-0000-4000-8000-00000000000{n}");
        assert_eq!(
            likely,
            vec![
                (id(1), true, true),
                (id(3), true, true),
                (target.to_string(), true, false)
            ],
            "oldest first, as the listing"
        );
    }
}
