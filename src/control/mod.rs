//! The control socket (spec section 6): a unix stream socket speaking one JSON
//! object per line in each direction. [`server`] runs inside the daemon and
//! checks peers with `SO_PEERCRED`; [`client`] is what `renewd status` and
//! `renewd renew` use to reach a running daemon.

pub mod client;
pub mod proto;
pub mod server;
