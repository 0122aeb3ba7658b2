//! The worklist in SQLite: the exceptions a run leaves open (a copy of each unmatched ledger
//! row's key facts, migration 12), the resolutions that close them, and the returns that send
//! money back. The rest of an exception's transaction is read from the journal.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Doing, StoreError};
use crate::ids::RunId;
use crate::matching::{Category, Outcome};
use crate::topup::format_timestamp;

/// What a resolution does to its exceptions.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Settle,
    Return,
    Dismiss,
}

impl Kind {
    /// The name stored in `resolutions.kind`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Settle => "SETTLE",
            Kind::Return => "RETURN",
            Kind::Dismiss => "DISMISS",
        }
    }

    fn parse(text: &str) -> Result<Kind, StoreError> {
        match text {
            "SETTLE" => Ok(Kind::Settle),
            "RETURN" => Ok(Kind::Return),
            "DISMISS" => Ok(Kind::Dismiss),
            other => Err(StoreError::Corrupt(format!("resolution kind {other:?}"))),
        }
    }
}

pub use crate::ids::RETURN_PREFIX;

/// One exception: the ledger transaction and where the worklist stands with it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Exception {
    /// The ledger id of the transaction.
    pub id: i64,
    /// `open`, or what the resolution in force did: `settled`, `returned`, `dismissed`.
    pub status: &'static str,
    pub reason: String,
    /// When the run that read it started.
    pub opened_at: String,
    pub run_id: String,
    pub amount: String,
    pub currency: String,
    pub direction: String,
    pub reversal: bool,
    pub booking_date: Option<String>,
    /// The account it was booked on (ours).
    pub account: Option<String>,
    pub payer_name: Option<String>,
    pub payer_iban: Option<String>,
    pub remittance: String,
    pub end_to_end_id: Option<String>,
    pub reference: Option<String>,
    /// The top-up its reference names, if any, and that top-up's account group.
    pub topup_id: Option<String>,
    pub account_group_id: Option<String>,
    pub expected_amount: Option<String>,
    pub difference: Option<String>,
    pub suggestion: Option<String>,
    pub statement_file: Option<String>,
    pub entry_number: i64,
    pub resolution_id: Option<i64>,
}

/// Which exceptions a listing wants; `None` is any.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// `Some(true)` open only, `Some(false)` resolved only.
    pub open: Option<bool>,
    pub reason: Option<String>,
    pub currency: Option<String>,
    /// Opened at or after / at or before (timestamps as stored).
    pub opened_from: Option<String>,
    pub opened_until: Option<String>,
    pub account_group_id: Option<String>,
    pub payer_iban: Option<String>,
    /// Only those listed after this exception (a page's cursor).
    pub after: Option<i64>,
}

/// The exception's own columns; the rest of its transaction comes from the journal
/// ([`with_transactions`]).
const SELECT: &str = "SELECT e.tx, e.reason, e.opened_at, e.run_id, e.amount, e.currency,
        e.topup_id, t.account_group_id, e.resolution, r.kind
     FROM exceptions e
     LEFT JOIN topups t ON t.id = e.topup_id
     LEFT JOIN resolutions r ON r.id = e.resolution";

fn exception_from_row(row: &Row) -> rusqlite::Result<Exception> {
    let kind: Option<String> = row.get(9)?;
    Ok(Exception {
        id: row.get(0)?,
        status: match kind.as_deref() {
            None => "open",
            Some("SETTLE") => "settled",
            Some("RETURN") => "returned",
            Some(_) => "dismissed",
        },
        reason: row.get(1)?,
        opened_at: row.get(2)?,
        run_id: row.get(3)?,
        amount: row.get(4)?,
        currency: row.get(5)?,
        direction: String::new(),
        reversal: false,
        booking_date: None,
        account: None,
        payer_name: None,
        payer_iban: None,
        remittance: String::new(),
        end_to_end_id: None,
        reference: None,
        topup_id: row.get(6)?,
        account_group_id: row.get(7)?,
        expected_amount: None,
        difference: None,
        suggestion: None,
        statement_file: None,
        entry_number: 0,
        resolution_id: row.get(8)?,
    })
}

