//! Top-ups in the database. Every status change asks the lifecycle
//! ([`Status::check_transition`]) before it writes: [`transition`] one at a time,
//! [`settle_all`] a run's settlements at once.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Doing, StoreError};
use crate::ids::{SettlementReference, TopUpId};
use crate::matching::KnownTopUp;
use crate::topup::{Status, TopUp, format_timestamp};

pub(crate) const COLUMNS: &str = "t.id, t.created_at, t.account_group_id, t.cash_amount, t.currency, t.status, t.settlement_reference";

/// How a top-up was settled, for `topups show`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Settlement {
    pub settled_at: String,
    pub run_id: Option<String>,
    pub statement_file: Option<String>,
    pub entry_number: Option<i64>,
    pub detail_number: Option<i64>,
    pub amount: Option<String>,
    pub currency: Option<String>,
    pub booking_date: Option<String>,
    pub counterparty_name: Option<String>,
    pub counterparty_iban: Option<String>,
    pub bank_reference: Option<String>,
}

/// A top-up with its bookkeeping, for `topups show` and `list`.
#[derive(Clone, Debug)]
pub struct TopUpRecord {
    pub topup: TopUp,
    pub updated_at: String,
    pub cancelled_at: Option<String>,
    pub settlement: Option<Settlement>,
}

/// Reads a top-up from the first seven columns of a row.
pub(crate) fn topup_from_row(row: &Row) -> rusqlite::Result<Result<TopUp, String>> {
    // Borrowed from SQLite's row: a listing of millions makes no string per column.
    let text = |i: usize| -> rusqlite::Result<&str> {
        let value = row.get_ref(i)?;
        value
            .as_str()
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, value.data_type(), e.into()))
    };
    let (id, created, group, amount, currency, status, reference) = (
        text(0)?,
        text(1)?,
        text(2)?,
        text(3)?,
        text(4)?,
        text(5)?,
        text(6)?,
    );
    Ok((|| {
        let currency = currency.parse().map_err(|e| format!("{e}"))?;
        Ok(TopUp {
            id: id.parse().map_err(|e| format!("{e}"))?,
            created_at: crate::topup::parse_timestamp(created)
                .map_err(|e| format!("created_at {created:?}: {e}"))?,
            account_group_id: group.parse().map_err(|e| format!("{e}"))?,
            cash_amount: amount
                .parse()
                .map_err(|e| format!("amount {amount:?}: {e}"))?,
            currency,
            status: status.parse().map_err(|e| format!("{e}"))?,
            settlement_reference: reference.parse().map_err(|e| format!("{e}"))?,
        })
    })())
}

fn corrupt(result: Result<TopUp, String>) -> Result<TopUp, StoreError> {
    result.map_err(StoreError::Corrupt)
}

/// Inserts a new top-up with its history and event; a duplicate id or reference is an error
/// naming which.
pub fn insert(conn: &Connection, topup: &TopUp, now: DateTime<Utc>) -> Result<(), StoreError> {
    insert_row(conn, topup, now)?;
    let mut days = super::ages::OpenDays::default();
    days.added(topup);
    days.write(conn)?;
    let mut balances = super::outbox::Balances::default();
    announce(conn, topup, now, &mut balances)?;
    balances.write(conn, now)?;
    Ok(())
}

