//! `recon check`, `recon backup`, `recon config show`, `recon profiles list | show` and
//! `recon bench-data`: looking after the database and the configuration.

use std::io::Write;

use super::{open, write_out};
use crate::cli::ShowProfileArgs;
use crate::config::{Settings, Source};
use crate::error::{Error, exit};
use crate::ops::{self, OpenMode};
use crate::statement::profile::{Origin, ProfileSet};

/// Runs the database's invariants as queries (with `deep`, also decompresses every stored
/// statement file); 65 when one is broken.
pub(super) fn check(settings: &Settings, deep: bool, out: &mut dyn Write) -> Result<u8, Error> {
    // A damaged database is the check's own finding, below.
    if let Err(error) = super::publish_pending(settings, out)
        && !error.is_damaged_database()
    {
        return Err(error);
    }
    let findings = ops::admin::check(|| open(settings, OpenMode::MustExist), deep)?;
    let mut text = String::new();
    let mut broken = 0;
    for finding in &findings {
        if finding.problems.is_empty() {
            text.push_str(&format!("ok       {}\n", finding.invariant));
        } else {
            broken += 1;
            text.push_str(&format!("BROKEN   {}\n", finding.invariant));
            for problem in &finding.problems {
                text.push_str(&format!("         - {problem}\n"));
            }
        }
    }
    if let Some(db) = &settings.db
        && let Some(kept) = ops::webhooks::retention(db, settings.webhook_retention_days)?
    {
        text.push_str(&retention_line(&kept, settings.webhook_retention_days));
    }
    text.push_str(&if broken == 0 {
        format!("all {} checks hold\n", findings.len())
    } else {
        format!(
            "{broken} of {} checks broken: restore from a backup (`recon backup`) or report this\n",
            findings.len()
        )
    });
    write_out(out, &text)?;
    Ok(if broken == 0 { exit::OK } else { exit::DATA })
}

/// A consistent copy of the database, taken while others may use it.
pub(super) fn backup(
    settings: &Settings,
    args: &crate::cli::BackupArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    if args.out.exists() && !args.force {
        return Err(Error::Usage(format!(
            "{} exists; choose another file or add --force to replace it",
            args.out.display()
        )));
    }
    let store = open(settings, OpenMode::MustExist)?;
    ops::admin::backup(&store, &args.out)?;
    write_out(
        out,
        &format!(
            "backed up {} to {}\n",
            settings.db()?.display(),
            args.out.display()
        ),
    )?;
    Ok(exit::OK)
}

/// A generated night with its expected outcomes, for benchmarks and tests.
pub(super) fn bench_data(
    args: &crate::cli::BenchDataArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let spec = crate::benchdata::Spec {
        topups: args.topups,
        transactions: args.transactions,
        seed: args.seed,
        created_at: args.created_at,
        booked_on: args.booked_on,
        mix: args.mix,
    };
    let expected = crate::benchdata::generate(&spec, &args.out).map_err(|source| Error::Io {
        doing: format!("writing the generated night into {}", args.out.display()),
        source,
    })?;
    write_out(
        out,
        &format!(
            "wrote topups.csv, statement.xml, statement.csv and expected.json to {}\nexpected: {}\n",
            args.out.display(),
            serde_json::to_string(&expected).expect("plain data serialises")
        ),
    )?;
    Ok(exit::OK)
}

/// The CSV profiles in force and where each comes from.
pub(super) fn profiles_list(settings: &Settings, out: &mut dyn Write) -> Result<u8, Error> {
    let mut text = String::new();
    for (profile, origin) in settings.profiles.iter() {
        let from = match origin {
            Origin::BuiltIn => "built-in".to_string(),
            Origin::File(path) => path.clone(),
        };
        text.push_str(&format!(
            "{:<18} {:<10} {}\n",
            profile.name,
            from,
            profile.description.as_deref().unwrap_or("")
        ));
    }
    write_out(out, &text)?;
    Ok(exit::OK)
}

/// One profile as TOML, to copy into recon.toml and adapt.
pub(super) fn profiles_show(
    settings: &Settings,
    args: &ShowProfileArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let profile = crate::config::resolve_profile(&args.name, &settings.profiles)?;
    write_out(out, &ProfileSet::to_toml(&profile))?;
    Ok(exit::OK)
}

/// The settings in force as a `recon.toml` that recon reads back, each line ending with where
/// its value came from. The file in use and the CSV profiles are comments.
pub(super) fn config_show(settings: &Settings, out: &mut dyn Write) -> Result<u8, Error> {
    let lines: Vec<(String, &Source)> = settings
        .shown
        .iter()
        .map(|(key, value, source)| {
            let line = if key.starts_with("profiles.") {
                format!("# [{key}]")
            } else if key == "config" {
                format!("# {key} = {value}")
            } else {
                format!("{key} = {value}")
            };
            (line, source)
        })
        .collect();
    let width = lines
        .iter()
        .map(|(line, _)| line.chars().count())
        .max()
        .unwrap_or(0)
        + 1;
    let mut text = String::new();
    for (line, source) in &lines {
        text.push_str(&format!("{line:<width$} # {source}\n"));
    }
    if settings.config_file.is_none() {
        text.push_str(
            "# no recon.toml in use (give --config FILE or put recon.toml next to the database)\n",
        );
    }
    write_out(out, &text)?;
    Ok(exit::OK)
}

/// What `check` says of the delivered events kept in the outbox and those pruned from it.
fn retention_line(kept: &ops::webhooks::Retention, days: u64) -> String {
    let mut line = format!(
        "events   {} delivered kept ({} delivered over {days} day(s) ago, pruned by the next \
         `recon webhooks deliver`), {} pruned",
        kept.delivered_kept, kept.past_retention, kept.pruned
    );
    if let Some(at) = kept.last_pruned_at {
        line.push_str(&format!(
            " (last on {})",
            crate::topup::format_timestamp(at)
        ));
    }
    line.push('\n');
    line
}
