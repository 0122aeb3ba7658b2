//! The commands: each parses what the user typed, calls `ops` (or a store query), and turns
//! the result into printed text and an exit status. One file per command group.

mod admin;
mod exceptions;
mod runs;
mod statements;
mod topups;
mod webhooks;

use std::io::Write;
use std::time::Duration;

use crate::cli::{
    Cli, Command, ExceptionsCommand, ProfilesCommand, ReturnsCommand, RunsCommand,
    StatementsCommand, TopupsCommand, WebhooksCommand,
};
use crate::config::Settings;
use crate::error::Error;
use crate::ids::TopUpId;
use crate::ops::{self, OpenMode, Store};

/// Runs a parsed command line; output for the user goes to `out`. Returns the exit status.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<u8, Error> {
    let settings = crate::config::resolve(&cli)?;
    let s = &settings;
    match cli.command {
        Command::Run(args) => runs::run(s, &args, cli.quiet, out),
        Command::Topups(cmd) => match cmd {
            TopupsCommand::Create(args) => topups::create(s, &args, out),
            TopupsCommand::Import(args) => topups::import(s, &args.file, args.skip_existing, out),
            TopupsCommand::Cancel(args) => topups::cancel(s, &args, out),
            TopupsCommand::List(args) => topups::list(s, &args, out),
            TopupsCommand::Show(args) => topups::show(s, &args, out),
        },
        Command::Demo(args) => runs::demo(&args, out),
        Command::Runs(cmd) => match cmd {
            RunsCommand::List(args) => runs::list(s, &args, out),
            RunsCommand::Show(args) => runs::show(s, &args, out),
        },
        Command::Report(args) => runs::rerender(s, &args, out),
        Command::BenchData(args) => admin::bench_data(&args, out),
        Command::Check(args) => admin::check(s, args.deep, out),
        Command::Statements(cmd) => match cmd {
            StatementsCommand::List(args) => statements::list(s, &args, out),
            StatementsCommand::Export(args) => statements::export(s, &args, out),
        },
        Command::Backup(args) => admin::backup(s, &args, out),
        Command::Config(_) => admin::config_show(s, out),
        Command::Profiles(cmd) => match cmd {
            ProfilesCommand::List(_) => admin::profiles_list(s, out),
            ProfilesCommand::Show(args) => admin::profiles_show(s, &args, out),
        },
        Command::Webhooks(cmd) => match cmd {
            WebhooksCommand::Deliver(args) => webhooks::deliver(s, &args, out),
            WebhooksCommand::List(args) => webhooks::list(s, &args, out),
            WebhooksCommand::Retry(args) => webhooks::retry(s, &args, out),
        },
        Command::Serve(args) => webhooks::serve(s, &args),
        Command::Exceptions(cmd) => match cmd {
            ExceptionsCommand::List(args) => exceptions::list(s, &args, out),
            ExceptionsCommand::Show(args) => exceptions::show(s, &args, out),
            ExceptionsCommand::Settle(args) => exceptions::settle(s, &args, out),
            ExceptionsCommand::Return(args) => exceptions::return_money(s, &args, out),
            ExceptionsCommand::Dismiss(args) => exceptions::dismiss(s, &args, out),
            ExceptionsCommand::Reopen(args) => exceptions::reopen(s, &args, out),
        },
        Command::Returns(cmd) => match cmd {
            ReturnsCommand::List(args) => exceptions::returns_list(s, &args, out),
            ReturnsCommand::Export(args) => exceptions::returns_export(s, &args, out),
        },
    }
}

/// Opens the database the settings name.
fn open(settings: &Settings, mode: OpenMode) -> Result<Store, Error> {
    ops::open(
        settings.db()?,
        mode,
        Duration::from_secs(settings.wait_secs),
    )
}

/// Publishes the report of any run that committed but stopped before publishing it, and says
/// so: the first thing `run`, `check` and `report` do.
fn publish_pending(settings: &Settings, out: &mut dyn Write) -> Result<(), Error> {
    let mut store = match open(settings, OpenMode::MustExist) {
        Ok(store) => store,
        // No database yet: nothing can be pending, and the command says what is missing.
        Err(error) if error.is_missing_database() => return Ok(()),
        Err(error) => return Err(error),
    };
    for published in crate::ops::runs::publish_pending(&mut store)? {
        let text = format!(
            "published the report of run {} in {}: the run was committed, but stopped before \
             its report was published\n",
            published.run_id,
            published.report_dir.display()
        );
        write_out(out, &text)?;
    }
    Ok(())
}

/// Writes text for the user to standard output.
fn write_out(out: &mut dyn Write, text: &str) -> Result<(), Error> {
    out.write_all(text.as_bytes()).map_err(|source| Error::Io {
        doing: "writing to standard output".to_string(),
        source,
    })
}

/// Pretty JSON, for a person or a script.
fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("plain data serialises") + "\n"
}

/// One compact JSON object per line, for scripts.
fn to_json_lines<T: serde::Serialize>(items: &[T]) -> String {
    items
        .iter()
        .map(|item| serde_json::to_string(item).expect("plain data serialises") + "\n")
        .collect()
}

/// A top-up id from the command line.
fn parse_id(text: &str) -> Result<TopUpId, Error> {
    text.parse().map_err(|e| Error::Usage(format!("{e}")))
}
