//! Parsing a large config a `[[certificate]]` at a time.
//!
//! The `toml` crate builds a table of the whole document before serde sees
//! any of it: for 100,000 certificates some 200 MB, while the certificates it
//! yields take a tenth of that. Freed, much of that peak stayed in the
//! daemon's resident memory: the allocator cannot give back pages that the
//! certificates, allocated in between, still use.
//! So the text is cut at its table headers: every `[[certificate]]` (with the
//! `[certificate.…]` tables that follow it) is parsed on its own, and the
//! rest as one document in which the certificates' lines are blanked — the
//! same bytes at the same offsets, so its spans and line numbers hold.
//!
//! A header is found by its line starting with `[`. A line inside a
//! multi-line string, array or inline table may too; a cut there leaves the
//! part before it unterminated, which fails to parse. Whatever fails here,
//! and every header this does not understand, is left to the parse of the
//! whole document, which gives the one true answer and error.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::{RawCertificate, RawConfig};

/// Below this many certificates the whole document is parsed at once.
pub(super) const MIN_CERTIFICATES: usize = 64;

/// What a line that starts with `[` opens.
enum Header {
    /// `[[certificate]]`.
    Certificate,
    /// `[certificate.…]` or `[[certificate.…]]`: part of the certificate
    /// above it.
    WithinCertificate,
    /// Any other table.
    Other,
}

/// `text` parsed a certificate at a time, as [`toml::from_str`] would parse
/// it; `None` when this cannot tell (the caller parses the whole text).
pub(super) fn parse(text: &str, min_certificates: usize) -> Option<RawConfig> {
    let certificates = cut(text)?;
    if certificates.len() < min_certificates.max(1) {
        return None;
    }
    let mut rest = text.as_bytes().to_vec();
    for range in &certificates {
        blank(&mut rest[range.clone()]);
    }
    let rest = String::from_utf8(rest).ok()?;
    let mut raw: RawConfig = toml::from_str(&rest).ok()?;
    drop(rest);
    if !raw.certificate.is_empty() {
        // `certificate = [...]` in the rest as well: not for this to judge.
        return None;
    }
    raw.certificate.reserve_exact(certificates.len());
    for range in certificates {
        raw.certificate.push(certificate(text, range)?);
    }
    Some(raw)
}

/// The one certificate of `text[range]`, its span made one of `text`.
fn certificate(text: &str, range: Range<usize>) -> Option<Spanned<RawCertificate>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct One {
        certificate: Vec<Spanned<RawCertificate>>,
    }
    let One { certificate } = toml::from_str(&text[range.clone()]).ok()?;
    let [one]: [Spanned<RawCertificate>; 1] = certificate.try_into().ok()?;
    let span = one.span();
    let span = range.start + span.start..range.start + span.end;
    Some(Spanned::new(span, one.into_inner()))
}

/// Where each `[[certificate]]`, with its sub-tables, is in `text`; `None`
/// at a header this does not understand.
fn cut(text: &str) -> Option<Vec<Range<usize>>> {
    let mut certificates = Vec::new();
    let mut open: Option<usize> = None;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let start = at;
        at += line.len();
        let Some(header) = header(line)? else {
            continue;
        };
        match header {
            Header::Certificate => {
                if let Some(from) = open.replace(start) {
                    certificates.push(from..start);
                }
            }
            Header::WithinCertificate if open.is_none() => return None,
            Header::WithinCertificate => {}
            Header::Other => {
                if let Some(from) = open.take() {
                    certificates.push(from..start);
                }
            }
        }
    }
    if let Some(from) = open {
        certificates.push(from..text.len());
    }
    Some(certificates)
}

/// The header `line` opens: `Some(None)` when it opens none, `None` when it
/// is one this does not understand (a quoted key naming certificates, a
/// `[certificate]` table).
fn header(line: &str) -> Option<Option<Header>> {
    let line = line.trim_start();
    let (array, inner) = if let Some(inner) = line.strip_prefix("[[") {
        (true, inner.split_once("]]")?.0)
    } else if let Some(inner) = line.strip_prefix('[') {
        (false, inner.split_once(']')?.0)
    } else {
        return Some(None);
    };
    if inner.contains(['"', '\'']) {
        return (!inner.contains("certificate")).then_some(Some(Header::Other));
    }
    let mut keys = inner.split('.').map(str::trim);
    if keys.next() != Some("certificate") {
        return Some(Some(Header::Other));
    }
    match (array, keys.next().is_some()) {
        (true, false) => Some(Some(Header::Certificate)),
        (_, true) => Some(Some(Header::WithinCertificate)),
        (false, false) => None,
    }
}

/// Turns every byte but newlines into a space: the lines stay where they
/// were, and say nothing.
fn blank(bytes: &mut [u8]) {
    for b in bytes.iter_mut().filter(|b| **b != b'\n') {
        *b = b' ';
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(text: &str) -> RawConfig {
        toml::from_str(text).unwrap()
    }

    const CONFIG: &str = r#"
[daemon]
state_dir = "/var/lib/renewd"

[[certificate]]
name = "a"
domains = ["a.example.com"]
reload = [{ unit = "nginx.service" }]

[ca.le]
directory = "https://acme.example/dir"

[[certificate]]
name = "b"   # a comment
domains = [
  "b.example.com",
  "[not a header]",
]

[[certificate.reload]]
exec = ["/bin/true"]

[[ certificate ]]
name = "c"
domains = ["c.example.com"]
"#;

    #[test]
    fn parts_parse_as_the_whole_does_with_the_same_spans() {
        let split = parse(CONFIG, 1).expect("split");
        assert_eq!(format!("{split:?}"), format!("{:?}", whole(CONFIG)));
        assert_eq!(split.certificate.len(), 3);
    }

    #[test]
    fn too_few_certificates_are_parsed_whole() {
        assert!(parse(CONFIG, 4).is_none());
    }

    #[test]
    fn what_it_cannot_tell_is_left_to_the_whole_parse() {
        let quoted = "[[\"certificate\"]]\nname = \"a\"\ndomains = []\n";
        assert!(parse(quoted, 1).is_none());
        let table = "[certificate]\nname = \"a\"\n";
        assert!(parse(table, 1).is_none());
        let orphan = "[certificate.reload]\nunit = \"x\"\n";
        assert!(parse(orphan, 1).is_none());
        // A header-like line inside a multi-line string cuts it in two.
        let string = "[daemon]\nstate_dir = \"\"\"\n[[certificate]]\nname = \"a\"\n\"\"\"\n";
        assert!(parse(string, 1).is_none());
        // Certificates also written as an array in the rest.
        let both = "certificate = [{ name = \"a\", domains = [] }]\n\
                    [[certificate]]\nname = \"b\"\ndomains = []\n";
        assert!(parse(both, 1).is_none());
    }
}