/// Fills in each exception's transaction from the journal (each statement file's texts are
/// read once); an exception whose transaction is not in the journal is corrupt.
fn with_transactions(
    conn: &Connection,
    mut exceptions: Vec<Exception>,
) -> Result<Vec<Exception>, StoreError> {
    let ids: Vec<i64> = exceptions.iter().map(|e| e.id).collect();
    let rows = super::journal::rows_by_id(conn, &ids)?;
    for e in &mut exceptions {
        let row = rows.get(&e.id).ok_or_else(|| {
            StoreError::Corrupt(format!("exception {} is not in the journal", e.id))
        })?;
        e.direction = row.direction.code().to_string();
        e.reversal = row.reversal;
        e.booking_date = row.booking_date.map(|d| d.to_string());
        e.account = row.account.as_deref().map(str::to_string);
        e.payer_name = row.counterparty_name().map(str::to_string);
        e.payer_iban = row.counterparty_iban().map(str::to_string);
        e.remittance = row.remittance().to_string();
        e.end_to_end_id = row.end_to_end_id().map(str::to_string);
        e.reference = row.extracted_reference().map(str::to_string);
        e.expected_amount = row.expected_amount.map(|d| d.to_string());
        e.difference = row.difference.map(|d| d.to_string());
        e.suggestion = row.suggestion().map(str::to_string);
        e.statement_file = Some(row.statement_file.to_string());
        e.entry_number = i64::from(row.entry_number);
    }
    Ok(exceptions)
}

/// The exceptions a filter wants, oldest first (open ones through their own index).
pub fn list(conn: &Connection, filter: &Filter) -> Result<Vec<Exception>, StoreError> {
    let open = match filter.open {
        Some(true) => "e.resolution IS NULL",
        Some(false) => "e.resolution IS NOT NULL",
        None => "1",
    };
    let sql = format!(
        "{SELECT} WHERE {open}
           AND (?1 IS NULL OR e.reason = ?1) AND (?2 IS NULL OR e.currency = ?2)
           AND (?3 IS NULL OR e.opened_at >= ?3) AND (?4 IS NULL OR e.opened_at <= ?4)
           AND (?5 IS NULL OR t.account_group_id = ?5) AND (?6 IS NULL OR e.payer_iban = ?6)
           AND (?7 IS NULL OR (e.opened_at, e.tx) > (SELECT opened_at, tx FROM exceptions WHERE tx = ?7))
         ORDER BY e.opened_at, e.tx"
    );
    let mut stmt = conn.prepare(&sql).doing("listing exceptions")?;
    let rows = stmt
        .query_map(
            params![
                filter.reason,
                filter.currency,
                filter.opened_from,
                filter.opened_until,
                filter.account_group_id,
                filter.payer_iban,
                filter.after
            ],
            exception_from_row,
        )
        .doing("listing exceptions")?;
    let listed = rows
        .collect::<rusqlite::Result<_>>()
        .doing("listing exceptions")?;
    with_transactions(conn, listed)
}

/// One exception by its ledger id.
pub fn get(conn: &Connection, id: i64) -> Result<Option<Exception>, StoreError> {
    let found = conn
        .prepare_cached(&format!("{SELECT} WHERE e.tx = ?1"))
        .doing("reading an exception")?
        .query_row([id], exception_from_row)
        .optional()
        .doing("reading an exception")?;
    Ok(with_transactions(conn, found.into_iter().collect())?.pop())
}

