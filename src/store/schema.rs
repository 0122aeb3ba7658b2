//! The database schema as an append-only list of migrations, applied by `PRAGMA user_version`.
//! Never edit a migration that has shipped: add a new one.

/// `PRAGMA application_id` of a recon database ("RECN").
pub const APPLICATION_ID: i32 = 0x5245_434E;

/// Work on the data that a migration's SQL cannot do exactly (e.g. sums of decimal amounts).
pub type DataStep = fn(&rusqlite::Connection) -> Result<(), super::StoreError>;

/// One step of the schema: its SQL, then its data step if it has one.
pub struct Migration {
    pub sql: &'static str,
    pub then: Option<DataStep>,
}

/// Migration `i` brings the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        sql: r#"
CREATE TABLE topups (
    id                     TEXT PRIMARY KEY NOT NULL,
    created_at             TEXT NOT NULL,
    account_group_id       TEXT NOT NULL,
    cash_amount            TEXT NOT NULL,
    currency               TEXT NOT NULL,
    status                 TEXT NOT NULL CHECK (status IN ('NEW', 'CONFIRMED', 'SETTLED', 'CANCELLED')),
    settlement_reference   TEXT NOT NULL UNIQUE,
    updated_at             TEXT NOT NULL,
    settled_at             TEXT,
    settled_by_transaction INTEGER UNIQUE REFERENCES bank_transactions(id),
    cancelled_at           TEXT
) STRICT;
CREATE INDEX topups_open ON topups (created_at) WHERE status IN ('NEW', 'CONFIRMED');
-- For suggestions: open top-ups by amount, and by each quarter of their reference's 32 digits
-- (a reference within two edits of another shares at least two quarters with it).
CREATE INDEX topups_open_amount ON topups (currency, cash_amount, created_at, id)
    WHERE status IN ('NEW', 'CONFIRMED');
CREATE INDEX topups_open_ref0 ON topups (substr(settlement_reference, 1, 8))
    WHERE status IN ('NEW', 'CONFIRMED');
CREATE INDEX topups_open_ref1 ON topups (substr(settlement_reference, 10, 4) || substr(settlement_reference, 15, 4))
    WHERE status IN ('NEW', 'CONFIRMED');
CREATE INDEX topups_open_ref2 ON topups (substr(settlement_reference, 20, 4) || substr(settlement_reference, 25, 4))
    WHERE status IN ('NEW', 'CONFIRMED');
CREATE INDEX topups_open_ref3 ON topups (substr(settlement_reference, 29, 8))
    WHERE status IN ('NEW', 'CONFIRMED');
CREATE INDEX topups_open_group ON topups (account_group_id, created_at, id)
    WHERE status IN ('NEW', 'CONFIRMED');

-- Every status a top-up took, in order: what was open after any past run can be told again.
CREATE TABLE topup_history (
    id        INTEGER PRIMARY KEY,
    topup_id  TEXT NOT NULL REFERENCES topups(id),
    at        TEXT NOT NULL,
    status    TEXT NOT NULL,
    run_id    TEXT
) STRICT;
CREATE INDEX topup_history_topup ON topup_history (topup_id, id);

CREATE TABLE runs (
    id                TEXT PRIMARY KEY NOT NULL,
    -- The last topup_history row this run saw: the top-ups' state after the run.
    history_mark      INTEGER,
    started_at        TEXT NOT NULL,
    finished_at       TEXT,
    recon_version     TEXT NOT NULL,
    transactions_read INTEGER,
    matched           INTEGER,
    unmatched         INTEGER,
    ignored           INTEGER,
    summary_json      TEXT
) STRICT;

CREATE TABLE statement_files (
    id            INTEGER PRIMARY KEY,
    run_id        TEXT NOT NULL REFERENCES runs(id),
    position      INTEGER NOT NULL,
    path          TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    format        TEXT,
    statement_ids TEXT,
    transactions  INTEGER NOT NULL,
    error         TEXT
) STRICT;
CREATE INDEX statement_files_run ON statement_files (run_id, position);

