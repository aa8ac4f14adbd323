//! [`FileWriter`]: one file's encoder plus the bookkeeping the receipt needs (rows, bytes,
//! sha256); and what the CSV and JSON lines encoders share: [`TextSink`], their plain-or-gzip
//! byte buffer, and [`UtcTimestamps`], which has them write every zoned instant in UTC.
//!
//! The byte count and the sha256 are taken over exactly the bytes handed to the caller, in
//! order, so they describe the object as stored. This module must never drop, reorder or
//! re-encode a byte between the encoder and the caller.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, FieldRef, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::pool::{self, Pending};
use super::{Codec, Encoder, EncoderOptions, Format, FormatError};

/// What one finished file holds, as recorded in `receipt.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStats {
    /// Data rows in the file (a CSV header line is not a row).
    pub rows: u64,
    /// Size of the stored object in bytes.
    pub bytes: u64,
    /// sha256 of the stored object, lowercase hex.
    pub sha256: String,
}

/// Writes one file: encodes batches, hands out finished bytes as they are ready, and
/// counts rows, bytes and the sha256 of everything handed out.
///
/// ```
/// # use std::sync::Arc;
/// # use arrow::array::Int64Array;
/// # use arrow::datatypes::{DataType, Field, Schema};
/// # use arrow::record_batch::RecordBatch;
/// # use byob::format::{EncoderOptions, FileWriter, Format};
/// let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
/// let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))])?;
/// let mut writer = FileWriter::new(&Format::default(), schema, &EncoderOptions::default())?;
/// writer.write(&batch)?;
/// let mut object = writer.take_ready().concat(); // upload as a part...
/// let (last, stats) = writer.finish()?;
/// object.extend_from_slice(&last.concat());
/// assert_eq!(stats.rows, 2);
/// assert_eq!(stats.bytes, object.len() as u64);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FileWriter {
    encoder: Box<dyn Encoder>,
    /// Encrypts the encoder's output (after compression) when the file goes to a key.
    pgp: Option<super::pgp::PgpEncryptor>,
    /// Finished bytes pulled from the encoder but not yet taken by the caller, in order.
    ready: Vec<Bytes>,
    /// Their size.
    ready_bytes: usize,
    /// Bytes already handed to the caller.
    taken: u64,
    rows: u64,
    hasher: Hashing,
}

/// The sha256 of the bytes taken so far: idle, or hashing the last large piece on the worker
/// pool (so the thread feeding the encoders is not held up hashing a whole row group).
enum Hashing {
    Idle(Sha256),
    Busy(super::pool::Pending<Sha256>),
    Failed(FormatError),
}

/// Pieces at least this large are hashed on the pool; smaller ones at once.
const HASH_ON_POOL: usize = 1 << 20;

impl Hashing {
    /// Adds `pieces`, after every piece before them. Nothing to add never waits for the
    /// piece being hashed (most batches finish no part).
    fn update(&mut self, pieces: &[Bytes]) {
        let size = super::pieces_len(pieces);
        if size == 0 {
            return;
        }
        let taken = std::mem::replace(self, Hashing::Failed(FormatError::Worker("hashing was interrupted".into())));
        *self = match taken.into_hasher() {
            Ok(mut hasher) if size < HASH_ON_POOL || super::pool::threads() < 2 => {
                pieces.iter().for_each(|piece| hasher.update(piece));
                Hashing::Idle(hasher)
            }
            Ok(mut hasher) => {
                let pieces = pieces.to_vec();
                Hashing::Busy(super::pool::spawn(move || {
                    pieces.iter().for_each(|piece| hasher.update(piece));
                    Ok(hasher)
                }))
            }
            Err(e) => Hashing::Failed(e),
        };
    }

    /// The hasher once every piece so far is in (waiting for the pool's job, if any).
    fn into_hasher(self) -> Result<Sha256, FormatError> {
        match self {
            Hashing::Idle(hasher) => Ok(hasher),
            Hashing::Busy(pending) => pending.wait(),
            Hashing::Failed(e) => Err(e),
        }
    }

    /// The digest of everything added and then `last`.
    fn finish(self, last: &[Bytes]) -> Result<String, FormatError> {
        let mut hasher = self.into_hasher()?;
        last.iter().for_each(|piece| hasher.update(piece));
        Ok(hex::encode(hasher.finalize()))
    }
}

