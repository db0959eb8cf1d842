//! The `renewd` commands: argument definitions in [`args`], one function per command
//! here. Each returns the process exit status (`docs/reference/cli.md`); the binary only
//! maps errors that escape to text.

pub mod args;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::CommandFactory;

pub use args::{Cli, Command};

use crate::config::{self, Config, Location};
use crate::control::client::{Client, ConnectError};
use crate::control::proto::{Request, RevokeReason};
use crate::oneshot::OneShot;
use crate::renew;
use crate::state::State;
use crate::status;
use crate::store::{self, Store};

/// Exit statuses (`docs/reference/cli.md`, "Exit status").
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
    // Every command may hold private keys or other secrets in memory.
    if let Err(e) = crate::secret::no_core_dumps() {
        tracing::warn!("cannot turn core dumps off (prctl PR_SET_DUMPABLE): {e}");
    }
    let location = Location::new(cli.config, cli.config_dir);
    let config = &location;
    match cli.command {
        Command::CheckConfig => Ok(check_config(config)),
        Command::Status(args) => status(config, &args).await,
        Command::Renew(args) => renew(config, &args).await,
        Command::ImportCertbot { dir } => import_certbot(config, &dir).await,
        Command::Revoke { name, reason } => revoke(config, &name, reason).await,
        Command::Run => {
            crate::daemon::run(config).await?;
            Ok(Exit::Ok)
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "renewd", &mut std::io::stdout());
            Ok(Exit::Ok)
        }
        Command::Man => {
            man_page(&mut std::io::stdout().lock())?;
            Ok(Exit::Ok)
        }
    }
}

/// renewd(8): the top-level page with every subcommand described in it (clap's
/// default refers to one page per subcommand, which are not shipped).
fn man_page(out: &mut dyn Write) -> std::io::Result<()> {
    let command = Cli::command();
    let man = clap_mangen::Man::new(command.clone()).section("8");
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    writeln!(out, ".SH COMMANDS")?;
    for sub in command.get_subcommands() {
        let usage = sub.clone().render_usage().to_string();
        let usage = usage.trim_start_matches("Usage: ").replace('-', "\\-");
        writeln!(out, ".TP\n\\fBrenewd {usage}\\fR")?;
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            writeln!(out, "{}", about.to_string().replace('-', "\\-"))?;
        }
    }
    writeln!(
        out,
        ".SH FILES\n/etc/renewd/renewd.toml (see renewd.toml(5)), /var/lib/renewd, /run/renewd/control.sock"
    )?;
    writeln!(
        out,
        ".SH EXIT STATUS\n0 success, 1 failed or unhealthy, 2 invalid config or usage, 3 daemon not reachable, 4 permission denied"
    )?;
    man.render_version_section(out)
}

/// The exit status for an error that escaped a command.
#[must_use]
pub fn exit_for(error: &anyhow::Error) -> Exit {
    for cause in error.chain() {
        if cause.is::<config::Error>()
            || cause.is::<UsageError>()
            || cause
                .downcast_ref::<crate::daemon::Error>()
                .is_some_and(crate::daemon::Error::is_config)
        {
            return Exit::Invalid;
        }
        match cause.downcast_ref::<ConnectError>() {
            Some(ConnectError::NotRunning(_)) => return Exit::Unreachable,
            Some(ConnectError::Denied(_)) => return Exit::Denied,
            _ => {}
        }
        if cause.is::<Denied>() {
            return Exit::Denied;
        }
        let io = cause.downcast_ref::<std::io::Error>().or_else(|| {
            match cause.downcast_ref::<store::Error>() {
                Some(store::Error::Io { source, .. }) => Some(source),
                _ => None,
            }
        });
        if io.is_some_and(|e| {
            matches!(
                e.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            )
        }) {
            return Exit::Denied;
        }
    }
    Exit::Failed
}

