//! `recon webhooks deliver | list | retry` and `recon serve`: the outbox's delivery and the
//! top-up API.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{open, to_json, to_json_lines, write_out};
use crate::config::Settings;
use crate::error::{Error, exit};
use crate::store::OpenMode;

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
fn read_secrets(path: &Path) -> Result<crate::webhooks::Secrets, Error> {
    let text = fs::read_to_string(path).map_err(|e| {
        Error::Usage(format!(
            "cannot read the webhook secret file {}: {e}",
            path.display()
        ))
    })?;
    crate::webhooks::Secrets::parse(&text)
        .map_err(|e| Error::Usage(format!("the webhook secret file {}: {e}", path.display())))
}

/// Posts the pending events to the receiver, one deliverer at a time.
pub(super) fn deliver(
    settings: &Settings,
    args: &crate::cli::DeliverArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
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
    let options = crate::webhooks::Options {
        url: url.clone(),
        secrets: read_secrets(secret_file)?,
        legacy_signature: args.legacy_signature,
        max_attempts: args.max_attempts,
        timeout: Duration::from_secs(args.timeout.max(1)),
        backoff: Duration::from_millis(args.backoff_ms),
        limit: args.limit,
    };
    let mut store = open(settings, OpenMode::MustExist)?;
    // One deliverer at a time: two would post the same pending events twice.
    let lock_path = PathBuf::from(format!("{}.deliver-lock", store.path().display()));
    let lock = File::create(&lock_path).map_err(|source| Error::Io {
        doing: format!("creating {}", lock_path.display()),
        source,
    })?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            tracing::error!(
                "another `recon webhooks deliver` is running on {}; try again when it has finished",
                store.path().display()
            );
            return Ok(exit::LOCKED);
        }
        Err(fs::TryLockError::Error(source)) => {
            return Err(Error::Io {
                doing: format!("locking {}", lock_path.display()),
                source,
            });
        }
    }
    let outcome = crate::webhooks::deliver(&mut store, &options)?;
    let waiting = crate::store::outbox::pending(store.conn(), 1)?.len();
    write_out(
        out,
        &format!(
            "delivered {} event(s), {} failed{}\n",
            outcome.delivered,
            outcome.failed,
            if waiting > 0 {
                ", more are pending"
            } else {
                ""
            }
        ),
    )?;
    match outcome.stopped {
        Some(why) => {
            tracing::error!(
                "stopped: the receiver at {} is not accepting events ({why}); the remaining events \
                 stay pending for the next `recon webhooks deliver`",
                url
            );
            Ok(exit::LOCKED)
        }
        None => Ok(exit::OK),
    }
}

/// The events of the outbox, newest last.
pub(super) fn list(
    settings: &Settings,
    args: &crate::cli::EventsListArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let status = match &args.status {
        Some(text) => Some(
            text.parse::<crate::store::outbox::Delivery>()
                .map_err(|e| Error::Usage(format!("--status: {e}")))?,
        ),
        None => None,
    };
    let store = open(settings, OpenMode::MustExist)?;
    let events = crate::store::outbox::list(store.conn(), status, args.limit)?;
    let mut text = String::new();
    match args.format {
        crate::cli::EventsFormat::Json => text = to_json(&events),
        crate::cli::EventsFormat::Jsonl => text = to_json_lines(&events),
        crate::cli::EventsFormat::Table => {
            text.push_str(&format!(
                "{:<36}  {:<20}  {:<20}  {:<9}  {:>8}  {}\n",
                "EVENT", "TYPE", "CREATED", "STATUS", "ATTEMPTS", "LAST ERROR"
            ));
            for e in &events {
                text.push_str(&format!(
                    "{:<36}  {:<20}  {:<20}  {:<9}  {:>8}  {}\n",
                    e.id,
                    e.kind,
                    e.created_at,
                    e.status,
                    e.attempts,
                    e.last_error.as_deref().unwrap_or("")
                ));
            }
            text.push_str(&format!("{} event(s)\n", events.len()));
        }
    }
    write_out(out, &text)?;
    Ok(exit::OK)
}

/// Queues failed events for delivery again.
pub(super) fn retry(
    settings: &Settings,
    args: &crate::cli::RetryArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let mut store = open(settings, OpenMode::MustExist)?;
    let tx = store.write()?;
    let queued = crate::store::outbox::retry(&tx, &args.ids)?;
    crate::store::commit(tx, "committing the retry")?;
    write_out(
        out,
        &format!("queued {queued} failed event(s) for delivery again\n"),
    )?;
    Ok(exit::OK)
}

/// Serves the top-up API until SIGINT or SIGTERM.
pub(super) fn serve(settings: &Settings) -> Result<u8, Error> {
    let token_file = settings.api_token_file.as_ref().ok_or_else(|| {
        Error::Usage(
            "the API needs a bearer token: use --token-file FILE, set RECON_API_TOKEN_FILE, or \
             put token_file under [serve] in recon.toml"
                .to_string(),
        )
    })?;
    let token = read_secret(token_file, "API token")?;
    let db = settings.db()?.to_path_buf();
    // Create and migrate the database before the first request, so that errors show at start.
    open(settings, OpenMode::CreateIfMissing)?;
    crate::api::serve(crate::api::Config {
        listen: settings.serve_listen.clone(),
        db,
        token,
        wait: Duration::from_secs(settings.wait_secs),
    })?;
    Ok(exit::OK)
}
