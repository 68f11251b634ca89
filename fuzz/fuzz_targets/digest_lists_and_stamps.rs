#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| modelseal_fuzz::digest_lists_and_stamps(data));
