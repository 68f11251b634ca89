#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| modelseal_fuzz::public_keys(data));
