//! The deployed workflow's steps, as plain functions over serde types: what the dump,
//! export and finalize Lambda functions call, with exactly the JSON Step Functions passes
//! between them.
//!
//! ```text
//! EventBridge Scheduler {"scheduled_time": "<aws.scheduler.scheduled-time>"}
//!   -> dump(DumpEvent) -> StoredPlan {run, config, bucket, destinations: <key>, counts}
//!        the plan itself is in our state bucket: plans/<run>/<execution>/destinations.json
//!        ([{destination, tasks: <key>, task_count}]) and one tasks/<destination>.json each
//!   -> Distributed Map over destinations.json (a child execution per destination)
//!        -> Distributed Map over its tasks.json (a child execution per task):
//!             export(ExportInput{run, config, task}) -> ExportOutput (full result in our state)
//!        -> finalize(FinalizeInput{run, config, destination, tasks: <key>})  (results read from state)
//!      ResultWriter: every destination's outcome in outcomes/<run>/...
//!   -> summarize(SummarizeInput{run, outcomes}) -> RunSummary (also summaries/<run>.json)
//! ```
//!
//! Nothing that grows with the number of destinations or tasks travels through the state
//! machine, whose payloads are capped at 256 KB and whose executions at 25,000 history events:
//! plans, results and outcomes stay in our state bucket, and each destination and each task is
//! its own child execution. Nothing here may depend on process memory surviving between steps:
//! each step may run in a different Lambda container, and any step may be retried.
//!
//! One run, one config: the plan records the config's sha256 (`config`), the state machine
//! passes it to every export and finalize, and a step whose config differs fails
//! `NonRetryable` naming both (a warm container first reloads the config, see
//! `crate::lambda::Workflows`), so an upload during a run can never give a receipt whose
//! format does not match its files.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::export::{self, Cancel};
use crate::finalize;
use crate::layout::RunId;
use crate::plan::{self, ExportTask, Plan, PlanFilter, TaskResult};
use crate::sink::ObjectSink;
use crate::source::Source;
use crate::state::StateStore;
use crate::wiring::{self, Reads, export_spec};
use crate::{Error, Result};

/// Input of the dump step: the scheduler's event, or a manual run.
///
/// Scheduled: `{"scheduled_time": "2023-03-14T04:00:12Z"}` (the schedule's target input maps
/// `<aws.scheduler.scheduled-time>` to `scheduled_time`). Manual: `{"run": "2023-03-14T04:00",
/// "destinations": ["acme"], "tables": ["events"]}`. Exactly one of `run` and `scheduled_time`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DumpInput {
    /// The scheduled time of the schedule that fired (RFC 3339); the run id is its minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_time: Option<String>,
    /// A run id to (re-)run by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunId>,
    /// Only these destinations (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<String>,
    /// Only these tables (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
}

impl DumpInput {
    /// The run id this input names. Never "now": a retried dump must plan the same run.
    pub fn run_id(&self) -> Result<RunId> {
        match (&self.run, &self.scheduled_time) {
            (Some(run), None) => Ok(*run),
            (None, Some(t)) => Ok(RunId::from_scheduled_time(t)?),
            (Some(_), Some(_)) => Err(Error::Plan("give either \"run\" or \"scheduled_time\", not both".into())),
            (None, None) => Err(Error::Plan(
                "the input names no run: give \"scheduled_time\" (EventBridge Scheduler's <aws.scheduler.scheduled-time>) or \"run\" (YYYY-MM-DDTHH:MM)".into(),
            )),
        }
    }
}

/// What the state machine's `Plan` state sends the dump function: the schedule's (or a manual)
/// input, and the execution's name, which keeps each execution's plan apart in our state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DumpStep {
    /// The execution's input.
    pub input: DumpInput,
    /// `$$.Execution.Name`.
    pub execution: String,
}

