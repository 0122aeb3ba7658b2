//! The `recon` binary: parse the command line, set up logging, run, turn the result into an
//! exit status.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use recon::cli::{Cli, LogFormat};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let json = cli.log_format == LogFormat::Json;
    let stdout = std::io::stdout();
    match recon::app::run(cli, &mut stdout.lock()) {
        Ok(code) => ExitCode::from(code),
        // The reader of our output went away (`| head`): quietly done, as cargo and ripgrep.
        Err(error) if error.is_broken_pipe() => ExitCode::SUCCESS,
        Err(error) => {
            let hint = error.hint();
            if json {
                tracing::error!(exit_status = error.exit_code(), hint, "{error}");
            } else {
                eprintln!("recon: error: {error}");
                if let Some(hint) = hint {
                    eprintln!("recon: {hint}");
                }
            }
            ExitCode::from(error.exit_code())
        }
    }
}

/// Logs go to stderr: warnings and up by default, errors only with -q, more with -v.
fn init_logging(cli: &Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_env("RECON_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("recon={level}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match cli.log_format {
        LogFormat::Json => builder.json().with_current_span(false).init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .without_time()
            .with_level(true)
            .init(),
    }
}
