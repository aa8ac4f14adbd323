//! The CSV encoder: Arrow batches into one CSV file (plain or gzip-wrapped), for customers
//! whose tools want text.
//!
//! By default one header line opens every file, even an empty one; fields are separated by the
//! configured delimiter and quoted (with `""` for a quote) only where they contain the
//! delimiter, a quote or a line break; lines end with `\n`. Each of those is a CSV option of
//! the format ([`CsvStyle`]: header, quote, escape, NULL text, line ending). How values are
//! written:
//! - timestamps with a time zone: the instant in UTC, RFC 3339 with `Z` and as many
//!   fractional digits as needed (`2023-03-14T04:03:07.963883Z`), whatever zone the column
//!   carries; without a time zone, the same without `Z` (`2023-03-14T04:03:07.963883`);
//!   dates `YYYY-MM-DD`;
//! - decimals in plain notation with all their scale digits (`-1234.50`), integers in full,
//!   floats in the shortest form that reads back to the same value;
//! - null as an empty field by default. Then CSV cannot tell a null from an empty string: both
//!   read back as null (Arrow, DuckDB and Spark by default). Set a NULL text (`null = "\\N"`)
//!   where that matters: empty strings are then written as empty fields and nulls as the text.
//!
//! It must never write a nested column (list, struct, map) in some ad-hoc text form: those
//! are rejected when the encoder is made, naming the column.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;

use super::writer::{TextSink, UtcTimestamps};
use super::{Codec, CsvStyle, Encoder, EncoderOptions, FormatError};

/// Encodes batches into CSV text.
pub(crate) struct CsvEncoder {
    schema: SchemaRef,
    style: CsvStyle,
    utc: UtcTimestamps,
    sink: TextSink,
    started: bool,
}

impl CsvEncoder {
    /// A CSV encoder for `schema` writing text in `style`, wrapped in gzip when `codec` is
    /// [`Codec::Gzip`].
    ///
    /// Fails with [`FormatError::Unsupported`] for a nested column, and with
    /// [`FormatError::Invalid`] for a codec other than gzip or none.
    pub(crate) fn new(
        schema: SchemaRef,
        style: CsvStyle,
        codec: Codec,
        options: &EncoderOptions,
    ) -> Result<Self, FormatError> {
        if let Some(field) = schema.fields().iter().find(|f| f.data_type().is_nested()) {
            return Err(FormatError::Unsupported {
                column: field.name().clone(),
                data_type: field.data_type().to_string(),
                format: "csv",
            });
        }
        Ok(CsvEncoder {
            utc: UtcTimestamps::new(&schema),
            schema,
            style,
            sink: TextSink::new(codec, options, "csv")?,
            started: false,
        })
    }

    fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), FormatError> {
        let batch = self.utc.apply(batch)?;
        // arrow's CSV writer cannot hand back its inner writer by reference, so a light one
        // is built per batch over the sink; only the first writes the header.
        let style = &self.style;
        let mut builder = arrow::csv::WriterBuilder::new()
            .with_header(style.header && !self.started)
            .with_delimiter(style.delimiter)
            .with_quote(style.quote)
            .with_null(style.null.clone());
        if let Some(escape) = style.escape {
            builder = builder.with_escape(escape).with_double_quote(false);
        }
        if style.crlf {
            builder = builder.with_line_terminator(arrow::csv::writer::Terminator::CRLF);
        }
        let mut writer = builder.build(&mut self.sink);
        writer.write(&batch)?;
        self.started = true;
        Ok(())
    }
}

