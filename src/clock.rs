//! The time renewd plans with. Certificates, ARI windows and backoffs are in
//! wall-clock time, so decisions read a [`Clock`]; the daemon waits on tokio's
//! timers, which run on the monotonic clock. In production the clock is the
//! system's; tests build one that follows tokio's (paused) time and can jump,
//! so they drive the scheduler exactly, without sleeping.

use std::num::NonZeroI64;
use std::sync::{Arc, Mutex, PoisonError};

use time::{Duration, OffsetDateTime};

/// Where "now" comes from.
#[derive(Debug, Clone, Default)]
pub struct Clock(Source);

#[derive(Debug, Clone, Default)]
enum Source {
    #[default]
    System,
    /// `base` plus the tokio time elapsed since `start`, plus `jumped`.
    Tokio {
        base: OffsetDateTime,
        start: tokio::time::Instant,
        jumped: Arc<Mutex<Duration>>,
    },
}

impl Clock {
    /// The system's wall clock.
    #[must_use]
    pub fn system() -> Self {
        Self(Source::System)
    }

    /// A clock at `base` now that advances with tokio's time: under
    /// `tokio::time::pause()`, advancing tokio's time advances it too.
    #[must_use]
    pub fn following_tokio(base: OffsetDateTime) -> Self {
        Self(Source::Tokio {
            base,
            start: tokio::time::Instant::now(),
            jumped: Arc::default(),
        })
    }

    /// The wall-clock time.
    #[must_use]
    pub fn now(&self) -> OffsetDateTime {
        match &self.0 {
            Source::System => OffsetDateTime::now_utc(),
            Source::Tokio {
                base,
                start,
                jumped,
            } => {
                let jumped = *jumped.lock().unwrap_or_else(PoisonError::into_inner);
                *base + start.elapsed() + jumped
            }
        }
    }

    /// Moves the wall clock by `by` without moving tokio's timers, as a clock
    /// stepped by NTP or a host resumed from suspend does. Only for a clock
    /// that follows tokio; the system's cannot be moved.
    pub fn jump(&self, by: Duration) {
        if let Source::Tokio { jumped, .. } = &self.0 {
            *jumped.lock().unwrap_or_else(PoisonError::into_inner) += by;
        }
    }
}

/// A wall-clock instant to the millisecond in 8 bytes, as the scheduler
/// keeps its per-certificate times (an [`OffsetDateTime`] takes 16, and an
/// `Option` of one as many): with 100,000 certificates the difference is
/// megabytes, and comparing two is comparing two integers. Instants outside
/// 1970 (its first millisecond excluded, so that `None` fits in the same 8
/// bytes) to 9999 are clamped to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Moment(NonZeroI64);

impl Moment {
    /// The last millisecond of the year 9999, the latest `OffsetDateTime`.
    const LAST: i64 = 253_402_300_799_999;

    /// The instant as an [`OffsetDateTime`] in UTC.
    #[must_use]
    pub fn time(self) -> OffsetDateTime {
        let nanos = i128::from(self.0.get()) * 1_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

impl PartialEq<OffsetDateTime> for Moment {
    fn eq(&self, other: &OffsetDateTime) -> bool {
        self.time() == *other
    }
}

impl PartialOrd<OffsetDateTime> for Moment {
    fn partial_cmp(&self, other: &OffsetDateTime) -> Option<std::cmp::Ordering> {
        self.time().partial_cmp(other)
    }
}

impl std::ops::Sub<OffsetDateTime> for Moment {
    type Output = Duration;

    fn sub(self, other: OffsetDateTime) -> Duration {
        self.time() - other
    }
}

impl std::ops::Add<Duration> for Moment {
    type Output = OffsetDateTime;

    fn add(self, by: Duration) -> OffsetDateTime {
        self.time() + by
    }
}

/// Written as RFC 3339, as the times of `state.json` always were.
impl serde::Serialize for Moment {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        time::serde::rfc3339::serialize(&self.time(), serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Moment {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        time::serde::rfc3339::deserialize(deserializer).map(Self::from)
    }
}

impl From<OffsetDateTime> for Moment {
    fn from(at: OffsetDateTime) -> Self {
        let millis = at.unix_timestamp_nanos().div_euclid(1_000_000);
        let millis = i64::try_from(millis.clamp(1, i128::from(Self::LAST))).unwrap_or(1);
        Self(NonZeroI64::new(millis).unwrap_or(NonZeroI64::MIN))
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_clock_following_tokio_advances_and_jumps() {
        let base = datetime!(2026-06-01 00:00 UTC);
        let clock = Clock::following_tokio(base);
        assert_eq!(clock.now(), base);
        tokio::time::advance(std::time::Duration::from_secs(90)).await;
        assert_eq!(clock.now(), base + Duration::seconds(90));
        clock.jump(Duration::days(30));
        assert_eq!(
            clock.now(),
            base + Duration::days(30) + Duration::seconds(90)
        );
    }

    #[test]
    fn a_moment_keeps_the_millisecond_and_clamps_what_it_cannot_hold() {
        let at = datetime!(2026-06-01 12:34:56.789_999 UTC);
        assert_eq!(
            Moment::from(at).time(),
            datetime!(2026-06-01 12:34:56.789 UTC)
        );
        assert!(Moment::from(at) < Moment::from(at + Duration::milliseconds(1)));
        let epoch = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(
            Moment::from(epoch - Duration::days(1)).time(),
            epoch + Duration::milliseconds(1)
        );
        let last = datetime!(9999-12-31 23:59:59.999 UTC);
        assert_eq!(Moment::from(last).time(), last);
        assert_eq!(std::mem::size_of::<Option<Moment>>(), 8);
    }
}
