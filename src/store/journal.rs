//! The journal: one compact row per bank transaction read (integer keys, amounts as integers,
//! days as integers, the outcome as a code), its texts compressed once per statement file, and
//! the identities processed in a key table whose keys begin with their booking day, so that a
//! night's inserts land together instead of all over a random-hash index.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;

use chrono::NaiveDate;
use rusqlite::{Connection, OptionalExtension, params};
use rust_decimal::Decimal;

use super::{Doing, StoreError};
use crate::ids::{RunId, TopUpId};
use crate::matching::{Original, Outcome};
use crate::row::{Row, TextFields, Texts};
use crate::statement::identity::Evidence;
use crate::statement::{CrossKey, Direction, TxIdentity};

/// The outcome stored as its position here. Append only: a code once written means the same
/// outcome forever.
const OUTCOMES: [Outcome; 12] = [
    Outcome::Matched,
    Outcome::NoReference,
    Outcome::UnknownReference,
    Outcome::AmbiguousReference,
    Outcome::AmountMismatch,
    Outcome::CurrencyMismatch,
    Outcome::AlreadySettled,
    Outcome::TopupCancelled,
    Outcome::Reversal,
    Outcome::Debit,
    Outcome::NotBooked,
    Outcome::AlreadyProcessed,
];

/// The code the journal stores for an outcome.
pub fn outcome_code(outcome: Outcome) -> i64 {
    OUTCOMES
        .iter()
        .position(|o| *o == outcome)
        .expect("every outcome has a code") as i64
}

fn outcome_of(code: i64) -> Result<Outcome, StoreError> {
    usize::try_from(code)
        .ok()
        .and_then(|i| OUTCOMES.get(i).copied())
        .ok_or_else(|| StoreError::Corrupt(format!("outcome code {code}")))
}

/// SQL that spells an outcome code as its name, for `recon check` and the `ledger` view.
pub fn outcome_names_sql(column: &str) -> String {
    let arms: String = OUTCOMES
        .iter()
        .enumerate()
        .map(|(i, o)| format!(" WHEN {i} THEN '{}'", o.as_str()))
        .collect();
    format!("CASE {column}{arms} END")
}

const DEBIT: i64 = 1;
const REVERSAL: i64 = 2;
/// The amount's decimal scale sits above the two flag bits.
const SCALE_SHIFT: u32 = 8;

/// Days since 1970-01-01: a date as the journal stores it.
pub fn day(date: NaiveDate) -> i64 {
    (date - NaiveDate::default()).num_days()
}

fn date_of(day: i64) -> Result<NaiveDate, StoreError> {
    NaiveDate::default()
        .checked_add_signed(chrono::Duration::days(day))
        .ok_or_else(|| StoreError::Corrupt(format!("day {day}")))
}

/// The processed key: the booking day (two bytes, so that a night's keys are neighbours) and
/// the first fourteen bytes of the identity (112 bits never collide by chance).
pub fn processed_key(identity: &TxIdentity, booking_date: Option<NaiveDate>) -> [u8; 16] {
    let day = booking_date.map_or(0, |d| day(d).clamp(0, i64::from(u16::MAX)) as u16);
    let mut key = [0u8; 16];
    key[..2].copy_from_slice(&day.to_be_bytes());
    key[2..].copy_from_slice(&identity.0[..14]);
    key
}

/// Whether an outcome claims the transaction's identity: booked and seen for the first time.
fn claims_identity(outcome: Outcome) -> bool {
    !matches!(outcome, Outcome::NotBooked | Outcome::AlreadyProcessed)
}

/// zstd's level for the texts: level 1 compresses a night's texts about fivefold at a few
/// hundred MB/s; higher levels save little on such short fields.
const ZSTD_LEVEL: i32 = 1;

/// The texts of one statement file's rows, compressed as they are recorded.
struct FileTexts {
    file_id: i64,
    first: i64,
    count: i64,
    encoder: zstd::Encoder<'static, Vec<u8>>,
}

