//! The Avro container's tests: round trips of every type and codec, fastavro interop, and
//! truncated / bit-flipped / hostile files (long by design: one test per property).

use std::sync::Arc;

use arrow::array::{
    BinaryArray, BinaryViewArray, BooleanArray, Date32Array, Decimal128Array, Decimal128Builder, Decimal256Array,
    Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array, LargeBinaryArray, LargeListBuilder,
    LargeStringArray, ListBuilder, StringArray, StringBuilder, StringViewArray, Time32MillisecondArray,
    Time32SecondArray, Time64MicrosecondArray, Time64NanosecondArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray, UInt8Array, UInt16Array, UInt32Array,
    UInt64Array,
};
use arrow::compute::concat_batches;
use arrow::datatypes::{Field, Fields, IntervalUnit, Schema};

use super::*;

const CODECS: [AvroCodec; 4] = [AvroCodec::Null, AvroCodec::Deflate(6), AvroCodec::Snappy, AvroCodec::Zstd(3)];

/// `every`-th row (offset 1) is null.
fn opt<T>(i: usize, every: usize, value: T) -> Option<T> {
    (i % every != 1).then_some(value)
}

fn pick<T: Copy>(i: usize, values: &[T]) -> T {
    values[i % values.len()]
}

/// A batch with every supported type, nulls included, `n` rows starting at row `from`.
fn all_types(from: usize, n: usize) -> RecordBatch {
    let rows = || from..from + n;
    let big = 10i128.pow(38) - 1;
    let mut list = ListBuilder::new(arrow::array::Int64Builder::new());
    let mut large_list =
        LargeListBuilder::new(StringBuilder::new()).with_field(Arc::new(Field::new("item", DataType::Utf8, false)));
    let mut nested = ListBuilder::new(
        ListBuilder::new(Decimal128Builder::new().with_data_type(DataType::Decimal128(10, 2)))
            .with_field(Arc::new(Field::new("item", DataType::Decimal128(10, 2), false))),
    );
    for i in rows() {
        match i % 4 {
            1 => list.append_null(),
            2 => list.append(true), // empty
            _ => {
                for k in 0..(i % 5) {
                    list.values().append_option(opt(k, 3, (i * 1000 + k) as i64 - 500));
                }
                list.append(true);
            }
        }
        for k in 0..(i % 3) {
            large_list.values().append_value(format!("item {i}.{k} ✓"));
        }
        large_list.append(true);
        if i % 6 == 5 {
            nested.append_null();
        } else {
            for k in 0..(i % 3) {
                for m in 0..k + 1 {
                    nested.values().values().append_value(((i + m) as i128) * 101 - 5000);
                }
                nested.values().append(true);
            }
            nested.append(true);
        }
    }
    let columns: Vec<(&str, ArrayRef, bool)> = vec![
        ("id", Arc::new(Int64Array::from_iter_values(rows().map(|i| i as i64))), false),
        ("flag", Arc::new(rows().map(|i| opt(i, 7, i % 2 == 0)).collect::<BooleanArray>()), true),
        ("flag_nn", Arc::new(rows().map(|i| Some(i % 3 == 0)).collect::<BooleanArray>()), false),
        (
            "i8",
            Arc::new(rows().map(|i| opt(i, 5, pick(i, &[i8::MIN, -1, 0, 1, i8::MAX]))).collect::<Int8Array>()),
            true,
        ),
        (
            "i16",
            Arc::new(rows().map(|i| opt(i, 5, pick(i, &[i16::MIN, -300, 0, 300, i16::MAX]))).collect::<Int16Array>()),
            true,
        ),
        (
            "i32",
            Arc::new(
                rows().map(|i| opt(i, 5, pick(i, &[i32::MIN, -70000, 0, 70000, i32::MAX]))).collect::<Int32Array>(),
            ),
            true,
        ),
        (
            "i64",
            Arc::new(
                rows()
                    .map(|i| opt(i, 5, pick(i, &[i64::MIN, -1, 0, (i as i64) * 1_000_003, i64::MAX])))
                    .collect::<Int64Array>(),
            ),
            true,
        ),
        ("u8", Arc::new(rows().map(|i| opt(i, 5, pick(i, &[0, 1, 200, u8::MAX]))).collect::<UInt8Array>()), true),
        ("u16", Arc::new(rows().map(|i| opt(i, 5, pick(i, &[0, 1, 40000, u16::MAX]))).collect::<UInt16Array>()), true),
        (
            "u32",
            Arc::new(rows().map(|i| opt(i, 5, pick(i, &[0, 1, 3_000_000_000, u32::MAX]))).collect::<UInt32Array>()),
            true,
        ),
        (
            "u64",
            Arc::new(
                rows()
                    .map(|i| opt(i, 5, pick(i, &[0, 1, 1 << 63, u64::MAX, 12345678901234567890])))
                    .collect::<UInt64Array>(),
            ),
            true,
        ),
        (
            "f32",
            Arc::new(
                rows()
                    .map(|i| {
                        opt(
                            i,
                            9,
                            pick(
                                i,
                                &[
                                    0.0,
                                    -0.0,
                                    1.5,
                                    -3.25e-7,
                                    f32::MAX,
                                    f32::MIN_POSITIVE,
                                    f32::INFINITY,
                                    f32::NEG_INFINITY,
                                    f32::NAN,
                                ],
                            ),
                        )
                    })
                    .collect::<Float32Array>(),
            ),
            true,
        ),
        (
            "f64",
            Arc::new(
                rows()
                    .map(|i| {
                        opt(
                            i,
                            9,
                            pick(
                                i,
                                &[0.0, -0.0, 0.1, -1e300, f64::MAX, 5e-324, f64::INFINITY, f64::NEG_INFINITY, f64::NAN],
                            ),
                        )
                    })
                    .collect::<Float64Array>(),
            ),
            true,
        ),
        ("s", Arc::new(rows().map(|i| opt(i, 4, text(i))).collect::<StringArray>()), true),
        ("s_large", Arc::new(rows().map(|i| opt(i, 6, text(i + 1))).collect::<LargeStringArray>()), true),
        ("s_view", Arc::new(rows().map(|i| Some(text(i + 2))).collect::<StringViewArray>()), false),
        ("bin", Arc::new(rows().map(|i| opt(i, 4, blob(i))).collect::<BinaryArray>()), true),
        ("bin_large", Arc::new(rows().map(|i| Some(blob(i + 1))).collect::<LargeBinaryArray>()), false),
        ("bin_view", Arc::new(rows().map(|i| opt(i, 3, blob(i + 2))).collect::<BinaryViewArray>()), true),
        (
            "dec",
            Arc::new(
                rows()
                    .map(|i| {
                        opt(
                            i,
                            5,
                            pick(
                                i,
                                &[0, -1, big, -big, 123_456_789_012_345_678_901_234_567_890_i128 * (i as i128 % 3 - 1)],
                            ),
                        )
                    })
                    .collect::<Decimal128Array>()
                    .with_precision_and_scale(38, 10)
                    .unwrap(),
            ),
            true,
        ),
        (
            "dec_small",
            Arc::new(
                rows()
                    .map(|i| opt(i, 5, pick(i, &[0, -1, 99999, -99999, 150, -5])))
                    .collect::<Decimal128Array>()
                    .with_precision_and_scale(5, 2)
                    .unwrap(),
            ),
            true,
        ),
        (
            "dec256",
            Arc::new(
                rows()
                    .map(|i| {
                        opt(
                            i,
                            5,
                            i256::from_i128(pick(
                                i,
                                &[0, 1, -(10i128.pow(30) - 1), 10i128.pow(30) - 1, 255, -128, -129],
                            )),
                        )
                    })
                    .collect::<Decimal256Array>()
                    .with_precision_and_scale(30, 4)
                    .unwrap(),
            ),
            true,
        ),
        (
            "day",
            Arc::new(
                rows().map(|i| opt(i, 5, pick(i, &[0, -1, 19_000, -719_162, 2_932_896]))).collect::<Date32Array>(),
            ),
            true,
        ),
        (
            "t32s",
            Arc::new(rows().map(|i| opt(i, 5, pick(i, &[0, 1, 43_200, 86_399]))).collect::<Time32SecondArray>()),
            true,
        ),
        (
            "t32ms",
            Arc::new(
                rows().map(|i| opt(i, 5, pick(i, &[0, 1, 43_200_123, 86_399_999]))).collect::<Time32MillisecondArray>(),
            ),
            true,
        ),
        (
            "t64us",
            Arc::new(
                rows()
                    .map(|i| opt(i, 5, pick(i, &[0, 1, 43_200_123_456, 86_399_999_999])))
                    .collect::<Time64MicrosecondArray>(),
            ),
            true,
        ),
        (
            "t64ns",
            Arc::new(
                rows()
                    .map(|i| opt(i, 5, pick(i, &[0, 1000, 43_200_123_456_000, 86_399_999_999_000])))
                    .collect::<Time64NanosecondArray>(),
            ),
            true,
        ),
        (
            "ts_s",
            Arc::new(
                rows()
                    .map(|i| opt(i, 5, pick(i, &[0, -1, 1_700_000_000, -62_135_596_800, 253_402_300_799])))
                    .collect::<TimestampSecondArray>()
                    .with_timezone("UTC"),
            ),
            true,
        ),
        (
            "ts_ms",
            Arc::new(
                rows()
                    .map(|i| opt(i, 5, pick(i, &[0, -1, 1_700_000_000_123])))
                    .collect::<TimestampMillisecondArray>()
                    .with_timezone("+02:00"),
            ),
            true,
        ),
        (
            "ts_us",
            Arc::new(
                rows()
                    .map(|i| Some(pick(i, &[0, -1, 1_700_000_000_123_456, 253_402_300_799_999_999])))
                    .collect::<TimestampMicrosecondArray>()
                    .with_timezone("UTC"),
            ),
            false,
        ),
        (
            "ts_ns",
            Arc::new(
                rows()
                    .map(|i| {
                        opt(
                            i,
                            5,
                            pick(
                                i,
                                &[
                                    0,
                                    -1000,
                                    1_700_000_000_123_456_000,
                                    i64::MAX / 1000 * 1000 - 775_807_000 + 775_807_000 - 1_000_000_000,
                                ],
                            ),
                        )
                    })
                    .collect::<TimestampNanosecondArray>()
                    .with_timezone("UTC"),
            ),
            true,
        ),
        (
            "local_us",
            Arc::new(
                rows()
                    .map(|i| opt(i, 5, pick(i, &[0, -1, 1_700_000_000_123_456, -62_135_596_800_000_000])))
                    .collect::<TimestampMicrosecondArray>(),
            ),
            true,
        ),
        (
            "local_ms",
            Arc::new(
                rows().map(|i| opt(i, 5, pick(i, &[0, -1, 1_700_000_000_123]))).collect::<TimestampMillisecondArray>(),
            ),
            true,
        ),
        ("list", Arc::new(list.finish()), true),
        ("large_list", Arc::new(large_list.finish()), false),
        ("nested", Arc::new(nested.finish()), true),
    ];
    let schema = Schema::new(
        columns
            .iter()
            .map(|(name, array, nullable)| Field::new(*name, array.data_type().clone(), *nullable))
            .collect::<Fields>(),
    );
    RecordBatch::try_new(Arc::new(schema), columns.into_iter().map(|(_, array, _)| array).collect()).unwrap()
}

