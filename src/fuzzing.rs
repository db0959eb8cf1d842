//! Entry points for the fuzz targets in `fuzz/` (compiled only under
//! `--cfg fuzzing`, which `cargo fuzz` sets): one per parser that reads what
//! renewd does not write itself. Each takes arbitrary bytes, runs them through
//! the same code the daemon uses, renders every error (a panic while formatting
//! is a bug too) and checks what must hold of a successful parse.
//!
//! `docs/fuzzing.md` lists the targets and how to run them.

use rustls_pki_types::pem::PemObject;

use crate::control::proto::Request;
use crate::store::Issued;
use crate::store::cert::CertInfo;

/// The config: the main file and drop-ins, separated by NUL bytes, parsed and
/// validated as `renewd check-config` does.
pub fn config(data: &[u8]) {
    crate::config::fuzz(data);
}

/// One control-socket request line. What parses must survive a round trip.
///
/// # Panics
///
/// When a parsed request does not read back the same after serializing it.
pub fn control_request(data: &[u8]) {
    if data.len() > crate::control::proto::MAX_REQUEST {
        return; // the daemon refuses it unread
    }
    let Ok(request) = serde_json::from_slice::<Request>(data) else {
        return;
    };
    let line = serde_json::to_string(&request).expect("a request serializes");
    let again: Request = serde_json::from_str(&line).expect("a serialized request parses");
    assert_eq!(request, again, "{line}");
}

/// A certbot renewal config: the first line is the lineage name, the second
/// the certificate's domains (comma-separated), the rest the `.conf` text.
pub fn certbot_renewal(data: &[u8]) {
    crate::certbot::fuzz(data);
}

/// A PEM file from the store or certbot: read as `cert.pem` (and its CRL
/// distribution points), as `fullchain.pem` split into leaf and chain, as
/// `chain.pem` (the issuer for CRL checks) and as `privkey.pem` matched
/// against a certificate.
pub fn pem(data: &[u8]) {
    let cert = CertInfo::from_pem(data);
    if let Err(e) = &cert {
        let _ = e.to_string();
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(issued) = Issued::from_fullchain(text.to_owned(), String::new()) {
            let _ = CertInfo::from_pem(issued.cert_pem.as_bytes());
            assert!(issued.fullchain_pem.len() >= issued.chain_pem.len());
        }
        if let Ok(info) = &cert {
            let _ = info.matches_key(text);
            let names: Vec<crate::config::Identifier> =
                info.domains.iter().filter_map(|d| d.parse().ok()).collect();
            let _ = info.covers_exactly(&names);
        }
    }
    for der in rustls_pki_types::CertificateDer::pem_slice_iter(data)
        .take(4)
        .flatten()
    {
        if let Ok(urls) = crate::crl::distribution_points(&der) {
            assert!(urls.iter().all(|u| u.starts_with("http")));
        }
    }
}

/// A CRL (DER) checked against the issuer `issuer_der`.
pub fn crl(issuer_der: &[u8], data: &[u8]) {
    crate::crl::fuzz(issuer_der, data);
}

/// A DNS reply: decoded, its TSIG error read, its zone and TXT values looked
/// up, its TSIG signature verified against a request signed with a fixed key;
/// and the same bytes as a BIND TSIG key file.
pub fn dns_reply(data: &[u8]) {
    crate::solver::fuzz_dns_reply(data);
}

/// An answer of the Cloudflare API, read as each call reads it.
pub fn cloudflare_answer(data: &[u8]) {
    crate::solver::fuzz_cloudflare_answer(data);
}

/// ACME JSON renewd reads itself: an ARI answer (planned as the scheduler
/// does), a problem document (classified as a renewal failure), an order
/// answer noted for a CA's quirk, and a `Retry-After` header value.
///
/// # Panics
///
/// When a planned renewal time lies outside an ARI window that is still open.
pub fn acme_json(data: &[u8]) {
    if let Ok(info) = serde_json::from_slice::<instant_acme::RenewalInfo>(data) {
        let window = crate::state::Window {
            start: info.suggested_window.start.into(),
            end: info.suggested_window.end.into(),
        };
        plan_in(window);
    }
    if let Ok(problem) = serde_json::from_slice::<instant_acme::Problem>(data) {
        let error = crate::acme::Error::Acme {
            ca: "ca".to_owned(),
            source: instant_acme::Error::Api(problem),
        };
        let _ = crate::renew::failure(&[error]).to_string();
    }
    crate::acme::fuzz_http(data);
}

/// Plans a renewal of a live certificate inside `window`, as the scheduler
/// does once an ARI poll has returned it.
fn plan_in(window: crate::state::Window) {
    use time::OffsetDateTime;
    let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    let config = crate::config::CertificateConfig {
        name: "a".into(),
        domains: vec![crate::config::Identifier::Dns("a.example".to_owned())].into(),
        ca: Vec::new().into(),
        solvers: Vec::new().into(),
        key: crate::config::KeyType::default(),
        reuse_key: false,
        profile: None,
        reload: Vec::new().into(),
        verify: Vec::new().into(),
        line: 1,
    };
    let lineage = Ok(Some(crate::store::Lineage {
        name: "a".to_owned(),
        version: 1,
        dir: std::path::PathBuf::new(),
        cert: CertInfo {
            serial: "01".to_owned(),
            not_before: now - time::Duration::days(30),
            not_after: now + time::Duration::days(60),
            domains: vec!["a.example".to_owned()],
            key_type: None,
            ari_id: None,
            spki_der: Vec::new(),
            der: Vec::new(),
        },
        key_matches: true,
    }));
    let state = crate::state::CertState {
        serial: Some("01".into()),
        ari_window: Some(window),
        ..Default::default()
    };
    let day = std::time::Duration::from_secs(86_400);
    for random in [0.0, 0.5, 0.999_999] {
        let facts = crate::schedule::Facts {
            lineage: &lineage,
            state: &state,
            renew_before: 30 * day,
            jitter: day,
            now,
        };
        let plan = crate::schedule::plan(&config, &facts, random);
        // As planning reads it: to the millisecond, within 1970 to 9999.
        let (start, end) = (window.start.time(), window.end.time());
        if start <= end && end > now {
            assert!(
                plan.at >= start.min(now) && plan.at <= end,
                "{plan:?} outside {window:?}"
            );
        }
    }
}
