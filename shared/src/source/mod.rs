//! Where rows come from.
//!
//! A source opens one slice of one table for one tenant and yields a stream of Arrow record
//! batches with a known schema (the shape of DataFusion's `SendableRecordBatchStream`). A
//! source must never load a whole table into memory and must never yield a row of another
//! tenant: the tenant filter is applied here, at the source, before any byte is encoded.

pub mod lake;
pub mod memory;
pub mod postgres;

use std::fmt::Debug;
use std::pin::Pin;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::Result;

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
}

/// A source of tables.
#[async_trait::async_trait]
pub trait Source: Send + Sync + Debug {
    /// How many slices `request` should be split into so that each holds about
    /// `target_rows_per_slice` rows. Sources that cannot split return 1.
    async fn slice_count(&self, request: &TableRequest, target_rows_per_slice: u64) -> Result<u32>;

    /// Opens one slice of a table. Errors that can be found before reading (missing table,
    /// missing column, unsupported type) are returned here, before anything is written.
    async fn open(&self, request: &TableRequest, slice: Slice) -> Result<TableStream>;
}
