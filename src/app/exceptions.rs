//! `recon exceptions list | show | settle | return | dismiss | reopen` and `recon returns list
//! | export`.

use std::io::Write;

use super::{open, parse_id, to_json, write_out};
use crate::cli::{
    AuditArgs, ExceptionIdArgs, ExceptionsListArgs, ReopenArgs, ResolveArgs, ReturnsExportArgs,
    ReturnsListArgs, SettleArgs, WorklistFormat,
};
use crate::config::Settings;
use crate::error::{Error, exit};
use crate::ops::OpenMode;
use crate::ops::exceptions::{self, Action, ListRequest, Listed, Resolve};
use crate::ops::returns::{self, DebtorSettings, ExportPlan};
use crate::store::exceptions::{Filter, Return};

pub(super) fn list(
    settings: &Settings,
    args: &ExceptionsListArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let request = list_request(args)?;
    let store = open(settings, OpenMode::MustExist)?;
    let listed = exceptions::list(store.conn(), &request, chrono::Utc::now())?;
    let text = match args.format {
        WorklistFormat::Json => to_json(&listed),
        WorklistFormat::Csv => csv_text(&listed)?,
        WorklistFormat::Table => table(&listed),
    };
    write_out(out, &text)?;
    Ok(exit::OK)
}

/// The filters as typed, checked.
fn list_request(args: &ExceptionsListArgs) -> Result<ListRequest, Error> {
    let open = match args.status.to_ascii_lowercase().as_str() {
        "open" => Some(true),
        "resolved" => Some(false),
        "all" => None,
        other => {
            return Err(Error::Usage(format!(
                "--status {other:?}: use open, resolved or all"
            )));
        }
    };
    let amount = |flag: &str, text: &Option<String>| {
        text.as_deref()
            .map(|t| {
                t.parse::<rust_decimal::Decimal>()
                    .map_err(|e| Error::Usage(format!("{flag} {t:?}: {e}")))
            })
            .transpose()
    };
    Ok(ListRequest {
        filter: Filter {
            open,
            reason: args.reason.as_ref().map(|r| r.to_ascii_uppercase()),
            currency: args.currency.as_ref().map(|c| c.to_ascii_uppercase()),
            account_group_id: args.account_group.as_ref().map(|g| g.to_ascii_lowercase()),
            ..Filter::default()
        },
        min_age_days: args.min_age_days,
        max_age_days: args.max_age_days,
        min_amount: amount("--min-amount", &args.min_amount)?,
        max_amount: amount("--max-amount", &args.max_amount)?,
    })
}

/// The CSV columns of a listing.
const CSV_HEADER: [&str; 16] = [
    "id",
    "status",
    "reason",
    "opened_at",
    "age_days",
    "amount",
    "currency",
    "direction",
    "booking_date",
    "payer_name",
    "payer_iban",
    "topup_id",
    "account_group_id",
    "remittance",
    "suggestion",
    "settles_with",
];

