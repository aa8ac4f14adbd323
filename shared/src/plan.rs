//! Planning: destinations x tables x slices -> export tasks, and what each task reports.
//!
//! A plan is plain data (serde) so the same value can be the Step Functions state, a local
//! runner's work list, or a test fixture. Planning reads table size estimates from the
//! source but writes nothing.

use serde::{Deserialize, Serialize};

use crate::config::{Config, DestinationConfig};
use crate::layout::RunId;
use crate::receipt::FileEntry;
use crate::schema::ColumnSchema;
use crate::source::{Bounds, Slice, Source, TableRequest};
use crate::{Error, Result};

/// Every export task of one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The run id all tasks write under.
    pub run: RunId,
    /// One entry per destination, each finalized on its own.
    pub destinations: Vec<DestinationPlan>,
    /// The sha256 of the config the run was planned with ([`Config::sha256`]); every export
    /// and finalize of the run runs with exactly that config or fails.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub config: String,
}

/// The tasks of one destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationPlan {
    /// The destination id.
    pub destination: String,
    /// Every (table, slice) to export, tables in config order, slices in index order.
    pub tasks: Vec<ExportTask>,
}

/// One unit of export work: one slice of one table for one destination.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExportTask {
    /// The destination id.
    pub destination: String,
    /// The table name.
    pub table: String,
    /// Which part of the table (its position, for file names and the receipt).
    pub slice: Slice,
    /// Exactly which rows that part is, fixed when the run was planned ([`Source::plan`]).
    /// Absent (`Whole`) only for a table planned as one slice.
    #[serde(default, skip_serializing_if = "Bounds::is_whole")]
    pub bounds: Bounds,
}

/// What one export task wrote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The task this is the result of.
    pub task: ExportTask,
    /// The table's folder relative to the prefix.
    pub folder: String,
    /// The columns written.
    pub schema: Vec<ColumnSchema>,
    /// Every file written, in shard order, keys relative to the prefix.
    pub files: Vec<FileEntry>,
    /// Rows over `files`.
    pub rows: u64,
    /// Bytes over `files`.
    pub bytes: u64,
    /// Wall time of the task.
    pub seconds: f64,
}

/// Which destinations and tables a run covers; empty means all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanFilter {
    /// Destination ids to run.
    pub destinations: Vec<String>,
    /// Table names to run.
    pub tables: Vec<String>,
    /// Only the destinations whose schedule is due at the run's minute (a scheduled run);
    /// `false`: every destination (a run by hand). Destinations without a schedule are always due.
    pub due_only: bool,
}

/// The source request for `table` of `destination`.
pub fn table_request(config: &Config, destination: &DestinationConfig, table: &str) -> TableRequest {
    let table_config = config.tables.iter().find(|t| t.name == table);
    TableRequest {
        table: table.to_string(),
        tenant: destination.tenant.clone(),
        tenant_column: table_config
            .map_or(config.source.tenant_column(), |t| t.tenant_column(&config.source))
            .to_string(),
        columns: table_config.and_then(|t| t.columns.clone()),
    }
}

/// Plans `run`: for each selected destination, each of its tables, split into slices sized
/// by the source's estimate, each task carrying its slice's exact bounds. Unknown names in
/// `filter` are an error naming them.
pub async fn plan(config: &Config, source: &dyn Source, run: RunId, filter: &PlanFilter) -> Result<Plan> {
    for id in &filter.destinations {
        if !config.destinations.iter().any(|d| &d.id == id) {
            let known: Vec<&str> = config.destinations.iter().map(|d| d.id.as_str()).collect();
            return Err(Error::Plan(format!("no destination {id:?} in the config (known: {})", known.join(", "))));
        }
    }
    for name in &filter.tables {
        if !config.tables.iter().any(|t| &t.name == name) {
            let known: Vec<&str> = config.tables.iter().map(|t| t.name.as_str()).collect();
            return Err(Error::Plan(format!("no table {name:?} in the config (known: {})", known.join(", "))));
        }
    }
    let target = config.export.target_rows_per_slice.max(1);
    let mut destinations = Vec::new();
    for dest in &config.destinations {
        if !filter.destinations.is_empty() && !filter.destinations.contains(&dest.id) {
            continue;
        }
        if filter.due_only && dest.schedule.as_ref().is_some_and(|s| !s.is_due(run)) {
            continue;
        }
        let mut tasks = Vec::new();
        for table in config.tables.iter().map(|t| &t.name) {
            let selected_by_destination = dest.tables.as_ref().is_none_or(|ts| ts.contains(table));
            let selected_by_filter = filter.tables.is_empty() || filter.tables.contains(table);
            if !(selected_by_destination && selected_by_filter) {
                continue;
            }
            let request = table_request(config, dest, table);
            let consecutive = dest.shard_numbering == crate::config::ShardNumbering::Consecutive;
            let mut slices = source.plan(&request, if consecutive { u64::MAX } else { target }).await?;
            if slices.is_empty() || (consecutive && slices.len() > 1) {
                // Consecutive numbering: the whole table in one task, its files 0, 1, 2, ...
                slices = vec![Bounds::Whole];
            }
            let count = u32::try_from(slices.len())
                .map_err(|_| Error::Plan(format!("table {table:?}: {} slices is too many", slices.len())))?;
            tasks.extend(slices.into_iter().zip(0..).map(|(bounds, index)| ExportTask {
                destination: dest.id.clone(),
                table: table.clone(),
                slice: Slice { index, count },
                bounds,
            }));
        }
        destinations.push(DestinationPlan { destination: dest.id.clone(), tasks });
    }
    Ok(Plan { run, destinations, config: config.sha256() })
}
