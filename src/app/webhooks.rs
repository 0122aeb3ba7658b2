//! `recon webhooks deliver | list | retry` and `recon serve`: the outbox's delivery and the
//! top-up API.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::{open, to_json, to_json_lines, write_out};
use crate::config::Settings;
use crate::error::{Error, exit};
use crate::ops::webhooks::{Delivered, Delivery};
use crate::ops::{self, OpenMode};
use crate::topup::format_timestamp;

/// Reads a secret (signing secret, API token) from its file; it must not be empty.
fn read_secret(path: &Path, what: &str) -> Result<String, Error> {
    let text = fs::read_to_string(path).map_err(|e| {
        Error::Usage(format!(
            "cannot read the {what} file {}: {e}",
            path.display()
        ))
    })?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(Error::Usage(format!(
            "the {what} file {} is empty",
            path.display()
        )));
    }
    Ok(secret.to_string())
}

/// Reads the webhook signing secrets: one per line (see [`crate::webhooks::Secrets::parse`]).
fn read_secrets(path: &Path) -> Result<ops::webhooks::Secrets, Error> {
    let text = fs::read_to_string(path).map_err(|e| {
        Error::Usage(format!(
            "cannot read the webhook secret file {}: {e}",
            path.display()
        ))
    })?;
    ops::webhooks::Secrets::parse(&text)
        .map_err(|e| Error::Usage(format!("the webhook secret file {}: {e}", path.display())))
}

/// Posts the events that are due to the receiver, one deliverer at a time, and says what
/// waits: exit 0 when nothing failed, 75 when the receiver failed an attempt or events wait
/// behind a failed one, 2 when the receiver's endpoint is gone (410).
pub(super) fn deliver(
    settings: &Settings,
    args: &crate::cli::DeliverArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let options = deliver_options(settings, args)?;
    let mut store = open(settings, OpenMode::MustExist)?;
    let Some(Delivered {
        outcome,
        counts,
        held_back,
        pruned,
    }) = ops::webhooks::deliver(
        &mut store,
        &options,
        args.reenable_endpoint,
        settings.webhook_retention_days,
    )?
    else {
        return Ok(exit::LOCKED);
    };
    let mut line = format!(
        "delivered {} event(s), {} attempt(s) failed; {} pending",
        outcome.delivered, outcome.failed_attempts, counts.pending
    );
    if let Some(next) = counts.next_attempt_at.filter(|_| counts.pending > 0) {
        line.push_str(&format!(" (next attempt due {})", format_timestamp(next)));
    }
    line.push_str(&format!(", {} failed", counts.failed));
    if pruned > 0 {
        line.push_str(&format!(
            "; pruned {pruned} event(s) delivered over {} day(s) ago",
            settings.webhook_retention_days
        ));
    }
    line.push('\n');
    write_out(out, &line)?;
    Ok(delivery_status(&options.url, &outcome, &counts, held_back))
}

/// The receiver, the secrets and the schedule from the settings and flags.
fn deliver_options(
    settings: &Settings,
    args: &crate::cli::DeliverArgs,
) -> Result<ops::webhooks::Options, Error> {
    let url = settings.webhook_url.clone().ok_or_else(|| {
        Error::Usage(
            "no webhook receiver given: use --url URL, set RECON_WEBHOOK_URL, or put url under \
             [webhooks] in recon.toml"
                .to_string(),
        )
    })?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Error::Usage(format!(
            "--url {:?} must start with http:// or https://",
            crate::text::clip(&url, 80)
        )));
    }
    let secret_file = settings.webhook_secret_file.as_ref().ok_or_else(|| {
        Error::Usage(
            "no signing secret given: use --secret-file FILE, set RECON_WEBHOOK_SECRET_FILE, or \
             put secret_file under [webhooks] in recon.toml"
                .to_string(),
        )
    })?;
    if args.backoff_ms.is_some() {
        tracing::warn!(
            "--backoff-ms is no longer used: failed attempts are retried on the schedule in the \
             README (see --max-attempts)"
        );
    }
    Ok(ops::webhooks::Options {
        url,
        secrets: read_secrets(secret_file)?,
        legacy_signature: args.legacy_signature,
        timeout: Duration::from_secs(args.timeout.max(1)),
        schedule: ops::webhooks::Schedule {
            max_attempts: args.max_attempts,
            scale: schedule_scale(args.schedule_scale.as_deref())?,
        },
        limit: args.limit,
    })
}