/// Rows per compressed frame of texts: a frame is held in memory while it is written and read
/// whole, and a file of a million rows in one frame held 94 MB twice over (the frame, and
/// SQLite's copy of it); 8,192 rows are under a megabyte and compress as well.
const FRAME_ROWS: i64 = 8192;

/// Records decided transactions in document order, the texts of up to [`FRAME_ROWS`] rows of
/// one file in each compressed frame.
pub struct Writer {
    open: Option<FileTexts>,
    scratch: Vec<u8>,
    frame_rows: i64,
    /// The matched payers' `payers` rows not yet inserted, inserted sorted by their key.
    payers: Vec<(String, i64)>,
}

/// How many `payers` rows wait to be inserted together in key order: IBANs are scattered over
/// the whole index, and a sorted batch changes each of its pages once instead of once per row.
const PAYERS_BATCH: usize = 65_536;

impl Default for Writer {
    fn default() -> Self {
        Writer::new()
    }
}

impl Writer {
    /// A writer with no file begun.
    pub fn new() -> Self {
        Writer {
            open: None,
            scratch: Vec::new(),
            frame_rows: FRAME_ROWS,
            payers: Vec::new(),
        }
    }

    /// A writer of one frame per file, as `journal_texts` held them until migration 14 (for
    /// migration 13, which runs before it).
    fn whole_files() -> Self {
        Writer {
            frame_rows: i64::MAX,
            ..Writer::new()
        }
    }

    /// Records one decided transaction of the file `file_id` under the ledger id `id`.
    pub fn record(
        &mut self,
        conn: &Connection,
        file_id: i64,
        id: i64,
        row: &Row,
    ) -> Result<(), StoreError> {
        let full = |f: &FileTexts| f.file_id != file_id || f.count >= self.frame_rows;
        if self.open.as_ref().is_none_or(full) {
            self.flush(conn)?;
            let encoder = zstd::Encoder::new(Vec::new(), ZSTD_LEVEL)
                .map_err(|e| StoreError::Corrupt(format!("starting to compress texts: {e}")))?;
            self.open = Some(FileTexts {
                file_id,
                first: id,
                count: 0,
                encoder,
            });
        }
        insert_row(conn, file_id, id, row)?;
        if let (Outcome::Matched, Some(iban)) = (row.outcome, row.counterparty_iban()) {
            self.payers.push((iban.to_string(), id));
            if self.payers.len() >= PAYERS_BATCH {
                self.insert_payers(conn)?;
            }
        }
        let open = self.open.as_mut().expect("a file is open");
        self.scratch.clear();
        encode_texts(&mut self.scratch, row);
        open.encoder
            .write_all(&self.scratch)
            .map_err(|e| StoreError::Corrupt(format!("compressing texts: {e}")))?;
        open.count += 1;
        Ok(())
    }

    /// Stores the texts of the file recorded last.
    pub fn finish(mut self, conn: &Connection) -> Result<(), StoreError> {
        self.insert_payers(conn)?;
        self.flush(conn)
    }

    fn insert_payers(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let doing = "recording a bank transaction";
        self.payers.sort_unstable();
        let mut insert = conn
            .prepare_cached("INSERT INTO payers (iban, id) VALUES (?1, ?2)")
            .doing(doing)?;
        for (iban, id) in self.payers.drain(..) {
            insert.execute(params![iban, id]).doing(doing)?;
        }
        Ok(())
    }

    fn flush(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let Some(file) = self.open.take() else {
            return Ok(());
        };
        let texts = file
            .encoder
            .finish()
            .map_err(|e| StoreError::Corrupt(format!("compressing texts: {e}")))?;
        conn.prepare_cached(
            "INSERT INTO journal_texts (file_id, first, count, texts) VALUES (?1, ?2, ?3, ?4)",
        )
        .doing("recording a file's texts")?
        .execute(params![file.file_id, file.first, file.count, texts])
        .doing("recording a file's texts")?;
        Ok(())
    }
}

