//! The control socket: a unix stream socket speaking one JSON object per line in
//! each direction. [`proto`] has the messages; [`client`] is what `renewd
//! status` and `renewd renew` use to reach a running daemon (whose side lives in
//! the daemon).

pub mod client;
pub mod proto;