-- Each statement read, for the chain of statements per account (balances, sequence numbers).
CREATE TABLE statements (
    id            INTEGER PRIMARY KEY,
    run_id        TEXT NOT NULL REFERENCES runs(id),
    file_id       INTEGER NOT NULL REFERENCES statement_files(id),
    statement_id  TEXT,
    account       TEXT,
    currency      TEXT,
    sequence      INTEGER,
    opening       TEXT,
    closing       TEXT
) STRICT;
CREATE INDEX statements_account ON statements (account, id);

CREATE TABLE bank_transactions (
    id                  INTEGER PRIMARY KEY,
    run_id              TEXT NOT NULL REFERENCES runs(id),
    file_id             INTEGER NOT NULL REFERENCES statement_files(id),
    entry_number        INTEGER NOT NULL,
    detail_number       INTEGER,
    line_number         INTEGER,
    identity            BLOB NOT NULL,
    -- The identity again, only for transactions that claim it (booked, first seen): a
    -- bank transaction is processed at most once, whatever file it comes in.
    dedup_key           BLOB UNIQUE,
    outcome             TEXT NOT NULL,
    topup_id            TEXT REFERENCES topups(id),
    direction           TEXT NOT NULL,
    status_code         TEXT NOT NULL,
    reversal            INTEGER NOT NULL,
    amount              TEXT NOT NULL,
    currency            TEXT NOT NULL,
    booking_date        TEXT,
    value_date          TEXT,
    account             TEXT,
    statement_id        TEXT,
    entry_ref           TEXT,
    servicer_ref        TEXT,
    end_to_end_id       TEXT,
    tx_id               TEXT,
    uetr                TEXT,
    counterparty_name   TEXT,
    counterparty_iban   TEXT,
    remittance          TEXT NOT NULL,
    extracted_reference TEXT,
    expected_amount     TEXT,
    difference          TEXT,
    suggestion          TEXT
) STRICT;
CREATE INDEX bank_transactions_run ON bank_transactions (run_id, id);
CREATE INDEX bank_transactions_topup ON bank_transactions (topup_id);
CREATE INDEX bank_transactions_payer ON bank_transactions (counterparty_iban) WHERE outcome = 'MATCHED';
"#,
        then: None,
    },
    // 2: the outbox of events for the platform, the settled cash balance per account group and
    // currency, and the API's idempotency keys.
    Migration {
        sql: r#"
CREATE TABLE events (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    type            TEXT NOT NULL CHECK (type IN ('topup.confirmed', 'topup.settled',
                                                  'topup.cancelled', 'cash_balance.updated')),
    created_at      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_attempt_at TEXT,
    last_error      TEXT,
    delivered_at    TEXT
) STRICT;
CREATE INDEX events_pending ON events (seq) WHERE status = 'PENDING';
CREATE INDEX events_failed ON events (seq) WHERE status = 'FAILED';

CREATE TABLE cash_balances (
    account_group_id TEXT NOT NULL,
    currency         TEXT NOT NULL,
    settled          TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (account_group_id, currency)
) STRICT, WITHOUT ROWID;

CREATE TABLE idempotency_keys (
    key             TEXT PRIMARY KEY NOT NULL,
    request_sha256  TEXT NOT NULL,
    response_status INTEGER NOT NULL,
    response_body   TEXT NOT NULL,
    created_at      TEXT NOT NULL
) STRICT;
"#,
        then: Some(super::outbox::backfill_cash_balances),
    },
    // 3: the reference-quarter indexes cover every top-up instead of only open ones: a settlement
    // then no longer rewrites four index entries (the reference never changes), and the
    // suggestion queries filter the status themselves.
    Migration {
        sql: r#"
DROP INDEX topups_open_ref0;
DROP INDEX topups_open_ref1;
DROP INDEX topups_open_ref2;
DROP INDEX topups_open_ref3;
CREATE INDEX topups_ref0 ON topups (substr(settlement_reference, 1, 8));
CREATE INDEX topups_ref1 ON topups (substr(settlement_reference, 10, 4) || substr(settlement_reference, 15, 4));
CREATE INDEX topups_ref2 ON topups (substr(settlement_reference, 20, 4) || substr(settlement_reference, 25, 4));
CREATE INDEX topups_ref3 ON topups (substr(settlement_reference, 29, 8));
"#,
        then: None,
    },
    // 4: open top-ups are listed oldest first, ties by id: an index in exactly that order
    // streams them without sorting millions of rows.
    Migration {
        sql: r#"
DROP INDEX topups_open;
CREATE INDEX topups_open ON topups (created_at, id) WHERE status IN ('NEW', 'CONFIRMED');
"#,
        then: None,
    },
    // 5: the same CHECK constraints spelled with OR. SQLite evaluates an IN list of more than
    // two constants by building a temporary table, on every INSERT and UPDATE of the row: about
    // a third of the cost of a settlement and of an event. An equivalent CHECK changes no
    // stored data, so it is edited in place as SQLite documents (lang_altertable.html).
    Migration {
        sql: "",
        then: Some(rewrite_checks),
    },
    // 6: nothing looks up ledger rows by top-up (a settlement points at its transaction
    // through `topups.settled_by_transaction`, and top-ups are never deleted), so this index
    // only cost a random insert per recorded transaction.
    Migration {
        sql: "DROP INDEX bank_transactions_topup;",
        then: None,
    },
    // 7: the foreign keys that settling writes are checked at commit. A foreign key checked
    // per statement makes SQLite keep a statement journal for each multi-row write, a copy of
    // every page it touches (a quarter of settling against 2.5M open top-ups); a run settles
    // in one transaction and fails whole, so the check at commit refuses the same. Declaring
    // a constraint deferred changes no stored data, so it is edited in place as migration 5.
    Migration {
        sql: "",
        then: Some(defer_settlement_keys),
    },
    // 8: where each run's report went and when it was published, so that a report whose run
    // committed but whose publication was interrupted is published by the next command.
    Migration {
        sql: "ALTER TABLE runs ADD COLUMN report_dir TEXT;
              ALTER TABLE runs ADD COLUMN published_at TEXT;",
        then: None,
    },
    // 9: each statement file read, kept once by its content: the bank's bytes as evidence,
    // compressed with zstd (the blob last, so that listing never reads it). `statement_files`
    // rows, one per file per run, name it by the same SHA-256 in hex.
    Migration {
        sql: r#"
CREATE TABLE stored_files (
    id            INTEGER PRIMARY KEY,
    sha256        BLOB NOT NULL UNIQUE CHECK (length(sha256) = 32),
    format        TEXT,
    size          INTEGER NOT NULL,
    statement_ids TEXT NOT NULL,
    stored_at     TEXT NOT NULL,
    run_id        TEXT NOT NULL REFERENCES runs(id),
    compressed    BLOB NOT NULL
) STRICT;
"#,
        then: None,
    },
    // 10: only the indexes on topups that save a night more than they cost it (measured in
    // docs/performance.md, 2026-12-07). The suggestions for a night's exceptions come from one
    // pass over the open top-ups in `topups_open`, taken only when an exception asks
    // (`store::hints`), instead of these six:
    // - topups_ref0..3 (a quarter of the reference each): four random inserts per imported
    //   top-up, 170 MB at 2.5M top-ups, for a look-up a pass answers for the whole night;
    // - topups_open_amount and topups_open_group: an insert per top-up and a random delete per
    //   settlement each (settling 16k of 2.5M open took 10.3 s with them, 4.9 s without), for
    //   look-ups the same pass answers.
    // Kept: the primary key and UNIQUE settlement_reference (a night's look-ups by reference,
    // refusing duplicates), UNIQUE settled_by_transaction (a transaction settles one top-up; it
    // cannot be dropped without rebuilding the table), topups_open (the open listing and the
    // pass, oldest first, without sorting).
    Migration {
        sql: "DROP INDEX topups_ref0;
              DROP INDEX topups_ref1;
              DROP INDEX topups_ref2;
              DROP INDEX topups_ref3;
              DROP INDEX topups_open_amount;
              DROP INDEX topups_open_group;",
        then: None,
    },
    // 11: each transaction's cross-format key, for the transactions
    // that claim their identity, so that the same bank transaction delivered later in another
    // format (the bank's CSV of a night read as camt) is found and not processed twice.
    Migration {
        sql: "ALTER TABLE bank_transactions ADD COLUMN cross_key INTEGER;
              CREATE INDEX bank_transactions_cross ON bank_transactions (cross_key)
                  WHERE cross_key IS NOT NULL;",
        then: None,
    },
    // 12: the worklist (issue #25). An exception is a ledger transaction with an unmatched
    // outcome, copied into `exceptions` by the run that recorded it (so that the open ones are
    // found without reading a ledger of millions); it is open while no resolution is in force.
    // A resolution is one act (SETTLE, RETURN or DISMISS) with who, when, a note and what
    // changed; a reopen is recorded on the same row. `resolved_transactions` says which
    // transactions a resolution resolves (a settle may take several payments of one payer),
    // at most one in force per transaction. A RETURN's outgoing payment is in `returns`, from
    // PENDING to EXPORTED (a pain.001 file written) to DONE (seen in a later statement).
    // Ledger ids are plain integers, without a foreign key: the ledger table may move, its ids
    // stay. The events' types gain those of the worklist (see `WORKLIST_EVENTS`).
    Migration {
        sql: r#"
CREATE TABLE exceptions (
    tx          INTEGER PRIMARY KEY,
    run_id      TEXT NOT NULL,
    opened_at   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    amount      TEXT NOT NULL,
    currency    TEXT NOT NULL,
    payer_iban  TEXT,
    topup_id    TEXT,
    -- The resolution in force, NULL while the exception is open.
    resolution  INTEGER REFERENCES resolutions(id)
) STRICT;
CREATE INDEX exceptions_open ON exceptions (opened_at, tx) WHERE resolution IS NULL;
CREATE INDEX exceptions_open_payer ON exceptions (payer_iban, currency) WHERE resolution IS NULL;

CREATE TABLE resolutions (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind = 'SETTLE' OR kind = 'RETURN' OR kind = 'DISMISS'),
    resolved_by   TEXT NOT NULL,
    resolved_at   TEXT NOT NULL,
    note          TEXT NOT NULL CHECK (length(trim(note)) > 0),
    -- A SETTLE's top-up and the status it had before (what a reopen gives it back).
    topup_id      TEXT REFERENCES topups(id),
    topup_status  TEXT,
    -- What changed, as JSON (amounts, difference, balances, the return), for the audit.
    changes       TEXT NOT NULL,
    reopened_at   TEXT,
    reopened_by   TEXT,
    reopen_note   TEXT,
    CHECK ((kind = 'SETTLE') = (topup_id IS NOT NULL)),
    CHECK ((reopened_at IS NULL) = (reopened_by IS NULL) AND (reopened_at IS NULL) = (reopen_note IS NULL))
) STRICT;
-- A top-up is settled by at most one resolution in force.
CREATE UNIQUE INDEX resolutions_settling ON resolutions (topup_id)
    WHERE kind = 'SETTLE' AND reopened_at IS NULL;