impl std::fmt::Debug for FileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWriter")
            .field("ready", &self.ready_bytes)
            .field("taken", &self.taken)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl FileWriter {
    /// Starts a file of `format` whose batches all have `schema`.
    ///
    /// Fails if the format/codec combination is invalid, the options are out of range, or a
    /// column type cannot be stored in the format.
    pub fn new(format: &Format, schema: SchemaRef, options: &EncoderOptions) -> Result<Self, FormatError> {
        Ok(FileWriter {
            encoder: super::encoder(format, schema, options)?,
            pgp: None,
            ready: Vec::new(),
            ready_bytes: 0,
            taken: 0,
            rows: 0,
            hasher: Hashing::Idle(Sha256::new()),
        })
    }

    /// Encrypts the file to `key` (an OpenPGP message around the encoded, compressed bytes):
    /// the stats, the size limits and the bytes handed out are then those of the ciphertext.
    pub fn encrypted_to(mut self, key: &super::pgp::RecipientKey) -> Result<Self, FormatError> {
        self.pgp = Some(super::pgp::PgpEncryptor::new(key, std::time::SystemTime::now())?);
        Ok(self)
    }

    /// The encoder's finished bytes, encrypted when the file goes to a key.
    fn pull(&mut self) -> Result<Vec<Bytes>, FormatError> {
        let plain = self.encoder.take_ready();
        match self.pgp.as_mut() {
            Some(pgp) => encrypt(pgp, &plain),
            None => Ok(plain),
        }
    }

    /// Encodes one batch (which must have the file's schema).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), FormatError> {
        self.encoder.write(batch)?;
        self.rows += batch.num_rows() as u64;
        // Pull finished bytes out at once, so `estimated_size` and `in_memory_bytes` see
        // them without asking the encoder for a count it does not keep.
        let ready = self.pull()?;
        self.ready_bytes += super::pieces_len(&ready);
        self.ready.extend(ready);
        Ok(())
    }

    /// Drains the finished bytes produced so far (possibly none): the next part of the object,
    /// as pieces in order (none of them empty).
    pub fn take_ready(&mut self) -> Vec<Bytes> {
        let mut out = std::mem::take(&mut self.ready);
        self.ready_bytes = 0;
        // Encrypted files pull on every write, so only a plain encoder has bytes left here.
        if self.pgp.is_none() {
            out.extend(self.encoder.take_ready());
        }
        self.taken += super::pieces_len(&out) as u64;
        self.hasher.update(&out);
        out
    }

    /// The size the file has reached so far: bytes already taken, bytes ready to take, and
    /// the encoder's estimate of what it holds in progress. Used to roll files over.
    pub fn estimated_size(&self) -> u64 {
        self.taken + self.in_memory_bytes() as u64
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes this writer holds now (ready output plus the encoder's in-progress estimate):
    /// what taking the ready bytes and finishing would still have to move.
    pub fn in_memory_bytes(&self) -> usize {
        self.ready_bytes + self.encoder.in_progress_size() + self.pgp.as_ref().map_or(0, |p| p.buffered())
    }

    /// Finishes the file: returns its last bytes (footer included) and the stats of the
    /// whole object, i.e. of every [`FileWriter::take_ready`] output followed by these bytes.
    pub fn finish(self) -> Result<(Vec<Bytes>, FileStats), FormatError> {
        let FileWriter { encoder, pgp, ready: mut out, taken, rows, hasher, .. } = self;
        let last = encoder.finish()?;
        match pgp {
            Some(mut pgp) => {
                out.extend(encrypt(&mut pgp, &last)?);
                out.extend(super::pieces(pgp.finish()?));
            }
            None => out.extend(last),
        }
        let sha256 = hasher.finish(&out)?;
        let bytes = taken + super::pieces_len(&out) as u64;
        Ok((out, FileStats { rows, bytes, sha256 }))
    }
}

/// `plain`'s pieces, in order, through `pgp`: the ciphertext it has finished.
fn encrypt(pgp: &mut super::pgp::PgpEncryptor, plain: &[Bytes]) -> Result<Vec<Bytes>, FormatError> {
    let mut sealed = Vec::new();
    for piece in plain {
        sealed.extend(super::pieces(pgp.push(piece)?));
    }
    Ok(sealed)
}

/// The byte buffer behind the text encoders: plain, or gzip in independent blocks.
///
/// Finished bytes accumulate in a `Vec` the encoder drains with [`TextSink::take_ready`].
pub(super) struct TextSink {
    out: TextOut,
}

enum TextOut {
    Plain(Vec<u8>),
    Gzip(BlockGzip),
}

impl TextSink {
    /// A sink for `codec` (`None` or `Gzip` at `options.gzip_level`).
    pub(super) fn new(codec: Codec, options: &EncoderOptions, format: &'static str) -> Result<Self, FormatError> {
        let out = match codec {
            Codec::None => TextOut::Plain(Vec::new()),
            Codec::Gzip => TextOut::Gzip(BlockGzip::new(options)?),
            Codec::Zstd | Codec::Snappy => {
                return Err(FormatError::Invalid(format!(
                    "codec {codec:?} is not available for {format}: use \"gzip\" or \"none\""
                )));
            }
        };
        Ok(TextSink { out })
    }

    /// Drains the finished bytes.
    pub(super) fn take_ready(&mut self) -> Vec<u8> {
        match &mut self.out {
            TextOut::Plain(buf) => std::mem::take(buf),
            TextOut::Gzip(gz) => gz.take_ready(),
        }
    }

    /// Estimated bytes the sink still holds that are not finished output, as they will
    /// appear in the file. Always 0 for a plain sink.
    pub(super) fn in_progress_size(&self) -> usize {
        match &self.out {
            TextOut::Plain(_) => 0,
            TextOut::Gzip(gz) => gz.in_progress_size(),
        }
    }

    /// Ends the stream and returns the remaining bytes.
    pub(super) fn finish(self) -> Result<Vec<u8>, FormatError> {
        match self.out {
            TextOut::Plain(buf) => Ok(buf),
            TextOut::Gzip(gz) => gz.finish(),
        }
    }
}

impl Write for TextSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.out {
            TextOut::Plain(out) => out.extend_from_slice(buf),
            TextOut::Gzip(gz) => gz.write(buf)?,
        }
        Ok(buf.len())
    }

    /// A no-op: blocks are cut by size only, so the output never depends on when (or how
    /// often) a writer flushes.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// gzip in blocks: the text is cut every `block_bytes` bytes of input and each block is
