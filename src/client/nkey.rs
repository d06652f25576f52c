//! NATS credentials: a `.creds` file (the user's JWT and nkey seed, as
//! `nsc` and NATS providers hand them out) or a bare nkey seed file, and
//! the signature of the server's nonce that proves the seed.
//!
//! An nkey seed is base32 (RFC 4648, no padding) of two prefix bytes, the
//! 32-byte ed25519 seed and a CRC-16/XMODEM, little-endian. ed25519 comes
//! from ring, which the build already has for rustls: no crate is added.
//! The seed never appears in a message.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{Ed25519KeyPair, KeyPair};

/// The first 5 bits of a seed's first byte: `S`.
const PREFIX_SEED: u8 = 18 << 3;
/// The type prefix of a user key: `U`.
const PREFIX_USER: u8 = 20 << 3;
/// RFC 4648 base32's alphabet.
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// What a credentials file holds: the user's JWT (absent in a bare seed
/// file) and the key that signs the server's nonce.
pub struct Credentials {
    /// The user JWT, sent as it is.
    pub jwt: Option<String>,
    key: Ed25519KeyPair,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({})", self.public_key())
    }
}

impl Credentials {
    /// Reads a `.creds` file, or a file holding one user nkey seed.
    /// Errors name the file, never its contents.
    pub fn read(path: &Path) -> Result<Credentials> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("--creds {}", path.display()))?;
        Credentials::parse(&text).map_err(|e| anyhow!("--creds {}: {e}", path.display()))
    }

    /// The credentials in `text` (see [`Credentials::read`]).
    pub fn parse(text: &str) -> Result<Credentials> {
        let mut jwt = None;
        let mut seed = None;
        let mut block: Option<&str> = None;
        for line in text.lines().map(str::trim) {
            if line.starts_with("---") {
                block = (line.contains("BEGIN")).then_some(line);
                continue;
            }
            if line.is_empty() {
                continue;
            }
            match block {
                Some(head) if head.contains("JWT") => jwt = jwt.or(Some(line.to_string())),
                Some(head) if head.contains("SEED") => seed = seed.or(Some(line)),
                None if line.starts_with("SU") && seed.is_none() => seed = Some(line),
                _ => {}
            }
        }
        let seed = seed.context("no user nkey seed in it (a .creds file or an SU... seed)")?;
        Ok(Credentials {
            jwt,
            key: key_pair(seed)?,
        })
    }

    /// The user's public nkey (`U...`), as the server knows it.
    pub fn public_key(&self) -> String {
        encode(PREFIX_USER, self.key.public_key().as_ref())
    }

    /// The signature of the server's `nonce`, base64url as NATS sends it.
    pub fn sign(&self, nonce: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.key.sign(nonce.as_bytes()).as_ref())
    }
}

/// The key pair of a user nkey seed (`SU...`).
fn key_pair(seed: &str) -> Result<Ed25519KeyPair> {
    let bad = || anyhow!("the nkey seed is not valid");
    let raw = base32_decode(seed).ok_or_else(bad)?;
    if raw.len() != 36 {
        return Err(bad());
    }
    let (body, crc) = raw.split_at(34);
    if crc16(body).to_le_bytes() != crc {
        bail!("the nkey seed is damaged (its checksum does not match)");
    }
    if raw[0] & 0xf8 != PREFIX_SEED {
        return Err(bad());
    }
    let kind = ((raw[0] & 7) << 5) | ((raw[1] & 0xf8) >> 3);
    if kind != PREFIX_USER {
        bail!("the nkey seed is not a user's (SU...)");
    }
    Ed25519KeyPair::from_seed_unchecked(&raw[2..34]).map_err(|_| bad())
}

/// A seed for `bytes` (32 of them) of the user type, `SU...`: what
/// `nk -gen user` writes. For tests and set-up scripts.
pub fn user_seed(bytes: &[u8; 32]) -> String {
    let mut raw = vec![PREFIX_SEED | (PREFIX_USER >> 5), (PREFIX_USER & 31) << 3];
    raw.extend_from_slice(bytes);
    let crc = crc16(&raw);
    raw.extend_from_slice(&crc.to_le_bytes());
    base32_encode(&raw)
}

/// A public key of type `prefix`: the prefix, the key, the CRC, in base32.
fn encode(prefix: u8, key: &[u8]) -> String {
    let mut raw = vec![prefix];
    raw.extend_from_slice(key);
    let crc = crc16(&raw);
    raw.extend_from_slice(&crc.to_le_bytes());
    base32_encode(&raw)
}

/// CRC-16/XMODEM (polynomial 0x1021, initial 0), as nkeys check.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn base32_encode(data: &[u8]) -> String {
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in data {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let value = BASE32.iter().position(|&b| b == c)? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_is_xmodem() {
        assert_eq!(crc16(b"123456789"), 0x31c3);
    }

    #[test]
    fn seeds_round_trip_and_sign() {
        let seed = user_seed(&[7; 32]);
        assert!(seed.starts_with("SU"), "{seed}");
        let creds = Credentials::parse(&seed).unwrap();
        assert!(creds.jwt.is_none());
        let public = creds.public_key();
        assert!(public.starts_with('U') && public.len() == 56, "{public}");
        // The signature verifies with the public key the server derives.
        let raw = base32_decode(&public).unwrap();
        let sig = URL_SAFE_NO_PAD.decode(creds.sign("nonce-123")).unwrap();
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &raw[1..33])
            .verify(b"nonce-123", &sig)
            .unwrap();
        // A damaged seed is refused, and the message does not show it.
        let mut damaged = seed.clone().into_bytes();
        damaged[10] = if damaged[10] == b'A' { b'B' } else { b'A' };
        let err = Credentials::parse(std::str::from_utf8(&damaged).unwrap()).unwrap_err();
        assert!(!format!("{err:#}").contains(&seed[4..]), "{err:#}");
    }

    #[test]
    fn creds_files_hold_a_jwt_and_a_seed() {
        let seed = user_seed(&[9; 32]);
        let text = format!(
            "-----BEGIN NATS USER JWT-----\neyJhbGc.eyJzdWIi.c2ln\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
        );
        let creds = Credentials::parse(&text).unwrap();
        assert_eq!(creds.jwt.as_deref(), Some("eyJhbGc.eyJzdWIi.c2ln"));
        assert_eq!(
            creds.public_key(),
            Credentials::parse(&seed).unwrap().public_key()
        );
        assert!(Credentials::parse("nothing here").is_err());
    }
}
