//! Where a lake's files live: a local folder, or an `s3://bucket/prefix` of our own account.
//!
//! S3 is read the way Parquet wants to be read: a table is listed once (ListObjectsV2, per
//! plan), a file's footer is one ranged GET of its last [`FOOTER_PREFETCH`] bytes (a second
//! only when the metadata is larger), and then only the byte ranges of the column chunks of
//! the row groups a slice reads, each a ranged GET. Every request is counted
//! ([`ReadStats`]), so a test or a benchmark can say what a slice cost.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use tokio::sync::OnceCell;

use super::LakeError;
use crate::config::AwsConfig;
use crate::sink::S3Error;

/// Column chunks closer than this are fetched in one ranged GET (the gap is read and thrown
/// away): a request costs more than a megabyte of transfer inside a region.
pub const COALESCE_GAP: u64 = 1024 * 1024;
/// Ranged GETs of one file in flight at once.
const GETS_IN_FLIGHT: usize = 8;

/// Bytes read from a file's end in the first request for its footer: enough for the metadata
/// of most files (a few row groups of tens of columns), so one GET usually reads it all.
pub const FOOTER_PREFETCH: usize = 64 * 1024;

/// One data file of a table, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Listed {
    /// A local path, or `s3://bucket/key`.
    pub(crate) path: String,
    /// Its size in bytes.
    pub(crate) bytes: u64,
}

