//! renewd keeps every configured TLS certificate valid without anyone watching.
//!
//! # Architecture
//!
//! A renewal flows through one module per concern:
//!
//! 1. [`config`] loads `/etc/renewd/renewd.toml` and validates all of it at once.
//! 2. [`schedule`] decides when each certificate is due: immediately when it is
//!    missing, mismatched or nearly expired, otherwise at the ARI window or the
//!    lifetime-based fallback point.
//! 3. [`renew`] runs one certificate's renewal: key ([`acme::generate_key`] or
//!    the live key), order through [`acme`] with each configured [`solver`] and
//!    CA in turn, then hands the chain to [`store`].
//! 4. [`store`] publishes the new version crash-safely: archive directory first,
//!    then an atomic swap of the `live/<name>` symlink.
//! 5. [`state`] remembers attempts and results in `state.json`; [`status`] turns
//!    config + store + state into what `renewd status` shows.
//!
//! The resident daemon ([`daemon`]) runs one scheduler loop that owns every
//! per-certificate decision. Signals (SIGUSR1, SIGHUP, SIGTERM) and
//! [`control`]-socket commands reach it as events on one channel; renewals and
//! ARI polls (with a look at the CA's CRL, [`crl`]) run as tasks (at most
//! `max_concurrent` orders in flight; a renewal gives its place back once the CA
//! has delivered, before writing to disk) whose results come back to the loop.
//! The state shared with those tasks is the [`state::State`] behind one mutex,
//! held only for short updates, so a `status` request never waits for a renewal.
//! [`systemd`] reports readiness, status and watchdog pings.
//!
//! [`cli`] holds the commands; `main.rs` only parses and maps exit codes.

pub mod acme;
pub mod certbot;
pub mod cli;
pub mod config;
pub mod control;
pub mod crl;
pub mod daemon;
pub mod deploy;
pub mod hook;
pub mod logging;
pub mod metrics;
pub mod oneshot;
pub mod reload;
pub mod renew;
pub mod schedule;
pub mod solver;
pub mod state;
pub mod status;
pub mod store;
pub mod systemd;
pub mod verify;