CREATE TABLE resolved_transactions (
    resolution  INTEGER NOT NULL REFERENCES resolutions(id),
    tx          INTEGER NOT NULL,
    -- 1 while the resolution is in force, 0 once reopened.
    in_force    INTEGER NOT NULL CHECK (in_force = 0 OR in_force = 1),
    PRIMARY KEY (resolution, tx)
) STRICT, WITHOUT ROWID;
CREATE UNIQUE INDEX resolved_transactions_in_force ON resolved_transactions (tx) WHERE in_force = 1;
CREATE INDEX resolved_transactions_tx ON resolved_transactions (tx);

CREATE TABLE returns (
    id              INTEGER PRIMARY KEY,
    resolution      INTEGER NOT NULL UNIQUE REFERENCES resolutions(id),
    tx              INTEGER NOT NULL,
    end_to_end_id   TEXT NOT NULL UNIQUE CHECK (length(end_to_end_id) BETWEEN 1 AND 35),
    amount          TEXT NOT NULL,
    currency        TEXT NOT NULL,
    creditor_name   TEXT NOT NULL,
    creditor_iban   TEXT NOT NULL,
    debtor_account  TEXT NOT NULL,
    remittance      TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status = 'PENDING' OR status = 'EXPORTED'
                                         OR status = 'DONE' OR status = 'CANCELLED'),
    created_at      TEXT NOT NULL,
    exported_at     TEXT,
    message_id      TEXT,
    closed_by_tx    INTEGER,
    closed_at       TEXT,
    CHECK ((status = 'DONE') = (closed_by_tx IS NOT NULL))
) STRICT;
CREATE INDEX returns_pending ON returns (id) WHERE status = 'PENDING';
"#,
        then: Some(into_worklist),
    },
    // 13: the journal replaces `bank_transactions` (issue 22, measured in docs/performance.md,
    // 2026-12-07): one compact row per bank transaction (amount as an integer with its scale
    // in `flags`, days since 1970, the outcome as a code, the top-up as its 16-byte UUID);
    // the texts of a file's rows in one zstd frame in `journal_texts`; the identities claimed
    // in `processed`, keyed by booking day first so that a night's keys land together; the
    // payers of settled payments in `payers`, for suggestions. `ledger` spells the journal's
    // codes out for people and scripts that query the database. And two indexes on `events`
    // that nothing has read since the delivery state moved to `<db>.deliveries`: every event
    // still added an entry to `events_pending`, never removed.
    Migration {
        sql: r#"
CREATE TABLE journal (
    id            INTEGER PRIMARY KEY,
    file_id       INTEGER NOT NULL REFERENCES statement_files(id),
    entry_number  INTEGER NOT NULL,
    detail_number INTEGER,
    line_number   INTEGER,
    outcome       INTEGER NOT NULL,
    flags         INTEGER NOT NULL,
    amount        INTEGER NOT NULL,
    currency      TEXT NOT NULL,
    booking_day   INTEGER,
    value_day     INTEGER,
    topup         BLOB CHECK (topup IS NULL OR length(topup) = 16),
    cross_key     INTEGER
) STRICT;
CREATE INDEX journal_cross ON journal (cross_key) WHERE cross_key IS NOT NULL;

CREATE TABLE journal_texts (
    file_id INTEGER PRIMARY KEY REFERENCES statement_files(id),
    first   INTEGER NOT NULL,
    count   INTEGER NOT NULL,
    texts   BLOB NOT NULL
) STRICT;

CREATE TABLE processed (
    key BLOB PRIMARY KEY CHECK (length(key) = 16),
    id  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE payers (
    iban TEXT NOT NULL,
    id   INTEGER NOT NULL,
    PRIMARY KEY (iban, id)
) STRICT, WITHOUT ROWID;

DROP INDEX events_pending;
DROP INDEX events_failed;
"#,
        then: Some(into_journal),
    },
    // 14: a run's settlements are no longer written three times (issue 22, item 3). Their
    // `topup.settled` and `cash_balance.updated` events are derived from the journal: a run
    // keeps one row per night in `settlement_events` (the seqs it took, the journal ids it
    // covers) and the cash balances as they were before it in `settlement_balances`; their
    // history is the journal's MATCHED row, which `runs.journal_mark` bounds for re-rendering.
    // `outbox_head` is where the runs' seqs end: a recorded event takes the next seq after it
    // and after every recorded event; `told_from` where the settlement events not yet pruned
    // begin (delivered long ago, they are not told again). And `journal_texts` keyed by each
    // frame's first row, a file's texts in frames of up to 8,192 rows.
    Migration {
        sql: r#"
CREATE TABLE outbox_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    next_seq  INTEGER NOT NULL,
    told_from INTEGER NOT NULL DEFAULT 0
) STRICT;
INSERT INTO outbox_head (id, next_seq) SELECT 1, coalesce(max(seq), 0) + 1 FROM events;

CREATE TABLE settlement_events (
    first_seq  INTEGER PRIMARY KEY,
    count      INTEGER NOT NULL CHECK (count > 0 AND count % 2 = 0),
    run_id     TEXT NOT NULL,
    first_tx   INTEGER NOT NULL,
    last_tx    INTEGER NOT NULL CHECK (last_tx >= first_tx),
    created_at TEXT NOT NULL
) STRICT;

CREATE TABLE settlement_balances (
    first_seq        INTEGER NOT NULL REFERENCES settlement_events(first_seq),
    account_group_id TEXT NOT NULL,
    currency         TEXT NOT NULL,
    before           TEXT NOT NULL,
    PRIMARY KEY (first_seq, account_group_id, currency)
) STRICT, WITHOUT ROWID;

ALTER TABLE runs ADD COLUMN journal_mark INTEGER;

-- The texts of a file in frames of a few thousand rows rather than one frame per file, which
-- a night of a million rows held in memory twice: keyed by the first row of each frame.
CREATE TABLE journal_frames (
    first   INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL REFERENCES statement_files(id),
    count   INTEGER NOT NULL,
    texts   BLOB NOT NULL
) STRICT;
INSERT INTO journal_frames (first, file_id, count, texts)
    SELECT first, file_id, count, texts FROM journal_texts ORDER BY first;
DROP TABLE journal_texts;
ALTER TABLE journal_frames RENAME TO journal_texts;
CREATE INDEX journal_texts_file ON journal_texts (file_id, first);
"#,
        then: None,
    },
    // 15: the open top-ups counted and summed per day of creation (UTC, days since 1970) and
    // currency (issue 22): a report's aging buckets read these few rows, not every open
    // top-up. Every write that opens or closes a top-up keeps them (`store::ages::OpenDays`);
    // `recon check` counts them again from the top-ups.
    Migration {
        sql: r#"
CREATE TABLE open_days (
    day      INTEGER NOT NULL,
    currency TEXT NOT NULL,
    count    INTEGER NOT NULL CHECK (count > 0),
    sum      TEXT NOT NULL,
    PRIMARY KEY (day, currency)
) STRICT, WITHOUT ROWID;
"#,
        then: Some(super::ages::fill_open_days),
    },
];