/// Inserts many top-ups (each with the line it came from): the rows oldest first, as they
/// would have arrived one by one (the open top-ups are then read in table order each night),
/// then the history and events in the given order. A load that is large next to what is there
/// builds the plain indexes once at the end instead (same transaction: all or nothing holds).
pub fn insert_many(
    conn: &Connection,
    topups: &[(u64, TopUp)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    // The highest rowid counts the top-ups without reading them all (none are ever deleted).
    let existing: i64 = conn
        .query_row("SELECT coalesce(max(rowid), 0) FROM topups", [], |r| {
            r.get(0)
        })
        .doing("counting top-ups")?;
    let bulk = topups.len() >= 10_000 && topups.len() as i64 * 4 >= existing;
    let aside = if bulk {
        Some(super::set_indexes_aside(
            conn,
            &["topups", "topup_history", "events"],
        )?)
    } else {
        None
    };
    let mut in_order: Vec<&(u64, TopUp)> = topups.iter().collect();
    in_order.sort_by_key(|(_, t)| table_order(t.created_at, t.id));
    let mut days = super::ages::OpenDays::default();
    for (line, topup) in in_order {
        days.added(topup);
        insert_row(conn, topup, now).map_err(|e| match e {
            StoreError::Import { message, .. } => StoreError::Import {
                line: *line,
                message,
            },
            other => other,
        })?;
    }
    days.write(conn)?;
    let mut balances = super::outbox::Balances::default();
    for (_, topup) in topups {
        announce(conn, topup, now, &mut balances)?;
    }
    balances.write(conn, now)?;
    match aside {
        Some(aside) => super::restore_indexes(conn, aside),
        None => Ok(()),
    }
}

/// The order top-ups are inserted in, and so (close to) their rowid order.
fn table_order(created_at: DateTime<Utc>, id: TopUpId) -> (DateTime<Utc>, uuid::Uuid) {
    (created_at, id.uuid())
}

/// Records that `topup` has just reached its status: its history row and its events.
fn announce(
    conn: &Connection,
    topup: &TopUp,
    at: DateTime<Utc>,
    balances: &mut super::outbox::Balances,
) -> Result<(), StoreError> {
    record_history(conn, topup.id, topup.status, at)?;
    super::outbox::announce(conn, topup, at, balances)
}

fn insert_row(conn: &Connection, topup: &TopUp, now: DateTime<Utc>) -> Result<(), StoreError> {
    let settled_at = (topup.status == Status::Settled).then(|| format_timestamp(now));
    let cancelled_at = (topup.status == Status::Cancelled).then(|| format_timestamp(now));
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO topups (id, created_at, account_group_id, cash_amount, currency, status,
                 settlement_reference, updated_at, settled_at, cancelled_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .doing("preparing the top-up insert")?;
    let result = stmt.execute(params![
        topup.id.to_string(),
        format_timestamp(topup.created_at),
        topup.account_group_id.to_string(),
        topup.cash_amount_text(),
        topup.currency.as_str(),
        topup.status.as_str(),
        topup.settlement_reference.to_string(),
        format_timestamp(now),
        settled_at,
        cancelled_at,
    ]);
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
            let id_taken = conn
                .query_row(
                    "SELECT 1 FROM topups WHERE id = ?1",
                    [topup.id.to_string()],
                    |_| Ok(()),
                )
                .optional()
                .doing("checking a duplicate top-up")?
                .is_some();
            let owner: Option<String> = conn
                .query_row(
                    "SELECT id FROM topups WHERE settlement_reference = ?1",
                    [topup.settlement_reference.to_string()],
                    |r| r.get(0),
                )
                .optional()
                .doing("checking a duplicate top-up")?;
            Err(StoreError::Import {
                line: 0,
                message: match owner {
                    Some(owner) if !id_taken => format!(
                        "settlement reference {} already belongs to the stored top-up {owner}",
                        topup.settlement_reference
                    ),
                    _ if id_taken => format!("a top-up with id {} already exists", topup.id),
                    _ => format!(
                        "settlement reference {} already belongs to another top-up",
                        topup.settlement_reference
                    ),
                },
            })
        }
        Err(e) => Err(e).doing("inserting a top-up"),
    }
}

/// The account group of a top-up (which never changes).
pub fn group_of(conn: &Connection, id: TopUpId) -> Result<crate::ids::AccountGroupId, StoreError> {
    let group: String = conn
        .prepare_cached("SELECT account_group_id FROM topups WHERE id = ?1")
        .and_then(|mut stmt| stmt.query_row([id.to_string()], |r| r.get(0)))
        .optional()
        .doing("reading a top-up's account group")?
        .ok_or_else(|| StoreError::TopUpNotFound(id.to_string()))?;
    group
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("top-up {id}'s account group: {e}")))
}

