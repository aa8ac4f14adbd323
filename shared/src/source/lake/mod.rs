//! The Parquet "lake" source: a table is a folder of Parquet files (`<root>/<table>/*.parquet`)
//! holding the rows of every tenant, or one folder per tenant (`{tenant}` in the table's
//! path), in a local folder or an `s3://bucket/prefix` of our own account (`store.rs`).
//!
//! Reading one tenant costs what that tenant's rows cost, not what the table costs: row groups
//! whose min/max statistics of the tenant column exclude the tenant are never fetched, and
//! inside the remaining row groups a row filter decodes the other columns only for the rows
//! that belong to the tenant. A table is planned once ([`Source::plan`]): listed, each file's
//! footer read, and cut into slices of contiguous (file, row group) units; each slice's bounds
//! name its files (with their sizes) and row groups, so an export reads exactly those, never
//! lists, and the slices together hold every row of the tenant once.
//!
//! This source must never load a whole file or table into memory (it streams bounded batches
//! through Parquet's async reader), never yield a row whose tenant column differs from the
//! requested tenant, and never start streaming before the errors that can be found up front
//! (missing folder or column, no files, differing schemas, a tenant value the tenant column
//! cannot hold) have been reported.

mod store;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{Array, ArrayRef, Scalar, StringArray};
use arrow::compute::kernels::cast::{CastOptions, cast_with_options};
use arrow::compute::kernels::cmp::{eq, gt, lt};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use futures::{StreamExt, TryStreamExt, stream};
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, RowFilter};
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::errors::ParquetError;

pub use store::{FOOTER_PREFETCH, ReadStats};
use store::{Listed, Stores};

use super::{BatchStream, Bounds, FilePart, Source, TableRequest, TableStream};
use crate::config::AwsConfig;
use crate::increment::{HighWater, Watermark, WatermarkKind, Window, columns};
use crate::sink::S3Error;
use crate::{Error, Result};

/// Rows per batch unless [`LakeSource::with_batch_size`] says otherwise.
pub const DEFAULT_BATCH_ROWS: usize = 16_384;

/// Where a table path names the tenant's own folder (Hive-style partitions):
/// `s3://lake/events/tenant_id={tenant}/`.
pub const TENANT_PLACEHOLDER: &str = "{tenant}";

/// Why a lake table could not be read. Carried as the `source` of [`Error::Source`], whose
/// `table` and `location` name the table and the folder or file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LakeError {
    /// The table's folder (or file) does not exist.
    #[error("table folder does not exist")]
    MissingTable,
    /// The table's folder holds no `*.parquet` file.
    #[error("no .parquet file in the table folder")]
    NoFiles,
    /// A requested column, or the tenant column, is not in the table.
    #[error("column {column:?} is not in the table (columns: {available})")]
    MissingColumn {
        /// The column asked for.
        column: String,
        /// The table's columns, comma separated.
        available: String,
    },
    /// A column was requested twice.
    #[error("column {column:?} is requested twice")]
    DuplicateColumn {
        /// The repeated column.
        column: String,
    },
    /// The files of one table do not share one schema.
    #[error("{file} has a different schema than {first}: {difference}")]
    SchemaMismatch {
        /// The file that differs.
        file: String,
        /// The first file of the folder, whose schema is the table's.
        first: String,
        /// What differs.
        difference: String,
    },
    /// The tenant value cannot be compared with the tenant column.
    #[error("tenant {tenant:?} cannot be matched against tenant column {column:?} of type {data_type}: {reason}")]
    Tenant {
        /// The requested tenant.
        tenant: String,
        /// The tenant column.
        column: String,
        /// Its type.
        data_type: String,
        /// Why the tenant cannot be matched.
        reason: String,
    },
    /// The watermark column cannot be one, or its values cannot be read as one.
    #[error("watermark column {column:?}: {reason}")]
    Watermark {
        /// The watermark column.
        column: String,
        /// What is wrong.
        reason: String,
    },
    /// The tenant cannot name a folder of a tenant-partitioned table path.
    #[error(
        "tenant {tenant:?} cannot be put into the table path {path:?}: a tenant in a path must be non-empty, not \".\" or \"..\", and hold no '/' or '\\'"
    )]
    TenantPath {
        /// The tenant.
        tenant: String,
        /// The table path with its `{tenant}` placeholder.
        path: String,
    },
    /// The planned bounds cannot be read: not planned by a lake source, a file outside the
    /// table's folder, or a row group the file does not have.
    #[error("planned bounds: {0}")]
    Bounds(String),
    /// A file's size differs from the size listed when the run was planned: it was rewritten.
    #[error("the file changed since the run was planned ({listed} bytes listed, {now} now); plan the run again")]
    Changed {
        /// Size at plan time.
        listed: u64,
        /// Size now.
        now: u64,
    },
    /// Listing the folder or opening a file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// An S3 request failed (after the SDK's retries).
    #[error(
        "{operation} on s3://{bucket}/{key}: {message}{hint}",
        operation = .0.operation, bucket = .0.bucket, key = .0.key, message = .0.message,
        hint = if .0.code.as_deref() == Some("AccessDenied") || .0.status == Some(403) {
            "; our execution role needs s3:ListBucket and s3:GetObject on the lake's prefix (template parameters SourceBucketArn and SourcePrefix)"
        } else { "" }
    )]
    S3(Box<S3Error>),
    /// The Parquet reader failed (corrupt file, unsupported encoding, ...).
    #[error(transparent)]
    Parquet(ParquetError),
    /// An Arrow kernel failed.
    #[error(transparent)]
    Arrow(#[from] ArrowError),
}