fn check_config(location: &Location) -> Exit {
    match Config::load(location) {
        Ok(config) => {
            println!(
                "{}: ok ({} CA(s), {} solver(s), {} certificate(s))",
                location.file.display(),
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

async fn status(path: &Location, args: &args::StatusArgs) -> anyhow::Result<Exit> {
    let (statuses, fleet) = match named_status_from_daemon(path, &args.names).await {
        Some(reply) => reply,
        None => collect_status(path, &args.names).await?,
    };
    // Fleet mode: a node cut off from etcd orders nothing (but serves on).
    let connected = fleet
        .as_ref()
        .is_none_or(|f| f["connected"].as_bool() == Some(true));
    let healthy = connected && statuses.iter().all(|s| s.healthy);
    let mut summary = status::summary(&statuses);
    if let Some(fleet) = &fleet {
        summary = format!("{}\n{summary}", status::fleet_line(fleet));
    }
    let shown: Vec<status::CertStatus> = statuses
        .into_iter()
        .filter(|s| !args.problems || !s.healthy)
        .collect();
    if args.timeline {
        let entries = crate::timeline::entries(&shown);
        let now = time::OffsetDateTime::now_utc();
        print!("{}", crate::timeline::text(now, &entries, terminal_width()));
    } else {
        print_status(&shown, &summary, args.json, fleet.as_ref())?;
    }
    Ok(if healthy { Exit::Ok } else { Exit::Failed })
}

/// `status NAME...` asked of a running daemon before the config is loaded:
/// loading 100,000 certificates takes longer than the daemon's answer about
/// one. The socket comes from the file's `control_socket` line. `None` —
/// and the usual way, with its checks and messages — when no daemon answers
/// there or its answer does not cover every NAME exactly once.
async fn named_status_from_daemon(path: &Location, names: &[String]) -> Option<Statuses> {
    if names.is_empty() {
        return None;
    }
    let socket = config::control_socket_quick(&path.file);
    let request = Request::Status {
        names: names.to_vec(),
    };
    let mut client = daemon_request(&socket, &request).await.ok()??;
    let reply: StatusReply = client.next_as().await.ok()??;
    let mut asked: Vec<&String> = names.iter().collect();
    let mut got: Vec<&String> = reply.certificates.iter().map(|s| &s.name).collect();
    asked.sort();
    got.sort();
    (reply.ok && asked == got).then_some((reply.certificates, reply.cluster))
}

/// Certificates' statuses and, in fleet mode, the daemon's view of the fleet.
type Statuses = (Vec<status::CertStatus>, Option<serde_json::Value>);

/// The statuses of `names` (all when empty): from the daemon if one answers,
/// else read from the state directory.
async fn collect_status(path: &Location, names: &[String]) -> anyhow::Result<Statuses> {
    if names.is_empty() {
        if let Some(statuses) = all_status_while_loading(path).await? {
            return Ok(statuses);
        }
    }
    let (config, socket) = config_or_daemon(path).await?;
    if let Some(config) = &config {
        unknown_names(config, names)?;
    }
    let request = Request::Status {
        names: names.to_vec(),
    };
    Ok(match daemon_request(&socket, &request).await? {
        Some(mut client) => {
            let reply: StatusReply = client
                .next_as()
                .await
                .context("unexpected status reply from the daemon")?
                .context("the daemon closed the connection without replying")?;
            if !reply.ok {
                return Err(daemon_error(reply.error));
            }
            (reply.certificates, reply.cluster)
        }
        None => {
            let config = config.ok_or(ConnectError::NotRunning(socket.display().to_string()))?;
            let store = open_store(&config)?;
            let state = State::load(&store, &config);
            let now = time::OffsetDateTime::now_utc();
            (status::collect(&config, &store, &state, now, names), None)
        }
    })
}

/// The status of every certificate, the daemon asked while the config loads:
/// with 100,000 certificates loading took a sixth of `status --json`. As
/// [`collect_status`] otherwise (the same answers, warnings and errors);
/// `None` in the rare case it cannot tell (an invalid file whose socket line
/// reads differently leniently), for [`collect_status`] to go the usual way.
async fn all_status_while_loading(path: &Location) -> anyhow::Result<Option<Statuses>> {
    let socket = config::control_socket_quick(&path.file);
    let location = path.clone();
    let loading = tokio::task::spawn_blocking(move || Config::load(&location));
    let request = Request::Status { names: Vec::new() };
    let reply = match daemon_request(&socket, &request).await {
        Ok(Some(mut client)) => match client.next_as::<StatusReply>().await {
            Ok(Some(reply)) => Some(reply),
            // The usual way says what went wrong.
            _ => return Ok(None),
        },
        Ok(None) => None,
        Err(_) => return Ok(None),
    };
    let config = loading.await?;
    let config = match (config, reply) {
        (Ok(config), _) if config.daemon.control_socket != socket => return Ok(None),
        (Err(_), _) if config::control_socket_lenient(&path.file) != socket => return Ok(None),
        (Ok(config), None) => config,
        (Err(error), None) => return Err(error.into()),
        (config, Some(reply)) => {
            if let Err(error) = config {
                eprintln!(
                    "renewd: warning: {error}
renewd: asking the running daemon, which keeps its last valid config"
                );
            }
            if !reply.ok {
                return Err(daemon_error(reply.error));
            }
            return Ok(Some((reply.certificates, reply.cluster)));
        }
    };
    let store = open_store(&config)?;
    let state = State::load(&store, &config);
    let now = time::OffsetDateTime::now_utc();
    Ok(Some((
        status::collect(&config, &store, &state, now, &[]),
        None,
    )))
}

/// Loads the config and finds the control socket. When the file on disk is
/// invalid (an edit in progress) but a daemon still runs on the last valid one,
/// the daemon is used, with a warning: `status` must keep working then.
///
/// # Errors
///
/// The config error when the file is invalid and no daemon answers.
async fn config_or_daemon(location: &Location) -> anyhow::Result<(Option<Config>, PathBuf)> {
    let error = match Config::load(location) {
        Ok(config) => {
            let socket = config.daemon.control_socket.clone();
            return Ok((Some(config), socket));
        }
        Err(e) => e,
    };
    let socket = config::control_socket_lenient(&location.file);
    if Client::connect(&socket).await.is_ok() {
        eprintln!(
            "renewd: warning: {error}
renewd: asking the running daemon, which keeps its last valid config"
        );
        return Ok((None, socket));
    }
    Err(error.into())
}

/// Columns to draw in: `$COLUMNS` (shells set it), else 100.
fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100)
}

/// The table (after `summary`, a line about all certificates) or the JSON.
fn print_status(
    statuses: &[status::CertStatus],
    summary: &str,
    json: bool,
    fleet: Option<&serde_json::Value>,
) -> anyhow::Result<()> {
    #[derive(serde::Serialize)]
    struct Json<'a> {
        certificates: &'a [status::CertStatus],
        #[serde(skip_serializing_if = "Option::is_none")]
        cluster: Option<&'a serde_json::Value>,
    }
    // Buffered: stdout flushes at every newline, a write(2) per line of
    // pretty JSON, a quarter of `status --json`'s time with 10,000 certificates.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    if json {
        serde_json::to_writer_pretty(
            &mut out,
            &Json {
                certificates: statuses,
                cluster: fleet,
            },
        )?;
        writeln!(out)?;
    } else {
        let colour = std::io::IsTerminal::is_terminal(&std::io::stdout());
        writeln!(out, "{summary}")?;
        write!(out, "{}", status::table(statuses, colour))?;
        if fleet.is_some() {
            write!(out, "{}", status::fleet_table(statuses))?;
        }
    }
    out.flush()?;
    Ok(())
}

