//! The run ledger: each run, each statement file it read, and each bank transaction with its
//! identity, outcome and top-up.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Doing, StoreError};
use crate::ids::RunId;
use crate::matching::Outcome;
use crate::row::Row;
use crate::statement::TxIdentity;
use crate::topup::format_timestamp;

/// Records the start of a run.
pub fn start(conn: &Connection, run: RunId, started_at: DateTime<Utc>) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO runs (id, started_at, recon_version) VALUES (?1, ?2, ?3)",
        params![
            run.to_string(),
            format_timestamp(started_at),
            env!("CARGO_PKG_VERSION")
        ],
    )
    .doing("recording the run")?;
    Ok(())
}

/// One input file as the ledger records it.
pub struct FileRecord<'a> {
    pub position: usize,
    pub path: &'a str,
    pub sha256: &'a str,
    pub format: Option<&'a str>,
    pub statement_ids: &'a [String],
    pub transactions: usize,
    pub error: Option<&'a str>,
}

/// Records an input file of a run; returns its ledger id.
pub fn record_file(conn: &Connection, run: RunId, file: &FileRecord) -> Result<i64, StoreError> {
    let ids = serde_json::to_string(file.statement_ids).unwrap_or_default();
    conn.execute(
        "INSERT INTO statement_files
             (run_id, position, path, sha256, format, statement_ids, transactions, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            run.to_string(),
            file.position as i64,
            file.path,
            file.sha256,
            file.format,
            ids,
            file.transactions as i64,
            file.error
        ],
    )
    .doing("recording a statement file")?;
    Ok(conn.last_insert_rowid())
}

/// Records a statement read by a run, as the next link of its account's chain.
pub fn record_statement(
    conn: &Connection,
    run: RunId,
    file_id: i64,
    info: &crate::statement::StatementInfo,
) -> Result<(), StoreError> {
    let point = crate::controls::chain_point(info);
    conn.execute(
        "INSERT INTO statements
             (run_id, file_id, statement_id, account, currency, sequence, opening, closing)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            run.to_string(),
            file_id,
            info.id,
            info.account,
            info.closing
                .as_ref()
                .or(info.opening.as_ref())
                .map(|b| b.currency.to_string()),
            point.sequence.map(|s| s as i64),
            info.opening.as_ref().map(|b| b.amount.to_string()),
            point.closing.map(|c| c.to_string()),
        ],
    )
    .doing("recording a statement")?;
    Ok(())
}

/// Where an account's chain stood after the last statement recorded for it.
pub fn last_chain_point(
    conn: &Connection,
    account: &str,
) -> Result<Option<crate::controls::ChainPoint>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT statement_id, closing, sequence FROM statements WHERE account = ?1
             ORDER BY id DESC LIMIT 1",
        )
        .doing("reading the statement chain")?;
    stmt.query_row([account], |row| {
        let closing: Option<String> = row.get(1)?;
        let sequence: Option<i64> = row.get(2)?;
        Ok(crate::controls::ChainPoint {
            statement: row.get(0)?,
            closing: closing.and_then(|c| c.parse().ok()),
            sequence: sequence.map(|s| s as u64),
        })
    })
    .optional()
    .doing("reading the statement chain")
}

/// Whether an outcome claims the transaction's identity: booked and seen for the first time.
fn claims_identity(outcome: Outcome) -> bool {
    !matches!(outcome, Outcome::NotBooked | Outcome::AlreadyProcessed)
}

/// Records one decided transaction; returns its ledger id.
pub fn record_row(
    conn: &Connection,
    run: RunId,
    file_id: i64,
    row: &Row,
) -> Result<i64, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO bank_transactions (
                 run_id, file_id, entry_number, detail_number, line_number, identity, dedup_key, outcome,
                 topup_id, direction, status_code, reversal, amount, currency, booking_date,
                 value_date, account, statement_id, entry_ref, servicer_ref, end_to_end_id, tx_id,
                 uetr, counterparty_name, counterparty_iban, remittance, extracted_reference,
                 expected_amount, difference, suggestion)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                     ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30)",
        )
        .doing("preparing the transaction insert")?;
    let identity = &row.identity.0[..];
    stmt.execute(params![
        run.to_string(),
        file_id,
        row.entry_number,
        row.detail_number,
        row.line_number.map(|l| l as i64),
        identity,
        claims_identity(row.outcome).then_some(identity),
        row.outcome.as_str(),
        row.topup_id.map(|id| id.to_string()),
        row.direction.code(),
        row.status_code,
        row.reversal,
        row.amount.to_string(),
        row.currency.as_str(),
        row.booking_date.map(|d| d.to_string()),
        row.value_date.map(|d| d.to_string()),
        row.account,
        row.statement_id,
        row.entry_ref,
        row.servicer_ref,
        row.end_to_end_id,
        row.tx_id,
        row.uetr,
        row.counterparty_name,
        row.counterparty_iban,
        row.remittance,
        row.extracted_reference,
        row.expected_amount.map(|d| d.to_string()),
        row.difference.map(|d| d.to_string()),
        row.suggestion,
    ])
    .doing("recording a bank transaction")?;
    Ok(conn.last_insert_rowid())
}

/// Which of these identities earlier runs already processed.
pub fn processed<'a>(
    conn: &Connection,
    identities: impl IntoIterator<Item = &'a TxIdentity>,
) -> Result<HashSet<TxIdentity>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT 1 FROM bank_transactions WHERE dedup_key = ?1")
        .doing("looking up processed transactions")?;
    let mut found = HashSet::new();
    for identity in identities {
        let hit = stmt
            .query_row([&identity.0[..]], |_| Ok(()))
            .optional()
            .doing("looking up processed transactions")?;
        if hit.is_some() {
            found.insert(*identity);
        }
    }
    Ok(found)
}

/// Per-run totals kept next to the run.
pub struct RunTotals {
    pub read: usize,
    pub matched: usize,
    pub unmatched: usize,
    pub ignored: usize,
}

/// Records the end of a run with its totals and summary.
pub fn finish(
    conn: &Connection,
    run: RunId,
    finished_at: DateTime<Utc>,
    totals: &RunTotals,
    summary_json: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE runs SET finished_at = ?2, transactions_read = ?3, matched = ?4, unmatched = ?5,
             ignored = ?6, summary_json = ?7
         WHERE id = ?1",
        params![
            run.to_string(),
            format_timestamp(finished_at),
            totals.read as i64,
            totals.matched as i64,
            totals.unmatched as i64,
            totals.ignored as i64,
            summary_json
        ],
    )
    .doing("recording the end of the run")?;
    Ok(())
}
