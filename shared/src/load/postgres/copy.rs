//! Binary COPY: the PostgreSQL column a portable type becomes ([`pg_columns`]), and
//! [`copy_files`], which streams a table's files into `COPY ... FROM STDIN (FORMAT binary)`,
//! encoded on a blocking thread while the previous chunk travels. The loader stages every
//! receipt through it; the test kit loads generated lakes through it.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Decimal256Array, Float32Array,
    Float64Array, Int16Array, Int32Array, Int64Array, IntervalMonthDayNanoArray, ListArray, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
use bytes::Bytes;
use futures::SinkExt;
use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::{CHUNK_BYTES, ident};
use crate::load::{LoadError, read};
use crate::schema::{ColumnSchema, parse_type_name};

/// Why [`copy_files`] failed: the server refused (with what was being done), or the files.
#[derive(Debug)]
pub enum CopyError {
    /// A statement or the COPY stream failed at the server.
    Server(String, tokio_postgres::Error),
    /// A file could not be read or encoded.
    Files(LoadError),
}

impl CopyError {
    /// The loader's error, server errors mapped by `server` (which knows the target's name).
    pub fn into_load_error(self, server: impl FnOnce(&str, tokio_postgres::Error) -> LoadError) -> LoadError {
        match self {
            CopyError::Server(what, e) => server(&what, e),
            CopyError::Files(e) => e,
        }
    }
}

