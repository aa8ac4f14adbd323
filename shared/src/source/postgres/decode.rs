//! The binary COPY decoder: `COPY ... TO STDOUT (FORMAT binary)` bytes straight into Arrow
//! builders, cut into record batches of bounded size.
//!
//! The stream is a header (signature, flags, extension), one tuple per row (a field count,
//! then per field a length, -1 for NULL, and the value in PostgreSQL's binary "send" form),
//! and a trailer (a field count of -1). PostgreSQL sends one row per CopyData message, but
//! nothing here relies on it: chunks may split rows anywhere, and a partial row waits for
//! the next chunk.
//!
//! Memory stays bounded: a batch is closed once it holds `max_rows` rows or `max_bytes`
//! bytes of field data, and at most the rows of one chunk plus one partial row are ever
//! buffered beyond it. Values are never parsed from text and never pass through an
//! intermediate row representation.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

#[cfg(test)]
use arrow::array::ArrayBuilder;
use arrow::array::NullBufferBuilder;
use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, ListArray, StringArray, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, FieldRef, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use bytes::{Buf, Bytes, BytesMut};

use super::types::{ColumnKind, Scalar, SourceColumn};

/// The 11-byte signature that opens every binary COPY stream.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Days from 1970-01-01 (Arrow's epoch) to 2000-01-01 (PostgreSQL's).
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// Why a COPY stream could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The stream is not a well-formed binary COPY stream.
    #[error("the binary COPY stream is malformed: {0}")]
    Stream(String),
    /// A value could not be converted to its Arrow type.
    #[error("column {column:?} ({type_name}): {reason}")]
    Value {
        /// The column.
        column: String,
        /// Its PostgreSQL type.
        type_name: String,
        /// What is wrong with the value.
        reason: String,
    },
    /// Building the record batch failed.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}

/// How big a batch may grow before it is handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    /// At most this many rows per batch (at least 1).
    pub max_rows: usize,
    /// A batch is closed once its field data reaches this many bytes.
    pub max_bytes: usize,
}

/// Decodes one binary COPY stream into record batches of `schema`.
pub(crate) struct BatchDecoder {
    schema: SchemaRef,
    columns: Vec<SourceColumn>,
    builders: Vec<Builder>,
    limits: BatchLimits,
    rows: usize,
    bytes: usize,
    header_done: bool,
    trailer_seen: bool,
    /// The undecoded tail of earlier chunks: a partial header or row.
    pending: BytesMut,
    ready: VecDeque<RecordBatch>,
    scratch: String,
}

impl BatchDecoder {
    /// A decoder for rows of `columns`, yielding batches of `schema` (one field per column).
    pub(crate) fn new(columns: Vec<SourceColumn>, schema: SchemaRef, limits: BatchLimits) -> Self {
        let limits = BatchLimits { max_rows: limits.max_rows.max(1), max_bytes: limits.max_bytes.max(1) };
        let capacity = limits.max_rows.min(8192);
        let builders = columns.iter().map(|c| Builder::new(c.kind, capacity, None)).collect();
        BatchDecoder {
            schema,
            columns,
            builders,
            limits,
            rows: 0,
            bytes: 0,
            header_done: false,
            trailer_seen: false,
            pending: BytesMut::new(),
            ready: VecDeque::new(),
            scratch: String::new(),
        }
    }

    /// Decodes every complete row of `chunk` (after what earlier chunks left over).
    pub(crate) fn feed(&mut self, chunk: Bytes) -> Result<(), DecodeError> {
        if self.pending.is_empty() {
            let used = self.process(&chunk)?;
            if used < chunk.len() {
                self.pending.extend_from_slice(&chunk[used..]);
            }
        } else {
            self.pending.extend_from_slice(&chunk);
            let data = std::mem::take(&mut self.pending);
            let used = self.process(&data)?;
            let mut rest = data;
            rest.advance(used);
            self.pending = rest;
        }
        Ok(())
    }

