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

use std::collections::VecDeque;
use std::io::{self, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray, downcast_primitive_array};
use arrow::datatypes::{DataType, FieldRef, SchemaRef};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, ArrowWriterOptions, compute_leaves,
};
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::column::page_store::{InMemoryPageStore, PageKey, PageStore, PageStoreArgs, PageStoreFactory};
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;

use super::pool;
use super::{Codec, Encoder, EncoderOptions, FormatError};

/// Encodes batches into a Parquet file held in memory only until its bytes are taken.
///
/// Each root column has a lane in the open row group: its batches queue there and one job on
/// the shared worker pool at a time encodes them in order, so columns never wait for each
/// other (a fast column runs up to [`DEPTH`] batches ahead of the slowest, and a free worker
/// always has work). A row group's column chunks are closed (last page compressed) in parallel
/// too, and appended in column order while the next batch encodes. A column whose dictionary
/// would outgrow the dictionary page is written plain from the row group's start
/// ([`plain_columns`]). The row group logic is arrow-rs's `ArrowWriter::write` (a row group
/// closes at `row_group_rows` rows or at `row_group_bytes` of anticipated encoded size, and a
/// batch that would overshoot is cut where the average row size says the limit falls), except
/// that the size it goes by is the one known when every column had encoded all but the last
/// [`DEPTH`] batches, plus their rows at the average size so far. That point never depends on
/// timing, so the file is the same byte for byte whether encoded in parallel or on one thread
/// (re-runs write identical objects).
pub(crate) struct ParquetEncoder {
    writer: SerializedFileWriter<Output>,
    /// Where the column chunks keep their pages (see [`Output`]).
    pages: Pages,
    /// Makes a row group's column writers, with the dictionary off for the root columns `.0`
    /// marks (see [`plain_columns`]); rebuilt when a row group's choice differs.
    factory: (Vec<bool>, ArrowRowGroupWriterFactory),
    codec: Codec,
    options: EncoderOptions,
    schema: SchemaRef,
    /// Leaf columns (column writers) of each root column, in schema order.
    leaves_per_root: Vec<usize>,
    in_progress: Option<RowGroup>,
    closing: Option<Closing>,
    max_rows: usize,
    max_bytes: usize,
    /// Encode on the worker pool (else on the calling thread).
    parallel: bool,
    /// How long each root column took to encode last time: the slowest are started first,
    /// so the jobs of one batch finish close together.
    cost: Vec<Duration>,
    /// Set when a job failed: its column writers are gone, so the file cannot be finished.
    broken: bool,
}

/// The open row group: a lane per root column and what they hold.
struct RowGroup {
    /// Each root column's lane: its writers and the batches queued for them.
    lanes: Vec<Arc<Lane>>,
    /// Rows of each batch given to the lanes and not settled yet, oldest first.
    unsettled: VecDeque<usize>,
    /// The encoded size each root column's writers anticipated after the last settled batch
    /// (`ArrowColumnWriter::get_estimated_total_bytes`, summed).
    settled_bytes: Vec<usize>,
    /// Rows of the batches whose every column has been encoded and settled.
    settled_rows: usize,
    /// The Arrow size of the row group's first batch: the estimate while no batch is settled.
    pending_arrow_bytes: usize,
}

/// How many of a row group's batches may be unsettled (queued or encoding) at once. A column
/// runs up to this many batches ahead of the slowest, so a free worker always has work; the
/// row group's size is judged from the batches before them (never from timing).
const DEPTH: usize = 2;

/// One root column of the open row group: its batches queue here, and one pool job at a time
/// encodes them in order with the column's writers, reporting each batch's anticipated size.
struct Lane {
    state: Mutex<LaneState>,
    changed: Condvar,
}

struct LaneState {
    /// The column's leaf writers while no batch is being encoded.
    writers: Option<Vec<ArrowColumnWriter>>,
    /// Batches given and not started.
    queue: VecDeque<ArrayRef>,
    /// A job is working through the queue.
    running: bool,
    /// The anticipated encoded size after each batch encoded and not yet settled, in order.
    done: VecDeque<usize>,
    /// How long the last batch took.
    took: Duration,
    /// Why encoding stopped; the writers are gone.
    failed: Option<String>,
}

