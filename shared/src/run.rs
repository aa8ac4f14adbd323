//! The in-process runner: plan -> bounded-parallel exports -> finalize, for every destination.
//!
//! This is what `byob run` and `byob demo` call, and what the Step Functions workflow does
//! across Lambda invocations: the same plan, export and finalize functions, in one process.
//! Destinations are isolated: one that fails is reported with its cause, gets no receipt,
//! and never stops another.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::future::join_all;
use tokio::sync::Semaphore;

use crate::config::{Config, DestinationConfig, SourceConfig};
use crate::export::{self, Cancel, ExportSpec};
use crate::layout::{self, RunId};
use crate::plan::{self, DestinationPlan, ExportTask, Plan, PlanFilter, TaskResult};
use crate::receipt::Receipt;
use crate::sink::{LocalSink, ObjectSink, S3Sink};
use crate::source::Source;
use crate::source::lake::LakeSource;
use crate::state::StateStore;
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
}

impl RunReport {
    /// The destinations that got no receipt.
    pub fn failed(&self) -> impl Iterator<Item = &DestinationReport> {
        self.destinations.iter().filter(|d| d.outcome.is_err())
    }
}

/// How the slices of one run are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    /// All through one source in this process (`byob run`): a PostgreSQL source exports one
    /// snapshot that every slice imports, so the run is one consistent moment of the database.
    OneSource,
    /// Each step through its own source, as the deployed Lambda steps do: nothing is held
    /// between steps, each slice reads its own snapshot, and only bounds that stay exact
    /// across snapshots are planned (key ranges, not page ranges).
    SourcePerStep,
}

/// The source the config describes.
pub fn source_for(config: &Config, reads: Reads) -> Arc<dyn Source> {
    match &config.source {
        SourceConfig::Parquet(parquet) => {
            let mut lake = LakeSource::new(parquet.path.clone()).with_aws(&config.aws);
            for table in &config.tables {
                if let Some(p) = &table.path {
                    lake = lake.with_table_path(&table.name, p.clone());
                }
            }
            Arc::new(lake)
        }
        SourceConfig::Postgres(postgres) => Arc::new(
            crate::source::postgres::PgSource::from_config(postgres, &config.tables, &config.aws)
                .with_shared_snapshot(reads == Reads::OneSource),
        ),
    }
}

/// The sink a destination writes to: its local folder, or its bucket through the role chain
/// (`aws.writer_role_arn`, then the customer's role with its ExternalId), starting from the
/// default credential chain. STS session names carry the destination id and `run`. Nothing is
/// sent to AWS until the first object is written.
pub async fn sink_for(config: &Config, destination: &DestinationConfig, run: RunId) -> Result<Arc<dyn ObjectSink>> {
    match (&destination.folder, &destination.bucket) {
        (Some(folder), _) => Ok(Arc::new(LocalSink::new(folder.clone()))),
        (None, Some(_)) => Ok(Arc::new(S3Sink::for_destination(config, destination, &run.to_string()).await?)),
        (None, None) => Err(Error::Plan(format!("destination {:?} has neither bucket nor folder", destination.id))),
    }
}

/// The export settings of a destination for `run`.
pub fn export_spec(config: &Config, destination: &DestinationConfig, run: RunId) -> Result<ExportSpec> {
    Ok(ExportSpec {
        run,
        prefix: layout::normalize_prefix(&destination.prefix)?,
        template: destination.key_template()?,
        format: destination.format,
        max_file_rows: destination.max_file_rows,
        max_file_bytes: destination.max_file_bytes.0,
        encoder: config.export.encoder_options(),
        metadata: BTreeMap::new(),
    })
}

/// Runs a whole dump in this process.
pub async fn run(config: &Config, options: &RunOptions, observer: Arc<dyn Observer>) -> Result<RunReport> {
    let started = Instant::now();
    let source = source_for(config, Reads::OneSource);
    // The store the config names: a local folder, or the same S3 state the deployed steps use.
    let state: Arc<dyn StateStore> = Arc::from(crate::state::store_for(config).await?);
    let plan = plan::plan(config, source.as_ref(), options.run, &options.filter).await?;
    observer.planned(&plan);
    let permits = Arc::new(Semaphore::new(config.export.parallelism.max(1)));

    let destinations = plan.destinations.iter().map(|dp| {
        let source = source.clone();
        let state = state.clone();
        let permits = permits.clone();
        let observer = observer.clone();
        async move {
            let dest_started = Instant::now();
            let (tasks, outcome) =
                run_destination(config, dp, options.run, source, state, permits, observer.clone()).await;
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
    Ok(RunReport { run: options.run, destinations, seconds: started.elapsed().as_secs_f64() })
}

async fn run_destination(
    config: &Config,
    plan: &DestinationPlan,
    run: RunId,
    source: Arc<dyn Source>,
    state: Arc<dyn StateStore>,
    permits: Arc<Semaphore>,
    observer: Arc<dyn Observer>,
) -> (Vec<TaskResult>, std::result::Result<Receipt, Error>) {
    let prepared = async {
        let destination = config
            .destinations
            .iter()
            .find(|d| d.id == plan.destination)
            .ok_or_else(|| Error::Plan(format!("destination {:?} is not in the config", plan.destination)))?;
        Ok::<_, Error>((destination, sink_for(config, destination, run).await?, export_spec(config, destination, run)?))
    }
    .await;
    let (destination, sink, spec) = match prepared {
        Ok(p) => p,
        Err(e) => return (Vec::new(), Err(e)),
    };

    let cancel = Cancel::default();
    let exports = plan.tasks.iter().map(|task| {
        let (source, sink, permits, observer, cancel, spec) =
            (source.clone(), sink.clone(), permits.clone(), observer.clone(), cancel.clone(), &spec);
        async move {
            let _permit = permits.acquire().await.map_err(|_| Error::Cancelled("runner shut down".into()))?;
            if cancel.is_cancelled() {
                return Err(Error::Cancelled(format!(
                    "table {:?}: another table of this destination failed",
                    task.table
                )));
            }
            observer.task_started(task);
            let request = plan::table_request(config, destination, &task.table);
            let on_rows: export::RowsCallback = {
                let (observer, task) = (observer.clone(), task.clone());
                Arc::new(move |n| observer.rows(&task, n))
            };
            let result = export::export(task, &request, source.as_ref(), sink.as_ref(), spec, &cancel, on_rows).await;
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
    // The first real failure is the cause; the cancellations it triggered are its echo.
    if !errors.is_empty() {
        let cause = errors.iter().position(|e| !matches!(e, Error::Cancelled(_))).unwrap_or(0);
        return (done, Err(errors.swap_remove(cause)));
    }
    let outcome = crate::finalize::finalize(plan, &done, run, spec.format, &spec.prefix, sink.as_ref(), state.as_ref())
        .await
        .map(|(receipt, _)| receipt);
    (done, outcome)
}