fn insert_row(conn: &Connection, file_id: i64, id: i64, row: &Row) -> Result<(), StoreError> {
    let doing = "recording a bank transaction";
    let claims = claims_identity(row.outcome);
    let mantissa = i64::try_from(row.amount.mantissa()).map_err(|_| {
        StoreError::Corrupt(format!("amount {} is too large to record", row.amount))
    })?;
    let mut flags = i64::from(row.amount.scale()) << SCALE_SHIFT;
    if row.direction == Direction::Debit {
        flags |= DEBIT;
    }
    if row.reversal {
        flags |= REVERSAL;
    }
    conn.prepare_cached(
        "INSERT INTO journal (id, file_id, entry_number, detail_number, line_number, outcome,
                              flags, amount, currency, booking_day, value_day, topup, cross_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )
    .doing(doing)?
    .execute(params![
        id,
        file_id,
        row.entry_number,
        row.detail_number,
        row.line_number.map(|l| l as i64),
        outcome_code(row.outcome),
        flags,
        mantissa,
        row.currency.as_str(),
        row.booking_date.map(day),
        row.value_date.map(day),
        row.topup_id.map(|t| t.uuid().into_bytes().to_vec()),
        row.cross_key.filter(|_| claims).map(|k| k.0),
    ])
    .doing(doing)?;
    if claims {
        conn.prepare_cached("INSERT INTO processed (key, id) VALUES (?1, ?2)")
            .doing(doing)?
            .execute(params![
                &processed_key(&row.identity, row.booking_date)[..],
                id
            ])
            .doing(doing)?;
    }
    Ok(())
}

/// The texts of a row, in the order [`RowTexts`] reads them back.
fn encode_texts(out: &mut Vec<u8>, row: &Row) {
    out.extend_from_slice(&row.identity.0);
    let amounts = [row.expected_amount, row.difference].map(|a| a.map(|a| a.to_string()));
    let fields: [Option<&str>; TEXT_FIELDS] = [
        Some(&row.status_code),
        row.statement_id.as_deref(),
        row.account.as_deref(),
        row.entry_ref(),
        row.servicer_ref(),
        row.end_to_end_id(),
        row.tx_id(),
        row.uetr(),
        row.counterparty_name(),
        row.counterparty_iban(),
        Some(row.remittance()),
        row.extracted_reference(),
        row.suggestion(),
        amounts[0].as_deref(),
        amounts[1].as_deref(),
    ];
    for field in fields {
        match field {
            // A length one more than the text's, so that 0 says "absent".
            Some(text) => {
                put_varint(out, text.len() as u64 + 1);
                out.extend_from_slice(text.as_bytes());
            }
            None => put_varint(out, 0),
        }
    }
}

const TEXT_FIELDS: usize = 15;

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads the texts of a file's rows back, one row at a time, from its compressed frame.
struct TextsReader<R> {
    input: R,
}

/// One row's texts as stored.
struct RowTexts {
    identity: TxIdentity,
    fields: [Option<String>; TEXT_FIELDS],
}

impl<R: BufRead> TextsReader<R> {
    fn next_row(&mut self) -> Result<RowTexts, StoreError> {
        let mut identity = [0u8; 32];
        self.input.read_exact(&mut identity).map_err(damaged)?;
        let mut fields: [Option<String>; TEXT_FIELDS] = Default::default();
        for field in &mut fields {
            let len = self.varint()?;
            if len > 0 {
                let mut bytes = vec![0; (len - 1) as usize];
                self.input.read_exact(&mut bytes).map_err(damaged)?;
                *field = Some(
                    String::from_utf8(bytes)
                        .map_err(|_| StoreError::Corrupt("a journal text is not UTF-8".into()))?,
                );
            }
        }
        Ok(RowTexts {
            identity: TxIdentity(identity),
            fields,
        })
    }

    fn varint(&mut self) -> Result<u64, StoreError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let mut byte = [0u8];
            self.input.read_exact(&mut byte).map_err(damaged)?;
            value |= u64::from(byte[0] & 0x7f) << shift;
            if byte[0] & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(StoreError::Corrupt(
            "a journal text's length is too long".into(),
        ))
    }
}

fn damaged(e: std::io::Error) -> StoreError {
    StoreError::Corrupt(format!("a file's texts in the journal are damaged: {e}"))
}

