//! Entry points for the fuzz targets in `fuzz/` and for the tests that
//! replay their corpora: each takes arbitrary bytes and must never panic.

use crate::files::json_array::JsonArraySource;
use crate::format::csv::{CsvParser, Quoting, RawRecord, Step};
use crate::format::flat;
use crate::progress::{Progress, Verbosity};
use crate::rejects::Rejects;
use crate::source::{Context, Source, Taken};
use crate::wire::{self, Framing, Line};

/// The CSV reader over arbitrary bytes, with and without quoting.
pub fn csv(data: &[u8]) {
    for quoting in [Quoting::Rfc4180, Quoting::None] {
        let mut parser = CsvParser::new(data, "fuzz.csv", b',', quoting);
        let mut rec = RawRecord::default();
        while let Ok(step) = parser.read(&mut rec) {
            match step {
                Step::Eof => break,
                Step::Record => {
                    for i in 0..rec.len() {
                        let _ = rec.text(i);
                    }
                }
                Step::Bad(_) => {}
            }
        }
    }
}

/// The loader's record parser; whatever it accepts must be valid JSON.
pub fn flat_json(data: &[u8]) {
    if let Ok(fields) = flat::parse_object(data) {
        for (_, value) in &fields {
            let _ = value.describe();
        }
        assert!(
            serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok(),
            "flat parser accepted invalid JSON: {:?}",
            String::from_utf8_lossy(data)
        );
    }
}

/// Control-line parsing and framing over arbitrary lines.
pub fn wire_lines(data: &[u8]) {
    let mut framing = Framing::new();
    for (n, line) in data.split(|&b| b == b'\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        match wire::parse_line(line) {
            Ok(Line::Control(kind, obj)) => {
                let _ = framing.control(&kind, &obj, n as u64 + 1);
            }
            Ok(Line::Record(_) | Line::BadControl(_)) => {
                let _ = framing.record(n as u64 + 1);
            }
            Err(_) => {}
        }
    }
    let _ = framing.finish();
}

/// The streamed JSON array reader.
pub fn json_array(data: &[u8]) {
    let progress = Progress::new(
        "fuzz",
        Verbosity {
            quiet: true,
            ..Verbosity::default()
        },
        None,
    );
    let Ok(mut rejects) = Rejects::open(None, None) else {
        return;
    };
    let mut cx = Context {
        progress: &progress,
        rejects: &mut rejects,
        read: 0,
        at: None,
    };
    let mut source = JsonArraySource::new(data, "fuzz.json");
    let _ = source.run(&mut |_| Ok(Taken::Done), &mut cx);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays the fuzz seeds and the bad-input corpus through every harness.
    #[test]
    fn corpora_replay_without_panics() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut dirs = vec![root.join("tests/corpus")];
        if let Ok(entries) = std::fs::read_dir(root.join("fuzz/seeds")) {
            dirs.extend(entries.flatten().map(|e| e.path()));
        }
        let mut replayed = 0;
        for dir in dirs {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let data = std::fs::read(entry.path()).unwrap();
                csv(&data);
                flat_json(&data);
                wire_lines(&data);
                json_array(&data);
                replayed += 1;
            }
        }
        assert!(replayed >= 50, "only {replayed} inputs replayed");
    }
}
