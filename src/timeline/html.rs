//! The timeline as a small self-contained HTML page: inline SVG and CSS, no
//! script, nothing loaded from elsewhere. Up to [`MAX_ROWS`] certificates get a
//! bar each (valid until the renewal, then the renewal window, the renewal and
//! expiry marked); more are drawn as a histogram of renewals and expiries per
//! day or week.

use std::fmt::Write as _;

use time::OffsetDateTime;

use super::{BucketSize, Entry, MAX_ROWS, buckets, span, tallest};
use crate::status::rfc3339;

/// Width of the chart area, in SVG units (pixels).
const CHART: f64 = 720.0;
/// Room for the names left of the chart.
const LABELS: f64 = 220.0;
/// Height of one certificate's row.
const ROW: f64 = 22.0;
/// Height of the histogram's bars at their tallest.
const BARS: f64 = 200.0;

const STYLE: &str = "body{font:14px sans-serif;margin:1.5em;color:#222}\
    h1{font-size:1.3em}svg text{font-size:12px;fill:#222}\
    .valid{fill:#8c8}.window{fill:#fd8}.renewal,.renewals{fill:#26c}\
    .expiry,.expiries{fill:#c22}.axis{stroke:#999}.now{stroke:#222}\
    .legend span{display:inline-block;width:.8em;height:.8em;margin:0 .3em 0 1em}";

/// The page for `entries` at `now`.
#[must_use]
pub fn html(now: OffsetDateTime, entries: &[Entry]) -> String {
    let key =
        |colour: &str, what: &str| format!("<span style=\"background:{colour}\"></span>{what}");
    let (svg, legend) = if entries.len() <= MAX_ROWS {
        let legend = [
            key("#8c8", "valid"),
            key("#fd8", "after the planned renewal"),
        ]
        .concat();
        (rows(now, entries), legend)
    } else {
        (histogram(now, entries), String::new())
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>renewd: certificates over time</title><style>{STYLE}</style></head>\n\
         <body><h1>renewd: certificates over time</h1>\n\
         <p id=\"summary\">{} certificate(s), {} days from {}.</p>\n\
         <p class=\"legend\">{legend}{}{}</p>\n{svg}\n\
         <p>Also: <a href=\"/metrics\">/metrics</a>, <code>renewd status --timeline</code>.</p>\
         </body></html>\n",
        entries.len(),
        span(now, entries).whole_days(),
        rfc3339(now),
        key("#26c", "renewal"),
        key("#c22", "expiry"),
    )
}

/// The x coordinate of `t` on a chart spanning `days` from `now`.
fn x_of(now: OffsetDateTime, days: f64, t: OffsetDateTime) -> f64 {
    let offset = (t - now).as_seconds_f64() / 86_400.0;
    LABELS + (offset / days).clamp(0.0, 1.0) * CHART
}

/// Tick marks with dates, about every tenth of the chart.
fn axis(now: OffsetDateTime, days: f64, y: f64) -> String {
    let mut out = format!(
        "<line class=\"axis\" x1=\"{LABELS}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\"/>",
        LABELS + CHART
    );
    for i in 0..=10_u32 {
        let t = now + time::Duration::seconds_f64(days * 86_400.0 * f64::from(i) / 10.0);
        let x = x_of(now, days, t);
        let date = t.date();
        let _ = write!(
            out,
            "<line class=\"axis\" x1=\"{x:.1}\" y1=\"{y}\" x2=\"{x:.1}\" y2=\"{}\"/>\
             <text class=\"tick\" x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{:02}-{:02}</text>",
            y + 5.0,
            y + 18.0,
            u8::from(date.month()),
            date.day()
        );
    }
    out
}

fn rows(now: OffsetDateTime, entries: &[Entry]) -> String {
    let days = span(now, entries).as_seconds_f64() / 86_400.0;
    let height = ROW * (entries.len() as f64) + 40.0;
    let mut out = format!(
        "<svg id=\"timeline\" class=\"rows\" xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{w}\" height=\"{height}\" viewBox=\"0 0 {w} {height}\">",
        w = LABELS + CHART + 30.0
    );
    for (i, entry) in entries.iter().enumerate() {
        let y = ROW * (i as f64);
        let _ = write!(
            out,
            "<g class=\"certificate\" data-name=\"{name}\">\
             <text class=\"name\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{name}</text>",
            LABELS - 8.0,
            y + 15.0,
            name = escape(&entry.name)
        );
        out.push_str(&bars(now, days, y, entry));
        out.push_str("</g>");
    }
    out.push_str(&axis(now, days, ROW * (entries.len() as f64) + 4.0));
    out.push_str("</svg>");
    out
}