/// A journal row's own columns, before its texts join it.
struct Compact {
    id: i64,
    entry_number: u32,
    detail_number: Option<u32>,
    line_number: Option<i64>,
    outcome: i64,
    flags: i64,
    amount: i64,
    currency: String,
    booking_day: Option<i64>,
    value_day: Option<i64>,
    topup: Option<Vec<u8>>,
}

const COMPACT: &str = "id, entry_number, detail_number, line_number, outcome, flags, amount,
                       currency, booking_day, value_day, topup";

fn compact_from_row(row: &rusqlite::Row) -> rusqlite::Result<Compact> {
    Ok(Compact {
        id: row.get(0)?,
        entry_number: row.get(1)?,
        detail_number: row.get(2)?,
        line_number: row.get(3)?,
        outcome: row.get(4)?,
        flags: row.get(5)?,
        amount: row.get(6)?,
        currency: row.get(7)?,
        booking_day: row.get(8)?,
        value_day: row.get(9)?,
        topup: row.get(10)?,
    })
}

fn assemble(compact: Compact, texts: RowTexts, path: &Arc<str>) -> Result<Row, StoreError> {
    let bad = |what: &str, value: &dyn std::fmt::Debug| {
        StoreError::Corrupt(format!("transaction {}: {what} {value:?}", compact.id))
    };
    let scale = (compact.flags >> SCALE_SHIFT) as u32;
    let amount = Decimal::try_from_i128_with_scale(i128::from(compact.amount), scale)
        .map_err(|_| bad("amount", &compact.amount))?;
    let [
        status,
        statement_id,
        account,
        entry_ref,
        servicer_ref,
        e2e,
        tx_id,
        uetr,
        name,
        iban,
        remittance,
        extracted,
        suggestion,
        expected,
        difference,
    ] = texts.fields;
    let decimal = |d: Option<String>| -> Result<Option<Decimal>, StoreError> {
        d.map(|d| d.parse().map_err(|_| bad("amount", &d)))
            .transpose()
    };
    let topup = match compact.topup {
        Some(bytes) => Some(TopUpId::from_uuid(
            uuid::Uuid::from_slice(&bytes).map_err(|_| bad("top-up", &bytes))?,
        )),
        None => None,
    };
    Ok(Row {
        outcome: outcome_of(compact.outcome)?,
        amount,
        currency: compact
            .currency
            .parse()
            .map_err(|_| bad("currency", &compact.currency))?,
        direction: if compact.flags & DEBIT != 0 {
            Direction::Debit
        } else {
            Direction::Credit
        },
        status_code: status.unwrap_or_default().into(),
        reversal: compact.flags & REVERSAL != 0,
        booking_date: compact.booking_day.map(date_of).transpose()?,
        value_date: compact.value_day.map(date_of).transpose()?,
        statement_file: path.clone(),
        statement_id: statement_id.map(Into::into),
        account: account.map(Into::into),
        entry_number: compact.entry_number,
        detail_number: compact.detail_number,
        line_number: compact.line_number.map(|l| l as u64),
        texts: Texts::new(TextFields {
            entry_ref: entry_ref.as_deref(),
            servicer_ref: servicer_ref.as_deref(),
            end_to_end_id: e2e.as_deref(),
            tx_id: tx_id.as_deref(),
            uetr: uetr.as_deref(),
            counterparty_name: name.as_deref(),
            counterparty_iban: iban.as_deref(),
            remittance: remittance.as_deref().unwrap_or_default(),
            extracted_reference: extracted.as_deref(),
            suggestion: suggestion.as_deref(),
        }),
        topup_id: topup,
        expected_amount: decimal(expected)?,
        difference: decimal(difference)?,
        identity: texts.identity,
        // Only a run's deciding compares cross-format keys; no report shows them.
        cross_key: None,
    })
}

/// One stored frame of texts: its file, where its rows begin, how many, and the frame.
struct StoredTexts {
    path: Arc<str>,
    file_id: i64,
    first: i64,
    count: i64,
    texts: Vec<u8>,
}