/// What the dump function accepts: the state machine's [`DumpStep`], or a bare [`DumpInput`]
/// (a manual invocation, `cargo lambda invoke`), planned as execution `direct`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DumpEvent {
    /// From the state machine.
    Step(DumpStep),
    /// By hand.
    Direct(DumpInput),
}

impl DumpEvent {
    /// As a step (a direct input is execution `direct`).
    pub fn into_step(self) -> DumpStep {
        match self {
            DumpEvent::Step(step) => step,
            DumpEvent::Direct(input) => DumpStep { input, execution: "direct".into() },
        }
    }
}

/// Where the dump step stored the plan: small, whatever the number of destinations and tasks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredPlan {
    /// The run id.
    pub run: RunId,
    /// The sha256 of the config the run was planned with ([`Plan::config`]).
    pub config: String,
    /// Our state bucket (empty for a local state folder).
    pub bucket: String,
    /// The key of the destinations document: a JSON array of [`DestinationItem`], what the
    /// destinations' Distributed Map reads (`ItemReader`).
    pub destinations: String,
    /// How many destinations it lists.
    pub destination_count: usize,
    /// How many export tasks they have together.
    pub task_count: usize,
}

/// One destination of a stored plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationItem {
    /// The destination id.
    pub destination: String,
    /// The key of its tasks document: a JSON array of [`ExportTask`] (the exports' `ItemReader`).
    pub tasks: String,
    /// How many tasks it lists.
    pub task_count: usize,
}

/// A destination's tasks: listed, or the key of the document listing them (deployed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Tasks {
    /// The tasks themselves.
    Listed(Vec<ExportTask>),
    /// The key of a stored tasks document ([`DestinationItem::tasks`]).
    Stored(String),
}

/// Input of the summary step: the run and its stored destinations document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummarizeInput {
    /// The run id.
    pub run: RunId,
    /// The key of the run's destinations document ([`StoredPlan::destinations`]).
    pub destinations: String,
}

/// A destination that failed, as its child execution's `Catch` hands it to the failure step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureInput {
    /// The run id.
    pub run: RunId,
    /// The destination id.
    pub destination: String,
    /// The key of its tasks document ([`DestinationItem::tasks`]).
    pub tasks: String,
    /// What the failed state raised: `{"Error": ..., "Cause": ...}`.
    pub error: serde_json::Value,
}

/// How one destination of a stored plan ended, stored beside its plan
/// (`plans/<run>/<execution>/outcomes/<destination>.json`) by finalize or the failure step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The destination id.
    pub destination: String,
    /// Whether it got its receipt.
    pub ok: bool,
    /// Rows delivered.
    #[serde(default)]
    pub rows: u64,
    /// The error, when it failed (`Retryable`, `NonRetryable`, `States.Timeout`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What went wrong, cut to 1,000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// Where a destination's outcome is stored: beside its tasks document.
fn outcome_key(tasks_key: &str, destination: &str) -> String {
    let base = tasks_key.rsplit_once("/tasks/").map_or("", |(base, _)| base);
    crate::layout::join(base, &format!("outcomes/{destination}.json"))
}

/// How a run ended, per destination: the execution's output, and `summaries/<run>.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run id.
    pub run: RunId,
    /// Destinations the run covered.
    pub destinations: usize,
    /// Destinations that got their receipt.
    pub ok: usize,
    /// Destinations that did not.
    pub failed: usize,
    /// Rows delivered over the destinations that got their receipt.
    pub rows: u64,
    /// The first [`MAX_LISTED_FAILURES`] failures, by destination id.
    pub failures: Vec<DestinationFailure>,
    /// Where the summary is stored: its key in our state bucket (in the stored document itself,
    /// relative to the state's root).
    pub summary: String,
}

/// How many failures a [`RunSummary`] lists (all are counted).
pub const MAX_LISTED_FAILURES: usize = 100;

/// One destination that got no receipt, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationFailure {
    /// The destination id.
    pub destination: String,
    /// The error (`errorType`: `Retryable`, `NonRetryable`, `States.Timeout`, ...).
    pub error: String,
    /// What went wrong (the error's message), cut to 1,000 characters.
    pub cause: String,
}

