//! The open top-ups counted and summed by age. `open_days` keeps their count and exact sum per
//! day of creation and currency, changed by every write that opens or closes a top-up
//! ([`OpenDays`]): a report's aging buckets read a few hundred rows of it, and only the top-ups
//! created on the days a bucket begins or ends in, however many are open.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use rusqlite::functions::{Aggregate, Context, FunctionFlags};
use rusqlite::{Connection, OptionalExtension, params};
use rust_decimal::Decimal;

use super::{Doing, StoreError};
use crate::money::Currency;
use crate::topup::{Status, TopUp, format_timestamp};

/// Creation times after the first (exclusive) and up to the second (inclusive); `None` leaves
/// that side open. A report's spans cover all time, each moment in exactly one.
pub type CreatedSpan = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Per currency, the count and exact sum of each span's top-ups, in the spans' order.
pub type SpanTotals = BTreeMap<Currency, Vec<(usize, Decimal)>>;

const SECONDS_PER_DAY: i64 = 86_400;

/// The key of `open_days`: whole days since 1970-01-01 (UTC) to the creation.
fn day_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(SECONDS_PER_DAY)
}

/// The first moment of `day`, and of the day after it (clamped to what a time can hold).
fn day_bounds(day: i64) -> (DateTime<Utc>, DateTime<Utc>) {
    let at = |day: i64| {
        DateTime::from_timestamp(day.saturating_mul(SECONDS_PER_DAY), 0).unwrap_or(if day < 0 {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
    };
    (at(day), at(day + 1))
}

/// Changes to `open_days`, gathered over one write and applied at its end: the count and sum
/// each day and currency gains (a top-up opened) or loses (one settled or cancelled).
#[derive(Debug, Default)]
pub struct OpenDays(DayTotals);

/// A count and a sum per day of creation and currency, as `open_days` keeps them.
type DayTotals = BTreeMap<(i64, Currency), (i64, Decimal)>;

impl OpenDays {
    /// `topup` is new: opened if it is open.
    pub fn added(&mut self, topup: &TopUp) {
        if topup.status.is_open() {
            self.opened(topup);
        }
    }

    /// `topup` is open from now on (a new one, or one reopened).
    pub fn opened(&mut self, topup: &TopUp) {
        self.add(topup, 1, topup.cash_amount);
    }

    /// `topup`, open until now, is not any more (settled or cancelled).
    pub fn closed(&mut self, topup: &TopUp) {
        self.add(topup, -1, -topup.cash_amount);
    }

    /// `topup` changes from `from` to `to`: opened, closed, or neither.
    pub fn changed(&mut self, topup: &TopUp, from: Status, to: Status) {
        match (from.is_open(), to.is_open()) {
            (false, true) => self.opened(topup),
            (true, false) => self.closed(topup),
            _ => {}
        }
    }

    fn add(&mut self, topup: &TopUp, count: i64, amount: Decimal) {
        let key = (day_of(topup.created_at), topup.currency);
        let entry = self.0.entry(key).or_insert((0, Decimal::ZERO));
        entry.0 += count;
        entry.1 += amount;
    }

    /// Applies the changes. A day left with no open top-up has no row; a count below zero,
    /// or a sum left over when none is open, means the totals no longer tell the top-ups.
    pub fn write(self, conn: &Connection) -> Result<(), StoreError> {
        let doing = "keeping the open top-ups' totals per day";
        let mut read = conn
            .prepare_cached("SELECT count, sum FROM open_days WHERE day = ?1 AND currency = ?2")
            .doing(doing)?;
        let mut put = conn
            .prepare_cached(
                "INSERT OR REPLACE INTO open_days (day, currency, count, sum) VALUES (?1, ?2, ?3, ?4)",
            )
            .doing(doing)?;
        let mut delete = conn
            .prepare_cached("DELETE FROM open_days WHERE day = ?1 AND currency = ?2")
            .doing(doing)?;
        for ((day, currency), (count, sum)) in self.0 {
            if count == 0 && sum.is_zero() {
                continue;
            }
            let had: Option<(i64, String)> = read
                .query_row(params![day, currency.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .doing(doing)?;
            let (had, had_sum) = match had {
                Some((n, text)) => (n, parse_sum(&text)?),
                None => (0, Decimal::ZERO),
            };
            let now = had + count;
            let now_sum = had_sum
                .checked_add(sum)
                .ok_or_else(|| StoreError::Corrupt("a sum of open top-ups overflows".into()))?;
            if now < 0 || (now == 0 && !now_sum.is_zero()) {
                let (from, _) = day_bounds(day);
                return Err(StoreError::Corrupt(format!(
                    "the open {currency} top-ups created on {} would number {now} and sum to                      {now_sum}: `open_days` no longer tells the top-ups (run `recon check`)",
                    from.date_naive()
                )));
            }
            if now == 0 {
                delete
                    .execute(params![day, currency.as_str()])
                    .doing(doing)?;
            } else {
                put.execute(params![day, currency.as_str(), now, now_sum.to_string()])
                    .doing(doing)?;
            }
        }
        Ok(())
    }
}

fn parse_sum(text: &str) -> Result<Decimal, StoreError> {
    text.parse()
        .map_err(|e| StoreError::Corrupt(format!("a sum of open top-ups {text:?}: {e}")))
}

/// How many top-ups are open, from `open_days`.
pub fn count_open(conn: &Connection) -> Result<usize, StoreError> {
    conn.query_row("SELECT coalesce(sum(count), 0) FROM open_days", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n as usize)
    .doing("counting open top-ups")
}

/// Fills `open_days` from the top-ups (migration 15), which must have no row in it yet.
pub(super) fn fill_open_days(conn: &Connection) -> Result<(), StoreError> {
    let mut days = OpenDays::default();
    each_open(conn, &mut |topup| days.opened(topup))?;
    days.write(conn)
}

/// Calls `each` for every open top-up (through [`super::topups::for_each`]).
fn each_open(conn: &Connection, each: &mut dyn FnMut(&TopUp)) -> Result<(), StoreError> {
    let open = [Status::New, Status::Confirmed];
    super::topups::for_each(conn, &open, &mut |topup| {
        each(topup);
        Ok(())
    })
    .map_err(|e| match e.downcast::<StoreError>() {
        Ok(store) => store,
        Err(other) => StoreError::Corrupt(format!("reading the open top-ups: {other}")),
    })
}

/// Every row of `open_days`: the count and sum per day and currency.
fn kept(conn: &Connection) -> Result<DayTotals, StoreError> {
    let doing = "reading the open top-ups' totals per day";
    let mut stmt = conn
        .prepare("SELECT day, currency, count, sum FROM open_days")
        .doing(doing)?;
    let mut kept = BTreeMap::new();
    let mut rows = stmt.query([]).doing(doing)?;
    while let Some(row) = rows.next().doing(doing)? {
        let (day, currency, count, sum): (i64, String, i64, String) = (
            row.get(0).doing(doing)?,
            row.get(1).doing(doing)?,
            row.get(2).doing(doing)?,
            row.get(3).doing(doing)?,
        );
        let currency: Currency = currency
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("a currency in open_days: {e}")))?;
        kept.insert((day, currency), (count, parse_sum(&sum)?));
    }
    Ok(kept)
}

/// Where `open_days` and the open top-ups, counted again one by one, disagree: one line per
/// day and currency (empty when they agree), for `recon check`.
pub fn disagreements(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut counted = OpenDays::default();
    each_open(conn, &mut |topup| counted.opened(topup))?;
    let kept = kept(conn)?;
    let keys: BTreeSet<_> = kept.keys().chain(counted.0.keys()).copied().collect();
    let none = (0, Decimal::ZERO);
    Ok(keys
        .into_iter()
        .filter_map(|key| {
            let (have, count) = (
                kept.get(&key).unwrap_or(&none),
                counted.0.get(&key).unwrap_or(&none),
            );
            (have.0 != count.0 || have.1 != count.1).then(|| {
                format!(
                    "{} {}: kept {} top-ups summing {}, counted {} summing {}",
                    day_bounds(key.0).0.date_naive(),
                    key.1,
                    have.0,
                    have.1,
                    count.0,
                    count.1
                )
            })
        })
        .collect())
}

/// The name of the exact decimal sum in SQL.
const DECIMAL_SUM: &str = "recon_decimal_sum";

/// Adds decimal texts exactly (SQLite's own `sum` would add them as floating-point numbers).
struct DecimalSum;

impl Aggregate<Decimal, Option<String>> for DecimalSum {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<Decimal> {
        Ok(Decimal::ZERO)
    }

    fn step(&self, ctx: &mut Context<'_>, sum: &mut Decimal) -> rusqlite::Result<()> {
        let text: &str = ctx.get_raw(0).as_str()?;
        let amount: Decimal = text.parse().map_err(|e| {
            rusqlite::Error::UserFunctionError(format!("amount {text:?}: {e}").into())
        })?;
        *sum = sum.checked_add(amount).ok_or_else(|| {
            rusqlite::Error::UserFunctionError("a sum of amounts overflows".into())
        })?;
        Ok(())
    }

    fn finalize(
        &self,
        _: &mut Context<'_>,
        sum: Option<Decimal>,
    ) -> rusqlite::Result<Option<String>> {
        Ok(sum.map(|s| s.to_string()))
    }
}

/// Gives `conn` the exact decimal sum (once per connection is enough; again is harmless).
fn with_decimal_sum(conn: &Connection) -> Result<(), StoreError> {
    conn.create_aggregate_function(
        DECIMAL_SUM,
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        DecimalSum,
    )
    .doing("preparing the sum of amounts")
}

/// The select list counting and summing each span (`count, sum` per span), and its
/// parameters, numbered from `first_param`.
fn span_columns(
    spans: &[(Option<String>, Option<String>)],
    first_param: usize,
) -> (String, Vec<String>) {
    let mut params = Vec::new();
    let mut columns = Vec::new();
    for (after, until) in spans {
        let mut conditions = Vec::new();
        for (bound, op) in [(after, ">"), (until, "<=")] {
            if let Some(bound) = bound {
                params.push(bound.clone());
                conditions.push(format!(
                    "t.created_at {op} ?{}",
                    first_param + params.len() - 1
                ));
            }
        }
        let filter = if conditions.is_empty() {
            "1".to_string()
        } else {
            conditions.join(" AND ")
        };
        columns.push(format!(
            "count(*) FILTER (WHERE {filter}), {DECIMAL_SUM}(t.cash_amount) FILTER (WHERE {filter})"
        ));
    }
    (columns.join(", "), params)
}

/// Runs a counting query (`currency` then the span columns) into `totals`.
fn add_up(
    stmt: &mut rusqlite::Statement,
    params: &[String],
    spans: usize,
    totals: &mut SpanTotals,
) -> Result<(), StoreError> {
    let doing = "counting open top-ups by age";
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params.iter()))
        .doing(doing)?;
    while let Some(row) = rows.next().doing(doing)? {
        let currency: String = row.get(0).doing(doing)?;
        let currency: Currency = currency
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("a top-up's currency: {e}")))?;
        let entry = totals
            .entry(currency)
            .or_insert_with(|| vec![(0, Decimal::ZERO); spans]);
        for (i, (count, sum)) in entry.iter_mut().enumerate() {
            let n: i64 = row.get(1 + 2 * i).doing(doing)?;
            let added: Option<String> = row.get(2 + 2 * i).doing(doing)?;
            *count += n as usize;
            if let Some(added) = added {
                let added: Decimal = added
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("a sum of amounts: {e}")))?;
                *sum += added;
            }
        }
    }
    Ok(())
}

