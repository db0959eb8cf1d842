#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| renewd::fuzzing::cloudflare_answer(data));
