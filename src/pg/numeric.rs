//! numeric's binary COPY form.

use crate::format::logical::DecimalParts;

/// Appends a number (JSON syntax, already checked to fit) in numeric's
/// binary form: base-10000 digits with a weight, a sign and the display
/// scale (the digits after the point as written: 12.50 keeps two).
pub fn binary(out: &mut Vec<u8>, n: &str) -> Option<()> {
    let DecimalParts {
        negative,
        int,
        frac,
        exponent,
    } = DecimalParts::of(n)?;
    let dscale = (frac.len() as i64 - exponent).max(0);
    let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
    // Where the decimal point falls in `digits`.
    let mut point = int.len() as i64 + exponent;
    let leading = digits.iter().take_while(|&&d| d == 0).count();
    digits.drain(..leading);
    point -= leading as i64;
    while digits.last() == Some(&0) {
        digits.pop();
    }
    let mut groups: Vec<i16> = Vec::new();
    let mut weight = 0i64;
    if !digits.is_empty() {
        // Pad in front so that the point falls on a group boundary.
        let pad = (4 - point.rem_euclid(4)) % 4;
        let mut padded = vec![0u8; pad as usize];
        padded.extend_from_slice(&digits);
        while !padded.len().is_multiple_of(4) {
            padded.push(0);
        }
        weight = (point + pad) / 4 - 1;
        groups = padded
            .chunks(4)
            .map(|g| g.iter().fold(0i16, |acc, &d| acc * 10 + i16::from(d)))
            .collect();
        while groups.last() == Some(&0) {
            groups.pop();
        }
    }
    let sign: u16 = if negative && !groups.is_empty() {
        0x4000
    } else {
        0
    };
    out.extend_from_slice(&i16::try_from(groups.len()).ok()?.to_be_bytes());
    out.extend_from_slice(&i16::try_from(weight).ok()?.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&i16::try_from(dscale).ok()?.to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::flat::Raw;
    use crate::pg::binary::{Binary, binary_value};
    use crate::pg::values::Kind;

    #[test]
    fn numeric_binary_form() {
        let form = |n: &str| {
            let mut out = Vec::new();
            binary(&mut out, n).unwrap();
            out.chunks(2)
                .map(|c| i16::from_be_bytes([c[0], c[1]]))
                .collect::<Vec<_>>()
        };
        // ndigits, weight, sign, dscale, digits...
        assert_eq!(form("12.50"), [2, 0, 0, 2, 12, 5000]);
        assert_eq!(form("-1.5e-3"), [1, -1, 0x4000, 4, 15]);
        assert_eq!(form("10000"), [1, 1, 0, 0, 1]);
        assert_eq!(
            form("123456789.000001"),
            [5, 2, 0, 6, 1, 2345, 6789, 0, 100]
        );
        assert_eq!(form("-0.00"), [0, 0, 0, 2]);
        assert_eq!(form("1e131071"), [1, 32767, 0, 0, 1000]);
        let mut out = Vec::new();
        binary_value(
            &mut out,
            Kind::Int(-32768, 32767),
            Binary::Int2,
            "smallint",
            &Raw::Number("-2".into()),
        )
        .unwrap();
        assert_eq!(out, [0, 0, 0, 2, 0xff, 0xfe]);
        out.clear();
        binary_value(
            &mut out,
            Kind::Json,
            Binary::Jsonb,
            "jsonb",
            &Raw::Str("x".into()),
        )
        .unwrap();
        assert_eq!(out, b"\0\0\0\x04\x01\"x\"");
        out.clear();
        binary_value(&mut out, Kind::Text, Binary::Text, "text", &Raw::Null).unwrap();
        assert_eq!(out, (-1i32).to_be_bytes());
        out.clear();
        let nan = Raw::Str("NaN".into());
        binary_value(&mut out, Kind::Numeric, Binary::Numeric, "numeric", &nan).unwrap();
        assert_eq!(out, [0, 0, 0, 8, 0, 0, 0, 0, 0xC0, 0, 0, 0]);
        let inf = Raw::Str("Infinity".into());
        assert!(
            binary_value(
                &mut out,
                Kind::Numeric,
                Binary::Numeric,
                "numeric(5,2)",
                &inf
            )
            .is_err()
        );
        assert!(binary_value(&mut out, Kind::Numeric, Binary::Numeric, "numeric", &inf).is_ok());
    }
}