impl From<ParquetError> for LakeError {
    /// A storage error raised inside the Parquet reader comes back out as itself.
    fn from(error: ParquetError) -> Self {
        match error {
            ParquetError::External(inner) => match inner.downcast::<LakeError>() {
                Ok(lake) => *lake,
                Err(other) => LakeError::Parquet(ParquetError::External(other)),
            },
            other => LakeError::Parquet(other),
        }
    }
}

impl LakeError {
    /// Whether reading the table again may succeed: an S3 request that failed for a
    /// transient reason (throttling, a timeout, a server error) or an I/O error other than a
    /// missing file, a refused permission or invalid data (a storage hiccup). A missing table,
    /// column or file, mismatched schemas, a tenant that cannot match, bounds that cannot be
    /// read, a file changed since the plan, and a Parquet or Arrow failure (a corrupt file)
    /// fail the same way every time.
    pub fn is_retryable(&self) -> bool {
        match self {
            LakeError::Io(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::InvalidData
                    | std::io::ErrorKind::InvalidInput
            ),
            LakeError::S3(e) => e.retryable,
            LakeError::MissingTable
            | LakeError::NoFiles
            | LakeError::MissingColumn { .. }
            | LakeError::DuplicateColumn { .. }
            | LakeError::SchemaMismatch { .. }
            | LakeError::Tenant { .. }
            | LakeError::TenantPath { .. }
            | LakeError::Watermark { .. }
            | LakeError::Bounds(_)
            | LakeError::Changed { .. }
            | LakeError::Parquet(_)
            | LakeError::Arrow(_) => false,
        }
    }
}

/// A Parquet lake: one folder of Parquet files per table, rows of all tenants mixed (ideally
/// clustered by tenant, so statistics let whole row groups be skipped), or one folder per
/// tenant (`{tenant}` in the table's path), in local folders or S3 prefixes.
#[derive(Debug, Clone)]
pub struct LakeSource {
    root: String,
    tables: BTreeMap<String, String>,
    batch_rows: usize,
    row_groups_read: Arc<AtomicU64>,
    stores: Arc<Stores>,
    every_row: bool,
    /// The scan a high-water read made, kept for the plan of the same table and tenant that
    /// follows it (so a table with a watermark is listed and its footers read once per plan).
    kept: Arc<std::sync::Mutex<Option<(ScanKey, Scan)>>>,
}

/// What a scan depends on: the table, the tenant and its column.
type ScanKey = (String, String, String);

fn scan_key(request: &TableRequest) -> ScanKey {
    (request.table.clone(), request.tenant.clone(), request.tenant_column.clone())
}