fn text(i: usize) -> String {
    match i % 5 {
        0 => String::new(),
        1 => "héllo wörld ✓ 🚀".into(),
        2 => "x".repeat(i * 3),
        3 => format!("row {i} with \"quotes\", commas\nand a newline"),
        _ => "short".into(),
    }
}

fn blob(i: usize) -> Vec<u8> {
    (0..i % 40).map(|k| (k * 37 + i) as u8).collect()
}

/// Encodes `batches` taking the ready bytes after each batch, as the uploader does.
fn encode(batches: &[RecordBatch], codec: AvroCodec, block_bytes: usize) -> Vec<u8> {
    let mut encoder: Box<dyn Encoder> =
        Box::new(AvroEncoder::new(batches[0].schema(), codec, block_bytes).expect("encoder"));
    let mut out = encoder.take_ready().concat();
    for batch in batches {
        encoder.write(batch).expect("write");
        out.extend(encoder.take_ready().concat());
    }
    out.extend(encoder.finish().expect("finish").concat());
    out
}

fn read_all(bytes: &[u8], schema: SchemaRef, batch_rows: usize) -> Result<Vec<RecordBatch>, String> {
    read_avro(bytes, schema, batch_rows)?.collect()
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

#[test]
fn round_trip_every_type_every_codec_many_blocks() {
    let input = [all_types(0, 150), all_types(150, 1), all_types(151, 120).slice(7, 90)];
    let schema = input[0].schema();
    let expected = concat_batches(&schema, &input).unwrap();
    for codec in CODECS {
        let bytes = encode(&input, codec, 300);
        let blocks = bytes.windows(16).filter(|w| *w == &bytes[bytes.len() - 16..]).count() - 1;
        assert!(blocks > 20, "{codec:?}: {blocks} blocks");
        for batch_rows in [1, 7, 1000] {
            let batches = read_all(&bytes, schema.clone(), batch_rows).unwrap();
            assert!(batches.iter().all(|b| b.num_rows() <= batch_rows));
            assert_eq!(concat_batches(&schema, &batches).unwrap(), expected, "{codec:?}, {batch_rows} rows a batch");
        }
    }
}

#[test]
fn default_block_size_round_trips_in_one_block() {
    let input = all_types(0, 200);
    for codec in CODECS {
        let bytes = encode(std::slice::from_ref(&input), codec, DEFAULT_BLOCK_BYTES);
        let batches = read_all(&bytes, input.schema(), 8192).unwrap();
        assert_eq!(batches, vec![input.clone()]);
    }
}

#[test]
fn output_is_deterministic() {
    let input = [all_types(0, 100), all_types(100, 50)];
    for codec in CODECS {
        let first = encode(&input, codec, 1000);
        let second = encode(&input, codec, 1000);
        assert!(first == second, "{codec:?}: two runs differ");
    }
    // The sync marker depends on the schema and codec only.
    let a = AvroEncoder::new(input[0].schema(), AvroCodec::Null, 1000).unwrap().sync;
    let b = AvroEncoder::new(input[0].schema(), AvroCodec::Snappy, 1000).unwrap().sync;
    let c = AvroEncoder::new(input[0].schema(), AvroCodec::Null, 5).unwrap().sync;
    assert_ne!(a, b);
    assert_eq!(a, c);
}

#[test]
fn empty_file_is_a_valid_container() {
    let schema = all_types(0, 1).schema();
    for codec in CODECS {
        let encoder = Box::new(AvroEncoder::new(schema.clone(), codec, 1000).unwrap());
        let bytes = encoder.finish().unwrap().concat();
        assert_eq!(&bytes[..4], b"Obj\x01");
        assert!(read_all(&bytes, schema.clone(), 10).unwrap().is_empty());
    }
}

#[test]
fn header_and_block_bytes_are_as_the_spec_says() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("tags", DataType::List(Arc::new(Field::new("item", DataType::Int32, true))), true),
        Field::new("u", DataType::UInt64, false),
        Field::new("at", DataType::Timestamp(TimeUnit::Nanosecond, Some("Europe/Paris".into())), true),
        Field::new("local", DataType::Timestamp(TimeUnit::Second, None), true),
        Field::new("t", DataType::Time32(TimeUnit::Millisecond), false),
        Field::new("d", DataType::Date32, false),
        Field::new("n", DataType::Decimal128(12, 3), true),
    ]));
    let nodes = columns(&schema).unwrap();
    let fields: Vec<(&str, &Node)> = schema.fields().iter().map(|f| f.name().as_str()).zip(&nodes).collect();
    assert_eq!(
        schema_json("row", &fields),
        concat!(
            r#"{"type":"record","name":"row","fields":["#,
            r#"{"name":"id","type":"long"},"#,
            r#"{"name":"name","type":["null","string"],"default":null},"#,
            r#"{"name":"tags","type":["null",{"type":"array","items":["null","int"]}],"default":null},"#,
            r#"{"name":"u","type":{"type":"bytes","logicalType":"decimal","precision":20,"scale":0}},"#,
            r#"{"name":"at","type":["null",{"type":"long","logicalType":"timestamp-micros"}],"default":null},"#,
            r#"{"name":"local","type":["null","#,
            r#"{"type":"long","logicalType":"local-timestamp-micros"}],"default":null},"#,
            r#"{"name":"t","type":{"type":"long","logicalType":"time-micros"}},"#,
            r#"{"name":"d","type":{"type":"int","logicalType":"date"}},"#,
            r#"{"name":"n","type":["null","#,
            r#"{"type":"bytes","logicalType":"decimal","precision":12,"scale":3}],"default":null}"#,
            "]}"
        )
    );

    // One column, one row: magic, metadata, sync; then count 1, size 1, the row, sync.
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![-65]))]).unwrap();
    let bytes = encode(&[batch], AvroCodec::Null, 1000);
    let json = br#"{"type":"record","name":"row","fields":[{"name":"id","type":"long"}]}"#;
    let mut header = b"Obj\x01\x04\x16avro.schema".to_vec();
    put_bytes(&mut header, json);
    header.extend_from_slice(b"\x14avro.codec\x08null\x00");
    assert_eq!(&bytes[..header.len()], header.as_slice());
    let sync = &bytes[header.len()..header.len() + 16];
    assert_eq!(&bytes[header.len() + 16..], [&[0x02, 0x04, 0x81, 0x01][..], sync].concat().as_slice());
}