const STORED_TEXTS: &str = "SELECT sf.path, jt.file_id, jt.first, jt.count, jt.texts
     FROM journal_texts jt JOIN statement_files sf ON sf.id = jt.file_id";

fn stored_from_row(r: &rusqlite::Row) -> rusqlite::Result<StoredTexts> {
    Ok(StoredTexts {
        path: r.get::<_, String>(0)?.into(),
        file_id: r.get(1)?,
        first: r.get(2)?,
        count: r.get(3)?,
        texts: r.get(4)?,
    })
}

/// The rows of one file recorded in the journal, in ledger order, frame by frame, each passed
/// to `keep` with its id; those for which `wanted` holds are assembled.
fn file_rows(
    conn: &Connection,
    file_id: i64,
    wanted: &dyn Fn(i64) -> bool,
    keep: &mut dyn FnMut(i64, Row) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let doing = "reading a file's texts";
    let mut stmt = conn
        .prepare_cached(&format!(
            "{STORED_TEXTS} WHERE jt.file_id = ?1 ORDER BY jt.first"
        ))
        .doing(doing)?;
    let mut frames = stmt.query([file_id]).doing(doing)?;
    while let Some(frame) = frames.next().doing(doing)? {
        frame_rows(conn, &stored_from_row(frame).doing(doing)?, wanted, keep)?;
    }
    Ok(())
}

/// The rows of one frame, as [`file_rows`] (the others' texts are only skipped).
fn frame_rows(
    conn: &Connection,
    stored: &StoredTexts,
    wanted: &dyn Fn(i64) -> bool,
    keep: &mut dyn FnMut(i64, Row) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let doing = "reading a file's transactions";
    let decoder = zstd::Decoder::new(&stored.texts[..]).map_err(damaged)?;
    let mut texts = TextsReader {
        input: BufReader::new(decoder),
    };
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COMPACT} FROM journal WHERE id BETWEEN ?1 AND ?2 AND file_id = ?3 ORDER BY id"
        ))
        .doing(doing)?;
    let rows = stmt
        .query_map(
            params![
                stored.first,
                stored.first + stored.count - 1,
                stored.file_id
            ],
            compact_from_row,
        )
        .doing(doing)?;
    let mut read = 0;
    for compact in rows {
        let compact = compact.doing(doing)?;
        let row_texts = texts.next_row()?;
        read += 1;
        if wanted(compact.id) {
            let id = compact.id;
            keep(id, assemble(compact, row_texts, &stored.path)?)?;
        }
    }
    if read != stored.count {
        return Err(StoreError::Corrupt(format!(
            "file {} has texts for {} transactions from {} but {read} in the journal",
            stored.file_id, stored.count, stored.first
        )));
    }
    Ok(())
}

/// A past run's transactions, in the order the run decided them.
pub fn run_rows(conn: &Connection, run: &str) -> Result<Vec<Row>, StoreError> {
    let mut out = Vec::new();
    for file_id in run_files(conn, run)? {
        file_rows(conn, file_id, &|_| true, &mut |_, row| {
            out.push(row);
            Ok(())
        })?;
    }
    Ok(out)
}

/// The files of a run that recorded transactions, in ledger order.
fn run_files(conn: &Connection, run: &str) -> Result<Vec<i64>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT jt.file_id FROM journal_texts jt JOIN statement_files sf ON sf.id = jt.file_id
             WHERE sf.run_id = ?1 GROUP BY jt.file_id ORDER BY min(jt.first)",
        )
        .doing("reading a run's files")?;
    let ids = stmt
        .query_map([run], |r| r.get(0))
        .doing("reading a run's files")?;
    ids.collect::<rusqlite::Result<_>>()
        .doing("reading a run's files")
}

