//! The `recon` binary: parse the command line, run, turn the result into an exit status.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = recon::cli::Cli::parse();
    let stdout = std::io::stdout();
    match recon::app::run(cli, &mut stdout.lock()) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("recon: error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