/// One certificate's bars and marks, each with a tooltip.
fn bars(now: OffsetDateTime, days: f64, y: f64, entry: &Entry) -> String {
    let Some(not_after) = entry.not_after else {
        return format!(
            "<text class=\"missing\" x=\"{LABELS}\" y=\"{}\">no certificate</text>",
            y + 15.0
        );
    };
    let x = |t| x_of(now, days, t);
    let rect = |class: &str, from: f64, to: f64, title: String| {
        format!(
            "<rect class=\"{class}\" x=\"{from:.1}\" y=\"{}\" width=\"{:.1}\" height=\"{}\">\
             <title>{title}</title></rect>",
            y + 4.0,
            (to - from).max(0.0),
            ROW - 8.0
        )
    };
    let renewal = entry.next_renewal.unwrap_or(not_after).min(not_after);
    let mut out = rect(
        "valid",
        x(now),
        x(renewal),
        format!("valid until {}", rfc3339(not_after)),
    );
    out.push_str(&rect(
        "window",
        x(renewal),
        x(not_after),
        "after the planned renewal".to_owned(),
    ));
    if let Some(at) = entry.next_renewal {
        let at_x = x(at);
        out.push_str(&rect(
            "renewal",
            at_x - 2.0,
            at_x + 2.0,
            format!("renewal {}", rfc3339(at)),
        ));
    }
    let end = x(not_after);
    out.push_str(&rect(
        "expiry",
        end - 2.0,
        end + 2.0,
        format!("expires {}", rfc3339(not_after)),
    ));
    out
}

fn histogram(now: OffsetDateTime, entries: &[Entry]) -> String {
    let (size, buckets, expired) = buckets(now, entries);
    let most = tallest(&buckets) as f64;
    let slot = CHART / buckets.len() as f64;
    let unit = match size {
        BucketSize::Day => "day",
        BucketSize::Week => "week",
    };
    let height = BARS + 60.0;
    let mut out = format!(
        "<p id=\"histogram\">Renewals and expiries per {unit}{}.</p>\
         <svg id=\"timeline\" class=\"histogram\" xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{w}\" height=\"{height}\" viewBox=\"0 0 {w} {height}\">",
        if expired > 0 {
            format!("; {expired} expired already")
        } else {
            String::new()
        },
        w = LABELS + CHART + 30.0
    );
    for (i, b) in buckets.iter().enumerate() {
        let x = LABELS + slot * i as f64;
        let bar_width = (slot / 2.0 - 1.0).max(1.0);
        let bar = |class: &str, x: f64, count: usize, what: &str| {
            let h = BARS * count as f64 / most;
            format!(
                "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar_width:.1}\" \
                 height=\"{h:.1}\" data-count=\"{count}\"><title>{count} {what}, {unit} of {}</title></rect>",
                20.0 + BARS - h,
                b.start
            )
        };
        let _ = write!(
            out,
            "<g class=\"bucket\" data-start=\"{}\">{}{}</g>",
            b.start,
            bar("renewals", x, b.renewals, "renewal(s)"),
            bar("expiries", x + bar_width + 1.0, b.expiries, "expiry(ies)")
        );
    }
    let _ = write!(
        out,
        "<text x=\"{}\" y=\"30\" text-anchor=\"end\">{}</text>",
        LABELS - 8.0,
        most as usize
    );
    let days = span(now, entries).as_seconds_f64() / 86_400.0;
    out.push_str(&axis(now, days, 20.0 + BARS + 2.0));
    out.push_str("</svg>");
    out
}

/// Text for HTML content and attributes.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::super::tests::{NOW, entry};
    use super::*;

    #[test]
    fn a_row_per_certificate_with_its_marks() {
        let page = html(NOW, &[entry("a.example", 60, 90), entry("b<&>", 10, 40)]);
        assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
        assert!(
            page.contains("<svg id=\"timeline\" class=\"rows\""),
            "{page}"
        );
        assert!(page.contains(">a.example</text>"), "{page}");
        assert!(page.contains("data-name=\"b&lt;&amp;&gt;\""), "{page}");
        assert_eq!(page.matches("<g class=\"certificate\"").count(), 2);
        assert_eq!(page.matches("class=\"renewal\"").count(), 2);
        assert_eq!(page.matches("class=\"expiry\"").count(), 2);
        assert!(
            page.contains("<title>renewal 2027-01-30T12:00:00Z</title>"),
            "{page}"
        );
        assert!(
            page.contains("<title>expires 2027-03-01T12:00:00Z</title>"),
            "{page}"
        );
        // Nothing from elsewhere: no scripts, no external references.
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("src="), "{page}");
        assert!(!page.contains("https://"), "{page}");
    }

    #[test]
    fn many_certificates_become_bars_per_bucket() {
        let entries: Vec<Entry> = (0..40).map(|i| entry(&format!("c{i}"), 60, 90)).collect();
        let page = html(NOW, &entries);
        assert!(page.contains("class=\"histogram\""), "{page}");
        assert!(!page.contains("class=\"certificate\""), "{page}");
        assert!(page.contains("Renewals and expiries per week."), "{page}");
        assert!(page.contains("data-count=\"40\"><title>40 renewal(s), week of 2027-01-26"));
        assert!(page.contains("data-count=\"40\"><title>40 expiry(ies), week of 2027-02-23"));
    }
}