/// The stored top-ups with any of these ids, looked up a few hundred at a time.
pub fn by_ids(
    conn: &Connection,
    ids: &[TopUpId],
) -> Result<std::collections::HashMap<TopUpId, TopUp>, StoreError> {
    const BATCH: usize = 500;
    let mut found = std::collections::HashMap::new();
    for chunk in ids.chunks(BATCH) {
        let marks = vec!["?"; chunk.len()].join(",");
        let sql = format!("SELECT {COLUMNS} FROM topups t WHERE t.id IN ({marks})");
        let mut stmt = conn.prepare_cached(&sql).doing("looking up top-ups")?;
        let texts: Vec<String> = chunk.iter().map(|id| id.to_string()).collect();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(texts.iter()), topup_from_row)
            .doing("looking up top-ups")?;
        for row in rows {
            let topup = corrupt(row.doing("looking up top-ups")?)?;
            found.insert(topup.id, topup);
        }
    }
    Ok(found)
}

/// Looks a top-up up by id.
pub fn get(conn: &Connection, id: TopUpId) -> Result<TopUpRecord, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS}, t.updated_at, t.cancelled_at, t.settled_at, t.settled_by_transaction,
                sf.run_id
         FROM topups t
         LEFT JOIN journal j ON j.id = t.settled_by_transaction
         LEFT JOIN statement_files sf ON sf.id = j.file_id
         WHERE t.id = ?1"
    );
    type Found = (
        Result<TopUp, String>,
        String,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<String>,
    );
    let found: Found = conn
        .query_row(&sql, [id.to_string()], |row| {
            Ok((
                topup_from_row(row)?,
                row.get(7)?,
                row.get(8)?,
                row.get(9)?,
                row.get(10)?,
                row.get(11)?,
            ))
        })
        .optional()
        .doing("reading a top-up")?
        .ok_or_else(|| StoreError::TopUpNotFound(id.to_string()))?;
    let (topup, updated_at, cancelled_at, settled_at, settled_by, run_id) = found;
    let paid = match settled_by {
        Some(tx) => super::journal::rows_by_id(conn, &[tx])?.remove(&tx),
        None => None,
    };
    let settlement = settled_at.map(|settled_at| Settlement {
        settled_at,
        run_id,
        statement_file: paid.as_ref().map(|r| r.statement_file.to_string()),
        entry_number: paid.as_ref().map(|r| i64::from(r.entry_number)),
        detail_number: paid.as_ref().and_then(|r| r.detail_number.map(i64::from)),
        amount: paid.as_ref().map(|r| r.amount.to_string()),
        currency: paid.as_ref().map(|r| r.currency.to_string()),
        booking_date: paid
            .as_ref()
            .and_then(|r| r.booking_date.map(|d| d.to_string())),
        counterparty_name: paid
            .as_ref()
            .and_then(|r| r.counterparty_name().map(str::to_string)),
        counterparty_iban: paid
            .as_ref()
            .and_then(|r| r.counterparty_iban().map(str::to_string)),
        bank_reference: paid
            .as_ref()
            .and_then(|r| r.servicer_ref().or(r.entry_ref()).map(str::to_string)),
    });
    Ok(TopUpRecord {
        topup: corrupt(topup)?,
        updated_at,
        cancelled_at,
        settlement,
    })
}

/// All top-ups, or those in one status, oldest first.
pub fn list(conn: &Connection, status: Option<Status>) -> Result<Vec<TopUp>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM topups t WHERE ?1 IS NULL OR t.status = ?1 ORDER BY t.created_at, t.id"
    );
    let mut stmt = conn.prepare(&sql).doing("listing top-ups")?;
    let rows = stmt
        .query_map([status.map(|s| s.as_str())], topup_from_row)
        .doing("listing top-ups")?;
    let mut out = Vec::new();
    for row in rows {
        out.push(corrupt(row.doing("listing top-ups")?)?);
    }
    Ok(out)
}

