//! Parse throughput of the wire reader (`format::flat`), which every
//! etl-transform and etl-load run spends most of its time in, against
//! serde_json reading the same lines into maps, in the same run.
//!
//! `cargo run --release --example wire-parse -- FILE.ndjson` prints MB/s
//! for both and the ratio (best of three passes each) on stderr.

use std::time::Instant;

use etlkit::format::flat::{Fields, parse_object_into, recycle};

fn best_of_three(mut pass: impl FnMut() -> usize) -> (f64, usize) {
    let mut best = f64::MAX;
    let mut n = 0;
    for _ in 0..3 {
        let start = Instant::now();
        n = pass();
        best = best.min(start.elapsed().as_secs_f64());
    }
    (best, n)
}

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: wire-parse FILE.ndjson");
        std::process::exit(2);
    };
    let data = std::fs::read(&path).unwrap_or_else(|e| {
        eprintln!("wire-parse: cannot read {path}: {e}");
        std::process::exit(1);
    });
    let lines: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mb = data.len() as f64 / 1e6;
    let mut spare: Fields<'static> = Vec::new();
    let (ours, fields) = best_of_three(|| {
        let mut n = 0;
        for line in &lines {
            let mut fields = recycle(std::mem::take(&mut spare));
            if parse_object_into(line, &mut fields).is_ok() {
                n += fields.len();
            }
            spare = recycle(fields);
        }
        n
    });
    let (theirs, records) = best_of_three(|| {
        lines
            .iter()
            .filter(|line| {
                serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(line).is_ok()
            })
            .count()
    });
    eprintln!(
        "{} lines, {fields} fields: etlkit {:.0} MB/s ({ours:.3} s); serde_json maps {:.0} MB/s ({theirs:.3} s, {records} objects); ratio {:.2}x",
        lines.len(),
        mb / ours,
        mb / theirs,
        ours / theirs
    );
}