impl LakeSource {
    /// A lake whose table `t` is the folder `<root>/<t>`; `root` is a local folder or an
    /// `s3://bucket/prefix` (read with the default credential chain; see [`LakeSource::with_s3`]).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LakeSource {
            root: root.into().display().to_string(),
            tables: BTreeMap::new(),
            batch_rows: DEFAULT_BATCH_ROWS,
            row_groups_read: Arc::default(),
            stores: Arc::new(Stores::new(AwsConfig::default())),
            every_row: false,
            kept: Arc::default(),
        }
    }

    /// Reads every row of a table, whatever its tenant column holds (or without one): what
    /// `byob export` does with a Parquet file of any origin. Never for a dump.
    pub fn every_row(mut self) -> Self {
        self.every_row = true;
        self
    }

    /// Reads `table` from `path` instead of `<root>/<table>`: a folder (or S3 prefix) of
    /// Parquet files, or a single Parquet file. A `{tenant}` in the path is replaced by the
    /// requested tenant, so a tenant's export reads only its own folder.
    pub fn with_table_path(mut self, table: &str, path: impl Into<PathBuf>) -> Self {
        self.tables.insert(table.to_string(), path.into().display().to_string());
        self
    }

    /// Reads S3 through `client` (its credentials, region and endpoint).
    pub fn with_s3(mut self, client: aws_sdk_s3::Client) -> Self {
        self.stores = Arc::new(Stores::with_client(client));
        self
    }

    /// Yields batches of at most `rows` rows (at least 1; default [`DEFAULT_BATCH_ROWS`]).
    pub fn with_batch_size(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    /// Where `table` is read from, `{tenant}` not yet replaced.
    pub fn table_path(&self, table: &str) -> String {
        self.tables.get(table).cloned().unwrap_or_else(|| join(&self.root, table))
    }

    /// How many row groups this source (and its clones) has started to read since it was
    /// made: the measure of how much statistics-based skipping saved.
    pub fn row_groups_read(&self) -> u64 {
        self.row_groups_read.load(Ordering::Relaxed)
    }

    /// Requests and bytes this source (and its clones) has read so far.
    pub fn read_stats(&self) -> ReadStats {
        self.stores.counters.snapshot()
    }

    /// Where the tenant's rows of `table` are: the table path with `{tenant}` replaced, and
    /// whether it was (then the folder holds only that tenant's rows).
    fn location(&self, request: &TableRequest) -> std::result::Result<(String, bool), LakeError> {
        let path = self.table_path(&request.table);
        if !path.contains(TENANT_PLACEHOLDER) {
            return Ok((path, false));
        }
        let tenant = &request.tenant;
        if tenant.is_empty() || tenant == "." || tenant == ".." || tenant.contains(['/', '\\', '\0']) {
            return Err(LakeError::TenantPath { tenant: tenant.clone(), path });
        }
        Ok((path.replace(TENANT_PLACEHOLDER, tenant), true))
    }

    /// Lists the table's files, checks their schemas and the tenant column, and finds the
    /// (file, row group) units that may hold the tenant's rows.
    async fn scan(&self, request: &TableRequest) -> Result<Scan> {
        let (location, partitioned) =
            self.location(request).map_err(|e| self.fail(request, &self.table_path(&request.table), e))?;
        let fail = |at: &str, e: LakeError| source_error(&request.table, at, e);
        let listed = self.stores.list(&location).await.map_err(|e| fail(&location, e))?;
        if listed.is_empty() {
            return Err(fail(&location, LakeError::NoFiles));
        }
        let files = self.footers(listed).await.map_err(|(at, e)| fail(&at, e))?;
        let table = Table::check(request, &files, partitioned, self.every_row).map_err(|(at, e)| fail(&at, e))?;

        let mut units = Vec::new();
        for (file_index, file) in files.iter().enumerate() {
            let row_groups = file.metadata.metadata().row_groups();
            let may_hold = match table.tenant_index {
                None => vec![true; row_groups.len()],
                Some(_) => may_hold_tenant(file, &request.tenant_column, &table.tenant).unwrap_or_else(|e| {
                    // Statistics only save work; without them every row group is read and filtered.
                    tracing::debug!(file = %file.listed.path, error = %e, "tenant column statistics unusable");
                    vec![true; row_groups.len()]
                }),
            };
            for (row_group, meta) in row_groups.iter().enumerate() {
                let rows = u64::try_from(meta.num_rows()).unwrap_or(0);
                if rows > 0 && may_hold[row_group] {
                    units.push(Unit { file: file_index, row_group, rows });
                }
            }
        }
        Ok(Scan { location, files, table, units })
    }

    /// The scan of `request`'s table for its tenant, units in its window only: the one a
    /// high-water read of the same table and tenant kept, else a new one.
    async fn windowed_scan(&self, request: &TableRequest) -> Result<Scan> {
        let kept = self.kept.lock().ok().and_then(|mut kept| kept.take());
        let mut scan = match kept {
            Some((key, scan)) if key == scan_key(request) => scan,
            _ => self.scan(request).await?,
        };
        if let Some(window) = &request.window {
            let watermark = WatermarkRead::new(&scan.table.schema, window)
                .map_err(|e| source_error(&request.table, &scan.files[0].listed.path, e))?;
            let overlaps: Vec<Vec<bool>> = scan.files.iter().map(|file| watermark.overlaps(file)).collect();
            scan.units.retain(|unit| overlaps[unit.file][unit.row_group]);
        }
        Ok(scan)
    }

    /// Each file's footer, read concurrently (a few at a time).
    async fn footers(&self, listed: Vec<Listed>) -> std::result::Result<Vec<LakeFile>, (String, LakeError)> {
        stream::iter(listed)
            .map(|listed| {
                let stores = self.stores.clone();
                async move {
                    match stores.metadata(&listed).await {
                        Ok(metadata) => Ok(LakeFile { listed, metadata }),
                        Err(e) => Err((listed.path, e)),
                    }
                }
            })
            .buffered(8)
            .try_collect()
            .await
    }

    fn fail(&self, request: &TableRequest, at: &str, e: LakeError) -> Error {
        source_error(&request.table, at, e)
    }

    /// The planned parts' files, checked: inside the table's location, row groups they have.
    async fn planned(
        &self,
        request: &TableRequest,
        parts: &[FilePart],
    ) -> Result<(String, Vec<LakeFile>, Table, Vec<(usize, Vec<usize>)>)> {
        let (location, partitioned) =
            self.location(request).map_err(|e| self.fail(request, &self.table_path(&request.table), e))?;
        let fail = |at: &str, e: LakeError| source_error(&request.table, at, e);
        if parts.is_empty() {
            return Err(fail(&location, LakeError::Bounds("no file listed".into())));
        }
        let folder = if location.ends_with('/') { location.clone() } else { format!("{location}/") };
        let mut listed = Vec::with_capacity(parts.len());
        for part in parts {
            let inside = part.path == location
                || part.path.strip_prefix(&folder).is_some_and(|name| !name.is_empty() && !name.contains('/'));
            if !inside {
                return Err(fail(
                    &part.path,
                    LakeError::Bounds(format!("the file is not in the table's folder {location}")),
                ));
            }
            listed.push(Listed { path: part.path.clone(), bytes: part.bytes });
        }
        let files = self.footers(listed).await.map_err(|(at, e)| fail(&at, e))?;
        let table = Table::check(request, &files, partitioned, self.every_row).map_err(|(at, e)| fail(&at, e))?;
        let mut groups = Vec::with_capacity(parts.len());
        for (index, (part, file)) in parts.iter().zip(&files).enumerate() {
            let have = file.metadata.metadata().num_row_groups();
            let ascending = part.row_groups.windows(2).all(|w| w[0] < w[1]);
            if !ascending || part.row_groups.last().is_some_and(|&last| last >= have) {
                let e = LakeError::Bounds(format!(
                    "row groups {:?} are not ascending row groups of a file that has {have}",
                    part.row_groups
                ));
                return Err(fail(&part.path, e));
            }
            if !part.row_groups.is_empty() {
                groups.push((index, part.row_groups.clone()));
            }
        }
        Ok((location, files, table, groups))
    }
}

