//! The values of change records from PostgreSQL's replication stream:
//! pgoutput sends each value in its type's text form (the session is in
//! UTC, with ISO dates and hex bytea), and a record carries it in the wire
//! form `etl-extract postgres://` gives (numbers as numbers, instants in
//! UTC, bytea as base64, json compact, arrays as JSON).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::format::infer::{CANONICAL_MAX, canonical_temporal};
use crate::format::json;
use crate::format::logical::decode_hex;
use crate::format::temporal;
use crate::record::FieldType;

/// The wire type of a column of type `oid`, as `etl-extract postgres://`
/// gives it (arrays are json).
pub fn column_type(oid: u32, typmod: i32) -> Option<FieldType> {
    postgres::types::Type::from_oid(oid).and_then(|t| super::source::wire_type_of(&t, typmod))
}

/// One element of an array's text form.
enum Element {
    Null,
    Text(String),
    List(Vec<Element>),
}

/// Reads PostgreSQL's array text form (`{1,2}`, `{"a b",NULL}`,
/// `{{1,2},{3,4}}`, `[0:1]={1,2}`); `None` when it is not one.
fn parse_array(text: &str) -> Option<Element> {
    let body = match text.find('=') {
        Some(i) if text.starts_with('[') => &text[i + 1..],
        _ => text,
    };
    let mut chars = body.chars().peekable();
    let list = array_list(&mut chars)?;
    chars.next().is_none().then_some(list)
}

fn array_list(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<Element> {
    if chars.next()? != '{' {
        return None;
    }
    let mut items = Vec::new();
    if chars.peek() == Some(&'}') {
        chars.next();
        return Some(Element::List(items));
    }
    loop {
        let item = match chars.peek()? {
            '{' => array_list(chars)?,
            '"' => {
                chars.next();
                let mut text = String::new();
                loop {
                    match chars.next()? {
                        '\\' => text.push(chars.next()?),
                        '"' => break,
                        c => text.push(c),
                    }
                }
                Element::Text(text)
            }
            _ => {
                let mut text = String::new();
                while let Some(&c) = chars.peek() {
                    if c == ',' || c == '}' {
                        break;
                    }
                    text.push(c);
                    chars.next();
                }
                let text = text.trim().to_string();
                if text.eq_ignore_ascii_case("NULL") {
                    Element::Null
                } else {
                    Element::Text(text)
                }
            }
        };
        items.push(item);
        match chars.next()? {
            ',' => continue,
            '}' => return Some(Element::List(items)),
            _ => return None,
        }
    }
}

/// An array as JSON, each element in its wire form.
fn write_array(out: &mut Vec<u8>, element_oid: u32, element: &Element) {
    match element {
        Element::Null => out.extend_from_slice(b"null"),
        Element::Text(text) => write_value(out, element_oid, text.as_bytes()),
        Element::List(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_array(out, element_oid, item);
            }
            out.push(b']');
        }
    }
}

/// One value in its wire form from its text form (the session is in UTC,
/// ISO dates, hex bytea).
pub(super) fn write_value(out: &mut Vec<u8>, oid: u32, text: &[u8]) {
    use postgres::types::Type;
    let s = String::from_utf8_lossy(text);
    let t = Type::from_oid(oid);
    // An array: JSON, as a full copy gives it.
    if let Some(postgres::types::Kind::Array(element)) = t.as_ref().map(|t| t.kind())
        && let Some(array) = parse_array(&s)
    {
        write_array(out, element.oid(), &array);
        return;
    }
    let number = |out: &mut Vec<u8>| {
        // NaN and the infinities have no JSON number: they go as text.
        if s.bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
        {
            out.extend_from_slice(s.as_bytes());
        } else {
            json::write_str(out, &s);
        }
    };
    match t {
        Some(Type::INT2 | Type::INT4 | Type::INT8 | Type::OID) => number(out),
        Some(Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC) => number(out),
        Some(Type::BOOL) => out.extend_from_slice(if &*s == "t" { b"true" } else { b"false" }),
        Some(Type::JSON | Type::JSONB) => json::write_compact(out, text),
        Some(Type::BYTEA) => match decode_hex(&s) {
            Some(bytes) => json::write_str(out, &BASE64.encode(bytes)),
            None => json::write_str(out, &s),
        },
        Some(Type::DATE) => json::write_str(out, &s),
        Some(Type::TIME) => json::write_str(out, &s),
        Some(Type::TIMESTAMP) => {
            let mut buf = [0u8; CANONICAL_MAX];
            let wire = canonical_temporal(&s, &mut buf);
            let iso = temporal::timestamp_micros(wire).and_then(temporal::format_timestamp);
            json::write_str(out, iso.as_deref().unwrap_or(&s))
        }
        Some(Type::TIMESTAMPTZ) => {
            let mut buf = [0u8; CANONICAL_MAX];
            let wire = canonical_temporal(&s, &mut buf);
            let iso = temporal::instant_micros(wire).and_then(temporal::format_instant);
            json::write_str(out, iso.as_deref().unwrap_or(&s))
        }
        _ => json::write_str(out, &s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_are_json_with_their_elements_in_wire_form() {
        let json = |oid: u32, text: &str| {
            let mut out = Vec::new();
            write_value(&mut out, oid, text.as_bytes());
            String::from_utf8(out).unwrap()
        };
        // int4[], text[], numeric[], timestamptz[], bool[].
        assert_eq!(json(1007, "{1,2,NULL}"), "[1,2,null]");
        assert_eq!(json(1007, "{{1,2},{3,4}}"), "[[1,2],[3,4]]");
        assert_eq!(
            json(1009, r#"{"a b","q\"x",NULL,"NULL",plain}"#),
            r#"["a b","q\"x",null,"NULL","plain"]"#
        );
        assert_eq!(json(1231, "{12.50,NaN}"), r#"[12.50,"NaN"]"#);
        assert_eq!(
            json(1185, r#"{"2024-01-02 03:04:05.5+00"}"#),
            r#"["2024-01-02T03:04:05.5+00:00"]"#
        );
        assert_eq!(json(1000, "{t,f}"), "[true,false]");
        assert_eq!(json(1007, "{}"), "[]");
        assert_eq!(json(1007, "[0:1]={7,8}"), "[7,8]");
    }
}