/// These transactions by ledger id, with their texts (each frame is read once).
pub fn rows_by_id(conn: &Connection, ids: &[i64]) -> Result<BTreeMap<i64, Row>, StoreError> {
    let doing = "reading transactions";
    let mut by_frame: BTreeMap<i64, HashSet<i64>> = BTreeMap::new();
    let mut stmt = conn
        .prepare_cached(
            "SELECT first FROM journal_texts WHERE first <= ?1 ORDER BY first DESC LIMIT 1",
        )
        .doing(doing)?;
    for &id in ids {
        if let Some(first) = stmt
            .query_row([id], |r| r.get::<_, i64>(0))
            .optional()
            .doing(doing)?
        {
            by_frame.entry(first).or_default().insert(id);
        }
    }
    let mut frame = conn
        .prepare_cached(&format!("{STORED_TEXTS} WHERE jt.first = ?1"))
        .doing(doing)?;
    let mut found = BTreeMap::new();
    for (first, ids) in by_frame {
        let stored = frame.query_row([first], stored_from_row).doing(doing)?;
        frame_rows(conn, &stored, &|id| ids.contains(&id), &mut |id, row| {
            found.insert(id, row);
            Ok(())
        })?;
    }
    Ok(found)
}

/// The id the next recorded bank transaction gets (ids are never reused: rows are never
/// deleted).
pub fn next_id(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row("SELECT coalesce(max(id), 0) + 1 FROM journal", [], |r| {
        r.get(0)
    })
    .doing("reading the journal")
}

/// Which of these identities (with their booking dates) earlier runs already processed.
pub fn processed<'a>(
    conn: &Connection,
    identities: impl IntoIterator<Item = (&'a TxIdentity, Option<NaiveDate>)>,
) -> Result<HashSet<TxIdentity>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT 1 FROM processed WHERE key = ?1")
        .doing("looking up processed transactions")?;
    let mut found = HashSet::new();
    for (identity, booked) in identities {
        let hit = stmt
            .query_row([&processed_key(identity, booked)[..]], |_| Ok(()))
            .optional()
            .doing("looking up processed transactions")?;
        if hit.is_some() {
            found.insert(*identity);
        }
    }
    Ok(found)
}

