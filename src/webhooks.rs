//! Posting the outbox to the platform as [Standard Webhooks](https://www.standardwebhooks.com/):
//! signed, in order per account group, at least once, with retries that outlast an outage.
//!
//! Each post's body is `{"type": <event type>, "timestamp": <when it happened>, "data": <the
//! event's payload>}` and it carries the headers `webhook-id` (the event id, the same on every
//! attempt), `webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature`: `v1,`
//! and the base64 HMAC-SHA256 of `"{id}.{timestamp}.{body}"`, once per secret (separated by
//! spaces while secrets rotate). Id, type, time and body are all signed, so the published
//! Standard Webhooks libraries verify a post and a captured one cannot be replayed as another.
//!
//! [`deliver`] posts what is due and returns when nothing more is: a failed attempt is tried
//! again on [`RETRY_SCHEDULE`] (seconds, then minutes, hours, days) by a later call (cron), and
//! until it is accepted the later events of its account group wait, so a receiver never sees a
//! group's events out of order. Every attempt is claimed before posting and recorded after in
//! the delivery state file (`store::deliveries`), never in the database a nightly run holds, so
//! delivery beside a run posts each event once.

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use rusqlite::Connection;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use sha2::Sha256;

use crate::store::StoreError;
use crate::store::deliveries::{Deliveries, Delivery, Gone, State};
use crate::store::outbox::{self, Event};
use crate::topup::format_timestamp;

/// The pause before each retry: 5 s after the first failed attempt, then 5 min, 30 min, 2 h,
/// 5 h, 10 h, 10 h, 24 h and 24 h. Standard Webhooks' (Svix's) schedule, two days longer as
/// Stripe's three: the tenth attempt comes 3 days and 3½ hours after the first.
pub const RETRY_SCHEDULE: [Duration; 9] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(24 * 3600),
    Duration::from_secs(24 * 3600),
];

/// Attempts per event by default: the first and one per step of the schedule.
pub const DEFAULT_MAX_ATTEMPTS: u32 = RETRY_SCHEDULE.len() as u32 + 1;

/// After this many failed posts in a row the receiver looks down: `deliver` stops, and the
/// events it did not try keep their place for the next call.
pub const STOP_AFTER_FAILURES: u32 = 3;

/// Events read from the delivery state per query while going through them in order.
const PASS_BATCH: usize = 1000;

/// When to try a failed event again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// After this many failed attempts the event is `FAILED` (attempts beyond the schedule's
    /// steps repeat its last step).
    pub max_attempts: u32,
    /// Every step multiplied by this (1 but in tests, which cannot wait for days).
    pub scale: Decimal,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            scale: Decimal::ONE,
        }
    }
}

impl Schedule {
    /// The pause after `failures` failed attempts (at least one), or `None`: the event has had
    /// all its attempts.
    pub fn pause_after(&self, failures: u32) -> Option<Duration> {
        if failures >= self.max_attempts {
            return None;
        }
        let step = failures.max(1) as usize - 1;
        let pause = RETRY_SCHEDULE[step.min(RETRY_SCHEDULE.len() - 1)];
        if self.scale == Decimal::ONE {
            return Some(pause);
        }
        let micros = Decimal::from(pause.as_micros() as u64) * self.scale;
        Some(Duration::from_micros(
            micros.round().to_u64().unwrap_or(u64::MAX),
        ))
    }
}

/// How to reach the receiver and how hard to try.
#[derive(Clone, Debug)]
pub struct Options {
    pub url: String,
    pub secrets: Secrets,
    /// Also send the `Recon-*` headers and post the bare payload, as recon did before Standard
    /// Webhooks, for receivers that still verify that way.
    pub legacy_signature: bool,
    pub timeout: Duration,
    pub schedule: Schedule,
    /// Post at most this many times.
    pub limit: Option<usize>,
}

/// Why a `deliver` stopped before everything due was posted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// [`STOP_AFTER_FAILURES`] posts failed in a row; the last one's error.
    Unreachable(String),
    /// The receiver answered 410 Gone, now or at an earlier call: nothing is posted to it.
    Gone(Gone),
    /// `limit` posts were made.
    Limit,
}

