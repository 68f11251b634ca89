#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| modelseal_fuzz::digests_and_paths(data));
