//! renewd keeps every configured TLS certificate valid without anyone watching.
//!
//! # Architecture
//!
//! A renewal flows one way, through one module per concern:
//!
//! 1. [`config`] loads `/etc/renewd/renewd.toml`, validates all of it at once and
//!    parses it into types (a solver is a [`config::SolverConfig`] variant, not a
//!    bag of optional keys).
//! 2. [`schedule`] decides when each certificate is due, as pure functions of
//!    the certificate, what [`state`] remembers, the clock and a random number:
//!    immediately when it is missing, mismatched, revoked or nearly expired,
//!    otherwise at a time drawn in the CA's ARI window or after the
//!    lifetime-based fallback point.
//! 3. [`renew`] runs one certificate's renewal: key ([`acme::generate_key`] or
//!    the live key), order through [`acme`] with each configured [`solver`] and
//!    CA in turn, then hands the chain to [`store`]. It returns an
//!    [`renew::Outcome`] and writes no state.
//! 4. [`store`] publishes the new version crash-safely: archive directory first,
//!    then an atomic swap of the `live/<name>` symlink.
//! 5. [`renew::Outcome::record`] turns the outcome into the certificate's next
//!    [`state::CertState`] (backoff, Retry-After, a deployment marked pending);
//!    [`state`] writes `state.json`.
//! 6. [`deploy`] reloads what uses the certificate ([`reload`]) and checks that
//!    it is served ([`verify`]), recording both; [`status`] turns config + store
//!    + state into what `renewd status` and the metrics show.
//!
//! [`acme::Cas`] owns everything renewd asks a CA outside an order: accounts,
//! ARI windows, revocation, the CA's CRL ([`crl`]) and its `Retry-After`s.
//!
//! Two drivers run that flow. [`oneshot`] (`renewd renew` without a daemon)
//! runs it once over the due certificates and deploys them as one batch. The
//! resident [`daemon`] runs one scheduler loop that owns every per-certificate
//! decision and is the only writer of the state: signals (SIGUSR1, SIGHUP,
//! SIGTERM) and control-socket commands reach it as events on one channel;
//! renewals, ARI polls, reloads and checks run as tasks (at most
//! `max_concurrent` orders in flight; a renewal gives its place back once the CA
//! has delivered, before writing to disk) whose results come back to the loop,
//! which records them. The control socket and the `/metrics` endpoint read the
//! state behind one mutex, held only to copy it, so a `status` request never
//! waits for a renewal. [`systemd`] reports readiness, status and watchdog pings;
//! [`metrics`] counts through a handle passed to what counts.
//!
//! In fleet mode ([`cluster`], `[cluster]` in the config) several daemons
//! share their certificates through etcd: the scheduler asks whether this
//! node holds a certificate's lease before ordering or polling, and versions
//! other nodes issued reach it as events, to deploy like its own.
//!
//! [`control`] holds the socket protocol and the client the CLI uses; [`cli`]
//! holds the commands; `main.rs` only parses and maps exit codes.

pub mod acme;
pub mod certbot;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod control;
pub mod crl;
pub mod daemon;
pub mod deploy;
pub mod failure;
#[cfg(fuzzing)]
pub mod fuzzing;
pub mod hook;
pub mod intern;
pub mod logging;
pub mod metrics;
pub mod oneshot;
pub mod parallel;
pub mod reload;
pub mod renew;
pub mod schedule;
pub mod secret;
#[cfg(feature = "sim")]
pub mod sim;
pub mod solver;
pub mod state;
pub mod status;
pub mod store;
pub mod systemd;
pub mod timeline;
pub mod verify;
