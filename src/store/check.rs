//! `recon check`: SQLite's own integrity check plus recon's invariants, each as a query that
//! lists what breaks it.

use rusqlite::Connection;

use super::{Doing, StoreError};

/// One invariant and what breaks it (empty when it holds).
pub struct Finding {
    pub invariant: &'static str,
    pub problems: Vec<String>,
}

/// (what must hold, a query returning one text per violation). `j.outcome = 0` is the
/// journal's code for MATCHED (`store::journal`: codes are append-only).
const INVARIANTS: &[(&str, &str)] = &[
    (
        "every settled top-up is linked to exactly one MATCHED transaction of its own (or was imported settled, or settled by hand)",
        "SELECT 'top-up ' || t.id || ' is SETTLED but ' ||
                CASE WHEN t.settled_by_transaction IS NULL THEN 'no transaction settled it'
                     ELSE 'transaction ' || t.settled_by_transaction || ' is not a MATCHED payment for it' END
         FROM topups t
         LEFT JOIN ledger bt ON bt.id = t.settled_by_transaction
         WHERE t.status = 'SETTLED'
           AND (bt.id IS NULL OR bt.outcome <> 'MATCHED' OR bt.topup_id IS NOT t.id)
           AND NOT EXISTS (SELECT 1 FROM resolutions r WHERE r.topup_id = t.id AND r.kind = 'SETTLE' AND r.reopened_at IS NULL)
           AND NOT (t.settled_by_transaction IS NULL AND
                    (SELECT h.status FROM topup_history h WHERE h.topup_id = t.id ORDER BY h.id LIMIT 1) = 'SETTLED')",
    ),
    (
        "every MATCHED transaction settled its top-up, and that top-up names it",
        "SELECT 'transaction ' || bt.id || ' (run ' || bt.run_id || ') is MATCHED but top-up ' ||
                coalesce(bt.topup_id, '?') || ' does not name it as its settlement'
         FROM ledger bt
         LEFT JOIN topups t ON t.id = bt.topup_id
         WHERE bt.outcome = 'MATCHED' AND (t.id IS NULL OR t.status <> 'SETTLED' OR t.settled_by_transaction IS NOT bt.id)",
    ),
    (
        "no top-up is settled twice",
        "SELECT 'top-up ' || topup_id || ' has ' || count(*) || ' MATCHED payments'
         FROM ledger WHERE outcome = 'MATCHED' GROUP BY topup_id HAVING count(*) > 1",
    ),
    (
        "every processed transaction has exactly one known outcome",
        "SELECT 'transaction ' || id || ' has outcome code ' || outcome_code FROM ledger
         WHERE outcome IS NULL OR outcome NOT IN ('MATCHED', 'NO_REFERENCE', 'UNKNOWN_REFERENCE', 'AMBIGUOUS_REFERENCE',
               'AMOUNT_MISMATCH', 'CURRENCY_MISMATCH', 'ALREADY_SETTLED', 'TOPUP_CANCELLED', 'REVERSAL',
               'DEBIT', 'NOT_BOOKED', 'ALREADY_PROCESSED')",
    ),
    (
        "a bank transaction claims its identity at most once, and only with a booked first outcome",
        "SELECT 'processed key ' || hex(p.key) || ' is claimed by ' ||
                CASE WHEN l.id IS NULL THEN 'no transaction ' || p.id
                     ELSE 'transaction ' || l.id || ' with outcome ' || l.outcome END
         FROM processed p LEFT JOIN ledger l ON l.id = p.id
         WHERE l.id IS NULL OR l.outcome IN ('NOT_BOOKED', 'ALREADY_PROCESSED')",
    ),
    (
        "each run's conservation holds: read = matched + unmatched + ignored = transactions recorded",
        "SELECT 'run ' || r.id || ': read ' || r.transactions_read || ', matched ' || r.matched ||
                ', unmatched ' || r.unmatched || ', ignored ' || r.ignored || ', recorded ' ||
                coalesce(o.n, 0)
         FROM runs r
         LEFT JOIN (SELECT run_id, count(*) AS n, sum(outcome = 'MATCHED') AS matched,
                           sum(outcome IN ('DEBIT', 'NOT_BOOKED', 'ALREADY_PROCESSED')) AS ignored
                    FROM ledger GROUP BY run_id) o ON o.run_id = r.id
         WHERE r.transactions_read <> r.matched + r.unmatched + r.ignored
            OR r.transactions_read <> coalesce(o.n, 0)
            OR r.matched <> coalesce(o.matched, 0)
            OR r.ignored <> coalesce(o.ignored, 0)
            OR r.transactions_read <> (SELECT coalesce(sum(f.transactions), 0) FROM statement_files f WHERE f.run_id = r.id)",
    ),
    (
        "each run's summary agrees with its recorded transactions, per outcome",
        "SELECT 'run ' || r.id || ': summary says ' || coalesce(json_extract(r.summary_json, '$.outcomes.' || o.outcome || '.count'), 0)
                || ' ' || o.outcome || ', recorded ' || o.n
         FROM runs r JOIN (SELECT run_id, outcome, count(*) AS n FROM ledger GROUP BY run_id, outcome) o
           ON o.run_id = r.id
         WHERE coalesce(json_extract(r.summary_json, '$.outcomes.' || o.outcome || '.count'), 0) <> o.n",
    ),
    (
        "every run finished (a run that did not finish committed nothing)",
        "SELECT 'run ' || id || ' started at ' || started_at || ' has no end' FROM runs WHERE finished_at IS NULL",
    ),
    (
        "each top-up's status is the last one in its history (a run's settlement is its MATCHED transaction)",
        "SELECT 'top-up ' || t.id || ' is ' || t.status || ' but its history ends with ' || coalesce(h.status, 'nothing')
         FROM topups t LEFT JOIN topup_history h ON h.id = (SELECT max(id) FROM topup_history x WHERE x.topup_id = t.id)
         WHERE h.status IS NOT t.status
           AND NOT (t.status = 'SETTLED' AND h.status IN ('NEW', 'CONFIRMED')
                    AND EXISTS (SELECT 1 FROM journal j WHERE j.id = t.settled_by_transaction AND j.outcome = 0))",
    ),
    (
        "each run's settlement events tell exactly its MATCHED transactions",
        "SELECT 'run ' || e.run_id || ' took ' || e.count || ' event seqs but settled ' || coalesce(r.matched, 0) || ' top-ups'
         FROM settlement_events e LEFT JOIN runs r ON r.id = e.run_id
         WHERE e.count <> 2 * coalesce(r.matched, 0)
            OR e.count <> 2 * (SELECT count(*) FROM journal j JOIN statement_files f ON f.id = j.file_id
                               WHERE j.id BETWEEN e.first_tx AND e.last_tx AND j.outcome = 0
                                 AND f.run_id = e.run_id)
         UNION ALL
         SELECT 'run ' || r.id || ' settled ' || r.matched || ' top-ups but tells no events of them'
         FROM runs r
         WHERE r.journal_mark IS NOT NULL AND r.matched > 0
           AND NOT EXISTS (SELECT 1 FROM settlement_events e WHERE e.run_id = r.id)",
    ),
    (
        "every event seq is handed out once",
        "SELECT 'event #' || ev.seq || ' (' || ev.id || ') has a seq of the settlements of run ' || e.run_id
         FROM settlement_events e JOIN events ev ON ev.seq BETWEEN e.first_seq AND e.first_seq + e.count - 1
         UNION ALL
         SELECT 'the settlement events of run ' || b.run_id || ' overlap those of run ' || a.run_id
         FROM settlement_events a JOIN settlement_events b
           ON b.first_seq > a.first_seq AND b.first_seq < a.first_seq + a.count
         UNION ALL
         SELECT 'the next event seq, ' || h.next_seq || ', was already handed out'
         FROM outbox_head h
         WHERE h.next_seq <= (SELECT max(first_seq + count - 1) FROM settlement_events)",
    ),
];

