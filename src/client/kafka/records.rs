//! Record batches (message format v2): reading a fetch's batches
//! (checksums, any compression, control batches skipped) and writing one,
//! as a producer sends it.

use anyhow::{Context, Result, bail};

use super::codec::{Decoder, Encoder};
use super::compression::decompress;

/// The message bytes after which a fetch's decoding stops at the next
/// batch's start, leaving the rest for the next fetch: a fetch of highly
/// compressed batches stays bounded in memory however far its batches
/// expand.
const DECODED_BYTES: usize = 64 << 20;

/// The (offset, value) of each record from offset `from` on in a fetch's
/// record batches. A last batch cut off by the size limit is left for the
/// next fetch, as are the batches after DECODED_BYTES of messages; control
/// batches (transaction markers) hold no messages.
pub(super) fn decode_batches(mut data: &[u8], from: i64) -> Result<Vec<(i64, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut decoded = 0;
    while data.len() >= 12 && decoded < DECODED_BYTES {
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
        let records = decompress(attributes & 0x07, d.rest())
            .with_context(|| format!("the record batch at offset {base}"))?;
        let mut r = Decoder::new(&records);
        for _ in 0..count {
            let length = r.varint()?;
            let record = r.take(usize::try_from(length).context("a negative record length")?)?;
            let mut f = Decoder::new(record);
            let _attributes = f.i8()?;
            let _ts = f.varint()?;
            let delta = f.varint()?;
            let _key = f.var_bytes()?;
            let value = f.var_bytes()?.unwrap_or_default();
            if base + delta >= from {
                decoded += value.len();
                out.push((base + delta, value.to_vec()));
            }
        }
    }
    Ok(out)
}

/// A record batch (message format v2, uncompressed) holding `values` as
/// records without keys, offsets 0.. from the batch's start: what a
/// producer sends (etlkit's tests publish with it).
pub fn record_batch(values: &[&[u8]]) -> Vec<u8> {
    record_batch_compressed(values, 0, |records| records)
}

/// A record batch as `record_batch`, its records compressed by `compress`
/// and its attributes naming `codec` (1 gzip, 2 snappy, 3 lz4, 4 zstd).
pub fn record_batch_compressed(
    values: &[&[u8]],
    codec: i16,
    compress: impl FnOnce(Vec<u8>) -> Vec<u8>,
) -> Vec<u8> {
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
    let records = compress(records);
    let mut tail = Encoder::default();
    tail.i16(codec)
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
        let decoded = decode_batches(&record_batch(&values), 0).unwrap();
        assert_eq!(decoded.len(), 3);
        assert_eq!(decoded[0], (0, values[0].to_vec()));
        assert_eq!(decoded[2], (2, values[2].to_vec()));
        let mut cut = record_batch(&values);
        cut.pop();
        assert!(
            decode_batches(&cut, 0).unwrap().is_empty(),
            "a cut batch waits"
        );
        let mut bad = record_batch(&values);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(decode_batches(&bad, 0).is_err(), "a bad checksum fails");
    }

    fn snappy_raw(records: Vec<u8>) -> Vec<u8> {
        snap::raw::Encoder::new().compress_vec(&records).unwrap()
    }

    /// The Java client's framing, blocks of at most 64 bytes.
    fn snappy_java(records: Vec<u8>) -> Vec<u8> {
        let mut out = b"\x82SNAPPY\x00\0\0\0\x01\0\0\0\x01".to_vec();
        for chunk in records.chunks(64) {
            let block = snappy_raw(chunk.to_vec());
            out.extend_from_slice(&(block.len() as u32).to_be_bytes());
            out.extend_from_slice(&block);
        }
        out
    }

    fn lz4_frame(records: Vec<u8>) -> Vec<u8> {
        let mut w = lz4_flex::frame::FrameEncoder::new(Vec::new());
        std::io::Write::write_all(&mut w, &records).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn compressed_record_batches_decode() {
        let values: [&[u8]; 4] = [b"{\"id\":1}", b"", &[b'x'; 300], b"{\"id\":4}"];
        let want: Vec<(i64, Vec<u8>)> = (0..).zip(values.iter().map(|v| v.to_vec())).collect();
        let gzip = |records: Vec<u8>| {
            let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut w, &records).unwrap();
            w.finish().unwrap()
        };
        let zstd = |records: Vec<u8>| zstd::encode_all(&records[..], 1).unwrap();
        let batches = [
            record_batch_compressed(&values, 1, gzip),
            record_batch_compressed(&values, 2, snappy_java),
            record_batch_compressed(&values, 2, snappy_raw),
            record_batch_compressed(&values, 3, lz4_frame),
            record_batch_compressed(&values, 4, zstd),
        ];
        for batch in &batches {
            assert!(batch.len() < record_batch(&values).len(), "compressed");
            assert_eq!(decode_batches(batch, 0).unwrap(), want);
            assert_eq!(decode_batches(batch, 2).unwrap(), want[2..]);
        }
        assert_eq!(decode_batches(&batches.concat(), 0).unwrap().len(), 20);
    }

    #[test]
    fn a_damaged_compressed_batch_names_its_offset() {
        let values: [&[u8]; 2] = [b"{\"id\":1}", b"{\"id\":2}"];
        let damaged = |codec, compress: fn(Vec<u8>) -> Vec<u8>| {
            let mut batch = record_batch_compressed(&values, codec, |records| {
                let mut out = compress(records);
                let middle = out.len() / 2;
                out.truncate(middle);
                out
            });
            batch[..8].copy_from_slice(&41i64.to_be_bytes());
            format!("{:#}", decode_batches(&batch, 0).unwrap_err())
        };
        for message in [
            damaged(2, snappy_java),
            damaged(2, snappy_raw),
            damaged(3, lz4_frame),
        ] {
            let (head, _) = message.split_once(" data does not decompress: ").unwrap();
            assert!(
                [
                    "the record batch at offset 41: snappy",
                    "the record batch at offset 41: lz4"
                ]
                .contains(&head),
                "{message}"
            );
        }
    }

    #[test]
    fn decoding_stops_at_a_batch_boundary_past_the_budget() {
        let big = vec![b'x'; 1 << 20];
        let values: Vec<&[u8]> = vec![&big; 40];
        let mut one = record_batch_compressed(&values, 2, snappy_raw);
        let mut two = one.clone();
        two[..8].copy_from_slice(&40i64.to_be_bytes());
        one.extend_from_slice(&two);
        let mut three = two.clone();
        three[..8].copy_from_slice(&80i64.to_be_bytes());
        one.extend_from_slice(&three);
        let decoded = decode_batches(&one, 0).unwrap();
        assert_eq!(
            decoded.len(),
            80,
            "two batches pass 64 MiB; the third waits"
        );
        assert_eq!(decoded[79].0, 79);
        assert_eq!(decode_batches(&one, 80).unwrap().len(), 40);
    }
}
