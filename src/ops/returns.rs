//! Returns: the money the worklist sends back. `recon returns export` writes the PENDING
//! ones of one of our accounts as an ISO 20022 pain.001 credit-transfer file for the bank and
//! marks them EXPORTED in the same transaction; a later run that reads the outgoing payment
//! by its end-to-end id closes each (`store::exceptions::recorded`).

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::error::Error;
use crate::store::exceptions::{self as store, Return};
use crate::store::outbox::{self, EventType};
use crate::store::{Store, StoreError};
use crate::topup::format_timestamp;

/// Every return, or those in one status (PENDING, EXPORTED, DONE, CANCELLED).
pub fn list(store: &Store, status: Option<&str>) -> Result<Vec<Return>, StoreError> {
    store::returns(store.conn(), status)
}

/// Who pays the returns back: the name (and BIC) from `[returns]` in the configuration.
#[derive(Clone, Debug)]
pub struct DebtorSettings {
    pub name: String,
    pub bic: Option<String>,
}

/// What an export asks.
pub struct ExportPlan<'a> {
    pub out: &'a Path,
    /// Our account to export the returns of; needed only when several have pending returns.
    pub account: Option<&'a str>,
    pub debtor: DebtorSettings,
    /// When the bank is to execute them (default: today, UTC).
    pub execution_date: Option<chrono::NaiveDate>,
}

/// What an export did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Exported {
    pub message_id: Option<String>,
    pub file: Option<PathBuf>,
    pub returns: Vec<Return>,
}

/// Writes the PENDING returns of one account as a pain.001 file and marks them EXPORTED, all
/// in one write transaction: the file is written aside and synced first, the transaction
/// committed, then the file renamed into place (a failure before the commit leaves nothing; a
/// failed rename after it names the file written aside).
pub fn export(store: &mut Store, plan: &ExportPlan) -> Result<Exported, Error> {
    let tx = store.write()?;
    let pending = store::returns(&tx, Some("PENDING"))?;
    let accounts: std::collections::BTreeSet<&str> =
        pending.iter().map(|r| r.debtor_account.as_str()).collect();
    let account = match (plan.account, accounts.len()) {
        (Some(account), _) => account.to_string(),
        (None, 0) => {
            return Ok(Exported {
                message_id: None,
                file: None,
                returns: Vec::new(),
            });
        }
        (None, 1) => accounts
            .iter()
            .next()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        (None, _) => {
            return Err(Error::Usage(format!(
                "pending returns are paid from {} accounts ({}): export one at a time with \
                 --account IBAN",
                accounts.len(),
                accounts.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
    };
    let returns: Vec<Return> = pending
        .into_iter()
        .filter(|r| r.debtor_account == account)
        .collect();
    if returns.is_empty() {
        return Err(Error::Usage(format!(
            "no pending return is paid from {account}"
        )));
    }
    let now = Utc::now();
    let message_id = format!("RECON-{}", now.format("%Y%m%dT%H%M%S%3f"));
    let xml = write_pain001(&returns, &account, &plan.debtor, &message_id, now, plan)?;
    for r in &returns {
        store::set_return_status(&tx, r.id, "PENDING", "EXPORTED", now, Some(&message_id))?;
    }
    let payload = serde_json::json!({
        "account_group_id": "",
        "message_id": message_id,
        "debtor_account": account,
        "returns": returns.iter().map(|r| &r.end_to_end_id).collect::<Vec<_>>(),
        "exported_at": format_timestamp(now),
    });
    outbox::record(&tx, EventType::ReturnExported, now, &payload)?;
    let aside = write_aside(plan.out, xml.as_bytes())?;
    crate::store::commit(tx, "committing the export")?;
    aside.persist(plan.out).map_err(|e| {
        let kept = e.file.keep().map(|(_, p)| p.display().to_string());
        Error::AfterCommit(format!(
            "the returns are marked EXPORTED but the file could not be moved to {}: {}; it was \
             kept as {}",
            plan.out.display(),
            e.error,
            kept.unwrap_or_else(|_| "(nothing)".into())
        ))
    })?;
    let returns = store::returns(store.conn(), Some("EXPORTED"))?
        .into_iter()
        .filter(|r| r.message_id.as_deref() == Some(message_id.as_str()))
        .collect();
    Ok(Exported {
        message_id: Some(message_id),
        file: Some(plan.out.to_path_buf()),
        returns,
    })
}

fn write_aside(out: &Path, bytes: &[u8]) -> Result<tempfile::NamedTempFile, Error> {
    let dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let io = |source| Error::Io {
        doing: format!("writing {}", out.display()),
        source,
    };
    let mut file = tempfile::Builder::new()
        .prefix(".recon-returns.")
        .tempfile_in(dir)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.as_file().sync_all().map_err(io)?;
    Ok(file)
}

/// The pain.001 document of `returns`, all paid from `account`: builds the writer's structs and
/// calls it.
fn write_pain001(
    returns: &[Return],
    account: &str,
    debtor: &DebtorSettings,
    message_id: &str,
    now: DateTime<Utc>,
    plan: &ExportPlan,
) -> Result<String, Error> {
    use crate::returns::pain001::{self, Debtor, Initiation, Payment};
    let mut payments = Vec::with_capacity(returns.len());
    for r in returns {
        let bad = |what: String| StoreError::Corrupt(format!("return {}: {what}", r.id));
        payments.push(Payment {
            end_to_end_id: r.end_to_end_id.clone(),
            amount: r
                .amount
                .parse::<Decimal>()
                .map_err(|e| bad(e.to_string()))?,
            currency: r.currency.parse().map_err(|e| bad(format!("{e}")))?,
            creditor_name: r.creditor_name.clone(),
            creditor_iban: r.creditor_iban.clone(),
            creditor_bic: None,
            remittance: r.remittance.clone(),
        });
    }
    let initiation = Initiation {
        message_id: message_id.to_string(),
        created_at: now,
        execution_date: plan.execution_date.unwrap_or(now.date_naive()),
        debtor: Debtor {
            name: debtor.name.clone(),
            iban: account.to_string(),
            bic: debtor.bic.clone(),
        },
        payments,
    };
    pain001::write(&initiation).map_err(|e| Error::Data(format!("writing pain.001: {e}")))
}
