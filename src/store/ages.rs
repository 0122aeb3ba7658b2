//! The open top-ups counted and summed by creation span in SQLite, one pass over the open
//! top-ups' index, so a report's aging buckets cost no row in recon's memory. Amounts are
//! added exactly, as decimals, by an aggregate function recon gives its connection.

use std::collections::BTreeMap;

use rusqlite::Connection;
use rusqlite::functions::{Aggregate, Context, FunctionFlags};
use rust_decimal::Decimal;

use super::{Doing, StoreError};
use crate::ids::TopUpId;
use crate::money::Currency;

/// Creation times after the first (exclusive) and up to the second (inclusive), as stored;
/// `None` leaves that side open.
pub type CreatedSpan = (Option<String>, Option<String>);

/// Per currency, the count and exact sum of each span's top-ups, in the spans' order.
pub type SpanTotals = BTreeMap<Currency, Vec<(usize, Decimal)>>;

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
fn span_columns(spans: &[CreatedSpan], first_param: usize) -> (String, Vec<String>) {
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

/// The open top-ups now, counted and summed per currency and creation span.
pub fn open_by_created(conn: &Connection, spans: &[CreatedSpan]) -> Result<SpanTotals, StoreError> {
    with_decimal_sum(conn)?;
    let (columns, params) = span_columns(spans, 1);
    // Grouped by currency in the order of the open top-ups' amount index, which holds every
    // column counted: no sort, no table row read.
    let sql = format!(
        "SELECT t.currency, {columns} FROM topups t
         WHERE t.status IN ('NEW', 'CONFIRMED') GROUP BY t.currency"
    );
    let mut stmt = conn.prepare(&sql).doing("counting open top-ups by age")?;
    let mut totals = SpanTotals::new();
    add_up(&mut stmt, &params, spans.len(), &mut totals)?;
    Ok(totals)
}

/// The open top-ups among `ids`, counted and summed as [`open_by_created`] does: what a run
/// settling them takes away from the open top-ups' buckets.
pub fn by_created_among(
    conn: &Connection,
    ids: &[TopUpId],
    spans: &[CreatedSpan],
) -> Result<SpanTotals, StoreError> {
    const BATCH: usize = 50_000;
    with_decimal_sum(conn)?;
    let (columns, mut params) = span_columns(spans, 2);
    let sql = format!(
        "SELECT t.currency, {columns} FROM topups t
         WHERE t.id IN (SELECT value FROM json_each(?1)) AND t.status IN ('NEW', 'CONFIRMED')
         GROUP BY t.currency"
    );
    let mut stmt = conn
        .prepare(&sql)
        .doing("counting settled top-ups by age")?;
    params.insert(0, String::new());
    let mut totals = SpanTotals::new();
    for chunk in ids.chunks(BATCH) {
        let texts: Vec<String> = chunk.iter().map(|id| id.to_string()).collect();
        params[0] = serde_json::to_string(&texts).expect("strings serialise");
        add_up(&mut stmt, &params, spans.len(), &mut totals)?;
    }
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_added_exactly_per_currency_and_span() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE topups (id TEXT, created_at TEXT, cash_amount TEXT, currency TEXT,
                 status TEXT);
             INSERT INTO topups VALUES
               ('a', '2026-11-01T00:00:00Z', '0.10', 'EUR', 'NEW'),
               ('b', '2026-11-01T00:00:00Z', '0.20', 'EUR', 'CONFIRMED'),
               ('c', '2026-11-05T00:00:00Z', '1500', 'JPY', 'NEW'),
               ('d', '2026-11-06T00:00:00Z', '99999999999999999.99', 'EUR', 'NEW'),
               ('e', '2026-11-06T00:00:00Z', '99999999999999999.99', 'EUR', 'NEW'),
               ('f', '2026-11-01T00:00:00Z', '7.00', 'EUR', 'SETTLED');",
        )
        .unwrap();
        let spans: Vec<CreatedSpan> = vec![
            (None, Some("2026-11-04T23:59:59Z".into())),
            (Some("2026-11-04T23:59:59Z".into()), None),
        ];
        let totals = open_by_created(&conn, &spans).unwrap();
        let eur = &totals[&"EUR".parse().unwrap()];
        assert_eq!(eur[0], (2, "0.30".parse().unwrap()));
        assert_eq!(eur[1], (2, "199999999999999999.98".parse().unwrap()));
        let jpy = &totals[&"JPY".parse().unwrap()];
        assert_eq!(jpy, &[(0, Decimal::ZERO), (1, "1500".parse().unwrap())]);
    }
}
