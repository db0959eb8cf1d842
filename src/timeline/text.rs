//! The timeline on the terminal: a row per certificate (`-` valid, `R` the
//! planned renewal, `~` after it, `X` the expiry), or, past
//! [`MAX_ROWS`](super::MAX_ROWS), one bar per day or week counting renewals and
//! expiries.

use std::fmt::Write as _;

use time::{Duration, OffsetDateTime};

use super::{BucketSize, Entry, MAX_ROWS, buckets, relative, span, tallest};

/// Narrowest chart drawn, whatever `width` says.
const MIN_CHART: usize = 20;

/// The timeline of `entries` at `now`, at most about `width` columns wide.
#[must_use]
pub fn text(now: OffsetDateTime, entries: &[Entry], width: usize) -> String {
    if entries.is_empty() {
        return "no certificates\n".to_owned();
    }
    if entries.len() <= MAX_ROWS {
        rows(now, entries, width)
    } else {
        histogram(now, entries, width)
    }
}

fn rows(now: OffsetDateTime, entries: &[Entry], width: usize) -> String {
    let name_width = entries
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(0)
        .max(4);
    // The note after each chart: "R in 59d 23h  X in 89d 23h".
    let chart_width = width.saturating_sub(name_width + 30).max(MIN_CHART);
    let span = span(now, entries);
    let column = span / u32::try_from(chart_width).unwrap_or(u32::MAX);
    let mut out = format!(
        "{} days from {} (- valid, R renewal, ~ renewal window passed, X expiry)\n",
        span.whole_days(),
        now.date()
    );
    let _ = writeln!(
        out,
        "{:name_width$}  {}",
        "NAME",
        axis(now, column, chart_width)
    );
    for entry in entries {
        let cells: String = (0..chart_width)
            .map(|i| {
                cell(
                    entry,
                    now + column * u32::try_from(i).unwrap_or(0),
                    column,
                    now,
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "{:name_width$}  {cells}  {}",
            entry.name,
            note(entry, now)
        );
    }
    out
}

/// The date of every tenth column, under the chart's first row.
fn axis(now: OffsetDateTime, column: Duration, width: usize) -> String {
    let mut axis = String::new();
    for i in (0..width).step_by(10) {
        let date = (now + column * u32::try_from(i).unwrap_or(0)).date();
        let label = format!("|{:02}-{:02}", u8::from(date.month()), date.day());
        if axis.len() + label.len() <= width {
            let _ = write!(axis, "{label:10}");
        }
    }
    axis.trim_end().to_owned()
}

/// The character for `entry` in the column from `start`, `column` long.
fn cell(entry: &Entry, start: OffsetDateTime, column: Duration, now: OffsetDateTime) -> char {
    let end = start + column;
    let within = |t: Option<OffsetDateTime>| {
        // Overdue renewals and past expiries show in the first column.
        t.is_some_and(|t| (t < end && t >= start) || (start == now && t < now))
    };
    let Some(not_after) = entry.not_after else {
        return ' ';
    };
    if within(Some(not_after)) {
        'X'
    } else if within(entry.next_renewal) {
        'R'
    } else if start >= not_after {
        ' '
    } else if entry.next_renewal.is_some_and(|r| start >= r) {
        '~'
    } else {
        '-'
    }
}

fn note(entry: &Entry, now: OffsetDateTime) -> String {
    let Some(not_after) = entry.not_after else {
        return "no certificate".to_owned();
    };
    let expiry = if not_after <= now {
        format!("X expired {}", relative(now, not_after))
    } else {
        format!("X {}", relative(now, not_after))
    };
    match entry.next_renewal {
        Some(at) if at <= now => format!("R due now  {expiry}"),
        Some(at) => format!("R {}  {expiry}", relative(now, at)),
        None => format!("R not planned  {expiry}"),
    }
}

fn histogram(now: OffsetDateTime, entries: &[Entry], width: usize) -> String {
    let (size, buckets, expired) = buckets(now, entries);
    let most = tallest(&buckets);
    // Two bars side by side, each with its count.
    let bar_width = (width.saturating_sub(12 + 2 * 7) / 2).max(MIN_CHART / 2);
    let bar = |count: usize, mark: char| {
        let len = (count * bar_width).div_ceil(most);
        format!("{:bar_width$} {count:>5}", mark.to_string().repeat(len))
    };
    let unit = match size {
        BucketSize::Day => "day",
        BucketSize::Week => "week",
    };
    let mut out = format!(
        "{} certificates: renewals (R) and expiries (X) per {unit} from {}\n",
        entries.len(),
        now.date()
    );
    if expired > 0 {
        let _ = writeln!(out, "{expired} expired already");
    }
    let header = format!(
        "{:12}{:w$}  EXPIRIES",
        unit.to_uppercase(),
        "RENEWALS",
        w = bar_width + 6
    );
    let _ = writeln!(out, "{header}");
    for b in &buckets {
        let line = format!(
            "{:12}{}  {}",
            b.start.to_string(),
            bar(b.renewals, 'R'),
            bar(b.expiries, 'X')
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::{NOW, entry};
    use super::*;

    #[test]
    fn one_row_per_certificate_marks_renewal_and_expiry() {
        let entries = [
            entry("a.example", 60, 90),
            entry("b", 10, 40),
            Entry {
                name: "missing".into(),
                not_after: None,
                next_renewal: Some(NOW),
            },
        ];
        let out = text(NOW, &entries, 121);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "91 days from 2026-12-01 (- valid, R renewal, ~ renewal window passed, X expiry)"
        );
        // A date every ten columns of 91/82 days.
        assert!(
            lines[1].starts_with("NAME       |12-01    |12-12    |12-23"),
            "{out}"
        );
        // 91 days over 82 columns: renewal at day 60 is column 54, expiry at 90 column 81.
        let a = lines[2];
        assert_eq!(&a[..11], "a.example  ");
        let chart = &a[11..];
        assert_eq!(chart.find('R'), Some(54), "{a}");
        assert_eq!(chart.find('X'), Some(81), "{a}");
        assert!(chart[..54].chars().all(|c| c == '-'), "{a}");
        assert!(chart[55..81].chars().all(|c| c == '~'), "{a}");
        assert!(a.ends_with("X  R in 60d 0h  X in 90d 0h"), "{a}");
        let b = &lines[3][11..];
        assert_eq!((b.find('R'), b.find('X')), (Some(9), Some(36)), "{b}");
        // The notes line up after the charts.
        assert_eq!(lines[3].find("R in"), a.find("R in"), "{out}");
        assert_eq!(lines[4], format!("missing    {:82}  no certificate", ""));
    }

    #[test]
    fn overdue_and_expired_show_in_the_first_column() {
        let expired = Entry {
            name: "old".into(),
            not_after: Some(NOW - Duration::days(1)),
            next_renewal: Some(NOW - Duration::hours(1)),
        };
        let out = text(NOW, &[expired, entry("x", 30, 60)], 80);
        let line = out.lines().nth(2).unwrap();
        assert_eq!(&line[6..7], "X", "{out}");
        assert!(line.ends_with("R due now  X expired 1d 0h ago"), "{out}");
    }

    #[test]
    fn many_certificates_become_a_histogram_with_gaps() {
        let mut entries: Vec<Entry> = (0..40).map(|i| entry(&format!("c{i}"), 60, 90)).collect();
        entries.extend((0..10).map(|i| entry(&format!("d{i}"), 2, 30)));
        let out = text(NOW, &entries, 80);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "50 certificates: renewals (R) and expiries (X) per week from 2026-12-01"
        );
        assert!(lines[1].starts_with("WEEK"), "{out}");
        // 40 renewals in week 8 fill the bar; 10 in week 0 are a quarter of it.
        assert_eq!(lines[2].matches('R').count(), 7, "{out}");
        assert!(lines[2].starts_with("2026-12-01  RRRRRRR "), "{out}");
        assert!(
            lines[2].ends_with("   10                                  0"),
            "{out}"
        );
        // Weeks without anything are kept: the gaps are part of the picture.
        assert!(lines[3].starts_with("2026-12-08 "), "{out}");
        assert_eq!(lines[3].matches(" 0").count(), 2, "{out}");
        assert!(lines[6].contains("  XXXXXXX "), "expiries in week 4: {out}");
        let week8 = lines[10];
        assert!(
            week8.starts_with(&format!("2027-01-26  {}    40", "R".repeat(27))),
            "{out}"
        );
        assert!(lines[14].starts_with("2027-02-23 "), "{out}");
        assert!(
            lines[14].ends_with(&format!("{}    40", "X".repeat(27))),
            "{out}"
        );
        assert_eq!(lines.len(), 16, "{out}");
    }
}