/// `PRAGMA application_id` of a delivery state file, `<db>.deliveries` ("RECD").
pub const DELIVERIES_APPLICATION_ID: i32 = 0x5245_4344;

/// The schema of the delivery state file beside the database (see `store::deliveries`), by its
/// own `PRAGMA user_version`: migration `i` brings it from version `i` to `i + 1`. The same
/// rule: never edit one that has shipped.
pub const DELIVERIES_MIGRATIONS: &[Migration] = &[
    // 1: per event of the outbox (by its `events.seq`) its delivery status, attempts, next
    // attempt and last error; how far the outbox has been taken in; endpoints that answered
    // 410 Gone. Times are Unix milliseconds.
    Migration {
        sql: r#"
CREATE TABLE deliveries (
    seq                INTEGER PRIMARY KEY,
    account_group_id   TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status = 'PENDING' OR status = 'DELIVERED' OR status = 'FAILED'),
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms INTEGER NOT NULL,
    last_attempt_at_ms INTEGER,
    last_error         TEXT,
    delivered_at_ms    INTEGER
) STRICT;
-- What a delivery reads through in order: every event not delivered yet.
CREATE INDEX deliveries_open ON deliveries (seq) WHERE status <> 'DELIVERED';
-- Failed events by account group: the later events of the group wait behind them.
CREATE INDEX deliveries_failed ON deliveries (account_group_id, seq) WHERE status = 'FAILED';

-- The last event taken in from the outbox (its seq and id, to notice another database).
CREATE TABLE intake (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    seq      INTEGER NOT NULL,
    event_id TEXT
) STRICT;
INSERT INTO intake (id, seq, event_id) VALUES (1, 0, NULL);

CREATE TABLE gone_endpoints (
    url      TEXT PRIMARY KEY NOT NULL,
    at_ms    INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    answer   TEXT NOT NULL
) STRICT;
"#,
        then: None,
    },
    // 2: an attempt's claim, taken (and committed) before posting and cleared with its result:
    // a deliver that stopped in between leaves it, and the next one records that attempt as
    // interrupted before posting the event again.
    Migration {
        sql: r#"
ALTER TABLE deliveries ADD COLUMN claimed_at_ms INTEGER;
CREATE INDEX deliveries_claimed ON deliveries (seq) WHERE claimed_at_ms IS NOT NULL;
"#,
        then: None,
    },
    // 3: delivered events are deleted from the outbox after a retention: how many were, and
    // when last, for `recon check`; and the delivered ones by time, to find them.
    Migration {
        sql: r#"
CREATE TABLE pruned (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    events   INTEGER NOT NULL,
    at_ms    INTEGER
) STRICT;
INSERT INTO pruned (id, events, at_ms) VALUES (1, 0, NULL);
CREATE INDEX deliveries_delivered ON deliveries (delivered_at_ms) WHERE status = 'DELIVERED';
"#,
        then: None,
    },
];

