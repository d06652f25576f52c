//! What `--dedup` and `--validate`'s unique rule hold: keys, not records.
//!
//! A key is a 128-bit hash of its fields' JSON texts (two SipHash passes
//! with different prefixes); two different keys sharing one is as likely as
//! guessing a random 128-bit number. `--dedup` writes each record to an
//! unlinked spill file as it comes and keeps, per key, where its last
//! record lies: memory is about 35 to 60 bytes a key (the hash table's
//! slack included), whatever the records' size.

use std::collections::HashMap;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use anyhow::{Context, Result};
use serde_json::{Map, Value};

/// The hash of a record's key fields (a missing field counts as null).
pub fn key_hash(record: &Map<String, Value>, fields: &[String]) -> Key {
    // The fields' JSON texts, each ended by 0x1f (which JSON text holds
    // only escaped), written once and hashed twice.
    let mut text = Vec::with_capacity(64);
    for field in fields {
        match record.get(field) {
            Some(v) => {
                serde_json::to_writer(&mut text, v).expect("a JSON value always writes into a Vec")
            }
            None => text.extend_from_slice(b"null"),
        }
        text.push(0x1f);
    }
    let half = |salt: u8| {
        let mut h = std::hash::DefaultHasher::new();
        salt.hash(&mut h);
        text.hash(&mut h);
        h.finish()
    };
    [half(1), half(2)]
}

/// A key's 128-bit hash, as two halves: 8-byte aligned, so that a map
/// entry of a key and a slot number takes 24 bytes, not 32.
pub type Key = [u64; 2];

/// The last record of each key, in the order keys were first seen, kept
/// in a spill file.
#[derive(Default)]
pub struct Held {
    index: HashMap<Key, u32>,
    /// Where each key's last record starts in the spill file (its length,
    /// 4 bytes little-endian, then its bytes), by first appearance.
    slots: Vec<u64>,
    spill: Option<BufWriter<File>>,
    end: u64,
}

impl Held {
    /// Holds `line` as the last record of `key`; true when it replaced an
    /// earlier one.
    pub fn push(&mut self, key: Key, line: &[u8]) -> Result<bool> {
        let spill = match &mut self.spill {
            Some(s) => s,
            None => self
                .spill
                .insert(BufWriter::with_capacity(1 << 20, spill_file()?)),
        };
        let len = u32::try_from(line.len()).context("a record of 4 GiB or more")?;
        spill
            .write_all(&len.to_le_bytes())
            .and_then(|()| spill.write_all(line))
            .context("cannot write --dedup's spill file")?;
        let slot = self.end;
        self.end += 4 + line.len() as u64;
        match self.index.get(&key) {
            Some(&i) => {
                self.slots[i as usize] = slot;
                Ok(true)
            }
            None => {
                let i = u32::try_from(self.slots.len())
                    .context("--dedup holds at most 4 billion keys")?;
                self.index.insert(key, i);
                self.slots.push(slot);
                Ok(false)
            }
        }
    }

    /// Hands each held record to `each`, in the order keys were first seen,
    /// then forgets them all.
    pub fn drain(&mut self, mut each: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let Some(spill) = &mut self.spill else {
            return Ok(());
        };
        spill.flush().context("cannot write --dedup's spill file")?;
        let file = spill.get_ref();
        let mut buffer = Vec::new();
        for &offset in &self.slots {
            let mut len = [0u8; 4];
            file.read_exact_at(&mut len, offset)
                .context("cannot read --dedup's spill file")?;
            buffer.resize(u32::from_le_bytes(len) as usize, 0);
            file.read_exact_at(&mut buffer, offset + 4)
                .context("cannot read --dedup's spill file")?;
            each(&buffer)?;
        }
        // Emptied for the next segment, and written from its start again
        // (the file's own position would otherwise stay at the old end).
        file.set_len(0)
            .and_then(|()| spill.get_mut().seek(SeekFrom::Start(0)).map(drop))
            .context("cannot empty --dedup's spill file")?;
        self.index.clear();
        self.slots.clear();
        self.end = 0;
        Ok(())
    }
}

/// A new file in the temp directory, unlinked at once: it goes away with
/// the process, however that ends.
fn spill_file() -> Result<File> {
    let dir = std::env::temp_dir();
    for attempt in 0..100u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = dir.join(format!(
            ".etl-transform-dedup-{}-{nanos}-{attempt}",
            std::process::id()
        ));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => {
                std::fs::remove_file(&path).ok();
                return Ok(file);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot create --dedup's spill file in {} (set TMPDIR)",
                        dir.display()
                    )
                });
            }
        }
    }
    anyhow::bail!("cannot create --dedup's spill file in {}", dir.display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_last_record_of_each_key_comes_back_in_first_seen_order() {
        let mut held = Held::default();
        assert!(!held.push([1, 0], b"a1").unwrap());
        assert!(!held.push([2, 0], b"b1").unwrap());
        assert!(held.push([1, 0], b"a2-longer").unwrap());
        let mut out = Vec::new();
        held.drain(|r| {
            out.push(String::from_utf8(r.to_vec()).unwrap());
            Ok(())
        })
        .unwrap();
        assert_eq!(out, ["a2-longer", "b1"]);
        // Drained: a new segment starts empty.
        held.push([3, 0], b"c").unwrap();
        let mut out = Vec::new();
        held.drain(|r| {
            out.push(r.to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!(out, [b"c".to_vec()]);
    }

    #[test]
    fn keys_hash_by_value_and_type() {
        let a = json!({"id": 1, "x": "a"});
        let b = json!({"id": "1", "x": "b"});
        let c = json!({"id": 1, "x": "c"});
        let keys = ["id".to_string()];
        let h = |v: &Value| key_hash(v.as_object().unwrap(), &keys);
        assert_ne!(h(&a), h(&b), "1 and \"1\" are different keys");
        assert_eq!(h(&a), h(&c));
        let missing = json!({"x": 1});
        let null = json!({"id": null});
        assert_eq!(h(&missing), h(&null));
    }
}