#[test]
fn varints_and_decimals_encode_per_spec() {
    for (value, bytes) in [
        (0i64, &[0x00][..]),
        (-1, &[0x01]),
        (1, &[0x02]),
        (-64, &[0x7f]),
        (64, &[0x80, 0x01]),
        (i64::MAX, &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
        (i64::MIN, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
    ] {
        let mut out = Vec::new();
        put_long(&mut out, value);
        assert_eq!(out, bytes, "{value}");
        assert_eq!(Cursor { data: &out, pos: 0 }.long().unwrap(), value);
    }
    for (value, bytes) in [
        (0i128, &[0x00][..]),
        (127, &[0x7f]),
        (128, &[0x00, 0x80]),
        (255, &[0x00, 0xff]),
        (-1, &[0xff]),
        (-128, &[0x80]),
        (-129, &[0xff, 0x7f]),
        (i128::MAX, &[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
    ] {
        let mut out = Vec::new();
        put_decimal(&mut out, &value.to_be_bytes());
        assert_eq!(&out[1..], bytes, "{value}");
        assert_eq!(decimal_from_be(bytes).unwrap(), value);
    }
    // Sign-extended (non-minimal) input from other writers reads too; 17 significant bytes do not.
    assert_eq!(decimal_from_be(&[0xff; 20]).unwrap(), -1);
    assert!(decimal_from_be(&[[0x01].as_slice(), &[0; 16]].concat()).is_err());
}

#[test]
fn nanoseconds_are_floored_and_seconds_overflow_is_an_error() {
    let schema = Arc::new(Schema::new(vec![Field::new("at", DataType::Timestamp(TimeUnit::Nanosecond, None), false)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(TimestampNanosecondArray::from(vec![-1, 1999, 0]))])
        .unwrap();
    let read = read_all(&encode(&[batch], AvroCodec::Null, 1000), schema, 10).unwrap();
    let values = read[0].column(0).as_primitive::<TimestampNanosecondType>().values().to_vec();
    assert_eq!(values, vec![-1000, 1000, 0]);

    let schema = Arc::new(Schema::new(vec![Field::new("at", DataType::Timestamp(TimeUnit::Second, None), false)]));
    let batch =
        RecordBatch::try_new(schema.clone(), vec![Arc::new(TimestampSecondArray::from(vec![1, i64::MAX]))]).unwrap();
    let mut encoder = AvroEncoder::new(schema, AvroCodec::Null, 1000).unwrap();
    let err = encoder.write(&batch).unwrap_err().to_string();
    assert!(err.contains("\"at\""), "{err}");
    // The row that failed is not half-written: the open block holds the first row only.
    let mut first = Vec::new();
    put_long(&mut first, 1_000_000);
    assert_eq!(encoder.in_progress_size(), first.len());
}

#[test]
fn unsupported_columns_and_invalid_names_are_errors_naming_the_column() {
    let unsupported = [
        DataType::Struct(Fields::from(vec![Field::new("a", DataType::Int32, true)])),
        DataType::Interval(IntervalUnit::MonthDayNano),
        DataType::Decimal256(50, 2),
        DataType::Decimal128(10, -2),
        DataType::FixedSizeBinary(4),
        DataType::Float16,
        DataType::Null,
        DataType::Date64,
        DataType::Duration(TimeUnit::Second),
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        DataType::List(Arc::new(Field::new("item", DataType::Interval(IntervalUnit::DayTime), true))),
    ];
    for data_type in unsupported {
        let schema = Arc::new(Schema::new(vec![
            Field::new("ok", DataType::Int64, true),
            Field::new("bad", data_type.clone(), true),
        ]));
        match AvroEncoder::new(schema.clone(), AvroCodec::Null, 1000) {
            Err(FormatError::Unsupported { column, data_type: shown, format }) => {
                assert_eq!((column.as_str(), format), ("bad", "avro"));
                assert_eq!(shown, data_type.to_string());
            }
            Err(other) => panic!("{data_type}: {other}"),
            Ok(_) => panic!("{data_type} accepted"),
        }
        let err = read_all(b"", schema, 10).unwrap_err();
        assert!(err.contains("\"bad\""), "{err}");
    }
    for name in ["my col", "1st", "", "naïve", "a-b", "x.y"] {
        let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Int64, true)]));
        match AvroEncoder::new(schema, AvroCodec::Null, 1000) {
            Err(FormatError::Invalid(message)) => assert!(message.contains(&format!("{name:?}")), "{message}"),
            Err(other) => panic!("{name:?}: {other}"),
            Ok(_) => panic!("{name:?} accepted"),
        }
    }
    let twice =
        Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true), Field::new("a", DataType::Utf8, true)]));
    assert!(matches!(AvroEncoder::new(twice, AvroCodec::Null, 1000), Err(FormatError::Invalid(_))));
    let schema = Arc::new(Schema::new(vec![Field::new("_ok_1", DataType::Int64, true)]));
    for (codec, block) in [(AvroCodec::Deflate(10), 1000), (AvroCodec::Zstd(99), 1000), (AvroCodec::Null, 0)] {
        assert!(matches!(AvroEncoder::new(schema.clone(), codec, block), Err(FormatError::Invalid(_))));
    }
    assert!(AvroEncoder::with_record_name(schema.clone(), AvroCodec::Null, 1000, "orders").is_ok());
    assert!(AvroEncoder::with_record_name(schema, AvroCodec::Null, 1000, "my table").is_err());
}