/// The CHECK constraints that migration 5 rewrites: table, as created, as rewritten.
const CHECK_REWRITES: &[(&str, &str, &str)] = &[
    (
        "topups",
        "CHECK (status IN ('NEW', 'CONFIRMED', 'SETTLED', 'CANCELLED'))",
        "CHECK (status = 'NEW' OR status = 'CONFIRMED' OR status = 'SETTLED' OR status = 'CANCELLED')",
    ),
    (
        "events",
        "CHECK (type IN ('topup.confirmed', 'topup.settled',
                                                  'topup.cancelled', 'cash_balance.updated'))",
        "CHECK (type = 'topup.confirmed' OR type = 'topup.settled'
                                    OR type = 'topup.cancelled' OR type = 'cash_balance.updated')",
    ),
    (
        "events",
        "CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED'))",
        "CHECK (status = 'PENDING' OR status = 'DELIVERED' OR status = 'FAILED')",
    ),
];

/// The events' types as migration 5 left them, and with the worklist's (migration 12).
const WORKLIST_EVENTS: &[(&str, &str, &str)] = &[(
    "events",
    CHECK_REWRITES[1].2,
    "CHECK (type = 'topup.confirmed' OR type = 'topup.settled'
                                    OR type = 'topup.cancelled' OR type = 'cash_balance.updated'
                                    OR type = 'exception.returned' OR type = 'exception.dismissed'
                                    OR type = 'exception.reopened' OR type = 'return.exported'
                                    OR type = 'return.completed')",
)];

