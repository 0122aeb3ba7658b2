//! Reading top-up files for `recon topups import`: CSV with the API's field names as header, or
//! JSON lines. Every row is checked before anything is written; the first bad row refuses all.
//! [`differences`] tells a row from the top-up stored under its id (`--skip-existing`).

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::topup::{Status, TopUp};

/// A refused import row.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {message}")]
pub struct ImportError {
    pub line: u64,
    pub message: String,
}

/// One row as written in the file; every field is text, as in the API.
#[derive(Deserialize)]
struct RawTopUp {
    id: Option<String>,
    created_at: Option<String>,
    account_group_id: Option<String>,
    cash_amount: Option<String>,
    currency: Option<String>,
    status: Option<String>,
    settlement_reference: Option<String>,
}

/// The rows of a file, checked, each with the line it starts on, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportRows {
    pub rows: Vec<(u64, TopUp)>,
    /// What each row left out, in the same order (apart, so the rows go to the store as they
    /// are: an import can be millions).
    pub filled: Vec<Filled>,
}

/// The fields a row left out, filled in with their defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filled {
    /// `created_at`, filled with the time of the import.
    pub created_at: bool,
    /// `status`, filled with `CONFIRMED`.
    pub status: bool,
}

/// How a row differs from the top-up stored under its id: one `field: here, stored` each; none
/// when the row is that top-up. A field the row left out is not compared, and a status the
/// stored top-up has reached from the row's through the lifecycle (the row was exported before
/// it settled or was cancelled) is the same top-up.
pub fn differences(new: &TopUp, filled: Filled, stored: &TopUp) -> Vec<String> {
    let mut out = Vec::new();
    let mut differ = |field: &str, here: String, there: String| {
        if here != there {
            out.push(format!("{field} {here} here, {there} stored"));
        }
    };
    if !filled.created_at {
        differ(
            "created_at",
            crate::topup::format_timestamp(new.created_at),
            crate::topup::format_timestamp(stored.created_at),
        );
    }
    differ(
        "account_group_id",
        new.account_group_id.to_string(),
        stored.account_group_id.to_string(),
    );
    // Amounts compare as decimals: 200, 200.0 and 200.00 are the same amount.
    if new.cash_amount != stored.cash_amount {
        differ(
            "cash_amount",
            new.cash_amount_text(),
            stored.cash_amount_text(),
        );
    }
    differ(
        "currency",
        new.currency.to_string(),
        stored.currency.to_string(),
    );
    let moved_on = new.status.check_transition(new.id, stored.status).is_ok();
    if !filled.status && !moved_on {
        differ("status", new.status.to_string(), stored.status.to_string());
    }
    differ(
        "settlement_reference",
        new.settlement_reference.to_string(),
        stored.settlement_reference.to_string(),
    );
    out
}

/// The file's format.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ImportFormat {
    Csv,
    JsonLines,
}

/// Recognises JSON lines by their first non-blank character.
pub fn detect(head: &[u8]) -> ImportFormat {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    match head.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => ImportFormat::JsonLines,
        _ => ImportFormat::Csv,
    }
}

/// Reads and validates every row; `now` fills a missing `created_at`.
pub fn read(
    input: impl Read,
    format: ImportFormat,
    now: DateTime<Utc>,
) -> Result<ImportRows, ImportError> {
    let mut ids = HashSet::new();
    let mut refs = HashSet::new();
    let mut out = ImportRows::default();
    // Each row is checked as it is read: the rows as written are several times the size of
    // the top-ups made from them, and a large file's would all be held at once.
    let mut accept = |line: u64, raw: RawTopUp| -> Result<(), ImportError> {
        let filled = Filled {
            created_at: blank(&raw.created_at),
            status: blank(&raw.status),
        };
        let topup = validate(raw, now).map_err(|message| ImportError { line, message })?;
        let fail = |message: String| ImportError { line, message };
        if !ids.insert(topup.id) {
            return Err(fail(format!(
                "top-up id {} appears twice in the file",
                topup.id
            )));
        }
        if !refs.insert(topup.settlement_reference) {
            return Err(fail(format!(
                "settlement reference {} appears twice in the file",
                topup.settlement_reference
            )));
        }
        out.rows.push((line, topup));
        out.filled.push(filled);
        Ok(())
    };
    match format {
        ImportFormat::Csv => read_csv(input, &mut accept)?,
        ImportFormat::JsonLines => read_json_lines(input, &mut accept)?,
    }
    Ok(out)
}