impl Encoder for CsvEncoder {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), FormatError> {
        self.write_batch(batch)
    }

    fn take_ready(&mut self) -> Vec<Bytes> {
        super::pieces(self.sink.take_ready())
    }

    fn in_progress_size(&self) -> usize {
        self.sink.in_progress_size()
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<Bytes>, FormatError> {
        if !self.started && self.style.header {
            // An empty file still says what its columns are.
            self.write_batch(&RecordBatch::new_empty(Arc::clone(&self.schema)))?;
        }
        Ok(super::pieces(self.sink.finish()?))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use arrow::array::{ArrayRef, Decimal128Array, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    use super::*;
    use crate::format::{Delimiter, Format, FormatKind, LineEnding};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("amount", DataType::Decimal128(18, 2), true),
            Field::new("ratio", DataType::Float64, true),
        ]))
    }

    fn batch() -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![9_007_199_254_740_993, -1])),
            Arc::new(StringArray::from(vec![Some("a,b;\"c\"\nd"), None])),
            Arc::new(TimestampMicrosecondArray::from(vec![Some(1_678_766_587_963_883), None]).with_timezone("UTC")),
            Arc::new(Decimal128Array::from(vec![Some(-123_450), None]).with_precision_and_scale(18, 2).unwrap()),
            Arc::new(Float64Array::from(vec![Some(0.1), None])),
        ];
        RecordBatch::try_new(schema(), columns).unwrap()
    }

    fn encode(delimiter: Delimiter, codec: Codec, batches: &[RecordBatch]) -> Vec<u8> {
        let format = Format { delimiter: Some(delimiter), ..Format::new(FormatKind::Csv, codec) };
        encode_as(&format, batches)
    }

    fn encode_as(format: &Format, batches: &[RecordBatch]) -> Vec<u8> {
        format.validate().unwrap();
        let mut encoder =
            Box::new(CsvEncoder::new(schema(), format.csv_style(), format.codec, &EncoderOptions::default()).unwrap());
        let mut object = Vec::new();
        for batch in batches {
            encoder.write(batch).unwrap();
            object.extend_from_slice(&encoder.take_ready().concat());
        }
        object.extend_from_slice(&encoder.finish().unwrap().concat());
        object
    }

    #[test]
    fn renders_values_unambiguously() {
        let text = String::from_utf8(encode(Delimiter::Comma, Codec::None, &[batch()])).unwrap();
        assert_eq!(
            text,
            "id,name,at,amount,ratio\n\
             9007199254740993,\"a,b;\"\"c\"\"\nd\",2023-03-14T04:03:07.963883Z,-1234.50,0.1\n\
             -1,,,,\n"
        );
    }

    #[test]
    fn header_once_per_file_with_the_delimiter() {
        let text = String::from_utf8(encode(Delimiter::Tab, Codec::None, &[batch(), batch()])).unwrap();
        assert_eq!(text.matches("id\tname\tat\tamount\tratio\n").count(), 1);
        assert!(text.starts_with("id\tname"));
        let text = String::from_utf8(encode(Delimiter::Semicolon, Codec::None, &[batch()])).unwrap();
        assert!(text.starts_with("id;name;at;amount;ratio\n"));
        // A field holding the delimiter is quoted.
        assert!(text.contains("\"a,b;\"\"c\"\"\nd\""));
    }

    #[test]
    fn empty_file_is_the_header_alone() {
        assert_eq!(encode(Delimiter::Comma, Codec::None, &[]), b"id,name,at,amount,ratio\n");
        let gz = encode(Delimiter::Comma, Codec::Gzip, &[]);
        let mut text = String::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_string(&mut text).unwrap();
        assert_eq!(text, "id,name,at,amount,ratio\n");
    }

    #[test]
    fn gzip_wraps_the_same_text() {
        let plain = encode(Delimiter::Comma, Codec::None, &[batch(), batch()]);
        let gz = encode(Delimiter::Comma, Codec::Gzip, &[batch(), batch()]);
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut text).unwrap();
        assert_eq!(text, plain);
    }

    #[test]
    fn nested_columns_are_rejected_by_name() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("tags", DataType::new_list(DataType::Int32, true), true),
        ]));
        match CsvEncoder::new(
            schema,
            Format::new(FormatKind::Csv, Codec::None).csv_style(),
            Codec::None,
            &EncoderOptions::default(),
        ) {
            Err(FormatError::Unsupported { column, format, .. }) => {
                assert_eq!(column, "tags");
                assert_eq!(format, "csv");
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("a list column was accepted"),
        }
    }

    #[test]
    fn options_shape_the_text_header_quote_escape_null_and_line_ending() {
        let format = Format {
            header: Some(false),
            quote: Some('\''),
            escape: Some('\\'),
            null: Some("NULL".into()),
            line_ending: Some(LineEnding::Crlf),
            ..Format::new(FormatKind::Csv, Codec::None)
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec![Some("it's"), Some(""), None])),
            Arc::new(TimestampMicrosecondArray::from(vec![None, None, None]).with_timezone("UTC")),
            Arc::new(Decimal128Array::from(vec![None, None, None]).with_precision_and_scale(18, 2).unwrap()),
            Arc::new(Float64Array::from(vec![None, None, None])),
        ];
        let batch = RecordBatch::try_new(schema(), columns).unwrap();
        let text = String::from_utf8(encode_as(&format, &[batch])).unwrap();
        assert_eq!(text, "1,'it\\'s',NULL,NULL,NULL\r\n2,,NULL,NULL,NULL\r\n3,NULL,NULL,NULL,NULL\r\n");
        // No header: an empty file is empty.
        assert!(encode_as(&format, &[]).is_empty());
    }
}
