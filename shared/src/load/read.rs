//! A verified file back into Arrow record batches: Parquet with the parquet crate (its codec
//! is inside the file), CSV and JSON lines with arrow's readers (gzip-wrapped or plain) and
//! the receipt's schema.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use flate2::read::MultiGzDecoder;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::format::{Codec, Format, FormatKind};

/// Rows per batch read.
pub const BATCH_ROWS: usize = 8192;

/// Batches of one file.
pub type Batches = Box<dyn Iterator<Item = Result<RecordBatch, String>> + Send>;

/// Opens `path` (a file of `format`) and reads it as batches. `schema` (from the receipt) is
/// what CSV and JSON lines are parsed with; Parquet files carry their own.
pub fn batches(format: &Format, schema: &Schema, path: &Path) -> Result<Batches, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    match format.kind {
        FormatKind::Parquet => {
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| e.to_string())?
                .with_batch_size(BATCH_ROWS)
                .build()
                .map_err(|e| e.to_string())?;
            Ok(Box::new(reader.map(|b| b.map_err(|e| e.to_string()))))
        }
        FormatKind::Csv => {
            let input = unwrap(format.codec, file);
            let style = format.csv_style();
            let mut builder = arrow::csv::ReaderBuilder::new(Arc::new(offset_zones(schema)))
                .with_header(style.header)
                .with_delimiter(style.delimiter)
                .with_quote(style.quote)
                .with_batch_size(BATCH_ROWS);
            if let Some(escape) = style.escape {
                builder = builder.with_escape(escape);
            }
            if !style.null.is_empty() {
                // Only the NULL text is NULL; an empty field is an empty string.
                let exact =
                    regex::Regex::new(&format!("^{}$", regex::escape(&style.null))).map_err(|e| e.to_string())?;
                builder = builder.with_null_regex(exact);
            }
            // Lines ending in \n or \r\n are both read (the reader's default terminator).
            let reader = builder.build(input).map_err(|e| e.to_string())?;
            Ok(Box::new(reader.map(|b| b.map_err(|e| e.to_string()))))
        }
        FormatKind::Avro => {
            let reader = crate::format::read_avro(BufReader::new(file), Arc::new(offset_zones(schema)), BATCH_ROWS)?;
            Ok(Box::new(reader))
        }
        FormatKind::Jsonl => {
            let input = BufReader::new(unwrap(format.codec, file));
            let reader = arrow::json::ReaderBuilder::new(Arc::new(offset_zones(schema)))
                .with_batch_size(BATCH_ROWS)
                .build(input)
                .map_err(|e| e.to_string())?;
            Ok(Box::new(reader.map(|b| b.map_err(|e| e.to_string()))))
        }
    }
}

fn unwrap(codec: Codec, file: File) -> Box<dyn Read + Send> {
    match codec {
        Codec::Gzip => Box::new(MultiGzDecoder::new(BufReader::new(file))),
        _ => Box::new(BufReader::new(file)),
    }
}

/// The schema with every zoned timestamp in `+00:00`: the text readers parse instants with
/// offsets only (no time zone database), and byob writes every instant in UTC.
fn offset_zones(schema: &Schema) -> Schema {
    fn zone(dt: &DataType) -> DataType {
        match dt {
            DataType::Timestamp(unit, Some(_)) => DataType::Timestamp(*unit, Some("+00:00".into())),
            DataType::List(f) => DataType::List(Arc::new(Field::new(f.name(), zone(f.data_type()), f.is_nullable()))),
            other => other.clone(),
        }
    }
    Schema::new(
        schema.fields().iter().map(|f| Field::new(f.name(), zone(f.data_type()), f.is_nullable())).collect::<Vec<_>>(),
    )
}

/// A file of a table: its key in the receipt, the rows the receipt lists, its verified path.
pub type TableFile = (String, u64, std::path::PathBuf);

/// Reads every file of `table` with the receipt's `schema` and hands each batch's columns,
/// cast to `types` (one per column, in order), to `each`. Checks every file holds the rows the
/// receipt lists, and returns the rows read. Both load targets read through this.
pub fn for_each_batch(
    table: &str,
    format: &Format,
    schema: &[crate::schema::ColumnSchema],
    types: &[DataType],
    files: &[TableFile],
    mut each: impl FnMut(Vec<arrow::array::ArrayRef>, usize) -> Result<(), super::LoadError>,
) -> Result<u64, super::LoadError> {
    use super::LoadError;
    let read_schema =
        crate::schema::to_arrow(schema).map_err(|reason| LoadError::Schema { table: table.to_owned(), reason })?;
    let mut total = 0u64;
    for (key, rows, path) in files {
        let decode = |reason: String| LoadError::Decode { table: table.to_owned(), key: key.clone(), reason };
        let mut read_rows = 0u64;
        for batch in batches(format, &read_schema, path).map_err(decode)? {
            let batch = batch.map_err(decode)?;
            read_rows += batch.num_rows() as u64;
            let mut arrays = Vec::with_capacity(schema.len());
            for (c, to) in schema.iter().zip(types) {
                let array = batch
                    .column_by_name(&c.name)
                    .ok_or_else(|| decode(format!("column {:?} is missing from the file", c.name)))?;
                let array = if array.data_type() == to {
                    array.clone()
                } else {
                    arrow::compute::cast(array, to).map_err(|e| decode(format!("column {:?}: {e}", c.name)))?
                };
                arrays.push(array);
            }
            each(arrays, batch.num_rows())?;
        }
        if read_rows != *rows {
            return Err(decode(format!("holds {read_rows} rows, the receipt lists {rows}")));
        }
        total += read_rows;
    }
    Ok(total)
}