/// What reading has cost so far: requests sent to the store and bytes received. Local files
/// count one request per footer or range read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// List requests (one per table folder listed; one per 1,000 objects on S3).
    pub lists: u64,
    /// Ranged reads (footers and column chunks).
    pub gets: u64,
    /// Bytes read by those reads.
    pub bytes: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    lists: AtomicU64,
    gets: AtomicU64,
    bytes: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> ReadStats {
        ReadStats {
            lists: self.lists.load(Ordering::Relaxed),
            gets: self.gets.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }

    fn got(&self, bytes: usize) {
        self.gets.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// The stores a lake reads: local files always, S3 through one client made on first use.
#[derive(Debug)]
pub(crate) struct Stores {
    aws: AwsConfig,
    s3: OnceCell<aws_sdk_s3::Client>,
    pub(crate) counters: Counters,
}

impl Stores {
    pub(crate) fn new(aws: AwsConfig) -> Self {
        Stores { aws, s3: OnceCell::new(), counters: Counters::default() }
    }

    pub(crate) fn with_client(client: aws_sdk_s3::Client) -> Self {
        Stores { aws: AwsConfig::default(), s3: OnceCell::new_with(Some(client)), counters: Counters::default() }
    }

    async fn s3(&self) -> &aws_sdk_s3::Client {
        self.s3
            .get_or_init(|| async {
                let sdk = crate::aws::sdk_config(&self.aws).await;
                let config =
                    aws_sdk_s3::config::Builder::from(&sdk).force_path_style(sdk.endpoint_url().is_some()).build();
                aws_sdk_s3::Client::from_conf(config)
            })
            .await
    }

    /// The `*.parquet` files at `location` (a folder, a prefix, or one file), sorted by name.
    /// Hidden and `_`-prefixed names (`.crc`, `_SUCCESS`, ...) are not data files.
    pub(crate) async fn list(&self, location: &str) -> Result<Vec<Listed>, LakeError> {
        self.counters.lists.fetch_add(1, Ordering::Relaxed);
        match split_s3(location) {
            Some((bucket, prefix)) => self.list_s3(bucket, prefix).await,
            None => list_local(Path::new(location)).await,
        }
    }

    async fn list_s3(&self, bucket: &str, prefix: &str) -> Result<Vec<Listed>, LakeError> {
        let client = self.s3().await;
        if prefix.ends_with(".parquet") {
            // One file named directly: its size from a HEAD.
            let head = client
                .head_object()
                .bucket(bucket)
                .key(prefix)
                .send()
                .await
                .map_err(|e| storage("HeadObject", bucket, prefix, e))?;
            let bytes = head.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
            return Ok(vec![Listed { path: format!("s3://{bucket}/{prefix}"), bytes }]);
        }
        let folder = if prefix.is_empty() || prefix.ends_with('/') { prefix.to_owned() } else { format!("{prefix}/") };
        let mut files = Vec::new();
        let mut pages = client.list_objects_v2().bucket(bucket).prefix(&folder).into_paginator().send();
        let mut first = true;
        while let Some(page) = pages.next().await {
            if !first {
                self.counters.lists.fetch_add(1, Ordering::Relaxed);
            }
            first = false;
            let page = page.map_err(|e| storage("ListObjectsV2", bucket, &folder, e))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                // Only the folder's own files, like a local folder: not those of sub-folders.
                let Some(name) = key.strip_prefix(&folder) else { continue };
                if name.contains('/') || !is_data_file(name) {
                    continue;
                }
                let bytes = object.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
                files.push(Listed { path: format!("s3://{bucket}/{key}"), bytes });
            }
        }
        if files.is_empty() && !self.prefix_exists(bucket, &folder).await? {
            return Err(LakeError::MissingTable);
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// Whether anything at all is stored under `folder` (a table whose folder holds no
    /// `.parquet` file is "no files", one with nothing under it "missing").
    async fn prefix_exists(&self, bucket: &str, folder: &str) -> Result<bool, LakeError> {
        let page = self
            .s3()
            .await
            .list_objects_v2()
            .bucket(bucket)
            .prefix(folder)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| storage("ListObjectsV2", bucket, folder, e))?;
        Ok(!page.contents().is_empty())
    }

    /// A reader of one file that knows its size, so its footer is read from the end at once.
    pub(crate) async fn reader(self: &Arc<Self>, file: &Listed) -> Result<Box<dyn AsyncFileReader>, LakeError> {
        match split_s3(&file.path) {
            Some((bucket, key)) => Ok(Box::new(S3File {
                client: self.s3().await.clone(),
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                size: file.bytes,
                stores: self.clone(),
            })),
            None => {
                let handle = std::fs::File::open(&file.path)?;
                let size = handle.metadata()?.len();
                if size != file.bytes {
                    return Err(LakeError::Changed { listed: file.bytes, now: size });
                }
                Ok(Box::new(LocalFile { file: Arc::new(handle), size, stores: self.clone() }))
            }
        }
    }

    /// The file's Parquet metadata (footer), read with [`FOOTER_PREFETCH`].
    pub(crate) async fn metadata(self: &Arc<Self>, file: &Listed) -> Result<ArrowReaderMetadata, LakeError> {
        let mut reader = self.reader(file).await?;
        let metadata = reader.get_metadata(None).await?;
        Ok(ArrowReaderMetadata::try_new(metadata, ArrowReaderOptions::new())?)
    }
}

/// `s3://bucket/rest` -> (bucket, rest); `None` for a local path.
pub(crate) fn split_s3(location: &str) -> Option<(&str, &str)> {
    let rest = location.strip_prefix("s3://")?;
    Some(rest.split_once('/').unwrap_or((rest, "")))
}

fn is_data_file(name: &str) -> bool {
    !(name.starts_with('.') || name.starts_with('_')) && name.ends_with(".parquet")
}

fn storage<E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static>(
    operation: &'static str,
    bucket: &str,
    key: &str,
    error: aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> LakeError {
    LakeError::S3(Box::new(S3Error::from_sdk(operation, bucket, key, error)))
}

async fn list_local(path: &Path) -> Result<Vec<Listed>, LakeError> {
    let metadata = tokio::fs::metadata(path).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => LakeError::MissingTable,
        _ => LakeError::Io(e),
    })?;
    if metadata.is_file() {
        return Ok(vec![Listed { path: path.display().to_string(), bytes: metadata.len() }]);
    }
    let mut entries = tokio::fs::read_dir(path).await?;
    let mut files = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_data_file(name) {
            continue;
        }
        let entry_path = entry.path();
        let metadata = tokio::fs::metadata(&entry_path).await?;
        if metadata.is_file() {
            files.push(Listed { path: entry_path.display().to_string(), bytes: metadata.len() });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// A local Parquet file, its reads counted. Ranges of [`MAP_AT_LEAST`] bytes or more (column
/// chunks) are memory-mapped, so the decoder reads the page cache's pages in place; shorter
/// ones are read with positional reads (`pread`) on a blocking thread straight into the buffer
/// handed to the decoder. (An async `tokio::fs::File` copies every read twice, through its own
/// buffer: reading a 2.3 GB lake was a quarter of an export's CPU.)
struct LocalFile {
    file: Arc<std::fs::File>,
    size: u64,
    stores: Arc<Stores>,
}

/// Ranges of a local file at least this long are memory-mapped instead of read: the decoder
/// then reads the page cache's own pages, with no copy into a fresh buffer (whose pages the
/// kernel would zero first); shorter ones (footers, small chunks) are read.
pub const MAP_AT_LEAST: u64 = 1024 * 1024;

impl LocalFile {
    /// Reads `ranges` on one blocking thread, in order: long ones mapped, short ones read.
    async fn read(&self, ranges: Vec<Range<u64>>) -> parquet::errors::Result<Vec<Bytes>> {
        let (file, size) = (self.file.clone(), self.size);
        let read = tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            ranges
                .into_iter()
                .map(|range| {
                    let len = usize::try_from(range.end.saturating_sub(range.start)).unwrap_or(0);
                    if range.end > size {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("bytes {}..{} of a {size}-byte file", range.start, range.end),
                        ));
                    }
                    if range.end - range.start >= MAP_AT_LEAST {
                        return map(&file, range.start, len);
                    }
                    let mut buffer = vec![0u8; len];
                    file.read_exact_at(&mut buffer, range.start)?;
                    Ok(Bytes::from(buffer))
                })
                .collect::<std::io::Result<Vec<Bytes>>>()
        })
        .await
        .map_err(|e| ParquetError::External(Box::new(e)))?;
        let chunks = read.map_err(|e| match e.kind() {
            // The file is shorter than its metadata says: corrupt, as the Parquet reader says.
            std::io::ErrorKind::UnexpectedEof => ParquetError::EOF(format!("a read past the end of the file: {e}")),
            _ => external(LakeError::Io(e)),
        })?;
        for chunk in &chunks {
            self.stores.counters.got(chunk.len());
        }
        Ok(chunks)
    }
}

