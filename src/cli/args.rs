//! The command line (`docs/reference/cli.md`), declared once for parsing, `--help`, the
//! man page (`renewd man`) and shell completions (`renewd completions SHELL`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Keeps every configured TLS certificate valid: schedules renewals (ACME ARI
/// first), reloads the services that use them and checks they serve the new one.
#[derive(Debug, Parser)]
#[command(
    name = "renewd",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Config file.
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "RENEWD_CONFIG",
        default_value = crate::config::DEFAULT_PATH,
        value_name = "FILE"
    )]
    pub config: PathBuf,

    /// Drop-in directory: its `*.toml` files add CAs, solvers and certificates
    /// (default: `renewd.d` beside the config file).
    #[arg(long, global = true, env = "RENEWD_CONFIG_DIR", value_name = "DIR")]
    pub config_dir: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the resident daemon (what the systemd unit starts).
    Run,
    /// Show every certificate's state; exit 1 if any is unhealthy.
    ///
    /// A table by default; --json for scripts; --timeline draws when each
    /// certificate will be renewed and expires (a row each up to 30, else
    /// counts per day or week); --problems shows only the unhealthy ones.
    Status(StatusArgs),
    /// Renew due certificates now (or all, with --force) and print one line each.
    Renew(RenewArgs),
    /// Validate the config file; exit 2 with every problem if it is invalid.
    CheckConfig,
    /// Take over from certbot: each lineage's certificates (archive history,
    /// never replacing a newer live one) into renewd's store, certbot's ACME
    /// account (an RSA key is rolled over to P-256 at the CA, which certbot then
    /// cannot use), and print the config to add (CAs, solvers, certificates with
    /// certbot's hooks as exec reload targets). Then: systemctl disable --now
    /// certbot.timer.
    ImportCertbot {
        /// certbot's config directory.
        #[arg(default_value = "/etc/letsencrypt")]
        dir: std::path::PathBuf,
    },
    /// Revoke a certificate's live version at its CA, then replace it at once
    /// with a new key (through the running daemon, or in-process without one).
    Revoke {
        /// Certificate name.
        name: String,
        /// Revocation reason (RFC 5280).
        #[arg(long, value_enum)]
        reason: Option<crate::control::proto::RevokeReason>,
    },
    /// Print a shell completion script.
    Completions {
        /// Shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the renewd(8) man page (roff).
    Man,
}

/// `renewd status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only these certificates.
    pub names: Vec<String>,
    /// Print JSON (`{"certificates":[...]}`) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Show only the certificates that are not healthy (the exit status still
    /// covers all).
    #[arg(long)]
    pub problems: bool,
    /// Draw when each certificate will be renewed (R) and expires (X): a row
    /// each up to 30 certificates, else renewals and expiries counted per day
    /// or week. Fits $COLUMNS (default 100). The daemon serves the same picture
    /// as a web page at / on metrics_listen.
    #[arg(long, conflicts_with = "json")]
    pub timeline: bool,
}

/// `renewd renew`.
#[derive(Debug, Args)]
pub struct RenewArgs {
    /// Certificates to renew (default: all that are due).
    #[arg(conflicts_with = "all")]
    pub names: Vec<String>,
    /// Every configured certificate.
    #[arg(long)]
    pub all: bool,
    /// Renew even if not due (the answer to a mass revocation).
    #[arg(long)]
    pub force: bool,
    /// Queue the renewals and return at once (daemon only).
    #[arg(long)]
    pub no_wait: bool,
    /// Issue from each CA's staging directory with a throw-away key and store
    /// nothing: no live/, archive/ or state change, no reload (default: all).
    #[arg(long, conflicts_with_all = ["force", "no_wait", "affected"])]
    pub dry_run: bool,
    /// Force-renew only certificates whose serial is listed in FILE (hex, one per
    /// line, as CAs publish after a mass revocation).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["names", "all"])]
    pub affected: Option<PathBuf>,
}
