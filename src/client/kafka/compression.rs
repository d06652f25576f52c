//! The compression of a record batch's records (its attributes' low three
//! bits): gzip, snappy, lz4 and zstd undone, each within a size limit so
//! that a batch claiming a huge size (or a compression bomb) costs an
//! error, not the machine's memory.

use std::io::Read;

use anyhow::{Context, Result, bail};

/// The most one record batch's records may decompress to. Brokers cap a
/// batch at about 1 MiB compressed (message.max.bytes), so a real batch
/// stays far below.
const MAX_BATCH_BYTES: usize = 256 << 20;

/// The Java client's snappy framing (snappy-java's `SnappyOutputStream`):
/// this magic, two version numbers, then blocks.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";

/// The records of a batch whose attributes name `codec`, decompressed.
pub(super) fn decompress(codec: i16, data: &[u8]) -> Result<Vec<u8>> {
    decompress_within(codec, data, MAX_BATCH_BYTES)
}

/// As `decompress`, refusing more than `limit` bytes.
fn decompress_within(codec: i16, data: &[u8], limit: usize) -> Result<Vec<u8>> {
    match codec {
        0 => Ok(data.to_vec()),
        1 => read_bounded(flate2::read::GzDecoder::new(data), "gzip", limit),
        2 => snappy(data, limit),
        3 => read_bounded(lz4_flex::frame::FrameDecoder::new(data), "lz4", limit),
        4 => read_bounded(
            zstd::stream::read::Decoder::with_buffer(data)
                .context("zstd data does not decompress")?,
            "zstd",
            limit,
        ),
        c => bail!("unknown compression {c}"),
    }
}

/// All of `reader`, refused past `limit` bytes.
fn read_bounded(reader: impl Read, name: &str, limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .with_context(|| format!("{name} data does not decompress"))?;
    if out.len() > limit {
        bail!("{name} data decompresses to more than {}", size_text(limit));
    }
    Ok(out)
}

/// Snappy as producers write it: the Java client's framing (xerial:
/// magic, version, compatible version, then blocks of a 4-byte big-endian
/// length and a raw snappy block), or one raw snappy block (librdkafka).
fn snappy(data: &[u8], limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let Some(mut rest) = data.strip_prefix(XERIAL_MAGIC) else {
        snappy_block(data, &mut out, limit)?;
        return Ok(out);
    };
    if rest.len() < 8 {
        bail!("snappy data does not decompress: its framing's header is cut off");
    }
    rest = &rest[8..];
    while !rest.is_empty() {
        if rest.len() < 4 {
            bail!("snappy data does not decompress: a block's length is cut off");
        }
        let length = u32::from_be_bytes(rest[..4].try_into()?) as usize;
        rest = &rest[4..];
        if length > rest.len() {
            bail!(
                "snappy data does not decompress: a block claims {length} bytes where {} remain",
                rest.len()
            );
        }
        snappy_block(&rest[..length], &mut out, limit)?;
        rest = &rest[length..];
    }
    Ok(out)
}

/// One raw snappy block appended to `out`; the length it claims is held
/// against `limit` before anything is allocated for it.
fn snappy_block(block: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<()> {
    let length = snap::raw::decompress_len(block).context("snappy data does not decompress")?;
    if out.len().saturating_add(length) > limit {
        bail!("snappy data decompresses to more than {}", size_text(limit));
    }
    let start = out.len();
    out.resize(start + length, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .context("snappy data does not decompress")?;
    out.truncate(start + written);
    Ok(())
}

fn size_text(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xerial(blocks: &[&[u8]]) -> Vec<u8> {
        let mut out = XERIAL_MAGIC.to_vec();
        out.extend_from_slice(&1i32.to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes());
        for block in blocks {
            let raw = snap::raw::Encoder::new().compress_vec(block).unwrap();
            out.extend_from_slice(&(raw.len() as u32).to_be_bytes());
            out.extend_from_slice(&raw);
        }
        out
    }

    #[test]
    fn snappy_reads_the_java_framing_and_raw_blocks() {
        let text = b"{\"id\":1}{\"id\":2}{\"id\":3}".repeat(50);
        let framed = xerial(&[&text[..500], &text[500..]]);
        assert_eq!(decompress(2, &framed).unwrap(), text);
        let raw = snap::raw::Encoder::new().compress_vec(&text).unwrap();
        assert_eq!(decompress(2, &raw).unwrap(), text);
        assert_eq!(decompress(2, &xerial(&[])).unwrap(), b"");
    }

    #[test]
    fn lz4_reads_the_frame_format() {
        let text = b"{\"id\":1}".repeat(1000);
        let mut w = lz4_flex::frame::FrameEncoder::new(Vec::new());
        std::io::Write::write_all(&mut w, &text).unwrap();
        let framed = w.finish().unwrap();
        assert!(framed.len() < text.len());
        assert_eq!(decompress(3, &framed).unwrap(), text);
    }

    #[test]
    fn damaged_data_is_an_error() {
        let message = |codec, data: &[u8]| format!("{:#}", decompress(codec, data).unwrap_err());
        assert_eq!(
            message(2, &[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 1]),
            "snappy data decompresses to more than 256 MiB",
            "a claimed 4 GiB is refused before it is allocated"
        );
        let mut framed = xerial(&[b"abc"]);
        framed[16..20].copy_from_slice(&1000u32.to_be_bytes());
        assert_eq!(
            message(2, &framed),
            format!(
                "snappy data does not decompress: a block claims 1000 bytes where {} remain",
                framed.len() - 20
            )
        );
        assert_eq!(
            message(2, &framed[..18]),
            "snappy data does not decompress: a block's length is cut off"
        );
        assert_eq!(
            message(2, &framed[..12]),
            "snappy data does not decompress: its framing's header is cut off"
        );
        assert!(message(2, b"\x05abc").starts_with("snappy data does not decompress: "));
        assert!(
            message(3, b"\x04\x22\x4d\x18garbage").starts_with("lz4 data does not decompress: ")
        );
        assert!(message(3, b"not lz4").starts_with("lz4 data does not decompress: "));
        assert!(message(4, b"not zstd").starts_with("zstd data does not decompress: "));
        assert_eq!(message(5, b""), "unknown compression 5");
    }

    #[test]
    fn bombs_stop_at_the_limit() {
        let limit = 100_000;
        let zeros = vec![0u8; limit + 1];
        let mut w = lz4_flex::frame::FrameEncoder::new(Vec::new());
        std::io::Write::write_all(&mut w, &zeros).unwrap();
        let lz4 = w.finish().unwrap();
        let zstd = zstd::encode_all(&zeros[..], 1).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &zeros).unwrap();
        let gzip = gz.finish().unwrap();
        let raw = snap::raw::Encoder::new().compress_vec(&zeros).unwrap();
        let framed = xerial(&[&zeros[..limit], &zeros[limit..]]);
        for (codec, data, name) in [
            (1, gzip, "gzip"),
            (2, raw, "snappy"),
            (2, framed, "snappy"),
            (3, lz4, "lz4"),
            (4, zstd, "zstd"),
        ] {
            assert_eq!(
                format!("{:#}", decompress_within(codec, &data, limit).unwrap_err()),
                format!("{name} data decompresses to more than 100000 bytes")
            );
            assert_eq!(decompress_within(codec, &data, limit + 1).unwrap(), zeros);
        }
    }
}