/// `root/name`, for local paths and S3 prefixes alike.
fn join(root: &str, name: &str) -> String {
    if root.is_empty() {
        name.to_owned()
    } else if root.ends_with('/') {
        format!("{root}{name}")
    } else {
        format!("{root}/{name}")
    }
}

#[async_trait::async_trait]
impl Source for LakeSource {
    /// Estimates the tenant's rows as the rows of the row groups that may hold it, and splits
    /// them into `ceil(rows / target)` slices of contiguous row groups, at most one per such
    /// row group, at least 1. Every slice lists its files with their sizes, so exports never
    /// list the folder again.
    async fn plan(&self, request: &TableRequest, target_rows_per_slice: u64) -> Result<Vec<Bounds>> {
        let scan = self.windowed_scan(request).await?;
        let listed: Vec<&Listed> = scan.files.iter().map(|f| &f.listed).collect();
        Ok(cut(&scan.units, &listed, target_rows_per_slice))
    }

    fn bytes_read(&self) -> Option<u64> {
        Some(self.read_stats().bytes)
    }

    /// The tenant's largest watermark: row groups that may hold the tenant, largest statistic
    /// first, each read (watermark column only, tenant-filtered) until the next one's statistics
    /// cannot beat what was found; a row group without statistics is always read.
    async fn high_water(&self, request: &TableRequest, column: &str) -> Result<HighWater> {
        let request = TableRequest { window: None, ..request.clone() };
        let scan = self.scan(&request).await?;
        let fail = |e: LakeError| source_error(&request.table, &scan.location, e);
        let index = column_index(&scan.table.schema, column).map_err(fail)?;
        let kind = watermark_kind(&scan.table.schema, index).map_err(fail)?;
        let exported = projection(&request, &scan.table.schema).map_err(fail)?;
        let exported = scan.table.schema.project(&exported).map_err(|e| fail(e.into()))?;
        let columns = crate::schema::describe(&exported)
            .map_err(|reason| fail(LakeError::Watermark { column: column.to_owned(), reason }))?;
        // Each unit's largest watermark by statistics (None: unknown, read it first).
        let mut candidates: Vec<(Option<Watermark>, usize, usize)> = Vec::with_capacity(scan.units.len());
        let mut stats: BTreeMap<usize, Vec<Option<Watermark>>> = BTreeMap::new();
        for unit in &scan.units {
            let file = &scan.files[unit.file];
            let maxes = stats.entry(unit.file).or_insert_with(|| {
                row_group_range(file, column, kind).map(|(_, max)| max).unwrap_or_else(|e| {
                    tracing::debug!(file = %file.listed.path, error = %e, "watermark statistics unusable");
                    vec![None; file.metadata.metadata().num_row_groups()]
                })
            });
            candidates.push((maxes[unit.row_group], unit.file, unit.row_group));
        }
        // Unknown first, then the largest statistics.
        candidates.sort_by(|a, b| match (a.0, b.0) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => y.cmp(&x),
        });
        let schema = read_types(&Arc::new(scan.table.schema.project(&[index]).map_err(|e| fail(e.into()))?));
        let plan = Arc::new(ReadPlan {
            table: request.table.clone(),
            schema,
            read: vec![index],
            reorder: vec![0],
            tenant_index: scan.table.tenant_index,
            tenant: read_tenant(&scan.table.tenant).map_err(fail)?,
            watermark: None,
            batch_rows: self.batch_rows,
            row_groups_read: self.row_groups_read.clone(),
            stores: self.stores.clone(),
        });
        let mut best: Option<Watermark> = None;
        for (stat, file, row_group) in candidates {
            if let (Some(stat), Some(found)) = (stat, best)
                && stat <= found
            {
                break;
            }
            let mut batches = plan.clone().open_file(scan.files[file].clone(), vec![row_group]).await?;
            while let Some(batch) = batches.next().await {
                let found = columns::max(batch?.column(0), kind)
                    .map_err(|e| fail(LakeError::Watermark { column: column.to_owned(), reason: e.to_string() }))?;
                best = best.max(found);
            }
        }
        if let Ok(mut kept) = self.kept.lock() {
            *kept = Some((scan_key(&request), scan));
        }
        Ok(HighWater { kind, max: best, columns })
    }

    async fn open(&self, request: &TableRequest, bounds: &Bounds) -> Result<TableStream> {
        let (location, files, table, groups) = match bounds {
            Bounds::Whole => {
                let scan = self.windowed_scan(request).await?;
                let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
                for unit in &scan.units {
                    match groups.last_mut() {
                        Some((file, row_groups)) if *file == unit.file => row_groups.push(unit.row_group),
                        _ => groups.push((unit.file, vec![unit.row_group])),
                    }
                }
                (scan.location, scan.files, scan.table, groups)
            }
            Bounds::RowGroups { files } => self.planned(request, files).await?,
            other => {
                let e = LakeError::Bounds(format!("{other:?} were not planned by a Parquet lake source"));
                return Err(self.fail(request, &self.table_path(&request.table), e));
            }
        };
        let fail = |e: LakeError| source_error(&request.table, &location, e);

        // Output columns, in the requested order.
        let wanted = projection(request, &table.schema).map_err(fail)?;
        let schema = read_types(&Arc::new(table.schema.project(&wanted).map_err(|e| fail(e.into()))?));
        // The reader yields projected columns in file order; `reorder` puts them in ours.
        let mut read: Vec<usize> = wanted.clone();
        read.sort_unstable();
        let reorder: Vec<usize> = wanted.iter().filter_map(|i| read.binary_search(i).ok()).collect();

        let watermark = request
            .window
            .as_ref()
            .map(|window| WatermarkRead::new(&table.schema, window))
            .transpose()
            .map_err(fail)?;
        let plan = Arc::new(ReadPlan {
            table: request.table.clone(),
            schema: schema.clone(),
            read,
            reorder,
            tenant_index: table.tenant_index,
            tenant: read_tenant(&table.tenant).map_err(fail)?,
            watermark,
            batch_rows: self.batch_rows,
            row_groups_read: self.row_groups_read.clone(),
            stores: self.stores.clone(),
        });
        let batches: BatchStream = stream::iter(groups)
            .then(move |(file, row_groups)| {
                let plan = plan.clone();
                let file = files[file].clone();
                async move { plan.open_file(file, row_groups).await }
            })
            .try_flatten()
            .boxed();
        Ok(TableStream { schema, batches })
    }
}

