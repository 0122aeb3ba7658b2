//! Everything SQLite: opening and migrating the database, the top-up lifecycle, the run ledger.

pub mod ages;
pub mod check;
pub mod deliveries;
pub mod exceptions;
pub mod hints;
pub mod idempotency;
pub mod journal;
pub mod outbox;
pub mod runs;
mod schema;
mod settlements;
pub mod statements;
pub mod topups;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

pub use schema::APPLICATION_ID;

/// The schema version this release writes (`PRAGMA user_version` after every migration).
pub const SCHEMA_VERSION: usize = schema::MIGRATIONS.len();

/// What can go wrong with the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "no database at {0}; create one with `recon topups import` or `recon topups create`, \
         or check the --db path"
    )]
    Missing(PathBuf),
    #[error(
        "{0} is not a recon database; check the --db path (recon never changes a foreign database)"
    )]
    NotOurs(PathBuf),
    #[error(
        "{path} was written by a newer recon (schema version {found}, this recon knows up to \
         {known}); use that version or a newer one"
    )]
    Newer {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error(
        "another recon process is writing to {0} (a run or an import); try again when it has \
         finished, or give --wait SECONDS"
    )]
    Locked(PathBuf),
    #[error("no top-up with id {0}")]
    TopUpNotFound(String),
    #[error("no exception with id {0} (`recon exceptions list --status all` lists them)")]
    ExceptionNotFound(i64),
    #[error(transparent)]
    Lifecycle(#[from] crate::topup::LifecycleError),
    #[error("{0}")]
    Refused(String),
    #[error("line {line}: {message}")]
    Import { line: u64, message: String },
    #[error("the database holds a value recon cannot read ({0}); run `recon check`")]
    Corrupt(String),
    #[error("database error while {doing}: {source}")]
    Sqlite {
        doing: &'static str,
        source: rusqlite::Error,
    },
}

/// Adds what we were doing to a SQLite error.
pub(crate) trait Doing<T> {
    fn doing(self, doing: &'static str) -> Result<T, StoreError>;
}

impl<T> Doing<T> for rusqlite::Result<T> {
    fn doing(self, doing: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sqlite { doing, source })
    }
}

/// Whether opening may create a new database.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OpenMode {
    CreateIfMissing,
    MustExist,
}

/// An open recon database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) the database, checks it is ours and not newer, and migrates it.
    /// `wait` is how long to wait for another writer before giving up.
    pub fn open(path: &Path, mode: OpenMode, wait: Duration) -> Result<Store, StoreError> {
        if mode == OpenMode::MustExist && !path.exists() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if mode == OpenMode::CreateIfMissing {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let conn = Connection::open_with_flags(path, flags).doing("opening the database")?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store
            .conn
            .busy_timeout(wait)
            .doing("setting the busy timeout")?;
        store.check_ours()?;
        store.migrate()?;
        // A 16 MB page cache: a run appends most of what it writes and settles in table order,
        // so a larger cache mostly holds more memory (48 MB measured within the noise of 16 MB
        // on the 100k night, and 32 MB more at its peak; 128 MB no faster).
        store
            .conn
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
                 PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY;",
            )
            .map_err(|e| store.classify(e, "configuring the database"))?;
        Ok(store)
    }

    /// Opens an existing database read-only (the API's readers): it checks the file is ours,
    /// never migrates, never takes the write lock, and in WAL mode reads what was last
    /// committed while a writer is busy. `wait` bounds the rare waits a reader has (a WAL
    /// recovery).
    pub fn open_read_only(path: &Path, wait: Duration) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        let store = Store {
            conn: open_reader(path)?,
            path: path.to_path_buf(),
        };
        store
            .conn
            .busy_timeout(wait)
            .doing("setting the busy timeout")?;
        store.check_ours()?;
        Ok(store)
    }

    /// Copies the database into `target` with SQLite's online backup API: a consistent
    /// snapshot even while a reader is busy. The copy is written aside and renamed into place.
    pub fn backup(&self, target: &Path) -> Result<(), StoreError> {
        let dir = target
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let temp = tempfile::Builder::new()
            .prefix(".recon-backup.")
            .tempfile_in(dir)
            .map_err(|e| {
                StoreError::Corrupt(format!("cannot create a file in {}: {e}", dir.display()))
            })?;
        {
            let mut copy = Connection::open(temp.path()).doing("creating the backup file")?;
            let backup = rusqlite::backup::Backup::new(&self.conn, &mut copy)
                .doing("starting the backup")?;
            backup
                .run_to_completion(1024, Duration::from_millis(0), None)
                .doing("copying the database")?;
            drop(backup);
            copy.execute_batch("PRAGMA journal_mode = DELETE;")
                .doing("finishing the backup")?;
        }
        temp.persist(target).map_err(|e| {
            StoreError::Corrupt(format!(
                "cannot move the backup to {}: {}",
                target.display(),
                e.error
            ))
        })?;
        Ok(())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for reads outside a write transaction.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Starts the one write transaction of a command; fails with [`StoreError::Locked`] when
    /// another writer holds the database longer than the wait.
    pub fn write(&mut self) -> Result<rusqlite::Transaction<'_>, StoreError> {
        let path = self.path.clone();
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify(&path, e, "starting a write transaction"))
    }

    fn classify(&self, error: rusqlite::Error, doing: &'static str) -> StoreError {
        classify(&self.path, error, doing)
    }

    fn check_ours(&self) -> Result<(), StoreError> {
        let app_id: i32 = self
            .conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(|e| self.classify(e, "reading the database header"))?;
        if app_id == APPLICATION_ID {
            return Ok(());
        }
        let tables: i64 = self
            .conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(|e| self.classify(e, "reading the database header"))?;
        if app_id == 0 && tables == 0 {
            return Ok(());
        }
        Err(StoreError::NotOurs(self.path.clone()))
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let known = schema::MIGRATIONS.len() as i64;
        let version = self.user_version()?;
        if version > known {
            return Err(StoreError::Newer {
                path: self.path.clone(),
                found: version,
                known,
            });
        }
        if version == known {
            return Ok(());
        }
        let tx = self.write()?;
        // Read again under the lock: another process may have migrated meanwhile.
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .doing("reading the schema version")?;
        for (i, migration) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(migration.sql)
                .doing("migrating the schema")?;
            if let Some(then) = migration.then {
                then(&tx)?;
            }
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .doing("migrating the schema")?;
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .doing("migrating the schema")?;
        tx.commit().doing("committing the schema migration")
    }

    fn user_version(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.classify(e, "reading the schema version"))
    }
}