/// What the run does for each transaction it records: an unmatched one opens an exception;
/// a debit carrying the end-to-end id of a return recon initiated, for its amount and
/// currency, closes that return (DONE, with a `return.completed` event).
pub fn recorded(
    conn: &Connection,
    run: RunId,
    id: i64,
    row: &crate::row::Row,
) -> Result<(), StoreError> {
    if row.outcome.category() == Category::Unmatched {
        conn.prepare_cached(
            "INSERT INTO exceptions (tx, run_id, opened_at, reason, amount, currency, payer_iban,
                 topup_id)
             VALUES (?1, ?2, (SELECT started_at FROM runs WHERE id = ?2), ?3, ?4, ?5, ?6, ?7)",
        )
        .doing("preparing an exception")?
        .execute(params![
            id,
            run.to_string(),
            row.outcome.as_str(),
            crate::money::format_amount(row.amount, row.currency),
            row.currency.as_str(),
            row.counterparty_iban(),
            row.topup_id.map(|t| t.to_string()),
        ])
        .doing("recording an exception")?;
        return Ok(());
    }
    match row.end_to_end_id() {
        Some(e2e) if row.outcome == Outcome::Debit && e2e.starts_with(RETURN_PREFIX) => {
            close_return(conn, id, e2e, row)
        }
        _ => Ok(()),
    }
}

fn close_return(
    conn: &Connection,
    id: i64,
    e2e: &str,
    row: &crate::row::Row,
) -> Result<(), StoreError> {
    let Some(found) = return_by_end_to_end(conn, e2e)? else {
        return Ok(());
    };
    let same_money = found.amount.parse::<rust_decimal::Decimal>().ok() == Some(row.amount)
        && found.currency == row.currency.as_str();
    if !same_money || !(found.status == "EXPORTED" || found.status == "PENDING") {
        return Ok(());
    }
    let now = Utc::now();
    conn.execute(
        "UPDATE returns SET status = 'DONE', closed_by_tx = ?2, closed_at = ?3 WHERE id = ?1",
        params![found.id, id, format_timestamp(now)],
    )
    .doing("closing a return")?;
    let payload = serde_json::json!({
        "account_group_id": "",
        "return_id": found.id,
        "exception_id": found.exception_id,
        "end_to_end_id": found.end_to_end_id,
        "amount": found.amount,
        "currency": found.currency,
        "creditor_iban": found.creditor_iban,
        "closed_by_transaction": id,
        "closed_at": format_timestamp(now),
    });
    super::outbox::record(
        conn,
        super::outbox::EventType::ReturnCompleted,
        now,
        &payload,
    )
}

/// A resolution as it is recorded.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Resolution {
    pub id: i64,
    pub kind: Kind,
    pub by: String,
    pub at: String,
    pub note: String,
    pub topup_id: Option<String>,
    /// The top-up's status before a settle (what a reopen gives it back).
    pub topup_status_before: Option<String>,
    /// What changed, as recorded.
    pub changes: serde_json::Value,
    pub reopened_at: Option<String>,
    pub reopened_by: Option<String>,
    pub reopen_note: Option<String>,
    /// The ledger ids it resolves.
    pub transactions: Vec<i64>,
}

/// A resolution to record.
pub struct NewResolution<'a> {
    pub kind: Kind,
    pub by: &'a str,
    pub at: DateTime<Utc>,
    pub note: &'a str,
    pub topup: Option<(String, String)>,
    pub changes: serde_json::Value,
    pub transactions: &'a [i64],
}

/// Records a resolution in force for open exceptions; refused (nothing written) when one of
/// them is resolved already.
pub fn insert_resolution(conn: &Connection, new: &NewResolution) -> Result<i64, StoreError> {
    let doing = "recording a resolution";
    conn.execute(
        "INSERT INTO resolutions (kind, resolved_by, resolved_at, note, topup_id, topup_status,
             changes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            new.kind.as_str(),
            new.by,
            format_timestamp(new.at),
            new.note,
            new.topup.as_ref().map(|t| &t.0),
            new.topup.as_ref().map(|t| &t.1),
            new.changes.to_string()
        ],
    )
    .doing(doing)?;
    let id = conn.last_insert_rowid();
    for tx in new.transactions {
        conn.execute(
            "INSERT INTO resolved_transactions (resolution, tx, in_force) VALUES (?1, ?2, 1)",
            params![id, tx],
        )
        .doing(doing)?;
        let opened = conn
            .execute(
                "UPDATE exceptions SET resolution = ?1 WHERE tx = ?2 AND resolution IS NULL",
                params![id, tx],
            )
            .doing(doing)?;
        if opened != 1 {
            return Err(StoreError::Corrupt(format!(
                "exception {tx} was resolved while it was being resolved"
            )));
        }
    }
    Ok(id)
}