/// `len` bytes of `file` from `offset`, memory-mapped (read-only, private); the mapping lives
/// as long as the returned bytes.
fn map(file: &std::fs::File, offset: u64, len: usize) -> std::io::Result<Bytes> {
    // SAFETY: the mapping is read-only and private, and lake files are immutable while a run
    // reads them (the plan fixed each file's size, checked when it was opened); a file
    // truncated under a running export would fault the reading thread, as it would corrupt any
    // reader. The range lies inside the file (checked by the caller against its size).
    #[allow(unsafe_code)]
    let mapped = unsafe { memmap2::MmapOptions::new().offset(offset).len(len).map(file)? };
    // Read front to back once: let the kernel read ahead.
    let _ = mapped.advise(memmap2::Advice::Sequential);
    Ok(Bytes::from_owner(mapped))
}

impl AsyncFileReader for LocalFile {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move { Ok(self.read(vec![range]).await?.pop().unwrap_or_default()) }.boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        self.read(ranges).boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            footer(self, size, options).await
        }
        .boxed()
    }
}

/// One S3 object read by ranged GETs.
struct S3File {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    /// The size listed at plan time: the footer is read from there, and a GET past it fails.
    size: u64,
    stores: Arc<Stores>,
}

impl S3File {
    /// One ranged GET, its size checked.
    async fn get(&self, range: Range<u64>) -> parquet::errors::Result<Bytes> {
        if range.end > self.size || range.start >= range.end {
            return Err(ParquetError::General(format!(
                "s3://{}/{}: bytes {}..{} are outside the {} bytes listed",
                self.bucket, self.key, range.start, range.end, self.size
            )));
        }
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await
            .map_err(|e| external(storage("GetObject", &self.bucket, &self.key, e)))?;
        let bytes = object.body.collect().await.map_err(|e| {
            external(LakeError::S3(Box::new(S3Error {
                operation: "GetObject",
                bucket: self.bucket.clone(),
                key: self.key.clone(),
                code: None,
                status: None,
                retryable: true,
                message: format!("reading the body: {e}"),
            })))
        })?;
        let bytes = bytes.into_bytes();
        if bytes.len() as u64 != range.end - range.start {
            return Err(external(LakeError::Changed { listed: self.size, now: bytes.len() as u64 }));
        }
        self.stores.counters.got(bytes.len());
        Ok(bytes)
    }
}