/// Commits a write transaction; `doing` names it in the error.
pub fn commit(tx: rusqlite::Transaction<'_>, doing: &'static str) -> Result<(), StoreError> {
    tx.commit().doing(doing)
}

/// A read-only connection to the database at `path`, to read beside this process's writer
/// (SQLite's default 2 MB page cache: it is for reading through once). In WAL mode it sees
/// what was last committed and never waits for the writer.
pub fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(path, flags)
        .map_err(|e| classify(path, e, "opening the database to read"))
}

/// Every row of a query with three text columns.
pub(crate) fn text_triples(
    conn: &Connection,
    sql: &str,
    doing: &'static str,
) -> Result<Vec<(String, String, String)>, StoreError> {
    let mut stmt = conn.prepare(sql).doing(doing)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .doing(doing)?;
    rows.collect::<rusqlite::Result<_>>().doing(doing)
}

/// Indexes set aside for a bulk load: dropped before it and built again after, inside the same
/// transaction (building an index from sorted data is many times faster than growing it one
/// random insert at a time). Constraint indexes (primary keys, UNIQUE) stay, so duplicates are
/// still refused row by row.
pub(crate) struct SetAside(Vec<String>);

/// Drops the plain indexes of `tables`; give the result to [`restore_indexes`] before commit.
pub(crate) fn set_indexes_aside(
    conn: &Connection,
    tables: &[&str],
) -> Result<SetAside, StoreError> {
    let mut saved = Vec::new();
    for table in tables {
        let mut stmt = conn
            .prepare(
                "SELECT name, sql FROM sqlite_master
                 WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL ORDER BY name",
            )
            .doing("reading the indexes")?;
        let indexes = stmt
            .query_map([table], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .doing("reading the indexes")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .doing("reading the indexes")?;
        for (name, sql) in indexes {
            conn.execute_batch(&format!("DROP INDEX \"{name}\""))
                .doing("setting an index aside")?;
            saved.push(sql);
        }
    }
    Ok(SetAside(saved))
}

/// Builds the indexes set aside again.
pub(crate) fn restore_indexes(conn: &Connection, saved: SetAside) -> Result<(), StoreError> {
    for sql in saved.0 {
        conn.execute_batch(&sql).doing("building an index again")?;
    }
    Ok(())
}

fn classify(path: &Path, error: rusqlite::Error, doing: &'static str) -> StoreError {
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Locked(path.to_path_buf())
        }
        Some(ErrorCode::NotADatabase) => StoreError::NotOurs(path.to_path_buf()),
        _ => StoreError::Sqlite {
            doing,
            source: error,
        },
    }
}

