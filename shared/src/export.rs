//! One export task: source -> encoder -> sink, rolling files over at the size limits.
//!
//! Three stages overlap, joined by bounded channels so memory stays flat whatever the table
//! size: a task pulls record batches from the source, a blocking thread encodes them (the CPU
//! work), and this task streams the encoded bytes to the sink part by part. Shard numbers
//! are deterministic (slice `i` numbers its files from `i * SHARD_STRIDE`), so a retried or
//! re-run task rewrites exactly the same keys.
//!
//! On any failure the open uploads are aborted: an export never leaves a partial object under
//! a final key, and it returns the first error, naming the table and key.
//!
//! With `partition_by`, each batch splits by date partition ([`partition`]) and every partition
//! is a file sequence of its own (numbered from the slice's first shard); at most
//! [`MAX_OPEN_PARTITIONS`] files are open at once (the least recently written is closed when
//! another is needed, and its partition continues in a new file), so memory stays bounded
//! however many partitions a table spans.

mod partition;

pub use partition::NULL_PARTITION;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::format::pgp::RecipientKey;
use crate::format::{EncoderOptions, FileStats, FileWriter, Format, FormatError};
use crate::layout::{self, KeyTemplate, RunId, SHARD_STRIDE};
use crate::plan::{ExportTask, TaskResult};
use crate::receipt::FileEntry;
use crate::schema;
use crate::sink::{ObjectSink, PutOptions, Upload, abort_quietly};
use crate::source::{Source, TableRequest};
use crate::{Error, Result};
use partition::Partitioner;

/// Rows handed to the encoder at a time: small enough that size limits are honoured closely.
const MAX_ROWS_PER_WRITE: usize = 16 * 1024;

/// Files open at once in one export with `partition_by` (each holds up to a row group).
pub const MAX_OPEN_PARTITIONS: usize = 4;

/// Everything an export needs to know about its destination, independent of the config file.
#[derive(Clone, Debug)]
pub struct ExportSpec {
    /// The run id, part of every key.
    pub run: RunId,
    /// The destination's prefix (normalized; may be empty).
    pub prefix: String,
    /// The key template (relative to the prefix).
    pub template: KeyTemplate,
    /// How files are encoded.
    pub format: Format,
    /// A file is closed once it holds this many rows.
    pub max_file_rows: u64,
    /// A file is closed once its estimated size reaches this many bytes.
    pub max_file_bytes: u64,
    /// Encoder tuning.
    pub encoder: EncoderOptions,
    /// User metadata stored with every object (run, table and shard are added).
    pub metadata: BTreeMap<String, String>,
    /// Finalizing writes an AEP-style manifest just before the receipt.
    pub manifest: bool,
    /// Date partitions of each table's files (`{partition}` in the template).
    pub partition_by: Option<crate::config::PartitionBy>,
    /// Every file encrypted to this OpenPGP key (`.gpg` appended to the extension).
    pub pgp: Option<Arc<RecipientKey>>,
}

impl ExportSpec {
    /// The files' extension: the format's, plus `.gpg` when they are encrypted.
    pub fn extension(&self) -> String {
        match &self.pgp {
            Some(_) => format!("{}.gpg", self.format.extension()),
            None => self.format.extension().to_owned(),
        }
    }

    /// The `Content-Type` stored with each file.
    pub fn content_type(&self) -> &'static str {
        match &self.pgp {
            Some(_) => "application/pgp-encrypted",
            None => self.format.content_type(),
        }
    }
}

/// A flag that stops exports between batches (set when another task of the same destination
/// failed, so no more work is spent on a destination that will not be finalized).
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Asks every export holding this flag to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    /// Whether stopping was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Called with the number of rows just encoded.
pub type RowsCallback = Arc<dyn Fn(u64) + Send + Sync>;

/// A budget of bytes shared by the two ends of a channel: the sender takes an item's bytes
/// from it before sending, the receiver gives them back (drops the permit) once it is done
/// with the item. Counted in KiB; an item larger than the whole budget takes all of it, so it
/// passes once the channel is empty, and every item counts at least 1 KiB.
#[derive(Clone)]
struct ByteBudget {
    semaphore: Arc<Semaphore>,
    kib: u32,
}

impl ByteBudget {
    fn new(bytes: usize) -> Self {
        let kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX).max(1);
        ByteBudget { semaphore: Arc::new(Semaphore::new(kib as usize)), kib }
    }

    fn cost(&self, bytes: usize) -> u32 {
        u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX).clamp(1, self.kib)
    }

    /// Waits until `bytes` fit. `None` only if the semaphore was closed (never, here).
    async fn take(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        self.semaphore.clone().acquire_many_owned(self.cost(bytes)).await.ok()
    }
}