/// The most a slice's bounds may weigh as JSON: each export task carries its bounds through Step
/// Functions, whose payloads are capped at 256 KB; a slice listing more files is cut again.
pub const MAX_BOUNDS_BYTES: usize = 64 * 1024;

/// Cuts `units` (row groups that may hold the tenant, in file order) into slices of about
/// `target` rows: `ceil(rows / target)` contiguous runs, at most one per unit, at least one,
/// and more when a slice's bounds would weigh over [`MAX_BOUNDS_BYTES`] (a slice over very
/// many small files). A slice of no unit still names the first file, for the schema.
fn cut(units: &[Unit], files: &[&Listed], target: u64) -> Vec<Bounds> {
    let rows: u64 = units.iter().map(|u| u.rows).sum();
    let most = units.len().max(1);
    let mut count = usize::try_from(rows.div_ceil(target.max(1))).unwrap_or(usize::MAX).clamp(1, most);
    loop {
        let slices: Vec<Bounds> = (0..count)
            .map(|index| {
                let run = &units[units.len() * index / count..units.len() * (index + 1) / count];
                let mut parts: Vec<FilePart> = Vec::new();
                for unit in run {
                    let file = files[unit.file];
                    match parts.last_mut() {
                        Some(part) if part.path == file.path => part.row_groups.push(unit.row_group),
                        _ => parts.push(FilePart {
                            path: file.path.clone(),
                            bytes: file.bytes,
                            row_groups: vec![unit.row_group],
                        }),
                    }
                }
                if parts.is_empty()
                    && let Some(first) = files.first()
                {
                    parts.push(FilePart { path: first.path.clone(), bytes: first.bytes, row_groups: Vec::new() });
                }
                Bounds::RowGroups { files: parts }
            })
            .collect();
        let heaviest = slices.iter().map(|b| serde_json::to_vec(b).map_or(usize::MAX, |j| j.len())).max();
        if count >= most || heaviest.is_none_or(|bytes| bytes <= MAX_BOUNDS_BYTES) {
            return slices;
        }
        count = (count * 2).min(most);
    }
}

/// What a table's files say, checked against the request.
struct Table {
    schema: SchemaRef,
    /// The tenant column's position; `None` when the files of a tenant's own folder
    /// (`{tenant}` in the path) do not hold it: every row is the tenant's.
    tenant_index: Option<usize>,
    /// The tenant as a one-element array of the tenant column's type (a string when absent).
    tenant: ArrayRef,
}

impl Table {
    /// The schema every file shares, and the tenant column in it.
    fn check(
        request: &TableRequest,
        files: &[LakeFile],
        partitioned: bool,
        every_row: bool,
    ) -> std::result::Result<Table, (String, LakeError)> {
        let first = &files[0];
        let schema = first.metadata.schema().clone();
        for file in &files[1..] {
            if let Some(difference) = schema_difference(&schema, file.metadata.schema()) {
                let e = LakeError::SchemaMismatch {
                    file: file.listed.path.clone(),
                    first: first.listed.path.clone(),
                    difference,
                };
                return Err((file.listed.path.clone(), e));
            }
        }
        let at = first.listed.path.clone();
        let tenant_index = match column_index(&schema, &request.tenant_column) {
            _ if every_row => None,
            Ok(index) => Some(index),
            Err(_) if partitioned => None,
            Err(e) => return Err((at, e)),
        };
        let tenant_type = tenant_index.map_or(&DataType::Utf8, |i| schema.field(i).data_type());
        let tenant = tenant_value(&request.tenant, &request.tenant_column, tenant_type).map_err(|e| (at, e))?;
        Ok(Table { schema, tenant_index, tenant })
    }
}