/// A new database in a scratch directory, for tests (dropped with the directory).
#[cfg(test)]
pub(crate) fn scratch() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        &dir.path().join("db.sqlite"),
        OpenMode::CreateIfMissing,
        Duration::ZERO,
    )
    .unwrap();
    (dir, store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_from_before_the_outbox_gets_its_cash_balances_from_its_settled_topups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(schema::MIGRATIONS[0].sql).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.pragma_update(None, "application_id", APPLICATION_ID)
                .unwrap();
            for (id, amount, status) in [
                ("00000000-0000-4000-8000-000000000001", "200.00", "SETTLED"),
                ("00000000-0000-4000-8000-000000000002", "0.10", "SETTLED"),
                ("00000000-0000-4000-8000-000000000003", "99.00", "CONFIRMED"),
            ] {
                conn.execute(
                    "INSERT INTO topups (id, created_at, account_group_id, cash_amount, currency,
                         status, settlement_reference, updated_at)
                     VALUES (?1, '2026-11-01T00:00:00Z', '1ea60f56-b67b-61fc-829a-0242ac130003',
                             ?2, 'EUR', ?3, ?1, '2026-11-01T00:00:00Z')",
                    [id, amount, status],
                )
                .unwrap();
            }
        }
        let store = Store::open(&path, OpenMode::MustExist, Duration::ZERO).unwrap();
        let balance =
            outbox::balance(store.conn(), "1ea60f56-b67b-61fc-829a-0242ac130003", "EUR").unwrap();
        assert_eq!(balance, Some("200.10".parse().unwrap()));
        let events: i64 = store
            .conn()
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(events, 0, "the past is not announced again");
    }

    #[test]
    fn the_settlement_keys_are_checked_at_commit_and_still_refuse_a_missing_row() {
        let (_dir, mut store) = scratch();
        let deferred: i64 = store
            .conn()
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table'
                     AND sql LIKE '%REFERENCES %(id) DEFERRABLE INITIALLY DEFERRED%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(deferred, 2, "topups and topup_history");
        const TOPUP: &str = "00000000-0000-4000-8000-000000000001";
        store
            .conn()
            .execute(
                "INSERT INTO topups (id, created_at, account_group_id, cash_amount, currency,
                     status, settlement_reference, updated_at)
                 VALUES (?1, '2026-11-01T00:00:00Z', '1ea60f56-b67b-61fc-829a-0242ac130003',
                         '1.00', 'EUR', 'CONFIRMED', ?1, '2026-11-01T00:00:00Z')",
                [TOPUP],
            )
            .unwrap();
        for (write, names) in [
            (
                "UPDATE topups SET status = 'SETTLED', settled_by_transaction = 42",
                "a settlement by a transaction that is not in the ledger",
            ),
            (
                "INSERT INTO topup_history (topup_id, at, status)
                 VALUES ('00000000-0000-4000-8000-000000000009', '2026-11-01T00:00:00Z', 'NEW')",
                "history of a top-up that does not exist",
            ),
        ] {
            let tx = store.write().unwrap();
            // Accepted by the statement, refused by the commit, and nothing of it stays.
            tx.execute(write, []).unwrap();
            let refused = tx.commit().unwrap_err();
            assert!(
                refused.to_string().contains("FOREIGN KEY"),
                "{names}: {refused}"
            );
            let (status, history): (String, i64) = store
                .conn()
                .query_row(
                    "SELECT status, (SELECT count(*) FROM topup_history) FROM topups",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!((status.as_str(), history), ("CONFIRMED", 0), "{names}");
        }
        let check: String = store
            .conn()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }

    #[test]
    fn the_rewritten_check_constraints_still_refuse_what_they_refused() {
        let (_dir, store) = scratch();
        let conn = store.conn();
        let in_lists: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND sql LIKE '%CHECK (%IN (%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(in_lists, 0, "no CHECK builds a temporary table per row");
        let insert_topup = |status: &str| {
            conn.execute(
                "INSERT INTO topups (id, created_at, account_group_id, cash_amount, currency,
                     status, settlement_reference, updated_at)
                 VALUES (?1, '2026-11-01T00:00:00Z', '1ea60f56-b67b-61fc-829a-0242ac130003',
                         '1.00', 'EUR', ?2, ?1, '2026-11-01T00:00:00Z')",
                [
                    format!("00000000-0000-4000-8000-00000000000{}", status.len()),
                    status.to_string(),
                ],
            )
        };
        assert!(insert_topup("PAID").is_err());
        assert!(insert_topup("settled").is_err());
        insert_topup("SETTLED").unwrap();
        let insert_event = |kind: &str, status: &str| {
            conn.execute(
                "INSERT INTO events (id, type, created_at, payload, status)
                 VALUES (?1, ?2, '2026-11-01T00:00:00Z', '{}', ?3)",
                [
                    format!("{kind}/{status}"),
                    kind.to_string(),
                    status.to_string(),
                ],
            )
        };
        assert!(insert_event("topup.paid", "PENDING").is_err());
        assert!(insert_event("topup.settled", "SENT").is_err());
        insert_event("cash_balance.updated", "FAILED").unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }
}