/// Records what a resolution changed, once it is known (a return's, after the return is made).
pub fn set_changes(
    conn: &Connection,
    id: i64,
    changes: &serde_json::Value,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE resolutions SET changes = ?2 WHERE id = ?1",
        params![id, changes.to_string()],
    )
    .doing("recording what a resolution changed")?;
    Ok(())
}

const RESOLUTION_COLUMNS: &str = "r.id, r.kind, r.resolved_by, r.resolved_at, r.note, r.topup_id,
    r.topup_status, r.changes, r.reopened_at, r.reopened_by, r.reopen_note";

fn resolution_from_row(row: &Row) -> rusqlite::Result<(Resolution, String)> {
    let changes: String = row.get(7)?;
    Ok((
        Resolution {
            id: row.get(0)?,
            kind: Kind::Dismiss,
            by: row.get(2)?,
            at: row.get(3)?,
            note: row.get(4)?,
            topup_id: row.get(5)?,
            topup_status_before: row.get(6)?,
            changes: serde_json::from_str(&changes).unwrap_or(serde_json::Value::String(changes)),
            reopened_at: row.get(8)?,
            reopened_by: row.get(9)?,
            reopen_note: row.get(10)?,
            transactions: Vec::new(),
        },
        row.get(1)?,
    ))
}

/// Every resolution an exception had, oldest first, in force or reopened.
pub fn history(conn: &Connection, tx: i64) -> Result<Vec<Resolution>, StoreError> {
    let sql = format!(
        "SELECT {RESOLUTION_COLUMNS} FROM resolutions r
         WHERE r.id IN (SELECT resolution FROM resolved_transactions WHERE tx = ?1) ORDER BY r.id"
    );
    let mut stmt = conn.prepare_cached(&sql).doing("reading resolutions")?;
    let rows = stmt
        .query_map([tx], resolution_from_row)
        .doing("reading resolutions")?
        .collect::<rusqlite::Result<Vec<_>>>()
        .doing("reading resolutions")?;
    rows.into_iter().map(|r| complete(conn, r)).collect()
}

/// One resolution by id.
pub fn resolution(conn: &Connection, id: i64) -> Result<Option<Resolution>, StoreError> {
    let sql = format!("SELECT {RESOLUTION_COLUMNS} FROM resolutions r WHERE r.id = ?1");
    let found = conn
        .query_row(&sql, [id], resolution_from_row)
        .optional()
        .doing("reading a resolution")?;
    found.map(|r| complete(conn, r)).transpose()
}

fn complete(
    conn: &Connection,
    (mut r, kind): (Resolution, String),
) -> Result<Resolution, StoreError> {
    r.kind = Kind::parse(&kind)?;
    let mut stmt = conn
        .prepare_cached("SELECT tx FROM resolved_transactions WHERE resolution = ?1 ORDER BY tx")
        .doing("reading a resolution")?;
    r.transactions = stmt
        .query_map([r.id], |row| row.get(0))
        .doing("reading a resolution")?
        .collect::<rusqlite::Result<_>>()
        .doing("reading a resolution")?;
    Ok(r)
}

/// Marks a resolution in force as reopened: its exceptions are open again.
pub fn reopen(
    conn: &Connection,
    id: i64,
    by: &str,
    at: DateTime<Utc>,
    note: &str,
) -> Result<(), StoreError> {
    let doing = "reopening a resolution";
    let changed = conn
        .execute(
            "UPDATE resolutions SET reopened_at = ?2, reopened_by = ?3, reopen_note = ?4
             WHERE id = ?1 AND reopened_at IS NULL",
            params![id, format_timestamp(at), by, note],
        )
        .doing(doing)?;
    if changed != 1 {
        return Err(StoreError::Corrupt(format!(
            "resolution {id} was reopened while it was being reopened"
        )));
    }
    conn.execute(
        "UPDATE resolved_transactions SET in_force = 0 WHERE resolution = ?1",
        [id],
    )
    .doing(doing)?;
    conn.execute(
        "UPDATE exceptions SET resolution = NULL WHERE resolution = ?1",
        [id],
    )
    .doing(doing)?;
    Ok(())
}

