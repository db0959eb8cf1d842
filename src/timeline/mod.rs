//! A picture of the certificates over time: when each expires and when it will
//! be renewed, so an operator sees clustering and gaps at a glance. Drawn for
//! the terminal (`renewd status --timeline`, [`text`]) and as a small
//! self-contained HTML page (`GET /` beside `/metrics`, [`html`]).
//!
//! Both are pure functions of the time now and each certificate's expiry and
//! next renewal ([`Entry`]): up to [`MAX_ROWS`] certificates get a row each;
//! more are counted per day or week ([`buckets`]).

mod html;
mod text;

use time::{Date, Duration, OffsetDateTime};

pub use html::html;
pub use text::text;

use crate::status::CertStatus;

/// Up to this many certificates get a row each; more are shown as counts per
/// day or week.
pub const MAX_ROWS: usize = 30;

/// What the picture knows of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Certificate name.
    pub name: String,
    /// When the live certificate expires; `None` when there is none.
    pub not_after: Option<OffsetDateTime>,
    /// When it will be renewed next, if planned.
    pub next_renewal: Option<OffsetDateTime>,
}

/// The entries of `statuses` (their RFC 3339 times parsed).
#[must_use]
pub fn entries(statuses: &[CertStatus]) -> Vec<Entry> {
    let parse = |t: &Option<String>| {
        t.as_deref().and_then(|t| {
            OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
    };
    statuses
        .iter()
        .map(|s| Entry {
            name: s.name.clone(),
            not_after: parse(&s.not_after),
            next_renewal: parse(&s.next_renewal),
        })
        .collect()
}

/// The time the picture spans from `now`: up to the last expiry or renewal,
/// whole days, at least a week.
#[must_use]
pub fn span(now: OffsetDateTime, entries: &[Entry]) -> Duration {
    let last = entries
        .iter()
        .flat_map(|e| [e.not_after, e.next_renewal])
        .flatten()
        .max()
        .unwrap_or(now);
    Duration::days(((last - now).whole_hours() / 24 + 1).max(7))
}

/// The size of a histogram bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketSize {
    /// One day (spans up to 45 days).
    Day,
    /// Seven days.
    Week,
}

impl BucketSize {
    fn days(self) -> i64 {
        match self {
            Self::Day => 1,
            Self::Week => 7,
        }
    }
}

/// Renewals and expiries that fall in one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// First day of the bucket.
    pub start: Date,
    /// Renewals planned in it (overdue ones count in the first bucket).
    pub renewals: usize,
    /// Certificates expiring in it.
    pub expiries: usize,
}

/// The largest count of any bucket (at least 1): the full height of a bar.
#[must_use]
pub fn tallest(buckets: &[Bucket]) -> usize {
    buckets
        .iter()
        .map(|b| b.renewals.max(b.expiries))
        .max()
        .unwrap_or(0)
        .max(1)
}

/// Every bucket from today to the end of the [`span`], empty ones included
/// (gaps are part of the picture), and how many certificates expired already.
#[must_use]
pub fn buckets(now: OffsetDateTime, entries: &[Entry]) -> (BucketSize, Vec<Bucket>, usize) {
    let span = span(now, entries);
    let size = if span <= Duration::days(45) {
        BucketSize::Day
    } else {
        BucketSize::Week
    };
    let today = now.date();
    let count = (span.whole_days() + size.days() - 1) / size.days() + 1;
    let mut buckets: Vec<Bucket> = (0..count)
        .map(|i| Bucket {
            start: today + Duration::days(i * size.days()),
            renewals: 0,
            expiries: 0,
        })
        .collect();
    let last = buckets.len() - 1;
    let index = |t: OffsetDateTime| {
        let days = (t.date() - today).whole_days().max(0) / size.days();
        usize::try_from(days).map_or(0, |i| i.min(last))
    };
    let mut expired = 0;
    for entry in entries {
        if let Some(at) = entry.next_renewal {
            let i = index(at);
            buckets[i].renewals += 1;
        }
        match entry.not_after {
            Some(at) if at <= now => expired += 1,
            Some(at) => {
                let i = index(at);
                buckets[i].expiries += 1;
            }
            None => {}
        }
    }
    (size, buckets, expired)
}

/// "in 3d 4h", "3d 4h ago" or "now".
fn relative(now: OffsetDateTime, at: OffsetDateTime) -> String {
    let d = at - now;
    if d.abs() < Duration::minutes(1) {
        "now".to_owned()
    } else if d.is_positive() {
        format!("in {}", crate::status::human_duration(d))
    } else {
        format!("{} ago", crate::status::human_duration(-d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    pub(super) const NOW: OffsetDateTime = datetime!(2026-12-01 12:00 UTC);

    pub(super) fn entry(name: &str, renew_days: i64, expiry_days: i64) -> Entry {
        Entry {
            name: name.to_owned(),
            not_after: Some(NOW + Duration::days(expiry_days)),
            next_renewal: Some(NOW + Duration::days(renew_days)),
        }
    }

    #[test]
    fn the_span_reaches_the_last_expiry_and_is_at_least_a_week() {
        assert_eq!(span(NOW, &[entry("a", 60, 90)]), Duration::days(91));
        assert_eq!(span(NOW, &[entry("a", 1, 2)]), Duration::days(7));
        assert_eq!(span(NOW, &[]), Duration::days(7));
    }

    #[test]
    fn buckets_count_renewals_and_expiries_and_keep_the_gaps() {
        let entries = [
            entry("a", 60, 90),
            entry("b", 60, 90),
            entry("c", -1, 20), // overdue: counts today
            Entry {
                name: "gone".into(),
                not_after: Some(NOW - Duration::days(2)),
                next_renewal: Some(NOW),
            },
        ];
        let (size, buckets, expired) = buckets(NOW, &entries);
        assert_eq!(size, BucketSize::Week);
        assert_eq!(expired, 1);
        assert_eq!(buckets.len(), 14);
        assert_eq!(buckets[0].start, NOW.date());
        assert_eq!((buckets[0].renewals, buckets[0].expiries), (2, 0));
        assert_eq!((buckets[2].renewals, buckets[2].expiries), (0, 1));
        assert_eq!((buckets[8].renewals, buckets[8].expiries), (2, 0));
        assert_eq!((buckets[12].renewals, buckets[12].expiries), (0, 2));
        let total: usize = buckets.iter().map(|b| b.renewals + b.expiries).sum();
        assert_eq!(total, 7);
    }

    #[test]
    fn short_spans_are_counted_per_day() {
        let (size, buckets, _) = buckets(NOW, &[entry("a", 2, 6)]);
        assert_eq!(size, BucketSize::Day);
        assert_eq!(buckets.len(), 8);
        assert_eq!(buckets[2].renewals, 1);
        assert_eq!(buckets[6].expiries, 1);
    }
}