/// A file being uploaded: its upload, its key relative to the prefix, its partition.
type Uploading = (Box<dyn Upload>, String, Option<String>);

/// What the encoder thread hands to the uploader; `file` tells the open files apart, and
/// `Data` holds the file's next bytes as pieces, in order.
enum Piece {
    Start { file: u64, shard: u64, partition: Option<String> },
    Data { file: u64, bytes: Vec<Bytes> },
    End { file: u64, stats: FileStats },
}

/// Exports one slice of one table to `sink` and reports the files written.
pub async fn export(
    task: &ExportTask,
    request: &TableRequest,
    source: &dyn Source,
    sink: &dyn ObjectSink,
    spec: &ExportSpec,
    cancel: &Cancel,
    on_rows: RowsCallback,
) -> Result<TaskResult> {
    let started = Instant::now();
    let table = task.table.clone();
    let format_error = |source: FormatError| Error::Format { table: table.clone(), source };

    // Everything that can be checked before a byte is written is checked here.
    if task.slice.count > 1 && task.bounds.is_whole() {
        // Reading the whole table as one of several slices would repeat its rows.
        return Err(Error::Plan(format!(
            "table {:?}: the task is slice {} of {} but carries no bounds; export tasks come from the \
             dump step's plan, which gives every slice of a table its exact bounds",
            task.table, task.slice.index, task.slice.count
        )));
    }
    // A table with a watermark reads the range its plan fixed, whoever built the request.
    let windowed;
    let request = match &task.increment {
        Some(increment) => {
            windowed = TableRequest { window: Some(increment.window()), ..request.clone() };
            &windowed
        }
        None => request,
    };
    let stream = source.open(request, &task.bounds).await?;
    let schema = stream.schema.clone();
    let columns = schema::describe(&schema).map_err(|m| format_error(FormatError::Invalid(m)))?;
    FileWriter::new(&spec.format, schema.clone(), &spec.encoder).map_err(format_error)?;
    let partitioner =
        spec.partition_by.as_ref().map(|by| Partitioner::new(by, &schema)).transpose().map_err(format_error)?;

    // Both channels are bounded in bytes (`read_ahead_bytes`, `upload_queue_bytes`), not in
    // items: a batch of wide rows or a whole Parquet row group counts for what it holds.
    let read_ahead = ByteBudget::new(spec.encoder.read_ahead_bytes);
    let (batch_tx, batch_rx) = mpsc::unbounded_channel::<(Result<RecordBatch>, Option<OwnedSemaphorePermit>)>();
    let pump = tokio::spawn(async move {
        let mut batches = stream.batches;
        while let Some(item) = batches.next().await {
            let failed = item.is_err();
            let bytes = item.as_ref().map_or(0, RecordBatch::get_array_memory_size);
            let permit = read_ahead.take(bytes).await;
            if batch_tx.send((item, permit)).is_err() || failed {
                break;
            }
        }
    });

    let upload_queue = ByteBudget::new(spec.encoder.upload_queue_bytes);
    let (piece_tx, mut piece_rx) = mpsc::unbounded_channel::<(Piece, Option<OwnedSemaphorePermit>)>();
    let encoder = {
        let job = EncodeJob {
            table: table.clone(),
            schema,
            format: spec.format.clone(),
            options: spec.encoder.clone(),
            max_rows: spec.max_file_rows.max(1),
            max_bytes: spec.max_file_bytes.max(1),
            first_shard: u64::from(task.slice.index) * SHARD_STRIDE,
            always_write_a_file: task.slice.index == 0,
            partitioner,
            pgp: spec.pgp.clone(),
            cancel: cancel.clone(),
            on_rows,
        };
        tokio::task::spawn_blocking(move || job.run(batch_rx, piece_tx, &upload_queue))
    };

    let ext = spec.extension();
    let ext = ext.as_str();
    let mut files = Vec::new();
    // The files being written, by number.
    let mut open: HashMap<u64, Uploading> = HashMap::new();
    // Finishing a file (S3's CompleteMultipartUpload, a local fsync and rename) overlaps with
    // the next file's pieces: at most `COMPLETING` at once, every one awaited before returning.
    let mut completing = futures::stream::FuturesUnordered::new();
    let mut uploaded: Result<()> = async {
        loop {
            // The permit goes back to the encoder's budget once the piece is handled.
            let (piece, _permit) = tokio::select! {
                piece = piece_rx.recv() => match piece {
                    Some(piece) => piece,
                    None => break,
                },
                Some(done) = completing.next(), if !completing.is_empty() => {
                    files.push(done?);
                    continue;
                }
            };
            match piece {
                Piece::Start { file, shard, partition } => {
                    let value = partition.as_deref().unwrap_or(layout::UNPARTITIONED);
                    let relative = spec.template.render_partition(&spec.run, &task.table, value, shard, ext);
                    let key = layout::join(&spec.prefix, &relative);
                    let mut options =
                        PutOptions { content_type: spec.content_type().to_string(), metadata: spec.metadata.clone() };
                    options.metadata.insert("byob-run".into(), spec.run.to_string());
                    options.metadata.insert("byob-table".into(), task.table.clone());
                    options.metadata.insert("byob-shard".into(), layout::shard_name(shard));
                    if let Some(partition) = &partition {
                        options.metadata.insert("byob-partition".into(), partition.clone());
                    }
                    let upload = sink.start(&key, &options).await?;
                    open.insert(file, (upload, relative, partition));
                }
                Piece::Data { file, bytes } => {
                    if let Some((upload, _, _)) = open.get_mut(&file) {
                        upload.put_parts(bytes).await?;
                    }
                }
                Piece::End { file, stats } => {
                    if let Some((upload, relative, partition)) = open.remove(&file) {
                        if completing.len() >= COMPLETING
                            && let Some(done) = completing.next().await
                        {
                            files.push(done?);
                        }
                        completing.push(async move {
                            upload.complete().await?;
                            Ok::<_, Error>(FileEntry {
                                key: relative,
                                rows: stats.rows,
                                bytes: stats.bytes,
                                sha256: stats.sha256,
                                partition,
                            })
                        });
                    }
                }
            }
        }
        Ok(())
    }
    .await;
    // Files being finished are finished even when something failed: none is left half done.
    while let Some(done) = completing.next().await {
        match done {
            Ok(entry) => files.push(entry),
            Err(e) => uploaded = uploaded.and(Err(e)),
        }
    }
    // Closing the receiver stops the encoder (its sends fail); stopping the pump first means
    // the encoder is not left waiting on a slow source.
    drop(piece_rx);
    if uploaded.is_err() {
        pump.abort();
    }
    let encoded = encoder.await.map_err(|e| Error::Cancelled(format!("encoder of table {table:?} panicked: {e}")))?;
    pump.abort();

    let outcome = uploaded.and(encoded).and_then(|()| match open.values().next() {
        // The encoder ended mid-file without an error: never report a file it did not finish.
        Some((_, key, _)) => Err(Error::Cancelled(format!("encoding of {key:?} stopped before the file was complete"))),
        None => Ok(()),
    });
    if let Err(e) = outcome {
        for (_, (upload, relative, _)) in open.drain() {
            abort_quietly(upload, &relative).await;
        }
        return Err(e);
    }
    // Files in key order: partitions interleave while they are written.
    files.sort_by(|a, b| a.key.cmp(&b.key));

    let folder = spec.template.folder(&spec.run, &task.table);
    Ok(TaskResult {
        task: task.clone(),
        folder,
        schema: columns,
        rows: files.iter().map(|f| f.rows).sum(),
        bytes: files.iter().map(|f| f.bytes).sum(),
        files,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Files of one export being finished at once while the next is written.
const COMPLETING: usize = 4;

/// The encoding stage, run on a blocking thread.
struct EncodeJob {
    table: String,
    schema: SchemaRef,
    format: Format,
    options: EncoderOptions,
    max_rows: u64,
    max_bytes: u64,
    first_shard: u64,
    /// Slice 0 writes one file even when it has no rows, so an empty table still has a file
    /// carrying its schema; other empty slices write nothing.
    always_write_a_file: bool,
    /// `Some` with `partition_by`: rows split by partition, each its own file sequence.
    partitioner: Option<Partitioner>,
    /// Every file encrypted to this key.
    pgp: Option<Arc<RecipientKey>>,
    cancel: Cancel,
    on_rows: RowsCallback,
}

/// A file being written by the encoding stage.
struct OpenFile {
    file: u64,
    partition: Option<String>,
    writer: FileWriter,
    /// When it was last written to (a counter), to close the least recently written first.
    used: u64,
}

impl EncodeJob {
    fn run(
        self,
        mut batches: mpsc::UnboundedReceiver<(Result<RecordBatch>, Option<OwnedSemaphorePermit>)>,
        pieces: mpsc::UnboundedSender<(Piece, Option<OwnedSemaphorePermit>)>,
        upload_queue: &ByteBudget,
    ) -> Result<()> {
        let send = |piece: Piece| {
            let stopped = || Error::Cancelled(format!("upload of table {:?} stopped", self.table));
            let bytes = match &piece {
                Piece::Data { bytes, .. } => crate::format::pieces_len(bytes),
                Piece::Start { .. } | Piece::End { .. } => 0,
            };
            // Blocks this (blocking) thread until the uploader has made room; the semaphore
            // needs no runtime to wait on. An uploader that stopped drops the receiver.
            if pieces.is_closed() {
                return Err(stopped());
            }
            let permit = futures::executor::block_on(upload_queue.take(bytes));
            pieces.send((piece, permit)).map_err(|_| stopped())
        };
        let format_error = |source: FormatError| Error::Format { table: self.table.clone(), source };
        // The next shard of each partition (`None`: unpartitioned), and the files open now.
        let mut next_shard: HashMap<Option<String>, u64> = HashMap::new();
        let mut open: Vec<OpenFile> = Vec::new();
        let mut files = 0u64;
        let mut clock = 0u64;

        // The batch's permit is held until the batch is encoded.
        while let Some((item, _permit)) = batches.blocking_recv() {
            let batch = item?;
            if self.cancel.is_cancelled() {
                return Err(Error::Cancelled(format!("export of table {:?} cancelled", self.table)));
            }
            let parts = match &self.partitioner {
                None => vec![(None, batch)],
                Some(p) => p.split(&batch).map_err(format_error)?.into_iter().map(|(v, b)| (Some(v), b)).collect(),
            };
            for (partition, rows) in parts {
                let mut offset = 0;
                while offset < rows.num_rows() {
                    clock += 1;
                    let at = match open.iter().position(|f| f.partition == partition) {
                        Some(at) => at,
                        None => {
                            if open.len() >= MAX_OPEN_PARTITIONS {
                                // Close the least recently written file; its partition goes on in
                                // a new file if more of its rows come.
                                let lru = (0..open.len()).min_by_key(|&i| open[i].used).unwrap_or(0);
                                self.finish(open.swap_remove(lru), &send)?;
                            }
                            let shard = next_shard.entry(partition.clone()).or_insert(self.first_shard);
                            files += 1;
                            send(Piece::Start { file: files, shard: *shard, partition: partition.clone() })?;
                            *shard += 1;
                            let writer = self.writer().map_err(format_error)?;
                            open.push(OpenFile { file: files, partition: partition.clone(), writer, used: clock });
                            open.len() - 1
                        }
                    };
                    let f = &mut open[at];
                    f.used = clock;
                    let room = usize::try_from(self.max_rows.saturating_sub(f.writer.rows())).unwrap_or(usize::MAX);
                    let take = room.min(rows.num_rows() - offset).min(MAX_ROWS_PER_WRITE);
                    f.writer.write(&rows.slice(offset, take)).map_err(format_error)?;
                    offset += take;
                    (self.on_rows)(take as u64);
                    let ready = f.writer.take_ready();
                    if !ready.is_empty() {
                        send(Piece::Data { file: f.file, bytes: ready })?;
                    }
                    if f.writer.rows() >= self.max_rows || f.writer.estimated_size() >= self.max_bytes {
                        self.finish(open.swap_remove(at), &send)?;
                    }
                }
            }
        }
        for f in open {
            self.finish(f, &send)?;
        }
        if files == 0 && self.always_write_a_file {
            // One empty file carries the schema (partition `all` when partitioned).
            let partition = self.partitioner.as_ref().map(|_| layout::UNPARTITIONED.to_owned());
            send(Piece::Start { file: 1, shard: self.first_shard, partition: partition.clone() })?;
            let writer = self.writer().map_err(format_error)?;
            self.finish(OpenFile { file: 1, partition, writer, used: 0 }, &send)?;
        }
        Ok(())
    }

    /// A new file's writer, encrypting when the destination has a key.
    fn writer(&self) -> std::result::Result<FileWriter, FormatError> {
        let writer = FileWriter::new(&self.format, self.schema.clone(), &self.options)?;
        match &self.pgp {
            Some(key) => writer.encrypted_to(key),
            None => Ok(writer),
        }
    }

    fn finish(&self, f: OpenFile, send: &dyn Fn(Piece) -> Result<()>) -> Result<()> {
        let (last, stats) = f.writer.finish().map_err(|source| Error::Format { table: self.table.clone(), source })?;
        if !last.is_empty() {
            send(Piece::Data { file: f.file, bytes: last })?;
        }
        send(Piece::End { file: f.file, stats })
    }
}