    /// The stream ended: checks it ended where it should and closes the last batch.
    pub(crate) fn finish(&mut self) -> Result<(), DecodeError> {
        if !self.pending.is_empty() {
            return Err(DecodeError::Stream(format!(
                "the stream ends inside a row ({} bytes left)",
                self.pending.len()
            )));
        }
        if !self.trailer_seen {
            return Err(DecodeError::Stream("the stream ends without its trailer".into()));
        }
        if self.rows > 0 {
            self.flush()?;
        }
        Ok(())
    }

    /// The next finished batch, if any.
    pub(crate) fn next_batch(&mut self) -> Option<RecordBatch> {
        self.ready.pop_front()
    }

    /// Decodes what it can of `data`; returns how many bytes were used.
    fn process(&mut self, data: &[u8]) -> Result<usize, DecodeError> {
        let mut pos = 0;
        if !self.header_done {
            match header_len(data)? {
                Some(len) => {
                    pos = len;
                    self.header_done = true;
                }
                None => return Ok(0),
            }
        }
        while pos < data.len() {
            if self.trailer_seen {
                return Err(DecodeError::Stream("data after the trailer".into()));
            }
            let Some(end) = row_end(data, pos, self.builders.len())? else { break };
            if end == pos + 2 {
                // A field count of -1: the trailer.
                self.trailer_seen = true;
                pos = end;
                continue;
            }
            self.decode_row(&data[pos + 2..end])?;
            self.rows += 1;
            self.bytes += end - pos;
            pos = end;
            if self.rows >= self.limits.max_rows || self.bytes >= self.limits.max_bytes {
                self.flush()?;
            }
        }
        Ok(pos)
    }

