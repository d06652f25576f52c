//! Unit tests of `values.rs`.
use super::*;

fn lit(kind: &Kind, value: Raw<'_>) -> Result<String, String> {
    let mut out = String::new();
    push_value(&mut out, kind, "x", &value).map(|()| out)
}

fn num(s: &str) -> Raw<'_> {
    Raw::Number(s.into())
}

fn text(s: &str) -> Raw<'_> {
    Raw::Str(s.into())
}

#[test]
fn integers_by_range() {
    let unsigned = Kind::from_info(&ColumnInfo {
        data_type: "bigint".into(),
        column_type: "bigint(20) unsigned".into(),
        ..Default::default()
    });
    assert_eq!(
        lit(&unsigned, num("18446744073709551615")).unwrap(),
        "18446744073709551615"
    );
    assert!(lit(&unsigned, num("18446744073709551616")).is_err());
    assert!(lit(&unsigned, num("-1")).is_err());
    assert_eq!(
        lit(&unsigned, text("18446744073709551615")).unwrap(),
        "18446744073709551615"
    );
    assert!(lit(&unsigned, text("00501")).is_err());
    assert!(lit(&unsigned, num("1.5")).is_err());
}

#[test]
fn decimals_keep_every_digit() {
    let d = Kind::Decimal {
        precision: 10,
        scale: 2,
        unsigned: false,
    };
    assert_eq!(lit(&d, text("12.50")).unwrap(), "12.50");
    assert_eq!(lit(&d, num("-12.5")).unwrap(), "-12.5");
    assert!(lit(&d, num("1.234")).is_err());
    assert!(lit(&d, num("123456789.1")).is_err());
    assert!(lit(&d, num("1e2")).is_err());
    assert!(lit(&d, text("n/a")).is_err());
}

#[test]
fn strings_and_bytes() {
    assert_eq!(lit(&Kind::Text(None), text("it's")).unwrap(), "'it''s'");
    assert_eq!(lit(&Kind::Text(None), text("a\\b")).unwrap(), "'a\\b'");
    assert!(lit(&Kind::Text(Some(3)), text("東京都x")).is_err());
    assert_eq!(
        lit(&Kind::Text(Some(3)), text("東京都")).unwrap(),
        "'東京都'"
    );
    assert_eq!(
        lit(&Kind::Binary(None, false), text("\\x00ff")).unwrap(),
        "X'00ff'"
    );
    assert_eq!(
        lit(&Kind::Binary(None, false), text("ab")).unwrap(),
        "X'6162'"
    );
    assert_eq!(lit(&Kind::Json, text("x")).unwrap(), "'\"x\"'");
    assert_eq!(
        lit(&Kind::Text(None), text("a\0b")).unwrap(),
        "_utf8mb4 X'610062'"
    );
}

