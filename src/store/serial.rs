//! A certificate's serial number as renewd remembers it: the hex text
//! [`super::CertInfo::serial`] holds, packed two digits to a byte in the
//! value itself. The state keeps two per certificate (the live one's and the
//! one its schedule was made for); as strings they were two allocations of
//! ~64 bytes each, 13 MB with 100,000 certificates. Up to 44 digits are
//! packed (RFC 5280 serials have at most 20 octets, 40 digits); longer text,
//! and text that is not lowercase hex (written by hand, or by a version that
//! kept separators), is kept as it is.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::cert::same_serial;

/// Digits a packed serial holds.
const PACKED_DIGITS: usize = 44;

/// A serial number, written and compared as its hex text.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Serial(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    /// `digits` lowercase hex digits, the first in the high half of `packed[0]`.
    Packed {
        digits: u8,
        packed: [u8; PACKED_DIGITS / 2],
    },
    Text(Box<str>),
}

impl Serial {
    /// The serial `text` spells, kept exactly as written.
    #[must_use]
    pub fn new(text: &str) -> Self {
        Self::pack(text).unwrap_or_else(|| Self(Repr::Text(text.into())))
    }

    fn pack(text: &str) -> Option<Self> {
        if text.len() > PACKED_DIGITS {
            return None;
        }
        let mut packed = [0; PACKED_DIGITS / 2];
        for (i, b) in text.bytes().enumerate() {
            let nibble = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                _ => return None,
            };
            packed[i / 2] |= if i % 2 == 0 { nibble << 4 } else { nibble };
        }
        let digits = u8::try_from(text.len()).ok()?;
        Some(Self(Repr::Packed { digits, packed }))
    }

    /// Whether it is the same number as the serial `other` spells, however
    /// each is written (see [`same_serial`]).
    #[must_use]
    pub fn is(&self, other: &str) -> bool {
        self.with_text(|text| same_serial(text, other))
    }

    /// The number's bytes, when the text is hex with two digits to a byte (as
    /// [`super::CertInfo::serial`] writes it).
    #[must_use]
    pub fn bytes(&self) -> Option<Vec<u8>> {
        match &self.0 {
            Repr::Packed { digits, packed } if digits % 2 == 0 => {
                Some(packed[..usize::from(digits / 2)].to_vec())
            }
            _ => None,
        }
    }

    /// Calls `f` with the text, unpacked on the stack.
    fn with_text<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        match &self.0 {
            Repr::Text(text) => f(text),
            Repr::Packed { digits, packed } => {
                let mut text = [0; PACKED_DIGITS];
                let text = &mut text[..usize::from(*digits)];
                for (i, digit) in text.iter_mut().enumerate() {
                    let byte = packed[i / 2];
                    let nibble = if i % 2 == 0 { byte >> 4 } else { byte & 0xf };
                    *digit = HEX[usize::from(nibble)];
                }
                f(std::str::from_utf8(text).unwrap_or_default())
            }
        }
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_text(|text| f.write_str(text))
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_text(|text| write!(f, "{text:?}"))
    }
}

impl From<&str> for Serial {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl Serialize for Serial {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Serial {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Self::new(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serial_reads_back_as_written_and_stays_inline() {
        let cases = [
            "",
            "0",
            "03ab0c",
            "3ab0c",
            "7f3a9c0de1b2c3d4e5f60718293a4b5c6d7e8f90",
            "00112233445566778899aabbccddeeff0011223344",
            "03:AB:0C",
            "0x03ab",
            "00112233445566778899aabbccddeeff00112233445566",
        ];
        for text in cases {
            let serial = Serial::new(text);
            assert_eq!(serial.to_string(), text);
            let packed = matches!(serial.0, Repr::Packed { .. });
            let hex = text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            assert_eq!(packed, hex && text.len() <= PACKED_DIGITS, "{text}");
            let json = serde_json::to_string(&serial).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<Serial>(&json).unwrap(), serial);
        }
        assert_eq!(size_of::<Option<Serial>>(), 24);
    }

    #[test]
    fn serials_compare_as_numbers() {
        assert!(Serial::new("03ab0c").is("3AB0C"));
        assert!(Serial::new("03:AB:0c").is("03ab0c"));
        assert!(!Serial::new("03ab0c").is("03ab0d"));
        assert_eq!(Serial::new("0a"), Serial::from("0a"));
        assert_ne!(Serial::new("0a"), Serial::new("a"));
    }
}
