//! Talking to systemd: readiness and status notifications ([`notify`]).
//! Everything here is a no-op when not started by systemd.

pub mod notify;
