//! The state machine, in process: dump -> every export task (concurrently) -> finalize, through
//! the same functions the Lambda handlers call, with the JSON Step Functions would pass
//! (the Map states' ItemSelector shapes of template.yaml), compared with `byob run`'s result.

use byob_testkit::files;
use files::objects;

use std::sync::Arc;

use byob::plan::PlanFilter;
use byob::receipt::Receipt;
use byob::run::{self, RunOptions, Silent};
use byob::workflow::{DumpEvent, DumpInput, ExportInput, FinalizeInput};
use byob_testkit::workflow as testing;
use futures::future::join_all;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_machine_writes_what_byob_run_writes() {
    // GIVEN the scheduler's event for 04:00, as the Plan state passes it
    let (dir, workflow) = testing::workflow();
    let event: DumpEvent =
        serde_json::from_value(json!({"input": {"scheduled_time": "2023-03-14T04:00:12Z"}, "execution": "3f2a-run"}))
            .expect("event");

    // WHEN the dump step stores the plan, the destinations' Distributed Map reads its items, each
    // destination's tasks export concurrently (its own Distributed Map), and finalize runs
    let stored: Value =
        serde_json::to_value(workflow.dump_stored(&event.into_step()).await.expect("dump")).expect("JSON");
    let (run, config) = (stored["run"].clone(), stored["config"].clone());
    assert_eq!(config.as_str(), Some(workflow.config_sha256()), "the plan records the config's sha256");
    assert!(stored.to_string().len() < 1024, "Plan's output does not grow with the plan: {stored}");
    let state = dir.path().join("state");
    let read = |key: &str| -> Value {
        serde_json::from_slice(&std::fs::read(state.join(key)).expect("document")).expect("JSON")
    };
    // ItemReader {Bucket.$: $.bucket, Key.$: $.destinations}
    let items = read(stored["destinations"].as_str().expect("key"));
    let mut finalized = Vec::new();
    for item in items.as_array().expect("destinations") {
        // Child: ItemSelector {run.$, config.$, bucket.$, export_concurrency.$, destination.$, tasks.$}
        // Its Export map: ItemReader {Bucket.$: $.bucket, Key.$: $.tasks};
        // ItemSelector {"run.$": "$.run", "config.$": "$.config", "task.$": "$$.Map.Item.Value"}
        let tasks = read(item["tasks"].as_str().expect("key"));
        let inputs: Vec<ExportInput> = tasks
            .as_array()
            .expect("tasks")
            .iter()
            .map(|task| {
                serde_json::from_value(json!({"run": run, "config": config, "task": task})).expect("export input")
            })
            .collect();
        for output in join_all(inputs.iter().map(|i| workflow.export(i))).await {
            output.expect("export");
        }
        // Finalize: {"run", "config", "destination", "tasks"}: results are read from our state
        let input: FinalizeInput = serde_json::from_value(json!({
            "run": run,
            "config": config,
            "destination": item["destination"],
            "tasks": item["tasks"],
        }))
        .expect("finalize input");
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

/// Each destination records its own outcome beside the plan: finalize when it wrote the
/// receipt, the failure step (its child execution's Catch) when it did not. The summary step
/// reads them all; a destination whose child execution ended without recording one (it failed
/// outright, or was stopped) counts as failed.
#[tokio::test]
async fn the_summary_counts_every_destinations_outcome() {
    use byob::workflow::{DestinationItem, FailureInput, SummarizeInput, Tasks};

    let (dir, workflow) = testing::workflow();
    let event =
        DumpEvent::Direct(DumpInput { run: Some("2023-03-14T04:00".parse().expect("run")), ..DumpInput::default() });
    let plan = workflow.dump_stored(&event.into_step()).await.expect("dump");
    let state = dir.path().join("state");
    let mut items: Vec<DestinationItem> =
        serde_json::from_slice(&std::fs::read(state.join(&plan.destinations)).expect("items")).expect("JSON");
    // acme finalizes ...
    let tasks: Vec<byob::plan::ExportTask> =
        serde_json::from_slice(&std::fs::read(state.join(&items[0].tasks)).expect("tasks")).expect("JSON");
    for task in tasks {
        workflow.export(&ExportInput { run: plan.run, config: None, task }).await.expect("export");
    }
    let input = FinalizeInput {
        run: plan.run,
        config: None,
        destination: "acme".into(),
        tasks: Tasks::Stored(items[0].tasks.clone()),
        results: None,
    };
    let acme = workflow.finalize(&input).await.expect("finalize");
    // ... globex's export failed and its Catch recorded why ...
    let failure = FailureInput {
        run: plan.run,
        destination: "globex".into(),
        tasks: items[1].tasks.clone(),
        error: json!({"Error": "NonRetryable", "Cause": "writing \"dump/x\" to s3://globex: AccessDenied"}),
    };
    workflow.record_failure(&failure).await.expect("record");
    // ... and initech's child execution died without a word.
    items.push(DestinationItem {
        destination: "initech".into(),
        tasks: items[1].tasks.replace("globex", "initech"),
        task_count: 6,
    });
    std::fs::write(state.join(&plan.destinations), serde_json::to_vec(&items).expect("JSON")).expect("write");

    let summary = workflow
        .summarize(&SummarizeInput { run: plan.run, destinations: plan.destinations.clone() })
        .await
        .expect("summary");
    assert_eq!((summary.destinations, summary.ok, summary.failed, summary.rows), (3, 1, 2, acme.rows));
    let failures: Vec<(&str, &str)> =
        summary.failures.iter().map(|f| (f.destination.as_str(), f.error.as_str())).collect();
    assert_eq!(failures, [("globex", "NonRetryable"), ("initech", "NoOutcome")]);
    assert!(summary.failures[0].cause.contains("AccessDenied"));
    let stored: Value =
        serde_json::from_slice(&std::fs::read(state.join(&summary.summary)).expect("stored summary")).expect("JSON");
    assert_eq!(stored["failed"], 2);
}

/// Deployed, finalize reads each task's result from the key its export stored it under: a task
/// without one (its export never ran) and a tasks document of another destination are refused,
/// and nothing is written.
#[tokio::test]
async fn a_stored_plan_is_finalized_only_when_every_task_stored_its_result() {
    let (dir, workflow) = testing::workflow();
    let event =
        DumpEvent::Direct(DumpInput { run: Some("2023-03-14T04:00".parse().expect("run")), ..DumpInput::default() });
    let plan = workflow.dump_stored(&event.into_step()).await.expect("dump");
    let state = dir.path().join("state");
    let items: Vec<byob::workflow::DestinationItem> =
        serde_json::from_slice(&std::fs::read(state.join(&plan.destinations)).expect("items")).expect("JSON");
    let (acme, globex) = (&items[0], &items[1]);
    let tasks: Vec<byob::plan::ExportTask> =
        serde_json::from_slice(&std::fs::read(state.join(&acme.tasks)).expect("tasks")).expect("JSON");
    // All but the last task exported.
    for task in &tasks[..tasks.len() - 1] {
        workflow.export(&ExportInput { run: plan.run, config: None, task: task.clone() }).await.expect("export");
    }
    let finalize = |destination: &str, tasks: &str| FinalizeInput {
        run: plan.run,
        config: Some(plan.config.clone()),
        destination: destination.into(),
        tasks: byob::workflow::Tasks::Stored(tasks.into()),
        results: None,
    };
    let e = workflow.finalize(&finalize("acme", &acme.tasks)).await.expect_err("a result is missing");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("has no stored result"), "{e}");
    let e = workflow.finalize(&finalize("acme", &globex.tasks)).await.expect_err("another destination's tasks");
    assert!(e.to_string().contains("names destination \"globex\""), "{e}");
    assert!(objects(&dir.path().join("buckets/acme")).keys().all(|k| !k.ends_with("receipt.json")), "no receipt");
    // Once the last export ran, the destination finalizes.
    let last = tasks.last().expect("a task").clone();
    workflow.export(&ExportInput { run: plan.run, config: None, task: last }).await.expect("export");
    workflow.finalize(&finalize("acme", &acme.tasks)).await.expect("finalize");
    assert!(dir.path().join("buckets/acme/dump/receipt.json").exists());
}
