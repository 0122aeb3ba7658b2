//! Posting the outbox to the platform: signed, in order, at least once, with retries.
//!
//! Each post carries the event's payload as its body and these headers:
//! `Recon-Event-Id`, `Recon-Event-Type`, `Recon-Timestamp` (Unix seconds) and
//! `Recon-Signature: v1=<hex HMAC-SHA256 of "{timestamp}.{body}" under the shared secret>`.

use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use sha2::Sha256;

use crate::store::outbox::{self, Event};
use crate::store::{Store, StoreError};

/// How to reach the receiver and how hard to try.
#[derive(Clone, Debug)]
pub struct Options {
    pub url: String,
    pub secret: Vec<u8>,
    pub max_attempts: u32,
    pub timeout: Duration,
    pub backoff: Duration,
    pub limit: Option<usize>,
}

/// What one `deliver` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub delivered: usize,
    /// Events the receiver refused (4xx) or that ran out of attempts: now `FAILED`.
    pub failed: usize,
    /// Why delivery stopped early (the receiver stayed unreachable); the rest stay pending.
    pub stopped: Option<String>,
}

/// The signature header's value for a body posted at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &str) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// What one post told us.
enum Attempt {
    Accepted,
    /// Worth trying again later: network error, timeout, 5xx, 408, 429.
    Transient(String),
    /// The receiver refuses this event (other 4xx, redirects): trying again will not help.
    Refused(String),
}

fn post(agent: &ureq::Agent, options: &Options, event: &Event) -> Attempt {
    let timestamp = Utc::now().timestamp();
    let signature = sign(&options.secret, timestamp, &event.payload);
    let result = agent
        .post(&options.url)
        .header("Content-Type", "application/json")
        .header("User-Agent", concat!("recon/", env!("CARGO_PKG_VERSION")))
        .header("Recon-Event-Id", &event.id)
        .header("Recon-Event-Type", &event.kind)
        .header("Recon-Timestamp", timestamp.to_string())
        .header("Recon-Signature", signature)
        .send(event.payload.as_bytes());
    match result {
        Ok(response) => {
            let status = response.status().as_u16();
            match status {
                200..=299 => Attempt::Accepted,
                408 | 429 | 500..=599 => Attempt::Transient(format!("HTTP {status}")),
                _ => Attempt::Refused(format!("HTTP {status}")),
            }
        }
        Err(e) => Attempt::Transient(e.to_string()),
    }
}

/// The pause before attempt `n + 1` after `n` failures: doubling from `base`, at most a minute,
/// with "equal jitter" (half fixed, half random) so that many senders do not retry in step.
pub fn backoff(base: Duration, failures: u32) -> Duration {
    let full = base
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(Duration::from_secs(60));
    let half = full / 2;
    let jitter_ms = rand::rng().random_range(0..=half.as_millis() as u64);
    half + Duration::from_millis(jitter_ms)
}

/// Posts pending events in order until none are left, the limit is reached, or the receiver
/// stays unreachable for `max_attempts` attempts (that event becomes `FAILED`, the rest wait).
pub fn deliver(store: &mut Store, options: &Options) -> Result<Outcome, StoreError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(options.timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut outcome = Outcome::default();
    let mut budget = options.limit.unwrap_or(usize::MAX);
    while budget > 0 {
        // No transaction is held while posting: a nightly run is never kept waiting by a slow
        // receiver. Each attempt's result is written on its own.
        let batch = outbox::pending(store.conn(), budget.min(100))?;
        if batch.is_empty() {
            break;
        }
        for event in batch {
            budget -= 1;
            let mut failures = 0;
            loop {
                match post(&agent, options, &event) {
                    Attempt::Accepted => {
                        let tx = store.write()?;
                        outbox::delivered(&tx, event.seq, Utc::now())?;
                        crate::store::commit(tx, "recording a delivery")?;
                        tracing::info!(event = %event.id, kind = %event.kind, "delivered");
                        outcome.delivered += 1;
                        break;
                    }
                    Attempt::Refused(why) => {
                        let tx = store.write()?;
                        outbox::attempt_failed(&tx, event.seq, Utc::now(), &why, true)?;
                        crate::store::commit(tx, "recording a delivery")?;
                        tracing::warn!(event = %event.id, "receiver refused the event ({why}); marked failed");
                        outcome.failed += 1;
                        break;
                    }
                    Attempt::Transient(why) => {
                        failures += 1;
                        let give_up = failures >= options.max_attempts;
                        let tx = store.write()?;
                        outbox::attempt_failed(&tx, event.seq, Utc::now(), &why, give_up)?;
                        crate::store::commit(tx, "recording a delivery")?;
                        if give_up {
                            outcome.failed += 1;
                            outcome.stopped = Some(format!(
                                "event {} failed {failures} time(s), last: {why}",
                                event.id
                            ));
                            return Ok(outcome);
                        }
                        let pause = backoff(options.backoff, failures);
                        tracing::warn!(
                            event = %event.id,
                            "attempt {failures} failed ({why}); next in {} ms",
                            pause.as_millis()
                        );
                        std::thread::sleep(pause);
                    }
                }
            }
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_what_a_receiver_computes_with_a_stock_hmac() {
        // The expected value is Python's
        // hmac.new(b"Jefe", b'1700000000.{"id":1}', hashlib.sha256).hexdigest().
        assert_eq!(
            sign(b"Jefe", 1_700_000_000, r#"{"id":1}"#),
            "v1=05b728475104591e6ba9301ccd86c0f18c79ea7330ef9b9869435607a745d2bf"
        );
        assert_ne!(
            sign(b"Jefe", 1_700_000_001, r#"{"id":1}"#),
            sign(b"Jefe", 1_700_000_000, r#"{"id":1}"#)
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(100);
        for failures in 1..=20 {
            let full = base
                .saturating_mul(1 << (failures - 1).min(16))
                .min(Duration::from_secs(60));
            let pause = backoff(base, failures);
            assert!(pause >= full / 2 && pause <= full, "{failures}: {pause:?}");
        }
    }
}