/// Calls `each` for every top-up in one of `statuses` (every top-up when none is given), oldest
/// first, without holding them (a listing of millions: a database error comes back as an I/O
/// error carrying it).
pub fn for_each(
    conn: &Connection,
    statuses: &[Status],
    each: &mut dyn FnMut(&TopUp) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let filter = if statuses.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = statuses
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        format!("WHERE t.status IN ({})", names.join(", "))
    };
    let sql = format!("SELECT {COLUMNS} FROM topups t {filter} ORDER BY t.created_at, t.id");
    stream(conn, &sql, &[], "listing top-ups", each)
}

/// One page of top-ups (optionally in one status), oldest first, starting after the top-up
/// `after`; says whether more follow.
pub fn page(
    conn: &Connection,
    status: Option<Status>,
    after: Option<TopUpId>,
    limit: usize,
) -> Result<(Vec<TopUp>, bool), StoreError> {
    let after = after.map(|id| id.to_string());
    if let Some(id) = &after {
        let known = conn
            .query_row("SELECT 1 FROM topups WHERE id = ?1", [id], |_| Ok(()))
            .optional()
            .doing("reading a page of top-ups")?;
        if known.is_none() {
            return Err(StoreError::TopUpNotFound(id.clone()));
        }
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM topups t
         WHERE (?1 IS NULL OR t.status = ?1)
           AND (?2 IS NULL OR (t.created_at, t.id) > (SELECT created_at, id FROM topups WHERE id = ?2))
         ORDER BY t.created_at, t.id LIMIT ?3"
    );
    let mut stmt = conn.prepare(&sql).doing("reading a page of top-ups")?;
    let rows = stmt
        .query_map(
            params![status.map(|s| s.as_str()), after, limit as i64 + 1],
            topup_from_row,
        )
        .doing("reading a page of top-ups")?;
    let mut out = Vec::with_capacity(limit + 1);
    for row in rows {
        out.push(corrupt(row.doing("reading a page of top-ups")?)?);
    }
    let more = out.len() > limit;
    out.truncate(limit);
    Ok((out, more))
}

/// Which open top-ups `open_topups.csv` lists (summary version 2 on): created up to `until`
/// (stale), and either created after `after` (not stale at the previous run) or added to the
/// database after its row `added_after` (unknown to the previous run, however old).
#[derive(Clone, Copy, Debug)]
pub struct StaleSince<'a> {
    pub until: &'a str,
    pub after: Option<&'a str>,
    pub added_after: Option<i64>,
}

/// The highest row number of a top-up: every top-up added later has a higher one (none is
/// ever deleted).
pub fn highest_row(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row("SELECT coalesce(max(rowid), 0) FROM topups", [], |r| {
        r.get(0)
    })
    .doing("counting top-ups")
}

/// Calls `each` for every open top-up that `which` covers, oldest first, without holding them
/// in memory (for writing a report file: a database error comes back as an I/O error carrying
/// it).
pub fn for_each_open(
    conn: &Connection,
    which: &StaleSince,
    each: &mut dyn FnMut(&TopUp) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let open = format!(
        "SELECT {COLUMNS} FROM topups t WHERE t.status IN ('NEW', 'CONFIRMED') AND t.created_at <= ?1"
    );
    // Two ranges, each on its index: creation times (`topups_open`) and the newest rows.
    let sql = match which.after {
        None => open,
        Some(_) if which.added_after.is_none() => format!("{open} AND t.created_at > ?2"),
        Some(_) => format!(
            "{open} AND t.created_at > ?2
             UNION ALL {open} AND t.created_at <= ?2 AND t.rowid > ?3"
        ),
    };
    let sql = format!("{sql} ORDER BY 2, 1");
    let params = params![which.until, which.after, which.added_after];
    let used = 1
        + usize::from(which.after.is_some())
        + usize::from(which.after.is_some() && which.added_after.is_some());
    stream(conn, &sql, &params[..used], "listing open top-ups", each)
}

