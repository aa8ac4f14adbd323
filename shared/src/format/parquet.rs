//! The Parquet encoder: Arrow batches into one Parquet file, streamed out row group by row
//! group.
//!
//! Compression is Parquet's own, per column chunk (so a `.parquet.gz` file is a plain
//! Parquet file every reader opens), statistics are written per page and per column chunk
//! so readers can prune, and the Arrow schema is embedded so types such as timestamps with
//! a time zone read back exactly.
//!
//! It must never hold more than one row group in memory: a row group is closed once its
//! encoded size reaches `row_group_bytes` or its rows reach `row_group_rows`, and its bytes
//! become ready to take at once.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::{Codec, Encoder, EncoderOptions, FormatError};

/// Encodes batches into a Parquet file held in memory only until its bytes are taken.
pub(crate) struct ParquetEncoder {
    writer: ArrowWriter<Vec<u8>>,
}

impl ParquetEncoder {
    /// A Parquet encoder for `schema` with column chunks compressed by `codec`.
    ///
    /// Fails if a level or row-group limit in `options` is out of range, or if `schema` has
    /// a type Parquet cannot store.
    pub(crate) fn new(
        schema: SchemaRef,
        codec: Codec,
        options: &EncoderOptions,
    ) -> Result<Self, FormatError> {
        if options.row_group_rows == 0 || options.row_group_bytes == 0 {
            return Err(FormatError::Invalid(format!(
                "row group limits must be positive (rows {}, bytes {})",
                options.row_group_rows, options.row_group_bytes
            )));
        }
        let compression = match codec {
            Codec::None => Compression::UNCOMPRESSED,
            Codec::Gzip => Compression::GZIP(
                GzipLevel::try_new(super::writer::gzip_level(options)?)
                    .map_err(|e| FormatError::Invalid(format!("gzip level: {e}")))?,
            ),
            Codec::Zstd => {
                Compression::ZSTD(ZstdLevel::try_new(options.zstd_level).map_err(|e| {
                    FormatError::Invalid(format!("zstd level {}: {e}", options.zstd_level))
                })?)
            }
            Codec::Snappy => Compression::SNAPPY,
        };
        let props = WriterProperties::builder()
            .set_compression(compression)
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(options.row_group_rows))
            .set_max_row_group_bytes(Some(options.row_group_bytes))
            .set_created_by(concat!("byob ", env!("CARGO_PKG_VERSION")).to_owned())
            .build();
        // `try_new` embeds the Arrow schema in the footer metadata (the default).
        let writer = ArrowWriter::try_new(Vec::new(), schema, Some(props))?;
        Ok(ParquetEncoder { writer })
    }
}