/// Says what needs a person, or what waits, and gives the exit status.
fn delivery_status(
    url: &str,
    outcome: &ops::webhooks::Outcome,
    counts: &ops::webhooks::Counts,
    held_back: u64,
) -> u8 {
    use ops::webhooks::Stop;
    if let Some(Stop::Gone(gone)) = &outcome.stopped {
        tracing::error!(
            "the receiver at {url} answered {} to event {} at {}: the endpoint is gone, and \
             recon posts nothing more to it. Point --url at the platform's new endpoint, or, if \
             this one is back, give --reenable-endpoint once; the events keep their place",
            gone.answer,
            gone.event_id,
            format_timestamp(gone.at)
        );
        return exit::USAGE;
    }
    let mut status = exit::OK;
    if let Some(Stop::Unreachable(why)) = &outcome.stopped {
        tracing::error!(
            "stopped: the receiver at {url} is not accepting events ({why}); each event is tried \
             again on the retry schedule by a later `recon webhooks deliver`"
        );
        status = exit::LOCKED;
    } else if outcome.failed_attempts > 0 && counts.pending > 0 {
        tracing::warn!(
            "{} attempt(s) failed; those events are tried again on the retry schedule by a \
             later `recon webhooks deliver`, and the later events of their account groups wait",
            outcome.failed_attempts
        );
        status = exit::LOCKED;
    }
    if counts.failed > 0 {
        tracing::error!(
            "{} event(s) FAILED after their last attempt{}, and {held_back} later event(s) of \
             their account groups wait behind them: see `recon webhooks list --status failed`, \
             then `recon webhooks retry` sends them again, first",
            counts.failed,
            match outcome.gave_up.first() {
                Some(id) => format!(" ({} in this call, the first {id})", outcome.gave_up.len()),
                None => String::new(),
            }
        );
        status = exit::LOCKED;
    }
    status
}

/// The hidden `--schedule-scale`: a positive decimal factor.
fn schedule_scale(text: Option<&str>) -> Result<rust_decimal::Decimal, Error> {
    let Some(text) = text else {
        return Ok(rust_decimal::Decimal::ONE);
    };
    text.parse::<rust_decimal::Decimal>()
        .ok()
        .filter(|scale| *scale > rust_decimal::Decimal::ZERO)
        .ok_or_else(|| {
            Error::Usage(format!(
                "--schedule-scale {:?} is not a positive number",
                crate::text::clip(text, 40)
            ))
        })
}

/// The events of the outbox with their delivery state, newest last.
pub(super) fn list(
    settings: &Settings,
    args: &crate::cli::EventsListArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let status = match &args.status {
        Some(text) => Some(
            text.parse::<Delivery>()
                .map_err(|e| Error::Usage(format!("--status: {e}")))?,
        ),
        None => None,
    };
    let store = open(settings, OpenMode::MustExist)?;
    let events = ops::webhooks::list(&store, status, args.limit)?;
    let mut text = String::new();
    match args.format {
        crate::cli::EventsFormat::Json => text = to_json(&events),
        crate::cli::EventsFormat::Jsonl => text = to_json_lines(&events),
        crate::cli::EventsFormat::Table => {
            text.push_str(&format!(
                "{:<36}  {:<20}  {:<20}  {:<9}  {:>8}  {:<20}  {}\n",
                "EVENT", "TYPE", "CREATED", "STATUS", "ATTEMPTS", "NEXT ATTEMPT", "LAST ERROR"
            ));
            for e in &events {
                text.push_str(&format!(
                    "{:<36}  {:<20}  {:<20}  {:<9}  {:>8}  {:<20}  {}\n",
                    e.id,
                    e.kind,
                    e.created_at,
                    e.status,
                    e.attempts,
                    e.next_attempt_at.as_deref().unwrap_or(""),
                    e.last_error.as_deref().unwrap_or("")
                ));
            }
            text.push_str(&format!("{} event(s)\n", events.len()));
        }
    }
    write_out(out, &text)?;
    Ok(exit::OK)
}

