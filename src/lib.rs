//! renewd: keeps every configured TLS certificate valid.
pub mod config;
pub mod store;
