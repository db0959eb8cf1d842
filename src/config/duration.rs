//! Durations as operators write them in the config: `"90s"`, `"15m"`, `"12h"`, `"30d"`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A non-negative duration parsed from `<number><unit>` with unit `s`, `m`, `h` or `d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    /// A duration of `secs` seconds.
    #[must_use]
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }
}

impl FromStr for ConfigDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            format!(
                "invalid duration {s:?}: expected a whole number followed by s, m, h or d \
                 (e.g. \"90s\", \"15m\", \"12h\", \"30d\")"
            )
        };
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
        let (number, unit) = s.split_at(split);
        let number: u64 = number.parse().map_err(|_| invalid())?;
        let scale = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(invalid()),
        };
        number
            .checked_mul(scale)
            .map(Self::from_secs)
            .ok_or_else(invalid)
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        match secs {
            0 => write!(f, "0s"),
            s if s % 86_400 == 0 => write!(f, "{}d", s / 86_400),
            s if s % 3600 == 0 => write!(f, "{}h", s / 3600),
            s if s % 60 == 0 => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!("90s".parse(), Ok(ConfigDuration::from_secs(90)));
        assert_eq!("15m".parse(), Ok(ConfigDuration::from_secs(900)));
        assert_eq!("12h".parse(), Ok(ConfigDuration::from_secs(43_200)));
        assert_eq!("30d".parse(), Ok(ConfigDuration::from_secs(2_592_000)));
    }

    #[test]
    fn rejects_garbage_with_an_example() {
        for bad in ["", "5", "h", "5x", "1.5h", "-3s", "5 h"] {
            let err = bad.parse::<ConfigDuration>().unwrap_err();
            assert!(err.contains("\"12h\""), "{bad}: {err}");
        }
    }

    #[test]
    fn displays_in_the_largest_whole_unit() {
        assert_eq!(ConfigDuration::from_secs(86_400 * 30).to_string(), "30d");
        assert_eq!(ConfigDuration::from_secs(90).to_string(), "90s");
        assert_eq!(ConfigDuration::from_secs(7200).to_string(), "2h");
    }
}