/// A return: money going back to a payer.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Return {
    pub id: i64,
    pub resolution_id: i64,
    /// The ledger id of the payment returned.
    pub exception_id: i64,
    pub end_to_end_id: String,
    pub amount: String,
    pub currency: String,
    pub creditor_name: String,
    pub creditor_iban: String,
    /// Our account the payment arrived on, which pays it back.
    pub debtor_account: String,
    pub remittance: String,
    pub status: String,
    pub created_at: String,
    pub exported_at: Option<String>,
    pub message_id: Option<String>,
    pub closed_by_transaction: Option<i64>,
    pub closed_at: Option<String>,
}

const RETURN_COLUMNS: &str = "id, resolution, tx, end_to_end_id, amount, currency, creditor_name,
    creditor_iban, debtor_account, remittance, status, created_at, exported_at, message_id,
    closed_by_tx, closed_at";

fn return_from_row(row: &Row) -> rusqlite::Result<Return> {
    Ok(Return {
        id: row.get(0)?,
        resolution_id: row.get(1)?,
        exception_id: row.get(2)?,
        end_to_end_id: row.get(3)?,
        amount: row.get(4)?,
        currency: row.get(5)?,
        creditor_name: row.get(6)?,
        creditor_iban: row.get(7)?,
        debtor_account: row.get(8)?,
        remittance: row.get(9)?,
        status: row.get(10)?,
        created_at: row.get(11)?,
        exported_at: row.get(12)?,
        message_id: row.get(13)?,
        closed_by_transaction: row.get(14)?,
        closed_at: row.get(15)?,
    })
}

/// A return to create: everything but its id and end-to-end id.
pub struct NewReturn<'a> {
    pub resolution: i64,
    pub tx: i64,
    pub amount: &'a str,
    pub currency: &'a str,
    pub creditor_name: &'a str,
    pub creditor_iban: &'a str,
    pub debtor_account: &'a str,
    pub remittance: &'a str,
    pub at: DateTime<Utc>,
}

/// Creates a PENDING return with recon's end-to-end id for it (`RECON-RET-<id>`).
pub fn insert_return(conn: &Connection, new: &NewReturn) -> Result<Return, StoreError> {
    let id: i64 = conn
        .query_row("SELECT coalesce(max(id), 0) + 1 FROM returns", [], |r| {
            r.get(0)
        })
        .doing("numbering a return")?;
    conn.execute(
        "INSERT INTO returns (id, resolution, tx, end_to_end_id, amount, currency, creditor_name,
             creditor_iban, debtor_account, remittance, status, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'PENDING', ?11)",
        params![
            id,
            new.resolution,
            new.tx,
            format!("{RETURN_PREFIX}{id}"),
            new.amount,
            new.currency,
            new.creditor_name,
            new.creditor_iban,
            new.debtor_account,
            new.remittance,
            format_timestamp(new.at)
        ],
    )
    .doing("recording a return")?;
    return_by_id(conn, id)?.ok_or_else(|| StoreError::Corrupt(format!("return {id} vanished")))
}

fn return_by_id(conn: &Connection, id: i64) -> Result<Option<Return>, StoreError> {
    conn.query_row(
        &format!("SELECT {RETURN_COLUMNS} FROM returns WHERE id = ?1"),
        [id],
        return_from_row,
    )
    .optional()
    .doing("reading a return")
}

fn return_by_end_to_end(conn: &Connection, e2e: &str) -> Result<Option<Return>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {RETURN_COLUMNS} FROM returns WHERE end_to_end_id = ?1"
    ))
    .doing("reading a return")?
    .query_row([e2e], return_from_row)
    .optional()
    .doing("reading a return")
}

/// The return a RETURN resolution created.
pub fn return_of(conn: &Connection, resolution: i64) -> Result<Option<Return>, StoreError> {
    conn.query_row(
        &format!("SELECT {RETURN_COLUMNS} FROM returns WHERE resolution = ?1"),
        [resolution],
        return_from_row,
    )
    .optional()
    .doing("reading a return")
}

