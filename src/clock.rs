//! The time renewd plans with. Certificates, ARI windows and backoffs are in
//! wall-clock time, so decisions read a [`Clock`]; the daemon waits on tokio's
//! timers, which run on the monotonic clock. In production the clock is the
//! system's; tests build one that follows tokio's (paused) time and can jump,
//! so they drive the scheduler exactly, without sleeping.

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
}
