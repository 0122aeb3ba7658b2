//! The floor of a night (or an import): what SQLite alone spends writing the rows that a
//! `recon run` (or `recon topups import`) wrote.
//!
//! It copies the database from before (or starts from a new one, for an import), opens it as
//! recon does (same pragmas, one write transaction) and replays the rows from the database
//! after, with one set-based statement per phase: no file to parse, no JSON to build, no
//! report. The rows are read out of AFTER into memory first. The gap between this and recon's
//! own time is what recon spends around SQLite; the floor moves only with the schema, which
//! `--drop-index` and `--no-foreign-keys` cost.
//!
//! ```text
//! cargo run --release --example sqlite_floor -- BEFORE.sqlite AFTER.sqlite
//! cargo run --release --example sqlite_floor -- --from-empty AFTER_IMPORT.sqlite
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use recon::store::{OpenMode, Store};
use rusqlite::Connection;

/// Replays what a run or an import wrote into a copy of the database from before it.
#[derive(Parser)]
struct Args {
    /// BEFORE AFTER: the database before the run, then after it (both only read; the replay
    /// writes a copy of BEFORE in a directory beside it). With --from-empty, only AFTER.
    #[arg(num_args = 1..=2, required = true, value_name = "DATABASE")]
    databases: Vec<PathBuf>,
    /// Starts from a new, empty database instead of BEFORE: the floor of an import into it.
    #[arg(long)]
    from_empty: bool,
    /// Drops this index before the replay, to cost it (repeatable).
    #[arg(long = "drop-index", value_name = "NAME")]
    drop_index: Vec<String>,
    /// Replays with SQLite's foreign keys off, to cost their checks.
    #[arg(long)]
    no_foreign_keys: bool,
}

/// Where the new rows start: the highest key of each table before.
struct Marks {
    topup: i64,
    statement_file: i64,
    statement: i64,
    ledger: i64,
    history: i64,
    event: i64,
}

impl Marks {
    fn read(conn: &Connection, schema: &str) -> rusqlite::Result<Marks> {
        let max = |table: &str, key: &str| -> rusqlite::Result<i64> {
            conn.query_row(
                &format!("SELECT coalesce(max({key}), 0) FROM {schema}.{table}"),
                [],
                |r| r.get(0),
            )
        };
        Ok(Marks {
            topup: max("topups", "rowid")?,
            statement_file: max("statement_files", "id")?,
            statement: max("statements", "id")?,
            ledger: max("journal", "id")?,
            history: max("topup_history", "id")?,
            event: max("events", "seq")?,
        })
    }

    fn keys(&self) -> [i64; 6] {
        [
            self.topup,
            self.statement_file,
            self.statement,
            self.ledger,
            self.history,
            self.event,
        ]
    }
}

