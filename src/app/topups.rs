//! `recon topups create | import | cancel | list | show`.

use std::io::Write;
use std::path::Path;

use super::{open, parse_id, to_json, to_json_lines, write_out};
use crate::cli::{CreateArgs, IdArgs, ListArgs, ListFormat};
use crate::config::Settings;
use crate::error::{Error, exit};
use crate::ops::OpenMode;
use crate::ops::topups::{self, CreateError, Created, ImportPlan, Imported};
use crate::topup::{NewTopUp, Status, TopUp, format_timestamp};

pub(super) fn create(
    settings: &Settings,
    args: &CreateArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let request = NewTopUp {
        account_group_id: args.account_group_id.clone(),
        cash_amount: args.amount.clone(),
        currency: args.currency.clone(),
    };
    let created = topups::create(&request, None, || open(settings, OpenMode::CreateIfMissing));
    let topup = match created {
        Ok(Created::New(topup)) => topup,
        Ok(Created::Replayed { .. }) => unreachable!("no idempotency key was given"),
        Err(CreateError::Invalid(errors)) => {
            let flag = |field| match field {
                "cash_amount" => "--amount",
                "currency" => "--currency",
                _ => "--account-group-id",
            };
            let lines: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {}", flag(e.field), e.message))
                .collect();
            return Err(Error::Usage(lines.join("; ")));
        }
        Err(CreateError::KeyReused) => unreachable!("no idempotency key was given"),
        Err(CreateError::Failed(error)) => return Err(error),
    };
    write_out(out, &to_json(&topup))?;
    Ok(exit::OK)
}

pub(super) fn import(
    settings: &Settings,
    file: &Path,
    skip_existing: bool,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let plan = ImportPlan {
        path: file,
        skip_existing,
        progress: progress(settings.progress),
    };
    let done = topups::import(&plan, || open(settings, OpenMode::CreateIfMissing));
    plan.progress.finish_and_clear();
    let Imported { imported, skipped } = done?;
    let mut text = format!("imported {imported} top-up(s) from {}", file.display());
    if skip_existing {
        text.push_str(&format!(", skipped {skipped} already stored"));
    }
    write_out(out, &(text + "\n"))?;
    Ok(exit::OK)
}

/// A bar over the file's bytes as they are read, then a spinner while the rows are compared
/// and written; or nothing.
fn progress(shown: bool) -> indicatif::ProgressBar {
    if !shown {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} {wide_bar} {binary_bytes}/{binary_total_bytes} {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

pub(super) fn cancel(settings: &Settings, args: &IdArgs, out: &mut dyn Write) -> Result<u8, Error> {
    let id = parse_id(&args.id)?;
    let mut store = open(settings, OpenMode::MustExist)?;
    let topup = topups::cancel(&mut store, id)?;
    write_out(out, &to_json(&topup))?;
    Ok(exit::OK)
}

pub(super) fn list(settings: &Settings, args: &ListArgs, out: &mut dyn Write) -> Result<u8, Error> {
    let statuses: Vec<Status> = match args.status.as_deref() {
        None => Vec::new(),
        Some(open) if open.eq_ignore_ascii_case("open") => vec![Status::New, Status::Confirmed],
        Some(text) => vec![
            text.parse::<Status>()
                .map_err(|e| Error::Usage(format!("--status: {e}, or open (NEW and CONFIRMED)")))?,
        ],
    };
    let store = open(settings, OpenMode::MustExist)?;
    if let ListFormat::Csv = args.format {
        csv_listing(&store, &statuses, out)?;
        return Ok(exit::OK);
    }
    let mut all = Vec::new();
    topups::for_each(&store, &statuses, &mut |t| {
        all.push(t.clone());
        Ok(())
    })
    .map_err(listing_error)?;
    let text = match args.format {
        ListFormat::Json => to_json(&all),
        ListFormat::Jsonl => to_json_lines(&all),
        ListFormat::Csv => unreachable!("streamed above"),
        ListFormat::Table => table(&all),
    };
    write_out(out, &text)?;
    Ok(exit::OK)
}

/// A listing's error: the database's, or writing to stdout (a closed stdout stays a broken
/// pipe, so recon stops quietly).
fn listing_error(source: std::io::Error) -> Error {
    match source.downcast::<crate::store::StoreError>() {
        Ok(store) => Error::Store(store),
        Err(source) => Error::Io {
            doing: "writing to standard output".to_string(),
            source,
        },
    }
}

/// The top-ups as CSV, with the JSON field names as header (what `topups import` reads),
/// written as they are read: the full listing of millions of open top-ups is never held.
fn csv_listing(
    store: &crate::store::Store,
    statuses: &[Status],
    out: &mut dyn Write,
) -> Result<(), Error> {
    let io = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => std::io::Error::other(format!("writing CSV: {other:?}")),
    };
    let mut w = csv::Writer::from_writer(out);
    let mut write = || -> std::io::Result<()> {
        w.write_record(TopUp::FIELDS).map_err(io)?;
        topups::for_each(store, statuses, &mut |t| {
            w.write_record([
                t.id.to_string(),
                format_timestamp(t.created_at),
                t.account_group_id.to_string(),
                t.cash_amount_text(),
                t.currency.to_string(),
                t.status.to_string(),
                t.settlement_reference.to_string(),
            ])
            .map_err(io)
        })?;
        w.flush()
    };
    write().map_err(listing_error)
}

/// The top-ups as a table for a person.
fn table(all: &[TopUp]) -> String {
    let mut text = format!(
        "{:<36}  {:<20}  {:>12}  {:<3}  {:<9}  {}\n",
        "ID", "CREATED", "AMOUNT", "CCY", "STATUS", "REFERENCE"
    );
    for t in all {
        text.push_str(&format!(
            "{:<36}  {:<20}  {:>12}  {:<3}  {:<9}  {}\n",
            t.id,
            format_timestamp(t.created_at),
            t.cash_amount_text(),
            t.currency,
            t.status,
            t.settlement_reference
        ));
    }
    text.push_str(&format!("{} top-up(s)\n", all.len()));
    text
}

pub(super) fn show(settings: &Settings, args: &IdArgs, out: &mut dyn Write) -> Result<u8, Error> {
    let id = parse_id(&args.id)?;
    let store = open(settings, OpenMode::MustExist)?;
    let record = topups::show(&store, id)?;
    let mut value = serde_json::to_value(&record.topup).expect("plain data serialises");
    let extra = serde_json::json!({
        "updated_at": record.updated_at,
        "cancelled_at": record.cancelled_at,
        "settlement": record.settlement,
    });
    if let (Some(map), Some(more)) = (value.as_object_mut(), extra.as_object()) {
        map.extend(more.clone());
    }
    write_out(out, &to_json(&value))?;
    Ok(exit::OK)
}