/// The first check: SQLite's own.
pub const INTEGRITY: &str = "the database file is intact (PRAGMA integrity_check)";

/// Runs every check; the first finding is SQLite's own integrity check. With `deep`, every
/// stored statement file is decompressed and hashed too (reading them all).
pub fn run(conn: &Connection, deep: bool) -> Result<Vec<Finding>, StoreError> {
    let mut findings = Vec::new();
    let integrity: Vec<String> = collect(conn, "PRAGMA integrity_check")?
        .into_iter()
        .filter(|line| line != "ok")
        .collect();
    findings.push(Finding {
        invariant: INTEGRITY,
        problems: integrity,
    });
    let foreign = collect(
        conn,
        "SELECT 'row ' || rowid || ' of ' || \"table\" || ' points at a missing ' || parent FROM pragma_foreign_key_check",
    )?;
    findings.push(Finding {
        invariant: "every reference between tables points at an existing row",
        problems: foreign,
    });
    for (invariant, sql) in INVARIANTS.iter().chain(super::exceptions::INVARIANTS) {
        findings.push(Finding {
            invariant,
            problems: collect(conn, sql)?,
        });
    }
    findings.push(Finding {
        invariant: "each cash balance is the sum of its account group's settled top-ups",
        problems: balance_problems(conn)?,
    });
    findings.push(Finding {
        invariant: "the open top-ups' totals per day of creation count and sum the open top-ups",
        problems: super::ages::disagreements(conn)?,
    });
    findings.push(match deep {
        true => Finding {
            invariant: "each stored statement file decompresses to the bytes its SHA-256 names",
            problems: stored_file_problems(conn)?,
        },
        false => Finding {
            invariant: "each stored statement file starts as zstd data (--deep checks its bytes)",
            problems: unframed_stored_files(conn)?,
        },
    });
    Ok(findings)
}

