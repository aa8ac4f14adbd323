//! Loading a Parquet lake (what `byob generate` writes) into PostgreSQL tables, so the demo,
//! the tests and the benchmark can run against a real database holding exactly the lake's
//! rows.
//!
//! Each table is replaced: `DROP TABLE IF EXISTS`, `CREATE TABLE` with the lake's columns
//! (NOT NULL where the lake's field is not nullable), `COPY ... FROM STDIN` in text format,
//! an index on the tenant column, all in one transaction, then `ANALYZE` so the planner's
//! estimates (and so slice counts) are right. Files are read and encoded on a blocking
//! thread while the previous chunk travels to the server; memory stays at a few chunks.
//!
//! This is a test and demo tool: it must never be pointed at a database whose tables it
//! could overwrite by accident, which is why it only ever touches the tables it is named.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int16Array, Int32Array, Int64Array, LargeStringArray, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use futures::SinkExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tokio::sync::mpsc;

use super::{Connector, PostgresError, sql};
use crate::{Error, Result};

/// Bytes of COPY text sent to the server at once.
const CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// What was loaded into one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadReport {
    /// The table name.
    pub table: String,
    /// Rows loaded.
    pub rows: u64,
}

/// Loads `<lake>/<table>/*.parquet` into `<schema>.<table>` for each of `tables`, replacing
/// the tables. `progress` is called with a table name and its rows loaded so far.
pub async fn load_lake(
    connector: &Connector,
    schema: &str,
    lake: &Path,
    tables: &[&str],
    progress: &(dyn Fn(&str, u64) + Sync),
) -> Result<Vec<LoadReport>> {
    let fail = |table: &str, e: PostgresError| Error::Source {
        table: table.to_owned(),
        location: connector.name().to_owned(),
        source: Box::new(e),
    };
    let mut reports = Vec::with_capacity(tables.len());
    for &table in tables {
        let files = parquet_files(&lake.join(table))?;
        let Some(first) = files.first() else {
            return Err(Error::io(
                lake.join(table),
                std::io::Error::new(std::io::ErrorKind::NotFound, "no .parquet file"),
            ));
        };
        let arrow_schema = read_schema(first)?;
        let relation = format!(
            "{}.{}",
            sql::ident(schema).map_err(|e| fail(table, e))?,
            sql::ident(table).map_err(|e| fail(table, e))?
        );
        let ddl = create_table(&relation, &arrow_schema).map_err(|e| fail(table, e))?;
        let client = connector.connect().await.map_err(|e| fail(table, e))?;
        let setup = format!(
            "BEGIN; CREATE SCHEMA IF NOT EXISTS {}; DROP TABLE IF EXISTS {relation}; {ddl};",
            sql::ident(schema).map_err(|e| fail(table, e))?
        );
        client.batch_execute(&setup).await.map_err(|e| fail(table, query("creating the table", e)))?;

        let sink = client
            .copy_in::<_, Bytes>(&format!("COPY {relation} FROM STDIN"))
            .await
            .map_err(|e| fail(table, query("starting COPY FROM", e)))?;
        let mut sink = Box::pin(sink);
        let (tx, mut rx) = mpsc::channel::<Result<(Vec<u8>, u64)>>(4);
        let reader_table = table.to_owned();
        let reader = tokio::task::spawn_blocking(move || encode_files(&reader_table, &files, &tx));
        let mut rows = 0u64;
        while let Some(item) = rx.recv().await {
            let (chunk, chunk_rows) = item?;
            sink.send(Bytes::from(chunk)).await.map_err(|e| fail(table, query("sending rows", e)))?;
            rows += chunk_rows;
            progress(table, rows);
        }
        reader.await.map_err(|e| Error::Cancelled(format!("reading the lake's {table}: {e}")))??;
        sink.as_mut().finish().await.map_err(|e| fail(table, query("finishing COPY FROM", e)))?;

        let mut after = String::new();
        if arrow_schema.fields().iter().any(|f| f.name() == "tenant_id") {
            let index = sql::ident(&format!("{table}_tenant_id_idx")).map_err(|e| fail(table, e))?;
            let _ = write!(after, "CREATE INDEX {index} ON {relation} (\"tenant_id\"); ");
        }
        after.push_str("COMMIT; ");
        let _ = write!(after, "ANALYZE {relation};");
        client.batch_execute(&after).await.map_err(|e| fail(table, query("indexing and analyzing", e)))?;
        reports.push(LoadReport { table: table.to_owned(), rows });
    }
    Ok(reports)
}

fn query(what: &str, error: tokio_postgres::Error) -> PostgresError {
    PostgresError::Query { what: what.to_owned(), error }
}

fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    Ok(files)
}

