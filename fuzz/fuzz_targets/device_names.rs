#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| modelseal_fuzz::device_names(data));
