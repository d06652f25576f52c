//! Where `etl-watch` has got to: for each file (known by device, inode,
//! birth time and a fingerprint of its first bytes) the offset up to which
//! batches were handed on and a seal of the bytes before that offset, plus
//! the batch in flight, if any; for an S3 inbox, the object versions
//! handed on, the one handed on part way, and the object ranges of the
//! batch in flight. Written atomically; one `etl-watch` per
//! checkpoint (a second one is refused, not queued).

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

/// A file's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileId {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// FNV-1a hash of the first `fp_len` bytes, in hex.
    pub fp: String,
    /// How many leading bytes the fingerprint covers (at most 64).
    pub fp_len: u64,
    /// Birth time in nanoseconds since the epoch, where the filesystem
    /// keeps one: a reused inode is born again. `None` when unknown (and
    /// in checkpoints written before it was recorded).
    pub born: Option<u64>,
}

impl FileId {
    /// The same file? Birth times are compared only when both are known.
    pub fn same_file(&self, other: &FileId) -> bool {
        self.dev == other.dev
            && self.ino == other.ino
            && self.fp == other.fp
            && self.fp_len == other.fp_len
            && (self.born.is_none() || other.born.is_none() || self.born == other.born)
    }
}

/// One followed file in the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Its identity.
    pub id: FileId,
    /// Its last path.
    pub path: PathBuf,
    /// Bytes handed on so far.
    pub offset: u64,
    /// The seal of the bytes before `offset` (see `files::seal`); `None`
    /// in checkpoints written before seals were kept.
    pub seal: Option<String>,
    /// The hash of all bytes before `offset` (see `copies.rs`: a copy of
    /// them is not read again); `None` when unknown.
    pub prefix: Option<String>,
}

/// A byte range of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The file.
    pub id: FileId,
    /// Its path when the range was read.
    pub path: PathBuf,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Hash of the bytes `start..end`, so that a resent batch is known to
    /// hold what was first sent (`None` in older checkpoints).
    pub hash: Option<String>,
}

/// One version of an object in an S3 inbox (`objects.rs`): its address
/// and its ETag. An object written again with new content is another
/// version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectVersion {
    /// `s3://bucket/key`.
    pub object: String,
    /// Its ETag, quotes included, as S3 gives it.
    pub etag: String,
}

/// The saved positions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checkpoint {
    /// Per file: its last path, the offset handed on so far and its seal.
    pub files: Vec<FileEntry>,
    /// The batch in flight: handed to --exec but not yet confirmed.
    pub pending: Vec<Range>,
    /// That batch's id, reused when it is sent again.
    pub pending_id: Option<String>,
    /// An S3 inbox: the object versions handed on that the last listing
    /// still held.
    pub objects: Vec<ObjectVersion>,
    /// An S3 inbox: the object versions handed on part way (each range's
    /// `end` is the offset handed on up to).
    pub partial: Vec<ObjectRange>,
    /// An S3 inbox: the object ranges of the batch in flight.
    pub pending_objects: Vec<ObjectRange>,
}

/// A range of one object version's bytes (after decompression).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRange {
    /// `s3://bucket/key`.
    pub object: String,
    /// Its ETag.
    pub etag: String,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Does the range reach the object's end?
    pub last: bool,
}

fn versions_json(objects: &[ObjectVersion]) -> Value {
    Value::Array(
        objects
            .iter()
            .map(|o| json!({"object": o.object, "etag": o.etag}))
            .collect(),
    )
}

fn object_range_json(r: &ObjectRange) -> Value {
    json!({"object": r.object, "etag": r.etag, "start": r.start, "end": r.end, "last": r.last})
}

/// The JSON form of object ranges (also used in batch end lines).
pub fn object_ranges_json(ranges: &[ObjectRange]) -> Value {
    Value::Array(ranges.iter().map(object_range_json).collect())
}

fn object_range_from(o: &Value) -> Option<ObjectRange> {
    Some(ObjectRange {
        object: o.get("object")?.as_str()?.to_string(),
        etag: o.get("etag")?.as_str()?.to_string(),
        start: o.get("start")?.as_u64()?,
        end: o.get("end")?.as_u64()?,
        last: o.get("last")?.as_bool()?,
    })
}

fn object_ranges_from(v: Option<&Value>) -> Vec<ObjectRange> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(object_range_from).collect())
        .unwrap_or_default()
}

