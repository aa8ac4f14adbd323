//! The Avro encoder and reader: Arrow record batches into Apache Avro object container files
//! (spec 1.11) and back. Written by hand (no Avro crate), so the bytes are ours to pin.
//!
//! Over 800 lines on purpose: the schema mapping, the encoder and the hostile-input reader share
//! one type model (`Ty`, `Node`) and are read together; the tests are in `avro/tests.rs`.
//!
//! A file is `Obj\x01`, a metadata map with `avro.schema` and `avro.codec`, a 16-byte sync
//! marker, then blocks: row count and byte size (zigzag varints), the (compressed) rows, the
//! sync marker again. Codecs: `null`, `deflate` (raw RFC 1951, no zlib header), `snappy` (a raw
//! snappy block, then the CRC32 of the uncompressed rows, big-endian) and `zstandard` (one frame
//! per block, with zstd's content checksum).
//!
//! The schema is one record (`row` by default) with a field per column; a nullable column (or
//! list item) is the union `["null", T]`, and a nullable field has default `null`:
//!
//! | Arrow | Avro |
//! | --- | --- |
//! | Boolean | `boolean` |
//! | Int8, Int16, Int32, UInt8, UInt16 | `int` |
//! | Int64, UInt32 | `long` |
//! | UInt64 | `bytes`, `decimal(20, 0)` (a `long` would overflow) |
//! | Float32, Float64 | `float`, `double` |
//! | Utf8, LargeUtf8, Utf8View | `string` |
//! | Binary, LargeBinary, BinaryView | `bytes` |
//! | Decimal128/256(p <= 38, 0 <= s <= p) | `bytes`, `decimal(p, s)`: minimal big-endian two's complement |
//! | Date32 | `int`, `date` |
//! | Time32, Time64 | `long`, `time-micros` (nanoseconds floored) |
//! | Timestamp with a zone | `long`, `timestamp-micros`: the UTC instant |
//! | Timestamp without a zone | `long`, `local-timestamp-micros`: the wall clock |
//! | List, LargeList of T | `array` of T |
//!
//! Timestamps in seconds and milliseconds are scaled up (an overflow is an error, not a wrap),
//! nanoseconds are floored to the microsecond. Anything else (structs, maps, intervals, wider
//! decimals, ...) is [`FormatError::Unsupported`]; a column name that is not an Avro name
//! (`[A-Za-z_][A-Za-z0-9_]*`) is [`FormatError::Invalid`], never renamed behind the user's back.
//!
//! [`read_avro`] is the loader's: it takes the receipt's Arrow schema, checks the file's schema
//! maps to it, and treats the file as hostile: it never panics, checks every length against
//! what remains and against 64 MiB before it allocates, and stops at the first error.

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Read, Write};

use arrow::array::{
    Array, ArrayData, ArrayDataBuilder, ArrayRef, AsArray, BinaryViewBuilder, BooleanArray, GenericByteArray,
    GenericByteViewArray, GenericListArray, NullBufferBuilder, OffsetSizeTrait, StringViewBuilder, make_array,
};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer};
use arrow::datatypes::{
    ArrowPrimitiveType, ByteArrayType, ByteViewType, DataType, Date32Type, Decimal128Type, Decimal256Type, Float32Type,
    Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, SchemaRef, Time32MillisecondType, Time32SecondType,
    Time64MicrosecondType, Time64NanosecondType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type, i256,
};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use serde_json::Value;

use super::{Encoder, FormatError};

/// The first four bytes of every object container file.
const MAGIC: [u8; 4] = *b"Obj\x01";
/// The default uncompressed size at which a block is closed: 1 MiB. Larger than the 16-64 kB
/// Avro's own writers default to, so blocks compress better; small enough to stream.
pub(crate) const DEFAULT_BLOCK_BYTES: usize = 1024 * 1024;
/// The reader's limit on any one length: a block (compressed or not), a string, a metadata
/// value. A hostile file can claim any size; nothing larger is ever allocated.
const MAX_READ_BYTES: usize = 64 * 1024 * 1024;
/// The writer's limit on a block's uncompressed size, below [`MAX_READ_BYTES`] with room for
/// compression overhead on incompressible data (snappy's worst case is n + n/6 + 32), so every
/// file written is one [`read_avro`] reads.
const MAX_WRITE_BLOCK: usize = 48 * 1024 * 1024;
/// The reader closes a batch early once its rows took this many bytes in the file, so string
/// offsets stay within `i32` (Utf8, Binary, List) and memory stays bounded.
const MAX_BATCH_BYTES: usize = 256 * 1024 * 1024;

/// The block codec of an Avro file (`avro.codec`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AvroCodec {
    /// No compression.
    Null,
    /// Raw deflate (RFC 1951) at a level of 0-9.
    Deflate(u32),
    /// Snappy with a CRC32 of the uncompressed block.
    Snappy,
    /// Zstandard at a level of zstd's range (1-22, negatives for faster), checksummed.
    Zstd(i32),
}

impl AvroCodec {
    /// The name in the file's `avro.codec` metadata.
    pub(crate) fn name(self) -> &'static str {
        match self {
            AvroCodec::Null => "null",
            AvroCodec::Deflate(_) => "deflate",
            AvroCodec::Snappy => "snappy",
            AvroCodec::Zstd(_) => "zstandard",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Schema mapping
// ---------------------------------------------------------------------------------------------

/// An Avro type as this module writes and reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ty {
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Decimal {
        precision: u64,
        scale: u64,
    },
    Date,
    TimeMicros,
    TimestampMicros,
    LocalTimestampMicros,
    Array(Box<Node>),
    /// A type of a file this module does not read: its JSON, for the error message.
    Other(String),
}

/// A type and whether it is the union with `null`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    /// The union branch that is `null` (0 in the files written here), `None`: not a union.
    null: Option<i64>,
    ty: Ty,
}

/// The Avro node of an Arrow type, `None` when Avro cannot store it.
fn avro_node(data_type: &DataType, nullable: bool) -> Option<Node> {
    use DataType as D;
    let ty = match data_type {
        D::Boolean => Ty::Boolean,
        D::Int8 | D::Int16 | D::Int32 | D::UInt8 | D::UInt16 => Ty::Int,
        D::Int64 | D::UInt32 => Ty::Long,
        D::UInt64 => Ty::Decimal { precision: 20, scale: 0 },
        D::Float32 => Ty::Float,
        D::Float64 => Ty::Double,
        D::Utf8 | D::LargeUtf8 | D::Utf8View => Ty::String,
        D::Binary | D::LargeBinary | D::BinaryView => Ty::Bytes,
        D::Decimal128(p, s) | D::Decimal256(p, s) if *p <= 38 && *s >= 0 && s.unsigned_abs() <= *p => {
            Ty::Decimal { precision: u64::from(*p), scale: u64::from(s.unsigned_abs()) }
        }
        D::Date32 => Ty::Date,
        D::Time32(TimeUnit::Second | TimeUnit::Millisecond)
        | D::Time64(TimeUnit::Microsecond | TimeUnit::Nanosecond) => Ty::TimeMicros,
        D::Timestamp(_, Some(_)) => Ty::TimestampMicros,
        D::Timestamp(_, None) => Ty::LocalTimestampMicros,
        D::List(item) | D::LargeList(item) => Ty::Array(Box::new(avro_node(item.data_type(), item.is_nullable())?)),
        _ => return None,
    };
    Some(Node { null: nullable.then_some(0), ty })
}

