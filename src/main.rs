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
        // A reader that went away (`renewd status | head`) is not an error.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("renewd: {e:#}");
            cli::exit_for(&e).into()
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let kind = c
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
            .or_else(|| c.downcast_ref::<serde_json::Error>()?.io_error_kind());
        kind == Some(std::io::ErrorKind::BrokenPipe)
    })
}
