//! COPY's binary format: the binary form a column's values are written in
//! (`Binary`, chosen per column by `table.rs`), the header and trailer
//! that frame binary COPY data, and each value encoded after the one check
//! both formats share (`values.rs`): integers, floats, booleans, text and
//! jsonb, numeric (its base-10000 digits in `numeric.rs`), and the dates,
//! times, timestamps, uuids and bytes a stream declares.

use super::values::{Checked, Kind, check};
use crate::format::flat::Raw;
use crate::format::infer::{CANONICAL_MAX, canonical_temporal};
use crate::format::logical::uuid_bytes;
use crate::format::temporal::{
    MICROS_PER_DAY, date_days, instant_micros, time_micros, timestamp_micros,
};

/// How a column's values are written in the COPY binary format: each
/// type's own binary form, which the server takes without parsing text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Binary {
    /// smallint: 2 bytes.
    Int2,
    /// integer: 4 bytes.
    Int4,
    /// bigint: 8 bytes.
    Int8,
    /// real: an IEEE single.
    Float4,
    /// double precision: an IEEE double.
    Float8,
    /// numeric: base-10000 digits.
    Numeric,
    /// boolean: one byte.
    Bool,
    /// text, varchar, bpchar, json: the UTF-8 bytes.
    Text,
    /// jsonb: a version byte, then the text.
    Jsonb,
    /// date: days since 2000-01-01, 4 bytes.
    Date,
    /// time: microseconds since midnight, 8 bytes.
    Time,
    /// timestamp: microseconds since 2000-01-01T00:00:00, 8 bytes.
    Timestamp,
    /// timestamptz: microseconds since 2000-01-01T00:00:00Z, 8 bytes.
    TimestampTz,
    /// uuid: 16 bytes.
    Uuid,
    /// bytea: the bytes.
    Bytea,
}

impl Binary {
    /// The binary form for a column of `kind` whose type is `type_name`
    /// (format_type), if etlkit writes one whatever the stream declares;
    /// other types (domains, extensions such as citext) go as text, and so
    /// do dates, times, uuids and bytea unless the stream declares the
    /// field so (`Table::declare`): text the server reads in other
    /// spellings (`Jan 2 2024`, `infinity`) has no binary form here.
    pub fn of(kind: Kind, type_name: &str) -> Option<Binary> {
        Some(match kind {
            Kind::Int(min, _) if min >= i64::from(i16::MIN) => Binary::Int2,
            Kind::Int(min, _) if min >= i64::from(i32::MIN) => Binary::Int4,
            Kind::Int(..) => Binary::Int8,
            Kind::Float if type_name == "real" => Binary::Float4,
            Kind::Float => Binary::Float8,
            Kind::Numeric => Binary::Numeric,
            Kind::Bool => Binary::Bool,
            Kind::Text if matches!(type_name, "name" | "citext") => return None,
            Kind::Text => Binary::Text,
            Kind::Json if type_name == "jsonb" => Binary::Jsonb,
            Kind::Json => Binary::Text,
            Kind::Date
            | Kind::Time
            | Kind::Timestamp
            | Kind::TimestampTz { .. }
            | Kind::Uuid
            | Kind::Bytea { .. }
            | Kind::Other => return None,
        })
    }
}

/// The signature, flags and header extension that open binary COPY data.
pub const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The field count of -1 that ends binary COPY data.
pub const BINARY_TRAILER: &[u8] = &[0xff, 0xff];