/// Queues failed events for delivery again: due now, before the later events of their
/// account groups.
pub(super) fn retry(
    settings: &Settings,
    args: &crate::cli::RetryArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let store = open(settings, OpenMode::MustExist)?;
    let queued = ops::webhooks::retry(&store, &args.ids)?;
    write_out(
        out,
        &format!("queued {queued} failed event(s) for delivery again\n"),
    )?;
    Ok(exit::OK)
}

/// The shortest API token accepted, in bytes.
const MIN_TOKEN_BYTES: usize = 32;

/// Reads the API token: its file must be private to its owner, the token at least
/// [`MIN_TOKEN_BYTES`] long.
fn read_api_token(path: &Path) -> Result<String, Error> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .map_err(|e| {
                Error::Usage(format!(
                    "cannot read the API token file {}: {e}",
                    path.display()
                ))
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(Error::Usage(format!(
                "the API token file {} is open to its group or to others (mode {:03o}); make it \
                 private to its owner: chmod 600 {}",
                path.display(),
                mode & 0o777,
                path.display()
            )));
        }
    }
    let token = read_secret(path, "API token")?;
    if token.len() < MIN_TOKEN_BYTES {
        return Err(Error::Usage(format!(
            "the API token in {} is {} bytes long; use at least {MIN_TOKEN_BYTES} random bytes, \
             e.g. `openssl rand -hex 32 > {}`",
            path.display(),
            token.len(),
            path.display()
        )));
    }
    Ok(token)
}

/// Serves the top-up API until SIGINT or SIGTERM.
pub(super) fn serve(settings: &Settings, args: &crate::cli::ServeArgs) -> Result<u8, Error> {
    let token_file = settings.api_token_file.as_ref().ok_or_else(|| {
        Error::Usage(
            "the API needs a bearer token: use --token-file FILE, set RECON_API_TOKEN_FILE, or \
             put token_file under [serve] in recon.toml"
                .to_string(),
        )
    })?;
    let token = read_api_token(token_file)?;
    let db = settings.db()?.to_path_buf();
    // A write waits for a nightly run as long as --wait (or `wait` in recon.toml) says, and
    // otherwise longer than a command does: a client is waiting, not a script.
    let wait_secs = if args.db.wait.is_some() || settings.wait_secs > 0 {
        settings.wait_secs
    } else {
        crate::api::server::DEFAULT_WRITE_WAIT_SECS
    };
    let limits = crate::api::Limits {
        header_read_timeout: Duration::from_secs(args.header_timeout.max(1)),
        request_timeout: Duration::from_secs(args.request_timeout.max(1)),
        max_connections: args.max_connections.max(1),
    };
    if Duration::from_secs(wait_secs) >= limits.request_timeout {
        return Err(Error::Usage(format!(
            "--wait {wait_secs} must be shorter than --request-timeout {}: a write that waits \
             for a nightly run must be answered before the request times out",
            args.request_timeout
        )));
    }
    // Create and migrate the database before the first request, so that errors show at start.
    open(settings, OpenMode::CreateIfMissing)?;
    crate::api::serve(crate::api::Config {
        listen: settings.serve_listen.clone(),
        db,
        token,
        wait: Duration::from_secs(wait_secs),
        limits,
    })?;
    Ok(exit::OK)
}