/// compressed on the worker pool into its own gzip member; members are output in order.
///
/// A file of several members is valid gzip (RFC 1952, 2.2): `gzip -d`, zcat, Python's
/// `gzip`, Arrow, DuckDB and Spark read it as one stream. Each member starts with an empty
/// window, which costs well under 1% of size at megabyte blocks. Memory: one block filling
/// plus at most `2 x threads` blocks compressing.
struct BlockGzip {
    level: Compression,
    block_bytes: usize,
    parallel: bool,
    max_pending: usize,
    /// Text not yet handed to a compressor.
    block: Vec<u8>,
    /// Blocks being compressed, in file order, with their input sizes.
    pending: VecDeque<(usize, Pending<Vec<u8>>)>,
    /// Finished members not yet drained.
    ready: Vec<u8>,
    /// Input and output bytes of finished members (the compression ratio so far).
    done_in: u64,
    done_out: u64,
    members: u64,
    /// A compression job failed; reported by the next write or by finish.
    failed: Option<FormatError>,
}

impl BlockGzip {
    fn new(options: &EncoderOptions) -> Result<Self, FormatError> {
        let level = Compression::new(gzip_level(options)?);
        if options.gzip_block_bytes == 0 {
            return Err(FormatError::Invalid("gzip_block_bytes must be positive".into()));
        }
        let parallel = options.parallel && pool::threads() > 1;
        Ok(BlockGzip {
            level,
            block_bytes: options.gzip_block_bytes,
            parallel,
            max_pending: 2 * pool::threads(),
            block: Vec::new(),
            pending: VecDeque::new(),
            ready: Vec::new(),
            done_in: 0,
            done_out: 0,
            members: 0,
            failed: None,
        })
    }