/// Every return, or those in one status, oldest first.
pub fn returns(conn: &Connection, status: Option<&str>) -> Result<Vec<Return>, StoreError> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {RETURN_COLUMNS} FROM returns WHERE ?1 IS NULL OR status = ?1 ORDER BY id"
        ))
        .doing("listing returns")?;
    let rows = stmt
        .query_map([status], return_from_row)
        .doing("listing returns")?;
    rows.collect::<rusqlite::Result<_>>()
        .doing("listing returns")
}

/// Moves a return from one status to another (`CANCELLED` on a reopen, `EXPORTED` with the
/// file's message id); refused as corrupt when it is no longer in `from`.
pub fn set_return_status(
    conn: &Connection,
    id: i64,
    from: &str,
    to: &str,
    at: DateTime<Utc>,
    message_id: Option<&str>,
) -> Result<(), StoreError> {
    let changed = conn
        .execute(
            "UPDATE returns SET status = ?3,
                 exported_at = CASE WHEN ?3 = 'EXPORTED' THEN ?4 ELSE exported_at END,
                 message_id = coalesce(?5, message_id)
             WHERE id = ?1 AND status = ?2",
            params![id, from, to, format_timestamp(at), message_id],
        )
        .doing("changing a return's status")?;
    if changed != 1 {
        return Err(StoreError::Corrupt(format!(
            "return {id} changed status while it was being changed"
        )));
    }
    Ok(())
}

/// How many exceptions are open now.
pub fn count_open(conn: &Connection) -> Result<usize, StoreError> {
    conn.query_row(
        "SELECT count(*) FROM exceptions WHERE resolution IS NULL",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as usize)
    .doing("counting open exceptions")
}