/// What one `deliver` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub delivered: usize,
    /// Attempts the receiver did not accept (each event is tried again on the schedule).
    pub failed_attempts: usize,
    /// Events whose last attempt failed in this call: now `FAILED` (their ids).
    pub gave_up: Vec<String>,
    /// Attempts an earlier deliver left unrecorded when it stopped while posting.
    pub interrupted: usize,
    pub stopped: Option<Stop>,
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

/// What the receiver made of one post.
enum Answer {
    Accepted,
    /// Any other answer, a network error or a timeout: tried again on the schedule.
    Failed(String),
    /// 410 Gone: the endpoint is no more.
    Gone(String),
}

fn post(agent: &ureq::Agent, options: &Options, event: &Event) -> Answer {
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
                200..=299 => Answer::Accepted,
                410 => Answer::Gone("HTTP 410 Gone".to_string()),
                300..=399 => {
                    let location = response
                        .headers()
                        .get("location")
                        .and_then(|l| l.to_str().ok())
                        .unwrap_or("nowhere");
                    Answer::Failed(format!(
                        "HTTP {status}, a redirect to {}: recon does not follow redirects, \
                         check --url",
                        crate::text::clip(location, 200)
                    ))
                }
                _ => Answer::Failed(format!("HTTP {status}")),
            }
        }
        Err(e) => Answer::Failed(e.to_string()),
    }
}

/// Posts every event that is due, in order, each account group's events one after the other,
/// recording each attempt, until nothing is due any more (or the receiver looks down, or
/// answers 410 Gone, or `limit` posts were made). A call picks up where the last one stopped.
pub fn deliver(
    outbox: &Connection,
    deliveries: &mut Deliveries,
    options: &Options,
) -> Result<Outcome, StoreError> {
    let mut outcome = Outcome::default();
    for seq in deliveries.recover_claims(Utc::now())? {
        tracing::warn!(
            "event #{seq} was being posted when the last deliver stopped: the receiver may have \
             it; it is posted again"
        );
        outcome.interrupted += 1;
    }
    if let Some(gone) = deliveries.gone(&options.url)? {
        outcome.stopped = Some(Stop::Gone(gone));
        return Ok(outcome);
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(options.timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut sender = Sender {
        agent,
        outbox,
        deliveries,
        options,
        budget: options.limit.unwrap_or(usize::MAX),
        failures_in_row: 0,
        outcome,
    };
    loop {
        // Events written meanwhile (the API, a run that committed) join the queue.
        sender.deliveries.take_in(outbox, Utc::now())?;
        let posted = sender.pass()?;
        if posted == 0 || sender.outcome.stopped.is_some() {
            return Ok(sender.outcome);
        }
    }
}

/// One `deliver` under way.
struct Sender<'a> {
    agent: ureq::Agent,
    outbox: &'a Connection,
    deliveries: &'a mut Deliveries,
    options: &'a Options,
    budget: usize,
    failures_in_row: u32,
    outcome: Outcome,
}

impl Sender<'_> {
    /// Goes once through the events not delivered yet, in order, posting those that are due
    /// and whose account group has no earlier event waiting. Returns how many it posted.
    fn pass(&mut self) -> Result<usize, StoreError> {
        // Account groups with an earlier event not delivered: failed, not due yet, or refused
        // in this pass. Their later events wait.
        let mut waiting: HashSet<String> = HashSet::new();
        let mut after = 0;
        let mut posted = 0;
        loop {
            let batch = self.deliveries.undelivered(after, PASS_BATCH)?;
            let Some(last) = batch.last() else {
                return Ok(posted);
            };
            after = last.seq;
            for state in batch {
                if waiting.contains(&state.account_group_id) {
                    continue;
                }
                if state.status != Delivery::Pending || state.next_attempt_at > Utc::now() {
                    waiting.insert(state.account_group_id);
                    continue;
                }
                if self.budget == 0 {
                    self.outcome.stopped = Some(Stop::Limit);
                    return Ok(posted);
                }
                self.budget -= 1;
                posted += 1;
                if !self.attempt(&state)? {
                    waiting.insert(state.account_group_id);
                }
                if self.outcome.stopped.is_some() {
                    return Ok(posted);
                }
            }
        }
    }

    /// Posts one event and records what came of it; whether it was accepted.
    fn attempt(&mut self, state: &State) -> Result<bool, StoreError> {
        let event = outbox::event(self.outbox, state.seq)?.ok_or_else(|| {
            StoreError::Corrupt(format!(
                "event #{} is in {} but not in the database",
                state.seq,
                self.deliveries.path().display()
            ))
        })?;
        // The claim is committed before the post and cleared with its result: a stop in between
        // is known to the next deliver. It is written to the delivery state file, never to the
        // database, whose write lock a nightly run holds for its whole transaction.
        self.deliveries.claim(state.seq, Utc::now())?;
        let answer = post(&self.agent, self.options, &event);
        let at = Utc::now();
        match answer {
            Answer::Accepted => {
                self.deliveries.delivered(state.seq, at)?;
                tracing::info!(event = %event.id, kind = %event.kind, "delivered");
                self.outcome.delivered += 1;
                self.failures_in_row = 0;
                Ok(true)
            }
            Answer::Gone(answer) => {
                let gone = self.deliveries.endpoint_gone(
                    &self.options.url,
                    state.seq,
                    &event.id,
                    at,
                    &answer,
                )?;
                self.outcome.stopped = Some(Stop::Gone(gone));
                Ok(false)
            }
            Answer::Failed(why) => {
                let failures = state.attempts + 1;
                let next = self
                    .options
                    .schedule
                    .pause_after(failures)
                    .map(|pause| later(at, pause));
                self.deliveries.attempt_failed(state.seq, at, &why, next)?;
                self.outcome.failed_attempts += 1;
                match next {
                    Some(next) => tracing::warn!(
                        event = %event.id,
                        "attempt {failures} failed ({why}); the next at {}, the later events of \
                         its account group wait",
                        format_timestamp(next)
                    ),
                    None => {
                        tracing::error!(
                            event = %event.id,
                            "attempt {failures} failed ({why}); that was the last: the event is \
                             FAILED"
                        );
                        self.outcome.gave_up.push(event.id.clone());
                    }
                }
                self.failures_in_row += 1;
                if self.failures_in_row >= STOP_AFTER_FAILURES {
                    self.outcome.stopped = Some(Stop::Unreachable(format!(
                        "{} posts failed in a row, the last: {why}",
                        self.failures_in_row
                    )));
                }
                Ok(false)
            }
        }
    }
}

