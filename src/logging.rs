//! Log output: human-readable lines on stderr, filtered by `RENEWD_LOG`
//! (`tracing_subscriber::EnvFilter` syntax, e.g. `debug` or `renewd=debug`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber with `default` as the level when `RENEWD_LOG`
/// is unset.
pub fn init(default: &str) {
    let filter = EnvFilter::try_from_env("RENEWD_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