#[test]
fn batch_not_matching_the_schema_is_an_error() {
    let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
    let other = Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, true)]));
    let batch = RecordBatch::try_new(other, vec![Arc::new(Int32Array::from(vec![1]))]).unwrap();
    let mut encoder = AvroEncoder::new(schema, AvroCodec::Null, 1000).unwrap();
    assert!(matches!(encoder.write(&batch), Err(FormatError::Invalid(_))));
}

#[test]
fn reader_checks_the_file_schema_against_the_arrow_schema() {
    let batch = all_types(0, 20);
    let bytes = encode(std::slice::from_ref(&batch), AvroCodec::Null, 1000);
    let with = |i: usize, field: Field| {
        let mut fields: Vec<Field> = batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields[i] = field;
        Arc::new(Schema::new(fields))
    };
    let cases = [
        (with(4, Field::new("i16", DataType::Utf8, true)), "\"i16\""),
        (with(4, Field::new("i16_renamed", DataType::Int16, true)), "\"i16_renamed\""),
        (with(6, Field::new("i64", DataType::Int64, false)), "\"i64\""),
        (with(19, Field::new("dec", DataType::Decimal128(38, 9), true)), "\"dec\""),
        (with(26, Field::new("ts_s", DataType::Timestamp(TimeUnit::Second, None), true)), "\"ts_s\""),
    ];
    for (schema, name) in cases {
        let err = read_all(&bytes, schema, 10).unwrap_err();
        assert!(err.contains(name), "{err}");
    }
    let fewer = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    assert!(read_all(&bytes, fewer, 10).unwrap_err().contains("columns"));
    // A column non-null in the file reads into a nullable one; Arrow types of the same Avro
    // type read each other's values, checked to fit.
    let schema = with(0, Field::new("id", DataType::Int64, true));
    let read = read_all(&bytes, schema, 100).unwrap();
    assert_eq!(read[0].column(0).as_primitive::<Int64Type>().values().to_vec(), (0..20).collect::<Vec<i64>>());
    let schema = with(4, Field::new("i16", DataType::Int32, true));
    let read = read_all(&bytes, schema, 100).unwrap();
    assert_eq!(read[0].column(4).as_primitive::<Int32Type>().value(0), i32::from(i16::MIN));
    let schema = with(3, Field::new("i8", DataType::UInt8, true));
    assert!(read_all(&bytes, schema, 100).unwrap_err().contains("out of range"));
}

