//! Run history: one record per `etl-load` run, kept in the target (table
//! `_etl_runs` of a database, the `--state` file of a file target), so
//! that "did last night's load run, and how many rows did it bring?" has an
//! answer in the data's own place. A successful run's record commits with
//! its rows; a failed run's is written after the rollback, best effort.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// The table that keeps the run history in a database target.
pub const RUNS_TABLE: &str = "_etl_runs";

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Committed.
    Ok,
    /// Failed; nothing (or only earlier segments) committed.
    Failed,
    /// Committed, but the input had no lines at all, not even control
    /// lines: usually a producer that died before writing. Not counted as
    /// a successful run by `scripts/etl-check`.
    Empty,
}

impl RunStatus {
    /// `ok`, `failed` or `empty`, as stored.
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Failed => "failed",
            RunStatus::Empty => "empty",
        }
    }
}

/// One run of `etl-load`.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The job's name (`--job`, else the table or file).
    pub job: String,
    /// When the run started (seconds since the epoch).
    pub started: f64,
    /// When it ended.
    pub ended: f64,
    /// Records read.
    pub read: u64,
    /// Records written.
    pub written: u64,
    /// Records rejected.
    pub rejected: u64,
    /// Records skipped (batches committed before).
    pub skipped: u64,
    /// The streams' stored bookmarks when the run began: `{stream: bookmark}`.
    pub bookmark_before: Map<String, Value>,
    /// The streams' bookmarks the run committed: `{stream: bookmark}`.
    pub bookmark_after: Map<String, Value>,
    /// The `etl-watch` batch ids the run loaded.
    pub batches: Vec<String>,
    /// How it ended.
    pub status: RunStatus,
    /// Why it failed, with any password taken out.
    pub error: Option<String>,
}

impl RunRecord {
    /// A record for a run of `job` that starts now.
    pub fn start(job: &str) -> RunRecord {
        RunRecord {
            job: job.to_string(),
            started: now(),
            ended: 0.0,
            read: 0,
            written: 0,
            rejected: 0,
            skipped: 0,
            bookmark_before: Map::new(),
            bookmark_after: Map::new(),
            batches: Vec::new(),
            status: RunStatus::Ok,
            error: None,
        }
    }

    /// Takes the run's counts and its end time.
    pub fn fill(&mut self, counts: &crate::progress::Counts) {
        self.ended = now();
        self.read = counts.read;
        self.written = counts.written;
        self.rejected = counts.rejected;
        self.skipped = counts.skipped;
    }

    /// The record as one JSON object (for state files and `--log-json`).
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("job".into(), self.job.clone().into());
        obj.insert("started_at".into(), utc_text(self.started).into());
        obj.insert("ended_at".into(), utc_text(self.ended).into());
        obj.insert("rows_read".into(), self.read.into());
        obj.insert("rows_written".into(), self.written.into());
        obj.insert("rows_rejected".into(), self.rejected.into());
        obj.insert("rows_skipped".into(), self.skipped.into());
        obj.insert(
            "bookmark_before".into(),
            Value::Object(self.bookmark_before.clone()),
        );
        obj.insert(
            "bookmark_after".into(),
            Value::Object(self.bookmark_after.clone()),
        );
        obj.insert(
            "batches".into(),
            Value::Array(self.batches.iter().cloned().map(Value::from).collect()),
        );
        obj.insert("status".into(), self.status.name().into());
        obj.insert(
            "error".into(),
            self.error.clone().map_or(Value::Null, Value::from),
        );
        Value::Object(obj)
    }
}

/// Seconds since the epoch, now.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A time as ISO 8601 UTC text with milliseconds: `2026-11-23T16:20:05.123Z`.
pub fn utc_text(seconds: f64) -> String {
    let millis = (seconds * 1000.0).round() as i64;
    let days = millis.div_euclid(86_400_000);
    let rest = millis.rem_euclid(86_400_000);
    let (year, month, day) = crate::calendar::civil(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_text_is_iso_8601() {
        assert_eq!(utc_text(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc_text(1_763_914_805.123), "2025-11-23T16:20:05.123Z");
        assert_eq!(utc_text(951_782_400.0), "2000-02-29T00:00:00.000Z");
    }
}
