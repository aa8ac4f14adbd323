//! The state machine, in process: dump -> every export task (concurrently) -> finalize, through
//! the same functions the Lambda handlers call, with the JSON Step Functions would pass
//! (the Map states' ItemSelector shapes of template.yaml), compared with `byob run`'s result.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use byob::plan::PlanFilter;
use byob::receipt::Receipt;
use byob::run::{self, RunOptions, Silent};
use byob::workflow::{DumpInput, ExportInput, FinalizeInput, testing};
use futures::future::join_all;
use serde_json::{Value, json};

/// Every object under `root`, by key, with its bytes.
fn objects(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.insert(rel.to_string_lossy().into_owned(), std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_machine_writes_what_byob_run_writes() {
    // GIVEN the scheduler's event for 04:00
    let (dir, workflow) = testing::workflow();
    let event: DumpInput = serde_json::from_value(json!({"scheduled_time": "2023-03-14T04:00:12Z"})).expect("event");

    // WHEN the dump step plans, each destination's tasks export concurrently, and finalize runs
    let plan: Value = serde_json::to_value(workflow.dump(&event).await.expect("dump")).expect("plan JSON");
    let run = plan["run"].clone();
    // The plan pins the config: Plan's ResultSelector keeps "config", every ItemSelector and the
    // finalize Payload pass "config.$": "$.config".
    let config = plan["config"].clone();
    assert_eq!(config.as_str(), Some(workflow.config_sha256()), "the plan records the config's sha256");
    let mut finalized = Vec::new();
    for destination in plan["destinations"].as_array().expect("destinations") {
        // Map over tasks: ItemSelector {"run.$": "$.run", "config.$": "$.config", "task.$": "$$.Map.Item.Value"}
        let inputs: Vec<ExportInput> = destination["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .map(|task| {
                serde_json::from_value(json!({"run": run, "config": config, "task": task})).expect("export input")
            })
            .collect();
        let outputs = join_all(inputs.iter().map(|i| workflow.export(i))).await;
        let results: Vec<Value> =
            outputs.into_iter().map(|o| serde_json::to_value(o.expect("export")).expect("JSON")).collect();
        // Finalize: {"run", "config", "destination", "tasks", "results"}
        let input: FinalizeInput = serde_json::from_value(json!({
            "run": run,
            "config": config,
            "destination": destination["destination"],
            "tasks": destination["tasks"],
            "results": results,
        }))
        .expect("finalize input");
        let payload = serde_json::to_vec(&input).expect("payload");
        assert!(payload.len() < 256 * 1024, "the finalize input fits Step Functions' payload limit");
        finalized.push(workflow.finalize(&input).await.expect("finalize"));
    }
    assert_eq!(finalized.len(), 2);

    // THEN the buckets hold exactly what `byob run` writes for the same run
    let other = tempfile::tempdir().expect("tempdir");
    let config = testing::config(other.path());
    let report = run::run(
        &config,
        &RunOptions { run: "2023-03-14T04:00".parse().expect("run"), filter: PlanFilter::default() },
        Arc::new(Silent),
    )
    .await
    .expect("byob run");
    assert_eq!(report.failed().count(), 0);

    for id in ["acme", "globex"] {
        let ours = objects(&dir.path().join("buckets").join(id));
        let theirs = objects(&other.path().join("buckets").join(id));
        assert_eq!(ours.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>(), "{id}: same keys");
        for (key, bytes) in &ours {
            if key.ends_with("receipt.json") || key.ends_with("receipt.run.json") {
                // Receipts differ only in their timestamp.
                let a = Receipt::from_json(bytes).expect("receipt");
                let b = Receipt::from_json(&theirs[key]).expect("receipt");
                assert_eq!(
                    (a.run, a.previous_run, a.format, &a.tables),
                    (b.run, b.previous_run, b.format, &b.tables),
                    "{id}/{key}"
                );
            } else {
                assert!(bytes == &theirs[key], "{id}/{key}: bytes differ");
            }
        }
    }
}

/// One run, one config: an upload between the plan and an export fails that export (and the
/// destination's finalize) `NonRetryable`, naming both configs, and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_changed_during_the_run_fails_the_steps_that_would_mix_them() {
    // GIVEN a run planned with the config as it was
    let (dir, planned_with) = testing::workflow();
    let event: DumpInput = serde_json::from_value(json!({"run": "2023-03-14T04:00"})).expect("event");
    let plan = planned_with.dump(&event).await.expect("dump");
    let task = plan.destinations[0].tasks[0].clone();

    // WHEN the operator uploads a config with another format before the exports run
    let mut changed = planned_with.config().clone();
    changed.destinations[0].format.codec = byob::format::Codec::Zstd;
    let state = Arc::new(byob::state::LocalState::new(changed.state.path.clone()));
    let later = byob::workflow::Workflow::new(changed, state);
    assert_ne!(later.config_sha256(), plan.config);
    let input = ExportInput { run: plan.run, config: Some(plan.config.clone()), task };
    let err = later.export(&input).await.expect_err("the config changed");

    // THEN the export fails for good, naming the planned and the loaded config, and writes nothing
    assert!(!err.is_retryable(), "{err}");
    let message = err.to_string();
    assert!(message.contains(&plan.config) && message.contains(later.config_sha256()), "{message}");
    assert!(objects(&dir.path().join("buckets")).is_empty(), "nothing written");
    // AND the unchanged config runs the same task
    planned_with.export(&input).await.expect("the planned config exports");
}