/// The fastavro checker, beside the crate's manifest (`shared/tests/` in byob: adjust there).
const CHECK_AVRO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/check_avro.py");

/// The tools venv's python (`$BYOB_TOOLS`, default `~/.cache/byob-tools`), if it has fastavro
/// and the snappy and zstandard libraries it needs.
fn fastavro_python() -> Result<std::path::PathBuf, String> {
    let tools = std::env::var_os("BYOB_TOOLS")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| std::path::PathBuf::from(home).join(".cache/byob-tools")))
        .ok_or("neither BYOB_TOOLS nor HOME is set")?;
    let python = tools.join("venv/bin/python");
    if !python.exists() {
        return Err(format!("{} is missing", python.display()));
    }
    let probe = std::process::Command::new(&python)
        .args(["-c", "import fastavro, cramjam, backports.zstd"])
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !probe.status.success() {
        return Err(format!(
            "{} cannot import fastavro, cramjam and backports.zstd ({}): run `{} -m pip install {}`",
            python.display(),
            String::from_utf8_lossy(&probe.stderr).lines().last().unwrap_or_default(),
            python.display(),
            "fastavro cramjam backports.zstd"
        ));
    }
    Ok(python)
}

/// A value as `check_avro.py` expects it: times in microseconds, dates in days, decimals as
/// strings, bytes as hex, non-finite floats as strings. Written from the Arrow values, not
/// from anything the encoder computes.
fn json_value(array: &dyn Array, i: usize) -> Value {
    use DataType as D;
    use serde_json::json;
    fn float(v: f64) -> Value {
        if v.is_finite() { json!(v) } else { json!(v.to_string()) }
    }
    fn hex(bytes: &[u8]) -> Value {
        json!(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }
    fn items(values: ArrayRef) -> Value {
        Value::Array((0..values.len()).map(|j| json_value(values.as_ref(), j)).collect())
    }
    if array.is_null(i) {
        return Value::Null;
    }
    match array.data_type() {
        D::Boolean => json!(array.as_boolean().value(i)),
        D::Int8 => json!(array.as_primitive::<Int8Type>().value(i)),
        D::Int16 => json!(array.as_primitive::<Int16Type>().value(i)),
        D::Int32 => json!(array.as_primitive::<Int32Type>().value(i)),
        D::Int64 => json!(array.as_primitive::<Int64Type>().value(i)),
        D::UInt8 => json!(array.as_primitive::<UInt8Type>().value(i)),
        D::UInt16 => json!(array.as_primitive::<UInt16Type>().value(i)),
        D::UInt32 => json!(array.as_primitive::<UInt32Type>().value(i)),
        D::UInt64 => json!(array.as_primitive::<UInt64Type>().value(i).to_string()),
        D::Float32 => float(f64::from(array.as_primitive::<Float32Type>().value(i))),
        D::Float64 => float(array.as_primitive::<Float64Type>().value(i)),
        D::Utf8 => json!(array.as_string::<i32>().value(i)),
        D::LargeUtf8 => json!(array.as_string::<i64>().value(i)),
        D::Utf8View => json!(array.as_string_view().value(i)),
        D::Binary => hex(array.as_binary::<i32>().value(i)),
        D::LargeBinary => hex(array.as_binary::<i64>().value(i)),
        D::BinaryView => hex(array.as_binary_view().value(i)),
        D::Decimal128(..) => json!(array.as_primitive::<Decimal128Type>().value_as_string(i)),
        D::Decimal256(..) => json!(array.as_primitive::<Decimal256Type>().value_as_string(i)),
        D::Date32 => json!(array.as_primitive::<Date32Type>().value(i)),
        D::Time32(TimeUnit::Second) => {
            json!(i64::from(array.as_primitive::<Time32SecondType>().value(i)) * 1_000_000)
        }
        D::Time32(_) => json!(i64::from(array.as_primitive::<Time32MillisecondType>().value(i)) * 1_000),
        D::Time64(TimeUnit::Microsecond) => json!(array.as_primitive::<Time64MicrosecondType>().value(i)),
        D::Time64(_) => json!(array.as_primitive::<Time64NanosecondType>().value(i).div_euclid(1_000)),
        D::Timestamp(TimeUnit::Second, _) => {
            json!(array.as_primitive::<TimestampSecondType>().value(i) * 1_000_000)
        }
        D::Timestamp(TimeUnit::Millisecond, _) => {
            json!(array.as_primitive::<TimestampMillisecondType>().value(i) * 1_000)
        }
        D::Timestamp(TimeUnit::Microsecond, _) => json!(array.as_primitive::<TimestampMicrosecondType>().value(i)),
        D::Timestamp(TimeUnit::Nanosecond, _) => {
            json!(array.as_primitive::<TimestampNanosecondType>().value(i).div_euclid(1_000))
        }
        D::List(_) => items(array.as_list::<i32>().value(i)),
        D::LargeList(_) => items(array.as_list::<i64>().value(i)),
        other => panic!("no JSON for {other}"),
    }
}

#[test]
fn fastavro_reads_every_codec_and_writes_files_we_read() {
    let python = match fastavro_python() {
        Ok(python) => python,
        Err(why) => {
            // Straight to the process's stderr: the test harness captures eprintln!, this shows.
            let bang = "!".repeat(100);
            let _ = writeln!(io::stderr(), "\n{bang}\nSKIPPED fastavro interop test: {why}\n{bang}\n");
            return;
        }
    };
    let dir = std::env::temp_dir().join(format!("byob-avro-interop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = all_types(0, 271);
    let schema = input.schema();
    let mut files = Vec::new();
    for codec in CODECS {
        let path = format!("{}.avro", codec.name());
        std::fs::write(dir.join(&path), encode(std::slice::from_ref(&input), codec, 2000)).unwrap();
        files.push(serde_json::json!({"path": path, "codec": codec.name(), "rows": input.num_rows()}));
    }
    let empty =
        Box::new(AvroEncoder::new(schema.clone(), AvroCodec::Zstd(3), 2000).unwrap()).finish().unwrap().concat();
    std::fs::write(dir.join("empty.avro"), empty).unwrap();
    files.push(serde_json::json!({"path": "empty.avro", "codec": "zstandard", "rows": 0}));
    let rows: Vec<Value> = (0..input.num_rows())
        .map(|i| Value::Array(input.columns().iter().map(|c| json_value(c.as_ref(), i)).collect()))
        .collect();
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let expected = serde_json::json!({"columns": columns, "rows": rows, "files": files});
    std::fs::write(dir.join("expected.json"), serde_json::to_vec(&expected).unwrap()).unwrap();

    let output = std::process::Command::new(&python).arg(CHECK_AVRO).arg(&dir).output().unwrap();
    eprintln!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "check_avro.py failed (files kept in {})", dir.display());

    // And the files fastavro wrote (its own sync markers and block sizes) read back here.
    for codec in CODECS {
        let bytes = std::fs::read(dir.join(format!("fastavro-{}.avro", codec.name()))).unwrap();
        let batches = read_all(&bytes, schema.clone(), 100).unwrap_or_else(|e| panic!("{codec:?}: {e}"));
        assert_eq!(concat_batches(&schema, &batches).unwrap(), input, "{codec:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn foreign_files_with_null_second_and_sized_array_blocks_read() {
    // ["long","null"] unions and array blocks with a negative count and a byte size, as
    // other writers (Java's blocking encoder) produce; the codec key absent (null).
    let json = br#"{"type":"record","name":"x","namespace":"y","doc":"d","fields":[
        {"name":"a","type":["long","null"]},
        {"name":"l","type":{"type":"array","items":"int"},"order":"ignore"}]}"#;
    let sync = [7u8; 16];
    let mut file = b"Obj\x01".to_vec();
    put_long(&mut file, -1);
    put_long(&mut file, 99); // the map block's byte size: skipped
    put_bytes(&mut file, b"avro.schema");
    put_bytes(&mut file, json);
    put_long(&mut file, 0);
    file.extend_from_slice(&sync);
    let mut rows = Vec::new();
    rows.extend_from_slice(&[0x00, 0x0a]); // a = 5
    rows.extend_from_slice(&[0x03, 0x04, 0x02, 0x04, 0x00]); // l = [1, 2]: count -2, 2 bytes
    rows.push(0x02); // a = null
    rows.push(0x00); // l = []
    put_long(&mut file, 2);
    put_bytes(&mut file, &rows);
    file.extend_from_slice(&sync);
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int64, true),
        Field::new("l", DataType::List(Arc::new(Field::new("item", DataType::Int32, false))), false),
    ]));
    let read = read_all(&file, schema.clone(), 10).unwrap();
    let mut list = ListBuilder::new(arrow::array::Int32Builder::new()).with_field(Arc::new(Field::new(
        "item",
        DataType::Int32,
        false,
    )));
    list.append_value([Some(1), Some(2)]);
    list.append_value([]);
    let expected =
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![Some(5), None])), Arc::new(list.finish())])
            .unwrap();
    assert_eq!(read, vec![expected]);
}