/// Migration 12's data step: the worklist's event types allowed, the exceptions of earlier runs
/// opened.
fn into_worklist(conn: &rusqlite::Connection) -> Result<(), super::StoreError> {
    rewrite_constraints(conn, "allowing the worklist's events", WORKLIST_EVENTS)?;
    super::exceptions::backfill(conn)
}

/// The foreign keys that migration 7 declares deferred: table, as created, as rewritten.
const DEFERRED_KEYS: &[(&str, &str, &str)] = &[
    (
        "topups",
        "REFERENCES bank_transactions(id)",
        "REFERENCES bank_transactions(id) DEFERRABLE INITIALLY DEFERRED",
    ),
    (
        "topup_history",
        "REFERENCES topups(id)",
        "REFERENCES topups(id) DEFERRABLE INITIALLY DEFERRED",
    ),
];

/// Migration 13's data step: the ledger's rows into the journal, the top-ups' foreign key to
/// the journal, then the old table and its indexes dropped.
fn into_journal(conn: &rusqlite::Connection) -> Result<(), super::StoreError> {
    use super::Doing;
    super::journal::from_bank_transactions(conn)?;
    rewrite_constraints(conn, "pointing settlements at the journal", JOURNAL_KEYS)?;
    let outcome = super::journal::outcome_names_sql("j.outcome");
    conn.execute_batch(&format!(
        "DROP TABLE bank_transactions;
         CREATE VIEW ledger AS
         SELECT j.id, sf.run_id, j.file_id, j.entry_number, j.detail_number, j.line_number,
                {outcome} AS outcome, j.outcome AS outcome_code,
                CASE WHEN j.flags & 1 THEN 'DBIT' ELSE 'CRDT' END AS direction,
                (j.flags & 2) <> 0 AS reversal, j.amount AS amount_units, j.flags >> 8 AS scale,
                j.currency, date(j.booking_day * 86400, 'unixepoch') AS booking_date,
                date(j.value_day * 86400, 'unixepoch') AS value_date,
                CASE WHEN j.topup IS NOT NULL THEN
                lower(substr(hex(j.topup), 1, 8) || '-' || substr(hex(j.topup), 9, 4) || '-' ||
                      substr(hex(j.topup), 13, 4) || '-' || substr(hex(j.topup), 17, 4) || '-' ||
                      substr(hex(j.topup), 21)) END AS topup_id,
                j.cross_key
         FROM journal j JOIN statement_files sf ON sf.id = j.file_id;"
    ))
    .doing("moving the ledger into the journal")
}