impl std::fmt::Debug for Scan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scan")
            .field("location", &self.location)
            .field("files", &self.files.len())
            .field("units", &self.units.len())
            .finish_non_exhaustive()
    }
}

/// What `scan` found: the table's files, schema, tenant column, and candidate units.
struct Scan {
    location: String,
    files: Vec<LakeFile>,
    table: Table,
    /// Row groups that may hold the tenant, in file then row-group order.
    units: Vec<Unit>,
}

#[derive(Clone)]
struct LakeFile {
    listed: Listed,
    metadata: ArrowReaderMetadata,
}

/// One row group that may hold the tenant's rows: the unit slices are cut from.
struct Unit {
    file: usize,
    row_group: usize,
    rows: u64,
}

/// Everything the stream of one slice needs, shared by its files.
struct ReadPlan {
    table: String,
    schema: SchemaRef,
    /// Root columns to read (sorted).
    read: Vec<usize>,
    /// Position in the read batch of each output column.
    reorder: Vec<usize>,
    tenant_index: Option<usize>,
    tenant: ArrayRef,
    /// Only the rows of this window (a table with a watermark).
    watermark: Option<WatermarkRead>,
    batch_rows: usize,
    row_groups_read: Arc<AtomicU64>,
    stores: Arc<Stores>,
}

impl ReadPlan {
    /// Opens `row_groups` of one file as a stream of the tenant's rows in the output schema.
    async fn open_file(self: Arc<Self>, file: LakeFile, row_groups: Vec<usize>) -> Result<BatchStream> {
        let path = file.listed.path.clone();
        let fail = |e: LakeError| source_error(&self.table, &path, e);
        let reader = self.stores.reader(&file.listed).await.map_err(fail)?;
        let parquet_schema = file.metadata.parquet_schema();
        let projection = ProjectionMask::roots(parquet_schema, self.read.iter().copied());
        self.row_groups_read.fetch_add(row_groups.len() as u64, Ordering::Relaxed);
        let options = ArrowReaderOptions::new().with_schema(read_types(file.metadata.schema()));
        let metadata =
            ArrowReaderMetadata::try_new(file.metadata.metadata().clone(), options).map_err(|e| fail(e.into()))?;
        let mut builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, metadata)
            .with_row_groups(row_groups)
            .with_projection(projection)
            .with_batch_size(self.batch_rows);
        let mut predicates: Vec<Box<dyn parquet::arrow::arrow_reader::ArrowPredicate>> = Vec::new();
        if let Some(tenant_index) = self.tenant_index {
            let tenant = self.tenant.clone();
            let predicate = ArrowPredicateFn::new(
                ProjectionMask::roots(parquet_schema, [tenant_index]),
                move |batch: RecordBatch| eq(batch.column(0), &Scalar::new(tenant.clone())),
            );
            predicates.push(Box::new(predicate));
        }
        if let Some(watermark) = &self.watermark {
            let (kind, window) = (watermark.kind, watermark.window.clone());
            let predicate = ArrowPredicateFn::new(
                ProjectionMask::roots(parquet_schema, [watermark.index]),
                move |batch: RecordBatch| columns::mask(batch.column(0), kind, &window),
            );
            predicates.push(Box::new(predicate));
        }
        if !predicates.is_empty() {
            builder = builder.with_row_filter(RowFilter::new(predicates));
        }
        let reader = builder.build().map_err(|e| fail(e.into()))?;
        let plan = self.clone();
        Ok(reader
            .map(move |batch| {
                let batch = batch.map_err(|e| source_error(&plan.table, &path, e.into()))?;
                plan.arrange(batch).map_err(|e| source_error(&plan.table, &path, e.into()))
            })
            .boxed())
    }

    /// Puts a read batch's columns into the requested order, under the output schema.
    fn arrange(&self, batch: RecordBatch) -> Result<RecordBatch, ArrowError> {
        let columns = self.reorder.iter().map(|&i| batch.column(i).clone()).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)
    }
}

fn source_error(table: &str, location: &str, error: LakeError) -> Error {
    Error::Source { table: table.to_string(), location: location.to_owned(), source: Box::new(error) }
}

fn column_index(schema: &SchemaRef, column: &str) -> Result<usize, LakeError> {
    schema.index_of(column).map_err(|_| LakeError::MissingColumn {
        column: column.to_string(),
        available: schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", "),
    })
}

/// `None` if both schemas have the same fields (names, types, nullability), else what differs.
fn schema_difference(first: &SchemaRef, other: &SchemaRef) -> Option<String> {
    if first.fields() == other.fields() {
        return None;
    }
    for (a, b) in first.fields().iter().zip(other.fields().iter()) {
        if a != b {
            return Some(format!(
                "column {:?} {}{} vs {:?} {}{}",
                a.name(),
                a.data_type(),
                if a.is_nullable() { " (nullable)" } else { "" },
                b.name(),
                b.data_type(),
                if b.is_nullable() { " (nullable)" } else { "" },
            ));
        }
    }
    Some(format!("{} columns vs {}", first.fields().len(), other.fields().len()))
}