#[test]
fn rows_too_large_for_the_open_block_start_a_new_one() {
    let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false)]));
    let big = "x".repeat(30 * 1024 * 1024);
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec![big.as_str(); 2]))]).unwrap();
    let bytes = encode(std::slice::from_ref(&batch), AvroCodec::Null, MAX_WRITE_BLOCK);
    assert_eq!(boundaries(&bytes).len(), 3, "the header and two blocks");
    assert_eq!(read_all(&bytes, schema.clone(), 10).unwrap(), vec![batch]);

    let huge = "x".repeat(MAX_WRITE_BLOCK);
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec!["a", &huge]))]).unwrap();
    let mut encoder = AvroEncoder::new(schema, AvroCodec::Null, 1000).unwrap();
    assert!(matches!(encoder.write(&batch), Err(FormatError::Invalid(_))));
    assert_eq!(encoder.in_progress_size(), 2, "the first row is kept, the huge one is not");
}

/// The offsets just after each sync marker (the header's and every block's).
fn boundaries(bytes: &[u8]) -> Vec<usize> {
    let sync = &bytes[bytes.len() - 16..];
    bytes.windows(16).enumerate().filter(|(_, w)| *w == sync).map(|(at, _)| at + 16).collect()
}

fn fuzz_batch() -> RecordBatch {
    let full = all_types(0, 30);
    let keep = ["id", "s", "dec", "list", "ts_ns", "nested", "f64", "flag"];
    let indices: Vec<usize> = keep.iter().map(|n| full.schema().index_of(n).unwrap()).collect();
    full.project(&indices).unwrap()
}