impl Encoder for ParquetEncoder {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), FormatError> {
        // The writer closes a row group itself once its estimated encoded size
        // (`in_progress_size`) reaches `row_group_bytes` or its rows reach
        // `row_group_rows`, splitting a batch across row groups where needed.
        self.writer.write(batch)?;
        // Push closed row groups through the writer's internal BufWriter into our Vec, so
        // they are ready to take now rather than when the next row group closes.
        self.writer.sync()?;
        Ok(())
    }

    fn take_ready(&mut self) -> Vec<u8> {
        // Safe: the SerializedFileWriter counts offsets in its own tracked writer, so
        // removing what already reached the Vec changes nothing it will write later.
        std::mem::take(self.writer.inner_mut())
    }

    fn in_progress_size(&self) -> usize {
        self.writer.in_progress_size()
    }

    fn finish(self: Box<Self>) -> Result<Vec<u8>, FormatError> {
        Ok(self.writer.into_inner()?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        Array, ArrayRef, Date32Array, Decimal128Array, Int64Array, StringArray,
        TimestampMicrosecondArray,
    };
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::reader::FileReader;
    use parquet::file::serialized_reader::SerializedFileReader;

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("day", DataType::Date32, true),
            Field::new("amount", DataType::Decimal128(18, 2), true),
        ]))
    }

    fn batch(start: i64, n: i64) -> RecordBatch {
        let ids: Vec<i64> = (start..start + n).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(StringArray::from(
                ids.iter()
                    .map(|i| (i % 3 != 0).then(|| format!("n{i}")))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(
                TimestampMicrosecondArray::from(
                    ids.iter()
                        .map(|i| Some(1_700_000_000_000_000 + i))
                        .collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(Date32Array::from(
                ids.iter()
                    .map(|i| Some(19_000 + (*i as i32 % 100)))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(
                Decimal128Array::from(
                    ids.iter()
                        .map(|i| Some(i128::from(*i) * 101))
                        .collect::<Vec<_>>(),
                )
                .with_precision_and_scale(18, 2)
                .unwrap(),
            ),
        ];
        RecordBatch::try_new(schema(), columns).unwrap()
    }

    fn read_back(object: Vec<u8>) -> Vec<RecordBatch> {
        ParquetRecordBatchReaderBuilder::try_new(Bytes::from(object))
            .unwrap()
            .build()
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    }

    #[test]
    fn drained_chunks_plus_footer_read_back() {
        // GIVEN small row groups, so bytes become ready while the file is being written
        let options = EncoderOptions {
            row_group_rows: 1000,
            row_group_bytes: 1 << 30,
            ..Default::default()
        };
        for codec in [Codec::None, Codec::Gzip, Codec::Zstd, Codec::Snappy] {
            let mut encoder = Box::new(ParquetEncoder::new(schema(), codec, &options).unwrap());
            let mut object = Vec::new();
            let mut parts = 0;
            for i in 0..5 {
                encoder.write(&batch(i * 1500, 1500)).unwrap();
                let ready = encoder.take_ready();
                parts += usize::from(!ready.is_empty());
                object.extend_from_slice(&ready);
            }
            // WHEN the file is assembled from the drained parts and the footer
            object.extend_from_slice(&encoder.finish().unwrap());
            // THEN it reads back whole, with every row group and the same schema
            assert!(parts >= 4, "{codec:?}: only {parts} parts were ready early");
            let reader = SerializedFileReader::new(Bytes::from(object.clone())).unwrap();
            assert_eq!(reader.metadata().num_row_groups(), 8, "{codec:?}");
            let batches = read_back(object);
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            assert_eq!(rows, 7500);
            assert_eq!(batches[0].schema(), schema());
            let expected = arrow::compute::concat_batches(
                &schema(),
                &(0..5).map(|i| batch(i * 1500, 1500)).collect::<Vec<_>>(),
            )
            .unwrap();
            let actual = arrow::compute::concat_batches(&schema(), &batches).unwrap();
            assert_eq!(actual, expected);
        }
    }

    #[test]
    fn row_groups_close_at_the_byte_limit() {
        let options = EncoderOptions {
            row_group_rows: 1 << 20,
            row_group_bytes: 16 * 1024,
            ..Default::default()
        };
        let mut encoder = Box::new(ParquetEncoder::new(schema(), Codec::None, &options).unwrap());
        for i in 0..20 {
            encoder.write(&batch(i * 1000, 1000)).unwrap();
            assert!(encoder.in_progress_size() < 2 * 16 * 1024);
        }
        let mut object = encoder.take_ready();
        object.extend_from_slice(&encoder.finish().unwrap());
        let reader = SerializedFileReader::new(Bytes::from(object)).unwrap();
        assert!(reader.metadata().num_row_groups() > 5);
    }

    #[test]
    fn codec_and_statistics_are_in_the_footer() {
        for (codec, expected) in [
            (Codec::Gzip, "GZIP"),
            (Codec::Zstd, "ZSTD"),
            (Codec::Snappy, "SNAPPY"),
            (Codec::None, "UNCOMPRESSED"),
        ] {
            let mut encoder =
                Box::new(ParquetEncoder::new(schema(), codec, &EncoderOptions::default()).unwrap());
            encoder.write(&batch(10, 100)).unwrap();
            let mut object = encoder.take_ready();
            object.extend_from_slice(&encoder.finish().unwrap());
            let reader = SerializedFileReader::new(Bytes::from(object)).unwrap();
            let column = reader.metadata().row_group(0).column(0);
            assert!(
                column.compression().to_string().starts_with(expected),
                "{codec:?}"
            );
            let stats = column.statistics().unwrap();
            assert_eq!(stats.min_bytes_opt(), Some(&10i64.to_le_bytes()[..]));
            assert_eq!(stats.max_bytes_opt(), Some(&109i64.to_le_bytes()[..]));
            assert!(
                column.column_index_range().is_some(),
                "page statistics (column index)"
            );
        }
    }

    #[test]
    fn empty_file_has_the_schema_and_no_rows() {
        let encoder = Box::new(
            ParquetEncoder::new(schema(), Codec::Gzip, &EncoderOptions::default()).unwrap(),
        );
        let object = encoder.finish().unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(object)).unwrap();
        assert_eq!(builder.schema(), &schema());
        assert_eq!(builder.metadata().file_metadata().num_rows(), 0);
        let rows: usize = builder
            .build()
            .unwrap()
            .map(|b| b.unwrap().num_rows())
            .sum();
        assert_eq!(rows, 0);
    }

    #[test]
    fn timestamps_keep_their_time_zone() {
        let mut encoder = Box::new(
            ParquetEncoder::new(schema(), Codec::Snappy, &EncoderOptions::default()).unwrap(),
        );
        encoder.write(&batch(0, 3)).unwrap();
        let mut object = encoder.take_ready();
        object.extend_from_slice(&encoder.finish().unwrap());
        let batches = read_back(object);
        let at = batches[0].column(2);
        assert_eq!(
            at.data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(at.len(), 3);
    }

    #[test]
    fn bad_options_are_rejected() {
        for options in [
            EncoderOptions {
                row_group_rows: 0,
                ..Default::default()
            },
            EncoderOptions {
                row_group_bytes: 0,
                ..Default::default()
            },
            EncoderOptions {
                gzip_level: 11,
                ..Default::default()
            },
            EncoderOptions {
                zstd_level: 99,
                ..Default::default()
            },
        ] {
            let codec = if options.zstd_level == 99 {
                Codec::Zstd
            } else {
                Codec::Gzip
            };
            assert!(matches!(
                ParquetEncoder::new(schema(), codec, &options),
                Err(FormatError::Invalid(_))
            ));
        }
    }
}