/// `recon check`'s invariants of the worklist: (what must hold, a query returning one text
/// per violation).
pub const INVARIANTS: &[(&str, &str)] = &[
    (
        "a resolved exception has exactly one resolution in force, and an open one none",
        "SELECT 'exception ' || e.tx || ' has ' || n.in_force || ' resolution(s) in force but is ' ||
                CASE WHEN e.resolution IS NULL THEN 'open' ELSE 'resolved by ' || e.resolution END
         FROM exceptions e
         JOIN (SELECT e2.tx AS tx,
                      (SELECT count(*) FROM resolved_transactions l JOIN resolutions r ON r.id = l.resolution
                       WHERE l.tx = e2.tx AND r.reopened_at IS NULL) AS in_force,
                      (SELECT count(*) FROM resolved_transactions l JOIN resolutions r ON r.id = l.resolution
                       WHERE l.tx = e2.tx AND r.reopened_at IS NULL AND r.id = e2.resolution) AS named
               FROM exceptions e2) n ON n.tx = e.tx
         WHERE n.in_force <> (e.resolution IS NOT NULL) OR (e.resolution IS NOT NULL AND n.named <> 1)
         UNION ALL
         SELECT 'resolution ' || r.id || ' is ' || CASE WHEN r.reopened_at IS NULL THEN 'in force' ELSE 'reopened' END
                || ' but its transaction ' || l.tx || ' is marked ' || CASE WHEN l.in_force THEN 'in force' ELSE 'reopened' END
         FROM resolved_transactions l JOIN resolutions r ON r.id = l.resolution
         WHERE l.in_force <> (r.reopened_at IS NULL)
         UNION ALL
         SELECT 'resolution ' || l.resolution || ' resolves transaction ' || l.tx || ', which is no exception'
         FROM resolved_transactions l LEFT JOIN exceptions e ON e.tx = l.tx WHERE e.tx IS NULL",
    ),
    (
        "a returned amount is never also settled",
        "SELECT 'transaction ' || l.tx || ' is returned (resolution ' || r.id || ') and also ' ||
                CASE WHEN t.id IS NOT NULL THEN 'settles top-up ' || t.id ELSE 'settled by hand' END
         FROM resolved_transactions l
         JOIN resolutions r ON r.id = l.resolution AND r.kind = 'RETURN' AND r.reopened_at IS NULL
         LEFT JOIN topups t ON t.settled_by_transaction = l.tx
         WHERE t.id IS NOT NULL OR EXISTS (
             SELECT 1 FROM resolved_transactions l2
             JOIN resolutions r2 ON r2.id = l2.resolution AND r2.kind = 'SETTLE' AND r2.reopened_at IS NULL
             WHERE l2.tx = l.tx)
         UNION ALL
         SELECT 'resolution ' || r.id || ' returns money but its return is ' || coalesce(x.status, 'missing')
         FROM resolutions r LEFT JOIN returns x ON x.resolution = r.id
         WHERE r.kind = 'RETURN' AND (x.id IS NULL OR (r.reopened_at IS NULL) = (x.status = 'CANCELLED'))",
    ),
    (
        "a settlement by hand in force has its top-up SETTLED by one of its transactions",
        "SELECT 'resolution ' || r.id || ' settles top-up ' || r.topup_id || ', which is ' ||
                coalesce(t.status, 'missing') || ' by ' || coalesce(t.settled_by_transaction, 'nothing')
         FROM resolutions r LEFT JOIN topups t ON t.id = r.topup_id
         WHERE r.kind = 'SETTLE' AND r.reopened_at IS NULL
           AND (t.id IS NULL OR t.status <> 'SETTLED' OR t.settled_by_transaction NOT IN
                (SELECT tx FROM resolved_transactions WHERE resolution = r.id))",
    ),
    (
        "a DONE return has its closing transaction, a debit in its currency",
        "SELECT 'return ' || x.end_to_end_id || ' is DONE but ' ||
                CASE WHEN bt.id IS NULL THEN 'its closing transaction ' || coalesce(x.closed_by_tx, '(none)') || ' is not in the ledger'
                     ELSE 'transaction ' || bt.id || ' is not a debit of ' || x.currency END
         FROM returns x LEFT JOIN ledger bt ON bt.id = x.closed_by_tx
         WHERE x.status = 'DONE'
           AND (bt.id IS NULL OR bt.direction <> 'DBIT' OR bt.currency <> x.currency)",
    ),
    (
        "every exception is a ledger transaction with an unmatched outcome",
        "SELECT 'exception ' || e.tx || CASE WHEN bt.id IS NULL THEN ' is not in the ledger'
                ELSE ' is ' || bt.outcome || ' in the ledger' END
         FROM exceptions e LEFT JOIN ledger bt ON bt.id = e.tx
         WHERE bt.id IS NULL OR bt.outcome IN ('MATCHED', 'DEBIT', 'NOT_BOOKED', 'ALREADY_PROCESSED')
            OR bt.outcome <> e.reason",
    ),
];

/// Migration 12's data step: the unmatched transactions of the runs before it are open
/// exceptions too, from the night each arrived.
pub(super) fn backfill(conn: &Connection) -> Result<(), StoreError> {
    let doing = "opening the exceptions of earlier runs";
    let unmatched: Vec<&str> = Outcome::ALL
        .into_iter()
        .filter(|o| o.category() == Category::Unmatched)
        .map(|o| o.as_str())
        .collect();
    let marks = vec!["?"; unmatched.len()].join(", ");
    let mut read = conn
        .prepare(&format!(
            "SELECT bt.id, bt.run_id, r.started_at, bt.outcome, bt.amount, bt.currency,
                    bt.counterparty_iban, bt.topup_id
             FROM bank_transactions bt JOIN runs r ON r.id = bt.run_id
             WHERE bt.outcome IN ({marks}) ORDER BY bt.id"
        ))
        .doing(doing)?;
    let mut insert = conn
        .prepare(
            "INSERT INTO exceptions (tx, run_id, opened_at, reason, amount, currency, payer_iban,
                 topup_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .doing(doing)?;
    let mut rows = read
        .query(rusqlite::params_from_iter(&unmatched))
        .doing(doing)?;
    while let Some(r) = rows.next().doing(doing)? {
        let (amount, currency): (String, String) = (r.get(4).doing(doing)?, r.get(5).doing(doing)?);
        let shown = match (amount.parse(), currency.parse()) {
            (Ok(amount), Ok(currency)) => crate::money::format_amount(amount, currency),
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "amount {amount:?} {currency:?}"
                )));
            }
        };
        insert
            .execute(params![
                r.get::<_, i64>(0).doing(doing)?,
                r.get::<_, String>(1).doing(doing)?,
                r.get::<_, String>(2).doing(doing)?,
                r.get::<_, String>(3).doing(doing)?,
                shown,
                currency,
                r.get::<_, Option<String>>(6).doing(doing)?,
                r.get::<_, Option<String>>(7).doing(doing)?,
            ])
            .doing(doing)?;
    }
    Ok(())
}

