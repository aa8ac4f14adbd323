//! Finalizing a destination: check that every task of the plan succeeded and that every
//! file is accounted for, then write the receipt: the run's immutable copy (`<run>/receipt.run.json`) first,
//! the prefix's root `receipt.json` last (the only key of a dump ending in `receipt.json`).
//!
//! The root receipt is what a customer's S3 trigger fires on, so it must never point at a
//! file that is not complete, and it must never move backwards: a backfill of an older run
//! writes only that run's copy. If anything is missing, nothing is written.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::export::ExportSpec;
use crate::format::Format;
use crate::layout::{self, RunId};
use crate::plan::{DestinationPlan, TaskResult};
use crate::receipt::{FileEncryption, Manifest, Receipt, TableReceipt};
use crate::sink::{ObjectSink, PutOptions};
use crate::state::{self, StateStore};
use crate::{Error, Result};

/// Builds the receipt of one destination from its plan and the results of its tasks.
/// Fails, naming the cause, unless every planned task has exactly one consistent result.
pub fn build_receipt(
    plan: &DestinationPlan,
    results: &[TaskResult],
    run: RunId,
    previous_run: Option<RunId>,
    format: Format,
    now: DateTime<Utc>,
) -> Result<Receipt> {
    let incomplete = |reason: String| Error::Incomplete { destination: plan.destination.clone(), reason };

    for result in results {
        if !plan.tasks.contains(&result.task) {
            return Err(incomplete(format!(
                "a result for table {:?} slice {}/{} that is not in the plan",
                result.task.table, result.task.slice.index, result.task.slice.count
            )));
        }
    }
    let mut tables: BTreeMap<String, TableReceipt> = BTreeMap::new();
    let mut seen_keys = HashSet::new();
    for task in &plan.tasks {
        let mut matching = results.iter().filter(|r| &r.task == task);
        let result = matching.next().ok_or_else(|| {
            incomplete(format!(
                "table {:?} slice {}/{} has no result (the task failed or did not run)",
                task.table, task.slice.index, task.slice.count
            ))
        })?;
        if matching.next().is_some() {
            return Err(incomplete(format!(
                "table {:?} slice {}/{} has more than one result",
                task.table, task.slice.index, task.slice.count
            )));
        }
        let folder_prefix = format!("{}/", result.folder);
        for file in &result.files {
            if !file.key.starts_with(&folder_prefix) {
                return Err(incomplete(format!("file {:?} is outside its table folder {:?}", file.key, result.folder)));
            }
            if !seen_keys.insert(file.key.clone()) {
                return Err(incomplete(format!("file {:?} is listed twice", file.key)));
            }
        }
        if result.rows != result.files.iter().map(|f| f.rows).sum::<u64>() {
            return Err(incomplete(format!("table {:?}: the task's row count does not match its files", task.table)));
        }
        match tables.get_mut(&task.table) {
            None => {
                let entry = TableReceipt::new(result.folder.clone(), result.schema.clone(), result.files.clone());
                tables.insert(task.table.clone(), entry.with_increment(task.increment.as_ref()));
            }
            Some(table) => {
                if table.schema != result.schema || table.folder != result.folder {
                    return Err(incomplete(format!(
                        "slice {} of table {:?} has a different schema or folder than slice 0",
                        task.slice.index, task.table
                    )));
                }
                let first = plan.tasks.iter().find(|t| t.table == task.table).and_then(|t| t.increment.as_ref());
                if task.increment.as_ref() != first {
                    return Err(incomplete(format!(
                        "slice {} of table {:?} was planned with another range than slice 0",
                        task.slice.index, task.table
                    )));
                }
                let mut files = std::mem::take(&mut table.files);
                files.extend(result.files.iter().cloned());
                let entry = TableReceipt::new(table.folder.clone(), table.schema.clone(), files);
                *table = entry.with_increment(task.increment.as_ref());
            }
        }
    }
    Ok(Receipt::new(run, previous_run, format, tables, now))
}

/// Where the receipts of a run went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The run's immutable copy, `<prefix>/<run>/receipt.run.json`.
    pub run_copy: String,
    /// The root receipt `<prefix>/receipt.json`, unless a newer run already owns it.
    pub root: Option<String>,
}

/// Finalizes one destination: builds the receipt, writes the manifest when asked, the run
/// copy, then the root receipt (unless a newer run finished already), and records the run in
/// our state.
pub async fn finalize(
    plan: &DestinationPlan,
    results: &[TaskResult],
    spec: &ExportSpec,
    sink: &dyn ObjectSink,
    state: &dyn StateStore,
) -> Result<(Receipt, Written)> {
    let (run, prefix) = (spec.run, spec.prefix.as_str());
    let finished = state.finished_runs(&plan.destination).await?;
    let previous = state::previous_run(&finished, run);
    let mut receipt = build_receipt(plan, results, run, previous, spec.format.clone(), Utc::now())?;
    if let Some(key) = &spec.pgp {
        let info = key
            .check(std::time::SystemTime::now())
            .map_err(|e| Error::Format { table: String::new(), source: crate::format::FormatError::Pgp(e) })?;
        receipt.encryption = Some(FileEncryption {
            kind: "openpgp".into(),
            fingerprint: info.fingerprint,
            encryption_key: info.encryption_fingerprint,
        });
    }
    let options = PutOptions {
        content_type: "application/json".into(),
        metadata: BTreeMap::from([("byob-run".to_string(), run.to_string())]),
    };
    if spec.manifest {
        let key = Manifest::key(&plan.destination, run);
        let manifest = Manifest::of(&plan.destination, prefix, &receipt);
        sink.put(&layout::join(prefix, &key), Bytes::from(manifest.to_json()), &options).await?;
        receipt.manifest = Some(key);
    }
    let body = Bytes::from(receipt.to_json());
    let run_copy = layout::join(prefix, &layout::run_receipt_key(&run));
    sink.put(&run_copy, body.clone(), &options).await?;
    let root = if state::newer_run_exists(&finished, run) {
        tracing::warn!(destination = %plan.destination, %run, "a newer run already finished: wrote only this run's receipt copy, the root receipt.json is unchanged");
        None
    } else {
        let root = layout::join(prefix, layout::RECEIPT_FILE);
        sink.put(&root, body, &options).await?;
        Some(root)
    };
    state.record(&plan.destination, &receipt).await?;
    Ok((receipt, Written { run_copy, root }))
}