async fn renew(path: &Location, args: &args::RenewArgs) -> anyhow::Result<Exit> {
    if args.dry_run {
        return dry_run(path, &args.names).await;
    }
    let (config, socket) = config_or_daemon(path).await?;
    if let Some(config) = &config {
        unknown_names(config, &args.names)?;
        if config.certificates.is_empty() {
            println!(
                "nothing to renew: no certificate is configured in {} or {}",
                path.file.display(),
                path.drop_ins.join("*.toml").display()
            );
            return Ok(Exit::Ok);
        }
    }
    let (names, force) = match (&args.affected, &config) {
        (Some(file), Some(config)) => (affected(config, &open_store(config)?, file)?, true),
        (Some(_), None) => {
            anyhow::bail!("--affected needs a valid config to find the certificates")
        }
        (None, _) => (args.names.clone(), args.force),
    };
    if args.affected.is_some() && names.is_empty() {
        println!("no configured certificate has a listed serial");
        return Ok(Exit::Ok);
    }
    let request = Request::Renew {
        names: names.clone(),
        all: names.is_empty(),
        force,
        wait: !args.no_wait,
    };
    match (daemon_request(&socket, &request).await?, config) {
        (Some(client), _) => renew_through_daemon(client, args.no_wait).await,
        (None, Some(config)) if !args.no_wait => renew_in_process(config, &names, force).await,
        (None, _) => Err(ConnectError::NotRunning(socket.display().to_string()).into()),
    }
}