/// An open exception as the worklist counts it, borrowed from SQLite's row.
pub struct OpenException<'a> {
    pub id: i64,
    pub opened_at: &'a str,
    pub reason: &'a str,
    pub amount: &'a str,
    pub currency: &'a str,
}

/// Calls `each` with every exception open now, oldest first.
pub fn for_each_open(
    conn: &Connection,
    each: &mut dyn FnMut(&OpenException) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let doing = "reading the open exceptions";
    let mut stmt = conn
        .prepare_cached(
            "SELECT tx, opened_at, reason, amount, currency FROM exceptions
             WHERE resolution IS NULL ORDER BY opened_at, tx",
        )
        .doing(doing)?;
    let mut rows = stmt.query([]).doing(doing)?;
    while let Some(r) = rows.next().doing(doing)? {
        let text = |i: usize| r.get_ref(i).and_then(|v| Ok(v.as_str()?)).doing(doing);
        each(&OpenException {
            id: r.get(0).doing(doing)?,
            opened_at: text(1)?,
            reason: text(2)?,
            amount: text(3)?,
            currency: text(4)?,
        })?;
    }
    Ok(())
}

/// A resolution as the worklist names it:
/// (id, kind, by, at, note, reopened by, reopened at, the exceptions it resolves).
pub type ResolvedSince = (
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Vec<i64>,
);

/// The resolutions made after the one numbered `after` (every one when `None`), or reopened at
/// or after `reopened_from`, oldest first.
pub fn resolved_since(
    conn: &Connection,
    after: Option<i64>,
    reopened_from: Option<&str>,
) -> Result<Vec<ResolvedSince>, StoreError> {
    let doing = "reading the resolutions since the previous run";
    let mut stmt = conn
        .prepare_cached(
            "SELECT r.id, r.kind, r.resolved_by, r.resolved_at, r.note, r.reopened_by,
                    r.reopened_at, group_concat(rt.tx)
             FROM resolutions r JOIN resolved_transactions rt ON rt.resolution = r.id
             WHERE ?1 IS NULL OR r.id > ?1 OR r.reopened_at >= ?2
             GROUP BY r.id ORDER BY r.id",
        )
        .doing(doing)?;
    let rows = stmt
        .query_map(params![after, reopened_from], |r| {
            let txs: String = r.get(7)?;
            let mut txs: Vec<i64> = txs.split(',').filter_map(|t| t.parse().ok()).collect();
            txs.sort_unstable();
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                txs,
            ))
        })
        .doing(doing)?;
    rows.collect::<rusqlite::Result<_>>().doing(doing)
}

/// The newest resolution's number (0 before the first): the next night's report names those
/// after it.
pub fn last_resolution(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row("SELECT coalesce(max(id), 0) FROM resolutions", [], |r| {
        r.get(0)
    })
    .doing("reading the resolutions")
}

/// The last resolution a committed run's worklist counted, if its summary has one.
pub fn resolutions_seen_by(conn: &Connection, run: &str) -> Result<Option<i64>, StoreError> {
    conn.query_row(
        "SELECT json_extract(summary_json, '$.worklist.resolutions_seen') FROM runs WHERE id = ?1",
        [run],
        |r| r.get(0),
    )
    .optional()
    .map(Option::flatten)
    .doing("reading the previous run's worklist")
}