/// Calls `each` for every row of a query of top-ups ([`COLUMNS`]), as [`for_each_open`] does.
fn stream(
    conn: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
    doing: &'static str,
    each: &mut dyn FnMut(&TopUp) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let failed =
        |e: rusqlite::Error| std::io::Error::other(StoreError::Sqlite { doing, source: e });
    let mut stmt = conn.prepare_cached(sql).map_err(failed)?;
    let mut rows = stmt.query(params).map_err(failed)?;
    while let Some(row) = rows.next().map_err(failed)? {
        let topup = topup_from_row(row)
            .map_err(failed)?
            .map_err(|e| std::io::Error::other(StoreError::Corrupt(e)))?;
        each(&topup)?;
    }
    Ok(())
}

/// The top-ups carrying any of these settlement references, looked up in batches (one query per
/// few hundred references: planning a query costs more than running it).
pub fn by_references(
    conn: &Connection,
    references: &[SettlementReference],
) -> Result<std::collections::HashMap<SettlementReference, KnownTopUp>, StoreError> {
    const BATCH: usize = 500;
    let mut found = std::collections::HashMap::with_capacity(references.len());
    for chunk in references.chunks(BATCH) {
        let marks = vec!["?"; chunk.len()].join(",");
        let sql = format!(
            "SELECT {COLUMNS}, sf.run_id, sf.path, j.entry_number, j.detail_number,
                    date(j.booking_day * 86400, 'unixepoch')
             FROM topups t
             LEFT JOIN journal j ON j.id = t.settled_by_transaction
             LEFT JOIN statement_files sf ON sf.id = j.file_id
             WHERE t.settlement_reference IN ({marks})"
        );
        let mut stmt = conn.prepare_cached(&sql).doing("looking up references")?;
        let texts: Vec<String> = chunk.iter().map(|r| r.to_string()).collect();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(texts.iter()), known_from_row)
            .doing("looking up references")?;
        for row in rows {
            let (topup, settled_by) = row.doing("looking up references")?;
            let topup = corrupt(topup)?;
            found.insert(topup.settlement_reference, KnownTopUp { topup, settled_by });
        }
    }
    Ok(found)
}

type KnownRow = (Result<TopUp, String>, Option<String>);

fn known_from_row(row: &Row) -> rusqlite::Result<KnownRow> {
    let topup = topup_from_row(row)?;
    let run: Option<String> = row.get(7)?;
    let settled_by = match run {
        Some(run) => {
            let path: String = row.get(8)?;
            let entry: i64 = row.get(9)?;
            let detail: Option<i64> = row.get(10)?;
            let booked: Option<String> = row.get(11)?;
            Some(describe_transaction(
                &run,
                &path,
                entry,
                detail,
                booked.as_deref(),
            ))
        }
        None => None,
    };
    Ok((topup, settled_by))
}

/// How a stored bank transaction is named in messages and suggestions.
pub fn describe_transaction(
    run: &str,
    path: &str,
    entry: i64,
    detail: Option<i64>,
    booking_date: Option<&str>,
) -> String {
    let detail = detail.map(|d| format!(" detail {d}")).unwrap_or_default();
    let booked = booking_date
        .map(|d| format!(", booked {d}"))
        .unwrap_or_default();
    format!("{path} entry {entry}{detail}{booked} (run {run})")
}

/// The one way a top-up changes status: reads it, checks the lifecycle, then writes.
/// `settled_by` is the bank transaction that settles it (only for `SETTLED`). Returns the
/// top-up as it is now.
pub fn transition(
    conn: &Connection,
    id: TopUpId,
    to: Status,
    at: DateTime<Utc>,
    settled_by: Option<i64>,
) -> Result<TopUp, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM topups t WHERE t.id = ?1");
    let mut stmt = conn
        .prepare_cached(&sql)
        .doing("reading a top-up's status")?;
    let current = corrupt(
        stmt.query_row([id.to_string()], topup_from_row)
            .optional()
            .doing("reading a top-up's status")?
            .ok_or_else(|| StoreError::TopUpNotFound(id.to_string()))?,
    )?;
    change(conn, current, to, at, settled_by)
}

/// How many top-ups one settling UPDATE changes. SQLite keeps a copy of every page a statement
/// changes until the statement ends: one UPDATE for 81k top-ups held 57 MB more, one per top-up
/// copied the same pages over and over (twice as slow); 200 to 5000 measured alike.
const SETTLE_CHUNK: usize = 500;

