//! Kafka's request and answer encoding: big-endian integers, strings
//! with an i16 length, arrays with an i32 count, and the zig-zag varints
//! of record batches.

use anyhow::{Context, Result, bail};

/// Writes a Kafka request body (big-endian integers, strings with an
/// i16 length). Public for etlkit's tests, which set up topics with it.
#[derive(Default)]
pub struct Encoder(pub Vec<u8>);

impl Encoder {
    /// An INT8.
    pub fn i8(&mut self, v: i8) -> &mut Self {
        self.0.push(v as u8);
        self
    }
    /// An INT16.
    pub fn i16(&mut self, v: i16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// An INT32.
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// An INT64.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// A STRING (i16 length).
    pub fn string(&mut self, v: &str) -> &mut Self {
        self.i16(v.len() as i16);
        self.0.extend_from_slice(v.as_bytes());
        self
    }
    /// BYTES (i32 length).
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.i32(v.len() as i32);
        self.0.extend_from_slice(v);
        self
    }
    /// A null NULLABLE_STRING.
    pub fn null_string(&mut self) -> &mut Self {
        self.i16(-1)
    }
}

/// Reads an answer.
pub(super) struct Decoder<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Decoder<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Decoder { data, at: 0 }
    }
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .context("the broker's answer is cut short")?;
        let out = &self.data[self.at..end];
        self.at = end;
        Ok(out)
    }
    pub(super) fn i8(&mut self) -> Result<i8> {
        Ok(self.take(1)?[0] as i8)
    }
    pub(super) fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into()?))
    }
    pub(super) fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into()?))
    }
    pub(super) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into()?))
    }
    pub(super) fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into()?))
    }
    pub(super) fn string(&mut self) -> Result<String> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(String::new());
        }
        Ok(String::from_utf8_lossy(self.take(n as usize)?).into_owned())
    }
    pub(super) fn bytes(&mut self) -> Result<Option<&'a [u8]>> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(None);
        }
        Ok(Some(self.take(n as usize)?))
    }
    /// An array's length (a null array is empty).
    pub(super) fn count(&mut self) -> Result<usize> {
        Ok(self.i32()?.max(0) as usize)
    }
    pub(super) fn varint(&mut self) -> Result<i64> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                // Zig-zag.
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        bail!("a varint in a record batch is too long")
    }
    pub(super) fn var_bytes(&mut self) -> Result<Option<&'a [u8]>> {
        let n = self.varint()?;
        if n < 0 {
            return Ok(None);
        }
        Ok(Some(self.take(n as usize)?))
    }
    /// Walks a topics → partitions answer (etl-watch asks for one topic),
    /// handing `each` each partition's index with the decoder at the
    /// partition's other fields.
    pub(super) fn partitions(
        &mut self,
        mut each: impl FnMut(i32, &mut Self) -> Result<()>,
    ) -> Result<()> {
        for _ in 0..self.count()? {
            let _name = self.string()?;
            for _ in 0..self.count()? {
                let id = self.i32()?;
                each(id, self)?;
            }
        }
        Ok(())
    }
    /// Skips an INT32 array.
    pub(super) fn skip_i32s(&mut self) -> Result<()> {
        for _ in 0..self.count()? {
            self.i32()?;
        }
        Ok(())
    }
    pub(super) fn rest(&self) -> &'a [u8] {
        &self.data[self.at..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_zigzag() {
        let mut d = Decoder::new(&[0x00, 0x01, 0x02, 0xac, 0x02]);
        assert_eq!(d.varint().unwrap(), 0);
        assert_eq!(d.varint().unwrap(), -1);
        assert_eq!(d.varint().unwrap(), 1);
        assert_eq!(d.varint().unwrap(), 150);
    }
}