/// `schema` as the lake is read: `Utf8` and `Binary` columns as `Utf8View` and `BinaryView`,
/// whose values stay in the pages they were read from (a plain or dictionary page) instead of
/// being copied out value by value: on a table of long unique strings that copy was most of the
/// reader's work, and the copies doubled the memory the batches held. Every encoder writes views
/// as it writes strings (a Parquet file still declares `string`), and the receipt describes both
/// as `string`.
fn read_types(schema: &SchemaRef) -> SchemaRef {
    crate::schema::retyped(schema, |data_type| match data_type {
        DataType::Utf8 => Some(DataType::Utf8View),
        DataType::Binary => Some(DataType::BinaryView),
        _ => None,
    })
}

/// The tenant value as the tenant column is read ([`read_types`]).
fn read_tenant(tenant: &ArrayRef) -> Result<ArrayRef, LakeError> {
    match tenant.data_type() {
        DataType::Utf8 => Ok(arrow::compute::cast(tenant, &DataType::Utf8View)?),
        _ => Ok(tenant.clone()),
    }
}

/// The tenant as a one-element array of the tenant column's type, so it can be compared with
/// the column's values and statistics.
fn tenant_value(tenant: &str, column: &str, data_type: &DataType) -> Result<ArrayRef, LakeError> {
    let unsupported = |reason: String| LakeError::Tenant {
        tenant: tenant.to_string(),
        column: column.to_string(),
        data_type: data_type.to_string(),
        reason,
    };
    if !(matches!(data_type, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) || data_type.is_integer()) {
        return Err(unsupported("tenant columns must be strings or integers".into()));
    }
    let text: ArrayRef = Arc::new(StringArray::from(vec![tenant]));
    let options = CastOptions { safe: false, ..CastOptions::default() };
    let value = cast_with_options(&text, data_type, &options).map_err(|e| unsupported(e.to_string()))?;
    if value.null_count() > 0 {
        return Err(unsupported("the value does not fit the column type".into()));
    }
    Ok(value)
}

/// For each row group of `file`: may it hold rows whose tenant column equals `tenant`? A row
/// group without statistics may.
fn may_hold_tenant(file: &LakeFile, column: &str, tenant: &ArrayRef) -> Result<Vec<bool>, LakeError> {
    let metadata = file.metadata.metadata();
    let converter =
        StatisticsConverter::try_new(column, file.metadata.schema(), metadata.file_metadata().schema_descr())?
            .with_column_orders(metadata.file_metadata().column_orders().map(|orders| orders.as_slice()));
    let mins = converter.row_group_mins(metadata.row_groups())?;
    let maxes = converter.row_group_maxes(metadata.row_groups())?;
    let tenant = Scalar::new(tenant.clone());
    let below = lt(&maxes, &tenant)?;
    let above = gt(&mins, &tenant)?;
    Ok((0..metadata.num_row_groups())
        .map(|i| {
            let excluded = (below.is_valid(i) && below.value(i)) || (above.is_valid(i) && above.value(i));
            !excluded
        })
        .collect())
}

/// The positions of the columns `request` exports, in its order (all without a list).
fn projection(request: &TableRequest, schema: &SchemaRef) -> std::result::Result<Vec<usize>, LakeError> {
    let Some(columns) = &request.columns else { return Ok((0..schema.fields().len()).collect()) };
    let mut indices = Vec::with_capacity(columns.len());
    for column in columns {
        let index = column_index(schema, column)?;
        if indices.contains(&index) {
            return Err(LakeError::DuplicateColumn { column: column.clone() });
        }
        indices.push(index);
    }
    Ok(indices)
}

/// A window read from a lake table: the watermark column's position and kind.
#[derive(Clone, Debug)]
struct WatermarkRead {
    index: usize,
    kind: WatermarkKind,
    window: Window,
}

impl WatermarkRead {
    fn new(schema: &SchemaRef, window: &Window) -> std::result::Result<WatermarkRead, LakeError> {
        let index = column_index(schema, &window.column)?;
        let kind = watermark_kind(schema, index)?;
        for bound in [window.after, window.through].into_iter().flatten() {
            if bound.kind() != kind {
                return Err(LakeError::Watermark {
                    column: window.column.clone(),
                    reason: format!("the plan's bound {bound} is not a {} value", kind.as_str()),
                });
            }
        }
        Ok(WatermarkRead { index, kind, window: window.clone() })
    }

    /// For each row group of `file`: may it hold rows of the window (by statistics; a row
    /// group without them may)?
    fn overlaps(&self, file: &LakeFile) -> Vec<bool> {
        let groups = file.metadata.metadata().num_row_groups();
        match row_group_range(file, &self.window.column, self.kind) {
            Ok((mins, maxes)) => {
                mins.iter().zip(&maxes).map(|(min, max)| self.window.may_overlap(*min, *max)).collect()
            }
            Err(e) => {
                tracing::debug!(file = %file.listed.path, error = %e, "watermark statistics unusable");
                vec![true; groups]
            }
        }
    }
}

/// The watermark kind of column `index`, or why it cannot be one.
fn watermark_kind(schema: &SchemaRef, index: usize) -> std::result::Result<WatermarkKind, LakeError> {
    let field = schema.field(index);
    columns::kind_of(field.data_type()).ok_or_else(|| LakeError::Watermark {
        column: field.name().clone(),
        reason: format!(
            "is {}; a watermark is an integer, timestamp or date column that grows when a row is written",
            field.data_type()
        ),
    })
}