/// The open top-ups now, counted and summed per currency and creation span: a whole day from
/// `open_days`, a day that a span begins or ends in from its top-ups one by one.
pub fn open_by_created(conn: &Connection, spans: &[CreatedSpan]) -> Result<SpanTotals, StoreError> {
    let edges: BTreeSet<i64> = spans
        .iter()
        .flat_map(|(after, until)| [after, until])
        .flatten()
        .map(|&at| day_of(at))
        .collect();
    let mut totals = SpanTotals::new();
    for ((day, currency), (count, sum)) in kept(conn)? {
        if edges.contains(&day) {
            continue;
        }
        // No span begins or ends inside this day: its first moment is where all of it is.
        let (moment, _) = day_bounds(day);
        let span = spans
            .iter()
            .position(|(after, until)| {
                after.is_none_or(|a| moment > a) && until.is_none_or(|u| moment <= u)
            })
            .ok_or_else(|| StoreError::Corrupt(format!("no age span holds {moment}")))?;
        let entry = totals
            .entry(currency)
            .or_insert_with(|| vec![(0, Decimal::ZERO); spans.len()]);
        entry[span].0 += count as usize;
        entry[span].1 += sum;
    }
    with_decimal_sum(conn)?;
    let spelled: Vec<(Option<String>, Option<String>)> = spans
        .iter()
        .map(|(after, until)| (after.map(format_timestamp), until.map(format_timestamp)))
        .collect();
    let (columns, mut params) = span_columns(&spelled, 3);
    let mut edge = conn
        .prepare(&format!(
            "SELECT t.currency, {columns} FROM topups t
             WHERE t.status IN ('NEW', 'CONFIRMED') AND t.created_at >= ?1 AND t.created_at < ?2
             GROUP BY t.currency"
        ))
        .doing("counting open top-ups by age")?;
    params.splice(0..0, [String::new(), String::new()]);
    for day in edges {
        let (from, to) = day_bounds(day);
        (params[0], params[1]) = (format_timestamp(from), format_timestamp(to));
        add_up(&mut edge, &params, spans.len(), &mut totals)?;
    }
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::report::aging;
    use crate::store::topups;

    fn topup(n: usize, created_at: DateTime<Utc>, currency: &str) -> TopUp {
        let id = format!("00000000-0000-4000-8000-{n:012}");
        TopUp {
            id: id.parse().unwrap(),
            created_at,
            account_group_id: "1ea60f56-b67b-61fc-829a-0242ac130003".parse().unwrap(),
            cash_amount: Decimal::new(n as i64 * 101 + 7, if currency == "JPY" { 0 } else { 2 }),
            currency: currency.parse().unwrap(),
            status: if n.is_multiple_of(2) {
                Status::New
            } else {
                Status::Confirmed
            },
            settlement_reference: id.parse().unwrap(),
        }
    }

    /// The buckets counted one top-up at a time, as the report defines them.
    fn counted_one_by_one(conn: &Connection, spans: &[CreatedSpan]) -> SpanTotals {
        let mut totals = SpanTotals::new();
        for t in topups::list(conn, None).unwrap() {
            if !t.status.is_open() {
                continue;
            }
            let span = spans
                .iter()
                .position(|(a, u)| {
                    a.is_none_or(|a| t.created_at > a) && u.is_none_or(|u| t.created_at <= u)
                })
                .unwrap();
            let entry = totals
                .entry(t.currency)
                .or_insert_with(|| vec![(0, Decimal::ZERO); spans.len()]);
            entry[span].0 += 1;
            entry[span].1 += t.cash_amount;
        }
        totals
    }

    #[test]
    fn the_totals_per_day_count_every_bucket_exactly_as_the_top_ups_one_by_one() {
        let (_dir, store) = crate::store::scratch();
        let conn = store.conn();
        let as_of: DateTime<Utc> = "2026-12-07T13:30:00Z".parse().unwrap();
        let spans: Vec<CreatedSpan> = aging::spans(14)
            .into_iter()
            .map(|span| aging::created_span(as_of, span))
            .collect();
        // A second either side of every whole day back from the run, and midnight of each day.
        let mut made = Vec::new();
        for days in -1..=40 {
            let edge = as_of - TimeDelta::days(days);
            let midnight = edge.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
            for at in [
                edge - TimeDelta::seconds(1),
                edge,
                edge + TimeDelta::seconds(1),
                midnight,
            ] {
                let currency = if made.len() % 3 == 0 { "JPY" } else { "EUR" };
                made.push(topup(made.len(), at, currency));
            }
        }
        let (one_by_one, many) = made.split_at(20);
        for t in one_by_one {
            topups::insert(conn, t, as_of).unwrap();
        }
        let lines: Vec<(u64, TopUp)> = many.iter().map(|t| (0, t.clone())).collect();
        topups::insert_many(conn, &lines, as_of).unwrap();
        for (i, t) in made.iter().enumerate().filter(|(i, _)| i % 5 == 0) {
            let to = if i % 2 == 0 {
                Status::Cancelled
            } else {
                Status::Settled
            };
            topups::transition(conn, t.id, to, as_of, None).unwrap();
        }
        topups::unsettle(conn, made[5].id, Status::Confirmed, as_of).unwrap();

        let expected = counted_one_by_one(conn, &spans);
        assert_eq!(open_by_created(conn, &spans).unwrap(), expected);
        let open: usize = expected.values().flatten().map(|(n, _)| n).sum();
        assert_eq!(count_open(conn).unwrap(), open);
        assert!(open > 100 && open < made.len(), "{open} of {}", made.len());
        assert_eq!(disagreements(conn).unwrap(), Vec::<String>::new());

        // A change made behind recon's back is found, on the day it falls on.
        conn.execute(
            "UPDATE topups SET status = 'CANCELLED' WHERE id = ?1",
            [made[1].id.to_string()],
        )
        .unwrap();
        let found = disagreements(conn).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(&made[1].created_at.date_naive().to_string()),
            "{found:?}"
        );
    }

    #[test]
    fn a_change_the_totals_cannot_hold_is_refused_not_written() {
        let (_dir, store) = crate::store::scratch();
        let conn = store.conn();
        let t = topup(1, "2026-11-01T08:00:00Z".parse().unwrap(), "EUR");
        let mut days = OpenDays::default();
        days.closed(&t);
        let error = days.write(conn).unwrap_err().to_string();
        assert!(
            error.contains("2026-11-01") && error.contains("recon check"),
            "{error}"
        );
        assert_eq!(count_open(conn).unwrap(), 0);
    }
}