/// Refuses a database whose write-ahead log holds changes: copying the file alone would
/// miss them.
fn folded_in(database: &Path) -> anyhow::Result<()> {
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    if fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        bail!(
            "{} holds changes not yet in its database; open and close the database once \
             (e.g. `recon check`) so SQLite folds them in",
            wal.display()
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (before, after) = match (args.from_empty, &args.databases[..]) {
        (false, [before, after]) => (Some(before), after),
        (true, [after]) => (None, after),
        (false, _) => bail!("give BEFORE and AFTER, or --from-empty and AFTER"),
        (true, _) => bail!("with --from-empty, give only AFTER"),
    };
    for database in before.into_iter().chain([after]) {
        folded_in(database)?;
    }
    let beside = before.unwrap_or(after).parent().unwrap_or(".".as_ref());
    let dir = tempfile::tempdir_in(beside).context("creating a directory for the copy")?;
    let copy = dir.path().join("floor.sqlite");
    if let Some(before) = before {
        fs::copy(before, &copy).context("copying BEFORE")?;
        // Flushed now, so that the replay's commit does not pay for the copy's dirty pages.
        fs::File::open(&copy)?.sync_all()?;
    }

    let mut store = Store::open(&copy, OpenMode::CreateIfMissing, Duration::ZERO)?;
    let conn = store.conn();
    for index in &args.drop_index {
        conn.execute_batch(&format!("DROP INDEX \"{}\"", index.replace('"', "\"\"")))
            .with_context(|| format!("dropping index {index}"))?;
    }
    if args.no_foreign_keys {
        conn.pragma_update(None, "foreign_keys", false)?;
    }
    conn.execute("ATTACH ?1 AS night", [after.display().to_string()])?;
    let version = |schema: &str| -> rusqlite::Result<i64> {
        conn.query_row(&format!("PRAGMA {schema}.user_version"), [], |r| r.get(0))
    };
    ensure!(
        version("main")? == version("night")?,
        "BEFORE and AFTER are at different schema versions; run `recon check` on AFTER with \
         this build first"
    );
    let from = Marks::read(conn, "main")?;
    let to = Marks::read(conn, "night")?;
    ensure!(
        from.keys().iter().zip(to.keys()).all(|(f, t)| *f <= t),
        "AFTER holds fewer rows than BEFORE: give the database before, then after"
    );
    ensure!(
        from.keys() != to.keys(),
        "AFTER holds no rows BEFORE does not: give the database before a run or an import, \
         then the same database after it"
    );

    // The new rows are first read out of AFTER into memory (not timed), so that the replay
    // reads nothing from disk but what recon itself would.
    let staging = [
        "CREATE TEMP TABLE new_topups AS SELECT * FROM night.topups WHERE rowid > ?1
             ORDER BY rowid",
        "CREATE TEMP TABLE new_runs AS SELECT * FROM night.runs
             WHERE id NOT IN (SELECT id FROM main.runs)",
        "CREATE TEMP TABLE new_files AS SELECT * FROM night.statement_files WHERE id > ?2",
        "CREATE TEMP TABLE new_statements AS SELECT * FROM night.statements WHERE id > ?3",
        "CREATE TEMP TABLE new_ledger AS SELECT * FROM night.journal WHERE id > ?4",
        "CREATE TEMP TABLE new_texts AS SELECT * FROM night.journal_texts WHERE file_id > ?2",
        "CREATE TEMP TABLE new_processed AS SELECT * FROM night.processed WHERE id > ?4",
        "CREATE TEMP TABLE new_payers AS SELECT * FROM night.payers WHERE id > ?4",
        "CREATE TEMP TABLE new_history AS SELECT * FROM night.topup_history WHERE id > ?5",
        // Top-ups that were there before and changed: settled (or cancelled) since.
        "CREATE TEMP TABLE changed_topups AS SELECT n.* FROM night.topups n
             JOIN main.topups o ON o.id = n.id WHERE n.rowid <= ?1 AND n.status <> o.status",
        "CREATE TEMP TABLE new_events AS SELECT * FROM night.events WHERE seq > ?6",
        "CREATE TEMP TABLE new_settlement_events AS SELECT * FROM night.settlement_events
             WHERE first_seq NOT IN (SELECT first_seq FROM main.settlement_events)",
        "CREATE TEMP TABLE new_settlement_balances AS SELECT * FROM night.settlement_balances
             WHERE first_seq IN (SELECT first_seq FROM new_settlement_events)",
    ];
    let keys = from.keys();
    for sql in staging {
        let mut stmt = conn.prepare(sql)?;
        let wanted = stmt.parameter_count();
        stmt.execute(rusqlite::params_from_iter(&keys[..wanted]))
            .context("reading the new rows out of AFTER")?;
    }

    // A run's order: its row and files while reading, then the settlements with the night's
    // row of their events, then the ledger (the settlements' keys point at it: deferred).
    let phases = [
        (
            "new top-ups",
            "INSERT INTO topups SELECT * FROM new_topups ORDER BY rowid",
        ),
        (
            "the run and its statement files",
            "INSERT INTO runs SELECT * FROM new_runs;
             INSERT INTO statement_files SELECT * FROM new_files;
             INSERT INTO statements SELECT * FROM new_statements;",
        ),
        (
            "settling the top-ups",
            "UPDATE topups AS t SET status = n.status, updated_at = n.updated_at,
                 settled_at = n.settled_at, settled_by_transaction = n.settled_by_transaction,
                 cancelled_at = n.cancelled_at
             FROM changed_topups AS n WHERE t.id = n.id",
        ),
        (
            "their history",
            "INSERT INTO topup_history SELECT * FROM new_history",
        ),
        (
            "their events and cash balances",
            "INSERT INTO events SELECT * FROM new_events;
             INSERT INTO settlement_events SELECT * FROM new_settlement_events;
             INSERT INTO settlement_balances SELECT * FROM new_settlement_balances;
             UPDATE outbox_head SET next_seq = (SELECT next_seq FROM night.outbox_head);
             INSERT OR REPLACE INTO cash_balances SELECT * FROM night.cash_balances;",
        ),
        (
            "journal rows, texts and keys",
            "INSERT INTO journal SELECT * FROM new_ledger;
             INSERT INTO journal_texts SELECT * FROM new_texts;
             INSERT INTO processed SELECT * FROM new_processed ORDER BY key;
             INSERT INTO payers SELECT * FROM new_payers ORDER BY iban, id;",
        ),
        ("commit", ""),
    ];
    let told: i64 = conn.query_row(
        "SELECT coalesce(sum(count), 0) FROM new_settlement_events",
        [],
        |r| r.get(0),
    )?;
    println!(
        "replaying {} new top-ups, {} ledger rows, {} history rows, {} events and {told} told \
         from the journal into {}",
        to.topup - from.topup,
        to.ledger - from.ledger,
        to.history - from.history,
        to.event - from.event,
        match before {
            Some(before) => format!("a copy of {}", before.display()),
            None => "a new database".to_string(),
        }
    );
    let mut total = Duration::ZERO;
    let mut tx = Some(store.write()?);
    for (name, sql) in phases {
        let clock = Instant::now();
        if sql.is_empty() {
            tx.take().expect("one commit").commit()?;
        } else {
            let tx = tx.as_ref().expect("before the commit");
            tx.execute_batch(sql)
                .with_context(|| format!("replaying {name}"))?;
        }
        let took = clock.elapsed();
        total += took;
        println!("{name:<34} {:>7.3} s", took.as_secs_f64());
    }
    println!("{:<34} {:>7.3} s", "all", total.as_secs_f64());
    drop(tx);

    let replayed = Marks::read(store.conn(), "main")?;
    ensure!(
        replayed.keys() == to.keys(),
        "the replay did not reach AFTER's rows"
    );
    Ok(())
}