fn objects_from(v: Option<&Value>) -> Vec<ObjectVersion> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|o| {
                    Some(ObjectVersion {
                        object: o.get("object")?.as_str()?.to_string(),
                        etag: o.get("etag")?.as_str()?.to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn id_json(id: &FileId) -> Value {
    let mut v = json!({"dev": id.dev, "ino": id.ino, "fp": id.fp, "fp_len": id.fp_len});
    if let (Some(born), Value::Object(o)) = (id.born, &mut v) {
        o.insert("born".into(), born.into());
    }
    v
}

fn id_from(v: &Value) -> Option<FileId> {
    Some(FileId {
        dev: v.get("dev")?.as_u64()?,
        ino: v.get("ino")?.as_u64()?,
        fp: v.get("fp")?.as_str()?.to_string(),
        fp_len: v.get("fp_len")?.as_u64()?,
        born: v.get("born").and_then(Value::as_u64),
    })
}

/// The JSON form of ranges (also used in batch end lines).
pub fn ranges_json(ranges: &[Range]) -> Value {
    Value::Array(
        ranges
            .iter()
            .map(|r| {
                let mut o = Map::new();
                o.insert("file".into(), r.path.display().to_string().into());
                o.insert("id".into(), id_json(&r.id));
                o.insert("start".into(), r.start.into());
                o.insert("end".into(), r.end.into());
                if let Some(hash) = &r.hash {
                    o.insert("hash".into(), hash.clone().into());
                }
                Value::Object(o)
            })
            .collect(),
    )
}

fn ranges_from(v: Option<&Value>) -> Vec<Range> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| {
                    Some(Range {
                        id: id_from(r.get("id")?)?,
                        path: PathBuf::from(r.get("file")?.as_str()?),
                        start: r.get("start")?.as_u64()?,
                        end: r.get("end")?.as_u64()?,
                        hash: r.get("hash").and_then(Value::as_str).map(String::from),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Checkpoint {
    /// Reads a checkpoint; a missing file is an empty checkpoint.
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Checkpoint::default()),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read checkpoint {}", path.display()));
            }
        };
        let doc: Value = serde_json::from_str(&text)
            .with_context(|| format!("checkpoint {} is not valid JSON", path.display()))?;
        let files = doc
            .get("files")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|f| {
                        Some(FileEntry {
                            id: id_from(f.get("id")?)?,
                            path: PathBuf::from(f.get("file")?.as_str()?),
                            offset: f.get("offset")?.as_u64()?,
                            seal: f.get("seal").and_then(Value::as_str).map(String::from),
                            prefix: f.get("prefix").and_then(Value::as_str).map(String::from),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Checkpoint {
            files,
            pending: ranges_from(doc.get("pending")),
            pending_id: doc
                .get("pending_id")
                .and_then(Value::as_str)
                .map(String::from),
            objects: objects_from(doc.get("objects")),
            partial: object_ranges_from(doc.get("partial")),
            pending_objects: object_ranges_from(doc.get("pending_objects")),
        })
    }

    /// Writes the checkpoint atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let files: Vec<Value> = self
            .files
            .iter()
            .map(|f| {
                json!({
                    "file": f.path.display().to_string(),
                    "id": id_json(&f.id),
                    "offset": f.offset,
                    "seal": f.seal,
                    "prefix": f.prefix,
                })
            })
            .collect();
        let mut doc = json!({
            "version": 2,
            "files": files,
            "pending": ranges_json(&self.pending),
            "pending_id": self.pending_id,
        });
        if let Value::Object(o) = &mut doc
            && (!self.objects.is_empty()
                || !self.partial.is_empty()
                || !self.pending_objects.is_empty())
        {
            o.insert("objects".into(), versions_json(&self.objects));
            o.insert("partial".into(), object_ranges_json(&self.partial));
            o.insert(
                "pending_objects".into(),
                object_ranges_json(&self.pending_objects),
            );
        }
        let text = serde_json::to_string_pretty(&doc)?;
        crate::atomic_file::write_atomically(path, text.as_bytes())
    }
}

/// Holds the checkpoint's lock file for as long as it lives.
pub struct CheckpointLock {
    _file: File,
}

/// Takes the lock on `path`; a second `etl-watch` gets an error at once.
pub fn lock(path: &Path) -> Result<CheckpointLock> {
    let (file, _) = crate::atomic_file::open_lock_file(path)?;
    match file.try_lock() {
        Ok(()) => Ok(CheckpointLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another etl-watch is using checkpoint {} (its lock is held)",
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        let id = FileId {
            dev: 1,
            ino: 2,
            fp: "ab".into(),
            fp_len: 64,
            born: Some(1_800_000_000_123_456_789),
        };
        let cp = Checkpoint {
            files: vec![FileEntry {
                id: id.clone(),
                path: PathBuf::from("a.log"),
                offset: 10,
                seal: Some("cd".into()),
                prefix: Some("0123".into()),
            }],
            pending: vec![Range {
                id: id.clone(),
                path: "a.log".into(),
                start: 10,
                end: 20,
                hash: Some("ef".into()),
            }],
            pending_id: Some("b47c".into()),
            objects: vec![ObjectVersion {
                object: "s3://b/in/a.csv".into(),
                etag: "\"e1\"".into(),
            }],
            partial: vec![ObjectRange {
                object: "s3://b/in/b.csv".into(),
                etag: "\"e2\"".into(),
                start: 0,
                end: 10,
                last: false,
            }],
            pending_objects: vec![ObjectRange {
                object: "s3://b/in/b.csv".into(),
                etag: "\"e2\"".into(),
                start: 10,
                end: 20,
                last: true,
            }],
        };
        cp.save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap(), cp);
        let _held = lock(&path).unwrap();
        assert!(lock(&path).is_err());
    }

    #[test]
    fn reads_checkpoints_written_before_seals_and_birth_times() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(
            &path,
            r#"{"version":1,"files":[{"file":"a.log","id":{"dev":1,"ino":2,"fp":"ab","fp_len":3},"offset":3}],
               "pending":[{"file":"a.log","id":{"dev":1,"ino":2,"fp":"ab","fp_len":3},"start":3,"end":5}],"pending_id":"x"}"#,
        )
        .unwrap();
        let cp = Checkpoint::load(&path).unwrap();
        assert_eq!(cp.files[0].seal, None);
        assert_eq!(cp.files[0].prefix, None);
        assert_eq!(cp.files[0].id.born, None);
        assert_eq!(cp.pending[0].hash, None);
        let mut born = cp.files[0].id.clone();
        born.born = Some(7);
        assert!(born.same_file(&cp.files[0].id));
        let mut other = born.clone();
        other.born = Some(8);
        assert!(!born.same_file(&other));
    }
}