impl Lane {
    fn new(writers: Vec<ArrowColumnWriter>) -> Arc<Lane> {
        Arc::new(Lane {
            state: Mutex::new(LaneState {
                writers: Some(writers),
                queue: VecDeque::new(),
                running: false,
                done: VecDeque::new(),
                took: Duration::ZERO,
                failed: None,
            }),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, LaneState> {
        // A job never panics while holding the lock (encoding runs outside it).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `column`; returns whether a job must be started for it.
    fn give(&self, column: ArrayRef) -> Result<bool, FormatError> {
        let mut state = self.lock();
        if let Some(reason) = &state.failed {
            return Err(FormatError::Worker(reason.clone()));
        }
        state.queue.push_back(column);
        let start = !state.running;
        state.running = true;
        Ok(start)
    }

    /// Encodes the queued batches in order until the queue is empty (a job's whole work).
    fn work(&self, field: &FieldRef) {
        loop {
            let (writers, column) = {
                let mut state = self.lock();
                let next = match state.queue.pop_front() {
                    None => None,
                    Some(column) => match state.writers.take() {
                        Some(writers) => Some((writers, column)),
                        None => {
                            // Cannot happen: one job at a time holds the writers.
                            state.failed = Some(format!("column {:?} lost its writers", field.name()));
                            state.queue.clear();
                            None
                        }
                    },
                };
                let Some(next) = next else {
                    state.running = false;
                    self.changed.notify_all();
                    return;
                };
                next
            };
            let started = std::time::Instant::now();
            let result = catch_unwind(AssertUnwindSafe(|| encode_column(writers, field, &column)));
            let mut state = self.lock();
            match result {
                Ok(Ok((writers, estimated))) => {
                    state.writers = Some(writers);
                    state.done.push_back(estimated);
                    state.took = started.elapsed();
                    self.changed.notify_all();
                }
                failed => {
                    state.failed = Some(match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("encoding column {:?} panicked", field.name()),
                    });
                    state.queue.clear();
                    state.running = false;
                    self.changed.notify_all();
                    return;
                }
            }
        }
    }

    /// Waits for the oldest unsettled batch: its anticipated size and how long it took.
    fn settle(&self) -> Result<(usize, Duration), FormatError> {
        let mut state = self.lock();
        loop {
            if let Some(estimated) = state.done.pop_front() {
                return Ok((estimated, state.took));
            }
            if let Some(reason) = &state.failed {
                return Err(FormatError::Worker(reason.clone()));
            }
            state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The writers back, once every batch is settled.
    fn take_writers(&self) -> Result<Vec<ArrowColumnWriter>, FormatError> {
        let mut state = self.lock();
        loop {
            if let Some(reason) = &state.failed {
                return Err(FormatError::Worker(reason.clone()));
            }
            if state.queue.is_empty() && state.writers.is_some() {
                return state.writers.take().ok_or_else(|| FormatError::Worker("lost column writers".into()));
            }
            state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Work on the pool, or already done on this thread (encoding without the pool).
enum Job<T> {
    Running(pool::Pending<T>),
    Done(Result<T, FormatError>),
}

impl<T: Send + 'static> Job<T> {
    fn start(parallel: bool, work: impl FnOnce() -> Result<T, FormatError> + Send + 'static) -> Self {
        if parallel { Job::Running(pool::spawn(work)) } else { Job::Done(work()) }
    }

    fn wait(self) -> Result<T, FormatError> {
        match self {
            Job::Running(pending) => pending.wait(),
            Job::Done(result) => result,
        }
    }
}

/// A full row group whose column chunks are being closed (last pages compressed); they are
/// appended to the file once the next batch's jobs are on the pool, so appending and hashing
/// them overlap with encoding instead of leaving the pool idle between two row groups.
struct Closing {
    columns: Vec<Job<Vec<ArrowColumnChunk>>>,
    /// The row group's anticipated encoded size.
    bytes: usize,
}

impl RowGroup {
    fn pending_rows(&self) -> usize {
        self.unsettled.iter().sum()
    }

    fn rows(&self) -> usize {
        self.settled_rows + self.pending_rows()
    }

    /// The anticipated encoded size: what the columns reported after the collected batches,
    /// plus the last batch's rows at their average row size (while no batch is collected, the
    /// last batch's Arrow size).
    fn estimated_bytes(&self) -> usize {
        let settled: usize = self.settled_bytes.iter().sum();
        match settled.checked_div(self.settled_rows) {
            Some(average) => settled.saturating_add(average.saturating_mul(self.pending_rows())),
            None => self.pending_arrow_bytes,
        }
    }
}

impl ParquetEncoder {
    /// A Parquet encoder for `schema` with column chunks compressed by `codec`.
    ///
    /// Fails if a level or row-group limit in `options` is out of range, or if `schema` has
    /// a type Parquet cannot store.
    pub(crate) fn new(schema: SchemaRef, codec: Codec, options: &EncoderOptions) -> Result<Self, FormatError> {
        // View columns are written as the strings and bytes they hold, and declared so.
        let schema = declared_types(&schema);
        let props = writer_properties(codec, options)?;
        // `ArrowWriter` sets the file up (the Arrow schema embedded in the footer metadata,
        // the default); its parts then encode row groups our way.
        let pages = Pages::default();
        let options_with_pages =
            ArrowWriterOptions::new().with_properties(props).with_page_store_factory(Arc::new(pages.clone()));
        let (mut writer, factory) =
            ArrowWriter::try_new_with_options(Output::new(pages.clone()), Arc::clone(&schema), options_with_pages)?
                .into_serialized_writer()?;
        // The magic number is ready to take at once.
        writer.flush()?;
        let factory = (vec![false; schema.fields().len()], factory);
        let descr = writer.schema_descr();
        let mut leaves_per_root = vec![0; schema.fields().len()];
        for leaf in 0..descr.num_columns() {
            if let Some(count) = leaves_per_root.get_mut(descr.get_column_root_idx(leaf)) {
                *count += 1;
            }
        }
        Ok(ParquetEncoder {
            writer,
            pages,
            factory,
            codec,
            options: options.clone(),
            cost: vec![Duration::ZERO; schema.fields().len()],
            leaves_per_root,
            schema,
            in_progress: None,
            closing: None,
            max_rows: options.row_group_rows,
            max_bytes: options.row_group_bytes,
            parallel: options.parallel && pool::threads() > 1,
            broken: false,
        })
    }

    fn check(&self) -> Result<(), FormatError> {
        if self.broken {
            return Err(FormatError::Worker("an earlier encoding job failed; this file cannot be finished".into()));
        }
        Ok(())
    }

    /// Opens a row group whose first rows are `first`: the columns whose dictionary `first`
    /// says would overflow are written plain from the start.
    fn new_row_group(&mut self, first: &RecordBatch) -> Result<RowGroup, FormatError> {
        let plain = plain_columns(first, self.max_rows);
        if plain != self.factory.0 {
            let mut props = writer_properties_builder(self.codec, &self.options)?;
            for (field, _) in self.schema.fields().iter().zip(&plain).filter(|(_, plain)| **plain) {
                props = props.set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
            }
            // The factory takes its properties from a file writer; this one is never written to.
            let template = SerializedFileWriter::new(
                std::io::sink(),
                self.writer.schema_descr().root_schema_ptr(),
                Arc::new(props.build()),
            )?;
            let factory = ArrowRowGroupWriterFactory::new(&template, Arc::clone(&self.schema))
                .with_page_store_factory(Arc::new(self.pages.clone()));
            self.factory = (plain, factory);
        }
        let index = self.writer.flushed_row_groups().len() + usize::from(self.closing.is_some());
        let mut leaves = self.factory.1.create_column_writers(index)?.into_iter();
        let lanes: Vec<Arc<Lane>> =
            self.leaves_per_root.iter().map(|&n| Lane::new(leaves.by_ref().take(n).collect())).collect();
        let roots = lanes.len();
        Ok(RowGroup {
            lanes,
            unsettled: VecDeque::new(),
            settled_bytes: vec![0; roots],
            settled_rows: 0,
            pending_arrow_bytes: 0,
        })
    }

    /// Queues `batch` on every column's lane (starting a job where none runs, slowest columns
    /// first), then settles the oldest batches until at most [`DEPTH`] are unsettled. The
    /// columns never wait for each other: a column's next batch starts as soon as its last one
    /// is done.
    fn encode(&mut self, batch: &RecordBatch) -> Result<(), FormatError> {
        let mut order: Vec<usize> = (0..self.cost.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.cost[i]));
        let Some(group) = self.in_progress.as_mut() else {
            return Err(FormatError::Worker("no open row group".into()));
        };
        for root in order {
            let lane = &group.lanes[root];
            let start = lane.give(Arc::clone(batch.column(root))).inspect_err(|_| self.broken = true)?;
            if start {
                let (lane, field) = (Arc::clone(lane), Arc::clone(&self.schema.fields()[root]));
                if self.parallel {
                    // The job reports through its lane; its own result carries nothing.
                    drop(pool::spawn(move || {
                        lane.work(&field);
                        Ok(())
                    }));
                } else {
                    lane.work(&field);
                }
            }
        }
        // Only a row group's first batch is estimated by its Arrow size (`estimated_bytes`).
        if group.settled_rows == 0 && group.unsettled.is_empty() {
            group.pending_arrow_bytes =
                batch.columns().iter().map(|c| c.to_data().get_slice_memory_size().unwrap_or(0)).sum();
        }
        group.unsettled.push_back(batch.num_rows());
        while self.in_progress.as_ref().is_some_and(|g| g.unsettled.len() > DEPTH) {
            self.settle_oldest()?;
        }
        Ok(())
    }

    /// Waits until every column has encoded the oldest unsettled batch, whose rows then count
    /// as settled at the columns' anticipated sizes.
    fn settle_oldest(&mut self) -> Result<(), FormatError> {
        let Some(group) = self.in_progress.as_mut() else { return Ok(()) };
        let Some(rows) = group.unsettled.pop_front() else { return Ok(()) };
        for (root, lane) in group.lanes.iter().enumerate() {
            let (estimated, took) = lane.settle().inspect_err(|_| self.broken = true)?;
            group.settled_bytes[root] = estimated;
            self.cost[root] = took;
        }
        group.settled_rows += rows;
        group.pending_arrow_bytes = 0;
        Ok(())
    }

    /// Settles every batch given so far.
    fn settle(&mut self) -> Result<(), FormatError> {
        while self.in_progress.as_ref().is_some_and(|g| !g.unsettled.is_empty()) {
            self.settle_oldest()?;
        }
        Ok(())
    }

    /// Closes the open row group (if any): its column chunks are closed on the pool and
    /// appended by [`ParquetEncoder::append_closed`] once the next batch is encoding.
    fn flush_row_group(&mut self) -> Result<(), FormatError> {
        self.settle()?;
        self.append_closed()?;
        let Some(group) = self.in_progress.take() else {
            return Ok(());
        };
        let bytes = group.estimated_bytes();
        let mut columns = Vec::with_capacity(group.lanes.len());
        for lane in &group.lanes {
            let writers = lane.take_writers().inspect_err(|_| self.broken = true)?;
            columns.push(Job::start(self.parallel, move || close_column(writers)));
        }
        self.closing = Some(Closing { columns, bytes });
        Ok(())
    }

    /// Appends the row group being closed (if any) to the file, whose bytes are then ready.
    fn append_closed(&mut self) -> Result<(), FormatError> {
        let Some(closing) = self.closing.take() else {
            return Ok(());
        };
        let closed: Result<Vec<Vec<ArrowColumnChunk>>, FormatError> =
            closing.columns.into_iter().map(Job::wait).collect();
        let chunks = match closed {
            Ok(chunks) => chunks,
            Err(e) => {
                self.broken = true;
                return Err(e);
            }
        };
        let mut row_group = self.writer.next_row_group()?;
        for chunk in chunks.into_iter().flatten() {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        self.pages.forget();
        // Through the writer's internal buffer into the output, ready to take now.
        self.writer.flush()?;
        Ok(())
    }
}

/// The file's bytes as they leave the file writer, in order: what it wrote itself (page
/// headers, small pages, the footer), copied, and the column chunks' compressed pages, not
/// copied. Appending a closed chunk writes its pages one by one from the buffers the encoder
/// compressed them into; a write that is one of those pages (the one [`Pages`] handed out
/// last) is kept as a slice of it. So a row group's bytes reach the sink without being copied
/// into one buffer first (which, with fresh memory for every row group, cost a tenth of the
/// export's CPU time on the thread that feeds the encoders).
struct Output {
    pages: Pages,
    /// Pieces ready to take, in order.
    pieces: Vec<Bytes>,
    /// Bytes written after the last piece.
    copied: Vec<u8>,
}

/// Writes at least this large that are a page are kept without a copy; smaller ones are
/// copied (a piece per page of a few KiB would cost more than copying it).
const KEEP_UNCOPIED: usize = 64 << 10;

impl Output {
    fn new(pages: Pages) -> Self {
        Output { pages, pieces: Vec::new(), copied: Vec::new() }
    }

    /// The pieces written so far, in order.
    fn take(&mut self) -> Vec<Bytes> {
        self.seal();
        std::mem::take(&mut self.pieces)
    }

    fn seal(&mut self) {
        if !self.copied.is_empty() {
            self.pieces.push(Bytes::from(std::mem::take(&mut self.copied)));
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() >= KEEP_UNCOPIED
            && let Some(piece) = self.pages.slice_of_last(buf)
        {
            self.seal();
            self.pieces.push(piece);
        } else {
            self.copied.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Makes the page stores of one file's column chunks: arrow-rs's in-memory store, plus a note
/// of the page handed out last, for [`Output`].
#[derive(Debug, Clone, Default)]
struct Pages {
    last: Arc<Mutex<Option<Bytes>>>,
}

impl Pages {
    /// `buf` as a slice of the page handed out last, when it lies inside that page.
    fn slice_of_last(&self, buf: &[u8]) -> Option<Bytes> {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let page = last.as_ref()?;
        let (start, at) = (page.as_ptr() as usize, buf.as_ptr() as usize);
        (at >= start && at + buf.len() <= start + page.len()).then(|| page.slice_ref(buf))
    }

    /// Forgets the page handed out last (once its chunk is appended).
    fn forget(&self) {
        self.last.lock().unwrap_or_else(PoisonError::into_inner).take();
    }
}

impl PageStoreFactory for Pages {
    fn create(&self, _args: &PageStoreArgs<'_>) -> Result<Box<dyn PageStore>, ParquetError> {
        Ok(Box::new(ChunkPages { last: Arc::clone(&self.last), pages: InMemoryPageStore::default() }))
    }
}

/// One column chunk's pages: arrow-rs's in-memory store, noting the page it hands out.
struct ChunkPages {
    last: Arc<Mutex<Option<Bytes>>>,
    pages: InMemoryPageStore,
}

impl PageStore for ChunkPages {
    fn put(&mut self, value: Bytes) -> Result<PageKey, ParquetError> {
        self.pages.put(value)
    }

    fn take(&mut self, key: PageKey) -> Result<Bytes, ParquetError> {
        let page = self.pages.take(key)?;
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(page.clone());
        Ok(page)
    }

    fn memory_size(&self) -> usize {
        self.pages.memory_size()
    }
}

/// Encodes one root column of a batch with its leaf column writers.
fn encode_column(
    mut writers: Vec<ArrowColumnWriter>,
    field: &FieldRef,
    column: &ArrayRef,
) -> Result<(Vec<ArrowColumnWriter>, usize), FormatError> {
    let leaves = compute_leaves(field, column)?;
    if leaves.len() != writers.len() {
        return Err(FormatError::Invalid(format!(
            "column {:?}: {} leaf columns for {} writers",
            field.name(),
            leaves.len(),
            writers.len()
        )));
    }
    for (writer, leaf) in writers.iter_mut().zip(&leaves) {
        writer.write(leaf)?;
    }
    let estimated = writers.iter().map(ArrowColumnWriter::get_estimated_total_bytes).sum();
    Ok((writers, estimated))
}

fn close_column(writers: Vec<ArrowColumnWriter>) -> Result<Vec<ArrowColumnChunk>, FormatError> {
    Ok(writers.into_iter().map(ArrowColumnWriter::close).collect::<Result<_, _>>()?)
}

/// The writer properties of `codec` and `options` (shared with the tests' reference writer).
fn writer_properties(codec: Codec, options: &EncoderOptions) -> Result<WriterProperties, FormatError> {
    Ok(writer_properties_builder(codec, options)?.build())
}

fn writer_properties_builder(codec: Codec, options: &EncoderOptions) -> Result<WriterPropertiesBuilder, FormatError> {
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
        Codec::Zstd => Compression::ZSTD(
            ZstdLevel::try_new(options.zstd_level)
                .map_err(|e| FormatError::Invalid(format!("zstd level {}: {e}", options.zstd_level)))?,
        ),
        Codec::Snappy => Compression::SNAPPY,
    };
    Ok(WriterProperties::builder()
        .set_compression(compression)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(options.row_group_rows))
        .set_max_row_group_bytes(Some(options.row_group_bytes))
        .set_created_by(concat!("byob ", env!("CARGO_PKG_VERSION")).to_owned()))
}

/// `schema` as a Parquet file declares it: `Utf8View` and `BinaryView` columns (as the lake
/// source reads strings) are `Utf8` and `Binary`, which every reader reads as `string` and
/// `binary`; arrow-rs writes a view array to a column declared either way.
fn declared_types(schema: &SchemaRef) -> SchemaRef {
    crate::schema::retyped(schema, |data_type| match data_type {
        DataType::Utf8View => Some(DataType::Utf8),
        DataType::BinaryView => Some(DataType::Binary),
        _ => None,
    })
}

/// Values sampled from a batch's column to judge its dictionary.
const DICTIONARY_SAMPLE: usize = 2048;

/// Which root columns of a row group beginning with `first` to write without a dictionary:
/// those whose dictionary would outgrow Parquet's dictionary page limit, at which point the
/// writer falls back to plain encoding anyway, having hashed every value until then (on a
/// column of unique ids, URLs or timestamps that is most of the CPU the column costs). Judged
/// from up to [`DICTIONARY_SAMPLE`] values spread over `first`: the number of distinct values in
/// the row group is estimated from how many were seen once and twice (Chao1, bias-corrected),
/// capped by the rows a row group holds, and times the average value size makes the
/// dictionary. Columns that fit keep their dictionary, exactly as before. Only leaf root columns
/// of fixed-width and byte-array types are judged; nested columns keep the default. The choice
/// depends on the data alone, so re-runs write identical files.
fn plain_columns(first: &RecordBatch, max_rows: usize) -> Vec<bool> {
    let limit = parquet::file::properties::DEFAULT_DICTIONARY_PAGE_SIZE_LIMIT as f64;
    first
        .columns()
        .iter()
        .map(|column| {
            let Some(mut sample) = sample_values(column.as_ref(), DICTIONARY_SAMPLE) else {
                return false;
            };
            if sample.is_empty() {
                return false;
            }
            let value_bytes = sample.iter().map(|v| v.len()).sum::<usize>() as f64 / sample.len() as f64;
            // A byte array's dictionary entry has a 4-byte length before its bytes.
            let entry_bytes = if is_byte_array(column.data_type()) { value_bytes + 4.0 } else { value_bytes };
            let distinct = estimate_distinct(&mut sample).min(max_rows as f64);
            distinct * entry_bytes > limit
        })
        .collect()
}

fn is_byte_array(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
    )
}

/// Up to `n` non-null values of `array` at even steps, as bytes; `None` for a type not judged.
fn sample_values(array: &dyn Array, n: usize) -> Option<Vec<&[u8]>> {
    let step = array.len().div_ceil(n).max(1);
    let rows = (0..array.len()).step_by(step).filter(|&i| array.is_valid(i));
    let data_type = array.data_type();
    Some(match data_type {
        DataType::Utf8 => rows.map(|i| array.as_string::<i32>().value(i).as_bytes()).collect(),
        DataType::LargeUtf8 => rows.map(|i| array.as_string::<i64>().value(i).as_bytes()).collect(),
        DataType::Utf8View => rows.map(|i| array.as_string_view().value(i).as_bytes()).collect(),
        DataType::Binary => rows.map(|i| array.as_binary::<i32>().value(i)).collect(),
        DataType::LargeBinary => rows.map(|i| array.as_binary::<i64>().value(i)).collect(),
        DataType::BinaryView => rows.map(|i| array.as_binary_view().value(i)).collect(),
        DataType::FixedSizeBinary(_) => rows.map(|i| array.as_fixed_size_binary().value(i)).collect(),
        _ if data_type.is_primitive() => downcast_primitive_array!(
            array => {
                // A primitive array's values buffer holds exactly its values, equal in width.
                let bytes = array.values().inner().as_slice();
                let width = bytes.len().checked_div(array.len())?;
                rows.map(|i| &bytes[i * width..(i + 1) * width]).collect()
            }
            _ => return None,
        ),
        _ => return None,
    })
}

/// The bias-corrected Chao1 estimate of how many distinct values the population `sample` was
/// drawn from holds: the values seen, plus `f1 (f1 - 1) / (2 (f2 + 1))` for the `f1` values seen
/// once and `f2` seen twice (a sample of all-distinct values says "far more than seen").
fn estimate_distinct(sample: &mut [&[u8]]) -> f64 {
    sample.sort_unstable();
    let (mut seen, mut once, mut twice) = (0u64, 0u64, 0u64);
    for run in sample.chunk_by(|a, b| a == b) {
        seen += 1;
        match run.len() {
            1 => once += 1,
            2 => twice += 1,
            _ => {}
        }
    }
    seen as f64 + (once * once.saturating_sub(1)) as f64 / (2 * (twice + 1)) as f64
}

impl Encoder for ParquetEncoder {
    /// Splits `batch` across row groups as `ArrowWriter::write` does, by the estimate of
    /// [`ParquetEncoder`]: a row group is closed once its anticipated encoded size reaches
    /// `row_group_bytes` or its rows reach `row_group_rows`, and a batch that would overshoot is
    /// cut where the average row size so far says the limit falls.
    fn write(&mut self, batch: &RecordBatch) -> Result<(), FormatError> {
        self.check()?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let mut remaining = batch.clone();
        loop {
            if self.in_progress.is_none() {
                self.in_progress = Some(self.new_row_group(&remaining)?);
            }
            // The first batch of a row group is waited for before the next is placed, so every
            // later decision has an encoded size to go by.
            if self.in_progress.as_ref().is_some_and(|g| g.settled_rows == 0 && !g.unsettled.is_empty()) {
                self.settle()?;
            }
            let Some(group) = self.in_progress.as_ref() else { continue };
            let buffered_rows = group.rows();
            let mut split_at =
                (buffered_rows + remaining.num_rows() > self.max_rows).then(|| self.max_rows - buffered_rows);
            let candidate_rows = split_at.unwrap_or_else(|| remaining.num_rows());
            if buffered_rows > 0 {
                let current_bytes = group.estimated_bytes();
                if current_bytes >= self.max_bytes {
                    self.flush_row_group()?;
                    continue;
                }
                let avg_row_bytes = current_bytes.checked_div(buffered_rows).unwrap_or_default();
                if let Some(rows_that_fit) = (self.max_bytes - current_bytes).checked_div(avg_row_bytes)
                    && candidate_rows > rows_that_fit
                {
                    if rows_that_fit > 0 {
                        split_at = Some(rows_that_fit);
                    } else {
                        self.flush_row_group()?;
                        continue;
                    }
                }
            }
            let rest = split_at.map(|to_write| {
                let rest = remaining.slice(to_write, remaining.num_rows() - to_write);
                remaining = remaining.slice(0, to_write);
                rest
            });
            self.encode(&remaining)?;
            // The previous row group is appended while this batch encodes.
            self.append_closed()?;
            let full = self
                .in_progress
                .as_ref()
                .is_some_and(|group| group.rows() >= self.max_rows || group.estimated_bytes() >= self.max_bytes);
            if full {
                self.flush_row_group()?;
            }
            match rest {
                Some(rest) => remaining = rest,
                None => break,
            }
        }
        Ok(())
    }

    fn take_ready(&mut self) -> Vec<Bytes> {
        // Safe: the SerializedFileWriter counts offsets in its own tracked writer, so
        // removing what already reached the output changes nothing it will write later.
        self.writer.inner_mut().take()
    }

    fn in_progress_size(&self) -> usize {
        self.in_progress.as_ref().map_or(0, RowGroup::estimated_bytes) + self.closing.as_ref().map_or(0, |c| c.bytes)
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<Bytes>, FormatError> {
        self.check()?;
        self.flush_row_group()?;
        self.append_closed()?;
        Ok(self.writer.into_inner()?.take())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        Array, ArrayRef, Date32Array, Decimal128Array, Int64Array, StringArray, TimestampMicrosecondArray,
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
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("day", DataType::Date32, true),
            Field::new("amount", DataType::Decimal128(18, 2), true),
        ]))
    }

    fn batch(start: i64, n: i64) -> RecordBatch {
        let ids: Vec<i64> = (start..start + n).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(StringArray::from(ids.iter().map(|i| (i % 3 != 0).then(|| format!("n{i}"))).collect::<Vec<_>>())),
            Arc::new(
                TimestampMicrosecondArray::from(
                    ids.iter().map(|i| Some(1_700_000_000_000_000 + i)).collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(Date32Array::from(ids.iter().map(|i| Some(19_000 + (*i as i32 % 100))).collect::<Vec<_>>())),
            Arc::new(
                Decimal128Array::from(ids.iter().map(|i| Some(i128::from(*i) * 101)).collect::<Vec<_>>())
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

    /// What arrow-rs's own (serial) `ArrowWriter` writes for the same batches and options.
    /// The columns written plain are the ones `plain_columns` picks from the first batch (the
    /// callers' batches lead every row group to the same choice).
    fn reference(schema: SchemaRef, codec: Codec, options: &EncoderOptions, batches: &[RecordBatch]) -> Vec<u8> {
        let mut props = writer_properties_builder(codec, options).unwrap();
        let plain = plain_columns(&batches[0], options.row_group_rows);
        for (field, _) in schema.fields().iter().zip(plain).filter(|(_, plain)| *plain) {
            props = props.set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
        }
        let props = props.build();
        let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(props)).unwrap();
        for batch in batches {
            writer.write(batch).unwrap();
        }
        writer.into_inner().unwrap()
    }

    fn encode_all(schema: SchemaRef, codec: Codec, options: &EncoderOptions, batches: &[RecordBatch]) -> Vec<u8> {
        let mut encoder = Box::new(ParquetEncoder::new(schema, codec, options).unwrap());
        let mut object = Vec::new();
        for batch in batches {
            encoder.write(batch).unwrap();
            object.extend_from_slice(&encoder.take_ready().concat());
        }
        object.extend_from_slice(&encoder.finish().unwrap().concat());
        object
    }

    /// A schema with nested columns (several leaves per root column) and dictionary-friendly
    /// strings, so leaf grouping and every writer path are exercised.
    fn nested_batch(start: i64, n: i64) -> RecordBatch {
        use arrow::array::{ListArray, StructArray};
        use arrow::buffer::OffsetBuffer;
        let base = batch(start, n);
        let item = Arc::new(Field::new("item", DataType::Utf8, true));
        let values =
            StringArray::from((0..n * 2).map(|i| (i % 5 != 0).then(|| format!("tag{}", i % 7))).collect::<Vec<_>>());
        let tags = ListArray::new(
            Arc::clone(&item),
            OffsetBuffer::from_lengths(std::iter::repeat_n(2, n as usize)),
            Arc::new(values),
            None,
        );
        let point = StructArray::from(vec![
            (
                Arc::new(Field::new("x", DataType::Int64, true)),
                Arc::new(Int64Array::from((start..start + n).map(|i| i * 3).collect::<Vec<_>>())) as ArrayRef,
            ),
            (
                Arc::new(Field::new("label", DataType::Utf8, true)),
                Arc::new(StringArray::from((start..start + n).map(|i| format!("p{}", i % 11)).collect::<Vec<_>>())),
            ),
        ]);
        let mut fields: Vec<Field> = base.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("tags", DataType::List(item), true));
        fields.push(Field::new("point", point.data_type().clone(), true));
        let mut columns = base.columns().to_vec();
        columns.push(Arc::new(tags));
        columns.push(Arc::new(point));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    #[test]
    fn parallel_output_is_byte_identical_to_serial_and_reads_back_equal() {
        let batches: Vec<RecordBatch> = (0..9).map(|i| nested_batch(i * 977, 977 + i)).collect();
        let schema = batches[0].schema();
        let all = arrow::compute::concat_batches(&schema, &batches).unwrap();
        for (rows, bytes) in [(1 << 20, 64 << 20), (1000, 1 << 30), (1 << 20, 24 * 1024)] {
            for codec in [Codec::None, Codec::Gzip, Codec::Zstd, Codec::Snappy] {
                let options = |parallel| EncoderOptions {
                    row_group_rows: rows,
                    row_group_bytes: bytes,
                    parallel,
                    ..Default::default()
                };
                let serial = encode_all(Arc::clone(&schema), codec, &options(false), &batches);
                // Timing never shows in the bytes: the same file every time, on any thread.
                for _ in 0..3 {
                    let parallel = encode_all(Arc::clone(&schema), codec, &options(true), &batches);
                    assert!(
                        parallel == serial,
                        "{codec:?} rows {rows} bytes {bytes}: {} vs {} bytes",
                        parallel.len(),
                        serial.len()
                    );
                }
                let reader = SerializedFileReader::new(Bytes::from(serial.clone())).unwrap();
                for group in reader.metadata().row_groups() {
                    assert!(group.num_rows() as usize <= rows, "{codec:?}: a row group over {rows} rows");
                }
                let back = arrow::compute::concat_batches(&schema, &read_back(serial)).unwrap();
                assert_eq!(back, all, "{codec:?} rows {rows} bytes {bytes}");
                // Without a byte limit to go by, the row groups are ArrowWriter's, byte for byte.
                if bytes == 1 << 30 {
                    let reference = reference(Arc::clone(&schema), codec, &options(false), &batches);
                    assert!(encode_all(Arc::clone(&schema), codec, &options(true), &batches) == reference);
                }
            }
        }
        // AND the small limits really did make several row groups
        let options = EncoderOptions { row_group_rows: 1 << 20, row_group_bytes: 24 * 1024, ..Default::default() };
        let object = encode_all(Arc::clone(&schema), Codec::Snappy, &options, &batches);
        let reader = SerializedFileReader::new(Bytes::from(object.clone())).unwrap();
        assert!(reader.metadata().num_row_groups() > 3);
        let back = arrow::compute::concat_batches(&schema, &read_back(object)).unwrap();
        assert_eq!(back, arrow::compute::concat_batches(&schema, &batches).unwrap());
    }

    #[test]
    fn large_pages_leave_uncopied_and_the_pieces_are_the_file() {
        // GIVEN a column of unique 2 KB strings (pages of ~1 MiB, written plain) and a
        // counter, in two row groups
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("doc", DataType::Utf8, false),
        ]));
        let batch = |start: i64| {
            let docs: Vec<String> = (start..start + 2000).map(|i| format!("{i:08}-{}", "x".repeat(2000))).collect();
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(Int64Array::from_iter_values(start..start + 2000)), Arc::new(StringArray::from(docs))],
            )
            .unwrap()
        };
        let batches = [batch(0), batch(2000), batch(4000)];
        let options = EncoderOptions { row_group_rows: 3000, ..Default::default() };
        // WHEN they are encoded and the pieces taken after every batch
        let mut encoder = Box::new(ParquetEncoder::new(Arc::clone(&schema), Codec::None, &options).unwrap());
        let mut pieces = Vec::new();
        for batch in &batches {
            encoder.write(batch).unwrap();
            pieces.extend(encoder.take_ready());
        }
        pieces.extend(encoder.finish().unwrap());
        // THEN the pages of the strings are pieces of their own, of at least the size kept
        // uncopied, no piece is empty, and together they are what arrow-rs writes
        let large = pieces.iter().filter(|piece| piece.len() >= KEEP_UNCOPIED).count();
        assert!(large >= 6, "{large} large pieces of {}", pieces.len());
        assert!(pieces.iter().all(|piece| !piece.is_empty()));
        assert_eq!(pieces.concat(), reference(schema, Codec::None, &options, &batches));
    }

    #[test]
    fn in_progress_size_is_the_open_row_group() {
        let options = EncoderOptions::default();
        let mut encoder = Box::new(ParquetEncoder::new(schema(), Codec::Zstd, &options).unwrap());
        assert_eq!(encoder.in_progress_size(), 0);
        encoder.write(&batch(0, 5000)).unwrap();
        assert!(encoder.in_progress_size() > 0);
        // Nothing but the magic is ready until a row group closes.
        assert_eq!(encoder.take_ready().concat(), b"PAR1");
    }

    #[test]
    fn drained_chunks_plus_footer_read_back() {
        // GIVEN small row groups, so bytes become ready while the file is being written
        let options = EncoderOptions { row_group_rows: 1000, row_group_bytes: 1 << 30, ..Default::default() };
        for codec in [Codec::None, Codec::Gzip, Codec::Zstd, Codec::Snappy] {
            let mut encoder = Box::new(ParquetEncoder::new(schema(), codec, &options).unwrap());
            let mut object = Vec::new();
            let mut parts = 0;
            for i in 0..5 {
                encoder.write(&batch(i * 1500, 1500)).unwrap();
                let ready = encoder.take_ready().concat();
                parts += usize::from(!ready.is_empty());
                object.extend_from_slice(&ready);
            }
            // WHEN the file is assembled from the drained parts and the footer
            object.extend_from_slice(&encoder.finish().unwrap().concat());
            // THEN it reads back whole, with every row group and the same schema
            assert!(parts >= 4, "{codec:?}: only {parts} parts were ready early");
            let reader = SerializedFileReader::new(Bytes::from(object.clone())).unwrap();
            assert_eq!(reader.metadata().num_row_groups(), 8, "{codec:?}");
            let batches = read_back(object);
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            assert_eq!(rows, 7500);
            assert_eq!(batches[0].schema(), schema());
            let expected =
                arrow::compute::concat_batches(&schema(), &(0..5).map(|i| batch(i * 1500, 1500)).collect::<Vec<_>>())
                    .unwrap();
            let actual = arrow::compute::concat_batches(&schema(), &batches).unwrap();
            assert_eq!(actual, expected);
        }
    }

    #[test]
    fn row_groups_close_at_the_byte_limit() {
        let options = EncoderOptions { row_group_rows: 1 << 20, row_group_bytes: 16 * 1024, ..Default::default() };
        let mut encoder = Box::new(ParquetEncoder::new(schema(), Codec::None, &options).unwrap());
        for i in 0..20 {
            encoder.write(&batch(i * 1000, 1000)).unwrap();
            assert!(encoder.in_progress_size() < 2 * 16 * 1024);
        }
        let mut object = encoder.take_ready().concat();
        object.extend_from_slice(&encoder.finish().unwrap().concat());
        let reader = SerializedFileReader::new(Bytes::from(object)).unwrap();
        assert!(reader.metadata().num_row_groups() > 5);
    }

    #[test]
    fn codec_and_statistics_are_in_the_footer() {
        for (codec, expected) in
            [(Codec::Gzip, "GZIP"), (Codec::Zstd, "ZSTD"), (Codec::Snappy, "SNAPPY"), (Codec::None, "UNCOMPRESSED")]
        {
            let mut encoder = Box::new(ParquetEncoder::new(schema(), codec, &EncoderOptions::default()).unwrap());
            encoder.write(&batch(10, 100)).unwrap();
            let mut object = encoder.take_ready().concat();
            object.extend_from_slice(&encoder.finish().unwrap().concat());
            let reader = SerializedFileReader::new(Bytes::from(object)).unwrap();
            let column = reader.metadata().row_group(0).column(0);
            assert!(column.compression().to_string().starts_with(expected), "{codec:?}");
            let stats = column.statistics().unwrap();
            assert_eq!(stats.min_bytes_opt(), Some(&10i64.to_le_bytes()[..]));
            assert_eq!(stats.max_bytes_opt(), Some(&109i64.to_le_bytes()[..]));
            assert!(column.column_index_range().is_some(), "page statistics (column index)");
        }
    }

    #[test]
    fn distinct_values_are_estimated_from_singles_and_pairs() {
        let values: Vec<Vec<u8>> = (0u64..DICTIONARY_SAMPLE as u64).map(|i| i.to_le_bytes().to_vec()).collect();
        // all distinct: far more than the sample (the row group's cap then decides)
        let mut sample: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        assert!(estimate_distinct(&mut sample) > 1e6);
        // one value: one
        let mut sample: Vec<&[u8]> = vec![values[7].as_slice(); DICTIONARY_SAMPLE];
        assert_eq!(estimate_distinct(&mut sample), 1.0);
        // 2,048 draws from 20,000 values (a fixed pseudo-random walk): near 20,000
        let population: Vec<[u8; 8]> = (0u64..20_000).map(|i| (i * 7919).to_le_bytes()).collect();
        let mut state = 12_345u64;
        let mut sample: Vec<&[u8]> = (0..DICTIONARY_SAMPLE)
            .map(|_| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                population[(state >> 33) as usize % population.len()].as_slice()
            })
            .collect();
        let estimate = estimate_distinct(&mut sample);
        assert!((14_000.0..28_000.0).contains(&estimate), "estimated {estimate} of 20000");
    }

    #[test]
    fn columns_whose_dictionary_would_overflow_are_written_plain() {
        use parquet::basic::Encoding;
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("at", DataType::Int64, false),
            Field::new("country", DataType::Utf8, true),
            Field::new("session", DataType::Int64, false),
            Field::new("flag", DataType::Boolean, false),
        ]));
        let rows = 200_000i64;
        let batches: Vec<RecordBatch> = (0..rows / 16_384 + 1)
            .map(|b| {
                let range = (b * 16_384)..((b + 1) * 16_384).min(rows);
                RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![
                        Arc::new(StringArray::from_iter_values(range.clone().map(|i| format!("{i:036}")))),
                        Arc::new(Int64Array::from_iter_values(range.clone().map(|i| 1_700_000_000_000 + i * 37))),
                        Arc::new(StringArray::from_iter(
                            range.clone().map(|i| (i % 9 != 0).then(|| format!("c{}", i % 40))),
                        )),
                        Arc::new(Int64Array::from_iter_values(range.clone().map(|i| (i * 7919) % 5_000))),
                        Arc::new(arrow::array::BooleanArray::from_iter(range.map(|i| Some(i % 2 == 0)))),
                    ],
                )
                .unwrap()
            })
            .collect();
        let object = encode_all(Arc::clone(&schema), Codec::Snappy, &EncoderOptions::default(), &batches);
        let reader = SerializedFileReader::new(Bytes::from(object.clone())).unwrap();
        for group in reader.metadata().row_groups() {
            let dictionary = |i: usize| {
                let column = group.column(i);
                column.dictionary_page_offset().is_some() && column.encodings().any(|e| e == Encoding::RLE_DICTIONARY)
            };
            assert!(!dictionary(0), "unique ids are written plain");
            assert!(!dictionary(1), "unique timestamps are written plain");
            assert!(dictionary(2), "40 countries keep their dictionary");
            assert!(dictionary(3), "5,000 sessions (40 KB of dictionary) keep theirs");
        }
        let back = arrow::compute::concat_batches(&schema, &read_back(object)).unwrap();
        assert_eq!(back, arrow::compute::concat_batches(&schema, &batches).unwrap());
    }

    #[test]
    fn view_columns_are_written_and_declared_as_strings_and_bytes() {
        use arrow::array::{BinaryViewArray, StringViewArray};
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8View, true),
            Field::new("b", DataType::BinaryView, false),
        ]));
        let strings: Vec<Option<String>> =
            (0..3000).map(|i| (i % 5 != 0).then(|| format!("value {i} that is longer than twelve bytes"))).collect();
        let bytes: Vec<Vec<u8>> = (0..3000u32).map(|i| i.to_le_bytes().repeat(i as usize % 7)).collect();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringViewArray::from_iter(strings.clone())),
                Arc::new(BinaryViewArray::from_iter_values(bytes.iter().map(Vec::as_slice))),
            ],
        )
        .unwrap();
        let object = encode_all(Arc::clone(&schema), Codec::Zstd, &EncoderOptions::default(), &[batch]);
        let back = arrow::compute::concat_batches(&read_back(object.clone())[0].schema(), &read_back(object)).unwrap();
        assert_eq!(back.schema().field(0).data_type(), &DataType::Utf8);
        assert_eq!(back.schema().field(1).data_type(), &DataType::Binary);
        assert_eq!(back.column(0).as_ref(), &StringArray::from(strings) as &dyn Array);
        let read: Vec<&[u8]> = back.column(1).as_binary::<i32>().iter().map(Option::unwrap).collect();
        assert_eq!(read, bytes.iter().map(Vec::as_slice).collect::<Vec<_>>());
    }

    #[test]
    fn empty_file_has_the_schema_and_no_rows() {
        let encoder = Box::new(ParquetEncoder::new(schema(), Codec::Gzip, &EncoderOptions::default()).unwrap());
        let object = encoder.finish().unwrap().concat();
        let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(object)).unwrap();
        assert_eq!(builder.schema(), &schema());
        assert_eq!(builder.metadata().file_metadata().num_rows(), 0);
        let rows: usize = builder.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 0);
    }

    #[test]
    fn timestamps_keep_their_time_zone() {
        let mut encoder = Box::new(ParquetEncoder::new(schema(), Codec::Snappy, &EncoderOptions::default()).unwrap());
        encoder.write(&batch(0, 3)).unwrap();
        let mut object = encoder.take_ready().concat();
        object.extend_from_slice(&encoder.finish().unwrap().concat());
        let batches = read_back(object);
        let at = batches[0].column(2);
        assert_eq!(at.data_type(), &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())));
        assert_eq!(at.len(), 3);
    }

    #[test]
    fn bad_options_are_rejected() {
        for options in [
            EncoderOptions { row_group_rows: 0, ..Default::default() },
            EncoderOptions { row_group_bytes: 0, ..Default::default() },
            EncoderOptions { gzip_level: 11, ..Default::default() },
            EncoderOptions { zstd_level: 99, ..Default::default() },
        ] {
            let codec = if options.zstd_level == 99 { Codec::Zstd } else { Codec::Gzip };
            assert!(matches!(ParquetEncoder::new(schema(), codec, &options), Err(FormatError::Invalid(_))));
        }
    }
}
