//! The runs: each run, each statement file it read and each statement, for the chain of
//! statements; the bank transactions themselves are in the journal (`store::journal`).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use rusqlite::{Connection, OptionalExtension, params};

use super::{Doing, StoreError};
use crate::ids::RunId;
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

/// Whether earlier runs read a statement of another family of formats than `family` (only
/// then can a transaction repeat one of theirs in another format).
pub fn read_other_families(conn: &Connection, family: &str) -> Result<bool, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT DISTINCT format FROM statement_files WHERE format IS NOT NULL")
        .doing("reading the formats read before")?;
    let formats = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .doing("reading the formats read before")?;
    for format in formats {
        let format = format.doing("reading the formats read before")?;
        if crate::statement::family(&format) != family {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Per-run totals kept next to the run.
pub struct RunTotals {
    pub read: usize,
    pub matched: usize,
    pub unmatched: usize,
    pub ignored: usize,
}

/// Records the end of a run with its totals, its summary and where its report goes (to be
/// published after the commit: [`published`] marks that done).
pub fn finish(
    conn: &Connection,
    run: RunId,
    finished_at: DateTime<Utc>,
    totals: &RunTotals,
    summary_json: &str,
    report_dir: &Path,
) -> Result<(), StoreError> {
    let mark = super::topups::history_mark(conn)?;
    conn.execute(
        "UPDATE runs SET finished_at = ?2, transactions_read = ?3, matched = ?4, unmatched = ?5,
             ignored = ?6, summary_json = ?7, history_mark = ?8, report_dir = ?9,
             journal_mark = ?10
         WHERE id = ?1",
        params![
            run.to_string(),
            format_timestamp(finished_at),
            totals.read as i64,
            totals.matched as i64,
            totals.unmatched as i64,
            totals.ignored as i64,
            summary_json,
            mark.history,
            report_dir.to_string_lossy(),
            mark.journal
        ],
    )
    .doing("recording the end of the run")?;
    Ok(())
}

/// Records that a run's report was published into its directory.
pub fn published(conn: &Connection, run: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE runs SET published_at = ?2 WHERE id = ?1",
        params![run, format_timestamp(at)],
    )
    .doing("recording the report's publication")?;
    Ok(())
}

/// Committed runs whose report was never published (the process stopped between the commit
/// and the renames), oldest first, with their report directories.
pub fn unpublished(conn: &Connection) -> Result<Vec<(String, PathBuf)>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT id, report_dir FROM runs
             WHERE report_dir IS NOT NULL AND published_at IS NULL ORDER BY started_at, id",
        )
        .doing("looking for unpublished reports")?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, PathBuf::from(r.get::<_, String>(1)?)))
        })
        .doing("looking for unpublished reports")?;
    rows.collect::<rusqlite::Result<_>>()
        .doing("looking for unpublished reports")
}

/// The committed run that last read a file with this SHA-256 (not rejecting it), and when.
pub fn read_before(
    conn: &Connection,
    sha256: &str,
) -> Result<Option<(String, String)>, StoreError> {
    conn.query_row(
        "SELECT r.id, r.started_at FROM statement_files f JOIN runs r ON r.id = f.run_id
         WHERE f.sha256 = ?1 AND f.error IS NULL ORDER BY r.started_at DESC, r.id DESC LIMIT 1",
        [sha256],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
    .doing("looking for a statement file read before")
}

/// How an input was read before, as [`first_read`] finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirstRead {
    pub run_id: String,
    pub started_at: String,
    /// The file as that run was given it.
    pub path: String,
    /// `None` for the same bytes (SHA-256); else the statement (id, account) read again.
    pub statement: Option<(String, String)>,
}

