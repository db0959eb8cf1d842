//! dns-01: publish `_acme-challenge.<domain>. TXT <value>` through a provider,
//! wait until it is visible, remove it afterwards.

use crate::config::SolverConfig;

use super::Error;

/// A configured dns-01 solver.
#[derive(Debug)]
pub(super) struct Dns01 {
    config: SolverConfig,
}

impl Dns01 {
    pub(super) fn new(_name: &str, config: &SolverConfig) -> Self {
        Self {
            config: config.clone(),
        }
    }

    /// Publishes the TXT record for `domain` (no `*.` prefix) and returns once it
    /// is visible (or fails after `propagation_timeout`).
    pub(super) async fn present(
        &self,
        solver: &str,
        domain: &str,
        value: &str,
    ) -> Result<(), Error> {
        let _ = (&self.config, domain, value);
        Err(Error::Dns {
            solver: solver.to_owned(),
            message: "dns-01 providers are not available in this build".to_owned(),
        })
    }

    /// Removes the TXT record (only this value: other values for the same name,
    /// e.g. of a wildcard and its base domain, stay).
    pub(super) async fn cleanup(&self, _solver: &str, _domain: &str, _value: &str) {}
}
