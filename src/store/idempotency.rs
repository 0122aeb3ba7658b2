//! The API's idempotency keys: the first response to a key is stored in the same transaction as
//! its effect, and a retry with the same key gets that response again instead of a second effect.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Doing, StoreError};
use crate::topup::format_timestamp;

/// The response once given to a key, and which request it answered.
pub struct Stored {
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
}

/// The stored response for `key`, if any.
pub fn lookup(conn: &Connection, key: &str) -> Result<Option<Stored>, StoreError> {
    conn.query_row(
        "SELECT request_sha256, response_status, response_body FROM idempotency_keys WHERE key = ?1",
        [key],
        |r| {
            Ok(Stored {
                fingerprint: r.get(0)?,
                status: r.get(1)?,
                body: r.get(2)?,
            })
        },
    )
    .optional()
    .doing("reading an idempotency key")
}

/// Stores the response to `key` (inside the transaction that made its effect).
pub fn remember(
    conn: &Connection,
    key: &str,
    fingerprint: &str,
    status: u16,
    body: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO idempotency_keys (key, request_sha256, response_status, response_body, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![key, fingerprint, status, body, format_timestamp(at)],
    )
    .doing("storing an idempotency key")?;
    Ok(())
}