    fn write(&mut self, mut buf: &[u8]) -> io::Result<()> {
        if let Some(e) = &self.failed {
            return Err(io::Error::other(e.to_string()));
        }
        while !buf.is_empty() {
            if self.block.capacity() == 0 {
                self.block.reserve_exact(self.block_bytes);
            }
            let take = (self.block_bytes - self.block.len()).min(buf.len());
            self.block.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.block.len() == self.block_bytes {
                self.submit().map_err(|e| io::Error::other(e.to_string()))?;
            }
        }
        Ok(())
    }

    /// Hands the filled block to a compressor (or compresses it here).
    fn submit(&mut self) -> Result<(), FormatError> {
        let block = std::mem::take(&mut self.block);
        let input = block.len();
        self.members += 1;
        if !self.parallel {
            let member = gzip_member(&block, self.level)?;
            self.finished(input, member);
            return Ok(());
        }
        // Bounded: wait for the oldest block before starting another.
        while self.pending.len() >= self.max_pending {
            self.collect(true)?;
        }
        let level = self.level;
        self.pending.push_back((input, pool::spawn(move || Ok(gzip_member(&block, level)?))));
        Ok(())
    }

    /// Moves finished members, in order, to the ready bytes; with `wait`, waits for the
    /// oldest one first.
    fn collect(&mut self, wait: bool) -> Result<(), FormatError> {
        if wait && let Some((input, job)) = self.pending.pop_front() {
            let member = job.wait()?;
            self.finished(input, member);
        }
        while let Some((_, job)) = self.pending.front_mut() {
            let Some(result) = job.try_take() else { break };
            let Some((input, _)) = self.pending.pop_front() else { break };
            self.finished(input, result?);
        }
        Ok(())
    }

    fn finished(&mut self, input: usize, member: Vec<u8>) {
        self.done_in += input as u64;
        self.done_out += member.len() as u64;
        if self.ready.is_empty() {
            self.ready = member;
        } else {
            self.ready.extend_from_slice(&member);
        }
    }

    fn take_ready(&mut self) -> Vec<u8> {
        if self.failed.is_none()
            && let Err(e) = self.collect(false)
        {
            self.failed = Some(e);
        }
        std::mem::take(&mut self.ready)
    }

    fn in_progress_size(&self) -> usize {
        let held = self.block.len() as u64 + self.pending.iter().map(|(input, _)| *input as u64).sum::<u64>();
        let estimate = if self.done_in == 0 {
            held
        } else {
            // u128: held * done_out cannot overflow.
            let scaled = u128::from(held) * u128::from(self.done_out) / u128::from(self.done_in);
            u64::try_from(scaled).unwrap_or(u64::MAX).min(held)
        };
        usize::try_from(estimate).unwrap_or(usize::MAX)
    }

    fn finish(mut self) -> Result<Vec<u8>, FormatError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        // The last, partial block; an empty file is one empty member (a valid gzip stream).
        if !self.block.is_empty() || self.members == 0 {
            self.submit()?;
        }
        while !self.pending.is_empty() {
            self.collect(true)?;
        }
        Ok(self.ready)
    }
}

/// One gzip member holding `text`.
fn gzip_member(text: &[u8], level: Compression) -> io::Result<Vec<u8>> {
    let mut gz = GzEncoder::new(Vec::with_capacity(text.len() / 4 + 64), level);
    gz.write_all(text)?;
    gz.finish()
}

/// The time zone text formats render time-zone-aware timestamps in.
///
/// A fixed offset rather than `"UTC"`: arrow (built without `chrono-tz`) can only format
/// offset-based zones, and an instant is the same in any zone. Zero renders as `Z`.
const UTC_OFFSET: &str = "+00:00";

/// Re-labels every time-zone-aware timestamp column (also inside lists, structs and maps)
/// as UTC, so text formats write each instant as RFC 3339 in UTC (`...Z`) whatever zone the
/// column carries. The stored values are instants already: only the label changes.
pub(super) struct UtcTimestamps {
    /// The schema with relabelled timestamps, or `None` when no column needs it.
    target: Option<SchemaRef>,
}