/// `at` plus `pause`, or the far future when that does not fit.
fn later(at: DateTime<Utc>, pause: Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(pause)
        .ok()
        .and_then(|pause| at.checked_add_signed(pause))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
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
        }
    }

    #[test]
    fn signature_is_the_standard_webhooks_example() {
        // The test vector of the Standard Webhooks libraries; the expected value is what the
        // published Python package (standardwebhooks 1.3.0) computes for it.
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
    fn the_schedule_goes_from_seconds_to_days_and_lasts_about_three_days() {
        let schedule = Schedule::default();
        let pauses: Vec<Duration> = (1..DEFAULT_MAX_ATTEMPTS)
            .map(|failures| schedule.pause_after(failures).unwrap())
            .collect();
        assert_eq!(pauses, RETRY_SCHEDULE);
        assert_eq!(schedule.pause_after(DEFAULT_MAX_ATTEMPTS), None);
        let total: Duration = pauses.iter().sum();
        assert!(
            total > Duration::from_secs(3 * 86_400) && total < Duration::from_secs(4 * 86_400),
            "{total:?}"
        );
        // Fewer attempts give up sooner; more repeat the last step.
        let short = Schedule {
            max_attempts: 3,
            ..Schedule::default()
        };
        assert_eq!(short.pause_after(2), Some(Duration::from_secs(300)));
        assert_eq!(short.pause_after(3), None);
        let long = Schedule {
            max_attempts: 20,
            ..Schedule::default()
        };
        assert_eq!(long.pause_after(15), Some(Duration::from_secs(86_400)));
        // Scaled for tests.
        let fast = Schedule {
            scale: "0.001".parse().unwrap(),
            ..Schedule::default()
        };
        assert_eq!(fast.pause_after(1), Some(Duration::from_millis(5)));
        assert_eq!(fast.pause_after(9), Some(Duration::from_millis(86_400)));
    }
}