/// The transactions of earlier runs, read from a file of another family of formats than
/// `family`, that have these cross-format keys (a copy is compared with them).
pub fn originals(
    conn: &Connection,
    keys: impl IntoIterator<Item = CrossKey>,
    family: &str,
) -> Result<HashMap<CrossKey, Vec<Original>>, StoreError> {
    let doing = "looking up transactions read before in another format";
    let mut stmt = conn
        .prepare_cached(
            "SELECT j.id, sf.format, sf.run_id, r.started_at FROM journal j
             JOIN statement_files sf ON sf.id = j.file_id JOIN runs r ON r.id = sf.run_id
             WHERE j.cross_key = ?1 ORDER BY j.id",
        )
        .doing(doing)?;
    // (key, id, format, run, run's start) of each candidate from another family of formats.
    let mut wanted: Vec<(CrossKey, i64, String, String, String)> = Vec::new();
    for key in keys {
        let rows = stmt
            .query_map([key.0], |r| {
                Ok((
                    key,
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .doing(doing)?;
        for row in rows {
            let row = row.doing(doing)?;
            if crate::statement::family(&row.2) != family {
                wanted.push(row);
            }
        }
    }
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<i64> = wanted.iter().map(|w| w.1).collect();
    let rows = rows_by_id(conn, &ids)?;
    let mut found: HashMap<CrossKey, Vec<Original>> = HashMap::new();
    for (key, id, format, run, started) in wanted {
        let row = rows
            .get(&id)
            .ok_or_else(|| StoreError::Corrupt(format!("transaction {id} has no texts")))?;
        found
            .entry(key)
            .or_default()
            .push(original(row, &format, &run, &started));
    }
    Ok(found)
}

fn original(row: &Row, format: &str, run: &str, started: &str) -> Original {
    let evidence = Evidence {
        account: row.account.as_deref(),
        counterparty: row.counterparty_iban(),
        references: [
            row.entry_ref(),
            row.servicer_ref(),
            row.end_to_end_id(),
            row.tx_id(),
            row.uetr(),
        ],
        text: row.remittance(),
    }
    .digest();
    let place = crate::matching::describe_place(
        &row.statement_file,
        row.entry_number,
        row.detail_number,
        row.line_number,
    );
    Original {
        family: crate::statement::family(format).to_string(),
        account: row.account.as_deref().map(str::to_string),
        evidence,
        description: format!("{place} (run {run}, {started})"),
    }
}

/// The account groups of a payer's latest settled payments, newest first, at most `limit`.
pub fn payer_account_groups(
    conn: &Connection,
    iban: &str,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    let doing = "looking up suggestions";
    let mut stmt = conn
        .prepare_cached(
            "SELECT t.account_group_id FROM payers p
             JOIN topups t ON t.settled_by_transaction = p.id
             WHERE p.iban = ?1 ORDER BY p.id DESC LIMIT ?2",
        )
        .doing(doing)?;
    let groups = stmt
        .query_map(params![iban, limit as i64], |r| r.get::<_, String>(0))
        .doing(doing)?;
    groups.collect::<rusqlite::Result<_>>().doing(doing)
}

/// Migration 13's data step: every row of `bank_transactions` into the journal, its texts
/// compressed per file, its claimed identity into `processed`, its payer into `payers`.
pub(super) fn from_bank_transactions(conn: &Connection) -> Result<(), StoreError> {
    let doing = "moving the ledger into the journal";
    let mut stmt = conn
        .prepare(
            "SELECT bt.file_id, bt.id, bt.outcome, bt.amount, bt.currency, bt.direction,
                    bt.status_code, bt.reversal, bt.booking_date, bt.value_date, bt.statement_id,
                    bt.account, bt.entry_number, bt.detail_number, bt.line_number, bt.entry_ref,
                    bt.servicer_ref, bt.end_to_end_id, bt.tx_id, bt.uetr, bt.counterparty_name,
                    bt.counterparty_iban, bt.remittance, bt.extracted_reference, bt.topup_id,
                    bt.expected_amount, bt.difference, bt.suggestion, bt.identity, bt.cross_key,
                    bt.dedup_key IS NOT NULL
             FROM bank_transactions bt ORDER BY bt.file_id, bt.id",
        )
        .doing(doing)?;
    let mut rows = stmt.query([]).doing(doing)?;
    let mut writer = Writer::whole_files();
    let path: Arc<str> = "".into();
    while let Some(r) = rows.next().doing(doing)? {
        let file_id: i64 = r.get(0).doing(doing)?;
        let id: i64 = r.get(1).doing(doing)?;
        let (row, claimed) = old_row(r, &path).doing(doing)?;
        let row = row?;
        // A row that claimed its identity under the old key keeps claiming it.
        if claimed != claims_identity(row.outcome) {
            return Err(StoreError::Corrupt(format!(
                "transaction {id} claims its identity with outcome {}",
                row.outcome.as_str()
            )));
        }
        writer.record(conn, file_id, id, &row)?;
    }
    writer.finish(conn)
}

#[allow(clippy::type_complexity)]
fn old_row(
    row: &rusqlite::Row,
    path: &Arc<str>,
) -> rusqlite::Result<(Result<Row, StoreError>, bool)> {
    let text = |i: usize| row.get::<_, String>(i);
    let opt = |i: usize| row.get::<_, Option<String>>(i);
    let bad = |what: &str, value: &str| StoreError::Corrupt(format!("{what} {value:?}"));
    let (outcome, amount, currency, direction) = (text(2)?, text(3)?, text(4)?, text(5)?);
    let (status_code, reversal): (String, bool) = (text(6)?, row.get(7)?);
    let (booking, value) = (opt(8)?, opt(9)?);
    let (statement_id, account) = (opt(10)?, opt(11)?);
    let (entry_number, detail_number, line_number): (u32, Option<u32>, Option<i64>) =
        (row.get(12)?, row.get(13)?, row.get(14)?);
    let refs = [opt(15)?, opt(16)?, opt(17)?, opt(18)?, opt(19)?];
    let (name, iban, remittance, extracted) = (opt(20)?, opt(21)?, text(22)?, opt(23)?);
    let (topup, expected, difference, suggestion) = (opt(24)?, opt(25)?, opt(26)?, opt(27)?);
    let identity: Vec<u8> = row.get(28)?;
    let cross_key: Option<i64> = row.get(29)?;
    let claimed: bool = row.get(30)?;
    let built = (|| {
        let date = |d: Option<String>| -> Result<Option<NaiveDate>, StoreError> {
            d.map(|d| d.parse().map_err(|_| bad("date", &d)))
                .transpose()
        };
        let decimal = |d: Option<String>| -> Result<Option<Decimal>, StoreError> {
            d.map(|d| d.parse().map_err(|_| bad("amount", &d)))
                .transpose()
        };
        let [entry_ref, servicer_ref, e2e, tx_id, uetr] = refs;
        Ok(Row {
            outcome: Outcome::from_name(&outcome).ok_or_else(|| bad("outcome", &outcome))?,
            amount: amount.parse().map_err(|_| bad("amount", &amount))?,
            currency: currency.parse().map_err(|_| bad("currency", &currency))?,
            direction: match direction.as_str() {
                "CRDT" => Direction::Credit,
                "DBIT" => Direction::Debit,
                other => return Err(bad("direction", other)),
            },
            status_code: status_code.into(),
            reversal,
            booking_date: date(booking)?,
            value_date: date(value)?,
            statement_file: path.clone(),
            statement_id: statement_id.map(Into::into),
            account: account.map(Into::into),
            entry_number,
            detail_number,
            line_number: line_number.map(|l| l as u64),
            texts: Texts::new(TextFields {
                entry_ref: entry_ref.as_deref(),
                servicer_ref: servicer_ref.as_deref(),
                end_to_end_id: e2e.as_deref(),
                tx_id: tx_id.as_deref(),
                uetr: uetr.as_deref(),
                counterparty_name: name.as_deref(),
                counterparty_iban: iban.as_deref(),
                remittance: &remittance,
                extracted_reference: extracted.as_deref(),
                suggestion: suggestion.as_deref(),
            }),
            topup_id: topup
                .map(|t| t.parse().map_err(|_| bad("top-up id", &t)))
                .transpose()?,
            expected_amount: decimal(expected)?,
            difference: decimal(difference)?,
            identity: TxIdentity(
                identity
                    .as_slice()
                    .try_into()
                    .map_err(|_| bad("identity", "?"))?,
            ),
            cross_key: cross_key.map(CrossKey),
        })
    })();
    Ok((built, claimed))
}

/// The run a transaction was recorded by.
pub fn run_of(conn: &Connection, id: i64) -> Result<Option<RunId>, StoreError> {
    let run: Option<String> = conn
        .query_row(
            "SELECT sf.run_id FROM journal j JOIN statement_files sf ON sf.id = j.file_id
             WHERE j.id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()
        .doing("reading a transaction's run")?;
    run.map(|r| {
        r.parse()
            .map_err(|_| StoreError::Corrupt(format!("run id {r:?}")))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_codes_round_trip_and_cover_every_outcome() {
        for outcome in Outcome::ALL {
            assert_eq!(outcome_of(outcome_code(outcome)).unwrap(), outcome);
        }
        assert!(outcome_of(99).is_err());
    }

    #[test]
    fn processed_keys_begin_with_the_booking_day() {
        let identity = TxIdentity([9; 32]);
        let day1 = NaiveDate::from_ymd_opt(2026, 12, 6);
        let day2 = NaiveDate::from_ymd_opt(2026, 12, 7);
        let (a, b) = (
            processed_key(&identity, day1),
            processed_key(&identity, day2),
        );
        assert!(a < b);
        assert_eq!(&a[2..], &identity.0[..14]);
        assert_eq!(processed_key(&identity, None)[..2], [0, 0]);
    }

    #[test]
    fn varints_read_back() {
        for value in [0u64, 1, 127, 128, 300, 1 << 20, u64::from(u32::MAX)] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            let mut reader = TextsReader { input: &out[..] };
            assert_eq!(reader.varint().unwrap(), value);
        }
    }
}