/// Input of one export step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportInput {
    /// The run id.
    pub run: RunId,
    /// The sha256 of the config the run was planned with ([`Plan::config`]); absent in a
    /// hand-made event, which then runs with whatever config the function has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// The task to run.
    pub task: ExportTask,
}

/// Output of one export step: small, whatever the table size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportOutput {
    /// The task this is the result of.
    pub task: ExportTask,
    /// Where the full [`TaskResult`] (file list, checksums, schema) is stored, in our state.
    pub result: String,
    /// Rows written.
    pub rows: u64,
    /// Files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Input of the finalize step of one destination: its planned tasks and what they returned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalizeInput {
    /// The run id.
    pub run: RunId,
    /// The sha256 of the config the run was planned with ([`Plan::config`]), as in
    /// [`ExportInput::config`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// The destination id.
    pub destination: String,
    /// Every task the plan gave this destination, or (deployed) the key of their document.
    pub tasks: Tasks,
    /// The output of every export task; absent (deployed), each task's result is read from the
    /// key its export stored it under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<ExportOutput>>,
}

/// Output of the finalize step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalizeOutput {
    /// The destination id.
    pub destination: String,
    /// The run id.
    pub run: RunId,
    /// The run's receipt copy, relative to the bucket.
    pub run_receipt: String,
    /// The root receipt, unless a newer run already owned it.
    pub root_receipt: Option<String>,
    /// Rows over all tables.
    pub rows: u64,
    /// Tables in the receipt.
    pub tables: usize,
}

/// What the steps share within one Lambda container (or one test) for one config: the config,
/// the state store, and the sinks of the current run (their role-chain credentials, so the
/// tasks of a destination that land in one container assume its roles once).
///
/// It never holds a source between steps: each step opens its own (a PostgreSQL source its
/// own connections and snapshot, closed when the step returns), so a warm container keeps no
/// transaction open on the platform's database and never reuses an earlier step's snapshot.
/// Sinks of earlier runs are dropped when a new run's first sink is made.
pub struct Workflow {
    config: Config,
    config_sha256: String,
    sdk: tokio::sync::OnceCell<aws_config::SdkConfig>,
    state: Arc<dyn StateStore>,
    sinks: Mutex<HashMap<(String, RunId), Arc<dyn ObjectSink>>>,
}

impl std::fmt::Debug for Workflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workflow").field("state", &self.state).finish_non_exhaustive()
    }
}

impl Workflow {
    /// A workflow over `config`, reading from its source and keeping state in `state`.
    pub fn new(config: Config, state: Arc<dyn StateStore>) -> Self {
        let config_sha256 = config.sha256();
        Workflow { config, config_sha256, sdk: tokio::sync::OnceCell::new(), state, sinks: Mutex::new(HashMap::new()) }
    }

    /// A workflow whose AWS clients start from `sdk` (the one the state store was made from).
    pub fn with_sdk(config: Config, state: Arc<dyn StateStore>, sdk: aws_config::SdkConfig) -> Self {
        let workflow = Workflow::new(config, state);
        let _ = workflow.sdk.set(sdk);
        workflow
    }

