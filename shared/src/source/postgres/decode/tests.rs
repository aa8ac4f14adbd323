#![allow(clippy::unwrap_used)]

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int32Type, Schema};

use super::*;

fn numeric(sign: u16, weight: i16, dscale: u16, digits: &[u16]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(digits.len() as i16).to_be_bytes());
    v.extend_from_slice(&weight.to_be_bytes());
    v.extend_from_slice(&sign.to_be_bytes());
    v.extend_from_slice(&dscale.to_be_bytes());
    for d in digits {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v
}

fn text(v: &[u8]) -> String {
    let mut s = String::new();
    Numeric::parse(v).unwrap().write_text(&mut s).unwrap();
    s
}

#[test]
fn numerics_as_text_and_decimal() {
    // 12345.6789: digits [1, 2345, 6789], weight 1, dscale 4
    let v = numeric(0, 1, 4, &[1, 2345, 6789]);
    assert_eq!(text(&v), "12345.6789");
    assert_eq!(Numeric::parse(&v).unwrap().to_i128(4).unwrap(), 123_456_789);
    assert_eq!(Numeric::parse(&v).unwrap().to_i128(6).unwrap(), 12_345_678_900);
    assert!(Numeric::parse(&v).unwrap().to_i128(2).unwrap_err().contains("more than 2 digits"));
    // -0.0012 with dscale 6: digits [12], weight -1
    let v = numeric(NUMERIC_NEG, -1, 6, &[12]);
    assert_eq!(text(&v), "-0.001200");
    assert_eq!(Numeric::parse(&v).unwrap().to_i128(4).unwrap(), -12);
    // 0.00000001: digits [1], weight -2, dscale 8
    let v = numeric(0, -2, 8, &[1]);
    assert_eq!(text(&v), "0.00000001");
    // 10000000 (weight 1, digits [1000]? no: 1000|0000 stripped to [1000], weight 1)
    let v = numeric(0, 1, 0, &[1000]);
    assert_eq!(text(&v), "10000000");
    assert_eq!(Numeric::parse(&v).unwrap().to_i128(2).unwrap(), 1_000_000_000);
    // zero
    let v = numeric(0, 0, 2, &[]);
    assert_eq!(text(&v), "0.00");
    assert_eq!(Numeric::parse(&v).unwrap().to_i128(2).unwrap(), 0);
    assert_eq!(text(&numeric(NUMERIC_NAN, 0, 0, &[])), "NaN");
    assert_eq!(text(&numeric(NUMERIC_PINF, 0, 0, &[])), "Infinity");
    assert_eq!(text(&numeric(NUMERIC_NINF, 0, 0, &[])), "-Infinity");
    assert!(Numeric::parse(&numeric(NUMERIC_NAN, 0, 0, &[])).unwrap().to_i128(2).unwrap_err().contains("NaN"));
    // 38 nines fit, 39 do not.
    let nines = |n: usize| {
        let s = "9".repeat(n);
        let first = n % 4;
        let mut digits = Vec::new();
        if first > 0 {
            digits.push(s[..first].parse::<u16>().unwrap());
        }
        for chunk in s.as_bytes()[first..].chunks(4) {
            digits.push(std::str::from_utf8(chunk).unwrap().parse::<u16>().unwrap());
        }
        numeric(0, (digits.len() - 1) as i16, 0, &digits)
    };
    assert_eq!(Numeric::parse(&nines(38)).unwrap().to_i128(0).unwrap(), 10i128.pow(38) - 1);
    assert!(Numeric::parse(&nines(39)).unwrap().to_i128(0).is_err());
    assert!(Numeric::parse(&[0, 1]).is_err());
}

/// A decimal (`value` x 10^-`scale`) in PostgreSQL's binary form, as `numeric_send`
/// writes it: leading and trailing zero groups stripped.
fn encode_numeric(value: i128, scale: u16) -> Vec<u8> {
    let digits = value.unsigned_abs().to_string();
    let digits = format!("{digits:0>width$}", width = usize::from(scale) + 1);
    let (int, frac) = digits.split_at(digits.len() - usize::from(scale));
    let int = format!("{int:0>width$}", width = int.len().div_ceil(4) * 4);
    let frac = format!("{frac:0<width$}", width = frac.len().div_ceil(4) * 4);
    let mut groups: Vec<u16> = int
        .as_bytes()
        .chunks(4)
        .chain(frac.as_bytes().chunks(4))
        .map(|c| std::str::from_utf8(c).unwrap().parse().unwrap())
        .collect();
    let mut weight = (int.len() / 4) as i16 - 1;
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    numeric(if value < 0 { NUMERIC_NEG } else { 0 }, weight, scale, &groups)
}

proptest::proptest! {
    #[test]
    fn decimals_round_trip_through_the_binary_form(
        value in -(10i128.pow(38) - 1)..10i128.pow(38),
        scale in 0u16..=38,
    ) {
        let binary = encode_numeric(value, scale);
        let n = Numeric::parse(&binary).unwrap();
        proptest::prop_assert_eq!(n.to_i128(scale as i8).unwrap(), value);
        let mut text = String::new();
        n.write_text(&mut text).unwrap();
        let array = arrow::array::Decimal128Array::from(vec![value]).with_precision_and_scale(38, scale as i8).unwrap();
        proptest::prop_assert_eq!(text, array.value_as_string(0));
    }
}