/// The run that first read a file with this SHA-256 (not rejecting it), or else one of these
/// statements (id and account): earlier runs, or an earlier input of the run in progress.
pub fn first_read(
    conn: &Connection,
    sha256: &str,
    statements: &[(&str, &str)],
) -> Result<Option<FirstRead>, StoreError> {
    let doing = "looking for a statement file read before";
    let same_bytes = conn
        .prepare_cached(
            "SELECT r.id, r.started_at, f.path FROM statement_files f JOIN runs r ON r.id = f.run_id
             WHERE f.sha256 = ?1 AND f.error IS NULL ORDER BY r.started_at, r.id, f.position LIMIT 1",
        )
        .doing(doing)?
        .query_row([sha256], |r| {
            Ok(FirstRead {
                run_id: r.get(0)?,
                started_at: r.get(1)?,
                path: r.get(2)?,
                statement: None,
            })
        })
        .optional()
        .doing(doing)?;
    if same_bytes.is_some() {
        return Ok(same_bytes);
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT r.id, r.started_at, f.path FROM statements s
             JOIN statement_files f ON f.id = s.file_id JOIN runs r ON r.id = s.run_id
             WHERE s.account = ?2 AND s.statement_id = ?1 ORDER BY s.id LIMIT 1",
        )
        .doing(doing)?;
    for &(id, account) in statements {
        let found = stmt
            .query_row([id, account], |r| {
                Ok(FirstRead {
                    run_id: r.get(0)?,
                    started_at: r.get(1)?,
                    path: r.get(2)?,
                    statement: Some((id.to_string(), account.to_string())),
                })
            })
            .optional()
            .doing(doing)?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// The newest committed run, as the next run measures "since the previous run" from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviousRun {
    pub id: String,
    pub started_at: DateTime<Utc>,
    /// Its stale threshold (absent from summaries that do not record it).
    pub stale_after_days: Option<i64>,
    /// The highest top-up row number it saw (summary version 2 on).
    pub topups_seen: Option<i64>,
}

/// The newest committed run: runs hold the write lock from start to commit, so they never
/// overlap and the newest start is the last commit (ids, time-ordered, break ties). A dry run
/// is rolled back and leaves no run; a run in progress is not visible to another connection.
pub fn previous(conn: &Connection) -> Result<Option<PreviousRun>, StoreError> {
    let doing = "reading the previous run";
    let found: Option<(String, String, Option<i64>, Option<i64>)> = conn
        .query_row(
            "SELECT id, started_at, json_extract(summary_json, '$.stale_after_days'),
                    json_extract(summary_json, '$.newly_stale.topups_seen')
             FROM runs
             WHERE summary_json IS NOT NULL ORDER BY started_at DESC, id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()
        .doing(doing)?;
    let Some((id, started_at, stale_after_days, topups_seen)) = found else {
        return Ok(None);
    };
    let started_at = crate::topup::parse_timestamp(&started_at)
        .map_err(|e| StoreError::Corrupt(format!("run {id}'s start {started_at:?}: {e}")))?;
    Ok(Some(PreviousRun {
        id,
        started_at,
        stale_after_days,
        topups_seen,
    }))
}

/// The report directory of the newest run that recorded one.
pub fn newest_report_dir(conn: &Connection) -> Result<Option<PathBuf>, StoreError> {
    conn.query_row(
        "SELECT report_dir FROM runs WHERE report_dir IS NOT NULL
         ORDER BY started_at DESC, id DESC LIMIT 1",
        [],
        |r| Ok(PathBuf::from(r.get::<_, String>(0)?)),
    )
    .optional()
    .doing("reading the newest run's report directory")
}

/// A past run as `runs list` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunInfo {
    pub id: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub transactions_read: Option<i64>,
    pub matched: Option<i64>,
    pub unmatched: Option<i64>,
    pub ignored: Option<i64>,
    pub inputs: i64,
    pub inputs_rejected: i64,
}

/// Every committed run, newest first.
pub fn list(conn: &Connection) -> Result<Vec<RunInfo>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT r.id, r.started_at, r.finished_at, r.transactions_read, r.matched, r.unmatched,
                    r.ignored,
                    (SELECT count(*) FROM statement_files f WHERE f.run_id = r.id),
                    (SELECT count(*) FROM statement_files f WHERE f.run_id = r.id AND f.error IS NOT NULL)
             FROM runs r ORDER BY r.started_at DESC, r.id DESC",
        )
        .doing("listing runs")?;
    let rows = stmt
        .query_map([], |row| {
            Ok(RunInfo {
                id: row.get(0)?,
                started_at: row.get(1)?,
                finished_at: row.get(2)?,
                transactions_read: row.get(3)?,
                matched: row.get(4)?,
                unmatched: row.get(5)?,
                ignored: row.get(6)?,
                inputs: row.get(7)?,
                inputs_rejected: row.get(8)?,
            })
        })
        .doing("listing runs")?;
    rows.collect::<Result<Vec<_>, _>>().doing("listing runs")
}

/// A past run's stored summary (JSON) and where the top-ups' history stood at its end.
pub fn stored(
    conn: &Connection,
    run: &str,
) -> Result<Option<(String, super::topups::Mark)>, StoreError> {
    conn.query_row(
        "SELECT summary_json, history_mark, coalesce(journal_mark, 0) FROM runs
         WHERE id = ?1 AND summary_json IS NOT NULL",
        [run],
        |row| {
            let mark = super::topups::Mark {
                history: row.get(1)?,
                journal: row.get(2)?,
            };
            Ok((row.get(0)?, mark))
        },
    )
    .optional()
    .doing("reading a run")
}
