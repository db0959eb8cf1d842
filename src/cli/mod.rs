//! The `renewd` commands: argument definitions in [`args`], one function per command
//! here. Each returns the process exit status (spec section 8); the binary only
//! maps errors that escape to text.

pub mod args;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::CommandFactory;

pub use args::{Cli, Command};

use crate::config::{self, Config};
use crate::renew;
use crate::state::State;
use crate::status;
use crate::store::{self, Store};

/// Exit statuses of spec section 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Success / all healthy.
    Ok = 0,
    /// The operation failed or something is unhealthy.
    Failed = 1,
    /// Invalid config or usage.
    Invalid = 2,
    /// The daemon is not reachable (commands that need it).
    Unreachable = 3,
    /// Permission denied.
    Denied = 4,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// Runs the parsed command line.
///
/// # Errors
///
/// Whatever stops the command as a whole (the binary prints the cause chain);
/// per-certificate failures are reported in the output and the exit status instead.
pub async fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::CheckConfig => Ok(check_config(&cli.config)),
        Command::Status(args) => status(&cli.config, &args),
        Command::Renew(args) => renew(&cli.config, &args).await,
        Command::Run => anyhow::bail!("`renewd run` (the resident daemon) is not available yet"),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "renewd", &mut std::io::stdout());
            Ok(Exit::Ok)
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(Exit::Ok)
        }
    }
}

/// The exit status for an error that escaped a command.
#[must_use]
pub fn exit_for(error: &anyhow::Error) -> Exit {
    for cause in error.chain() {
        if cause.downcast_ref::<config::Error>().is_some() || cause.is::<UsageError>() {
            return Exit::Invalid;
        }
        let io = cause.downcast_ref::<std::io::Error>().or_else(|| {
            match cause.downcast_ref::<store::Error>() {
                Some(store::Error::Io { source, .. }) => Some(source),
                _ => None,
            }
        });
        if io.is_some_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied) {
            return Exit::Denied;
        }
    }
    Exit::Failed
}

fn check_config(path: &Path) -> Exit {
    match Config::load(path) {
        Ok(config) => {
            println!(
                "{}: ok ({} CA(s), {} solver(s), {} certificate(s))",
                path.display(),
                config.cas.len(),
                config.solvers.len(),
                config.certificates.len()
            );
            Exit::Ok
        }
        Err(e) => {
            eprintln!("{e}");
            Exit::Invalid
        }
    }
}

fn load(path: &Path) -> anyhow::Result<(Arc<Config>, Store)> {
    let config = Config::load(path)?;
    let store = Store::open(&config.daemon.state_dir).with_context(|| {
        format!(
            "cannot open state directory {}",
            config.daemon.state_dir.display()
        )
    })?;
    Ok((Arc::new(config), store))
}

fn status(path: &Path, args: &args::StatusArgs) -> anyhow::Result<Exit> {
    let (config, store) = load(path)?;
    unknown_names(&config, &args.names)?;
    let state = State::load(&store);
    let mut statuses = status::collect(&config, &store, &state, time::OffsetDateTime::now_utc());
    if !args.names.is_empty() {
        statuses.retain(|s| args.names.contains(&s.name));
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &serde_json::json!({ "certificates": statuses }))?;
        writeln!(out)?;
    } else {
        write!(out, "{}", status::table(&statuses))?;
    }
    Ok(if statuses.iter().all(|s| s.healthy) {
        Exit::Ok
    } else {
        Exit::Failed
    })
}

async fn renew(path: &Path, args: &args::RenewArgs) -> anyhow::Result<Exit> {
    let (config, store) = load(path)?;
    unknown_names(&config, &args.names)?;
    let (certs, force) = match &args.affected {
        Some(file) => (affected(&config, &store, file)?, true),
        None if args.names.is_empty() => (config.certificates.clone(), args.force),
        None => (
            config
                .certificates
                .iter()
                .filter(|c| args.names.contains(&c.name))
                .cloned()
                .collect(),
            args.force,
        ),
    };
    let ctx = Arc::new(renew::Context::new(config, store));
    let outcomes = ctx.renew_all(certs, force).await;
    for (name, outcome) in &outcomes {
        println!("{name}: {outcome}");
    }
    Ok(if outcomes.iter().all(|(_, o)| o.is_ok()) {
        Exit::Ok
    } else {
        Exit::Failed
    })
}

/// The configured certificates whose live serial is listed in `file`.
fn affected(
    config: &Config,
    store: &Store,
    file: &Path,
) -> anyhow::Result<Vec<config::CertificateConfig>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let serials: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(store::cert::normalize_serial)
        .collect();
    Ok(config
        .certificates
        .iter()
        .filter(|c| {
            store
                .lineage(&c.name)
                .ok()
                .flatten()
                .is_some_and(|l| serials.contains(&l.cert.serial))
        })
        .cloned()
        .collect())
}

fn unknown_names(config: &Config, names: &[String]) -> anyhow::Result<()> {
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| config.certificate(n).is_none())
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(UsageError(format!(
            "no certificate named {} in {}",
            unknown.join(", "),
            config.path.display()
        ))
        .into())
    }
}

/// A command-line mistake (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);
