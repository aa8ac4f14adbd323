//! The JSON lines encoder: Arrow batches into one JSON object per row, newline terminated
//! (plain or gzip-wrapped), for tools that want self-describing text.
//!
//! Every object carries every column, in schema order, with `null` for a null value, so a
//! row's shape never depends on its data. An empty file is empty (with gzip: a valid gzip
//! stream of nothing). How values are written (arrow-json):
//! - 64-bit integers as bare JSON numbers, in full (`9007199254740993`): exact for readers
//!   that parse integers as such (Arrow, DuckDB, Python, serde_json), rounded by JavaScript
//!   `JSON.parse`, which reads every number as a double;
//! - decimals as bare JSON numbers in plain notation with all their scale digits
//!   (`-1234.50`), never as strings: exact when read into a decimal type, rounded when read
//!   as a double;
//! - floats in the shortest form that reads back to the same value; NaN and infinities,
//!   which JSON cannot express, as `null`;
//! - timestamps with a time zone as RFC 3339 strings of the instant in UTC
//!   (`"2023-03-14T04:03:07.963883Z"`), whatever zone the column carries; without a zone,
//!   the same without `Z`; dates as `"YYYY-MM-DD"`; lists and structs as JSON arrays and
//!   objects.
//!
//! It must never skip a key or vary the column order between rows.

use arrow::datatypes::SchemaRef;
use arrow::json::writer::LineDelimited;
use arrow::json::{Writer, WriterBuilder};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;

use super::writer::{TextSink, UtcTimestamps};
use super::{Codec, Encoder, EncoderOptions, FormatError};

/// Encodes batches into JSON lines.
pub(crate) struct JsonlEncoder {
    writer: Writer<TextSink, LineDelimited>,
    utc: UtcTimestamps,
}

impl JsonlEncoder {
    /// A JSON lines encoder for `schema`, wrapped in gzip when `codec` is [`Codec::Gzip`].
    ///
    /// Fails with [`FormatError::Invalid`] for a codec other than gzip or none.
    pub(crate) fn new(schema: SchemaRef, codec: Codec, options: &EncoderOptions) -> Result<Self, FormatError> {
        let sink = TextSink::new(codec, options, "jsonl")?;
        Ok(JsonlEncoder {
            writer: WriterBuilder::new().with_explicit_nulls(true).build(sink),
            utc: UtcTimestamps::new(&schema),
        })
    }
}

impl Encoder for JsonlEncoder {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), FormatError> {
        let batch = self.utc.apply(batch)?;
        Ok(self.writer.write(&batch)?)
    }

    fn take_ready(&mut self) -> Vec<Bytes> {
        super::pieces(self.writer.get_mut().take_ready())
    }

    fn in_progress_size(&self) -> usize {
        self.writer.get_ref().in_progress_size()
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<Bytes>, FormatError> {
        self.writer.finish()?;
        Ok(super::pieces(self.writer.into_inner().finish()?))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, Date32Array, Decimal128Array, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
    };
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("day", DataType::Date32, true),
            Field::new("amount", DataType::Decimal128(18, 2), true),
            Field::new("ratio", DataType::Float64, true),
        ]))
    }

    fn batch() -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![9_007_199_254_740_993, -1])),
            Arc::new(StringArray::from(vec![Some("a\"b\nc é"), None])),
            Arc::new(TimestampMicrosecondArray::from(vec![Some(1_678_766_587_963_883), None]).with_timezone("UTC")),
            Arc::new(Date32Array::from(vec![Some(19_430), None])),
            Arc::new(Decimal128Array::from(vec![Some(-123_450), None]).with_precision_and_scale(18, 2).unwrap()),
            Arc::new(Float64Array::from(vec![Some(f64::NAN), None])),
        ];
        RecordBatch::try_new(schema(), columns).unwrap()
    }

    fn encode(codec: Codec, batches: &[RecordBatch]) -> Vec<u8> {
        let mut encoder = Box::new(JsonlEncoder::new(schema(), codec, &EncoderOptions::default()).unwrap());
        let mut object = Vec::new();
        for batch in batches {
            encoder.write(batch).unwrap();
            object.extend_from_slice(&encoder.take_ready().concat());
        }
        object.extend_from_slice(&encoder.finish().unwrap().concat());
        object
    }

    #[test]
    fn every_key_on_every_line() {
        let text = String::from_utf8(encode(Codec::None, &[batch()])).unwrap();
        assert_eq!(
            text,
            "{\"id\":9007199254740993,\"name\":\"a\\\"b\\nc é\",\
             \"at\":\"2023-03-14T04:03:07.963883Z\",\"day\":\"2023-03-14\",\
             \"amount\":-1234.50,\"ratio\":null}\n\
             {\"id\":-1,\"name\":null,\"at\":null,\"day\":null,\"amount\":null,\"ratio\":null}\n"
        );
    }

    #[test]
    fn empty_file_is_empty() {
        assert!(encode(Codec::None, &[]).is_empty());
        let gz = encode(Codec::Gzip, &[]);
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut text).unwrap();
        assert!(text.is_empty());
    }

    #[test]
    fn gzip_wraps_the_same_text() {
        let plain = encode(Codec::None, &[batch(), batch()]);
        let gz = encode(Codec::Gzip, &[batch(), batch()]);
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut text).unwrap();
        assert_eq!(text, plain);
    }

    #[test]
    fn text_only_codecs() {
        for codec in [Codec::Zstd, Codec::Snappy] {
            assert!(matches!(
                JsonlEncoder::new(schema(), codec, &EncoderOptions::default()),
                Err(FormatError::Invalid(_))
            ));
        }
    }
}