impl UtcTimestamps {
    /// Plans the relabelling for batches of `schema`.
    pub(super) fn new(schema: &SchemaRef) -> Self {
        let mut changed = false;
        let fields: Vec<FieldRef> = schema
            .fields()
            .iter()
            .map(|field| match utc_data_type(field.data_type()) {
                Some(data_type) => {
                    changed = true;
                    Arc::new(field.as_ref().clone().with_data_type(data_type))
                }
                None => Arc::clone(field),
            })
            .collect();
        let target = changed.then(|| Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())));
        UtcTimestamps { target }
    }

    /// `batch`, relabelled where needed (borrowed as is otherwise).
    pub(super) fn apply<'a>(&self, batch: &'a RecordBatch) -> Result<Cow<'a, RecordBatch>, FormatError> {
        let Some(target) = &self.target else {
            return Ok(Cow::Borrowed(batch));
        };
        let columns = batch
            .columns()
            .iter()
            .zip(target.fields())
            .map(|(column, field)| {
                if column.data_type() == field.data_type() {
                    Ok(Arc::clone(column))
                } else {
                    // Timestamp to timestamp of the same unit with a zone on both sides
                    // only relabels: no value changes, no zone lookup.
                    arrow::compute::cast(column, field.data_type())
                }
            })
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(Cow::Owned(RecordBatch::try_new_with_options(Arc::clone(target), columns, &options)?))
    }
}

/// `data_type` with every zoned timestamp relabelled as UTC, or `None` if nothing changes.
fn utc_data_type(data_type: &DataType) -> Option<DataType> {
    let field = |f: &FieldRef| -> Option<FieldRef> {
        utc_data_type(f.data_type()).map(|t| Arc::new(f.as_ref().clone().with_data_type(t)))
    };
    match data_type {
        DataType::Timestamp(unit, Some(tz)) if tz.as_ref() != UTC_OFFSET => {
            Some(DataType::Timestamp(*unit, Some(UTC_OFFSET.into())))
        }
        DataType::List(f) => field(f).map(DataType::List),
        DataType::LargeList(f) => field(f).map(DataType::LargeList),
        DataType::FixedSizeList(f, n) => field(f).map(|f| DataType::FixedSizeList(f, *n)),
        DataType::Map(f, sorted) => field(f).map(|f| DataType::Map(f, *sorted)),
        DataType::Struct(fields) => {
            let relabelled: Vec<Option<FieldRef>> = fields.iter().map(field).collect();
            relabelled.iter().any(Option::is_some).then(|| {
                DataType::Struct(
                    fields.iter().zip(relabelled).map(|(f, r)| r.unwrap_or_else(|| Arc::clone(f))).collect(),
                )
            })
        }
        _ => None,
    }
}