    /// The SDK config every client of this workflow starts from, loaded once.
    async fn sdk(&self) -> &aws_config::SdkConfig {
        self.sdk.get_or_init(|| wiring::sdk(&self.config)).await
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The sha256 of the config ([`Config::sha256`]).
    pub fn config_sha256(&self) -> &str {
        &self.config_sha256
    }

    /// Fails unless this step's config is the one the run was planned with.
    pub fn check_config(&self, run: RunId, planned: Option<&str>) -> Result<()> {
        match planned {
            Some(planned) if planned != self.config_sha256 => Err(crate::config::ConfigErrors::file(format!(
                "run {run} was planned with config sha256 {planned}, but this step has config sha256 {}: the \
                 config changed during the run, and one run never mixes two configs; run it again (same run id) \
                 to export every table with the new config",
                self.config_sha256
            ))
            .into()),
            _ => Ok(()),
        }
    }

    async fn sink(&self, destination: &str, run: RunId) -> Result<Arc<dyn ObjectSink>> {
        let key = (destination.to_string(), run);
        if let Some(sink) = self.sinks.lock().ok().and_then(|s| s.get(&key).cloned()) {
            return Ok(sink);
        }
        let dest = self.destination(destination)?;
        let sink = wiring::sink(&self.config, self.sdk().await, dest, run).await?;
        if let Ok(mut sinks) = self.sinks.lock() {
            // A warm container serves run after run: keep only this run's sinks.
            sinks.retain(|(_, r), _| *r == run);
            sinks.insert(key, sink.clone());
        }
        Ok(sink)
    }

    fn destination(&self, id: &str) -> Result<&crate::config::DestinationConfig> {
        self.config
            .destinations
            .iter()
            .find(|d| d.id == id)
            .ok_or_else(|| Error::Plan(format!("no destination {id:?} in the config")))
    }

    /// The dump step: plans the run.
    pub async fn dump(&self, input: &DumpInput) -> Result<Plan> {
        let run = input.run_id()?;
        // A scheduled firing plans the destinations due at its minute; a run by hand, every one.
        let filter = PlanFilter {
            destinations: input.destinations.clone(),
            tables: input.tables.clone(),
            due_only: input.scheduled_time.is_some(),
        };
        let source: Arc<dyn Source> = wiring::source(&self.config, self.sdk().await, Reads::SourcePerStep);
        let plan = plan::plan(&self.config, source.as_ref(), Some(self.state.as_ref()), run, &filter).await?;
        tracing::info!(%run, destinations = plan.destinations.len(), tasks = plan.destinations.iter().map(|d| d.tasks.len()).sum::<usize>(), "planned");
        Ok(plan)
    }

    /// The deployed dump step: plans the run and stores the plan in our state, one document
    /// per destination's tasks and one listing the destinations, under
    /// `plans/<run>/<execution>/`; returns only where they are.
    pub async fn dump_stored(&self, step: &DumpStep) -> Result<StoredPlan> {
        let plan = self.dump(&step.input).await?;
        store_plan(self.state.as_ref(), &plan, &step.execution).await
    }

    /// The export step: runs one task and stores its full result in our state.
    pub async fn export(&self, input: &ExportInput) -> Result<ExportOutput> {
        self.check_config(input.run, input.config.as_deref())?;
        let task = &input.task;
        let destination = self.destination(&task.destination)?;
        let sink = self.sink(&task.destination, input.run).await?;
        let spec = export_spec(&self.config, destination, input.run)?;
        let request = plan::table_request(&self.config, destination, &task.table);
        // This step's own source, dropped (connections closed) when the step returns.
        let source: Arc<dyn Source> = wiring::source(&self.config, self.sdk().await, Reads::SourcePerStep);
        let result =
            export::export(task, &request, source.as_ref(), sink.as_ref(), &spec, &Cancel::default(), Arc::new(|_| {}))
                .await?;
        let pointer = self.state.put_result(input.run, &result).await?;
        crate::metrics::export(&result);
        tracing::info!(destination = %task.destination, table = %task.table, slice = task.slice.index, rows = result.rows, files = result.files.len(), "exported");
        Ok(ExportOutput {
            task: task.clone(),
            result: pointer,
            rows: result.rows,
            files: result.files.len() as u64,
            bytes: result.bytes,
        })
    }

    /// The finalize step: checks every task's result, then writes the receipts.
    pub async fn finalize(&self, input: &FinalizeInput) -> Result<FinalizeOutput> {
        self.check_config(input.run, input.config.as_deref())?;
        let destination = self.destination(&input.destination)?;
        let incomplete = |reason: String| Error::Incomplete { destination: input.destination.clone(), reason };
        let tasks: Vec<ExportTask> = match &input.tasks {
            Tasks::Listed(tasks) => tasks.clone(),
            Tasks::Stored(key) => {
                let bytes = self.state.get_document(key).await?;
                serde_json::from_slice(&bytes).map_err(|e| incomplete(format!("tasks document {key:?}: {e}")))?
            }
        };
        if let Some(task) = tasks.iter().find(|t| t.destination != input.destination) {
            return Err(incomplete(format!("the task list names destination {:?}", task.destination)));
        }
        let mut results: Vec<TaskResult> = Vec::with_capacity(tasks.len());
        match &input.results {
            Some(outputs) => {
                for output in outputs {
                    let result = self.state.get_result(&output.result).await?;
                    if result.task != output.task || result.rows != output.rows {
                        return Err(incomplete(format!(
                            "stored result {:?} does not match the task's output",
                            output.result
                        )));
                    }
                    results.push(result);
                }
            }
            None => {
                for task in &tasks {
                    let result = self.state.find_result(input.run, task).await?.ok_or_else(|| {
                        incomplete(format!(
                            "table {:?} slice {} of {} has no stored result",
                            task.table, task.slice.index, task.slice.count
                        ))
                    })?;
                    if &result.task != task {
                        return Err(incomplete(format!(
                            "the stored result of table {:?} slice {} of {} is another plan's (its bounds differ)",
                            task.table, task.slice.index, task.slice.count
                        )));
                    }
                    results.push(result);
                }
            }
        }
        let plan = plan::DestinationPlan { destination: input.destination.clone(), tasks };
        let spec = export_spec(&self.config, destination, input.run)?;
        let sink = self.sink(&input.destination, input.run).await?;
        let (receipt, written) = finalize::finalize(&plan, &results, &spec, sink.as_ref(), self.state.as_ref()).await?;
        tracing::info!(destination = %input.destination, run = %input.run, rows = receipt.row_count(), "finalized");
        if let Tasks::Stored(key) = &input.tasks {
            let outcome = Outcome {
                destination: input.destination.clone(),
                ok: true,
                rows: receipt.row_count(),
                error: None,
                cause: None,
            };
            self.state
                .put_document(&self.state.relative(&outcome_key(key, &input.destination)), to_json(&outcome)?)
                .await?;
        }
        Ok(FinalizeOutput {
            destination: input.destination.clone(),
            run: input.run,
            run_receipt: written.run_copy,
            root_receipt: written.root,
            rows: receipt.row_count(),
            tables: receipt.tables.len(),
        })
    }

    /// The failure step of a destination's child execution: records why it got no receipt.
    pub async fn record_failure(&self, input: &FailureInput) -> Result<Outcome> {
        let text = |field: &str| input.error[field].as_str().map(str::to_owned);
        let outcome = Outcome {
            destination: input.destination.clone(),
            ok: false,
            rows: 0,
            error: Some(text("Error").unwrap_or_else(|| "unknown".into())),
            cause: Some(text("Cause").unwrap_or_default().chars().take(1000).collect()),
        };
        let key = self.state.relative(&outcome_key(&input.tasks, &input.destination));
        self.state.put_document(&key, to_json(&outcome)?).await?;
        tracing::warn!(destination = %input.destination, run = %input.run, error = ?outcome.error, "destination failed");
        crate::metrics::destination_failed(&input.destination, outcome.error.as_deref().unwrap_or("unknown"));
        Ok(outcome)
    }

    /// The summary step: reads every destination's recorded outcome (a destination without one
    /// failed before it could record it), counts, and stores the summary as
    /// `summaries/<run>.json`.
    pub async fn summarize(&self, input: &SummarizeInput) -> Result<RunSummary> {
        use futures::{StreamExt, TryStreamExt};

        let bytes = self.state.get_document(&input.destinations).await?;
        let items: Vec<DestinationItem> = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Receipt(format!("destinations document {:?}: {e}", input.destinations)))?;
        let outcomes: Vec<Outcome> = futures::stream::iter(items)
            .map(|item| async move {
                // Stored keys are whole keys: read as they are.
                let key = outcome_key(&item.tasks, &item.destination);
                match self.state.get_document(&key).await {
                    Ok(bytes) => {
                        serde_json::from_slice(&bytes).map_err(|e| Error::Receipt(format!("outcome {key:?}: {e}")))
                    }
                    Err(e) if is_missing(&e) => {
                        crate::metrics::destination_failed(&item.destination, "NoOutcome");
                        Ok(Outcome {
                        destination: item.destination.clone(),
                        ok: false,
                        rows: 0,
                        error: Some("NoOutcome".into()),
                        cause: Some(
                            "the destination's child execution ended without recording an outcome (see its execution \
                             history)"
                                .into(),
                        ),
                    })
                    }
                    Err(e) => Err(e),
                }
            })
            .buffered(32)
            .try_collect()
            .await?;
        let mut failures: Vec<DestinationFailure> = outcomes
            .iter()
            .filter(|o| !o.ok)
            .map(|o| DestinationFailure {
                destination: o.destination.clone(),
                error: o.error.clone().unwrap_or_default(),
                cause: o.cause.clone().unwrap_or_default(),
            })
            .collect();
        let failed = failures.len();
        failures.sort_by(|a, b| a.destination.cmp(&b.destination));
        failures.truncate(MAX_LISTED_FAILURES);
        let key = format!("summaries/{}.json", input.run.to_string().replace(':', "_"));
        let mut summary = RunSummary {
            run: input.run,
            destinations: outcomes.len(),
            ok: outcomes.len() - failed,
            failed,
            rows: outcomes.iter().filter(|o| o.ok).map(|o| o.rows).sum(),
            failures,
            summary: key.clone(),
        };
        let body = serde_json::to_vec_pretty(&summary).map_err(|e| Error::Receipt(format!("summary: {e}")))?;
        summary.summary = self.state.put_document(&key, body).await?.key;
        tracing::info!(run = %input.run, ok = summary.ok, failed = summary.failed, "run summarized");
        crate::metrics::run(&summary.run, summary.ok, summary.failed, summary.rows);
        Ok(summary)
    }
}

