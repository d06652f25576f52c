//! The Arrow schema that Arrow's writers (pyarrow, polars, arrow-rs) keep
//! in a Parquet file's footer under `ARROW:schema`. Parquet has no duration
//! type: a duration column is a plain INT64 whose unit only this schema
//! names, so the reader looks here to tell a duration from an integer.
//!
//! The value is a base64-encoded Arrow IPC message holding a flatbuffer;
//! only the few tables needed to find each field's name, its type's tag,
//! a duration's unit and its children are read. Every offset is checked:
//! a schema that does not read is no schema (the columns keep their
//! Parquet types).

use base64::Engine as _;

/// A time unit, as Arrow and Parquet name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Whole seconds.
    Seconds,
    /// Milliseconds.
    Millis,
    /// Microseconds.
    Micros,
    /// Nanoseconds.
    Nanos,
}

impl Unit {
    /// Digits after the decimal point of a second.
    pub fn digits(self) -> u32 {
        match self {
            Unit::Seconds => 0,
            Unit::Millis => 3,
            Unit::Micros => 6,
            Unit::Nanos => 9,
        }
    }
}

/// One field of the Arrow schema: its name, its unit when it is a
/// duration, and its children (a struct's fields, a list's item, a map's
/// entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrowField {
    /// The field's name.
    pub name: String,
    /// The unit of a duration field.
    pub duration: Option<Unit>,
    /// Child fields, in order.
    pub children: Vec<ArrowField>,
}

/// Arrow's `Type` union tag of `Duration`.
const DURATION: u8 = 18;
/// Arrow's `MessageHeader` union tag of `Schema`.
const SCHEMA: u8 = 1;
/// Children deeper than this are not read (no real schema comes near).
const MAX_DEPTH: usize = 64;

/// The top-level fields of a base64 `ARROW:schema` value; `None` when it
/// does not read as one.
pub fn fields(base64_text: &str) -> Option<Vec<ArrowField>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64_text.trim())
        .ok()?;
    // An IPC message: an optional continuation marker, the flatbuffer's
    // length, then the flatbuffer.
    let mut rest = bytes.as_slice();
    if rest.get(..4)? == [0xff; 4] {
        rest = &rest[4..];
    }
    let len = usize::try_from(u32::from_le_bytes(rest.get(..4)?.try_into().ok()?)).ok()?;
    let buf = Buf(rest.get(4..4 + len)?);
    let message = buf.root()?;
    if buf.scalar_u8(message, 1)? != SCHEMA {
        return None;
    }
    let schema = buf.table_field(message, 2)?;
    buf.table_vector(schema, 1)?
        .into_iter()
        .map(|field| read_field(&buf, field, 0))
        .collect()
}

fn read_field(buf: &Buf<'_>, table: usize, depth: usize) -> Option<ArrowField> {
    if depth > MAX_DEPTH {
        return None;
    }
    let name = match buf.field_pos(table, 0)? {
        Some(_) => buf.string(table, 0)?,
        None => String::new(),
    };
    let duration = if buf.scalar_u8(table, 2)? == DURATION {
        // Duration { unit: TimeUnit = MILLISECOND }
        let unit = match buf.table_field(table, 3) {
            Some(t) => buf.scalar_i16(t, 0)?.unwrap_or(1),
            None => 1,
        };
        Some(match unit {
            0 => Unit::Seconds,
            1 => Unit::Millis,
            2 => Unit::Micros,
            3 => Unit::Nanos,
            _ => return None,
        })
    } else {
        None
    };
    let children = match buf.field_pos(table, 5)? {
        Some(_) => buf
            .table_vector(table, 5)?
            .into_iter()
            .map(|child| read_field(buf, child, depth + 1))
            .collect::<Option<Vec<_>>>()?,
        None => Vec::new(),
    };
    Some(ArrowField {
        name,
        duration,
        children,
    })
}

/// A flatbuffer, read with every offset checked.
struct Buf<'a>(&'a [u8]);

impl Buf<'_> {
    fn u32_at(&self, pos: usize) -> Option<u32> {
        Some(u32::from_le_bytes(
            self.0.get(pos..pos.checked_add(4)?)?.try_into().ok()?,
        ))
    }

    fn u16_at(&self, pos: usize) -> Option<u16> {
        Some(u16::from_le_bytes(
            self.0.get(pos..pos.checked_add(2)?)?.try_into().ok()?,
        ))
    }

    /// Follows the offset stored at `pos` (offsets count from where they
    /// are stored).
    fn follow(&self, pos: usize) -> Option<usize> {
        pos.checked_add(usize::try_from(self.u32_at(pos)?).ok()?)
    }

    fn root(&self) -> Option<usize> {
        self.follow(0)
    }

    /// Where field `index` of the table at `table` is stored; `Some(None)`
    /// when the table leaves it out (its default applies).
    fn field_pos(&self, table: usize, index: usize) -> Option<Option<usize>> {
        let back = i64::from(self.u32_at(table)? as i32);
        let vtable = usize::try_from(i64::try_from(table).ok()? - back).ok()?;
        let vtable_len = usize::from(self.u16_at(vtable)?);
        let slot = 4 + 2 * index;
        if slot + 2 > vtable_len {
            return Some(None);
        }
        match self.u16_at(vtable + slot)? {
            0 => Some(None),
            offset => Some(Some(table + usize::from(offset))),
        }
    }

    fn scalar_u8(&self, table: usize, index: usize) -> Option<u8> {
        match self.field_pos(table, index)? {
            Some(pos) => self.0.get(pos).copied(),
            None => Some(0),
        }
    }

    fn scalar_i16(&self, table: usize, index: usize) -> Option<Option<i16>> {
        match self.field_pos(table, index)? {
            Some(pos) => Some(Some(self.u16_at(pos)? as i16)),
            None => Some(None),
        }
    }

    fn table_field(&self, table: usize, index: usize) -> Option<usize> {
        self.follow(self.field_pos(table, index)??)
    }

    fn string(&self, table: usize, index: usize) -> Option<String> {
        let at = self.table_field(table, index)?;
        let len = usize::try_from(self.u32_at(at)?).ok()?;
        let bytes = self.0.get(at + 4..(at + 4).checked_add(len)?)?;
        String::from_utf8(bytes.to_vec()).ok()
    }

    /// The tables of a vector of tables.
    fn table_vector(&self, table: usize, index: usize) -> Option<Vec<usize>> {
        let at = self.table_field(table, index)?;
        let len = usize::try_from(self.u32_at(at)?).ok()?;
        if len > self.0.len() / 4 {
            return None;
        }
        (0..len).map(|i| self.follow(at + 4 + 4 * i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_no_schema() {
        assert_eq!(fields("not base64!"), None);
        assert_eq!(fields(""), None);
        assert_eq!(fields("/////wAAAAA="), None);
        assert_eq!(fields("/////xAAAAAQAAAAAAAAAAAAAAA="), None);
    }
}
