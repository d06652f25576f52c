//! Fuzz target: etlkit::harness::flat_json must not panic on any input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    etlkit::harness::flat_json(data);
});
