//! The `renewd` binary: parse the command line, run it, map the result to an exit code.

use std::process::ExitCode;

use clap::Parser;
use renewd::cli::{self, Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon tells what it does; one-shot commands only warn, their output is on stdout.
    renewd::logging::init(if matches!(cli.command, Command::Run) {
        "info"
    } else {
        "warn"
    });
    match cli::run(cli).await {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("renewd: {e:#}");
            cli::exit_for(&e).into()
        }
    }
}
