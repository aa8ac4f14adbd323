//! Where rows come from.
//!
//! A source opens one slice of one table for one tenant and yields a stream of Arrow record
//! batches with a known schema (the shape of DataFusion's `SendableRecordBatchStream`). A
//! source must never load a whole table into memory and must never yield a row of another
//! tenant: the tenant filter is applied here, at the source, before any byte is encoded.

pub mod lake;
pub mod postgres;

use std::fmt::Debug;
use std::pin::Pin;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::increment::{HighWater, Window};

/// A stream of record batches.
pub type BatchStream = Pin<Box<dyn Stream<Item = Result<RecordBatch>> + Send>>;

/// An open table slice: its schema, and its rows as a stream of batches with that schema.
pub struct TableStream {
    /// Every batch of `batches` has exactly this schema.
    pub schema: SchemaRef,
    /// The rows, already filtered to the tenant.
    pub batches: BatchStream,
}

impl Debug for TableStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableStream").field("schema", &self.schema).finish_non_exhaustive()
    }
}

/// One part of a table that exports independently of the others: slice `index` of `count`.
/// Together the slices of a table hold each of its rows exactly once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Slice {
    /// 0-based position of this slice.
    pub index: u32,
    /// How many slices the table was split into.
    pub count: u32,
}

impl Slice {
    /// The whole table as a single slice.
    pub const WHOLE: Slice = Slice { index: 0, count: 1 };
}

/// What to read: one table, for one tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableRequest {
    /// The table's name, as configured.
    pub table: String,
    /// Only rows whose tenant column equals this value are read.
    pub tenant: String,
    /// The tenant column of this table.
    pub tenant_column: String,
    /// Columns to export, in this order; `None` exports every column.
    pub columns: Option<Vec<String>>,
    /// Only the rows whose watermark lies in this window (an incremental-capable table, the
    /// window fixed by the plan); `None`: every row. A source that cannot filter by one refuses.
    pub window: Option<Window>,
}

impl TableRequest {
    /// A request for every row of `table` of `tenant`, every column.
    pub fn new(table: impl Into<String>, tenant: impl Into<String>, tenant_column: impl Into<String>) -> Self {
        TableRequest {
            table: table.into(),
            tenant: tenant.into(),
            tenant_column: tenant_column.into(),
            columns: None,
            window: None,
        }
    }
}

/// Exactly what one slice reads, fixed when the run is planned and carried by its task, so an
/// export in another process, minutes later, reads its planned part however the table changed
/// meanwhile: the slices of a table never overlap and leave no gap.
///
/// Each source plans and reads its own kinds; a source refuses bounds it did not plan
/// (`Whole` excepted, which every source reads).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Bounds {
    /// Every row of the tenant, as the export finds them: a table planned as one slice.
    #[default]
    Whole,
    /// PostgreSQL: rows whose `column` (an integer, or a date or timestamp as days or
    /// microseconds since 1970) lies in `[from, to)`, a missing bound open; plus the rows whose
    /// key is NULL (`nulls`) or `'infinity'` (`infinity`). Cut points are fixed at plan time,
    /// the last slice's `to` is the largest key the plan saw plus one.
    Keys {
        /// The quoted-at-use column name (the configured `slice_key` or the primary key).
        column: String,
        /// Inclusive lower bound; `None` for the first slice.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<i64>,
        /// Exclusive upper bound; `None` only when the plan saw no largest key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<i64>,
        /// Whether this slice also holds the rows whose key is NULL (the first slice does).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        nulls: bool,
        /// Whether this slice also holds the rows whose key is `'infinity'` (the last does).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        infinity: bool,
    },
    /// PostgreSQL: heap pages `[from, to)` (`ctid` ranges), exact only inside the exported
    /// snapshot they were cut in: an updated row moves to another page. Planned only when
    /// every slice of the run imports that one snapshot (`byob run`), never across Lambda
    /// invocations; reading them in another snapshot is refused.
    Pages {
        /// First page; `None` for the first slice.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<u64>,
        /// Page after the last; `None` for the last slice.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<u64>,
        /// The id of the exported snapshot the pages were cut in.
        snapshot: String,
    },
    /// Parquet lake: these row groups of these files, listed at plan time (so an export never
    /// lists the table's folder again).
    RowGroups {
        /// The files, in read order, each with the row groups to read.
        files: Vec<FilePart>,
    },
    /// In-memory source: rows `[from, to)` of the tenant's rows.
    Rows {
        /// First row.
        from: u64,
        /// Row after the last.
        to: u64,
    },
}

impl Bounds {
    /// Whether these are [`Bounds::Whole`].
    pub fn is_whole(&self) -> bool {
        matches!(self, Bounds::Whole)
    }
}

/// Some row groups of one Parquet file of a lake table.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePart {
    /// The file: a local path, or `s3://bucket/key`.
    pub path: String,
    /// The file's size in bytes when it was listed (the footer is read from its end without
    /// asking again; a file whose size changed since is refused, not misread).
    pub bytes: u64,
    /// 0-based row groups to read, ascending.
    pub row_groups: Vec<usize>,
}

/// A source of tables.
#[async_trait::async_trait]
pub trait Source: Send + Sync + Debug {
    /// Plans `request`: the bounds of each of its slices, sized so that each holds about
    /// `target_rows_per_slice` rows; at least one. Sources that cannot split return
    /// `[Bounds::Whole]`. Errors that can be found before reading (missing table, missing
    /// column, unsupported type) are returned here.
    async fn plan(&self, request: &TableRequest, target_rows_per_slice: u64) -> Result<Vec<Bounds>>;

    /// Opens the rows of `request` within `bounds` (which [`Source::plan`] returned, in this
    /// process or another). Errors that can be found before reading (missing table, missing
    /// column, unsupported type, bounds this source did not plan) are returned here, before
    /// anything is written.
    async fn open(&self, request: &TableRequest, bounds: &Bounds) -> Result<TableStream>;

    /// Bytes this source has read from storage so far, over every request; `None` when it
    /// cannot tell (the default).
    fn bytes_read(&self) -> Option<u64> {
        None
    }

    /// The tenant's largest value of the watermark `column` (NULLs ignored), its kind, and the
    /// columns `request` exports: what a plan needs to fix an incremental range. Sources that
    /// cannot read by watermark refuse (the default).
    async fn high_water(&self, request: &TableRequest, column: &str) -> Result<HighWater> {
        let _ = column;
        Err(crate::Error::Plan(format!(
            "table {:?}: this source cannot dump a table incrementally (by watermark); set mode = \"full\"",
            request.table
        )))
    }
}
