#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| modelseal_fuzz::changed_file_reads(data));