/// The gzip level of `options`, checked to be 0-9.
pub(super) fn gzip_level(options: &EncoderOptions) -> Result<u32, FormatError> {
    if options.gzip_level > 9 {
        return Err(FormatError::Invalid(format!("gzip level {} is out of range: use 0-9", options.gzip_level)));
    }
    Ok(options.gzip_level)
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, TimeUnit};

    use super::*;
    use crate::format::FormatKind;

    fn batch(n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let ids: Vec<i64> = (0..n).collect();
        let names: Vec<Option<String>> = (0..n).map(|i| Some(format!("name {i}"))).collect();
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids)), Arc::new(StringArray::from(names))]).unwrap()
    }

    fn all_formats() -> Vec<Format> {
        let mut formats = Vec::new();
        for codec in [Codec::None, Codec::Gzip, Codec::Zstd, Codec::Snappy] {
            formats.push(Format::new(FormatKind::Parquet, codec));
        }
        for codec in [Codec::None, Codec::Gzip] {
            formats.push(Format::new(FormatKind::Csv, codec));
            formats.push(Format::new(FormatKind::Jsonl, codec));
        }
        formats
    }

    #[test]
    fn stats_describe_exactly_the_bytes_handed_out() {
        // Small parts are hashed at once, parts of 1 MiB or more on the pool (100,000 rows of
        // CSV or JSON lines make ~1.5-3 MB a part).
        for (format, rows) in all_formats().into_iter().flat_map(|f| [(f.clone(), 1000), (f, 100_000)]) {
            // GIVEN a writer fed several batches, with parts taken in between
            let b = batch(rows);
            let mut writer = FileWriter::new(&format, b.schema(), &EncoderOptions::default()).unwrap();
            let mut object = Vec::new();
            for _ in 0..3 {
                writer.write(&b).unwrap();
                assert!(writer.estimated_size() >= object.len() as u64, "{format}");
                object.extend_from_slice(&writer.take_ready().concat());
            }
            assert_eq!(writer.rows(), 3 * rows as u64);
            // WHEN it finishes
            let (last, stats) = writer.finish().unwrap();
            object.extend_from_slice(&last.concat());
            // THEN rows, bytes and sha256 are those of the concatenation
            assert_eq!(stats.rows, 3 * rows as u64, "{format}");
            assert_eq!(stats.bytes, object.len() as u64, "{format}");
            assert_eq!(stats.sha256, hex::encode(Sha256::digest(&object)), "{format}");
            assert_eq!(stats.sha256.len(), 64);
            assert!(stats.sha256.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        }
    }

    #[test]
    fn estimated_size_grows_with_the_data() {
        let b = batch(5000);
        for format in all_formats() {
            let mut writer = FileWriter::new(&format, b.schema(), &EncoderOptions::default()).unwrap();
            let empty = writer.estimated_size();
            for _ in 0..5 {
                writer.write(&b).unwrap();
            }
            assert!(writer.estimated_size() > empty, "{format}");
            assert!(writer.in_memory_bytes() > 0, "{format}");
            let _ = writer.take_ready();
            let (_, stats) = writer.finish().unwrap();
            assert!(stats.bytes > 0);
        }
    }

    #[test]
    fn invalid_combinations_are_rejected() {
        let schema = batch(0).schema();
        let csv_zstd = Format::new(FormatKind::Csv, Codec::Zstd);
        assert!(matches!(
            FileWriter::new(&csv_zstd, schema.clone(), &EncoderOptions::default()),
            Err(FormatError::Invalid(_))
        ));
        let options = EncoderOptions { gzip_level: 10, ..EncoderOptions::default() };
        for format in all_formats().into_iter().filter(|f| f.codec == Codec::Gzip) {
            assert!(
                matches!(FileWriter::new(&format, schema.clone(), &options), Err(FormatError::Invalid(_))),
                "{format}"
            );
        }
    }

    #[test]
    fn text_sink_gzip_drains_to_a_valid_stream() {
        let mut sink = TextSink::new(Codec::Gzip, &EncoderOptions::default(), "csv").unwrap();
        let mut object = Vec::new();
        let mut expected = Vec::new();
        for i in 0..2000 {
            let line = format!("line {i} {}\n", i * 7919 % 1013);
            sink.write_all(line.as_bytes()).unwrap();
            expected.extend_from_slice(line.as_bytes());
            if i % 100 == 0 {
                object.extend_from_slice(&sink.take_ready());
            }
        }
        assert!(sink.in_progress_size() <= expected.len());
        object.extend_from_slice(&sink.finish().unwrap());
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(&object[..]).read_to_end(&mut text).unwrap();
        assert_eq!(text, expected);
    }

    #[test]
    fn zoned_timestamps_are_written_in_utc() {
        use arrow::array::{Array, ListArray, TimestampMicrosecondArray};
        use arrow::buffer::OffsetBuffer;
        // GIVEN zoned timestamps whose zone arrow cannot look up, also inside a list
        let at = TimestampMicrosecondArray::from(vec![1_678_766_587_963_883]).with_timezone("Europe/Copenhagen");
        let item = Arc::new(Field::new("item", at.data_type().clone(), true));
        let list = ListArray::new(Arc::clone(&item), OffsetBuffer::from_lengths([1]), Arc::new(at.clone()), None);
        let naive = TimestampMicrosecondArray::from(vec![1_678_766_587_963_883]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("at", at.data_type().clone(), false),
            Field::new("ats", DataType::List(item), false),
            Field::new("local", DataType::Timestamp(TimeUnit::Microsecond, None), false),
        ]));
        let batch =
            RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(at), Arc::new(list), Arc::new(naive)]).unwrap();
        // WHEN relabelled
        let utc = UtcTimestamps::new(&schema);
        let relabelled = utc.apply(&batch).unwrap();
        // THEN values are untouched, zoned types say UTC, naive ones stay naive
        let utc_type = DataType::Timestamp(TimeUnit::Microsecond, Some(UTC_OFFSET.into()));
        assert_eq!(relabelled.column(0).data_type(), &utc_type);
        assert_eq!(relabelled.column(2).data_type(), batch.column(2).data_type());
        let mut json = Vec::new();
        let mut writer = arrow::json::LineDelimitedWriter::new(&mut json);
        writer.write(&relabelled).unwrap();
        writer.finish().unwrap();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            "{\"at\":\"2023-03-14T04:03:07.963883Z\",\"ats\":[\"2023-03-14T04:03:07.963883Z\"],\
             \"local\":\"2023-03-14T04:03:07.963883\"}\n"
        );
        // AND a schema without zoned timestamps is passed through untouched
        let plain = super::tests::batch(3);
        assert!(matches!(UtcTimestamps::new(&plain.schema()).apply(&plain).unwrap(), Cow::Borrowed(_)));
    }

    /// Text whose compressed size depends on what came before (so a block boundary shows).
    fn text_lines(n: usize) -> Vec<u8> {
        (0..n).map(|i| format!("{i},name {},{}\n", i * 7919 % 1013, i % 17)).collect::<String>().into_bytes()
    }

    fn block_gzip(text: &[u8], options: &EncoderOptions, write_size: usize) -> Vec<u8> {
        let mut sink = TextSink::new(Codec::Gzip, options, "csv").unwrap();
        let mut object = Vec::new();
        for piece in text.chunks(write_size) {
            sink.write_all(piece).unwrap();
            object.extend_from_slice(&sink.take_ready());
        }
        object.extend_from_slice(&sink.finish().unwrap());
        object
    }

    #[test]
    fn gzip_blocks_are_members_of_one_valid_stream() {
        // GIVEN text several blocks long
        let text = text_lines(40_000);
        let options = EncoderOptions { gzip_block_bytes: 64 * 1024, ..EncoderOptions::default() };
        // WHEN compressed in parallel, fed in pieces that do not line up with blocks
        let object = block_gzip(&text, &options, 10_007);
        // THEN it holds one member per started block, and reads back whole
        let members = text.len().div_ceil(64 * 1024);
        assert!(members > 5);
        let mut decoder = flate2::read::GzDecoder::new(&object[..]);
        let mut first = Vec::new();
        decoder.read_to_end(&mut first).unwrap();
        assert_eq!(first, &text[..64 * 1024], "the first member is exactly one block");
        let mut all = Vec::new();
        flate2::read::MultiGzDecoder::new(&object[..]).read_to_end(&mut all).unwrap();
        assert_eq!(all, text);
        // AND the bytes depend on the block size only: not on threads or write sizes
        let serial = EncoderOptions { parallel: false, ..options.clone() };
        assert_eq!(block_gzip(&text, &serial, 333), object);
        assert_eq!(block_gzip(&text, &options, text.len()), object);
    }

    #[test]
    fn gzip_blocks_cost_little_size() {
        let text = text_lines(100_000);
        let one = block_gzip(&text, &EncoderOptions { gzip_block_bytes: 64 << 20, ..Default::default() }, 65_536);
        let blocks = block_gzip(&text, &EncoderOptions { gzip_block_bytes: 256 << 10, ..Default::default() }, 65_536);
        assert!(blocks.len() < one.len() * 102 / 100, "{} vs {}", blocks.len(), one.len());
    }

    #[test]
    fn gzip_sink_estimates_what_it_holds() {
        let options = EncoderOptions { gzip_block_bytes: 1 << 20, ..EncoderOptions::default() };
        let mut sink = TextSink::new(Codec::Gzip, &options, "jsonl").unwrap();
        let text = text_lines(10_000);
        sink.write_all(&text).unwrap();
        // Less than a block: nothing is compressed yet, all of it is in progress.
        assert_eq!(sink.in_progress_size(), text.len());
        assert!(sink.take_ready().is_empty());
        let rest = sink.finish().unwrap();
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&rest[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, text);
    }

    #[test]
    fn zero_gzip_block_is_rejected() {
        let options = EncoderOptions { gzip_block_bytes: 0, ..EncoderOptions::default() };
        assert!(matches!(TextSink::new(Codec::Gzip, &options, "csv"), Err(FormatError::Invalid(_))));
    }

    #[test]
    fn empty_gzip_sink_is_a_valid_empty_stream() {
        let sink = TextSink::new(Codec::Gzip, &EncoderOptions::default(), "jsonl").unwrap();
        let object = sink.finish().unwrap();
        assert!(!object.is_empty());
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(&object[..]).read_to_end(&mut text).unwrap();
        assert!(text.is_empty());
    }
}