impl AsyncFileReader for S3File {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.get(range).boxed()
    }

    /// The column chunks of a row group, in as few GETs as [`COALESCE_GAP`] allows, a few at
    /// once.
    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            let merged = coalesce(&ranges, COALESCE_GAP);
            let this = &*self;
            let fetched: Vec<Bytes> = futures::stream::iter(merged.iter().cloned().map(|r| this.get(r)))
                .buffered(GETS_IN_FLIGHT)
                .try_collect()
                .await?;
            Ok(ranges
                .iter()
                .map(|range| {
                    if range.start >= range.end {
                        return Bytes::new();
                    }
                    // The merged range holding this one (merged ranges are sorted, disjoint).
                    let i = merged.partition_point(|m| m.end < range.end);
                    let start = (range.start - merged[i].start) as usize;
                    fetched[i].slice(start..start + (range.end - range.start) as usize)
                })
                .collect())
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            footer(self, size, options).await
        }
        .boxed()
    }
}

/// A file's Parquet metadata, read from its last [`FOOTER_PREFETCH`] bytes (and once more when
/// the metadata is larger).
async fn footer<F: AsyncFileReader>(
    file: &mut F,
    size: u64,
    options: Option<&ArrowReaderOptions>,
) -> parquet::errors::Result<Arc<ParquetMetaData>> {
    let reader =
        ParquetMetaDataReader::new().with_arrow_reader_options(options).with_prefetch_hint(Some(FOOTER_PREFETCH));
    Ok(Arc::new(reader.load_and_finish(file, size).await?))
}

/// `ranges` merged where they overlap or lie less than `gap` apart, sorted.
fn coalesce(ranges: &[Range<u64>], gap: u64) -> Vec<Range<u64>> {
    let mut sorted: Vec<Range<u64>> = ranges.iter().filter(|r| r.start < r.end).cloned().collect();
    sorted.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(sorted.len());
    for range in sorted {
        match merged.last_mut() {
            Some(last) if range.start <= last.end.saturating_add(gap) => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    merged
}

/// A lake error carried through the Parquet reader, recovered by [`LakeError::from`].
fn external(error: LakeError) -> ParquetError {
    ParquetError::External(Box::new(error))
}

#[cfg(test)]
mod tests {
    use super::coalesce;

    #[test]
    fn near_ranges_merge_and_far_ones_do_not() {
        assert_eq!(coalesce(&[0..10, 12..20, 100..110], 5), [0..20, 100..110]);
        assert_eq!(coalesce(&[100..110, 0..10, 5..50], 0), [0..50, 100..110]);
        assert_eq!(coalesce(&[0..10, 10..10, 20..30], 10), vec![0..30]);
        assert!(coalesce(&[], 10).is_empty());
    }
}