/// Whether `name` is an Avro name: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_avro_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The Avro nodes of `schema`'s columns, each checked to be storable under a valid, unique name.
fn columns(schema: &SchemaRef) -> Result<Vec<Node>, FormatError> {
    if schema.fields().is_empty() {
        return Err(FormatError::Invalid("an avro file needs at least one column".into()));
    }
    let mut seen = HashSet::new();
    schema
        .fields()
        .iter()
        .map(|field| {
            let name = field.name();
            if !is_avro_name(name) {
                return Err(FormatError::Invalid(format!(
                    "column {name:?} is not a valid avro name ([A-Za-z_][A-Za-z0-9_]*): rename it in the query"
                )));
            }
            if !seen.insert(name.as_str()) {
                return Err(FormatError::Invalid(format!(
                    "column {name:?} appears twice: avro field names are unique"
                )));
            }
            avro_node(field.data_type(), field.is_nullable()).ok_or_else(|| FormatError::Unsupported {
                column: name.clone(),
                data_type: field.data_type().to_string(),
                format: "avro",
            })
        })
        .collect()
}

/// The JSON of a type (without its union).
fn ty_json(ty: &Ty) -> String {
    match ty {
        Ty::Boolean => r#""boolean""#.into(),
        Ty::Int => r#""int""#.into(),
        Ty::Long => r#""long""#.into(),
        Ty::Float => r#""float""#.into(),
        Ty::Double => r#""double""#.into(),
        Ty::Bytes => r#""bytes""#.into(),
        Ty::String => r#""string""#.into(),
        Ty::Decimal { precision, scale } => {
            format!(r#"{{"type":"bytes","logicalType":"decimal","precision":{precision},"scale":{scale}}}"#)
        }
        Ty::Date => r#"{"type":"int","logicalType":"date"}"#.into(),
        Ty::TimeMicros => r#"{"type":"long","logicalType":"time-micros"}"#.into(),
        Ty::TimestampMicros => r#"{"type":"long","logicalType":"timestamp-micros"}"#.into(),
        Ty::LocalTimestampMicros => r#"{"type":"long","logicalType":"local-timestamp-micros"}"#.into(),
        Ty::Array(item) => format!(r#"{{"type":"array","items":{}}}"#, node_json(item)),
        Ty::Other(json) => json.clone(),
    }
}

/// The JSON of a node: its type, or the union of `null` and its type.
fn node_json(node: &Node) -> String {
    let ty = ty_json(&node.ty);
    match node.null {
        None => ty,
        Some(0) => format!(r#"["null",{ty}]"#),
        Some(_) => format!(r#"[{ty},"null"]"#),
    }
}

/// The schema JSON of a record `name` with `fields`. Compact and in a fixed key order: the
/// header (and so the sync marker) depends on the columns only.
fn schema_json(name: &str, fields: &[(&str, &Node)]) -> String {
    let fields: Vec<String> = fields
        .iter()
        .map(|(field, node)| {
            let default = if node.null.is_some() { r#","default":null"# } else { "" };
            format!(r#"{{"name":"{field}","type":{}{default}}}"#, node_json(node))
        })
        .collect();
    format!(r#"{{"type":"record","name":"{name}","fields":[{}]}}"#, fields.join(","))
}

// ---------------------------------------------------------------------------------------------
// Encoder
// ---------------------------------------------------------------------------------------------

/// Encodes batches into an Avro object container file, a block at a time.
///
/// The header is ready from the start, so even a file without rows is a valid container that
/// carries its schema. Rows are encoded into the open block, which is compressed and becomes
/// ready once it holds `block_bytes` (uncompressed): memory stays at about one block.
pub(crate) struct AvroEncoder {
    schema: SchemaRef,
    /// The Avro node of each column.
    nodes: Vec<Node>,
    compressor: Compressor,
    sync: [u8; 16],
    block_bytes: usize,
    /// The rows of the open block, uncompressed.
    block: Vec<u8>,
    block_rows: i64,
    /// Finished bytes not yet taken: the header, then closed blocks.
    ready: Vec<u8>,
}

/// A codec's compressor, kept from block to block.
enum Compressor {
    Null,
    Deflate(flate2::Compression),
    Snappy(Box<snap::raw::Encoder>),
    Zstd(Box<zstd::bulk::Compressor<'static>>),
}

impl AvroEncoder {
    /// An encoder for `schema` whose record is named `row`; blocks close at `block_bytes` of
    /// uncompressed rows ([`DEFAULT_BLOCK_BYTES`] is a good default, at most 48 MiB).
    ///
    /// Fails with [`FormatError::Unsupported`] for a column Avro cannot store and
    /// [`FormatError::Invalid`] for a column name that is not an Avro name, a bad codec level
    /// or block size.
    pub(crate) fn new(schema: SchemaRef, codec: AvroCodec, block_bytes: usize) -> Result<Self, FormatError> {
        Self::with_record_name(schema, codec, block_bytes, "row")
    }

    /// [`AvroEncoder::new`] with the record named `record_name` (an Avro name), which some
    /// readers turn into a class or table name.
    pub(crate) fn with_record_name(
        schema: SchemaRef,
        codec: AvroCodec,
        block_bytes: usize,
        record_name: &str,
    ) -> Result<Self, FormatError> {
        if !is_avro_name(record_name) {
            return Err(FormatError::Invalid(format!(
                "record name {record_name:?} is not a valid avro name ([A-Za-z_][A-Za-z0-9_]*)"
            )));
        }
        if block_bytes == 0 || block_bytes > MAX_WRITE_BLOCK {
            return Err(FormatError::Invalid(format!(
                "avro block size {block_bytes} is out of range: use 1 byte to {MAX_WRITE_BLOCK} bytes"
            )));
        }
        let nodes = columns(&schema)?;
        let compressor = match codec {
            AvroCodec::Null => Compressor::Null,
            AvroCodec::Deflate(level) if level <= 9 => Compressor::Deflate(flate2::Compression::new(level)),
            AvroCodec::Deflate(level) => {
                return Err(FormatError::Invalid(format!("deflate level {level} is out of range: use 0-9")));
            }
            AvroCodec::Snappy => Compressor::Snappy(Box::new(snap::raw::Encoder::new())),
            AvroCodec::Zstd(level) => {
                let range = zstd::compression_level_range();
                if !range.contains(&level) {
                    return Err(FormatError::Invalid(format!(
                        "zstd level {level} is out of range: use {}-{}",
                        range.start(),
                        range.end()
                    )));
                }
                let mut compressor = zstd::bulk::Compressor::new(level)?;
                // A 4-byte checksum per block, as snappy's CRC: a corrupt block fails to read
                // instead of loading wrong values. Every zstd reader checks it.
                compressor.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
                Compressor::Zstd(Box::new(compressor))
            }
        };
        let fields: Vec<(&str, &Node)> = schema.fields().iter().map(|f| f.name().as_str()).zip(&nodes).collect();
        let json = schema_json(record_name, &fields);
        // The sync marker is a hash of the header's metadata, not random bytes as Avro's own
        // writers use: the same columns, codec and rows always make the same file, byte for
        // byte, so re-running a dump writes identical objects (same sha256, no spurious change).
        // It only has to be unlikely inside the data, which a 128-bit hash is.
        let sync = fnv1a_128(&[b"byob avro sync\0", json.as_bytes(), b"\0", codec.name().as_bytes()]).to_be_bytes();
        let mut ready = Vec::with_capacity(json.len() + 64);
        ready.extend_from_slice(&MAGIC);
        put_long(&mut ready, 2);
        put_bytes(&mut ready, b"avro.schema");
        put_bytes(&mut ready, json.as_bytes());
        put_bytes(&mut ready, b"avro.codec");
        put_bytes(&mut ready, codec.name().as_bytes());
        put_long(&mut ready, 0);
        ready.extend_from_slice(&sync);
        Ok(AvroEncoder { schema, nodes, compressor, sync, block_bytes, block: Vec::new(), block_rows: 0, ready })
    }

    /// Compresses the open block (if it holds rows) and appends it to the ready bytes.
    fn close_block(&mut self) -> Result<(), FormatError> {
        if self.block_rows == 0 {
            return Ok(());
        }
        let compressed;
        let data: &[u8] = match &mut self.compressor {
            Compressor::Null => &self.block,
            Compressor::Deflate(level) => {
                let mut encoder =
                    flate2::write::DeflateEncoder::new(Vec::with_capacity(self.block.len() / 2 + 64), *level);
                encoder.write_all(&self.block)?;
                compressed = encoder.finish()?;
                &compressed
            }
            Compressor::Snappy(encoder) => {
                let mut out = encoder.compress_vec(&self.block).map_err(io::Error::from)?;
                out.extend_from_slice(&crc32fast::hash(&self.block).to_be_bytes());
                compressed = out;
                &compressed
            }
            Compressor::Zstd(compressor) => {
                compressed = compressor.compress(&self.block)?;
                &compressed
            }
        };
        put_long(&mut self.ready, self.block_rows);
        put_long(&mut self.ready, len_i64(data.len()));
        self.ready.extend_from_slice(data);
        self.ready.extend_from_slice(&self.sync);
        self.block.clear();
        self.block_rows = 0;
        Ok(())
    }
}

impl Encoder for AvroEncoder {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), FormatError> {
        let schema = self.schema.clone();
        let fields = schema.fields();
        if batch.num_columns() != fields.len() {
            return Err(FormatError::Invalid(format!(
                "the batch has {} columns, the avro encoder's schema {}",
                batch.num_columns(),
                fields.len()
            )));
        }
        let mut columns = Vec::with_capacity(fields.len());
        for ((field, node), array) in fields.iter().zip(&self.nodes).zip(batch.columns()) {
            if array.data_type() != field.data_type() {
                return Err(FormatError::Invalid(format!(
                    "column {:?} is {} in the batch but {} in the avro encoder's schema",
                    field.name(),
                    array.data_type(),
                    field.data_type()
                )));
            }
            columns.push(Col::new(field.name(), array.as_ref(), node.null.is_some())?);
        }
        for row in 0..batch.num_rows() {
            let start = self.block.len();
            for column in &columns {
                if let Err(e) = column.write(row, &mut self.block) {
                    self.block.truncate(start);
                    return Err(e);
                }
            }
            if self.block.len() - start > MAX_WRITE_BLOCK {
                self.block.truncate(start);
                return Err(FormatError::Invalid(format!(
                    "a row takes more than {MAX_WRITE_BLOCK} bytes in avro, more than one block may hold"
                )));
            }
            if self.block.len() > MAX_WRITE_BLOCK {
                // The row does not fit the open block: close the block without it.
                let row_bytes = self.block.split_off(start);
                self.close_block()?;
                self.block = row_bytes;
            }
            self.block_rows += 1;
            if self.block.len() >= self.block_bytes {
                self.close_block()?;
            }
        }
        Ok(())
    }

    fn take_ready(&mut self) -> Vec<Bytes> {
        super::pieces(std::mem::take(&mut self.ready))
    }

    fn in_progress_size(&self) -> usize {
        self.block.len()
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<Bytes>, FormatError> {
        self.close_block()?;
        Ok(super::pieces(std::mem::take(&mut self.ready)))
    }
}

/// FNV-1a, 128 bits, over `parts` in order: a hash fixed by its spec, so the sync marker never
/// changes with the Rust release (std's `DefaultHasher` may).
fn fnv1a_128(parts: &[&[u8]]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    parts.iter().flat_map(|part| part.iter()).fold(OFFSET, |hash, &byte| (hash ^ u128::from(byte)).wrapping_mul(PRIME))
}

/// Appends `value` as a zigzag varint (Avro `int` and `long`).
fn put_long(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `bytes` with their length first (Avro `bytes` and `string`).
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_long(out, len_i64(bytes.len()));
    out.extend_from_slice(bytes);
}

/// A length as an Avro `long`. Lengths in memory are below `isize::MAX`, so this never saturates.
fn len_i64(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

/// Appends a decimal's unscaled value: big-endian two's complement, minimal length (at least one
/// byte), as the decimal logical type asks.
fn put_decimal(out: &mut Vec<u8>, be: &[u8]) {
    let mut start = 0;
    while start + 1 < be.len() {
        let (byte, next) = (be[start], be[start + 1]);
        if (byte == 0x00 && next & 0x80 == 0) || (byte == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    put_bytes(out, &be[start..]);
}

/// One column of a batch, downcast once per batch.
struct Col<'a> {
    name: &'a str,
    array: &'a dyn Array,
    /// Written as the union `["null", T]`.
    nullable: bool,
    values: Values<'a>,
}

/// A column's values, by how they are written.
enum Values<'a> {
    Boolean(&'a BooleanArray),
    Int8(&'a [i8]),
    Int16(&'a [i16]),
    Int32(&'a [i32]),
    Int64(&'a [i64]),
    UInt8(&'a [u8]),
    UInt16(&'a [u16]),
    UInt32(&'a [u32]),
    UInt64(&'a [u64]),
    Float32(&'a [f32]),
    Float64(&'a [f64]),
    Utf8(&'a GenericByteArray<arrow::datatypes::Utf8Type>),
    LargeUtf8(&'a GenericByteArray<arrow::datatypes::LargeUtf8Type>),
    Utf8View(&'a GenericByteViewArray<arrow::datatypes::StringViewType>),
    Binary(&'a GenericByteArray<arrow::datatypes::BinaryType>),
    LargeBinary(&'a GenericByteArray<arrow::datatypes::LargeBinaryType>),
    BinaryView(&'a GenericByteViewArray<arrow::datatypes::BinaryViewType>),
    Decimal128(&'a [i128]),
    Decimal256(&'a [i256]),
    Date32(&'a [i32]),
    /// Time32 values, times `mul` to microseconds.
    Micros32 {
        values: &'a [i32],
        mul: i64,
    },
    /// Time64 and timestamp values: times `mul`, then floored by `div`, to microseconds.
    Micros64 {
        values: &'a [i64],
        mul: i64,
        div: i64,
    },
    List(&'a GenericListArray<i32>, Box<Col<'a>>),
    LargeList(&'a GenericListArray<i64>, Box<Col<'a>>),
}

/// The column's values as `T`'s native slice.
fn native<'a, T: ArrowPrimitiveType>(name: &str, array: &'a dyn Array) -> Result<&'a [T::Native], FormatError> {
    array.as_primitive_opt::<T>().map(|a| &a.values()[..]).ok_or_else(|| mismatch(name, array))
}

fn bytes<'a, T: ByteArrayType>(name: &str, array: &'a dyn Array) -> Result<&'a GenericByteArray<T>, FormatError> {
    array.as_bytes_opt::<T>().ok_or_else(|| mismatch(name, array))
}

fn views<'a, T: ByteViewType>(name: &str, array: &'a dyn Array) -> Result<&'a GenericByteViewArray<T>, FormatError> {
    array.as_byte_view_opt::<T>().ok_or_else(|| mismatch(name, array))
}

fn mismatch(name: &str, array: &dyn Array) -> FormatError {
    FormatError::Invalid(format!("column {name:?}: an array of {} does not match its type", array.data_type()))
}

impl<'a> Col<'a> {
    fn new(name: &'a str, array: &'a dyn Array, nullable: bool) -> Result<Self, FormatError> {
        use DataType as D;
        let micros = |values, mul, div| Values::Micros64 { values, mul, div };
        let values = match array.data_type() {
            D::Boolean => Values::Boolean(array.as_boolean_opt().ok_or_else(|| mismatch(name, array))?),
            D::Int8 => Values::Int8(native::<Int8Type>(name, array)?),
            D::Int16 => Values::Int16(native::<Int16Type>(name, array)?),
            D::Int32 => Values::Int32(native::<Int32Type>(name, array)?),
            D::Int64 => Values::Int64(native::<Int64Type>(name, array)?),
            D::UInt8 => Values::UInt8(native::<UInt8Type>(name, array)?),
            D::UInt16 => Values::UInt16(native::<UInt16Type>(name, array)?),
            D::UInt32 => Values::UInt32(native::<UInt32Type>(name, array)?),
            D::UInt64 => Values::UInt64(native::<UInt64Type>(name, array)?),
            D::Float32 => Values::Float32(native::<Float32Type>(name, array)?),
            D::Float64 => Values::Float64(native::<Float64Type>(name, array)?),
            D::Utf8 => Values::Utf8(bytes(name, array)?),
            D::LargeUtf8 => Values::LargeUtf8(bytes(name, array)?),
            D::Utf8View => Values::Utf8View(views(name, array)?),
            D::Binary => Values::Binary(bytes(name, array)?),
            D::LargeBinary => Values::LargeBinary(bytes(name, array)?),
            D::BinaryView => Values::BinaryView(views(name, array)?),
            D::Decimal128(..) => Values::Decimal128(native::<Decimal128Type>(name, array)?),
            D::Decimal256(..) => Values::Decimal256(native::<Decimal256Type>(name, array)?),
            D::Date32 => Values::Date32(native::<Date32Type>(name, array)?),
            D::Time32(TimeUnit::Second) => {
                Values::Micros32 { values: native::<Time32SecondType>(name, array)?, mul: 1_000_000 }
            }
            D::Time32(TimeUnit::Millisecond) => {
                Values::Micros32 { values: native::<Time32MillisecondType>(name, array)?, mul: 1_000 }
            }
            D::Time64(TimeUnit::Microsecond) => micros(native::<Time64MicrosecondType>(name, array)?, 1, 1),
            D::Time64(TimeUnit::Nanosecond) => micros(native::<Time64NanosecondType>(name, array)?, 1, 1_000),
            D::Timestamp(TimeUnit::Second, _) => micros(native::<TimestampSecondType>(name, array)?, 1_000_000, 1),
            D::Timestamp(TimeUnit::Millisecond, _) => {
                micros(native::<TimestampMillisecondType>(name, array)?, 1_000, 1)
            }
            D::Timestamp(TimeUnit::Microsecond, _) => micros(native::<TimestampMicrosecondType>(name, array)?, 1, 1),
            D::Timestamp(TimeUnit::Nanosecond, _) => micros(native::<TimestampNanosecondType>(name, array)?, 1, 1_000),
            D::List(item) => {
                let list = array.as_list_opt::<i32>().ok_or_else(|| mismatch(name, array))?;
                Values::List(list, Box::new(Col::new(name, list.values().as_ref(), item.is_nullable())?))
            }
            D::LargeList(item) => {
                let list = array.as_list_opt::<i64>().ok_or_else(|| mismatch(name, array))?;
                Values::LargeList(list, Box::new(Col::new(name, list.values().as_ref(), item.is_nullable())?))
            }
            other => {
                return Err(FormatError::Unsupported {
                    column: name.to_owned(),
                    data_type: other.to_string(),
                    format: "avro",
                });
            }
        };
        Ok(Col { name, array, nullable, values })
    }

    /// Appends the value at `i`.
    fn write(&self, i: usize, out: &mut Vec<u8>) -> Result<(), FormatError> {
        if self.array.is_null(i) {
            if !self.nullable {
                return Err(FormatError::Invalid(format!(
                    "column {:?} holds a null where its type is not nullable",
                    self.name
                )));
            }
            out.push(0); // union branch 0: null
            return Ok(());
        }
        if self.nullable {
            out.push(2); // union branch 1 (zigzag): the value
        }
        match &self.values {
            Values::Boolean(a) => out.push(u8::from(a.value(i))),
            Values::Int8(v) => put_long(out, i64::from(v[i])),
            Values::Int16(v) => put_long(out, i64::from(v[i])),
            Values::Int32(v) => put_long(out, i64::from(v[i])),
            Values::Int64(v) => put_long(out, v[i]),
            Values::UInt8(v) => put_long(out, i64::from(v[i])),
            Values::UInt16(v) => put_long(out, i64::from(v[i])),
            Values::UInt32(v) => put_long(out, i64::from(v[i])),
            Values::UInt64(v) => put_decimal(out, &i128::from(v[i]).to_be_bytes()),
            Values::Float32(v) => out.extend_from_slice(&v[i].to_le_bytes()),
            Values::Float64(v) => out.extend_from_slice(&v[i].to_le_bytes()),
            Values::Utf8(a) => put_bytes(out, a.value(i).as_bytes()),
            Values::LargeUtf8(a) => put_bytes(out, a.value(i).as_bytes()),
            Values::Utf8View(a) => put_bytes(out, a.value(i).as_bytes()),
            Values::Binary(a) => put_bytes(out, a.value(i)),
            Values::LargeBinary(a) => put_bytes(out, a.value(i)),
            Values::BinaryView(a) => put_bytes(out, a.value(i)),
            Values::Decimal128(v) => put_decimal(out, &v[i].to_be_bytes()),
            Values::Decimal256(v) => put_decimal(out, &v[i].to_be_bytes()),
            Values::Date32(v) => put_long(out, i64::from(v[i])),
            Values::Micros32 { values, mul } => put_long(out, i64::from(values[i]) * mul),
            Values::Micros64 { values, mul, div } => {
                let micros = values[i].checked_mul(*mul).ok_or_else(|| {
                    FormatError::Invalid(format!(
                        "column {:?}: {} is out of the range of microseconds avro stores",
                        self.name, values[i]
                    ))
                })?;
                put_long(out, micros.div_euclid(*div));
            }
            Values::List(list, item) => write_items(list.value_offsets(), i, item, out)?,
            Values::LargeList(list, item) => write_items(list.value_offsets(), i, item, out)?,
        }
        Ok(())
    }
}

/// Appends list `i` as an Avro array: one block of all its items, then the empty block.
fn write_items<O: OffsetSizeTrait>(
    offsets: &[O],
    i: usize,
    item: &Col<'_>,
    out: &mut Vec<u8>,
) -> Result<(), FormatError> {
    let (start, end) = (offsets[i].as_usize(), offsets[i + 1].as_usize());
    if end > start {
        put_long(out, len_i64(end - start));
        for j in start..end {
            item.write(j, out)?;
        }
    }
    out.push(0);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------------

/// Reads an Avro object container file into batches of `schema` with at most `batch_rows` rows.
///
/// The file's schema must be the one the encoder writes for `schema` (same column names in the
/// same order, same Avro types; a column nullable in `schema` may be non-null in the file): the
/// error names the first column that differs. Arrow types sharing an Avro type read each other's
/// files (an Avro `int` into Int8 or UInt16...), every value checked to fit. Every codec the
/// encoder writes is read. The file is treated as hostile: a length beyond what remains or
/// beyond 64 MiB, a bad sync marker ("corrupt block"), a bad snappy or zstd checksum or a
/// truncated file is an error, never a panic or an allocation of the claimed size. The iterator
/// stops after its first error.
pub(crate) fn read_avro(
    reader: impl Read,
    schema: SchemaRef,
    batch_rows: usize,
) -> Result<impl Iterator<Item = Result<RecordBatch, String>>, String> {
    if batch_rows == 0 {
        return Err("batch_rows must be at least 1".into());
    }
    if schema.fields().is_empty() {
        return Err("the schema has no columns".into());
    }
    let expected = schema
        .fields()
        .iter()
        .map(|f| {
            avro_node(f.data_type(), f.is_nullable())
                .ok_or_else(|| format!("column {:?} has type {}, which avro cannot store", f.name(), f.data_type()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut input = BufReader::new(reader);
    let mut magic = [0u8; 4];
    input.read_exact(&mut magic).map_err(|e| read_error("header", e))?;
    if magic != MAGIC {
        return Err("not an avro object container file (bad magic bytes)".into());
    }
    let Metadata { schema: json, codec } = read_metadata(&mut input)?;
    let mut sync = [0u8; 16];
    input.read_exact(&mut sync).map_err(|e| read_error("header", e))?;
    let codec = match codec.as_deref() {
        None | Some(b"null") => Codec::Null,
        Some(b"deflate") => Codec::Deflate,
        Some(b"snappy") => Codec::Snappy,
        Some(b"zstandard") => Codec::Zstd,
        Some(other) => return Err(format!("unsupported avro codec {:?}", String::from_utf8_lossy(other))),
    };
    let json = json.ok_or("the file has no avro.schema")?;
    let json: Value = serde_json::from_slice(&json).map_err(|e| format!("the file's avro.schema is not JSON: {e}"))?;
    let found = parse_record(&json)?;
    if found.len() != expected.len() {
        return Err(format!("the file has {} columns, the schema {}", found.len(), expected.len()));
    }
    let mut columns = Vec::with_capacity(expected.len());
    for ((field, expected), (name, found)) in schema.fields().iter().zip(&expected).zip(&found) {
        if name != field.name() {
            return Err(format!("column {:?}: the file has column {} in its place", field.name(), clip(name)));
        }
        if !compatible(found, expected) {
            return Err(format!(
                "column {:?}: the file stores {}, the schema needs {}",
                field.name(),
                clip(&node_json(found)),
                node_json(expected)
            ));
        }
        columns.push(Column::new(field.data_type(), found).map_err(|e| format!("column {:?}: {e}", field.name()))?);
    }
    Ok(Batches {
        input,
        schema,
        codec,
        sync,
        columns,
        batch_rows,
        rows: 0,
        batch_bytes: 0,
        block: Vec::new(),
        pos: 0,
        block_left: 0,
        done: false,
    })
}

/// The codec of a file being read.
#[derive(Clone, Copy)]
enum Codec {
    Null,
    Deflate,
    Snappy,
    Zstd,
}

/// `text` cut to 200 characters: error messages quote the file, which may be huge.
fn clip(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_owned(),
    }
}

fn read_error(what: &str, e: io::Error) -> String {
    if e.kind() == io::ErrorKind::UnexpectedEof { format!("truncated file (in the {what})") } else { e.to_string() }
}

/// Reads a zigzag varint from `input`.
fn read_long(input: &mut impl Read, what: &str) -> Result<i64, String> {
    decode_long(|| {
        let mut byte = [0u8; 1];
        input.read_exact(&mut byte).map_err(|e| read_error(what, e))?;
        Ok(byte[0])
    })
}

/// Decodes a zigzag varint of at most 10 bytes whose bytes come from `next`.
fn decode_long(mut next: impl FnMut() -> Result<u8, String>) -> Result<i64, String> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = next()?;
        if shift == 63 && byte > 1 {
            return Err("corrupt varint: longer than 64 bits".into());
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err("corrupt varint: longer than 64 bits".into())
}

/// Reads a length prefix, checked to be at most [`MAX_READ_BYTES`].
fn read_len(input: &mut impl Read, what: &str) -> Result<usize, String> {
    let len = read_long(input, what)?;
    usize::try_from(len)
        .ok()
        .filter(|&len| len <= MAX_READ_BYTES)
        .ok_or_else(|| format!("corrupt {what}: length {len} is negative or larger than 64 MiB"))
}

/// Reads exactly `len` bytes. The buffer grows with the bytes that arrive, not with `len`: a
/// truncated file claiming a large length costs what it holds.
fn read_vec(input: &mut impl Read, len: usize, what: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(len.min(1024 * 1024));
    input.take(len as u64).read_to_end(&mut out).map_err(|e| read_error(what, e))?;
    if out.len() != len {
        return Err(format!("truncated file (in the {what})"));
    }
    Ok(out)
}

/// The header metadata the reader uses; other keys are skipped.
#[derive(Default)]
struct Metadata {
    /// `avro.schema`: the writer's schema JSON.
    schema: Option<Vec<u8>>,
    /// `avro.codec`; absent means `null`.
    codec: Option<Vec<u8>>,
}

/// Reads the header's metadata map. Keys other than the schema and codec are skipped, not kept,
/// so a hostile header cannot make them cost memory.
fn read_metadata(input: &mut impl Read) -> Result<Metadata, String> {
    let mut metadata = Metadata::default();
    let mut total = 0usize;
    loop {
        let count = read_long(input, "header")?;
        if count == 0 {
            return Ok(metadata);
        }
        if count < 0 {
            read_long(input, "header")?; // the block's byte size, not needed
        }
        let count = count.checked_abs().ok_or("corrupt header: bad metadata count")?;
        for _ in 0..count {
            let key_len = read_len(input, "header")?;
            let key = read_vec(input, key_len, "header")?;
            let value_len = read_len(input, "header")?;
            total = total.saturating_add(key_len).saturating_add(value_len);
            if total > MAX_READ_BYTES {
                return Err("corrupt header: metadata larger than 64 MiB".into());
            }
            let value = read_vec(input, value_len, "header")?;
            let slot = match key.as_slice() {
                b"avro.schema" => &mut metadata.schema,
                b"avro.codec" => &mut metadata.codec,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(format!("corrupt header: {} appears twice", String::from_utf8_lossy(&key)));
            }
        }
    }
}

/// The fields of the file's record schema.
fn parse_record(json: &Value) -> Result<Vec<(String, Node)>, String> {
    let record = json.as_object().filter(|o| o.get("type").and_then(Value::as_str) == Some("record"));
    let fields = record
        .and_then(|o| o.get("fields"))
        .and_then(Value::as_array)
        .ok_or("the file's avro.schema is not a record with fields")?;
    fields
        .iter()
        .map(|field| {
            let name = field.get("name").and_then(Value::as_str).ok_or("a field of the file's schema has no name")?;
            let ty =
                field.get("type").ok_or_else(|| format!("field {} of the file's schema has no type", clip(name)))?;
            Ok((name.to_owned(), parse_node(ty)))
        })
        .collect()
}

/// A type of the file's schema; a type this module does not read is [`Ty::Other`].
fn parse_node(json: &Value) -> Node {
    if let Value::Array(branches) = json
        && let [a, b] = branches.as_slice()
    {
        let null = Value::from("null");
        if *a == null && *b != null {
            return Node { null: Some(0), ty: parse_ty(b) };
        }
        if *b == null && *a != null {
            return Node { null: Some(1), ty: parse_ty(a) };
        }
    }
    Node { null: None, ty: parse_ty(json) }
}

fn parse_ty(json: &Value) -> Ty {
    let primitive = |name: &str| match name {
        "boolean" => Some(Ty::Boolean),
        "int" => Some(Ty::Int),
        "long" => Some(Ty::Long),
        "float" => Some(Ty::Float),
        "double" => Some(Ty::Double),
        "bytes" => Some(Ty::Bytes),
        "string" => Some(Ty::String),
        _ => None,
    };
    let other = || Ty::Other(json.to_string());
    match json {
        Value::String(name) => primitive(name).unwrap_or_else(other),
        Value::Object(o) => {
            let Some(ty) = o.get("type").and_then(Value::as_str) else { return other() };
            match (ty, o.get("logicalType").and_then(Value::as_str)) {
                ("array", _) => {
                    o.get("items").map(|items| Ty::Array(Box::new(parse_node(items)))).unwrap_or_else(other)
                }
                ("int", Some("date")) => Ty::Date,
                ("long", Some("time-micros")) => Ty::TimeMicros,
                ("long", Some("timestamp-micros")) => Ty::TimestampMicros,
                ("long", Some("local-timestamp-micros")) => Ty::LocalTimestampMicros,
                ("bytes", Some("decimal")) => {
                    let precision = o.get("precision").and_then(Value::as_u64);
                    let scale = o.get("scale").map_or(Some(0), Value::as_u64);
                    match (precision, scale) {
                        (Some(precision), Some(scale)) => Ty::Decimal { precision, scale },
                        _ => other(),
                    }
                }
                (name, None) => primitive(name).unwrap_or_else(other),
                _ => other(),
            }
        }
        _ => other(),
    }
}

/// Whether a value the file stores as `found` reads as `expected`: the same type, and no null
/// where `expected` allows none.
fn compatible(found: &Node, expected: &Node) -> bool {
    (found.null.is_none() || expected.null.is_some())
        && match (&found.ty, &expected.ty) {
            (Ty::Array(found), Ty::Array(expected)) => compatible(found, expected),
            (Ty::Other(_), _) => false,
            (found, expected) => found == expected,
        }
}

/// Batches of an Avro file being read.
struct Batches<R> {
    input: BufReader<R>,
    schema: SchemaRef,
    codec: Codec,
    sync: [u8; 16],
    columns: Vec<Column>,
    batch_rows: usize,
    /// Rows decoded into `columns`.
    rows: usize,
    /// Bytes of the file those rows took.
    batch_bytes: usize,
    /// The current block, decompressed, and where its next row starts.
    block: Vec<u8>,
    pos: usize,
    /// Rows of the current block not yet decoded.
    block_left: u64,
    /// Set after the end or the first error: nothing more is read.
    done: bool,
}

impl<R: Read> Iterator for Batches<R> {
    type Item = Result<RecordBatch, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_batch();
        if !matches!(next, Ok(Some(_))) {
            self.done = true;
        }
        next.transpose()
    }
}

impl<R: Read> Batches<R> {
    fn next_batch(&mut self) -> Result<Option<RecordBatch>, String> {
        loop {
            if self.block_left == 0 {
                if !self.next_block()? {
                    return if self.rows > 0 { self.flush().map(Some) } else { Ok(None) };
                }
                continue;
            }
            let mut cursor = Cursor { data: &self.block, pos: self.pos };
            for (column, field) in self.columns.iter_mut().zip(self.schema.fields()) {
                column.decode(&mut cursor).map_err(|e| format!("column {:?}: {e}", field.name()))?;
            }
            self.batch_bytes += cursor.pos - self.pos;
            self.pos = cursor.pos;
            self.block_left -= 1;
            self.rows += 1;
            if self.block_left == 0 && self.pos != self.block.len() {
                return Err(format!("corrupt block: {} bytes left after its last row", self.block.len() - self.pos));
            }
            if self.rows >= self.batch_rows || self.batch_bytes >= MAX_BATCH_BYTES {
                return self.flush().map(Some);
            }
        }
    }

    /// Reads the next block; `false` at the end of the file.
    fn next_block(&mut self) -> Result<bool, String> {
        if self.input.fill_buf().map_err(|e| e.to_string())?.is_empty() {
            return Ok(false);
        }
        let count = read_long(&mut self.input, "block")?;
        let size = read_len(&mut self.input, "block")?;
        let raw = read_vec(&mut self.input, size, "block")?;
        let mut sync = [0u8; 16];
        self.input.read_exact(&mut sync).map_err(|e| read_error("block", e))?;
        if sync != self.sync {
            return Err("corrupt block: sync marker mismatch".into());
        }
        let data = decompress(self.codec, raw)?;
        // Every row takes at least one byte (the schema has a column, and no Avro type the
        // reader accepts is empty), which bounds the count by the data.
        let count = u64::try_from(count)
            .ok()
            .filter(|&count| count <= data.len() as u64 && (count > 0 || data.is_empty()))
            .ok_or_else(|| format!("corrupt block: {count} rows in {} bytes", data.len()))?;
        self.block = data;
        self.pos = 0;
        self.block_left = count;
        Ok(true)
    }

    fn flush(&mut self) -> Result<RecordBatch, String> {
        let arrays = self
            .columns
            .iter_mut()
            .zip(self.schema.fields())
            .map(|(column, field)| column.finish().map_err(|e| format!("column {:?}: {e}", field.name())))
            .collect::<Result<Vec<_>, _>>()?;
        self.rows = 0;
        self.batch_bytes = 0;
        RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| e.to_string())
    }
}

/// A block's rows, uncompressed and checked: at most 64 MiB, a snappy block's CRC matches.
fn decompress(codec: Codec, raw: Vec<u8>) -> Result<Vec<u8>, String> {
    fn bounded(reader: impl Read) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        reader.take(MAX_READ_BYTES as u64 + 1).read_to_end(&mut out).map_err(|e| format!("corrupt block: {e}"))?;
        if out.len() > MAX_READ_BYTES {
            return Err("corrupt block: it decompresses to more than 64 MiB".into());
        }
        Ok(out)
    }
    match codec {
        Codec::Null => Ok(raw),
        Codec::Deflate => bounded(flate2::read::DeflateDecoder::new(raw.as_slice())),
        Codec::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(raw.as_slice()).map_err(|e| e.to_string())?;
            // Refuse frames asking for a window over 64 MiB, the most a block may hold.
            decoder.window_log_max(26).map_err(|e| e.to_string())?;
            bounded(decoder)
        }
        Codec::Snappy => {
            let split = raw.len().checked_sub(4).ok_or("corrupt block: snappy block without its checksum")?;
            let (body, crc) = raw.split_at(split);
            let len = snap::raw::decompress_len(body).map_err(|e| format!("corrupt block: {e}"))?;
            if len > MAX_READ_BYTES {
                return Err("corrupt block: it decompresses to more than 64 MiB".into());
            }
            let out = snap::raw::Decoder::new().decompress_vec(body).map_err(|e| format!("corrupt block: {e}"))?;
            if crc32fast::hash(&out).to_be_bytes() != crc {
                return Err("corrupt block: snappy checksum mismatch".into());
            }
            Ok(out)
        }
    }
}

/// Reads values out of a decompressed block, every length checked against what remains.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn long(&mut self) -> Result<i64, String> {
        let (data, pos) = (self.data, &mut self.pos);
        decode_long(|| {
            let byte = *data.get(*pos).ok_or("corrupt block: a value runs past its end")?;
            *pos += 1;
            Ok(byte)
        })
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(len).filter(|&end| end <= self.data.len());
        let bytes =
            end.and_then(|end| self.data.get(self.pos..end)).ok_or("corrupt block: a value runs past its end")?;
        self.pos += len;
        Ok(bytes)
    }

    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    /// A length prefix (of `bytes`, `string`), checked against what remains.
    fn len(&mut self) -> Result<usize, String> {
        let len = self.long()?;
        usize::try_from(len)
            .ok()
            .filter(|&len| len <= self.remaining())
            .ok_or_else(|| format!("corrupt block: length {len} runs past the block's end"))
    }
}

/// A column being read: its values so far, converted to the Arrow type when a batch is done.
struct Column {
    data_type: DataType,
    /// The union branch that is null, when the file's type is a union.
    null: Option<i64>,
    nulls: NullBufferBuilder,
    len: usize,
    values: Decoded,
}

/// Values as decoded, before conversion to the column's Arrow type.
enum Decoded {
    Boolean(Vec<bool>),
    /// `int`, `long`, dates, times and timestamps (all zigzag varints).
    Long(Vec<i64>),
    Float(Vec<f32>),
    Double(Vec<f64>),
    /// `string` and `bytes`: the bytes end to end, and where each value ends.
    Bytes {
        data: Vec<u8>,
        ends: Vec<usize>,
    },
    /// Unscaled decimals (and UInt64), checked to lie in `min..=max`.
    Decimal {
        values: Vec<i128>,
        min: i128,
        max: i128,
    },
    /// Arrays: where each row's items end in `item`.
    List {
        ends: Vec<usize>,
        item: Box<Column>,
    },
}

impl Column {
    fn new(data_type: &DataType, found: &Node) -> Result<Column, String> {
        let values = match (&found.ty, data_type) {
            (Ty::Boolean, _) => Decoded::Boolean(Vec::new()),
            (Ty::Int | Ty::Long | Ty::Date | Ty::TimeMicros | Ty::TimestampMicros | Ty::LocalTimestampMicros, _) => {
                Decoded::Long(Vec::new())
            }
            (Ty::Float, _) => Decoded::Float(Vec::new()),
            (Ty::Double, _) => Decoded::Double(Vec::new()),
            (Ty::String | Ty::Bytes, _) => Decoded::Bytes { data: Vec::new(), ends: Vec::new() },
            (Ty::Decimal { .. }, DataType::UInt64) => {
                Decoded::Decimal { values: Vec::new(), min: 0, max: i128::from(u64::MAX) }
            }
            (Ty::Decimal { precision, .. }, _) => {
                let max = u32::try_from(*precision)
                    .ok()
                    .and_then(|p| 10i128.checked_pow(p))
                    .ok_or_else(|| format!("decimal precision {precision} is over 38"))?
                    - 1;
                Decoded::Decimal { values: Vec::new(), min: -max, max }
            }
            (Ty::Array(found), DataType::List(item) | DataType::LargeList(item)) => {
                Decoded::List { ends: Vec::new(), item: Box::new(Column::new(item.data_type(), found)?) }
            }
            (found, _) => return Err(format!("cannot read avro {} as {data_type}", clip(&ty_json(found)))),
        };
        Ok(Column { data_type: data_type.clone(), null: found.null, nulls: NullBufferBuilder::new(0), len: 0, values })
    }

    /// Decodes one value.
    fn decode(&mut self, cursor: &mut Cursor<'_>) -> Result<(), String> {
        if let Some(null) = self.null {
            let branch = cursor.long()?;
            if branch == null {
                self.nulls.append_null();
                self.len += 1;
                match &mut self.values {
                    Decoded::Boolean(v) => v.push(false),
                    Decoded::Long(v) => v.push(0),
                    Decoded::Float(v) => v.push(0.0),
                    Decoded::Double(v) => v.push(0.0),
                    Decoded::Bytes { data, ends } => ends.push(data.len()),
                    Decoded::Decimal { values, .. } => values.push(0),
                    Decoded::List { ends, item } => ends.push(item.len),
                }
                return Ok(());
            }
            if branch != 1 - null {
                return Err(format!("corrupt block: union branch {branch} of 2"));
            }
        }
        match &mut self.values {
            Decoded::Boolean(v) => match cursor.take(1)? {
                [0] => v.push(false),
                [1] => v.push(true),
                other => return Err(format!("corrupt block: boolean byte {other:?}")),
            },
            Decoded::Long(v) => v.push(cursor.long()?),
            Decoded::Float(v) => v.push(f32::from_le_bytes(fixed(cursor.take(4)?)?)),
            Decoded::Double(v) => v.push(f64::from_le_bytes(fixed(cursor.take(8)?)?)),
            Decoded::Bytes { data, ends } => {
                let len = cursor.len()?;
                if len > MAX_READ_BYTES {
                    return Err(format!("corrupt block: a value of {len} bytes, over 64 MiB"));
                }
                data.extend_from_slice(cursor.take(len)?);
                ends.push(data.len());
            }
            Decoded::Decimal { values, min, max } => {
                let len = cursor.len()?;
                let value = decimal_from_be(cursor.take(len)?)?;
                if value < *min || value > *max {
                    return Err(format!("decimal {value} (unscaled) is out of range for {}", self.data_type));
                }
                values.push(value);
            }
            Decoded::List { ends, item } => {
                loop {
                    let count = cursor.long()?;
                    if count == 0 {
                        break;
                    }
                    if count < 0 {
                        cursor.long()?; // the block's byte size, not needed
                    }
                    // Every item takes at least one byte: the count is bounded by what remains.
                    let count = count
                        .checked_abs()
                        .and_then(|c| usize::try_from(c).ok())
                        .filter(|&c| c <= cursor.remaining())
                        .ok_or_else(|| format!("corrupt block: an array of {count} items runs past the block's end"))?;
                    for _ in 0..count {
                        item.decode(cursor)?;
                    }
                }
                ends.push(item.len);
            }
        }
        self.nulls.append_non_null();
        self.len += 1;
        Ok(())
    }

    /// The values decoded since the last call, as an array of the column's type.
    fn finish(&mut self) -> Result<ArrayRef, String> {
        let len = std::mem::take(&mut self.len);
        let nulls = self.nulls.finish();
        let data = match &mut self.values {
            Decoded::Boolean(v) => {
                let bits = BooleanBuffer::from(std::mem::take(v)).into_inner();
                array_data(&self.data_type, len, nulls, vec![bits], vec![])?
            }
            Decoded::Long(v) => {
                let values = std::mem::take(v);
                array_data(&self.data_type, len, nulls, vec![longs(values, &self.data_type)?], vec![])?
            }
            Decoded::Float(v) => {
                array_data(&self.data_type, len, nulls, vec![Buffer::from_vec(std::mem::take(v))], vec![])?
            }
            Decoded::Double(v) => {
                array_data(&self.data_type, len, nulls, vec![Buffer::from_vec(std::mem::take(v))], vec![])?
            }
            Decoded::Bytes { data, ends } => {
                let (data, ends) = (std::mem::take(data), std::mem::take(ends));
                match &self.data_type {
                    DataType::Utf8View => {
                        let mut builder = StringViewBuilder::with_capacity(len);
                        for_each_value(&data, &ends, nulls.as_ref(), |value| match value {
                            Some(bytes) => {
                                let text = std::str::from_utf8(bytes).map_err(|e| format!("invalid UTF-8: {e}"))?;
                                builder.try_append_value(text).map_err(|e| e.to_string())
                            }
                            None => {
                                builder.append_null();
                                Ok(())
                            }
                        })?;
                        return Ok(std::sync::Arc::new(builder.finish()));
                    }
                    DataType::BinaryView => {
                        let mut builder = BinaryViewBuilder::with_capacity(len);
                        for_each_value(&data, &ends, nulls.as_ref(), |value| match value {
                            Some(bytes) => builder.try_append_value(bytes).map_err(|e| e.to_string()),
                            None => {
                                builder.append_null();
                                Ok(())
                            }
                        })?;
                        return Ok(std::sync::Arc::new(builder.finish()));
                    }
                    DataType::LargeUtf8 | DataType::LargeBinary => {
                        let offsets = offsets::<i64>(&ends)?;
                        array_data(&self.data_type, len, nulls, vec![offsets, Buffer::from_vec(data)], vec![])?
                    }
                    _ => {
                        let offsets = offsets::<i32>(&ends)?;
                        array_data(&self.data_type, len, nulls, vec![offsets, Buffer::from_vec(data)], vec![])?
                    }
                }
            }
            Decoded::Decimal { values, .. } => {
                let values = std::mem::take(values);
                let buffer = match &self.data_type {
                    DataType::UInt64 => {
                        let values: Result<Vec<u64>, _> = values.into_iter().map(u64::try_from).collect();
                        Buffer::from_vec(values.map_err(|e| e.to_string())?)
                    }
                    DataType::Decimal256(..) => {
                        Buffer::from_vec(values.into_iter().map(i256::from_i128).collect::<Vec<_>>())
                    }
                    _ => Buffer::from_vec(values),
                };
                array_data(&self.data_type, len, nulls, vec![buffer], vec![])?
            }
            Decoded::List { ends, item } => {
                let ends = std::mem::take(ends);
                let child = item.finish()?.to_data();
                let offsets = match &self.data_type {
                    DataType::LargeList(_) => offsets::<i64>(&ends)?,
                    _ => offsets::<i32>(&ends)?,
                };
                array_data(&self.data_type, len, nulls, vec![offsets], vec![child])?
            }
        };
        Ok(make_array(data))
    }
}

/// Calls `each` with every value (`None` for a null) of bytes laid end to end.
fn for_each_value(
    data: &[u8],
    ends: &[usize],
    nulls: Option<&NullBuffer>,
    mut each: impl FnMut(Option<&[u8]>) -> Result<(), String>,
) -> Result<(), String> {
    let mut start = 0;
    for (i, &end) in ends.iter().enumerate() {
        let value = data.get(start..end).ok_or("internal: bad value offsets")?;
        each(if nulls.is_some_and(|n| n.is_null(i)) { None } else { Some(value) })?;
        start = end;
    }
    Ok(())
}

/// Arrow offsets (a leading 0, then each value's end) of width `O`.
fn offsets<O: OffsetSizeTrait + TryFrom<usize>>(ends: &[usize]) -> Result<Buffer, String> {
    std::iter::once(0)
        .chain(ends.iter().copied())
        .map(|end| O::try_from(end).map_err(|_| format!("{end} bytes are too many for one batch of this type")))
        .collect::<Result<Vec<O>, String>>()
        .map(Buffer::from_vec)
}

/// Builds (and fully validates) an array's data.
fn array_data(
    data_type: &DataType,
    len: usize,
    nulls: Option<NullBuffer>,
    buffers: Vec<Buffer>,
    children: Vec<ArrayData>,
) -> Result<ArrayData, String> {
    ArrayDataBuilder::new(data_type.clone())
        .len(len)
        .nulls(nulls)
        .buffers(buffers)
        .child_data(children)
        .build()
        .map_err(|e| e.to_string())
}

/// Decoded `long`s (microseconds for times and timestamps) as the values buffer of `data_type`.
fn longs(values: Vec<i64>, data_type: &DataType) -> Result<Buffer, String> {
    fn convert<T: arrow::datatypes::ArrowNativeType>(
        values: Vec<i64>,
        data_type: &DataType,
        f: impl Fn(i64) -> Option<T>,
    ) -> Result<Buffer, String> {
        values
            .into_iter()
            .map(|v| f(v).ok_or_else(|| format!("{v} is out of range for {data_type}")))
            .collect::<Result<Vec<T>, String>>()
            .map(Buffer::from_vec)
    }
    use DataType as D;
    use TimeUnit as U;
    match data_type {
        D::Int8 => convert(values, data_type, |v| i8::try_from(v).ok()),
        D::Int16 => convert(values, data_type, |v| i16::try_from(v).ok()),
        D::Int32 | D::Date32 => convert(values, data_type, |v| i32::try_from(v).ok()),
        D::UInt8 => convert(values, data_type, |v| u8::try_from(v).ok()),
        D::UInt16 => convert(values, data_type, |v| u16::try_from(v).ok()),
        D::UInt32 => convert(values, data_type, |v| u32::try_from(v).ok()),
        D::Int64 | D::Time64(U::Microsecond) | D::Timestamp(U::Microsecond, _) => Ok(Buffer::from_vec(values)),
        D::Time32(U::Second) => convert(values, data_type, |v| i32::try_from(v.div_euclid(1_000_000)).ok()),
        D::Time32(U::Millisecond) => convert(values, data_type, |v| i32::try_from(v.div_euclid(1_000)).ok()),
        D::Time64(U::Nanosecond) | D::Timestamp(U::Nanosecond, _) => {
            convert(values, data_type, |v| v.checked_mul(1_000))
        }
        D::Timestamp(U::Second, _) => convert(values, data_type, |v| Some(v.div_euclid(1_000_000))),
        D::Timestamp(U::Millisecond, _) => convert(values, data_type, |v| Some(v.div_euclid(1_000))),
        other => Err(format!("cannot read avro longs as {other}")),
    }
}

/// `bytes` as an array of `N`, checked.
fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], String> {
    bytes.try_into().map_err(|_| "corrupt block: short value".to_owned())
}

/// A big-endian two's complement integer of any length that fits 128 bits.
fn decimal_from_be(bytes: &[u8]) -> Result<i128, String> {
    let first = *bytes.first().ok_or("corrupt block: an empty decimal")?;
    let mut value: i128 = if first & 0x80 != 0 { -1 } else { 0 };
    for &byte in bytes {
        let top = value >> 119;
        if top != 0 && top != -1 {
            return Err("corrupt block: a decimal wider than 128 bits".into());
        }
        value = (value << 8) | i128::from(byte);
    }
    Ok(value)
}

#[cfg(test)]
mod tests;