/// A top-up a run settles, as little of it as settling needs: a night has up to a million.
#[derive(Clone, Copy, Debug)]
pub struct ToSettle {
    pub id: TopUpId,
    pub created_at: DateTime<Utc>,
    /// The status it was read with.
    pub status: Status,
    /// The ledger id of the bank transaction that settles it.
    pub ledger_id: i64,
}

impl ToSettle {
    /// `topup` (as read in this write transaction), settled by the ledger's `ledger_id`.
    pub fn new(topup: &TopUp, ledger_id: i64) -> ToSettle {
        ToSettle {
            id: topup.id,
            created_at: topup.created_at,
            status: topup.status,
            ledger_id,
        }
    }
}

/// Settles many top-ups read in this same write transaction for the run `run_id`, each by its
/// bank transaction's journal id (recorded later in the transaction: foreign keys are then
/// checked at commit). They are changed in table order, [`SETTLE_CHUNK`] per UPDATE from a
/// temporary table, and each chunk is read back for its cash balance just before. Their
/// history and events are the journal's MATCHED rows (`store::settlements`): nothing more is
/// written per settlement. Returns how much the cash balances grew.
pub fn settle_all(
    conn: &Connection,
    run_id: &str,
    mut settlements: Vec<ToSettle>,
    at: DateTime<Utc>,
) -> Result<super::outbox::Growth, StoreError> {
    let doing = "settling top-ups";
    conn.pragma_update(None, "defer_foreign_keys", true)
        .doing("deferring foreign keys")?;
    // Top-up ids are unique, so the unstable sort gives the same order without a buffer of
    // half the settlements.
    settlements.sort_unstable_by_key(|s| table_order(s.created_at, s.id));
    for settling in &settlements {
        settling
            .status
            .check_transition(settling.id, Status::Settled)?;
    }
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS settling (
             n INTEGER PRIMARY KEY, topup_id TEXT NOT NULL, status TEXT NOT NULL,
             ledger_id INTEGER NOT NULL);
         DELETE FROM temp.settling;",
    )
    .doing(doing)?;
    let at_text = format_timestamp(at);
    let mut add = conn
        .prepare_cached(
            "INSERT INTO temp.settling (n, topup_id, status, ledger_id) VALUES (?1, ?2, ?3, ?4)",
        )
        .doing(doing)?;
    // Guarded by the status each top-up was read with: a stale read finds and changes fewer.
    let mut read = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM temp.settling s JOIN topups t
                 ON t.id = s.topup_id AND t.status = s.status
             ORDER BY s.n"
        ))
        .doing(doing)?;
    // OR FAIL, with the foreign keys checked at commit (migration 7): a constraint that could
    // abort a statement halfway makes SQLite copy every page the statement touches into a
    // statement journal, to undo that statement alone (a quarter of settling against 2.5M open
    // top-ups). A failure here fails the run, whose transaction is rolled back whole anyway.
    let mut update = conn
        .prepare_cached(
            "UPDATE OR FAIL topups SET status = 'SETTLED', updated_at = ?1, settled_at = ?1,
                 settled_by_transaction = s.ledger_id
             FROM temp.settling s
             WHERE topups.id = s.topup_id AND topups.status = s.status",
        )
        .doing(doing)?;
    let mut clear = conn
        .prepare_cached("DELETE FROM temp.settling")
        .doing(doing)?;
    let mut balances = super::outbox::Balances::default();
    let mut days = super::ages::OpenDays::default();
    let mut topups = Vec::with_capacity(SETTLE_CHUNK);
    // The temporary table holds one chunk at a time: the whole night's was 60 MB at a million.
    let (mut found, mut changed) = (0, 0);
    for (chunk, settling) in settlements.chunks(SETTLE_CHUNK).enumerate() {
        for (i, s) in settling.iter().enumerate() {
            add.execute(params![
                (chunk * SETTLE_CHUNK + i) as i64,
                s.id.to_string(),
                s.status.as_str(),
                s.ledger_id
            ])
            .doing(doing)?;
        }
        topups.clear();
        let mut rows = read.query([]).doing(doing)?;
        while let Some(row) = rows.next().doing(doing)? {
            topups.push(corrupt(topup_from_row(row).doing(doing)?)?);
        }
        found += topups.len();
        changed += update.execute([&at_text]).doing(doing)?;
        for topup in &topups {
            let group = topup.account_group_id.to_string();
            balances.change(conn, &group, topup.currency, topup.cash_amount)?;
            days.closed(topup);
        }
        clear.execute([]).doing(doing)?;
    }
    if found != settlements.len() || changed != settlements.len() {
        return Err(StoreError::Corrupt(format!(
            "{} of {} top-ups changed status while they were being settled",
            settlements.len() - found.min(changed).min(settlements.len()),
            settlements.len()
        )));
    }
    let first_tx = settlements.iter().map(|s| s.ledger_id).min();
    let last_tx = settlements.iter().map(|s| s.ledger_id).max();
    if let (Some(first_tx), Some(last_tx)) = (first_tx, last_tx) {
        let (count, before) = (settlements.len(), balances.before());
        super::settlements::record(conn, run_id, count, (first_tx, last_tx), at, before)?;
    }
    days.write(conn)?;
    balances.write(conn, at)
}

