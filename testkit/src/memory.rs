//! An in-memory source: tables held as record batches. For tests and handler fixtures; it
//! applies the same tenant filter and slicing rules as every other source.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, StringArray};
use arrow::compute::kernels::cmp::eq;
use arrow::compute::{cast, concat_batches, filter_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use byob::source::{Bounds, Source, TableRequest, TableStream};
use byob::{Error, Result};

/// Tables as batches in memory.
#[derive(Debug, Default, Clone)]
pub struct MemorySource {
    tables: HashMap<String, (SchemaRef, Vec<RecordBatch>)>,
}

impl MemorySource {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a table.
    pub fn with_table(mut self, name: &str, schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        self.tables.insert(name.to_string(), (schema, batches));
        self
    }

    fn error(&self, table: &str, message: String) -> Error {
        Error::Source { table: table.to_string(), location: "memory".into(), source: message.into() }
    }

    /// The tenant's rows of `request.table`, projected.
    fn tenant_rows(&self, request: &TableRequest) -> Result<RecordBatch> {
        let (schema, batches) =
            self.tables.get(&request.table).ok_or_else(|| self.error(&request.table, "no such table".into()))?;
        let all = concat_batches(schema, batches).map_err(|e| self.error(&request.table, e.to_string()))?;
        let column = all
            .column_by_name(&request.tenant_column)
            .ok_or_else(|| self.error(&request.table, format!("no tenant column {:?}", request.tenant_column)))?;
        let tenant: ArrayRef = std::sync::Arc::new(StringArray::from(vec![request.tenant.as_str()]));
        let tenant = cast(&tenant, column.data_type()).map_err(|e| self.error(&request.table, e.to_string()))?;
        let mask =
            eq(column, &arrow::array::Scalar::new(tenant)).map_err(|e| self.error(&request.table, e.to_string()))?;
        let rows = filter_record_batch(&all, &mask).map_err(|e| self.error(&request.table, e.to_string()))?;
        match &request.columns {
            None => Ok(rows),
            Some(columns) => {
                let indices = columns
                    .iter()
                    .map(|c| {
                        rows.schema().index_of(c).map_err(|_| self.error(&request.table, format!("no column {c:?}")))
                    })
                    .collect::<Result<Vec<_>>>()?;
                rows.project(&indices).map_err(|e| self.error(&request.table, e.to_string()))
            }
        }
    }
}

#[async_trait::async_trait]
impl Source for MemorySource {
    async fn plan(&self, request: &TableRequest, target_rows_per_slice: u64) -> Result<Vec<Bounds>> {
        let rows = self.tenant_rows(request)?.num_rows() as u64;
        let count = rows.div_ceil(target_rows_per_slice.max(1)).max(1);
        if count == 1 {
            return Ok(vec![Bounds::Whole]);
        }
        Ok((0..count).map(|i| Bounds::Rows { from: rows * i / count, to: rows * (i + 1) / count }).collect())
    }

    async fn open(&self, request: &TableRequest, bounds: &Bounds) -> Result<TableStream> {
        if request.window.is_some() {
            return Err(self.error(&request.table, "the in-memory source cannot read by watermark".into()));
        }
        let rows = self.tenant_rows(request)?;
        let n = rows.num_rows();
        let (start, end) = match bounds {
            Bounds::Whole => (0, n),
            Bounds::Rows { from, to } => {
                let clamp = |v: u64| usize::try_from(v).unwrap_or(usize::MAX).min(n);
                (clamp(*from), clamp(*to).max(clamp(*from)))
            }
            other => {
                return Err(self.error(&request.table, format!("bounds {other:?} were not planned by this source")));
            }
        };
        let part = rows.slice(start, end - start);
        // Hand out batches of at most 1000 rows, like a real source streams.
        let batches: Vec<Result<RecordBatch>> =
            (0..part.num_rows()).step_by(1000).map(|o| Ok(part.slice(o, 1000.min(part.num_rows() - o)))).collect();
        Ok(TableStream { schema: part.schema(), batches: Box::pin(futures::stream::iter(batches)) })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use futures::TryStreamExt;

    use super::*;

    #[tokio::test]
    async fn filters_by_tenant_and_slices_exactly() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("tenant_id", DataType::Utf8, false),
            Field::new("id", DataType::Int64, false),
        ]));
        let tenants: Vec<&str> = (0..5000).map(|i| if i % 3 == 0 { "a" } else { "b" }).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(tenants)), Arc::new(Int64Array::from_iter_values(0..5000))],
        )
        .expect("batch");
        let source = MemorySource::new().with_table("t", schema, vec![batch]);
        let request = TableRequest::new("t", "a", "tenant_id");
        let planned = source.plan(&request, 500).await.expect("plan");
        assert_eq!(planned.len(), 4);
        assert_eq!(planned[0], Bounds::Rows { from: 0, to: 416 });
        let mut ids = Vec::new();
        for bounds in &planned {
            let stream = source.open(&request, bounds).await.expect("open");
            let batches: Vec<RecordBatch> = stream.batches.try_collect().await.expect("rows");
            for b in batches {
                let col = b.column(1).as_any().downcast_ref::<Int64Array>().expect("ids");
                ids.extend(col.values().iter().copied());
            }
        }
        let expected: Vec<i64> = (0..5000).filter(|i| i % 3 == 0).collect();
        assert_eq!(ids, expected);
    }
}
