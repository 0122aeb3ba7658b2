//! Look-ups behind the suggestions for exceptions: the open top-up whose reference is nearest to
//! an unknown one, and open top-ups that a payment without a reference may have meant. Each
//! look-up goes through an index, so its cost does not grow with the number of top-ups.

use rusqlite::{Connection, params};

use super::{Doing, StoreError};
use crate::ids::SettlementReference;
use crate::money::{Currency, format_amount};
use crate::suggest::{Hints, Likely};
use crate::topup::TopUp;

/// SQL for quarter `k` of a hyphenated reference's 32 digits (matches the `topups_ref*`
/// indexes).
const QUARTERS: [&str; 4] = [
    "substr(t.settlement_reference, 1, 8)",
    "substr(t.settlement_reference, 10, 4) || substr(t.settlement_reference, 15, 4)",
    "substr(t.settlement_reference, 20, 4) || substr(t.settlement_reference, 25, 4)",
    "substr(t.settlement_reference, 29, 8)",
];

const OPEN: &str = "t.status IN ('NEW', 'CONFIRMED')";

fn open_topups(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<TopUp>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).doing("looking up suggestions")?;
    let rows = stmt
        .query_map(args, super::topups::topup_from_row)
        .doing("looking up suggestions")?;
    let mut out = Vec::new();
    for row in rows {
        out.push(
            row.doing("looking up suggestions")?
                .map_err(StoreError::Corrupt)?,
        );
    }
    Ok(out)
}

/// The open top-up whose reference is within two edits (or one swapped pair) of `reference`,
/// preferring the same amount and currency, then the fewest edits, then the oldest.
pub fn nearest_reference(
    conn: &Connection,
    reference: SettlementReference,
    amount: rust_decimal::Decimal,
    currency: Currency,
) -> Result<Option<(TopUp, usize)>, StoreError> {
    let digits = reference.uuid().simple().to_string();
    let mut found: Vec<TopUp> = Vec::new();
    for (k, quarter) in QUARTERS.iter().enumerate() {
        let sql = format!(
            "SELECT {} FROM topups t WHERE {quarter} = ?1 AND {OPEN} LIMIT 50",
            super::topups::COLUMNS
        );
        // An insertion or deletion before this quarter shifts it by up to two places.
        for shift in -2i32..=2 {
            let start = 8 * k as i32 + shift;
            let Some(part) = usize::try_from(start)
                .ok()
                .and_then(|s| digits.get(s..s + 8))
            else {
                continue;
            };
            for topup in open_topups(conn, &sql, params![part])? {
                if found.iter().all(|f| f.id != topup.id) {
                    found.push(topup);
                }
            }
        }
    }
    let best = found
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
        });
    Ok(best)
}

/// How many of a payer's latest matched payments name the payer's account groups: reading all
/// of them would read a frequent payer's whole history for every exception.
pub const PAYER_PAYMENTS: usize = 50;

/// Open top-ups a payment without a reference may have meant: of the payer's account groups
/// (known from the payer's latest matched payments) with the same amount, then any with the
/// same amount and currency, then the payer's other open ones; at most three. `this_run` is
/// the account groups of the payer's matched payments in the run not yet recorded, latest
/// first: they come before the ledger's.
pub fn likely_topups(
    conn: &Connection,
    amount: rust_decimal::Decimal,
    currency: Currency,
    payer_iban: Option<&str>,
    this_run: &[String],
) -> Result<Vec<Likely>, StoreError> {
    let amount_text = format_amount(amount, currency);
    let same_amount = open_topups(
        conn,
        &format!(
            "SELECT {} FROM topups t WHERE t.currency = ?1 AND t.cash_amount = ?2 AND {OPEN}
             ORDER BY t.created_at, t.id LIMIT 50",
            super::topups::COLUMNS
        ),
        params![currency.as_str(), amount_text],
    )?;
    // The payer's account groups first (few), then a few open top-ups of each, in index order:
    // never a sort over a big customer's whole group.
    let mut payers = Vec::new();
    let mut payer_groups: Vec<String> = Vec::new();
    if let Some(iban) = payer_iban {
        let mut recent: Vec<String> = this_run.iter().take(PAYER_PAYMENTS).cloned().collect();
        if recent.len() < PAYER_PAYMENTS {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT p.account_group_id FROM bank_transactions bt
                     JOIN topups p ON p.id = bt.topup_id
                     WHERE bt.counterparty_iban = ?1 AND bt.outcome = 'MATCHED'
                     ORDER BY bt.id DESC LIMIT ?2",
                )
                .doing("looking up suggestions")?;
            let earlier = stmt
                .query_map(params![iban, (PAYER_PAYMENTS - recent.len()) as i64], |r| {
                    r.get::<_, String>(0)
                })
                .doing("looking up suggestions")?;
            for group in earlier {
                recent.push(group.doing("looking up suggestions")?);
            }
        }
        for group in recent {
            if payer_groups.len() < 5 && !payer_groups.contains(&group) {
                payer_groups.push(group);
            }
        }
        for group in &payer_groups {
            payers.extend(open_topups(
                conn,
                &format!(
                    "SELECT {} FROM topups t WHERE t.account_group_id = ?1 AND {OPEN}
                     ORDER BY t.created_at, t.id LIMIT 3",
                    super::topups::COLUMNS
                ),
                params![group],
            )?);
        }
    }
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
    for t in &same_amount {
        add(t, false, true);
    }
    for t in &payers {
        add(t, true, false);
    }
    Ok(ranked)
}

/// Gathers the hints for one decided transaction's row (only exceptions get any); `reference`
/// is the one its decision found, `this_run` as for [`likely_topups`].
pub fn for_exception(
    conn: &Connection,
    row: &crate::row::Row,
    reference: Option<SettlementReference>,
    this_run: &[String],
) -> Result<Hints, StoreError> {
    use crate::matching::Outcome;
    let mut hints = Hints::default();
    match row.outcome {
        Outcome::UnknownReference => {
            if let Some(reference) = reference {
                hints.nearest = nearest_reference(conn, reference, row.amount, row.currency)?;
            }
        }
        Outcome::NoReference => {
            hints.likely = likely_topups(
                conn,
                row.amount,
                row.currency,
                row.counterparty_iban(),
                this_run,
            )?;
        }
        _ => {}
    }
    Ok(hints)
}