/// Checks the lifecycle and writes the change of a top-up read in this same write
/// transaction. The update is guarded by the status read, so a stale `current` fails instead
/// of changing anything.
fn change(
    conn: &Connection,
    current: TopUp,
    to: Status,
    at: DateTime<Utc>,
    settled_by: Option<i64>,
) -> Result<TopUp, StoreError> {
    change_received(conn, current, to, at, settled_by, None)
}

/// Settles an open top-up by hand (the worklist), read in this write transaction, by the
/// ledger's `settled_by` with the money `received` (said in its cash balance event).
pub fn settle_by_hand(
    conn: &Connection,
    current: TopUp,
    at: DateTime<Utc>,
    settled_by: i64,
    received: rust_decimal::Decimal,
) -> Result<TopUp, StoreError> {
    conn.pragma_update(None, "defer_foreign_keys", true)
        .doing("deferring foreign keys")?;
    change_received(
        conn,
        current,
        Status::Settled,
        at,
        Some(settled_by),
        Some(received),
    )
}

/// Undoes a settlement by hand: the top-up goes back to `to` (its status before), forgets
/// what settled it, and its cash balance shrinks again, with the events.
pub fn unsettle(
    conn: &Connection,
    id: TopUpId,
    to: Status,
    at: DateTime<Utc>,
) -> Result<TopUp, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM topups t WHERE t.id = ?1");
    let mut current = corrupt(
        conn.query_row(&sql, [id.to_string()], topup_from_row)
            .optional()
            .doing("reading a top-up's status")?
            .ok_or_else(|| StoreError::TopUpNotFound(id.to_string()))?,
    )?;
    current.status.check_reopen(id, to)?;
    let changed = conn
        .execute(
            "UPDATE topups SET status = ?2, updated_at = ?3, settled_at = NULL,
                 settled_by_transaction = NULL
             WHERE id = ?1 AND status = 'SETTLED'",
            params![id.to_string(), to.as_str(), format_timestamp(at)],
        )
        .doing("reopening a top-up")?;
    if changed != 1 {
        return Err(StoreError::Corrupt(format!(
            "top-up {id} changed status while it was being reopened"
        )));
    }
    record_history(conn, id, to, at)?;
    let mut days = super::ages::OpenDays::default();
    days.changed(&current, current.status, to);
    days.write(conn)?;
    let mut balances = super::outbox::Balances::default();
    super::outbox::announce_unsettled(conn, &current, at, &mut balances)?;
    balances.write(conn, at)?;
    current.status = to;
    Ok(current)
}