#[test]
fn truncated_files_are_errors_not_panics() {
    let batch = fuzz_batch();
    for codec in CODECS {
        let bytes = encode(std::slice::from_ref(&batch), codec, 150);
        let valid = boundaries(&bytes);
        assert!(valid.len() > 3, "{codec:?}: {} blocks", valid.len() - 1);
        for cut in 0..bytes.len() {
            let result = read_all(&bytes[..cut], batch.schema(), 7);
            if valid.contains(&cut) {
                assert!(rows(&result.unwrap()) < batch.num_rows());
            } else {
                assert!(result.is_err(), "{codec:?}: cut at {cut} of {} read fine", bytes.len());
            }
        }
        assert_eq!(rows(&read_all(&bytes, batch.schema(), 7).unwrap()), batch.num_rows());
    }
}

#[test]
fn bit_flipped_files_never_panic() {
    let batch = fuzz_batch();
    for codec in CODECS {
        let bytes = encode(std::slice::from_ref(&batch), codec, 150);
        let syncs: Vec<usize> = boundaries(&bytes).iter().map(|end| end - 16).collect();
        let (mut errors, mut total) = (0, 0);
        let mut flipped = bytes.clone();
        for at in 0..bytes.len() {
            for bit in 0..8 {
                flipped[at] ^= 1 << bit;
                let result = read_all(&flipped, batch.schema(), 7);
                flipped[at] ^= 1 << bit;
                total += 1;
                if let Err(e) = &result {
                    errors += 1;
                    if syncs[1..].iter().any(|&s| (s..s + 16).contains(&at)) {
                        assert!(e.contains("corrupt block"), "{codec:?}: flip at {at}: {e}");
                    }
                } else {
                    let in_sync = syncs.iter().any(|&s| (s..s + 16).contains(&at));
                    assert!(at >= 4 && !in_sync, "{codec:?}: flip at {at} (magic or sync) read fine");
                    if matches!(codec, AvroCodec::Snappy | AvroCodec::Zstd(_)) && at > syncs[0] + 16 {
                        // Snappy and zstd blocks carry a checksum: a flip in a block reads the same rows or fails.
                        assert_eq!(
                            result.unwrap(),
                            vec![
                                batch.slice(0, 7),
                                batch.slice(7, 7),
                                batch.slice(14, 7),
                                batch.slice(21, 7),
                                batch.slice(28, 2)
                            ],
                            "{codec:?}: flip at {at}"
                        );
                    }
                }
            }
        }
        eprintln!("{codec:?}: {errors} of {total} bit flips are errors, none panicked");
    }
}