#[test]
fn wide_decimals_with_a_fraction_fit() {
    let v = encode_numeric(10i128.pow(38) - 1, 10);
    assert_eq!(Numeric::parse(&v).unwrap().to_i128(10).unwrap(), 10i128.pow(38) - 1);
    assert_eq!(text(&v), "9999999999999999999999999999.9999999999");
}

#[test]
fn intervals_print_like_postgres_iso_8601() {
    let cases = [
        ((0, 0, 0), "PT0S"),
        ((14, 3, 4 * 3_600_000_000 + 5 * 60_000_000 + 6_500_000), "P1Y2M3DT4H5M6.5S"),
        ((0, -1, 2 * 3_600_000_000), "P-1DT2H"),
        ((0, 0, -1_500_000), "PT-1.5S"),
        ((0, 0, -500_000), "PT-0.5S"),
        ((-13, 0, 0), "P-1Y-1M"),
        ((0, 0, 1), "PT0.000001S"),
        ((0, 0, 3_600_000_000 * 1_000_000), "PT1000000H"),
    ];
    for ((months, days, micros), expected) in cases {
        let mut s = String::new();
        write_interval(&mut s, months, days, micros).unwrap();
        assert_eq!(s, expected, "{months} {days} {micros}");
    }
}

fn stream(rows: &[Vec<Option<Vec<u8>>>]) -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    for row in rows {
        out.extend_from_slice(&(row.len() as i16).to_be_bytes());
        for field in row {
            match field {
                None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(v) => {
                    out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    out.extend_from_slice(v);
                }
            }
        }
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

/// A decoder of `columns` (name, kind, type name, nullable), batches of at most `max_rows`.
fn decoder_of(columns: &[(&str, ColumnKind, &str, bool)], max_rows: usize) -> BatchDecoder {
    let columns: Vec<SourceColumn> = columns
        .iter()
        .map(|&(name, kind, type_name, nullable)| SourceColumn {
            name: name.into(),
            kind,
            type_name: type_name.into(),
            nullable,
        })
        .collect();
    let schema = Arc::new(Schema::new(
        columns.iter().map(|c| Field::new(&c.name, c.kind.data_type(), c.nullable)).collect::<Vec<_>>(),
    ));
    BatchDecoder::new(columns, schema, BatchLimits { max_rows, max_bytes: 1 << 20 })
}

fn decoder(max_rows: usize) -> BatchDecoder {
    decoder_of(
        &[
            ("id", ColumnKind::Scalar(Scalar::Int4), "integer", false),
            ("tags", ColumnKind::List(Scalar::Text), "text[]", true),
        ],
        max_rows,
    )
}

fn array(items: &[Option<&str>]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&1i32.to_be_bytes());
    v.extend_from_slice(&1i32.to_be_bytes());
    v.extend_from_slice(&25u32.to_be_bytes());
    v.extend_from_slice(&(items.len() as i32).to_be_bytes());
    v.extend_from_slice(&1i32.to_be_bytes());
    for item in items {
        match item {
            None => v.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(s) => {
                v.extend_from_slice(&(s.len() as i32).to_be_bytes());
                v.extend_from_slice(s.as_bytes());
            }
        }
    }
    v
}

#[test]
fn rows_split_anywhere_decode_the_same_in_bounded_batches() {
    let rows: Vec<Vec<Option<Vec<u8>>>> = (0..10)
        .map(|i: i32| {
            let tags = match i % 3 {
                0 => None,
                1 => Some(array(&[Some("a"), None, Some("ünï")])),
                _ => Some(array(&[])),
            };
            vec![Some(i.to_be_bytes().to_vec()), tags]
        })
        .collect();
    let bytes = stream(&rows);
    for chunk_size in [1, 2, 3, 7, 64, bytes.len()] {
        let mut d = decoder(4);
        for chunk in bytes.chunks(chunk_size) {
            d.feed(Bytes::copy_from_slice(chunk)).unwrap();
        }
        d.finish().unwrap();
        let batches: Vec<RecordBatch> = std::iter::from_fn(|| d.next_batch()).collect();
        assert_eq!(batches.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(), [4, 4, 2], "chunk {chunk_size}");
        let ids: Vec<i32> =
            batches.iter().flat_map(|b| b.column(0).as_primitive::<Int32Type>().values().to_vec()).collect();
        assert_eq!(ids, (0..10).collect::<Vec<_>>());
        let tags = batches[0].column(1).as_list::<i32>();
        assert!(tags.is_null(0));
        let second = tags.value(1);
        let second = second.as_string::<i32>();
        assert_eq!((second.value(0), second.is_null(1), second.value(2)), ("a", true, "ünï"));
        assert_eq!(tags.value(2).len(), 0);
        assert!(!tags.is_null(2));
    }
}

