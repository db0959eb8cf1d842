//! The faults a simulation injects (`--faults`), by name.

use std::fmt;
use std::str::FromStr;

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The CA cannot be reached, for minutes to days.
    Outage,
    /// The CA answers 503 with a `Retry-After`, for a while.
    Busy,
    /// Orders refused with a `rateLimited` problem and a `Retry-After`.
    RateLimit,
    /// A `badNonce` that costs a round trip.
    BadNonce,
    /// Slow validations, and validations that fail.
    Validation,
    /// Orders that refuse `replaces` (retried without it in the same attempt).
    NoReplaces,
    /// Revocation of a random 1 % to 100 % of the live certificates, with and
    /// without keyCompromise; the CA moves their ARI windows into the past.
    Revocation,
    /// The CA moves the ARI windows of some certificates.
    WindowChange,
    /// The daemon is killed at any point and restarted from what is on disk.
    Crash,
    /// SIGHUP after certificates were added, removed or given new names.
    Sighup,
    /// Several SIGUSR1 within seconds.
    Usr1Storm,
    /// Reload targets that fail or hang.
    Reload,
    /// Served certificates that do not match.
    Verify,
}

impl Fault {
    /// Every fault, in the order `--faults` lists them.
    pub const ALL: [Self; 13] = [
        Self::Outage,
        Self::Busy,
        Self::RateLimit,
        Self::BadNonce,
        Self::Validation,
        Self::NoReplaces,
        Self::Revocation,
        Self::WindowChange,
        Self::Crash,
        Self::Sighup,
        Self::Usr1Storm,
        Self::Reload,
        Self::Verify,
    ];

    /// Its name on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Outage => "outage",
            Self::Busy => "busy",
            Self::RateLimit => "rate-limit",
            Self::BadNonce => "bad-nonce",
            Self::Validation => "validation",
            Self::NoReplaces => "no-replaces",
            Self::Revocation => "revocation",
            Self::WindowChange => "window-change",
            Self::Crash => "crash",
            Self::Sighup => "sighup",
            Self::Usr1Storm => "usr1-storm",
            Self::Reload => "reload",
            Self::Verify => "verify",
        }
    }

    fn bit(self) -> u32 {
        1 << Self::ALL.iter().position(|f| *f == self).unwrap_or(0)
    }
}

/// A set of faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faults(u32);

impl Faults {
    /// Every fault.
    #[must_use]
    pub fn all() -> Self {
        Self(Fault::ALL.iter().fold(0, |bits, f| bits | f.bit()))
    }

    /// No fault: a quiet fleet.
    #[must_use]
    pub fn none() -> Self {
        Self(0)
    }

    /// Whether `fault` is injected.
    #[must_use]
    pub fn has(self, fault: Fault) -> bool {
        self.0 & fault.bit() != 0
    }
}

impl FromStr for Faults {
    type Err = String;

    /// `all`, `none`, or names separated by commas.
    fn from_str(list: &str) -> Result<Self, String> {
        match list.trim() {
            "all" => return Ok(Self::all()),
            "none" | "" => return Ok(Self::none()),
            _ => {}
        }
        list.split(',')
            .map(str::trim)
            .try_fold(Self(0), |set, name| {
                Fault::ALL
                    .iter()
                    .find(|f| f.name() == name)
                    .map(|f| Self(set.0 | f.bit()))
                    .ok_or_else(|| {
                        let names: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
                        format!(
                            "unknown fault {name:?}: expected all, none or some of {}",
                            names.join(", ")
                        )
                    })
            })
    }
}

impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Fault::ALL
            .iter()
            .filter(|fault| self.has(**fault))
            .map(|fault| fault.name())
            .collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists_parse_and_print() {
        let set: Faults = "crash, outage".parse().unwrap();
        assert!(set.has(Fault::Crash) && set.has(Fault::Outage));
        assert!(!set.has(Fault::Busy));
        assert_eq!(set.to_string(), "outage,crash");
        assert_eq!("all".parse::<Faults>().unwrap(), Faults::all());
        let err = "crash,fire".parse::<Faults>().unwrap_err();
        assert!(
            err.contains("\"fire\"") && err.contains("usr1-storm"),
            "{err}"
        );
    }
}
