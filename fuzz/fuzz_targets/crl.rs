#![no_main]

/// The CA that signed the seed CRLs (fuzz/corpus/crl/).
const ISSUER: &[u8] = include_bytes!("../issuer.der");

libfuzzer_sys::fuzz_target!(|data: &[u8]| renewd::fuzzing::crl(ISSUER, data));