/// Whether reading a document failed because it is not there.
fn is_missing(error: &Error) -> bool {
    match error {
        Error::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
        Error::Sink { source, .. } => {
            source.downcast_ref::<crate::sink::S3Error>().is_some_and(|e| e.code.as_deref() == Some("NoSuchKey"))
        }
        _ => false,
    }
}

/// Stores `plan` in `state` as the state machine reads it: one document per destination's tasks
/// and one listing the destinations, under `plans/<run>/<execution>/` (the execution's name,
/// reduced to `[A-Za-z0-9_-]`, at most 80 characters); returns where they are.
pub async fn store_plan(state: &dyn StateStore, plan: &Plan, execution: &str) -> Result<StoredPlan> {
    let execution: String = execution
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .take(80)
        .collect();
    let run = plan.run.to_string().replace(':', "_");
    let base = format!("plans/{run}/{}", if execution.is_empty() { "manual" } else { &execution });
    let mut items = Vec::with_capacity(plan.destinations.len());
    for destination in &plan.destinations {
        let key = format!("{base}/tasks/{}.json", destination.destination);
        let stored = state.put_document(&key, to_json(&destination.tasks)?).await?;
        items.push(DestinationItem {
            destination: destination.destination.clone(),
            tasks: stored.key,
            task_count: destination.tasks.len(),
        });
    }
    let stored = state.put_document(&format!("{base}/destinations.json"), to_json(&items)?).await?;
    Ok(StoredPlan {
        run: plan.run,
        config: plan.config.clone(),
        bucket: stored.bucket,
        destinations: stored.key,
        destination_count: items.len(),
        task_count: items.iter().map(|i| i.task_count).sum(),
    })
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Receipt(format!("plan document: {e}")))
}
