//! Secrets renewd holds — private keys, the EAB HMAC key, TSIG secrets, API
//! tokens — kept out of what others read: core dumps (the daemon makes itself
//! non-dumpable), `Debug` output (holders print [`REDACTED`]) and error
//! messages (a secret that does not decode is described by position, never
//! quoted). Reading them from their files is each user's business.

use std::fmt;

/// What a secret's `Debug` shows instead of it.
pub const REDACTED: &str = "<redacted>";

/// Keeps the kernel from writing a core dump of this process (and other
/// users from attaching to it): `prctl(PR_SET_DUMPABLE, 0)`. The daemon calls
/// it first; `LimitCORE=0` in the unit says the same to systemd.
///
/// # Errors
///
/// The `prctl` error (a seccomp filter may refuse it).
pub fn no_core_dumps() -> nix::Result<()> {
    nix::sys::prctl::set_dumpable(false)
}

/// Why `text` is not base64, without quoting any of it: base64's own message
/// names the offending character, which is part of the secret.
#[must_use]
pub fn decode_problem(error: &base64::DecodeError) -> String {
    match error {
        base64::DecodeError::InvalidByte(offset, _) => {
            format!("the character at offset {offset} is not allowed")
        }
        base64::DecodeError::InvalidLastSymbol(offset, _) => {
            format!("the last character (offset {offset}) is not allowed")
        }
        base64::DecodeError::InvalidLength(length) => {
            format!("a length of {length} characters is not possible")
        }
        base64::DecodeError::InvalidPadding => "the padding is wrong".to_owned(),
    }
}

/// `Debug` of a field holding a secret: says whether it is empty, not what it is.
pub struct Redacted<'a, T: ?Sized>(pub &'a T);

impl<T: AsRef<[u8]> + ?Sized> fmt::Debug for Redacted<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.as_ref().is_empty() {
            f.write_str("<empty>")
        } else {
            f.write_str(REDACTED)
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    #[test]
    fn a_secret_that_does_not_decode_is_described_without_quoting_it() {
        for text in ["abc$def", "abcde", "ab=c", "YWJjZA=x"] {
            let error = base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap_err();
            let shown = decode_problem(&error);
            assert!(!shown.contains(text), "{shown}");
        }
        let error = base64::engine::general_purpose::STANDARD
            .decode("abc$def")
            .unwrap_err();
        assert_eq!(
            decode_problem(&error),
            "the character at offset 3 is not allowed"
        );
        // What base64 itself says names the character ($ is 36).
        assert!(error.to_string().contains("36"), "{error}");
    }

    #[test]
    fn redacted_fields_say_only_whether_they_are_empty() {
        assert_eq!(format!("{:?}", Redacted("hunter2")), REDACTED);
        assert_eq!(format!("{:?}", Redacted(&Vec::<u8>::new())), "<empty>");
    }

    #[test]
    fn the_process_can_be_made_non_dumpable() {
        // Harmless for the test process: it only stops core dumps of it.
        no_core_dumps().unwrap();
        assert!(!nix::sys::prctl::get_dumpable().unwrap());
    }
}
