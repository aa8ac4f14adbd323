//! Every format x codec x delimiter: random batches written through [`FileWriter`] with parts
//! taken in between, assembled as a sink would store them, read back with the reference
//! readers, and compared with the input; the reported stats must describe the bytes stored.

use std::io::{BufReader, Cursor, Read};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use byob::format::{Codec, Delimiter, EncoderOptions, FileStats, FileWriter, Format, FormatKind};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use proptest::prelude::*;
use sha2::{Digest, Sha256};

fn schema_with_tz(tz: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("small", DataType::Int32, true),
        Field::new("ratio", DataType::Float64, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, Some(tz.into())), true),
        Field::new("day", DataType::Date32, true),
        Field::new("amount", DataType::Decimal128(18, 2), true),
    ]))
}

fn schema() -> SchemaRef {
    schema_with_tz("UTC")
}

/// The schema the text readers are given: arrow (without `chrono-tz`) parses only
/// offset-based zones, and "+00:00" is the same instant as "UTC".
fn reading_schema() -> SchemaRef {
    schema_with_tz("+00:00")
}

type Row = (i64, Option<i32>, Option<f64>, Option<bool>, Option<String>, Option<i64>, Option<i32>, Option<i128>);

/// 0001-01-01 and 9999-12-31 (days and microseconds since the epoch): what RFC 3339 and
/// ISO dates can spell.
const MIN_DAY: i32 = -719_162;
const MAX_DAY: i32 = 2_932_896;
const MIN_MICROS: i64 = -62_135_596_800_000_000;
const MAX_MICROS: i64 = 253_402_300_799_999_999;
const MAX_DECIMAL: i128 = 999_999_999_999_999_999;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        // What breaks CSV and JSON: separators, quotes, line breaks, escapes, non-ASCII.
        "[a-zA-Z0-9 ,;\"'\\\\\t\r\né€😀\u{0}]{0,16}",
        any::<String>(),
    ]
}

fn finite_f64() -> impl Strategy<Value = f64> {
    use proptest::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
}

fn row() -> impl Strategy<Value = Row> {
    (
        any::<i64>(),
        proptest::option::of(any::<i32>()),
        proptest::option::of(finite_f64()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(text()),
        proptest::option::of(MIN_MICROS..=MAX_MICROS),
        proptest::option::of(MIN_DAY..=MAX_DAY),
        proptest::option::of(-MAX_DECIMAL..=MAX_DECIMAL),
    )
}

fn batch(rows: &[Row]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(Int32Array::from_iter(rows.iter().map(|r| r.1))),
        Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.2))),
        Arc::new(BooleanArray::from_iter(rows.iter().map(|r| r.3))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.4.clone()))),
        Arc::new(TimestampMicrosecondArray::from_iter(rows.iter().map(|r| r.5)).with_timezone("UTC")),
        Arc::new(Date32Array::from_iter(rows.iter().map(|r| r.6))),
        Arc::new(
            Decimal128Array::from_iter(rows.iter().map(|r| r.7))
                .with_precision_and_scale(18, 2)
                .expect("valid precision"),
        ),
    ];
    RecordBatch::try_new(schema(), columns).expect("valid batch")
}

fn all_formats() -> Vec<Format> {
    let mut formats = Vec::new();
    for codec in [Codec::None, Codec::Gzip, Codec::Zstd, Codec::Snappy] {
        formats.push(Format::new(FormatKind::Parquet, codec));
    }
    for codec in [Codec::None, Codec::Gzip] {
        for delimiter in [Delimiter::Comma, Delimiter::Semicolon, Delimiter::Tab] {
            formats.push(Format { delimiter: Some(delimiter), ..Format::new(FormatKind::Csv, codec) });
        }
        formats.push(Format::new(FormatKind::Jsonl, codec));
    }
    formats
}

/// Small row groups, so Parquet files have several and bytes are ready mid-file.
fn options() -> EncoderOptions {
    EncoderOptions { row_group_rows: 7, row_group_bytes: 4096, ..EncoderOptions::default() }
}

/// Writes `batches` as one file, taking the ready bytes after each batch as a sink would.
fn write_file(format: &Format, batches: &[RecordBatch]) -> (Vec<u8>, FileStats) {
    let mut writer = FileWriter::new(format, schema(), &options()).expect("writer");
    let mut object = Vec::new();
    for batch in batches {
        writer.write(batch).expect("write");
        object.extend_from_slice(&writer.take_ready().concat());
        assert!(writer.estimated_size() >= object.len() as u64);
    }
    let (last, stats) = writer.finish().expect("finish");
    object.extend_from_slice(&last.concat());
    (object, stats)
}

