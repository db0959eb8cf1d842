//! Which [`Kind`] of failure an ACME error is: decided here, where the error
//! is known, so nothing later searches a message for words.

use time::OffsetDateTime;

use crate::acme;
use crate::failure::{Failure, Kind};

/// The failure of a renewal whose every attempt failed with `errors` (one per
/// CA and solver tried, in order): all their messages; the kind of the last,
/// unless a CA's rate limit was among them, which is what the retry must
/// respect.
#[must_use]
pub fn failure(errors: &[acme::Error]) -> Failure {
    let message = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    let mut kinds = errors.iter().map(kind_of);
    let kind = kinds
        .clone()
        .find(|k| matches!(k, Kind::RateLimited { .. }))
        .or_else(|| kinds.next_back())
        .unwrap_or(Kind::Internal);
    Failure { kind, message }
}

fn kind_of(e: &acme::Error) -> Kind {
    match e {
        acme::Error::Acme {
            source: instant_acme::Error::Api(problem),
            ..
        } if problem.r#type.as_deref() == Some("urn:ietf:params:acme:error:rateLimited") => {
            Kind::RateLimited {
                until: problem.detail.as_deref().and_then(stated_retry_time),
            }
        }
        acme::Error::Acme {
            source: instant_acme::Error::Api(problem),
            ..
        } if problem.r#type.as_deref() == Some("urn:ietf:params:acme:error:badCSR") => {
            Kind::KeyRefused
        }
        e if e.is_transport() => Kind::CaUnreachable,
        acme::Error::Acme { .. } => Kind::Refused,
        acme::Error::Account { .. } | acme::Error::ContactRequired { .. } => Kind::Account,
        acme::Error::Solver(_)
        | acme::Error::NoChallenge { .. }
        | acme::Error::Validation { .. } => Kind::ValidationFailed,
        acme::Error::Key(_) => Kind::Key,
    }
}

/// The time in a rate-limit problem's detail: Let's Encrypt says `retry after
/// 2026-01-02 03:04:05 UTC`.
fn stated_retry_time(detail: &str) -> Option<OffsetDateTime> {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    detail
        .split("retry after ")
        .nth(1)
        .and_then(|rest| rest.get(..23))
        .and_then(|at| time::PrimitiveDateTime::parse(at, format).ok())
        .map(time::PrimitiveDateTime::assume_utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(kind: &str, detail: &str) -> acme::Error {
        let problem: instant_acme::Problem = serde_json::from_value(serde_json::json!({
            "type": kind, "detail": detail, "status": 429
        }))
        .unwrap();
        acme::Error::Acme {
            ca: "le".to_owned(),
            source: instant_acme::Error::Api(problem),
        }
    }

    #[test]
    fn a_rate_limit_among_the_attempts_decides_the_kind_with_its_time() {
        let limited = problem(
            "urn:ietf:params:acme:error:rateLimited",
            "too many certificates (5) already issued for this exact set of identifiers in \
             the last 168h0m0s, retry after 2026-06-03 10:00:00 UTC: see \
             https://letsencrypt.org/docs/rate-limits/",
        );
        let refused = problem("urn:ietf:params:acme:error:rejectedIdentifier", "no");
        let failure = failure(&[limited, refused]);
        assert_eq!(
            failure.kind,
            Kind::RateLimited {
                until: Some(time::macros::datetime!(2026-06-03 10:00 UTC))
            }
        );
        assert!(failure.message.contains("; CA le: "), "{failure}");
    }

    #[test]
    fn kinds_follow_the_error_not_its_words() {
        let bare = problem("urn:ietf:params:acme:error:rateLimited", "slow down");
        assert_eq!(kind_of(&bare), Kind::RateLimited { until: None });
        // A detail that merely mentions a rate limit is not one.
        let other = problem(
            "urn:ietf:params:acme:error:malformed",
            "urn:ietf:params:acme:error:rateLimited retry after 2026-06-03 10:00:00 UTC",
        );
        assert_eq!(kind_of(&other), Kind::Refused);
        let validation = acme::Error::Validation {
            domain: "a.example".to_owned(),
            solver: "web".to_owned(),
            challenge: "http-01".to_owned(),
            detail: "404".to_owned(),
        };
        assert_eq!(kind_of(&validation), Kind::ValidationFailed);
        assert_eq!(kind_of(&acme::Error::Key("x".to_owned())), Kind::Key);
        let blocked = problem(
            "urn:ietf:params:acme:error:badCSR",
            "invalid public key in CSR: public key is forbidden",
        );
        assert_eq!(kind_of(&blocked), Kind::KeyRefused);
    }
}