    /// Appends one row whose fields (`length, value` each) are `fields`, already checked to
    /// be complete.
    fn decode_row(&mut self, mut fields: &[u8]) -> Result<(), DecodeError> {
        for (index, builder) in self.builders.iter_mut().enumerate() {
            let len = fields.get_i32();
            let value = if len < 0 {
                None
            } else {
                let (value, rest) = fields.split_at(len as usize);
                fields = rest;
                Some(value)
            };
            if let Err(reason) = builder.append(value, &mut self.scratch) {
                let column = &self.columns[index];
                return Err(DecodeError::Value {
                    column: column.name.clone(),
                    type_name: column.type_name.clone(),
                    reason,
                });
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DecodeError> {
        let columns: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .zip(&self.columns)
            .map(|(builder, column)| {
                builder.finish().map_err(|reason| DecodeError::Value {
                    column: column.name.clone(),
                    type_name: column.type_name.clone(),
                    reason,
                })
            })
            .collect::<Result<_, _>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)?;
        // The next batch is most likely alike: its builders start at this one's sizes (an
        // eighth more), so long strings are copied once instead of again at every doubling.
        let rows = (self.rows + self.rows / 8).min(self.limits.max_rows);
        for ((builder, column), array) in self.builders.iter_mut().zip(&self.columns).zip(batch.columns()) {
            let bytes = value_bytes(array.as_ref());
            *builder = Builder::new(column.kind, rows, bytes.map(|b| b + b / 8));
        }
        self.ready.push_back(batch);
        self.rows = 0;
        self.bytes = 0;
        Ok(())
    }
}

/// The length of the stream header at the start of `data`, or `None` if it is incomplete.
fn header_len(data: &[u8]) -> Result<Option<usize>, DecodeError> {
    if data.len() < SIGNATURE.len() + 8 {
        return Ok(None);
    }
    if &data[..SIGNATURE.len()] != SIGNATURE {
        return Err(DecodeError::Stream("no PGCOPY signature".into()));
    }
    let mut rest = &data[SIGNATURE.len()..];
    let flags = rest.get_u32();
    if flags & (1 << 16) != 0 {
        return Err(DecodeError::Stream("rows carry OIDs".into()));
    }
    let extension = rest.get_u32() as usize;
    let len = SIGNATURE.len() + 8 + extension;
    Ok((data.len() >= len).then_some(len))
}

/// Where the tuple starting at `pos` ends, or `None` if `data` does not hold all of it. A
/// trailer ends 2 bytes after `pos`.
fn row_end(data: &[u8], pos: usize, columns: usize) -> Result<Option<usize>, DecodeError> {
    let Some(mut rest) = data.get(pos..pos + 2) else { return Ok(None) };
    let count = rest.get_i16();
    if count == -1 {
        return Ok(Some(pos + 2));
    }
    if usize::try_from(count).ok() != Some(columns) {
        return Err(DecodeError::Stream(format!("a row has {count} fields, expected {columns}")));
    }
    let mut at = pos + 2;
    for _ in 0..columns {
        let Some(mut len) = data.get(at..at + 4) else { return Ok(None) };
        let len = len.get_i32();
        at += 4;
        if len >= 0 {
            at += len as usize;
        } else if len != -1 {
            return Err(DecodeError::Stream(format!("a field has length {len}")));
        }
    }
    Ok((at <= data.len()).then_some(at))
}

/// One column's builder.
enum Builder {
    Bool(BooleanBuilder),
    Int2(Int16Builder),
    Int4(Int32Builder),
    Int8(Int64Builder),
    Float4(Float32Builder),
    Float8(Float64Builder),
    /// Text as received: validated as UTF-8 once per batch, when the batch is closed.
    Text(BinaryBuilder),
    /// jsonb's text, without its format version byte; validated like `Text`.
    Jsonb(BinaryBuilder),
    Uuid(StringBuilder),
    Interval(StringBuilder),
    NumericText(StringBuilder),
    Bytea(BinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Decimal(Decimal128Builder, i8),
    List(Box<ListState>),
}

struct ListState {
    field: FieldRef,
    offsets: Vec<i32>,
    validity: NullBufferBuilder,
    element: Builder,
}

/// The bytes of the values of a string or binary column (of a list's elements), `None` for
/// other types.
fn value_bytes(array: &dyn Array) -> Option<usize> {
    if let Some(list) = array.as_list_opt::<i32>() {
        return value_bytes(list.values().as_ref());
    }
    match array.data_type() {
        DataType::Utf8 => Some(array.as_string::<i32>().values().len()),
        DataType::Binary => Some(array.as_binary::<i32>().values().len()),
        _ => None,
    }
}

impl Builder {
    /// A builder for `capacity` values; string and binary ones with room for `bytes` of
    /// values (else a guess per value).
    fn new(kind: ColumnKind, capacity: usize, bytes: Option<usize>) -> Builder {
        match kind {
            ColumnKind::Scalar(s) => Builder::scalar(s, capacity, bytes),
            ColumnKind::List(s) => {
                let mut offsets = Vec::with_capacity(capacity + 1);
                offsets.push(0);
                Builder::List(Box::new(ListState {
                    field: Arc::new(Field::new_list_field(s.data_type(), true)),
                    offsets,
                    validity: NullBufferBuilder::new(capacity),
                    element: Builder::scalar(s, capacity, bytes),
                }))
            }
        }
    }

    fn scalar(s: Scalar, n: usize, bytes: Option<usize>) -> Builder {
        let text = |per_value: usize| StringBuilder::with_capacity(n, bytes.unwrap_or(n * per_value));
        match s {
            Scalar::Bool => Builder::Bool(BooleanBuilder::with_capacity(n)),
            Scalar::Int2 => Builder::Int2(Int16Builder::with_capacity(n)),
            Scalar::Int4 => Builder::Int4(Int32Builder::with_capacity(n)),
            Scalar::Int8 => Builder::Int8(Int64Builder::with_capacity(n)),
            Scalar::Float4 => Builder::Float4(Float32Builder::with_capacity(n)),
            Scalar::Float8 => Builder::Float8(Float64Builder::with_capacity(n)),
            Scalar::Text => Builder::Text(BinaryBuilder::with_capacity(n, bytes.unwrap_or(n * 16))),
            Scalar::Jsonb => Builder::Jsonb(BinaryBuilder::with_capacity(n, bytes.unwrap_or(n * 64))),
            Scalar::Uuid => Builder::Uuid(text(36)),
            Scalar::Interval => Builder::Interval(text(12)),
            Scalar::NumericText => Builder::NumericText(text(12)),
            Scalar::Bytea => Builder::Bytea(BinaryBuilder::with_capacity(n, bytes.unwrap_or(n * 16))),
            Scalar::Date => Builder::Date(Date32Builder::with_capacity(n)),
            Scalar::Time => Builder::Time(Time64MicrosecondBuilder::with_capacity(n)),
            Scalar::Timestamp => Builder::Timestamp(TimestampMicrosecondBuilder::with_capacity(n)),
            Scalar::TimestampTz => {
                Builder::Timestamp(TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC"))
            }
            Scalar::Decimal { precision, scale } => Builder::Decimal(
                // (precision, scale) were checked to fit Decimal128 when the column was mapped.
                Decimal128Builder::with_capacity(n)
                    .with_precision_and_scale(precision, scale)
                    .unwrap_or_else(|_| Decimal128Builder::with_capacity(n)),
                scale,
            ),
        }
    }

    /// Appends one value (`None` for NULL) in PostgreSQL's binary form. The error says what
    /// is wrong with the value; the caller names the column.
    fn append(&mut self, value: Option<&[u8]>, scratch: &mut String) -> Result<(), String> {
        let Some(v) = value else {
            self.append_null();
            return Ok(());
        };
        match self {
            Builder::Bool(b) => b.append_value(fixed::<1>(v)?[0] != 0),
            Builder::Int2(b) => b.append_value(i16::from_be_bytes(fixed(v)?)),
            Builder::Int4(b) => b.append_value(i32::from_be_bytes(fixed(v)?)),
            Builder::Int8(b) => b.append_value(i64::from_be_bytes(fixed(v)?)),
            Builder::Float4(b) => b.append_value(f32::from_be_bytes(fixed(v)?)),
            Builder::Float8(b) => b.append_value(f64::from_be_bytes(fixed(v)?)),
            Builder::Text(b) => b.append_value(v),
            Builder::Jsonb(b) => match v.split_first() {
                Some((1, text)) => b.append_value(text),
                Some((version, _)) => return Err(format!("unknown jsonb format version {version}")),
                None => return Err("an empty jsonb value".into()),
            },
            Builder::Uuid(b) => {
                let mut text = [0u8; 36];
                b.append_value(format_uuid(&fixed::<16>(v)?, &mut text));
            }
            Builder::Interval(b) => {
                let v: [u8; 16] = fixed(v)?;
                let micros = i64::from_be_bytes(v[..8].try_into().map_err(|_| "short interval")?);
                let days = i32::from_be_bytes(v[8..12].try_into().map_err(|_| "short interval")?);
                let months = i32::from_be_bytes(v[12..].try_into().map_err(|_| "short interval")?);
                scratch.clear();
                write_interval(scratch, months, days, micros).map_err(|_| "cannot format an interval")?;
                b.append_value(scratch.as_str());
            }
            Builder::NumericText(b) => {
                let n = Numeric::parse(v)?;
                scratch.clear();
                n.write_text(scratch).map_err(|_| "cannot format a numeric")?;
                b.append_value(scratch.as_str());
            }
            Builder::Decimal(b, scale) => b.append_value(Numeric::parse(v)?.to_i128(*scale)?),
            Builder::Bytea(b) => b.append_value(v),
            Builder::Date(b) => {
                let days = i32::from_be_bytes(fixed(v)?);
                b.append_value(match days {
                    i32::MAX | i32::MIN => days,
                    // PostgreSQL's largest date is 2145031948 days after 2000-01-01: this fits.
                    d => d.saturating_add(PG_EPOCH_DAYS),
                });
            }
            Builder::Time(b) => b.append_value(i64::from_be_bytes(fixed(v)?)),
            Builder::Timestamp(b) => {
                let micros = i64::from_be_bytes(fixed(v)?);
                b.append_value(match micros {
                    i64::MAX | i64::MIN => micros,
                    m => m.checked_add(PG_EPOCH_MICROS).ok_or_else(|| {
                        "a timestamp after 294247-01-10 cannot be stored as microseconds since 1970".to_owned()
                    })?,
                });
            }
            Builder::List(list) => list.append_array(v, scratch)?,
        }
        Ok(())
    }

    fn append_null(&mut self) {
        match self {
            Builder::Bool(b) => b.append_null(),
            Builder::Int2(b) => b.append_null(),
            Builder::Int4(b) => b.append_null(),
            Builder::Int8(b) => b.append_null(),
            Builder::Float4(b) => b.append_null(),
            Builder::Float8(b) => b.append_null(),
            Builder::Uuid(b) | Builder::Interval(b) | Builder::NumericText(b) => b.append_null(),
            Builder::Text(b) | Builder::Jsonb(b) | Builder::Bytea(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Time(b) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
            Builder::Decimal(b, _) => b.append_null(),
            Builder::List(list) => {
                let last = list.offsets.last().copied().unwrap_or(0);
                list.offsets.push(last);
                list.validity.append_null();
            }
        }
    }

    /// The array built so far; the error is why the values do not make one.
    fn finish(&mut self) -> Result<ArrayRef, String> {
        Ok(match self {
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Int2(b) => Arc::new(b.finish()),
            Builder::Int4(b) => Arc::new(b.finish()),
            Builder::Int8(b) => Arc::new(b.finish()),
            Builder::Float4(b) => Arc::new(b.finish()),
            Builder::Float8(b) => Arc::new(b.finish()),
            Builder::Uuid(b) | Builder::Interval(b) | Builder::NumericText(b) => Arc::new(b.finish()),
            // One pass over the batch's bytes (and a check that every value starts on a
            // character boundary) instead of a call per value.
            Builder::Text(b) | Builder::Jsonb(b) => Arc::new(
                StringArray::try_from_binary(b.finish()).map_err(|e| format!("a value is not valid UTF-8 ({e})"))?,
            ),
            Builder::Bytea(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Time(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish()),
            Builder::Decimal(b, _) => Arc::new(b.finish()),
            Builder::List(list) => {
                let values = list.element.finish()?;
                let offsets = std::mem::replace(&mut list.offsets, vec![0]);
                let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
                let nulls = list.validity.finish();
                Arc::new(ListArray::try_new(list.field.clone(), offsets, values, nulls).map_err(|e| e.to_string())?)
            }
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        match self {
            Builder::Bool(b) => b.len(),
            Builder::Int2(b) => b.len(),
            Builder::Int4(b) => b.len(),
            Builder::Int8(b) => b.len(),
            Builder::Float4(b) => b.len(),
            Builder::Float8(b) => b.len(),
            Builder::Uuid(b) | Builder::Interval(b) | Builder::NumericText(b) => b.len(),
            Builder::Text(b) | Builder::Jsonb(b) | Builder::Bytea(b) => b.len(),
            Builder::Date(b) => b.len(),
            Builder::Time(b) => b.len(),
            Builder::Timestamp(b) => b.len(),
            Builder::Decimal(b, _) => b.len(),
            Builder::List(list) => list.offsets.len() - 1,
        }
    }
}

impl ListState {
    /// Appends one array value: `ndim, has_nulls, element oid, (size, lower bound) per
    /// dimension, then (length, value) per element`.
    fn append_array(&mut self, mut v: &[u8], scratch: &mut String) -> Result<(), String> {
        if v.len() < 12 {
            return Err("an array value is shorter than its header".into());
        }
        let ndim = v.get_i32();
        let _has_nulls = v.get_i32();
        let _element_oid = v.get_u32();
        let count = match ndim {
            0 => 0,
            1 => {
                if v.len() < 8 {
                    return Err("an array value is shorter than its header".into());
                }
                let size = v.get_i32();
                let _lower_bound = v.get_i32();
                usize::try_from(size).map_err(|_| format!("an array has {size} elements"))?
            }
            n => {
                return Err(format!(
                    "a {n}-dimensional array; only one-dimensional arrays are exported (as lists): unnest or cast it in the table's query"
                ));
            }
        };
        for _ in 0..count {
            if v.len() < 4 {
                return Err("an array value ends inside its elements".into());
            }
            let len = v.get_i32();
            if len < 0 {
                self.element.append(None, scratch)?;
            } else {
                let len = len as usize;
                if v.len() < len {
                    return Err("an array value ends inside its elements".into());
                }
                let (element, rest) = v.split_at(len);
                v = rest;
                self.element.append(Some(element), scratch)?;
            }
        }
        if !v.is_empty() {
            return Err("an array value has bytes after its last element".into());
        }
        let last = self.offsets.last().copied().unwrap_or(0);
        let next = i32::try_from(count)
            .ok()
            .and_then(|c| last.checked_add(c))
            .ok_or("a list batch holds more than 2^31 elements")?;
        self.offsets.push(next);
        self.validity.append_non_null();
        Ok(())
    }
}

fn fixed<const N: usize>(v: &[u8]) -> Result<[u8; N], String> {
    v.try_into().map_err(|_| format!("expected {N} bytes, got {}", v.len()))
}

/// Formats a UUID as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lowercase, into `out`.
fn format_uuid<'a>(bytes: &[u8; 16], out: &'a mut [u8; 36]) -> &'a str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut at = 0;
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[at] = b'-';
            at += 1;
        }
        out[at] = HEX[usize::from(byte >> 4)];
        out[at + 1] = HEX[usize::from(byte & 0x0f)];
        at += 2;
    }
    // Only ASCII hex digits and dashes were written.
    std::str::from_utf8(out).unwrap_or_default()
}

/// Writes an interval the way PostgreSQL does with `intervalstyle = iso_8601`.
pub(crate) fn write_interval(out: &mut impl fmt::Write, months: i32, days: i32, micros: i64) -> fmt::Result {
    const USECS_PER_HOUR: i64 = 3_600_000_000;
    const USECS_PER_MINUTE: i64 = 60_000_000;
    const USECS_PER_SEC: i64 = 1_000_000;
    let year = months / 12;
    let month = months % 12;
    let hour = micros / USECS_PER_HOUR;
    let mut rest = micros - hour * USECS_PER_HOUR;
    let minute = rest / USECS_PER_MINUTE;
    rest -= minute * USECS_PER_MINUTE;
    let second = rest / USECS_PER_SEC;
    let fraction = rest - second * USECS_PER_SEC;
    if year == 0 && month == 0 && days == 0 && hour == 0 && minute == 0 && second == 0 && fraction == 0 {
        return out.write_str("PT0S");
    }
    out.write_char('P')?;
    let part = |out: &mut dyn fmt::Write, value: i64, unit: char| {
        if value != 0 { write!(out, "{value}{unit}") } else { Ok(()) }
    };
    part(out, year.into(), 'Y')?;
    part(out, month.into(), 'M')?;
    part(out, days.into(), 'D')?;
    if hour != 0 || minute != 0 || second != 0 || fraction != 0 {
        out.write_char('T')?;
    }
    part(out, hour, 'H')?;
    part(out, minute, 'M')?;
    if second != 0 || fraction != 0 {
        if second < 0 || fraction < 0 {
            out.write_char('-')?;
        }
        write!(out, "{}", second.unsigned_abs())?;
        if fraction != 0 {
            let digits = format!("{:06}", fraction.unsigned_abs());
            write!(out, ".{}", digits.trim_end_matches('0'))?;
        }
        out.write_char('S')?;
    }
    Ok(())
}

/// A `numeric` in PostgreSQL's binary form: base-10000 digits with a weight and a scale.
pub(crate) struct Numeric<'a> {
    sign: u16,
    /// The power of 10000 of the first digit.
    weight: i16,
    /// Digits after the decimal point in the text form.
    dscale: u16,
    /// Base-10000 digits, two bytes each, big-endian.
    digits: &'a [u8],
}

impl<'a> Numeric<'a> {
    pub(crate) fn parse(mut v: &'a [u8]) -> Result<Numeric<'a>, String> {
        if v.len() < 8 {
            return Err(format!("a numeric value of {} bytes", v.len()));
        }
        let ndigits = v.get_i16();
        let weight = v.get_i16();
        let sign = v.get_u16();
        let dscale = v.get_u16();
        if usize::try_from(ndigits).ok().map(|n| n * 2) != Some(v.len()) {
            return Err(format!("a numeric value with {ndigits} digits in {} bytes", v.len()));
        }
        Ok(Numeric { sign, weight, dscale, digits: v })
    }

    fn ndigits(&self) -> usize {
        self.digits.len() / 2
    }

    /// Base-10000 digit `i` (0 outside the stored digits).
    fn digit(&self, i: i64) -> u16 {
        usize::try_from(i)
            .ok()
            .filter(|&i| i < self.ndigits())
            .map_or(0, |i| u16::from_be_bytes([self.digits[2 * i], self.digits[2 * i + 1]]))
    }

    /// The value times 10^scale, exactly, or why that is impossible.
    pub(crate) fn to_i128(&self, scale: i8) -> Result<i128, String> {
        match self.sign {
            NUMERIC_NAN => {
                return Err(
                    "NaN cannot be stored as a decimal; cast the column to text in the table's query to keep it".into(),
                );
            }
            NUMERIC_PINF | NUMERIC_NINF => return Err("Infinity cannot be stored as a decimal".into()),
            _ => {}
        }
        let overflow = || "the value does not fit a 38-digit decimal".to_owned();
        let inexact = || format!("the value has more than {scale} digits after the decimal point");
        // value = digits * 10000^(weight - ndigits + 1); times 10^scale. A negative exponent
        // drops that many decimal digits from the end, which must all be zero.
        let ndigits = self.ndigits() as i64;
        let exponent = 4 * (i64::from(self.weight) - ndigits + 1) + i64::from(scale);
        let keep = 4 * ndigits + exponent.min(0);
        let mut acc: i128 = 0;
        for i in 0..ndigits {
            let d = self.digit(i);
            if d > 9999 {
                return Err(format!("a numeric digit {d} is out of range"));
            }
            let start = 4 * i;
            if start + 4 <= keep {
                acc = acc.checked_mul(10_000).and_then(|a| a.checked_add(i128::from(d))).ok_or_else(overflow)?;
            } else if start >= keep {
                if d != 0 {
                    return Err(inexact());
                }
            } else {
                let kept = (keep - start) as u32;
                let divisor = 10u16.pow(4 - kept);
                if !d.is_multiple_of(divisor) {
                    return Err(inexact());
                }
                acc = acc
                    .checked_mul(10i128.pow(kept))
                    .and_then(|a| a.checked_add(i128::from(d / divisor)))
                    .ok_or_else(overflow)?;
            }
        }
        if exponent > 0 && acc != 0 {
            let factor = u32::try_from(exponent).ok().and_then(|e| 10i128.checked_pow(e)).ok_or_else(overflow)?;
            acc = acc.checked_mul(factor).ok_or_else(overflow)?;
        }
        Ok(if self.sign == NUMERIC_NEG { -acc } else { acc })
    }

    /// Writes the value as PostgreSQL's `numeric_out` does.
    pub(crate) fn write_text(&self, out: &mut impl fmt::Write) -> fmt::Result {
        match self.sign {
            NUMERIC_NAN => return out.write_str("NaN"),
            NUMERIC_PINF => return out.write_str("Infinity"),
            NUMERIC_NINF => return out.write_str("-Infinity"),
            NUMERIC_NEG => out.write_char('-')?,
            _ => {}
        }
        let weight = i64::from(self.weight);
        if weight < 0 {
            out.write_char('0')?;
        } else {
            write!(out, "{}", self.digit(0))?;
            for i in 1..=weight {
                write!(out, "{:04}", self.digit(i))?;
            }
        }
        let dscale = usize::from(self.dscale);
        if dscale > 0 {
            out.write_char('.')?;
            let mut written = 0;
            let mut i = weight + 1;
            while written < dscale {
                let group = format!("{:04}", self.digit(i));
                let take = (dscale - written).min(4);
                out.write_str(&group[..take])?;
                written += take;
                i += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