fn gunzip_if(codec: Codec, object: Vec<u8>) -> Vec<u8> {
    if codec != Codec::Gzip {
        return object;
    }
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(&object[..]).read_to_end(&mut text).expect("valid gzip");
    text
}

/// Gives text-read columns their original types back (the zone label of `at`).
fn relabel(batch: RecordBatch) -> RecordBatch {
    let columns = batch
        .columns()
        .iter()
        .zip(schema().fields())
        .map(|(column, field)| cast(column, field.data_type()).expect("relabel"))
        .collect();
    RecordBatch::try_new(schema(), columns).expect("relabelled batch")
}

fn read_back(format: &Format, object: Vec<u8>) -> RecordBatch {
    let batches: Vec<RecordBatch> = match format.kind {
        FormatKind::Parquet => ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(object))
            .expect("parquet footer")
            .build()
            .expect("parquet reader")
            .collect::<Result<_, _>>()
            .expect("parquet batches"),
        FormatKind::Csv => arrow::csv::ReaderBuilder::new(reading_schema())
            .with_header(true)
            .with_delimiter(format.delimiter().byte())
            .build(Cursor::new(gunzip_if(format.codec, object)))
            .expect("csv reader")
            .map(|b| b.map(relabel))
            .collect::<Result<_, _>>()
            .expect("csv batches"),
        FormatKind::Jsonl => arrow::json::ReaderBuilder::new(reading_schema())
            .build(BufReader::new(Cursor::new(gunzip_if(format.codec, object))))
            .expect("json reader")
            .map(|b| b.map(relabel))
            .collect::<Result<_, _>>()
            .expect("json batches"),
        // Not in all_formats: format::avro's own tests round-trip it, and fastavro reads it.
        FormatKind::Avro => unreachable!("Avro is checked by format::avro's tests"),
    };
    concat_batches(&schema(), &batches).expect("concat")
}

/// CSV cannot tell an empty string from a null: both read back as null.
fn as_csv_reads_it(batch: RecordBatch) -> RecordBatch {
    let names = batch.column(4).as_any().downcast_ref::<StringArray>().expect("utf8 column");
    let names: StringArray = names.iter().map(|s| s.filter(|s| !s.is_empty())).collect();
    let mut columns = batch.columns().to_vec();
    columns[4] = Arc::new(names);
    RecordBatch::try_new(batch.schema(), columns).expect("normalized batch")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn every_format_reads_back_what_was_written(
        batches in proptest::collection::vec(proptest::collection::vec(row(), 0..24), 0..4)
    ) {
        let batches: Vec<RecordBatch> = batches.iter().map(|rows| batch(rows)).collect();
        let input = concat_batches(&schema(), &batches).expect("concat input");
        for format in all_formats() {
            // GIVEN a file written batch by batch, its parts taken as they were ready
            let (object, stats) = write_file(&format, &batches);

            // THEN the stats describe exactly the stored bytes
            prop_assert_eq!(stats.rows, input.num_rows() as u64, "{}", format);
            prop_assert_eq!(stats.bytes, object.len() as u64, "{}", format);
            prop_assert_eq!(&stats.sha256, &hex::encode(Sha256::digest(&object)), "{}", format);

            // AND the reference reader gets the input back
            let expected = match format.kind {
                FormatKind::Csv => as_csv_reads_it(input.clone()),
                _ => input.clone(),
            };
            let actual = read_back(&format, object);
            prop_assert_eq!(&actual, &expected, "{:?}", format);
        }
    }
}

#[test]
fn empty_files_are_valid_in_every_format() {
    for format in all_formats() {
        // GIVEN a file to which nothing was written
        let (object, stats) = write_file(&format, &[]);
        // THEN it is a valid file of its format with no rows
        assert_eq!(stats.rows, 0);
        assert_eq!(stats.bytes, object.len() as u64);
        match (format.kind, format.codec) {
            (FormatKind::Jsonl, Codec::None) => assert!(object.is_empty()),
            (FormatKind::Csv, _) => {
                let text = gunzip_if(format.codec, object.clone());
                let header = ["id", "small", "ratio", "flag", "name", "at", "day", "amount"]
                    .join(&char::from(format.delimiter().byte()).to_string());
                assert_eq!(String::from_utf8(text).expect("utf8"), format!("{header}\n"));
            }
            (FormatKind::Parquet, _) => {
                let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(object.clone()))
                    .expect("parquet footer");
                assert_eq!(builder.schema(), &schema());
            }
            _ => assert!(!object.is_empty(), "{format}: a gzip stream has a header"),
        }
        assert_eq!(read_back(&format, object).num_rows(), 0, "{format}");
    }
}