fn read_schema(path: &Path) -> Result<SchemaRef> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_error(path, e))?;
    Ok(builder.schema().clone())
}

fn parquet_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::io(path, std::io::Error::other(e.to_string()))
}

/// `CREATE TABLE relation (...)` for an Arrow schema.
pub(crate) fn create_table(relation: &str, schema: &Schema) -> std::result::Result<String, PostgresError> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let ty = match field.data_type() {
            DataType::Boolean => "boolean".to_owned(),
            DataType::Int16 => "smallint".to_owned(),
            DataType::Int32 => "integer".to_owned(),
            DataType::Int64 => "bigint".to_owned(),
            DataType::Float32 => "real".to_owned(),
            DataType::Float64 => "double precision".to_owned(),
            DataType::Decimal128(p, s) => format!("numeric({p},{s})"),
            DataType::Utf8 | DataType::LargeUtf8 => "text".to_owned(),
            DataType::Binary => "bytea".to_owned(),
            DataType::Date32 => "date".to_owned(),
            DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => "timestamptz".to_owned(),
            DataType::Timestamp(TimeUnit::Microsecond, None) => "timestamp".to_owned(),
            other => {
                return Err(PostgresError::UnsupportedType {
                    column: field.name().clone(),
                    type_name: format!("Arrow {other}"),
                });
            }
        };
        let not_null = if field.is_nullable() { "" } else { " NOT NULL" };
        columns.push(format!("{} {ty}{not_null}", sql::ident(field.name())?));
    }
    Ok(format!("CREATE TABLE {relation} ({})", columns.join(", ")))
}

/// Reads `files` and sends their rows as COPY text chunks of about [`CHUNK_BYTES`].
fn encode_files(table: &str, files: &[PathBuf], tx: &mpsc::Sender<Result<(Vec<u8>, u64)>>) -> Result<()> {
    let mut chunk = Vec::with_capacity(CHUNK_BYTES + 64 * 1024);
    let mut rows = 0u64;
    for path in files {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.with_batch_size(8192).build())
            .map_err(|e| parquet_error(path, e))?;
        for batch in reader {
            let batch = batch.map_err(|e| parquet_error(path, e))?;
            let columns: Vec<Column<'_>> = batch
                .columns()
                .iter()
                .zip(batch.schema().fields())
                .map(|(array, field)| Column::new(array, field.name()))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| Error::Source {
                    table: table.to_owned(),
                    location: path.display().to_string(),
                    source: Box::new(e),
                })?;
            for row in 0..batch.num_rows() {
                for (i, column) in columns.iter().enumerate() {
                    if i > 0 {
                        chunk.push(b'\t');
                    }
                    column.write(row, &mut chunk);
                }
                chunk.push(b'\n');
                rows += 1;
                if chunk.len() >= CHUNK_BYTES {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_BYTES + 64 * 1024));
                    if tx.blocking_send(Ok((full, rows))).is_err() {
                        return Ok(());
                    }
                    rows = 0;
                }
            }
            drop(columns);
            drop(batch);
        }
    }
    if !chunk.is_empty() {
        let _ = tx.blocking_send(Ok((chunk, rows)));
    }
    Ok(())
}