/// Each row group's smallest and largest watermark by statistics (`None`: unknown).
type Ranges = (Vec<Option<Watermark>>, Vec<Option<Watermark>>);

fn row_group_range(file: &LakeFile, column: &str, kind: WatermarkKind) -> std::result::Result<Ranges, LakeError> {
    let metadata = file.metadata.metadata();
    let converter =
        StatisticsConverter::try_new(column, file.metadata.schema(), metadata.file_metadata().schema_descr())?
            .with_column_orders(metadata.file_metadata().column_orders().map(|orders| orders.as_slice()));
    let as_watermarks = |array: ArrayRef| -> std::result::Result<Vec<Option<Watermark>>, LakeError> {
        Ok(columns::values(&array)?.iter().map(|v| v.map(|v| columns::watermark(kind, v))).collect())
    };
    let mins = as_watermarks(converter.row_group_mins(metadata.row_groups())?)?;
    let maxes = as_watermarks(converter.row_group_maxes(metadata.row_groups())?)?;
    Ok((mins, maxes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, Int64Array};
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn tenant_values_take_the_tenant_column_type() {
        for data_type in [DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View] {
            let value = tenant_value("acme", "tenant_id", &data_type).unwrap();
            assert_eq!(value.data_type(), &data_type);
            assert_eq!(value.len(), 1);
        }
        let value = tenant_value("42", "tenant_id", &DataType::Int64).unwrap();
        assert_eq!(value.as_any().downcast_ref::<Int64Array>().unwrap().value(0), 42);
        let value = tenant_value("-7", "tenant_id", &DataType::Int32).unwrap();
        assert_eq!(value.as_any().downcast_ref::<Int32Array>().unwrap().value(0), -7);
    }

    #[test]
    fn tenant_values_the_column_cannot_hold_are_clear_errors() {
        for (tenant, data_type) in [
            ("acme", DataType::Int64),
            ("300", DataType::UInt8),
            ("-1", DataType::UInt32),
            ("1.5", DataType::Int32),
            ("acme", DataType::Float64),
            ("acme", DataType::Boolean),
        ] {
            let error = tenant_value(tenant, "tenant_id", &data_type).unwrap_err().to_string();
            assert!(error.contains("tenant_id") && error.contains(tenant), "{error}");
        }
    }

    #[test]
    fn schema_differences_name_the_column() {
        let a = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("n", DataType::Int32, true),
        ]));
        let b = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("n", DataType::Int64, true),
        ]));
        let c = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)]));
        assert_eq!(schema_difference(&a, &a.clone()), None);
        assert!(schema_difference(&a, &b).unwrap().contains("\"n\" Int32 (nullable) vs \"n\" Int64"));
        assert_eq!(schema_difference(&a, &c).unwrap(), "2 columns vs 1");
    }

    /// A 1 TB table: 8,000 files of 128 MB, each 8 row groups of 78,125 rows (5 billion rows).
    fn terabyte() -> (Vec<Unit>, Vec<Listed>) {
        let files: Vec<Listed> = (0..8_000)
            .map(|i| Listed {
                path: format!("s3://platform-lake/lake/events/year=2024/month=05/part-{i:05}-7c1e9a52-3f0b-4d8e-9a61-1f2e3d4c5b6a.zstd.parquet"),
                bytes: 128 << 20,
            })
            .collect();
        let units =
            (0..8_000).flat_map(|file| (0..8).map(move |row_group| Unit { file, row_group, rows: 78_125 })).collect();
        (units, files)
    }

    #[test]
    fn a_terabyte_table_cuts_into_slices_of_the_target_rows_whose_bounds_fit_a_task() {
        let (units, files) = terabyte();
        let listed: Vec<&Listed> = files.iter().collect();
        // The default target: 5,000,000 rows per slice -> 1,000 slices of 64 row groups (8 files).
        let slices = cut(&units, &listed, 5_000_000);
        assert_eq!(slices.len(), 1_000);
        let mut seen = 0;
        for bounds in &slices {
            let Bounds::RowGroups { files } = bounds else { panic!("{bounds:?}") };
            assert_eq!(files.iter().map(|f| f.row_groups.len()).sum::<usize>(), 64);
            seen += files.iter().map(|f| f.row_groups.len()).sum::<usize>();
            assert!(serde_json::to_vec(bounds).unwrap().len() < 2_000);
        }
        assert_eq!(seen, units.len(), "every row group in exactly one slice");
        // One slice for the whole terabyte would list 8,000 files (over 1 MB of bounds): the
        // cut goes on until every slice's bounds fit.
        let slices = cut(&units, &listed, u64::MAX);
        assert!(slices.len() > 1);
        assert!(slices.iter().all(|b| serde_json::to_vec(b).unwrap().len() <= MAX_BOUNDS_BYTES));
        // A tenant with no row group still gets one slice naming a file (the schema).
        let empty = cut(&[], &listed, 5_000_000);
        assert!(
            matches!(&empty[..], [Bounds::RowGroups { files }] if files.len() == 1 && files[0].row_groups.is_empty())
        );
    }

    #[test]
    fn missing_columns_list_what_is_there() {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)]));
        let error = column_index(&schema, "nope").unwrap_err().to_string();
        assert_eq!(error, "column \"nope\" is not in the table (columns: id)");
    }
}
