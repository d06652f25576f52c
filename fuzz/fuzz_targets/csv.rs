//! Fuzz target: etlkit::harness::csv must not panic on any input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    etlkit::harness::csv(data);
});