async fn renew_through_daemon(mut client: Client, no_wait: bool) -> anyhow::Result<Exit> {
    let mut ok = true;
    while let Some(line) = client.next().await? {
        if let Some(name) = line.get("name").and_then(|n| n.as_str()) {
            println!("{name}: {}", line["detail"].as_str().unwrap_or_default());
            continue;
        }
        if no_wait {
            let line = reply_ok(Some(line))?;
            let queued: Vec<&str> = line["queued"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str())
                .collect();
            println!("queued: {}", queued.join(" "));
            return Ok(Exit::Ok);
        }
        ok = line["ok"].as_bool().unwrap_or(false);
        if let Some(error) = line["error"].as_str() {
            reply_ok(Some(line.clone()))?;
            eprintln!("renewd: {error}");
        }
        break;
    }
    Ok(if ok { Exit::Ok } else { Exit::Failed })
}

async fn renew_in_process(config: Config, names: &[String], force: bool) -> anyhow::Result<Exit> {
    let store = open_store(&config)?;
    let _lock = store.lock()?;
    let certs = config
        .certificates
        .iter()
        .filter(|c| names.is_empty() || names.iter().any(|n| **n == *c.name))
        .cloned()
        .collect();
    let config = Arc::new(config);
    let mut run = OneShot::new(Arc::clone(&config), store);
    let outcomes = run.renew_all(certs, force).await;
    for (name, outcome) in &outcomes {
        println!("{name}: {outcome}");
    }
    let renewed: Vec<&config::CertificateConfig> = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, renew::Outcome::Renewed { .. }))
        .filter_map(|(name, _)| config.certificate(name))
        .collect();
    let (lines, deployed) = run.deploy(&renewed).await;
    for line in lines {
        println!("{line}");
    }
    let renewed_ok = outcomes.iter().all(|(_, o)| o.is_ok());
    Ok(if renewed_ok && deployed {
        Exit::Ok
    } else {
        Exit::Failed
    })
}

/// `renew --dry-run`: each certificate (all without names) issued from its
/// CAs' staging directories, nothing stored; one line each.
async fn dry_run(location: &Location, names: &[String]) -> anyhow::Result<Exit> {
    let config = Config::load(location)?;
    unknown_names(&config, names)?;
    let store = open_store(&config)?;
    let certs: Vec<config::CertificateConfig> = config
        .certificates
        .iter()
        .filter(|c| names.is_empty() || names.iter().any(|n| **n == *c.name))
        .cloned()
        .collect();
    let renewer = renew::Renewer::new(Arc::new(config), store, crate::metrics::Metrics::new());
    let mut ok = true;
    for cert in &certs {
        match renewer.dry_run(cert).await {
            Ok(line) => println!("{}: {line}", cert.name),
            Err(failure) => {
                println!("{}: dry run failed: {failure}", cert.name);
                ok = false;
            }
        }
    }
    Ok(if ok { Exit::Ok } else { Exit::Failed })
}