#[test]
fn dates_and_times() {
    assert!(lit(&Kind::Date, text("2026-02-29")).is_err());
    assert!(lit(&Kind::Date, text("0000-00-00")).is_err());
    assert_eq!(
        lit(&Kind::Date, text("2024-02-29")).unwrap(),
        "'2024-02-29'"
    );
    assert_eq!(
        lit(&Kind::DateTime(0, false), text("2026-11-01T09:15:00")).unwrap(),
        "'2026-11-01 09:15:00'"
    );
    assert!(lit(&Kind::DateTime(0, false), text("2026-11-01T09:15:00.5")).is_err());
    assert!(lit(&Kind::DateTime(6, false), text("2026-11-01T09:15:00Z")).is_err());
    assert_eq!(
        lit(&Kind::Timestamp(3), text("2026-11-01T09:15:00.250Z")).unwrap(),
        "'2026-11-01 09:15:00.250'"
    );
    assert_eq!(
        lit(&Kind::Timestamp(0), text("2026-11-01T09:15:00+02:00")).unwrap(),
        "'2026-11-01 07:15:00'"
    );
    assert_eq!(
        lit(
            &Kind::DateTime(6, true),
            text("2024-01-02T03:04:05.123456+05:30")
        )
        .unwrap(),
        "'2024-01-01 21:34:05.123456'"
    );
    assert!(lit(&Kind::DateTime(6, true), text("0001-01-01T00:00:00+01:00")).is_err());
    assert_eq!(
        lit(&Kind::Time(6), text("-12:30:00")).unwrap(),
        "'-12:30:00'"
    );
    assert!(lit(&Kind::Time(0), text("24:00:00.5")).is_err());
    assert_eq!(
        lit(&Kind::Binary(None, true), text("3q2+7w==")).unwrap(),
        "X'deadbeef'"
    );
    assert_eq!(lit(&Kind::Binary(None, true), text("")).unwrap(), "''");
    assert!(lit(&Kind::Binary(None, true), text("\\x00")).is_err());
    assert!(lit(&Kind::Uuid, text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")).is_ok());
    assert!(lit(&Kind::Uuid, text("a0eebc99")).is_err());
    assert!(lit(&Kind::Timestamp(0), text("1960-01-01 00:00:00")).is_err());
}

#[test]
fn years_keep_the_year_zero() {
    assert_eq!(lit(&Kind::Year, num("0")).unwrap(), "'0000'");
    assert_eq!(lit(&Kind::Year, text("0000")).unwrap(), "'0000'");
    assert_eq!(lit(&Kind::Year, num("2024")).unwrap(), "2024");
    assert_eq!(lit(&Kind::Year, text("1901")).unwrap(), "1901");
    assert!(lit(&Kind::Year, num("99")).is_err());
    assert!(lit(&Kind::Year, num("2156")).is_err());
    assert!(lit(&Kind::Year, text("00")).is_err());
}

#[test]
fn booleans_and_floats() {
    assert_eq!(lit(&Kind::Bit(1), Raw::Bool(true)).unwrap(), "b'1'");
    assert!(lit(&Kind::Bit(1), num("2")).is_err());
    let float = Kind::Float {
        single: true,
        unsigned: false,
        digits: None,
    };
    let double = Kind::of(FieldType::Float);
    assert!(lit(&float, num("16777217")).is_err());
    assert_eq!(lit(&float, num("0.1")).unwrap(), "1.0000000149011612e-1");
    assert_eq!(lit(&double, num("0.1")).unwrap(), "1e-1");
    // The largest FLOAT, as an extract writes it, goes back as its
    // exact value; past it is a reject.
    assert_eq!(
        lit(&float, num("3.4028235e38")).unwrap(),
        "3.4028234663852886e38"
    );
    assert!(lit(&float, num("3.5e38")).is_err());
    let unsigned = Kind::Float {
        single: true,
        unsigned: true,
        digits: None,
    };
    assert!(lit(&unsigned, num("-1")).is_err());
    assert_eq!(lit(&unsigned, num("0")).unwrap(), "0e0");
    let scaled = Kind::Float {
        single: false,
        unsigned: false,
        digits: Some((7, 4)),
    };
    assert_eq!(lit(&scaled, num("999.9999")).unwrap(), "9.999999e2");
    assert!(lit(&scaled, num("1000")).is_err());
    assert!(lit(&scaled, num("1.23456")).is_err());
    let written_out = format!("1{}.0", "0".repeat(300));
    assert_eq!(lit(&double, num(&written_out)).unwrap(), "1e300");
    assert!(lit(&Kind::of(FieldType::Integer), Raw::Bool(true)).is_err());
}

/// A value as a field of LOAD DATA's text, after its tab.
fn field(kind: &Kind, value: Raw<'_>) -> Result<String, String> {
    let mut out = TabText::default();
    out.separator();
    push_value(&mut out, kind, "x", &value)?;
    Ok(String::from_utf8(out.0).expect("utf-8"))
}

#[test]
fn load_data_fields_escape_what_its_text_would_misread() {
    let text = Kind::Text(None);
    let s = |t: &'static str| Raw::Str(t.into());
    assert_eq!(
        field(&text, s("a\tb\nc\\d\re")).unwrap(),
        "\ta\\tb\\nc\\\\d\\re"
    );
    assert_eq!(field(&text, s("\\N")).unwrap(), "\t\\\\N");
    assert_eq!(field(&text, s("nul\0")).unwrap(), "\tnul\\0");
    assert_eq!(field(&text, s("")).unwrap(), "\t");
    assert_eq!(field(&text, Raw::Null).unwrap(), "\t\\N");
    // Bytes as hex digits and BIT(1) as a digit: the statement converts.
    let bytes = Kind::Binary(None, false);
    assert_eq!(field(&bytes, s("\\x00ff")).unwrap(), "\t00ff");
    assert_eq!(field(&Kind::Bit(1), Raw::Bool(true)).unwrap(), "\t1");
    // YEAR 0 is the text 0000 (the number 0 would be 2000).
    assert_eq!(field(&Kind::Year, num("0")).unwrap(), "\t0000");
    // The checks are the SQL literal's.
    assert!(field(&Kind::Text(Some(2)), s("abc")).is_err());
}