#[test]
fn malformed_streams_are_errors() {
    let good = stream(&[vec![Some(1i32.to_be_bytes().to_vec()), None]]);
    let mut d = decoder(10);
    d.feed(Bytes::copy_from_slice(&good[..good.len() - 2])).unwrap();
    assert!(d.finish().unwrap_err().to_string().contains("trailer"));

    let mut d = decoder(10);
    let mut bad = good.clone();
    bad[0] = b'X';
    assert!(d.feed(Bytes::from(bad)).unwrap_err().to_string().contains("signature"));

    let mut d = decoder(10);
    let three = stream(&[vec![None, None, None]]);
    assert!(d.feed(Bytes::from(three)).unwrap_err().to_string().contains("3 fields"));

    let mut d = decoder(10);
    let wrong = stream(&[vec![Some(vec![0, 1]), None]]);
    let e = d.feed(Bytes::from(wrong)).unwrap_err().to_string();
    assert!(e.contains("\"id\"") && e.contains("integer") && e.contains("expected 4 bytes"), "{e}");

    let mut d = decoder(10);
    let mut two_d = array(&[Some("a")]);
    two_d[..4].copy_from_slice(&2i32.to_be_bytes());
    let e = d.feed(Bytes::from(stream(&[vec![Some(1i32.to_be_bytes().to_vec()), Some(two_d)]]))).unwrap_err();
    assert!(e.to_string().contains("2-dimensional") && e.to_string().contains("\"tags\""), "{e}");
}

#[test]
fn byte_limit_closes_batches() {
    let rows: Vec<Vec<Option<Vec<u8>>>> =
        (0..100).map(|i: i32| vec![Some(i.to_be_bytes().to_vec()), Some(array(&[Some(&"x".repeat(100))]))]).collect();
    let columns = decoder(1).columns;
    let schema = decoder(1).schema;
    let mut d = BatchDecoder::new(columns, schema, BatchLimits { max_rows: 1000, max_bytes: 1000 });
    d.feed(Bytes::from(stream(&rows))).unwrap();
    d.finish().unwrap();
    let sizes: Vec<usize> = std::iter::from_fn(|| d.next_batch()).map(|b| b.num_rows()).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 100);
    assert!(sizes.iter().all(|&n| n <= 8), "{sizes:?}");
    assert_eq!(d.builders[0].len(), 0);
}

/// A decoder of one `text` and one `jsonb` column.
fn text_decoder(max_rows: usize) -> BatchDecoder {
    decoder_of(
        &[
            ("note", ColumnKind::Scalar(Scalar::Text), "text", true),
            ("doc", ColumnKind::Scalar(Scalar::Jsonb), "jsonb", true),
        ],
        max_rows,
    )
}

fn jsonb(text: &[u8]) -> Vec<u8> {
    [&[1u8][..], text].concat()
}

#[test]
fn text_is_checked_as_utf8_per_value_when_its_batch_closes() {
    // Batches of 2 rows; the second batch starts sized by the first (longer strings).
    let rows: Vec<Vec<Option<Vec<u8>>>> = vec![
        vec![Some("ünïcode".repeat(40).into_bytes()), Some(jsonb(br#"{"a":1}"#))],
        vec![None, None],
        vec![Some(b"plain".to_vec()), Some(jsonb("{\"é\":[]}".as_bytes()))],
    ];
    let mut d = text_decoder(2);
    d.feed(Bytes::from(stream(&rows))).unwrap();
    d.finish().unwrap();
    let batches: Vec<RecordBatch> = std::iter::from_fn(|| d.next_batch()).collect();
    assert_eq!(batches.len(), 2);
    let note = batches[0].column(0).as_string::<i32>();
    assert_eq!((note.value(0), note.is_null(1)), ("ünïcode".repeat(40).as_str(), true));
    assert_eq!(batches[1].column(0).as_string::<i32>().value(0), "plain");
    assert_eq!(batches[1].column(1).as_string::<i32>().value(0), "{\"é\":[]}");

    // Invalid bytes, and two halves of one character whose concatenation alone is valid:
    // each value must be UTF-8 on its own. The error names the column and no batch is handed out.
    let bad_rows: [Vec<Vec<Option<Vec<u8>>>>; 3] = [
        vec![vec![Some(b"ok".to_vec()), None], vec![Some(b"bad \xff".to_vec()), None]],
        vec![vec![Some(b"\xc3".to_vec()), None], vec![Some(b"\xa9".to_vec()), None]],
        vec![vec![None, Some(jsonb(b"{\"\xc3\":1}"))]],
    ];
    for (rows, column) in bad_rows.iter().zip(["note", "note", "doc"]) {
        let mut d = text_decoder(10);
        d.feed(Bytes::from(stream(rows))).unwrap();
        let e = d.finish().unwrap_err().to_string();
        assert!(e.contains(&format!("{column:?}")) && e.contains("UTF-8"), "{e}");
        assert!(d.next_batch().is_none());
    }
}
