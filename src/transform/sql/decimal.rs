//! Decimal columns for `--sql`: wire decimals (JSON numbers, digit for
//! digit) as polars' Decimal, exact, with the declared precision and scale
//! when the values fit them.

use polars::prelude::*;

use crate::format::logical::{DecimalParts, check_decimal};

/// polars' widest decimal.
const MAX_PRECISION: i64 = 38;

/// A number's digits after the point that are not trailing zeros, and
/// before it that are not leading zeros; `None` for what is no number.
fn digits_needed(n: &str) -> Option<(i64, i64)> {
    check_decimal(n, None).ok()?;
    let parts = DecimalParts::of(n).filter(|p| p.exponent.abs() <= 1000)?;
    let all = format!("{}{}", parts.int, parts.frac);
    let significant = all.trim_start_matches('0');
    if significant.is_empty() {
        return Some((0, 0));
    }
    let point = parts.int.len() as i64 + parts.exponent;
    let leading = (all.len() - significant.len()) as i64;
    let kept = significant.trim_end_matches('0').len() as i64;
    let int = (point - leading).max(0);
    let scale = (leading + kept - point).max(0);
    Some((int, scale))
}

/// A number's value times ten to the `scale` (which holds all its digits).
fn scaled(n: &str, scale: i64) -> Option<i128> {
    let parts = DecimalParts::of(n)?;
    let mut value: i128 = 0;
    for d in parts.int.bytes().chain(parts.frac.bytes()) {
        value = value.checked_mul(10)?.checked_add(i128::from(d - b'0'))?;
    }
    let shift = parts.exponent - parts.frac.len() as i64 + scale;
    if shift >= 0 {
        value = value.checked_mul(10i128.checked_pow(u32::try_from(shift).ok()?)?)?;
    } else {
        // Only zeros fall off (the scale holds every digit).
        value /= 10i128.checked_pow(u32::try_from(-shift).ok()?)?;
    }
    Some(if parts.negative { -value } else { value })
}

/// A decimal column: with the declared precision and scale when every
/// value fits them, else as wide as the values need (up to 38 digits);
/// `None` when a value is no number or needs more.
pub fn decimal_column(
    declared: Option<(u16, u16)>,
    texts: &StringChunked,
    name: PlSmallStr,
) -> Option<Column> {
    let needed = all(texts, digits_needed)?;
    let (int, scale) = needed
        .iter()
        .flatten()
        .fold((0, 0), |(i, s), (vi, vs)| (i.max(*vi), s.max(*vs)));
    let (precision, scale) = match declared {
        Some((p, s)) if scale <= i64::from(s) && int <= i64::from(p) - i64::from(s) => {
            (i64::from(p), i64::from(s))
        }
        _ => {
            let scale = scale.max(declared.map_or(0, |(_, s)| i64::from(s)));
            (MAX_PRECISION, scale)
        }
    };
    if int + scale > MAX_PRECISION {
        return None;
    }
    let values = all(texts, |s| scaled(s, scale))?;
    Series::new(name, values)
        .into_decimal(precision as usize, scale as usize)
        .ok()
        .map(Series::into_column)
}

/// Each value read by `read`, or `None` when one does not read.
pub(super) fn all<T>(
    texts: &StringChunked,
    read: impl Fn(&str) -> Option<T>,
) -> Option<Vec<Option<T>>> {
    texts
        .iter()
        .map(|v| match v {
            None => Some(None),
            Some(s) => read(s).map(Some),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_scale_exactly() {
        assert_eq!(scaled("1.5e2", 1), Some(1500));
        assert_eq!(scaled("-0.05", 2), Some(-5));
        assert_eq!(digits_needed("123.2500"), Some((3, 2)));
        assert_eq!(digits_needed("0.00"), Some((0, 0)));
        assert_eq!(digits_needed("1e3"), Some((4, 0)));
    }
}