/// Called with each row as written and its line.
type Accept<'a> = dyn FnMut(u64, RawTopUp) -> Result<(), ImportError> + 'a;

fn read_csv(input: impl Read, accept: &mut Accept) -> Result<(), ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let header_error = |message: String| ImportError { line: 1, message };
    let headers = reader
        .headers()
        .map_err(|e| header_error(format!("cannot read the header: {e}")))?
        .clone();
    for required in [
        "id",
        "account_group_id",
        "cash_amount",
        "currency",
        "settlement_reference",
    ] {
        if !headers
            .iter()
            .any(|h| h.trim_start_matches('\u{feff}') == required)
        {
            return Err(header_error(format!(
                "the header has no column {required:?} (expected \
                 id,created_at,account_group_id,cash_amount,currency,status,settlement_reference)"
            )));
        }
    }
    let mut headers = headers;
    if let Some(first) = headers
        .get(0)
        .map(|h| h.trim_start_matches('\u{feff}').to_string())
    {
        let mut fixed: Vec<String> = headers.iter().map(str::to_string).collect();
        fixed[0] = first;
        headers = csv::StringRecord::from(fixed);
    }
    for record in reader.records() {
        let record = record.map_err(|e| ImportError {
            line: e.position().map_or(0, |p| p.line()),
            message: format!("not a valid CSV row: {e}"),
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let raw: RawTopUp = record
            .deserialize(Some(&headers))
            .map_err(|e| ImportError {
                line,
                message: format!("{e}"),
            })?;
        accept(line, raw)?;
    }
    Ok(())
}

fn read_json_lines(input: impl Read, accept: &mut Accept) -> Result<(), ImportError> {
    for (i, line) in BufReader::new(input).lines().enumerate() {
        let number = i as u64 + 1;
        let line = line.map_err(|e| ImportError {
            line: number,
            message: format!("cannot read: {e}"),
        })?;
        let line = line.trim_start_matches('\u{feff}');
        if line.trim().is_empty() {
            continue;
        }
        let raw: RawTopUp = serde_json::from_str(line).map_err(|e| ImportError {
            line: number,
            message: format!("not a JSON top-up object: {e}"),
        })?;
        accept(number, raw)?;
    }
    Ok(())
}

/// A field left out or empty, which [`validate`] fills with its default.
fn blank(field: &Option<String>) -> bool {
    field.as_deref().is_none_or(|v| v.trim().is_empty())
}

fn validate(raw: RawTopUp, now: DateTime<Utc>) -> Result<TopUp, String> {
    let need = |value: Option<String>, name: &str| {
        value
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| format!("{name} is missing"))
    };
    let field = |name: &str, e: &dyn std::fmt::Display| format!("{name}: {e}");
    let currency = need(raw.currency, "currency")?
        .parse()
        .map_err(|e| field("currency", &e))?;
    let amount_text = need(raw.cash_amount, "cash_amount")?;
    Ok(TopUp {
        id: need(raw.id, "id")?.parse().map_err(|e| field("id", &e))?,
        created_at: match raw.created_at.filter(|v| !v.trim().is_empty()) {
            Some(text) => DateTime::parse_from_rfc3339(text.trim())
                .map_err(|e| {
                    format!(
                        "created_at: {text:?} is not a timestamp like 2020-08-24T14:15:22Z ({e})"
                    )
                })?
                .with_timezone(&Utc),
            None => now,
        },
        account_group_id: need(raw.account_group_id, "account_group_id")?
            .parse()
            .map_err(|e| field("account_group_id", &e))?,
        cash_amount: crate::money::parse_topup_amount(&amount_text, currency)
            .map_err(|e| field("cash_amount", &e))?,
        currency,
        status: match raw.status.filter(|v| !v.trim().is_empty()) {
            Some(text) => text.parse().map_err(|e| field("status", &e))?,
            None => Status::Confirmed,
        },
        settlement_reference: need(raw.settlement_reference, "settlement_reference")?
            .parse()
            .map_err(|e| field("settlement_reference", &e))?,
    })
}

