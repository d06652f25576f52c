//! Fuzz target: etlkit::harness::json_array must not panic on any input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    etlkit::harness::json_array(data);
});
