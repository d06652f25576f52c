//! Unit tests of `values.rs`.
use super::*;

#[test]
fn dates_and_times() {
    assert_eq!(date_text(0), "1970-01-01");
    assert_eq!(date_text(20_393), "2025-11-01");
    assert_eq!(date_text(-1), "1969-12-31");
    assert_eq!(time_text(3_723_000_500, Unit::Micros), "01:02:03.0005");
    assert_eq!(
        time_text(3_723_000_000_001, Unit::Nanos),
        "01:02:03.000000001"
    );
    assert_eq!(
        timestamp_text(1_762_074_000_000_000, Unit::Micros, true),
        "2025-11-02T09:00:00+00:00"
    );
    assert_eq!(
        timestamp_text(1_762_074_000_123_000, Unit::Micros, false),
        "2025-11-02T09:00:00.123"
    );
    assert_eq!(
        timestamp_text(-1, Unit::Nanos, true),
        "1969-12-31T23:59:59.999999999+00:00"
    );
    assert_eq!(
        timestamp_text(i128::from(i64::MIN), Unit::Nanos, false),
        "1677-09-21T00:12:43.145224192"
    );
}

#[test]
fn durations_keep_every_digit() {
    assert_eq!(duration_text(1_500_000_001, Unit::Nanos), "PT1.500000001S");
    assert_eq!(duration_text(-1, Unit::Nanos), "PT-0.000000001S");
    assert_eq!(duration_text(0, Unit::Micros), "PT0S");
    assert_eq!(duration_text(-1_500, Unit::Millis), "PT-1.5S");
    assert_eq!(duration_text(3_600, Unit::Seconds), "PT3600S");
    assert_eq!(
        duration_text(i64::MIN, Unit::Seconds),
        "PT-9223372036854775808S"
    );
}

#[test]
fn decimals_of_every_width_are_exact_json_numbers() {
    use parquet::data_type::{ByteArray, Decimal};
    let text = |d: Decimal| {
        let mut out = Vec::new();
        write_leaf(&mut out, &Field::Decimal(d), Leaf::Plain, false).unwrap();
        String::from_utf8(out).unwrap()
    };
    assert_eq!(text(Decimal::from_i32(-1, 4, 1)), "-0.1");
    assert_eq!(text(Decimal::from_i64(12_500, 18, 3)), "12.500");
    assert_eq!(text(Decimal::from_i32(7, 9, 0)), "7");
    // BYTE_ARRAY and FIXED_LEN_BYTE_ARRAY: big-endian two's complement.
    let bytes = ByteArray::from(vec![0xff, 0x0b]);
    assert_eq!(text(Decimal::from_bytes(bytes, 5, 2)), "-2.45");
    let max = 10i128.pow(38) - 1;
    let bytes = ByteArray::from(max.to_be_bytes().to_vec());
    assert_eq!(
        text(Decimal::from_bytes(bytes, 38, 10)),
        "9999999999999999999999999999.9999999999"
    );
}

#[test]
fn bytes_and_uuids_and_out_of_range_dates() {
    use parquet::data_type::ByteArray;
    let leaf = |f: Field, l: Leaf| {
        let mut out = Vec::new();
        write_leaf(&mut out, &f, l, false).map(|()| String::from_utf8(out).unwrap())
    };
    let b = |v: Vec<u8>| Field::Bytes(ByteArray::from(v));
    assert_eq!(leaf(b(vec![0, 1, 0xff]), Leaf::Bytes).unwrap(), "\"AAH/\"");
    assert_eq!(leaf(b(vec![]), Leaf::Bytes).unwrap(), "\"\"");
    assert_eq!(
        leaf(b(vec![0; 16]), Leaf::Uuid).unwrap(),
        "\"00000000-0000-0000-0000-000000000000\""
    );
    assert!(leaf(Field::Date(2_932_897), Leaf::Plain).is_err());
    assert!(leaf(Field::Date(-719_163), Leaf::Plain).is_err());
    assert!(leaf(Field::Date(-719_162), Leaf::Plain).is_ok());
    assert!(leaf(Field::TimeMillis(86_400_000), Leaf::Plain).is_err());
}

#[test]
fn int96_is_julian_day_and_nanoseconds() {
    let mut bytes = 1_i64.to_le_bytes().to_vec();
    bytes.extend_from_slice(&2_440_588_i32.to_le_bytes());
    assert_eq!(int96_nanos(&bytes), Some(1));
    assert_eq!(int96_nanos(&bytes[..11]), None);
}

#[test]
fn json_text_is_checked_and_compacted_at_any_depth() {
    assert_eq!(
        json_value(b" { \"a b\" : [ 1.50 ,\n\"x\\\" y\" ] } ").as_deref(),
        Ok(r#"{"a b":[1.50,"x\" y"]}"#)
    );
    let deep = format!("{}1{}", "[ ".repeat(500), "]\n".repeat(500));
    assert_eq!(
        json_value(deep.as_bytes()),
        Ok(format!("{}1{}", "[".repeat(500), "]".repeat(500)))
    );
    assert!(json_value(b"{\"a\":").is_err());
    assert!(json_value(b"\"raw\nnewline\"").is_err());
    assert!(json_value(b"[1] [2]").is_err());
}
