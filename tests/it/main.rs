//! End-to-end tests: the `renewd` binary against a real Pebble ACME CA.
//!
//! Each test starts its own Pebble on free loopback ports (see [`fixture`]), so
//! tests run in parallel. Pebble and its challenge test server come from
//! `tests/tools/install-pebble`; `.ci/run` installs them.

#[allow(dead_code, reason = "shared by test modules that each use part of it")]
mod fixture;

mod acme2certifier;
mod certbot;
mod check_config;
mod daemon;
mod dns;
mod fallback;
mod fleet;
mod hostile;
mod ip;
mod oneshot;
mod quirks;
mod scale;
mod served;
mod timeline;