/// A header for `schema` (null codec) and its sync marker.
fn header(schema: SchemaRef) -> (Vec<u8>, Vec<u8>) {
    let header = AvroEncoder::new(schema, AvroCodec::Null, 1000).unwrap().take_ready().concat();
    let sync = header[header.len() - 16..].to_vec();
    (header, sync)
}

#[test]
fn hostile_lengths_are_errors_without_allocating_them() {
    let text = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false)]));
    let list = Arc::new(Schema::new(vec![Field::new(
        "l",
        DataType::List(Arc::new(Field::new("item", DataType::Int64, false))),
        false,
    )]));
    let block = |schema: &SchemaRef, count: i64, size: i64, data: &[u8]| {
        let (mut file, sync) = header(schema.clone());
        put_long(&mut file, count);
        put_long(&mut file, size);
        file.extend_from_slice(data);
        file.extend_from_slice(&sync);
        file
    };
    let long = |v: i64| {
        let mut out = Vec::new();
        put_long(&mut out, v);
        out
    };
    let cases: Vec<(&str, SchemaRef, Vec<u8>)> = vec![
        ("block size of 2^60", text.clone(), block(&text, 1, 1 << 60, b"\x02a")),
        ("negative block size", text.clone(), block(&text, 1, -5, b"\x02a")),
        ("block size past the end", text.clone(), block(&text, 1, 60_000_000, b"\x02a")),
        ("2^62 rows in 2 bytes", text.clone(), block(&text, 1 << 62, 2, b"\x02a")),
        ("negative rows", text.clone(), block(&text, -1, 2, b"\x02a")),
        ("string of 2^40 bytes", text.clone(), block(&text, 1, 6, &long(1 << 40))),
        ("negative string length", text.clone(), block(&text, 1, 1, &long(-3))),
        ("string past the block", text.clone(), block(&text, 1, 2, b"\x08a")),
        ("invalid UTF-8", text.clone(), block(&text, 1, 3, b"\x04\xff\xfe")),
        ("varint of 11 bytes", text.clone(), block(&text, 1, 11, &[0xff; 11])),
        ("array of 2^61 items", list.clone(), block(&list, 1, 10, &[long(1 << 61), vec![2]].concat())),
        ("array count i64::MIN", list.clone(), block(&list, 1, 11, &[long(i64::MIN), vec![2]].concat())),
        ("unterminated array", list.clone(), block(&list, 1, 3, &[long(1), long(5)].concat())),
        ("trailing bytes in a block", text.clone(), block(&text, 1, 3, b"\x02ab")),
    ];
    for (what, schema, file) in cases {
        assert!(read_all(&file, schema, 10).is_err(), "{what}");
    }
    // Metadata claiming 2^62 bytes, and a truncated claim of 60 MB.
    let mut file = b"Obj\x01\x02".to_vec();
    put_long(&mut file, 1 << 62);
    assert!(read_all(&file, text.clone(), 10).unwrap_err().contains("64 MiB"));
    let mut file = b"Obj\x01\x02\x16avro.schema".to_vec();
    put_long(&mut file, 60_000_000);
    assert!(read_all(&file, text.clone(), 10).unwrap_err().contains("truncated"));
    assert!(read_all(b"Obj\x02", text.clone(), 10).unwrap_err().contains("magic"));
    assert!(read_all(b"", text.clone(), 10).is_err());

    // Decompression bombs: 100 MiB of zeros in a small block.
    let zeros = vec![0u8; 100 * 1024 * 1024];
    let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(9));
    deflate.write_all(&zeros).unwrap();
    let zstd = zstd::bulk::compress(&zeros, 3).unwrap();
    for (codec, data) in [("deflate", deflate.finish().unwrap()), ("zstandard", zstd)] {
        let file = with_codec(block(&text, 1, len_i64(data.len()), &data), codec);
        let err = read_all(&file, text.clone(), 10).unwrap_err();
        assert!(err.contains("64 MiB"), "{codec}: {err}");
    }
    // A snappy block whose header claims 1 GiB.
    let mut claim = Vec::new();
    let mut n = 1u64 << 30;
    while n >= 0x80 {
        claim.push((n as u8) | 0x80);
        n >>= 7;
    }
    claim.push(n as u8);
    claim.extend_from_slice(&[0; 8]);
    let file = with_codec(block(&text, 1, len_i64(claim.len()), &claim), "snappy");
    assert!(read_all(&file, text.clone(), 10).unwrap_err().contains("64 MiB"));
    // A snappy block with a bad checksum.
    let mut bytes = encode(
        &[RecordBatch::try_new(text.clone(), vec![Arc::new(StringArray::from(vec!["abc"; 10]))]).unwrap()],
        AvroCodec::Snappy,
        1000,
    );
    let crc_at = bytes.len() - 17;
    bytes[crc_at] ^= 1;
    assert!(read_all(&bytes, text.clone(), 10).unwrap_err().contains("checksum"));

    // Garbage after a valid header.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..300 {
        let (mut file, sync) = header(list.clone());
        for _ in 0..(round % 50) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            file.push(seed as u8);
            if seed.is_multiple_of(23) {
                file.extend_from_slice(&sync);
            }
        }
        let _ = read_all(&file, list.clone(), 3);
    }
}

/// `file` (written with the null codec) relabelled as `codec`; the schema and sync stay.
fn with_codec(file: Vec<u8>, codec: &str) -> Vec<u8> {
    let at = file.windows(10).position(|w| w == b"avro.codec").unwrap();
    let mut out = file[..at + 10].to_vec();
    put_bytes(&mut out, codec.as_bytes());
    out.extend_from_slice(&file[at + 15..]);
    out
}
