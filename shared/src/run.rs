//! The in-process runner: plan -> bounded-parallel exports -> finalize, for every destination.
//!
//! This is what `byob run` and `byob demo` call, and what the Step Functions workflow does
//! across Lambda invocations: the same plan, export and finalize functions, in one process.
//! Destinations are isolated: one that fails is reported with its cause, gets no receipt,
//! and never stops another.

use std::sync::Arc;
use std::time::Instant;

use futures::future::join_all;
use tokio::sync::Semaphore;

use crate::config::{Config, DestinationConfig};
use crate::export::{self, Cancel, ExportSpec};
use crate::layout::RunId;
use crate::plan::{self, DestinationPlan, ExportTask, Plan, PlanFilter, TaskResult};
use crate::receipt::Receipt;
use crate::sink::ObjectSink;
use crate::source::Source;
use crate::state::StateStore;
use crate::wiring::{self, Reads};
use crate::{Error, Result};

/// Hooks for progress output. Every method has a no-op default.
pub trait Observer: Send + Sync {
    /// The plan is made; exports start.
    fn planned(&self, _plan: &Plan) {}
    /// A task starts exporting.
    fn task_started(&self, _task: &ExportTask) {}
    /// A task encoded `rows` more rows.
    fn rows(&self, _task: &ExportTask, _rows: u64) {}
    /// A task ended.
    fn task_finished(&self, _task: &ExportTask, _result: &Result<TaskResult>) {}
    /// A destination ended (finalized or failed).
    fn destination_finished(&self, _report: &DestinationReport) {}
}

/// An observer that reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;
impl Observer for Silent {}

/// What to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The run id (scheduled minute).
    pub run: RunId,
    /// Which destinations and tables.
    pub filter: PlanFilter,
}

/// How one destination ended.
#[derive(Debug)]
pub struct DestinationReport {
    /// The destination id.
    pub destination: String,
    /// Results of the tasks that succeeded.
    pub tasks: Vec<TaskResult>,
    /// The receipt written, or why none was.
    pub outcome: std::result::Result<Receipt, Error>,
    /// Wall time from the first task to the receipt.
    pub seconds: f64,
}

/// How a whole run ended.
#[derive(Debug)]
pub struct RunReport {
    /// The run id.
    pub run: RunId,
    /// One report per planned destination, in config order.
    pub destinations: Vec<DestinationReport>,
    /// Wall time of the run.
    pub seconds: f64,
    /// Bytes the source read from storage over the whole run (planning included), when it
    /// can tell (a lake can).
    pub source_bytes_read: Option<u64>,
}

impl RunReport {
    /// The destinations that got no receipt.
    pub fn failed(&self) -> impl Iterator<Item = &DestinationReport> {
        self.destinations.iter().filter(|d| d.outcome.is_err())
    }
}

/// Runs a whole dump in this process.
pub async fn run(config: &Config, options: &RunOptions, observer: Arc<dyn Observer>) -> Result<RunReport> {
    let started = Instant::now();
    let sdk = wiring::sdk(config).await;
    let source = wiring::source(config, &sdk, Reads::OneSource);
    // The store the config names: a local folder, or the same S3 state the deployed steps use.
    let state = wiring::state(config, &sdk);
    let plan = plan::plan(config, source.as_ref(), Some(state.as_ref()), options.run, &options.filter).await?;
    observer.planned(&plan);
    let permits = Semaphore::new(config.export.parallelism.max(1));

    let destinations = plan.destinations.iter().map(|dp| {
        let (source, state, permits, observer, sdk) = (&source, &state, &permits, &observer, &sdk);
        async move {
            let dest_started = Instant::now();
            let prepared = async {
                let destination = config
                    .destinations
                    .iter()
                    .find(|d| d.id == dp.destination)
                    .ok_or_else(|| Error::Plan(format!("destination {:?} is not in the config", dp.destination)))?;
                let sink = wiring::sink(config, sdk, destination, options.run).await?;
                Ok::<_, Error>((destination, sink, wiring::export_spec(config, destination, options.run)?))
            }
            .await;
            let (tasks, outcome) = match prepared {
                Ok((destination, sink, spec)) => {
                    let parts = DestinationParts {
                        config,
                        destination,
                        source: source.as_ref(),
                        sink: sink.as_ref(),
                        spec: &spec,
                    };
                    export_destination(&parts, dp, state.as_ref(), permits, observer).await
                }
                Err(e) => (Vec::new(), Err(e)),
            };
            let report = DestinationReport {
                destination: dp.destination.clone(),
                tasks,
                outcome,
                seconds: dest_started.elapsed().as_secs_f64(),
            };
            observer.destination_finished(&report);
            report
        }
    });
    let destinations = join_all(destinations).await;
    Ok(RunReport {
        run: options.run,
        destinations,
        seconds: started.elapsed().as_secs_f64(),
        source_bytes_read: source.bytes_read(),
    })
}

/// What one destination's exports read from and write to.
pub struct DestinationParts<'a> {
    /// The config the tasks were planned with.
    pub config: &'a Config,
    /// The destination.
    pub destination: &'a DestinationConfig,
    /// Where rows come from.
    pub source: &'a dyn Source,
    /// Where files go.
    pub sink: &'a dyn ObjectSink,
    /// How files are written.
    pub spec: &'a ExportSpec,
}

/// Exports every task of one destination, at most as many at once as `permits` allows (the
/// rest cancelled once one fails), then finalizes it: the loop `byob run` and `byob export`
/// share. Returns the results of the tasks that succeeded and the receipt, or the first real
/// failure (the cancellations it triggered are its echo).
pub async fn export_destination(
    parts: &DestinationParts<'_>,
    plan: &DestinationPlan,
    state: &dyn StateStore,
    permits: &Semaphore,
    observer: &Arc<dyn Observer>,
) -> (Vec<TaskResult>, std::result::Result<Receipt, Error>) {
    let cancel = Cancel::default();
    let exports = plan.tasks.iter().map(|task| {
        let cancel = cancel.clone();
        async move {
            let _permit = permits.acquire().await.map_err(|_| Error::Cancelled("runner shut down".into()))?;
            if cancel.is_cancelled() {
                return Err(Error::Cancelled(format!(
                    "table {:?}: another table of this destination failed",
                    task.table
                )));
            }
            observer.task_started(task);
            let request = plan::table_request(parts.config, parts.destination, &task.table);
            let on_rows: export::RowsCallback = {
                let (observer, task) = (observer.clone(), task.clone());
                Arc::new(move |n| observer.rows(&task, n))
            };
            let result = export::export(task, &request, parts.source, parts.sink, parts.spec, &cancel, on_rows).await;
            if result.is_err() {
                cancel.cancel();
            }
            observer.task_finished(task, &result);
            result
        }
    });
    let mut done = Vec::new();
    let mut errors = Vec::new();
    for result in join_all(exports).await {
        match result {
            Ok(r) => done.push(r),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        let cause = errors.iter().position(|e| !matches!(e, Error::Cancelled(_))).unwrap_or(0);
        return (done, Err(errors.swap_remove(cause)));
    }
    let spec = parts.spec;
    let outcome = crate::finalize::finalize(plan, &done, spec, parts.sink, state).await.map(|(receipt, _)| receipt);
    (done, outcome)
}