fn change_received(
    conn: &Connection,
    mut current: TopUp,
    to: Status,
    at: DateTime<Utc>,
    settled_by: Option<i64>,
    received: Option<rust_decimal::Decimal>,
) -> Result<TopUp, StoreError> {
    let id = current.id;
    let from = current.status;
    from.check_transition(id, to)?;
    let at_text = format_timestamp(at);
    // The status read is written into the SQL as a literal: a bound value there would make
    // SQLite plan the statement again on every call (the partial indexes depend on status).
    let sql = format!(
        "UPDATE topups SET status = ?2, updated_at = ?3,
             settled_at = CASE WHEN ?2 = 'SETTLED' THEN ?3 ELSE settled_at END,
             settled_by_transaction = coalesce(?4, settled_by_transaction),
             cancelled_at = CASE WHEN ?2 = 'CANCELLED' THEN ?3 ELSE cancelled_at END
         WHERE id = ?1 AND status = '{}'",
        from.as_str()
    );
    let mut update = conn
        .prepare_cached(&sql)
        .doing("changing a top-up's status")?;
    let changed = update
        .execute(params![id.to_string(), to.as_str(), at_text, settled_by])
        .doing("changing a top-up's status")?;
    if changed != 1 {
        return Err(StoreError::Corrupt(format!(
            "top-up {id} changed status while it was being updated"
        )));
    }
    let mut days = super::ages::OpenDays::default();
    days.changed(&current, from, to);
    days.write(conn)?;
    current.status = to;
    let mut balances = super::outbox::Balances::default();
    record_history(conn, current.id, current.status, at)?;
    super::outbox::announce_received(conn, &current, at, &mut balances, received)?;
    balances.write(conn, at)?;
    Ok(current)
}

fn record_history(
    conn: &Connection,
    id: TopUpId,
    status: Status,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO topup_history (topup_id, at, status) VALUES (?1, ?2, ?3)")
        .doing("recording a top-up's history")?
        .execute(params![
            id.to_string(),
            format_timestamp(at),
            status.as_str()
        ])
        .doing("recording a top-up's history")?;
    Ok(())
}

/// Where the top-ups' history stands: its newest row, and the newest journal row (whose
/// MATCHED rows are the runs' settlements). A run that predates the journal's settlements has
/// a journal mark of 0: its settlements are all history rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    pub history: i64,
    pub journal: i64,
}

/// Where the history stands now: everything up to it is the top-ups' state now.
pub fn history_mark(conn: &Connection) -> Result<Mark, StoreError> {
    let history = conn
        .query_row("SELECT coalesce(max(id), 0) FROM topup_history", [], |r| {
            r.get(0)
        })
        .doing("reading the top-up history")?;
    let journal = super::journal::next_id(conn)? - 1;
    Ok(Mark { history, journal })
}

/// Calls `each` for every top-up that was open when the history stood at `mark`, with its
/// status then, oldest first (the same order as [`for_each_open`]): all of them (a report of
/// summary version 1), or those `which` covers. A run's settlement is final (only a
/// settlement by hand is ever undone), so a top-up that a run up to `mark` settled is not.
pub fn for_each_open_at(
    conn: &Connection,
    mark: Mark,
    which: Option<&StaleSince>,
    each: &mut dyn FnMut(&TopUp) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let sql = format!(
        "SELECT t.id, t.created_at, t.account_group_id, t.cash_amount, t.currency, h.status,
                t.settlement_reference
         FROM topups t
         JOIN topup_history h ON h.id = (
             SELECT max(x.id) FROM topup_history x WHERE x.topup_id = t.id AND x.id <= ?1)
         WHERE h.status IN ('NEW', 'CONFIRMED')
           AND (?2 IS NULL OR t.created_at <= ?2)
           AND (?3 IS NULL OR t.created_at > ?3 OR t.rowid > ?4)
           AND NOT (t.settled_by_transaction <= ?5 AND EXISTS (
               SELECT 1 FROM journal j WHERE j.id = t.settled_by_transaction AND j.outcome = {}))
         ORDER BY t.created_at, t.id",
        super::journal::outcome_code(crate::matching::Outcome::Matched)
    );
    let params = params![
        mark.history,
        which.map(|w| w.until),
        which.and_then(|w| w.after),
        which.and_then(|w| w.added_after),
        mark.journal
    ];
    stream(conn, &sql, params, "reading past open top-ups", each)
}