/// Copies `files` (each with the rows it must hold) into `relation`'s `columns` with one
/// `COPY ... FROM STDIN (FORMAT binary)`: files are read and encoded on a blocking thread
/// while the previous chunk travels to the server. Returns the rows the server counted. The
/// loader stages receipts through it; the test kit loads a generated lake through it.
pub async fn copy_files(
    client: &Client,
    relation: &str,
    table: &str,
    columns: Vec<PgColumn>,
    format: crate::format::Format,
    files: Vec<read::TableFile>,
) -> Result<u64, CopyError> {
    let list: Vec<String> = columns.iter().map(|c| ident(&c.name)).collect();
    let what = format!("COPY into {relation}");
    let sink = client
        .copy_in::<_, Bytes>(&format!("COPY {relation} ({}) FROM STDIN (FORMAT binary)", list.join(", ")))
        .await
        .map_err(|e| CopyError::Server(format!("starting {what}"), e))?;
    let mut sink = Box::pin(sink);
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, LoadError>>(4);
    let table_name = table.to_owned();
    let encoder = tokio::task::spawn_blocking(move || {
        if let Err(e) = encode_files(&table_name, &format, &columns, &files, &tx) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    while let Some(chunk) = rx.recv().await {
        let chunk = chunk.map_err(CopyError::Files)?;
        sink.send(chunk).await.map_err(|e| CopyError::Server(what.clone(), e))?;
    }
    encoder.await.map_err(|e| {
        CopyError::Files(LoadError::Decode { table: table.to_owned(), key: String::new(), reason: e.to_string() })
    })?;
    sink.as_mut().finish().await.map_err(|e| CopyError::Server(what, e))
}

/// A column as PostgreSQL stores it.
#[derive(Clone, Debug)]
pub struct PgColumn {
    /// The column name.
    pub name: String,
    /// The portable type name from the receipt.
    pub portable: String,
    /// The type as PostgreSQL's `format_type` spells it (so it compares with a live table).
    pub pg_type: String,
    /// Whether nulls are allowed.
    pub nullable: bool,
    /// The Arrow type every batch is cast to before encoding.
    arrow: DataType,
    kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bool,
    I16,
    I32,
    I64,
    F32,
    F64,
    Numeric,
    Text,
    Bytea,
    Date,
    Time,
    Timestamp,
    Interval,
}

impl Kind {
    fn oid(self) -> u32 {
        match self {
            Kind::Bool => 16,
            Kind::I16 => 21,
            Kind::I32 => 23,
            Kind::I64 => 20,
            Kind::F32 => 700,
            Kind::F64 => 701,
            Kind::Numeric => 1700,
            Kind::Text => 25,
            Kind::Bytea => 17,
            Kind::Date => 1082,
            Kind::Time => 1083,
            Kind::Timestamp => 1114,
            Kind::Interval => 1186,
        }
    }
}

/// PostgreSQL type, Arrow type to cast to, and encoding of a scalar portable type.
fn scalar(dt: &DataType) -> Option<(String, DataType, Kind)> {
    use DataType as D;
    Some(match dt {
        D::Boolean => ("boolean".into(), D::Boolean, Kind::Bool),
        D::Int8 | D::Int16 | D::UInt8 => ("smallint".into(), D::Int16, Kind::I16),
        D::Int32 | D::UInt16 => ("integer".into(), D::Int32, Kind::I32),
        D::Int64 | D::UInt32 => ("bigint".into(), D::Int64, Kind::I64),
        D::UInt64 => ("numeric(20,0)".into(), D::Decimal128(20, 0), Kind::Numeric),
        D::Float32 => ("real".into(), D::Float32, Kind::F32),
        D::Float64 => ("double precision".into(), D::Float64, Kind::F64),
        D::Decimal128(p, s) | D::Decimal256(p, s) if *s >= 0 && s.unsigned_abs() <= *p => {
            (format!("numeric({p},{s})"), dt.clone(), Kind::Numeric)
        }
        D::Utf8 => ("text".into(), D::Utf8, Kind::Text),
        D::Binary => ("bytea".into(), D::Binary, Kind::Bytea),
        D::Date32 => ("date".into(), D::Date32, Kind::Date),
        D::Time32(_) | D::Time64(_) => ("time without time zone".into(), D::Time64(TimeUnit::Microsecond), Kind::Time),
        D::Timestamp(_, None) => {
            ("timestamp without time zone".into(), D::Timestamp(TimeUnit::Microsecond, None), Kind::Timestamp)
        }
        D::Timestamp(_, Some(_)) => (
            "timestamp with time zone".into(),
            D::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Kind::Timestamp,
        ),
        D::Interval(IntervalUnit::MonthDayNano) => ("interval".into(), dt.clone(), Kind::Interval),
        _ => return None,
    })
}

/// The PostgreSQL columns of a receipt's table schema: portable names -> PostgreSQL types
/// (`list<T>` -> `T[]`; nanosecond times are truncated to PostgreSQL's microseconds).
pub fn pg_columns(table: &str, schema: &[ColumnSchema]) -> Result<Vec<PgColumn>, LoadError> {
    schema
        .iter()
        .map(|c| {
            let bad = |reason: String| LoadError::Schema { table: table.to_owned(), reason };
            let dt = parse_type_name(&c.data_type).map_err(|e| bad(format!("column {:?}: {e}", c.name)))?;
            let unsupported = || bad(format!("column {:?}: type {} has no PostgreSQL mapping", c.name, c.data_type));
            let (pg_type, arrow, kind) = match &dt {
                DataType::List(item) => {
                    let (t, a, k) = scalar(item.data_type()).ok_or_else(unsupported)?;
                    (format!("{t}[]"), DataType::List(Arc::new(Field::new_list_field(a, true))), k)
                }
                other => scalar(other).ok_or_else(unsupported)?,
            };
            Ok(PgColumn {
                name: c.name.clone(),
                portable: c.data_type.clone(),
                pg_type,
                nullable: c.nullable,
                arrow,
                kind,
            })
        })
        .collect()
}

// ---- binary COPY encoding ---------------------------------------------------------------

const PG_EPOCH_DAYS: i64 = 10_957; // 2000-01-01 - 1970-01-01
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS * 86_400_000_000;

fn encode_files(
    table: &str,
    format: &crate::format::Format,
    columns: &[PgColumn],
    files: &[read::TableFile],
    tx: &mpsc::Sender<Result<Bytes, LoadError>>,
) -> Result<(), LoadError> {
    let schema: Vec<ColumnSchema> = columns
        .iter()
        .map(|c| ColumnSchema { name: c.name.clone(), data_type: c.portable.clone(), nullable: c.nullable })
        .collect();
    let types: Vec<DataType> = columns.iter().map(|c| c.arrow.clone()).collect();
    let mut out = Vec::with_capacity(CHUNK_BYTES + 64 * 1024);
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    let field_count = i16::try_from(columns.len())
        .map_err(|_| LoadError::Schema { table: table.to_owned(), reason: "more than 32767 columns".into() })?;
    read::for_each_batch(table, format, &schema, &types, files, |arrays, rows| {
        let cols = arrays
            .iter()
            .zip(columns)
            .map(|(a, c)| {
                Col::new(a, c.kind).ok_or_else(|| LoadError::Decode {
                    table: table.to_owned(),
                    key: String::new(),
                    reason: format!("column {:?}: unexpected array type", c.name),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for i in 0..rows {
            out.extend_from_slice(&field_count.to_be_bytes());
            for col in &cols {
                col.write(i, &mut out);
            }
            if out.len() >= CHUNK_BYTES {
                let chunk = Bytes::from(std::mem::replace(&mut out, Vec::with_capacity(CHUNK_BYTES + 64 * 1024)));
                if tx.blocking_send(Ok(chunk)).is_err() {
                    // The COPY side failed and reports why; this error only stops the reading.
                    return Err(LoadError::Decode {
                        table: table.to_owned(),
                        key: String::new(),
                        reason: "the COPY stream closed".into(),
                    });
                }
            }
        }
        Ok(())
    })?;
    out.extend_from_slice(&(-1i16).to_be_bytes());
    let _ = tx.blocking_send(Ok(Bytes::from(out)));
    Ok(())
}

/// A column downcast once per batch.
enum Col<'a> {
    Bool(&'a BooleanArray),
    I16(&'a Int16Array),
    I32(&'a Int32Array),
    I64(&'a Int64Array),
    F32(&'a Float32Array),
    F64(&'a Float64Array),
    Dec128(&'a Decimal128Array, i8),
    Dec256(&'a Decimal256Array, i8),
    Text(&'a StringArray),
    Bytea(&'a BinaryArray),
    Date(&'a Date32Array),
    Time(&'a Time64MicrosecondArray),
    Timestamp(&'a TimestampMicrosecondArray),
    Interval(&'a IntervalMonthDayNanoArray),
    List(&'a ListArray, Box<Col<'a>>, u32),
}

impl<'a> Col<'a> {
    fn new(array: &'a ArrayRef, kind: Kind) -> Option<Col<'a>> {
        if let Some(list) = array.as_list_opt::<i32>() {
            let values = list.values();
            return Some(Col::List(list, Box::new(Col::new(values, kind)?), kind.oid()));
        }
        Some(match kind {
            Kind::Bool => Col::Bool(array.as_boolean_opt()?),
            Kind::I16 => Col::I16(array.as_primitive_opt()?),
            Kind::I32 => Col::I32(array.as_primitive_opt()?),
            Kind::I64 => Col::I64(array.as_primitive_opt()?),
            Kind::F32 => Col::F32(array.as_primitive_opt()?),
            Kind::F64 => Col::F64(array.as_primitive_opt()?),
            Kind::Numeric => match array.data_type() {
                DataType::Decimal128(_, s) => Col::Dec128(array.as_primitive_opt()?, *s),
                DataType::Decimal256(_, s) => Col::Dec256(array.as_primitive_opt()?, *s),
                _ => return None,
            },
            Kind::Text => Col::Text(array.as_string_opt()?),
            Kind::Bytea => Col::Bytea(array.as_binary_opt()?),
            Kind::Date => Col::Date(array.as_primitive_opt()?),
            Kind::Time => Col::Time(array.as_primitive_opt()?),
            Kind::Timestamp => Col::Timestamp(array.as_primitive_opt()?),
            Kind::Interval => Col::Interval(array.as_primitive_opt()?),
        })
    }

    fn is_null(&self, i: usize) -> bool {
        match self {
            Col::Bool(a) => a.is_null(i),
            Col::I16(a) => a.is_null(i),
            Col::I32(a) => a.is_null(i),
            Col::I64(a) => a.is_null(i),
            Col::F32(a) => a.is_null(i),
            Col::F64(a) => a.is_null(i),
            Col::Dec128(a, _) => a.is_null(i),
            Col::Dec256(a, _) => a.is_null(i),
            Col::Text(a) => a.is_null(i),
            Col::Bytea(a) => a.is_null(i),
            Col::Date(a) => a.is_null(i),
            Col::Time(a) => a.is_null(i),
            Col::Timestamp(a) => a.is_null(i),
            Col::Interval(a) => a.is_null(i),
            Col::List(a, _, _) => a.is_null(i),
        }
    }

    /// Writes field `i`: its length (-1 for NULL) and its binary value.
    fn write(&self, i: usize, out: &mut Vec<u8>) {
        if self.is_null(i) {
            out.extend_from_slice(&(-1i32).to_be_bytes());
            return;
        }
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        match self {
            Col::Bool(a) => out.push(u8::from(a.value(i))),
            Col::I16(a) => out.extend_from_slice(&a.value(i).to_be_bytes()),
            Col::I32(a) => out.extend_from_slice(&a.value(i).to_be_bytes()),
            Col::I64(a) => out.extend_from_slice(&a.value(i).to_be_bytes()),
            Col::F32(a) => out.extend_from_slice(&a.value(i).to_be_bytes()),
            Col::F64(a) => out.extend_from_slice(&a.value(i).to_be_bytes()),
            Col::Dec128(a, s) => numeric(&a.value(i).to_string(), *s, out),
            Col::Dec256(a, s) => numeric(&a.value(i).to_string(), *s, out),
            Col::Text(a) => out.extend_from_slice(a.value(i).as_bytes()),
            Col::Bytea(a) => out.extend_from_slice(a.value(i)),
            // PostgreSQL's -infinity/infinity are i32::MIN/MAX days and i64::MIN/MAX microseconds
            // in binary COPY, and the PostgreSQL source exports them as those same values: they
            // stay as they are, so infinities load back as infinities.
            Col::Date(a) => {
                let days = match a.value(i) {
                    d @ (i32::MIN | i32::MAX) => d,
                    d => (i64::from(d) - PG_EPOCH_DAYS).clamp(i64::from(i32::MIN) + 1, i64::from(i32::MAX) - 1) as i32,
                };
                out.extend_from_slice(&days.to_be_bytes());
            }
            Col::Time(a) => out.extend_from_slice(&a.value(i).to_be_bytes()),
            Col::Timestamp(a) => {
                let micros = match a.value(i) {
                    m @ (i64::MIN | i64::MAX) => m,
                    m => m.saturating_sub(PG_EPOCH_MICROS).clamp(i64::MIN + 1, i64::MAX - 1),
                };
                out.extend_from_slice(&micros.to_be_bytes());
            }
            Col::Interval(a) => {
                let v = a.value(i);
                out.extend_from_slice(&(v.nanoseconds / 1000).to_be_bytes());
                out.extend_from_slice(&v.days.to_be_bytes());
                out.extend_from_slice(&v.months.to_be_bytes());
            }
            Col::List(a, values, oid) => {
                let offsets = a.value_offsets();
                let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
                let n = end - start;
                let has_nulls = (start..end).any(|j| values.is_null(j));
                out.extend_from_slice(&i32::from(n > 0).to_be_bytes());
                out.extend_from_slice(&i32::from(has_nulls).to_be_bytes());
                out.extend_from_slice(&oid.to_be_bytes());
                if n > 0 {
                    out.extend_from_slice(&(n as i32).to_be_bytes());
                    out.extend_from_slice(&1i32.to_be_bytes());
                }
                for j in start..end {
                    values.write(j, out);
                }
            }
        }
        let len = (out.len() - at - 4) as i32;
        out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
}

/// PostgreSQL's binary `numeric` from an unscaled integer's decimal digits and a scale.
fn numeric(unscaled: &str, scale: i8, out: &mut Vec<u8>) {
    let (negative, digits) = match unscaled.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, unscaled),
    };
    let scale = usize::from(scale.max(0).unsigned_abs());
    let mut digits = digits.to_owned();
    if digits.len() <= scale {
        digits = format!("{}{digits}", "0".repeat(scale + 1 - digits.len()));
    }
    let (int_part, frac_part) = digits.split_at(digits.len() - scale);
    let int_pad = (4 - int_part.len() % 4) % 4;
    let int_part = format!("{}{int_part}", "0".repeat(int_pad));
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let frac_part = format!("{frac_part}{}", "0".repeat(frac_pad));
    let group = |s: &str| s.parse::<i16>().unwrap_or(0);
    let mut groups: Vec<i16> = int_part
        .as_bytes()
        .chunks(4)
        .chain(frac_part.as_bytes().chunks(4))
        .map(|c| group(std::str::from_utf8(c).unwrap_or("0")))
        .collect();
    let mut weight = (int_part.len() / 4) as i16 - 1;
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= leading as i16;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let sign: u16 = if negative && !groups.is_empty() { 0x4000 } else { 0 };
    out.extend_from_slice(&(groups.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(scale as u16).to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn num(unscaled: &str, scale: i8) -> Vec<i16> {
        let mut out = Vec::new();
        numeric(unscaled, scale, &mut out);
        out.chunks(2).map(|c| i16::from_be_bytes([c[0], c[1]])).collect()
    }

    #[test]
    fn numerics_in_base_10000() {
        // ndigits, weight, sign, dscale, digits...
        assert_eq!(num("12345", 2), vec![2, 0, 0, 2, 123, 4500]);
        assert_eq!(num("-12345", 2), vec![2, 0, 0x4000, 2, 123, 4500]);
        assert_eq!(num("0", 2), vec![0, 0, 0, 2]);
        assert_eq!(num("5", 4), vec![1, -1, 0, 4, 5]);
        assert_eq!(num("100000000", 0), vec![1, 2, 0, 0, 1]);
        assert_eq!(num("18446744073709551615", 0), vec![5, 4, 0, 0, 1844, 6744, 737, 955, 1615]);
    }

    #[test]
    fn portable_types_map_to_format_type_spellings() {
        let schema: Vec<ColumnSchema> = [
            ("a", "int8"),
            ("b", "uint32"),
            ("c", "uint64"),
            ("d", "decimal(18,2)"),
            ("e", "timestamptz(ns)"),
            ("f", "list<string>"),
            ("g", "time(ms)"),
            ("h", "interval"),
            ("i", "float32"),
        ]
        .iter()
        .map(|(n, t)| ColumnSchema { name: (*n).into(), data_type: (*t).into(), nullable: true })
        .collect();
        let types: Vec<String> = pg_columns("t", &schema).unwrap().into_iter().map(|c| c.pg_type).collect();
        assert_eq!(
            types,
            [
                "smallint",
                "bigint",
                "numeric(20,0)",
                "numeric(18,2)",
                "timestamp with time zone",
                "text[]",
                "time without time zone",
                "interval",
                "real"
            ]
        );
        let nested = [ColumnSchema { name: "x".into(), data_type: "list<list<int64>>".into(), nullable: true }];
        assert!(pg_columns("t", &nested).unwrap_err().to_string().contains("no PostgreSQL mapping"));
    }
}
