//! Fuzz target: etlkit::harness::wire_lines must not panic on any input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    etlkit::harness::wire_lines(data);
});