/// Appends one value (its length, then its bytes) for a column of `kind`
/// in the COPY binary format, or says why it does not fit.
pub fn binary_value(
    out: &mut Vec<u8>,
    kind: Kind,
    binary: Binary,
    type_name: &str,
    value: &Raw<'_>,
) -> Result<(), String> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let bad = |what: &str| format!("{} cannot be sent as {what}", value.describe());
    match check(kind, type_name, value)? {
        Checked::Null => {
            out.truncate(start);
            out.extend_from_slice(&(-1i32).to_be_bytes());
            return Ok(());
        }
        Checked::Number(n) => match binary {
            Binary::Int2 => {
                out.extend_from_slice(&n.parse::<i16>().map_err(|_| bad("int2"))?.to_be_bytes())
            }
            Binary::Int4 => {
                out.extend_from_slice(&n.parse::<i32>().map_err(|_| bad("int4"))?.to_be_bytes())
            }
            Binary::Int8 => {
                out.extend_from_slice(&n.parse::<i64>().map_err(|_| bad("int8"))?.to_be_bytes())
            }
            Binary::Float4 => {
                out.extend_from_slice(&n.parse::<f32>().map_err(|_| bad("real"))?.to_be_bytes())
            }
            Binary::Float8 => {
                out.extend_from_slice(&n.parse::<f64>().map_err(|_| bad("float8"))?.to_be_bytes())
            }
            Binary::Numeric => super::numeric::binary(out, n).ok_or_else(|| bad("numeric"))?,
            _ => return Err(bad(type_name)),
        },
        Checked::Bool(b) if binary == Binary::Bool => out.push(u8::from(b)),
        Checked::Bool(_) => return Err(bad(type_name)),
        Checked::Text(s) if binary == Binary::Numeric => {
            // ndigits, weight, sign (NaN, +inf, -inf), dscale.
            let sign: u16 = match s.as_ref() {
                "NaN" => 0xC000,
                "Infinity" => 0xD000,
                "-Infinity" => 0xF000,
                _ => return Err(bad("numeric")),
            };
            out.extend_from_slice(&[0, 0, 0, 0]);
            out.extend_from_slice(&sign.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
        }
        Checked::Text(s)
            if matches!(
                binary,
                Binary::Date
                    | Binary::Time
                    | Binary::Timestamp
                    | Binary::TimestampTz
                    | Binary::Uuid
            ) =>
        {
            logical_binary(out, binary, &s).map_err(|why| format!("{} {why}", value.describe()))?;
        }
        Checked::Text(s) => {
            if binary == Binary::Jsonb {
                out.push(1);
            }
            out.extend_from_slice(s.as_bytes());
        }
        Checked::Bytes(b) => out.extend_from_slice(&b),
    }
    let len = i32::try_from(out.len() - start - 4).map_err(|_| bad("one value (over 2 GB)"))?;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Microseconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_MICROS: i64 = 10_957 * MICROS_PER_DAY;

/// Appends a date, time, timestamp, instant or uuid in its binary COPY
/// form. The value is in the wire form (a space for the `T` and an offset
/// written `+05` allowed), else it is not one the declared type holds.
fn logical_binary(out: &mut Vec<u8>, binary: Binary, text: &str) -> Result<(), String> {
    let mut buf = [0u8; CANONICAL_MAX];
    let text = canonical_temporal(text, &mut buf);
    let not = |what: &str| format!("is not a {what} in ISO 8601 form, which its declared type is");
    match binary {
        Binary::Date => {
            let days = date_days(text).ok_or_else(|| not("date"))? - 10_957;
            let days = i32::try_from(days).map_err(|_| not("date"))?;
            out.extend_from_slice(&days.to_be_bytes());
        }
        Binary::Time => {
            out.extend_from_slice(&time_micros(text).ok_or_else(|| not("time"))?.to_be_bytes());
        }
        Binary::Timestamp => {
            let micros = timestamp_micros(text).ok_or_else(|| not("timestamp"))?;
            out.extend_from_slice(&(micros - PG_EPOCH_MICROS).to_be_bytes());
        }
        Binary::TimestampTz => {
            // Without an offset: in the session's zone, which is UTC when
            // this form is chosen (or such a value was refused already).
            let micros = instant_micros(text)
                .or_else(|| timestamp_micros(text))
                .ok_or_else(|| not("timestamp"))?;
            out.extend_from_slice(&(micros - PG_EPOCH_MICROS).to_be_bytes());
        }
        _ => out.extend_from_slice(&uuid_bytes(text).ok_or("is not a uuid")?),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_base64_value_is_empty_bytes() {
        let mut bin = Vec::new();
        let b64 = Kind::Bytea { base64: true };
        binary_value(&mut bin, b64, Binary::Text, "bytea", &Raw::Str("".into())).unwrap();
        assert_eq!(bin, 0i32.to_be_bytes());
    }
}