/// Peeks at the first bytes of a reader to detect the format without consuming them.
pub fn detect_buffered<R: BufRead>(reader: &mut R) -> std::io::Result<ImportFormat> {
    Ok(detect(reader.fill_buf()?))
}

#[cfg(test)]
mod tests {
    use super::{ImportFormat, differences, read};
    use crate::topup::Status;

    const HEADER: &str =
        "id,created_at,account_group_id,cash_amount,currency,status,settlement_reference";
    const GROUP: &str = "7d3f5a52-0c1e-4f7b-9a47-1f6f2c1e9b10";
    const T1: &str = "3f1e9c2a-8b4d-4e6f-9a1b-2c3d4e5f6a7b";
    const T2: &str = "0b7c4e8a-55a1-4c2e-8d7f-2a9e1c3b4d5f";

    fn row(id: &str, amount: &str) -> String {
        format!("{id},2020-08-24T14:15:22Z,{GROUP},{amount},EUR,CONFIRMED,{id}")
    }

    #[test]
    fn rows_are_checked_as_read_so_the_first_bad_row_is_named() {
        let now = chrono::Utc::now();
        let good = format!("{HEADER}\n{}\n{}\n", row(T1, "200.00"), row(T2, "10.00"));
        let topups = read(good.as_bytes(), ImportFormat::Csv, now).unwrap();
        assert_eq!(
            topups
                .rows
                .iter()
                .map(|(line, _)| *line)
                .collect::<Vec<_>>(),
            [2, 3]
        );

        // A bad amount on line 3 comes before a row that is not even CSV on line 4.
        let bad = format!(
            "{HEADER}\n{}\n{}\nonly,three,fields\n",
            row(T1, "200.00"),
            row(T2, "10.0O")
        );
        let error = read(bad.as_bytes(), ImportFormat::Csv, now).unwrap_err();
        assert_eq!(error.line, 3, "{error}");
        assert!(error.message.contains("cash_amount"), "{error}");

        let lines = format!(
            "{{\"id\":\"{T1}\",\"account_group_id\":\"{GROUP}\",\"cash_amount\":\"1.00\",\
             \"currency\":\"EUR\",\"settlement_reference\":\"{T1}\"}}\n\nnot json\n"
        );
        let error = read(lines.as_bytes(), ImportFormat::JsonLines, now).unwrap_err();
        assert_eq!(error.line, 3, "{error}");
    }

    #[test]
    fn a_row_is_the_stored_top_up_when_its_fields_match_or_the_stored_one_moved_on() {
        let now = chrono::Utc::now();
        let file = format!("{HEADER}\n{}\n", row(T1, "200.0"));
        let read_one = |text: &str| {
            let mut rows = read(text.as_bytes(), ImportFormat::Csv, now).unwrap();
            (rows.rows.remove(0).1, rows.filled[0])
        };
        let (row, filled) = read_one(&file);
        let mut stored = row.clone();
        stored.cash_amount = "200.00".parse().unwrap();
        assert!(
            differences(&row, filled, &stored).is_empty(),
            "amounts compare as decimals"
        );
        stored.status = Status::Settled;
        assert!(
            differences(&row, filled, &stored).is_empty(),
            "settled since the export"
        );
        stored.status = Status::New;
        assert_eq!(
            differences(&row, filled, &stored),
            ["status CONFIRMED here, NEW stored"]
        );
        stored.status = Status::Confirmed;
        stored.cash_amount = "250".parse().unwrap();
        stored.currency = "USD".parse().unwrap();
        assert_eq!(
            differences(&row, filled, &stored),
            [
                "cash_amount 200.00 here, 250.00 stored",
                "currency EUR here, USD stored"
            ]
        );

        // Fields the row leaves out are not compared.
        let bare = format!(
            "id,account_group_id,cash_amount,currency,settlement_reference\n{T1},{GROUP},200.00,EUR,{T1}\n"
        );
        let (row, filled) = read_one(&bare);
        assert!(filled.created_at && filled.status);
        stored.cash_amount = "200".parse().unwrap();
        stored.currency = "EUR".parse().unwrap();
        stored.status = Status::New;
        assert!(differences(&row, filled, &stored).is_empty());
    }
}