/// The cheap check of stored files: each begins with zstd's magic number. Through the blob
/// handle only the first page of each is read (SQL's substr would read every byte).
fn unframed_stored_files(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut problems = Vec::new();
    for (id, sha256) in super::statements::keys(conn)? {
        let blob = super::statements::blob(conn, id, true)?;
        let mut magic = [0u8; 4];
        if blob.read_at_exact(&mut magic, 0).is_err() || magic != ZSTD_MAGIC {
            problems.push(format!(
                "stored statement file {} does not start as zstd data",
                hex::encode(sha256)
            ));
        }
    }
    Ok(problems)
}

/// The first bytes of a zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Decompresses every stored statement file, one at a time and streaming, and names those
/// whose bytes are not the ones their SHA-256 names.
fn stored_file_problems(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut problems = Vec::new();
    for (id, sha256) in super::statements::keys(conn)? {
        let name = hex::encode(sha256);
        let blob = super::statements::blob(conn, id, true)?;
        match super::statements::decompress(blob, std::io::sink()) {
            Ok((found, _)) if found == sha256 => {}
            Ok((found, size)) => problems.push(format!(
                "stored statement file {name} decompresses to {size} bytes with SHA-256 {}",
                hex::encode(found)
            )),
            Err(e) => problems.push(format!("stored statement file {name}: {e}")),
        }
    }
    Ok(problems)
}

fn balance_problems(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let sums = super::outbox::settled_sums(conn)?;
    let rows = super::text_triples(
        conn,
        "SELECT account_group_id, currency, settled FROM cash_balances",
        "checking the cash balances",
    )?;
    let mut problems = Vec::new();
    let mut seen = 0;
    for (group, currency, text) in rows {
        let stored: Option<rust_decimal::Decimal> = text.parse().ok();
        let expected = sums.get(&(group.clone(), currency.clone())).copied();
        seen += usize::from(expected.is_some());
        if stored != Some(expected.unwrap_or_default()) {
            problems.push(format!(
                "cash balance of {group} in {currency} is {text}, settled top-ups sum to {}",
                expected.unwrap_or_default()
            ));
        }
    }
    if seen < sums.len() {
        problems.push(format!(
            "{} account group(s) have settled top-ups but no cash balance",
            sums.len() - seen
        ));
    }
    Ok(problems)
}

fn collect(conn: &Connection, sql: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare(sql).doing("checking the database")?;
    let rows = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .doing("checking the database")?;
    rows.take(100)
        .collect::<Result<Vec<_>, _>>()
        .doing("checking the database")
}
