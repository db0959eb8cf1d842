//! One entry of a certificate's `domains`: a DNS name, a wildcard, or an IP
//! address ([RFC 8738]). Parsed once, when the config is validated; the rest of
//! renewd matches on the variant instead of looking at the text again.
//!
//! An IP address is kept as an address and written in its canonical form
//! ([RFC 5952] for IPv6: `2001:db8::1`), which is how it comes back from the
//! issued certificate, so `2001:DB8:0::1` in the config still matches it.
//! Which solvers can validate what, and the forms each consumer needs (ACME
//! identifier, CSR name, SNI), live with those consumers.
//!
//! [RFC 8738]: https://www.rfc-editor.org/rfc/rfc8738
//! [RFC 5952]: https://www.rfc-editor.org/rfc/rfc5952

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// What one `domains` entry names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identifier {
    /// A DNS name, as written (`www.example.com`).
    Dns(String),
    /// A wildcard, stored without its `*.` (`example.com` for `*.example.com`).
    Wildcard(String),
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
}

/// Why a `domains` entry is neither a DNS name nor an IP address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not a host name (bad characters, empty or long labels, no dot).
    #[error("{0:?} is not a valid DNS name or IP address (wildcards only as \"*.\" prefix)")]
    Invalid(String),
    /// Digits and dots that do not make an IPv4 address (`127.1`,
    /// `192.0.2.256`, `010.0.0.1`): no DNS name ends in an all-digit label
    /// either, and guessing what was meant could certify the wrong address.
    #[error(
        "{0:?} is not a valid IP address (IPv4 is four decimal numbers 0-255 without \
         leading zeros, e.g. 192.0.2.1) nor a DNS name (its last label is all digits)"
    )]
    NotAnAddress(String),
    /// `*.` in front of an address.
    #[error("{0:?}: an IP address cannot be a wildcard")]
    WildcardAddress(String),
    /// `[2001:db8::1]`, as in URLs.
    #[error("{written:?}: write the IP address without brackets: \"{ip}\"")]
    Bracketed {
        /// The entry as written.
        written: String,
        /// The address inside the brackets.
        ip: IpAddr,
    },
    /// `::ffff:192.0.2.1`: CAs certify the IPv4 address itself.
    #[error("{written:?} is an IPv4-mapped IPv6 address; write the IPv4 address \"{ipv4}\"")]
    Mapped {
        /// The entry as written.
        written: String,
        /// The IPv4 address it maps.
        ipv4: std::net::Ipv4Addr,
    },
}

impl FromStr for Identifier {
    type Err = Error;

    fn from_str(entry: &str) -> Result<Self, Error> {
        if let Ok(ip) = entry.parse::<IpAddr>() {
            return address(entry, ip);
        }
        if let Some(ip) = entry
            .strip_prefix('[')
            .and_then(|e| e.strip_suffix(']'))
            .and_then(|e| e.parse().ok())
        {
            return Err(Error::Bracketed {
                written: entry.to_owned(),
                ip,
            });
        }
        let (host, wildcard) = match entry.strip_prefix("*.") {
            Some(base) => (base, true),
            None => (entry, false),
        };
        if host.parse::<IpAddr>().is_ok() {
            return Err(Error::WildcardAddress(entry.to_owned()));
        }
        check_dns_name(entry, host)?;
        Ok(if wildcard {
            Self::Wildcard(host.to_owned())
        } else {
            Self::Dns(host.to_owned())
        })
    }
}

fn address(entry: &str, ip: IpAddr) -> Result<Identifier, Error> {
    if let IpAddr::V6(v6) = ip {
        if let Some(ipv4) = v6.to_ipv4_mapped() {
            return Err(Error::Mapped {
                written: entry.to_owned(),
                ipv4,
            });
        }
    }
    Ok(Identifier::Ip(ip))
}

/// LDH labels of at most 63 characters, at least two of them, 253 in all; the
/// last label not all digits (RFC 3696 §2), so a mistyped address is not
/// taken for a name.
fn check_dns_name(entry: &str, host: &str) -> Result<(), Error> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if entry.len() > 253 || !host.contains('.') || !host.split('.').all(label_ok) {
        return Err(Error::Invalid(entry.to_owned()));
    }
    let last = host.rsplit('.').next().unwrap_or(host);
    if last.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::NotAnAddress(entry.to_owned()));
    }
    Ok(())
}

impl Identifier {
    /// Whether this is an IP address.
    #[must_use]
    pub fn is_ip(&self) -> bool {
        matches!(self, Self::Ip(_))
    }

    /// The name a DNS record or a message is about: a wildcard without its
    /// `*.`, an address in its canonical form.
    #[must_use]
    pub fn base(&self) -> String {
        match self {
            Self::Dns(name) | Self::Wildcard(name) => name.clone(),
            Self::Ip(ip) => ip.to_string(),
        }
    }
}

/// As written in `domains`, addresses in canonical form.
impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(name) => f.write_str(name),
            Self::Wildcard(base) => write!(f, "*.{base}"),
            Self::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(entry: &str) -> Result<Identifier, Error> {
        entry.parse()
    }

    #[test]
    fn names_wildcards_and_addresses_are_told_apart() {
        assert_eq!(
            parse("www.Example.com"),
            Ok(Identifier::Dns("www.Example.com".into()))
        );
        assert_eq!(
            parse("*.example.com"),
            Ok(Identifier::Wildcard("example.com".into()))
        );
        assert_eq!(
            parse("192.0.2.1"),
            Ok(Identifier::Ip("192.0.2.1".parse().unwrap()))
        );
        assert_eq!(
            parse("2001:db8::1"),
            Ok(Identifier::Ip("2001:db8::1".parse().unwrap()))
        );
    }

    #[test]
    fn addresses_are_written_in_canonical_form() {
        for (written, canonical) in [
            ("2001:DB8:0:0::1", "2001:db8::1"),
            ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
            ("::1", "::1"),
            ("127.0.0.1", "127.0.0.1"),
            ("*.a.example", "*.a.example"),
        ] {
            assert_eq!(parse(written).unwrap().to_string(), canonical);
        }
    }

    #[test]
    fn what_is_neither_a_name_nor_an_address_says_why() {
        for (entry, why) in [
            ("*.192.0.2.1", "an IP address cannot be a wildcard"),
            ("*.2001:db8::1", "an IP address cannot be a wildcard"),
            ("[2001:db8::1]", "without brackets: \"2001:db8::1\""),
            ("::ffff:192.0.2.1", "write the IPv4 address \"192.0.2.1\""),
            ("127.1", "is not a valid IP address"),
            ("192.0.2.256", "is not a valid IP address"),
            ("010.0.0.1", "is not a valid IP address"),
            ("192.0.2.0/24", "is not a valid DNS name or IP address"),
            ("fe80::1%eth0", "is not a valid DNS name or IP address"),
            ("localhost", "is not a valid DNS name or IP address"),
            ("a.*.example", "wildcards only as \"*.\" prefix"),
        ] {
            let err = parse(entry).unwrap_err().to_string();
            assert!(err.contains(why), "{entry}: {err}");
        }
    }
}