fn csv_text(listed: &[Listed]) -> Result<String, Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let failed = |e: csv::Error| Error::Internal(format!("writing CSV: {e}"));
    w.write_record(CSV_HEADER).map_err(failed)?;
    for l in listed {
        let e = &l.exception;
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        w.write_record([
            e.id.to_string(),
            e.status.to_string(),
            e.reason.clone(),
            e.opened_at.clone(),
            l.age_days.to_string(),
            e.amount.clone(),
            e.currency.clone(),
            e.direction.clone(),
            opt(&e.booking_date),
            opt(&e.payer_name),
            opt(&e.payer_iban),
            opt(&e.topup_id),
            opt(&e.account_group_id),
            e.remittance.clone(),
            opt(&e.suggestion),
            together_text(l),
        ])
        .map_err(failed)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::Internal(format!("writing CSV: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// `top-up T with 3, 5`: the settlement by several payments a listed exception is part of.
fn together_text(listed: &Listed) -> String {
    listed.settles_with.as_ref().map_or(String::new(), |t| {
        let ids: Vec<String> = t.transactions.iter().map(|i| i.to_string()).collect();
        format!("{} with {}", t.topup_id, ids.join(" + "))
    })
}

fn table(listed: &[Listed]) -> String {
    let mut text = format!(
        "{:>8}  {:<9}  {:<19}  {:>4}  {:>12}  {:<3}  {:<34}  {}\n",
        "ID", "STATUS", "REASON", "AGE", "AMOUNT", "CCY", "PAYER IBAN", "SETTLES TOGETHER"
    );
    for l in listed {
        let e = &l.exception;
        text.push_str(&format!(
            "{:>8}  {:<9}  {:<19}  {:>4}  {:>12}  {:<3}  {:<34}  {}\n",
            e.id,
            e.status,
            e.reason,
            l.age_days,
            e.amount,
            e.currency,
            e.payer_iban.as_deref().unwrap_or("-"),
            together_text(l)
        ));
    }
    text.push_str(&format!("{} exception(s)\n", listed.len()));
    text
}

pub(super) fn show(
    settings: &Settings,
    args: &ExceptionIdArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let store = open(settings, OpenMode::MustExist)?;
    let shown = exceptions::show(store.conn(), args.id, chrono::Utc::now())?;
    write_out(out, &to_json(&shown))?;
    Ok(exit::OK)
}

fn resolve(
    settings: &Settings,
    id: i64,
    action: Action,
    audit: &AuditArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let request = Resolve {
        action,
        note: audit.note.clone(),
        by: audit.by.clone().unwrap_or_else(exceptions::default_by),
    };
    let mut store = open(settings, OpenMode::MustExist)?;
    let resolved = exceptions::resolve(&mut store, id, &request)?;
    write_out(out, &to_json(&resolved))?;
    Ok(exit::OK)
}

pub(super) fn settle(
    settings: &Settings,
    args: &SettleArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let topup = parse_id(&args.topup)?;
    let (first, with) = args
        .ids
        .split_first()
        .ok_or_else(|| Error::Usage("give the exception's id".to_string()))?;
    let action = Action::Settle {
        topup,
        with: with.to_vec(),
    };
    resolve(settings, *first, action, &args.audit, out)
}

pub(super) fn return_money(
    settings: &Settings,
    args: &ResolveArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    resolve(settings, args.id, Action::Return, &args.audit, out)
}

pub(super) fn dismiss(
    settings: &Settings,
    args: &ResolveArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    resolve(settings, args.id, Action::Dismiss, &args.audit, out)
}

pub(super) fn reopen(
    settings: &Settings,
    args: &ReopenArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let action = Action::Reopen {
        cancel_exported: args.cancel_exported,
    };
    resolve(settings, args.id, action, &args.audit, out)
}

pub(super) fn returns_list(
    settings: &Settings,
    args: &ReturnsListArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let status = args.status.as_ref().map(|s| s.to_ascii_uppercase());
    if let Some(s) = status
        .as_ref()
        .filter(|s| !["PENDING", "EXPORTED", "DONE", "CANCELLED"].contains(&s.as_str()))
    {
        return Err(Error::Usage(format!(
            "--status {s:?}: use PENDING, EXPORTED, DONE or CANCELLED"
        )));
    }
    let store = open(settings, OpenMode::MustExist)?;
    let all = returns::list(&store, status.as_deref())?;
    let text = match args.format {
        WorklistFormat::Json => to_json(&all),
        WorklistFormat::Csv => returns_csv(&all)?,
        WorklistFormat::Table => returns_table(&all),
    };
    write_out(out, &text)?;
    Ok(exit::OK)
}

fn returns_csv(all: &[Return]) -> Result<String, Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let failed = |e: csv::Error| Error::Internal(format!("writing CSV: {e}"));
    w.write_record([
        "id",
        "end_to_end_id",
        "status",
        "exception_id",
        "amount",
        "currency",
        "creditor_name",
        "creditor_iban",
        "debtor_account",
        "created_at",
        "exported_at",
        "message_id",
        "closed_by_transaction",
    ])
    .map_err(failed)?;
    for r in all {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        w.write_record([
            r.id.to_string(),
            r.end_to_end_id.clone(),
            r.status.clone(),
            r.exception_id.to_string(),
            r.amount.clone(),
            r.currency.clone(),
            r.creditor_name.clone(),
            r.creditor_iban.clone(),
            r.debtor_account.clone(),
            r.created_at.clone(),
            opt(&r.exported_at),
            opt(&r.message_id),
            r.closed_by_transaction
                .map(|t| t.to_string())
                .unwrap_or_default(),
        ])
        .map_err(failed)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::Internal(format!("writing CSV: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn returns_table(all: &[Return]) -> String {
    let mut text = format!(
        "{:<16}  {:<9}  {:>9}  {:>12}  {:<3}  {:<34}  {}\n",
        "END TO END ID", "STATUS", "EXCEPTION", "AMOUNT", "CCY", "CREDITOR IBAN", "CREDITOR"
    );
    for r in all {
        text.push_str(&format!(
            "{:<16}  {:<9}  {:>9}  {:>12}  {:<3}  {:<34}  {}\n",
            r.end_to_end_id,
            r.status,
            r.exception_id,
            r.amount,
            r.currency,
            r.creditor_iban,
            r.creditor_name
        ));
    }
    text.push_str(&format!("{} return(s)\n", all.len()));
    text
}

pub(super) fn returns_export(
    settings: &Settings,
    args: &ReturnsExportArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let name = args
        .debtor_name
        .clone()
        .or_else(|| settings.returns_debtor_name.clone())
        .ok_or_else(|| {
            Error::Usage(
                "the pain.001 file needs the debtor's name: give --debtor-name, or set \
                 debtor_name under [returns] in recon.toml"
                    .to_string(),
            )
        })?;
    let execution_date = args
        .execution_date
        .as_deref()
        .map(|d| {
            d.parse::<chrono::NaiveDate>()
                .map_err(|e| Error::Usage(format!("--execution-date {d:?}: {e}")))
        })
        .transpose()?;
    let plan = ExportPlan {
        out: &args.out,
        account: args.account.as_deref(),
        debtor: DebtorSettings {
            name,
            bic: settings.returns_debtor_bic.clone(),
        },
        execution_date,
    };
    let mut store = open(settings, OpenMode::MustExist)?;
    let exported = returns::export(&mut store, &plan)?;
    let text = match &exported.file {
        None => "no pending returns: no file written\n".to_string(),
        Some(file) => format!(
            "exported {} return(s) to {} (message {})\n",
            exported.returns.len(),
            file.display(),
            exported.message_id.as_deref().unwrap_or("")
        ),
    };
    write_out(out, &text)?;
    Ok(exit::OK)
}
