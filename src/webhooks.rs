//! Posting the outbox to the platform as [Standard Webhooks](https://www.standardwebhooks.com/):
//! signed, in order, at least once, with retries.
//!
//! Each post's body is `{"type": <event type>, "timestamp": <when it happened>, "data": <the
//! event's payload>}` and it carries the headers `webhook-id` (the event id, the same on every
//! attempt), `webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature`: `v1,`
//! and the base64 HMAC-SHA256 of `"{id}.{timestamp}.{body}"`, once per secret (separated by
//! spaces while secrets rotate). Id, type, time and body are all signed, so the published
//! Standard Webhooks libraries verify a post and a captured one cannot be replayed as another.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
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
    pub secrets: Secrets,
    /// Also send the `Recon-*` headers and post the bare payload, as recon did before Standard
    /// Webhooks, for receivers that still verify that way.
    pub legacy_signature: bool,
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

/// At most this many secrets in the secret file (a rotation needs two).
pub const MAX_SECRETS: usize = 10;

/// The signing keys, from the secret file: one secret per line, each used to sign every post.
#[derive(Clone)]
pub struct Secrets {
    keys: Vec<Vec<u8>>,
    /// The first line as written: the key of the legacy `Recon-Signature`.
    legacy_key: Vec<u8>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} key(s), not shown)", self.keys.len())
    }
}

impl Secrets {
    /// Reads the secret file's text: each non-empty line is a secret, `whsec_<base64>` as
    /// Standard Webhooks writes them (the key is the decoded bytes), or any other text, used
    /// as the key's bytes as it is (recon's secrets before Standard Webhooks). An error names
    /// the line.
    pub fn parse(text: &str) -> Result<Secrets, String> {
        let mut keys = Vec::new();
        let mut legacy_key = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if keys.len() == MAX_SECRETS {
                return Err(format!(
                    "more than {MAX_SECRETS} secrets; a rotation needs two (the new and the old)"
                ));
            }
            let key = match line.strip_prefix("whsec_") {
                // Padding is optional, as in the libraries.
                Some(encoded) => STANDARD_NO_PAD
                    .decode(encoded.trim_end_matches('='))
                    .map_err(|e| {
                        format!(
                            "line {}: the secret after whsec_ is not base64 ({e}); a Standard \
                         Webhooks secret is whsec_ and the key's bytes in base64",
                            number + 1
                        )
                    })?,
                None => line.as_bytes().to_vec(),
            };
            if key.is_empty() {
                return Err(format!("line {}: the secret is empty", number + 1));
            }
            if keys.is_empty() {
                legacy_key = line.as_bytes().to_vec();
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err("it holds no secret".to_string());
        }
        Ok(Secrets { keys, legacy_key })
    }

    /// How many secrets sign each post.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Never: [`Secrets::parse`] refuses a file without a secret.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The `webhook-signature` header's value: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`
/// under each key, separated by spaces.
pub fn sign(secrets: &Secrets, id: &str, timestamp: i64, body: &str) -> String {
    let signed = format!("{id}.{timestamp}.");
    let signatures: Vec<String> = secrets
        .keys
        .iter()
        .map(|key| {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
                .expect("HMAC takes a key of any length");
            mac.update(signed.as_bytes());
            mac.update(body.as_bytes());
            format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
        })
        .collect();
    signatures.join(" ")
}

/// The legacy `Recon-Signature` header's value for a body posted at `timestamp`: the event id
/// and type are not signed, which is why it is no longer the default.
pub fn sign_legacy(secret: &[u8], timestamp: i64, body: &str) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The body posted for an event: Standard Webhooks' `type`, `timestamp` and `data`, the data
/// being the stored payload byte for byte.
pub fn body(event: &Event) -> String {
    format!(
        r#"{{"type":{},"timestamp":{},"data":{}}}"#,
        serde_json::to_string(&event.kind).expect("a string serialises"),
        serde_json::to_string(&event.created_at).expect("a string serialises"),
        event.payload
    )
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
    let body = if options.legacy_signature {
        event.payload.clone()
    } else {
        body(event)
    };
    let mut request = agent
        .post(&options.url)
        .header("Content-Type", "application/json")
        .header("User-Agent", concat!("recon/", env!("CARGO_PKG_VERSION")))
        .header("webhook-id", &event.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            sign(&options.secrets, &event.id, timestamp, &body),
        );
    if options.legacy_signature {
        request = request
            .header("Recon-Event-Id", &event.id)
            .header("Recon-Event-Type", &event.kind)
            .header("Recon-Timestamp", timestamp.to_string())
            .header(
                "Recon-Signature",
                sign_legacy(&options.secrets.legacy_key, timestamp, &body),
            );
    }
    match request.send(body.as_bytes()) {
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

    fn event() -> Event {
        Event {
            seq: 1,
            id: "msg_p5jXN8AQM9LWM0D4loKWxJek".to_string(),
            kind: "topup.settled".to_string(),
            created_at: "2026-11-20T08:00:00Z".to_string(),
            payload: r#"{"id":"1","status":"SETTLED"}"#.to_string(),
            status: "PENDING".to_string(),
            attempts: 0,
            last_attempt_at: None,
            last_error: None,
            delivered_at: None,
        }
    }

    #[test]
    fn signature_is_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification (spec/standard-webhooks.md,
        // "Signature scheme"), also the test vector of its libraries.
        let secrets = Secrets::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n").unwrap();
        assert_eq!(
            sign(
                &secrets,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn each_secret_of_a_rotation_signs_and_plain_text_is_the_key_as_it_is() {
        let both =
            Secrets::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n\n  whsec-test-0123456789  \n")
                .unwrap();
        assert_eq!(both.len(), 2);
        let first = Secrets::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let second = Secrets::parse("whsec-test-0123456789").unwrap();
        assert_eq!(second.keys[0], b"whsec-test-0123456789");
        let body = body(&event());
        assert_eq!(
            sign(&both, "id", 7, &body),
            format!(
                "{} {}",
                sign(&first, "id", 7, &body),
                sign(&second, "id", 7, &body)
            )
        );
        // Padding is optional, as in the libraries.
        assert_eq!(
            Secrets::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw==")
                .unwrap()
                .keys,
            first.keys
        );
        for bad in ["", " \n\n", "whsec_not*base64", "whsec_"] {
            assert!(Secrets::parse(bad).is_err(), "{bad:?}");
        }
        let many = "whsec-a\n".repeat(MAX_SECRETS + 1);
        assert!(Secrets::parse(&many).unwrap_err().contains("more than"));
    }

    #[test]
    fn the_body_wraps_the_stored_payload_byte_for_byte_with_its_type_and_time() {
        assert_eq!(
            body(&event()),
            r#"{"type":"topup.settled","timestamp":"2026-11-20T08:00:00Z","data":{"id":"1","status":"SETTLED"}}"#
        );
    }

    #[test]
    fn legacy_signature_is_what_a_receiver_computes_with_a_stock_hmac() {
        // The expected value is Python's
        // hmac.new(b"Jefe", b'1700000000.{"id":1}', hashlib.sha256).hexdigest().
        assert_eq!(
            sign_legacy(b"Jefe", 1_700_000_000, r#"{"id":1}"#),
            "v1=05b728475104591e6ba9301ccd86c0f18c79ea7330ef9b9869435607a745d2bf"
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
