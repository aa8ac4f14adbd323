//! The Parquet "lake" source: a table is a folder of Parquet files (`<root>/<table>/*.parquet`)
//! holding the rows of every tenant.
//!
//! Reading one tenant costs what that tenant's rows cost, not what the table costs: row groups
//! whose min/max statistics of the tenant column exclude the tenant are never fetched, and
//! inside the remaining row groups a row filter decodes the other columns only for the rows
//! that belong to the tenant. A table is split into slices along (file, row group) units, so
//! slices are deterministic, contiguous and together hold every row of the tenant once.
//!
//! This source must never load a whole file or table into memory (it streams bounded batches
//! through Parquet's async reader), never yield a row whose tenant column differs from the
//! requested tenant, and never start streaming before the errors that can be found up front
//! (missing folder or column, no files, differing schemas, a tenant value the tenant column
//! cannot hold) have been reported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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

use super::{BatchStream, Slice, Source, TableRequest, TableStream};
use crate::{Error, Result};

/// Rows per batch unless [`LakeSource::with_batch_size`] says otherwise.
pub const DEFAULT_BATCH_ROWS: usize = 16_384;

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
    /// The slice does not exist.
    #[error("slice {index} of {count} does not exist")]
    InvalidSlice {
        /// Requested index.
        index: u32,
        /// Requested count.
        count: u32,
    },
    /// Listing the folder or opening a file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The Parquet reader failed (corrupt file, unsupported encoding, ...).
    #[error(transparent)]
    Parquet(#[from] ParquetError),
    /// An Arrow kernel failed.
    #[error(transparent)]
    Arrow(#[from] ArrowError),
}

impl LakeError {
    /// Whether reading the table again may succeed: only an I/O error other than a missing
    /// file, a refused permission or invalid data (a storage hiccup). A missing table, column
    /// or file, mismatched schemas, a tenant that cannot match, a slice that does not exist,
    /// and a Parquet or Arrow failure (a corrupt file) fail the same way every time.
    pub fn is_retryable(&self) -> bool {
        match self {
            LakeError::Io(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::InvalidData
                    | std::io::ErrorKind::InvalidInput
            ),
            LakeError::MissingTable
            | LakeError::NoFiles
            | LakeError::MissingColumn { .. }
            | LakeError::DuplicateColumn { .. }
            | LakeError::SchemaMismatch { .. }
            | LakeError::Tenant { .. }
            | LakeError::InvalidSlice { .. }
            | LakeError::Parquet(_)
            | LakeError::Arrow(_) => false,
        }
    }
}

/// A Parquet lake: one folder of Parquet files per table, rows of all tenants mixed (ideally
/// clustered by tenant, so statistics let whole row groups be skipped).
#[derive(Debug, Clone)]
pub struct LakeSource {
    root: PathBuf,
    tables: BTreeMap<String, PathBuf>,
    batch_rows: usize,
    row_groups_read: Arc<AtomicU64>,
}

impl LakeSource {
    /// A lake whose table `t` is the folder `<root>/<t>`.
    pub fn new(root: PathBuf) -> Self {
        LakeSource { root, tables: BTreeMap::new(), batch_rows: DEFAULT_BATCH_ROWS, row_groups_read: Arc::default() }
    }

    /// Reads `table` from `path` instead of `<root>/<table>`: a folder of Parquet files, or
    /// a single Parquet file.
    pub fn with_table_path(mut self, table: &str, path: PathBuf) -> Self {
        self.tables.insert(table.to_string(), path);
        self
    }

    /// Yields batches of at most `rows` rows (at least 1; default [`DEFAULT_BATCH_ROWS`]).
    pub fn with_batch_size(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    /// Where `table` is read from.
    pub fn table_path(&self, table: &str) -> PathBuf {
        self.tables.get(table).cloned().unwrap_or_else(|| self.root.join(table))
    }

    /// How many row groups this source (and its clones) has started to read since it was
    /// made: the measure of how much statistics-based skipping saved.
    pub fn row_groups_read(&self) -> u64 {
        self.row_groups_read.load(Ordering::Relaxed)
    }

    /// Lists the table's files, checks their schemas and the tenant column, and finds the
    /// (file, row group) units that may hold the tenant's rows.
    async fn scan(&self, request: &TableRequest) -> Result<Scan> {
        let path = self.table_path(&request.table);
        let fail = |location: &Path, e: LakeError| source_error(&request.table, location, e);

        let paths = list_parquet_files(&path).await.map_err(|e| fail(&path, e))?;
        let mut files = Vec::with_capacity(paths.len());
        for file_path in paths {
            let metadata = load_metadata(&file_path).await.map_err(|e| fail(&file_path, e))?;
            files.push(LakeFile { path: file_path, metadata });
        }
        let Some(first) = files.first() else {
            return Err(fail(&path, LakeError::NoFiles));
        };
        let schema = first.metadata.schema().clone();
        for file in &files[1..] {
            if let Some(difference) = schema_difference(&schema, file.metadata.schema()) {
                let e = LakeError::SchemaMismatch {
                    file: file.path.display().to_string(),
                    first: first.path.display().to_string(),
                    difference,
                };
                return Err(fail(&file.path, e));
            }
        }

        let tenant_index = column_index(&schema, &request.tenant_column).map_err(|e| fail(&path, e))?;
        let tenant_type = schema.field(tenant_index).data_type();
        let tenant = tenant_value(&request.tenant, &request.tenant_column, tenant_type).map_err(|e| fail(&path, e))?;

        let mut units = Vec::new();
        for (file_index, file) in files.iter().enumerate() {
            let row_groups = file.metadata.metadata().row_groups();
            let may_hold = may_hold_tenant(file, &request.tenant_column, &tenant).unwrap_or_else(|e| {
                // Statistics only save work; without them every row group is read and filtered.
                tracing::debug!(file = %file.path.display(), error = %e, "tenant column statistics unusable");
                vec![true; row_groups.len()]
            });
            for (row_group, meta) in row_groups.iter().enumerate() {
                let rows = u64::try_from(meta.num_rows()).unwrap_or(0);
                if rows > 0 && may_hold[row_group] {
                    units.push(Unit { file: file_index, row_group, rows });
                }
            }
        }
        Ok(Scan { path, files, schema, tenant_index, tenant, units })
    }
}

#[async_trait::async_trait]
impl Source for LakeSource {
    /// Estimates the tenant's rows as the rows of the row groups that may hold it, and splits
    /// them into `ceil(rows / target)` slices, at most one per such row group, at least 1.
    async fn slice_count(&self, request: &TableRequest, target_rows_per_slice: u64) -> Result<u32> {
        let scan = self.scan(request).await?;
        let rows: u64 = scan.units.iter().map(|u| u.rows).sum();
        let wanted = rows.div_ceil(target_rows_per_slice.max(1));
        let capped = wanted.min(scan.units.len() as u64).max(1);
        Ok(u32::try_from(capped).unwrap_or(u32::MAX))
    }

    async fn open(&self, request: &TableRequest, slice: Slice) -> Result<TableStream> {
        if slice.count == 0 || slice.index >= slice.count {
            let e = LakeError::InvalidSlice { index: slice.index, count: slice.count };
            return Err(source_error(&request.table, &self.table_path(&request.table), e));
        }
        let scan = self.scan(request).await?;
        let fail = |e: LakeError| source_error(&request.table, &scan.path, e);

        // Output columns, in the requested order.
        let wanted: Vec<usize> = match &request.columns {
            None => (0..scan.schema.fields().len()).collect(),
            Some(columns) => {
                let mut indices = Vec::with_capacity(columns.len());
                for column in columns {
                    let index = column_index(&scan.schema, column).map_err(fail)?;
                    if indices.contains(&index) {
                        return Err(fail(LakeError::DuplicateColumn { column: column.clone() }));
                    }
                    indices.push(index);
                }
                indices
            }
        };
        let schema = Arc::new(scan.schema.project(&wanted).map_err(|e| fail(e.into()))?);
        // The reader yields projected columns in file order; `reorder` puts them in ours.
        let mut read: Vec<usize> = wanted.clone();
        read.sort_unstable();
        let reorder: Vec<usize> = wanted.iter().filter_map(|i| read.binary_search(i).ok()).collect();

        // This slice's contiguous share of the units, grouped by file.
        let total = scan.units.len();
        let start = total * slice.index as usize / slice.count as usize;
        let end = total * (slice.index as usize + 1) / slice.count as usize;
        let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
        for unit in &scan.units[start..end] {
            match groups.last_mut() {
                Some((file, row_groups)) if *file == unit.file => row_groups.push(unit.row_group),
                _ => groups.push((unit.file, vec![unit.row_group])),
            }
        }

        let plan = Arc::new(ReadPlan {
            table: request.table.clone(),
            schema: schema.clone(),
            read,
            reorder,
            tenant_index: scan.tenant_index,
            tenant: scan.tenant,
            batch_rows: self.batch_rows,
            row_groups_read: self.row_groups_read.clone(),
        });
        let files = scan.files;
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

/// What `scan` found: the table's files, schema, tenant column, and candidate units.
struct Scan {
    path: PathBuf,
    files: Vec<LakeFile>,
    schema: SchemaRef,
    tenant_index: usize,
    /// The tenant as a one-element array of the tenant column's type.
    tenant: ArrayRef,
    /// Row groups that may hold the tenant, in file then row-group order.
    units: Vec<Unit>,
}

#[derive(Clone)]
struct LakeFile {
    path: PathBuf,
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
    tenant_index: usize,
    tenant: ArrayRef,
    batch_rows: usize,
    row_groups_read: Arc<AtomicU64>,
}

impl ReadPlan {
    /// Opens `row_groups` of one file as a stream of the tenant's rows in the output schema.
    async fn open_file(self: Arc<Self>, file: LakeFile, row_groups: Vec<usize>) -> Result<BatchStream> {
        let fail = |e: LakeError| source_error(&self.table, &file.path, e);
        let handle = tokio::fs::File::open(&file.path).await.map_err(|e| fail(e.into()))?;
        let parquet_schema = file.metadata.parquet_schema();
        let tenant = self.tenant.clone();
        let predicate = ArrowPredicateFn::new(
            ProjectionMask::roots(parquet_schema, [self.tenant_index]),
            move |batch: RecordBatch| eq(batch.column(0), &Scalar::new(tenant.clone())),
        );
        let projection = ProjectionMask::roots(parquet_schema, self.read.iter().copied());
        self.row_groups_read.fetch_add(row_groups.len() as u64, Ordering::Relaxed);
        let reader = ParquetRecordBatchStreamBuilder::new_with_metadata(handle, file.metadata.clone())
            .with_row_groups(row_groups)
            .with_projection(projection)
            .with_row_filter(RowFilter::new(vec![Box::new(predicate)]))
            .with_batch_size(self.batch_rows)
            .build()
            .map_err(|e| fail(e.into()))?;
        let plan = self.clone();
        let path = file.path;
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

fn source_error(table: &str, location: &Path, error: LakeError) -> Error {
    Error::Source { table: table.to_string(), location: location.display().to_string(), source: Box::new(error) }
}

/// The `*.parquet` files of a folder, sorted by name (a path to a single file is that file).
/// Hidden and `_`-prefixed names (`.crc`, `_SUCCESS`, ...) are not data files.
async fn list_parquet_files(path: &Path) -> Result<Vec<PathBuf>, LakeError> {
    let metadata = tokio::fs::metadata(path).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => LakeError::MissingTable,
        _ => LakeError::Io(e),
    })?;
    if metadata.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut entries = tokio::fs::read_dir(path).await?;
    let mut files = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || name.starts_with('_') || !name.ends_with(".parquet") {
            continue;
        }
        let entry_path = entry.path();
        if tokio::fs::metadata(&entry_path).await?.is_file() {
            files.push(entry_path);
        }
    }
    files.sort();
    Ok(files)
}

async fn load_metadata(path: &Path) -> Result<ArrowReaderMetadata, LakeError> {
    let mut file = tokio::fs::File::open(path).await?;
    Ok(ArrowReaderMetadata::load_async(&mut file, ArrowReaderOptions::new()).await?)
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

    #[test]
    fn missing_columns_list_what_is_there() {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)]));
        let error = column_index(&schema, "nope").unwrap_err().to_string();
        assert_eq!(error, "column \"nope\" is not in the table (columns: id)");
    }
}