/// One column of a batch, typed once per batch.
enum Column<'a> {
    Bool(&'a BooleanArray),
    I16(&'a Int16Array),
    I32(&'a Int32Array),
    I64(&'a Int64Array),
    F32(&'a Float32Array),
    F64(&'a Float64Array),
    Decimal(&'a Decimal128Array),
    Utf8(&'a StringArray),
    LargeUtf8(&'a LargeStringArray),
    Binary(&'a BinaryArray),
    Date(&'a Date32Array),
    Timestamp(&'a TimestampMicrosecondArray, bool),
}

impl<'a> Column<'a> {
    fn new(array: &'a ArrayRef, name: &str) -> std::result::Result<Column<'a>, PostgresError> {
        Ok(match array.data_type() {
            DataType::Boolean => Column::Bool(array.as_boolean()),
            DataType::Int16 => Column::I16(array.as_primitive()),
            DataType::Int32 => Column::I32(array.as_primitive()),
            DataType::Int64 => Column::I64(array.as_primitive()),
            DataType::Float32 => Column::F32(array.as_primitive()),
            DataType::Float64 => Column::F64(array.as_primitive()),
            DataType::Decimal128(..) => Column::Decimal(array.as_primitive()),
            DataType::Utf8 => Column::Utf8(array.as_string()),
            DataType::LargeUtf8 => Column::LargeUtf8(array.as_string()),
            DataType::Binary => Column::Binary(array.as_binary()),
            DataType::Date32 => Column::Date(array.as_primitive()),
            DataType::Timestamp(TimeUnit::Microsecond, tz) => Column::Timestamp(array.as_primitive(), tz.is_some()),
            other => {
                return Err(PostgresError::UnsupportedType {
                    column: name.to_owned(),
                    type_name: format!("Arrow {other}"),
                });
            }
        })
    }

    /// Appends row `i` in COPY text format (`\N` for NULL).
    fn write(&self, i: usize, out: &mut Vec<u8>) {
        let null = match self {
            Column::Bool(a) => a.is_null(i),
            Column::I16(a) => a.is_null(i),
            Column::I32(a) => a.is_null(i),
            Column::I64(a) => a.is_null(i),
            Column::F32(a) => a.is_null(i),
            Column::F64(a) => a.is_null(i),
            Column::Decimal(a) => a.is_null(i),
            Column::Utf8(a) => a.is_null(i),
            Column::LargeUtf8(a) => a.is_null(i),
            Column::Binary(a) => a.is_null(i),
            Column::Date(a) => a.is_null(i),
            Column::Timestamp(a, _) => a.is_null(i),
        };
        if null {
            out.extend_from_slice(b"\\N");
            return;
        }
        let mut text = |s: &str| out.extend_from_slice(s.as_bytes());
        match self {
            Column::Bool(a) => text(if a.value(i) { "t" } else { "f" }),
            Column::I16(a) => text(&a.value(i).to_string()),
            Column::I32(a) => text(&a.value(i).to_string()),
            Column::I64(a) => text(&a.value(i).to_string()),
            Column::F32(a) => text(&float(f64::from(a.value(i)))),
            Column::F64(a) => text(&float(a.value(i))),
            Column::Decimal(a) => text(&a.value_as_string(i)),
            Column::Utf8(a) => escape(a.value(i), out),
            Column::LargeUtf8(a) => escape(a.value(i), out),
            Column::Binary(a) => {
                out.extend_from_slice(b"\\\\x");
                for byte in a.value(i) {
                    let _ = write!(HexOut(out), "{byte:02x}");
                }
            }
            Column::Date(a) => {
                let (y, m, d) = civil_from_days(i64::from(a.value(i)));
                text(&format!("{y:04}-{m:02}-{d:02}"));
            }
            Column::Timestamp(a, zoned) => {
                let micros = a.value(i);
                let (days, of_day) = (micros.div_euclid(86_400_000_000), micros.rem_euclid(86_400_000_000));
                let (y, m, d) = civil_from_days(days);
                let secs = of_day / 1_000_000;
                text(&format!(
                    "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:06}{}",
                    secs / 3600,
                    secs / 60 % 60,
                    secs % 60,
                    of_day % 1_000_000,
                    if *zoned { "+00" } else { "" }
                ));
            }
        }
    }
}

struct HexOut<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for HexOut<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
    } else {
        // Rust prints the shortest text that reads back to the same value.
        v.to_string()
    }
}

/// Appends `s` escaped for COPY text format.
fn escape(s: &str, out: &mut Vec<u8>) {
    for &b in s.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::Field;
    use arrow::record_batch::RecordBatch;

    use super::*;

    #[test]
    fn dates_and_escapes() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_358), (2023, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        let mut out = Vec::new();
        escape("a\tb\\c\nd\re", &mut out);
        assert_eq!(out, b"a\\tb\\\\c\\nd\\re");
    }

    #[test]
    fn tables_and_rows_as_copy_text() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("amount", DataType::Decimal128(18, 2), true),
            Field::new("raw", DataType::Binary, true),
        ]));
        assert_eq!(
            create_table("\"s\".\"t\"", &schema).unwrap(),
            "CREATE TABLE \"s\".\"t\" (\"id\" text NOT NULL, \"at\" timestamptz, \"amount\" numeric(18,2), \"raw\" bytea)"
        );
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["x\ty", "z"])),
                Arc::new(TimestampMicrosecondArray::from(vec![Some(1_672_531_200_000_001), None]).with_timezone("UTC")),
                Arc::new(Decimal128Array::from(vec![Some(-12_345), None]).with_precision_and_scale(18, 2).unwrap()),
                Arc::new(BinaryArray::from(vec![Some(&[0u8, 255][..]), None])),
            ],
        )
        .unwrap();
        let columns: Vec<Column<'_>> = batch.columns().iter().map(|a| Column::new(a, "c").unwrap()).collect();
        let mut out = Vec::new();
        for row in 0..2 {
            for (i, c) in columns.iter().enumerate() {
                if i > 0 {
                    out.push(b'\t');
                }
                c.write(row, &mut out);
            }
            out.push(b'\n');
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "x\\ty\t2023-01-01 00:00:00.000001+00\t-123.45\t\\\\x00ff\nz\t\\N\t\\N\t\\N\n"
        );
    }
}