/// Sends `request` to the running daemon; `None` when no daemon is running.
async fn daemon_request(socket: &Path, request: &Request) -> anyhow::Result<Option<Client>> {
    match Client::connect(socket).await {
        Ok(mut client) => {
            client.send(request).await?;
            Ok(Some(client))
        }
        Err(ConnectError::NotRunning(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The daemon refused the request.
#[derive(Debug, thiserror::Error)]
#[error("daemon: permission denied")]
struct Denied;

/// Turns a daemon reply into an error unless it says `"ok": true`.
fn reply_ok(reply: Option<serde_json::Value>) -> anyhow::Result<serde_json::Value> {
    let reply = reply.context("the daemon closed the connection without replying")?;
    if reply["ok"].as_bool() == Some(true) {
        return Ok(reply);
    }
    Err(daemon_error(reply["error"].as_str().map(str::to_owned)))
}

/// The error a daemon's `{"ok": false, "error": ...}` reply stands for.
fn daemon_error(error: Option<String>) -> anyhow::Error {
    let error = error.unwrap_or_else(|| "unknown error".to_owned());
    if error == "permission denied" {
        return Denied.into();
    }
    anyhow::anyhow!("daemon: {error}")
}

/// The daemon's answer to `status`.
#[derive(serde::Deserialize)]
struct StatusReply {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    certificates: Vec<status::CertStatus>,
    /// Fleet mode only: etcd's reachability and the nodes.
    #[serde(default)]
    cluster: Option<serde_json::Value>,
}

async fn import_certbot(path: &Location, dir: &Path) -> anyhow::Result<Exit> {
    let config = Config::load(path)?;
    let store = open_store(&config)?;
    let _lock = store
        .lock()
        .context("stop the daemon (systemctl stop renewd) while importing")?;
    let report = crate::certbot::import(dir, &config, &store).await;
    let mut ok = true;
    for result in &report.lineages {
        match result {
            Ok(imported) => eprintln!("{}: {}", imported.name, imported.published),
            Err(e) => {
                eprintln!("renewd: {e}");
                ok = false;
            }
        }
    }
    for result in &report.accounts {
        match result {
            Ok(line) => eprintln!("{line}"),
            Err(e) => {
                eprintln!("renewd: {e}");
                ok = false;
            }
        }
    }
    print!("{}", report.config);
    for note in &report.notes {
        eprintln!("renewd: note: {note}");
    }
    Ok(if ok { Exit::Ok } else { Exit::Failed })
}

/// Revokes `name`'s live certificate and replaces it at once: through the
/// daemon when one runs (it owns the state), else in-process, with a deployment.
async fn revoke(path: &Location, name: &str, reason: Option<RevokeReason>) -> anyhow::Result<Exit> {
    let (config, socket) = config_or_daemon(path).await?;
    if let Some(config) = &config {
        unknown_names(config, &[name.to_owned()])?;
    }
    let request = Request::Revoke {
        name: name.to_owned(),
        reason,
    };
    if let Some(mut client) = daemon_request(&socket, &request).await? {
        let reply = reply_ok(client.next().await?)?;
        let serial = reply["serial"].as_str().unwrap_or_default();
        println!("{name}: revoked serial {serial}; the daemon is replacing it");
        return Ok(Exit::Ok);
    }
    let config = config.ok_or(ConnectError::NotRunning(socket.display().to_string()))?;
    let store = open_store(&config)?;
    let _lock = store.lock()?;
    let cert = config
        .certificate(name)
        .cloned()
        .context("unknown certificate")?;
    let config = Arc::new(config);
    let mut run = OneShot::new(Arc::clone(&config), store);
    let serial = run.revoke(&cert, reason.map(Into::into)).await?;
    println!("{name}: revoked serial {serial}");
    let outcomes = run.renew_all(vec![cert.clone()], false).await;
    let mut ok = true;
    for (name, outcome) in &outcomes {
        println!("{name}: {outcome}");
        ok &= outcome.is_ok();
    }
    if outcomes
        .iter()
        .any(|(_, o)| matches!(o, renew::Outcome::Renewed { .. }))
    {
        let (lines, deployed) = run.deploy(&[&cert]).await;
        for line in lines {
            println!("{line}");
        }
        ok &= deployed;
    }
    Ok(if ok { Exit::Ok } else { Exit::Failed })
}

fn open_store(config: &Config) -> anyhow::Result<Store> {
    Store::open(&config.daemon.state_dir).with_context(|| {
        format!(
            "cannot open state directory {}",
            config.daemon.state_dir.display()
        )
    })
}

/// The configured certificates whose live serial is listed in `file`.
fn affected(config: &Config, store: &Store, file: &Path) -> anyhow::Result<Vec<String>> {
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
                .is_some_and(|l| serials.contains(&store::cert::normalize_serial(&l.cert.serial)))
        })
        .map(|c| c.name.to_string())
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
