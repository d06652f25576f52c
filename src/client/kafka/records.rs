//! Record batches (message format v2): reading a fetch's batches
//! (checksums, gzip and zstd, control batches skipped) and writing one, as
//! a producer sends it.

use std::io::Read;

use anyhow::{Context, Result, bail};

use super::codec::{Decoder, Encoder};

/// The (offset, value) of each record in a fetch's record batches. A last
/// batch cut off by the size limit is left for the next fetch; control
/// batches (transaction markers) hold no messages.
pub(super) fn decode_batches(mut data: &[u8]) -> Result<Vec<(i64, Vec<u8>)>> {
    let mut out = Vec::new();
    while data.len() >= 12 {
        let base = i64::from_be_bytes(data[..8].try_into()?);
        let length = i32::from_be_bytes(data[8..12].try_into()?);
        if length < 0 {
            bail!("a record batch has a negative length");
        }
        let end = 12 + length as usize;
        if data.len() < end {
            break;
        }
        let batch = &data[12..end];
        data = &data[end..];
        let mut d = Decoder::new(batch);
        let _epoch = d.i32()?;
        let magic = d.i8()?;
        if magic != 2 {
            bail!("message format v{magic} is not supported (Kafka 0.11 or later writes v2)");
        }
        let crc = d.u32()?;
        if crc32c(d.rest()) != crc {
            bail!("a record batch at offset {base} fails its checksum");
        }
        let attributes = d.i16()?;
        let _last_delta = d.i32()?;
        let _first_ts = d.i64()?;
        let _max_ts = d.i64()?;
        let _producer = d.i64()?;
        let _producer_epoch = d.i16()?;
        let _base_seq = d.i32()?;
        let count = d.count()?;
        if attributes & 0x20 != 0 {
            continue;
        }
        let records: Vec<u8> = match attributes & 0x07 {
            0 => d.rest().to_vec(),
            1 => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(d.rest())
                    .read_to_end(&mut out)
                    .context("a gzip record batch does not decompress")?;
                out
            }
            4 => zstd::decode_all(d.rest()).context("a zstd record batch does not decompress")?,
            2 => bail!("snappy-compressed record batches are not supported (gzip and zstd are)"),
            3 => bail!("lz4-compressed record batches are not supported (gzip and zstd are)"),
            c => bail!("unknown compression {c} in a record batch"),
        };
        let mut r = Decoder::new(&records);
        for _ in 0..count {
            let length = r.varint()?;
            let record = r.take(usize::try_from(length).context("a negative record length")?)?;
            let mut f = Decoder::new(record);
            let _attributes = f.i8()?;
            let _ts = f.varint()?;
            let delta = f.varint()?;
            let _key = f.var_bytes()?;
            let value = f.var_bytes()?.unwrap_or_default().to_vec();
            out.push((base + delta, value));
        }
    }
    Ok(out)
}

/// A record batch (message format v2, uncompressed) holding `values` as
/// records without keys, offsets 0.. from the batch's start: what a
/// producer sends (etlkit's tests publish with it).
pub fn record_batch(values: &[&[u8]]) -> Vec<u8> {
    let mut records = Vec::new();
    for (i, value) in values.iter().enumerate() {
        let mut record = Vec::new();
        record.push(0); // attributes
        put_varint(&mut record, 0); // timestamp delta
        put_varint(&mut record, i as i64); // offset delta
        put_varint(&mut record, -1); // no key
        put_varint(&mut record, value.len() as i64);
        record.extend_from_slice(value);
        put_varint(&mut record, 0); // no headers
        put_varint(&mut records, record.len() as i64);
        records.extend_from_slice(&record);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut tail = Encoder::default();
    tail.i16(0)
        .i32(values.len().saturating_sub(1) as i32)
        .i64(now)
        .i64(now)
        .i64(-1)
        .i16(-1)
        .i32(-1)
        .i32(values.len() as i32);
    tail.0.extend_from_slice(&records);
    let mut batch = Encoder::default();
    batch
        .i64(0)
        .i32((4 + 1 + 4 + tail.0.len()) as i32)
        .i32(-1)
        .i8(2);
    batch.0.extend_from_slice(&crc32c(&tail.0).to_be_bytes());
    batch.0.extend_from_slice(&tail.0);
    batch.0
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

/// CRC-32C (Castagnoli), as record batches carry it.
pub fn crc32c(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn record_batches_decode_to_what_was_encoded() {
        let values: [&[u8]; 3] = [b"{\"id\":1}", b"", &[b'x'; 300]];
        let decoded = decode_batches(&record_batch(&values)).unwrap();
        assert_eq!(decoded.len(), 3);
        assert_eq!(decoded[0], (0, values[0].to_vec()));
        assert_eq!(decoded[2], (2, values[2].to_vec()));
        let mut cut = record_batch(&values);
        cut.pop();
        assert!(
            decode_batches(&cut).unwrap().is_empty(),
            "a cut batch waits"
        );
        let mut bad = record_batch(&values);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(decode_batches(&bad).is_err(), "a bad checksum fails");
    }
}