/// The foreign key that migration 13 points at the journal: table, as it was, as rewritten.
const JOURNAL_KEYS: &[(&str, &str, &str)] = &[(
    "topups",
    "REFERENCES bank_transactions(id) DEFERRABLE INITIALLY DEFERRED",
    "REFERENCES journal(id) DEFERRABLE INITIALLY DEFERRED",
)];

fn rewrite_checks(conn: &rusqlite::Connection) -> Result<(), super::StoreError> {
    rewrite_constraints(conn, "rewriting CHECK constraints", CHECK_REWRITES)
}

fn defer_settlement_keys(conn: &rusqlite::Connection) -> Result<(), super::StoreError> {
    rewrite_constraints(conn, "deferring foreign keys", DEFERRED_KEYS)
}

/// Edits constraints in the tables' stored SQL, each of which must appear exactly once: only
/// for edits that change no stored data (lang_altertable.html, "other kinds of changes").
fn rewrite_constraints(
    conn: &rusqlite::Connection,
    doing: &'static str,
    rewrites: &[(&str, &str, &str)],
) -> Result<(), super::StoreError> {
    use super::Doing;
    let version: i64 = conn
        .query_row("PRAGMA schema_version", [], |r| r.get(0))
        .doing(doing)?;
    conn.pragma_update(None, "writable_schema", true)
        .doing(doing)?;
    for (table, from, to) in rewrites {
        let sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .doing(doing)?;
        if sql.matches(from).count() != 1 {
            return Err(super::StoreError::Corrupt(format!(
                "table {table} does not have the constraint {from} exactly once"
            )));
        }
        conn.execute(
            "UPDATE sqlite_schema SET sql = ?2 WHERE type = 'table' AND name = ?1",
            [*table, sql.replace(from, to).as_str()],
        )
        .doing(doing)?;
    }
    // A new schema version makes every connection, this one included, read the schema again.
    conn.pragma_update(None, "schema_version", version + 1)
        .doing(doing)?;
    conn.pragma_update(None, "writable_schema", false)
        .doing(doing)
}
