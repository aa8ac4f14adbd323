//! Planning: destinations x tables x slices -> export tasks, and what each task reports.
//!
//! A plan is plain data (serde) so the same value can be the Step Functions state, a local
//! runner's work list, or a test fixture. Planning reads table size estimates from the
//! source but writes nothing.

use serde::{Deserialize, Serialize};

use std::collections::HashMap;

use futures::{StreamExt, TryStreamExt};

use crate::config::{Config, DestinationConfig, TableConfig};
use crate::increment::{self, Increment, Previous, TableMode, Wanted};
use crate::layout::RunId;
use crate::receipt::{FileEntry, TableReceipt};
use crate::schema::ColumnSchema;
use crate::source::{Bounds, Slice, Source, TableRequest};
use crate::state::StateStore;
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
    /// For a table with a watermark: this run's mode and range, fixed by the plan, the same in
    /// every slice of the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub increment: Option<Increment>,
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
        window: None,
    }
}

/// How many of a destination's finished runs a plan reads back (newest first) to find the last
/// one that dumped each table with a watermark; a table none of them dumped is dumped in full.
pub const MAX_RECEIPTS_READ: usize = 16;

/// Plans `run`: for each selected destination, each of its tables, split into slices sized
/// by the source's estimate, each task carrying its slice's exact bounds; a table with a
/// watermark also gets its mode and range ([`increment::decide`]) from the last run the
/// destination completed, read from `state` (needed only when a table has a watermark).
/// Unknown names in `filter` are an error naming them.
pub async fn plan(
    config: &Config,
    source: &dyn Source,
    state: Option<&dyn StateStore>,
    run: RunId,
    filter: &PlanFilter,
) -> Result<Plan> {
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
    let selected: Vec<&DestinationConfig> = config
        .destinations
        .iter()
        .filter(|dest| filter.destinations.is_empty() || filter.destinations.contains(&dest.id))
        .filter(|dest| !(filter.due_only && dest.schedule.as_ref().is_some_and(|s| !s.is_due(run))))
        .collect();
    let histories = histories(config, &selected, state, run).await?;
    let mut destinations = Vec::new();
    for (dest, history) in selected.into_iter().zip(histories) {
        let mut tasks = Vec::new();
        for table_config in &config.tables {
            let table = &table_config.name;
            let selected_by_destination = dest.tables.as_ref().is_none_or(|ts| ts.contains(table));
            let selected_by_filter = filter.tables.is_empty() || filter.tables.contains(table);
            if !(selected_by_destination && selected_by_filter) {
                continue;
            }
            let mut request = table_request(config, dest, table);
            let increment = match &table_config.watermark {
                None => None,
                Some(column) => {
                    Some(plan_increment(source, &request, dest, table_config, column, history.get(table), run).await?)
                }
            };
            request.window = increment.as_ref().map(Increment::window);
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
                increment: increment.clone(),
            }));
        }
        destinations.push(DestinationPlan { destination: dest.id.clone(), tasks });
    }
    Ok(Plan { run, destinations, config: config.sha256() })
}

/// The last run a destination completed that dumped a table, and that table's receipt entry.
type History = HashMap<String, (RunId, TableReceipt)>;

/// For each destination, the tables with a watermark it dumped last, read from our state
/// (newest finished run first, at most [`MAX_RECEIPTS_READ`] runs), a few destinations at once.
async fn histories(
    config: &Config,
    destinations: &[&DestinationConfig],
    state: Option<&dyn StateStore>,
    run: RunId,
) -> Result<Vec<History>> {
    futures::stream::iter(destinations.iter().copied())
        .map(|dest| async move {
            let wanted: Vec<&str> = dest
                .tables(&config.tables)
                .into_iter()
                .filter(|t| t.watermark.is_some())
                .map(|t| t.name.as_str())
                .collect();
            let mut history = History::new();
            if wanted.is_empty() {
                return Ok(history);
            }
            let state = state.ok_or_else(|| {
                Error::Plan(format!(
                    "table {:?} has a watermark, and this run keeps no state to find its last range in; run it with \
                     byob run (or deployed)",
                    wanted[0]
                ))
            })?;
            let mut finished: Vec<RunId> =
                state.finished_runs(&dest.id).await?.into_iter().filter(|r| *r < run).collect();
            finished.sort_unstable_by(|a, b| b.cmp(a));
            for earlier in finished.into_iter().take(MAX_RECEIPTS_READ) {
                let receipt = match state.receipt(&dest.id, earlier).await {
                    Ok(receipt) => receipt,
                    // A kept receipt that does not parse costs this destination a full dump of
                    // its tables (always correct), never the run of every other destination.
                    Err(Error::Receipt(reason)) => {
                        tracing::warn!(destination = %dest.id, run = %earlier, %reason, "unreadable receipt in our state: skipped");
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                for (name, table) in receipt.tables {
                    if wanted.contains(&name.as_str()) {
                        history.entry(name).or_insert((earlier, table));
                    }
                }
                if wanted.iter().all(|t| history.contains_key(*t)) {
                    break;
                }
            }
            Ok(history)
        })
        .buffered(16)
        .try_collect()
        .await
}

/// The mode and range of one table with a watermark, for one destination's run.
async fn plan_increment(
    source: &dyn Source,
    request: &TableRequest,
    dest: &DestinationConfig,
    table: &TableConfig,
    column: &str,
    last: Option<&(RunId, TableReceipt)>,
    run: RunId,
) -> Result<Increment> {
    let found = source.high_water(request, column).await?;
    let wanted = Wanted {
        column,
        incremental: table.mode == TableMode::Incremental,
        primary_key: table.primary_key.as_deref().unwrap_or_default(),
        lookback: table.lookback,
        full_every: dest.full_every,
    };
    let previous =
        last.map(|(run, receipt)| Previous { run: *run, range: receipt.range.as_ref(), columns: &receipt.schema });
    let (increment, why) = increment::decide(run, &wanted, previous.as_ref(), &found)
        .map_err(|e| Error::Plan(format!("table {:?}: {e}", table.name)))?;
    if let Some(why) = why {
        tracing::info!(destination = %dest.id, table = %table.name, reason = %why, "dumped in full");
    }
    Ok(increment)
}
