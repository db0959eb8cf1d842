#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| renewd::fuzzing::certbot_renewal(data));
