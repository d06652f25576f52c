//! What a followed file's identity is built from: the fingerprint length,
//! the FNV-1a hash kept in checkpoints and batch ids, and comparisons of a
//! file's first bytes. Below both the file follower and the copytruncate
//! rule, which each use it.

use std::fs::File;
use std::os::unix::fs::FileExt;

use anyhow::Result;

/// Bytes covered by a file's fingerprint, once it is that long.
pub const FP_BYTES: u64 = 64;

/// FNV-1a, 64 bits, fed in pieces. Its values are stored in checkpoints
/// and batch ids, so it must never change between releases (unlike std's
/// `DefaultHasher`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hasher(u64);

impl Default for Hasher {
    fn default() -> Self {
        Hasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher {
    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// The hash of `bytes` alone, in hex.
    pub fn of(bytes: &[u8]) -> String {
        let mut h = Hasher::default();
        h.update(bytes);
        h.hex()
    }

    /// The hash so far, in hex.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }

    /// Goes on from a hash written by [`Hasher::hex`] (FNV's state is its
    /// value): the hash of more bytes after those.
    pub fn resume(hex: &str) -> Option<Hasher> {
        u64::from_str_radix(hex, 16).ok().map(Hasher)
    }
}

/// The hash of a file's first `len` bytes, `None` if it is shorter.
pub fn prefix_hash(file: &File, len: u64) -> Result<Option<Hasher>> {
    let mut hasher = Hasher::default();
    let mut buf = vec![0u8; len.min(1 << 20) as usize];
    let mut at = 0u64;
    while at < len {
        let part = &mut buf[..(len - at).min(1 << 20) as usize];
        match file.read_exact_at(part, at) {
            Ok(()) => hasher.update(part),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        at += part.len() as u64;
    }
    Ok(Some(hasher))
}

/// Do two files hold the same first `len` bytes?
pub fn same_head(a: &File, b: &File, len: u64) -> Result<bool> {
    let mut left = vec![0u8; len.min(1 << 20) as usize];
    let mut right = left.clone();
    let mut at = 0u64;
    while at < len {
        let n = (len - at).min(1 << 20) as usize;
        for (file, buf) in [(a, &mut left), (b, &mut right)] {
            match file.read_exact_at(&mut buf[..n], at) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        if left[..n] != right[..n] {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}
