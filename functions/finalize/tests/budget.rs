//! The state machine's budget at scale, from real plans: 10,000 destinations x 6 tables, and one
//! destination whose table is a terabyte (1,000 slices). Every payload a state passes is
//! measured as the JSON the steps produce, and must stay under a quarter of Step Functions'
//! 256 KB; the parent's payloads must not grow with the number of destinations or tasks.
//!
//! The history side is structural and lives in `tests/check_template.py`: every Map is a
//! Distributed Map (each destination, and each task, its own child execution) reading its
//! items from S3 and writing its children's outputs to S3, so each execution's worst-case
//! history is a constant (36, 30 and 55 events, the last with 20 throttling retries) whatever the
//! plan's size.
//!
//! The source is a stand-in that plans fixed bounds of the PostgreSQL shape (key ranges), so
//! ten thousand destinations plan in a moment: the budget depends on the plan's shape, not on
//! how rows are read. Mocked for that reason only.

use byob::config::Config;
use byob::plan::{ExportTask, PlanFilter};
use byob::source::{Bounds, Source, TableRequest, TableStream};
use byob::state::LocalState;
use byob::workflow::{DestinationItem, ExportInput, FinalizeInput, StoredPlan, Tasks, store_plan};
use serde_json::{Value, json};

/// A quarter of Step Functions' 256 KB payload limit.
const BUDGET: usize = 64 * 1024;

/// Plans `slices(table)` key-range slices per table.
#[derive(Debug)]
struct Planned(fn(&str) -> u64);

#[async_trait::async_trait]
impl Source for Planned {
    async fn plan(&self, request: &TableRequest, _target: u64) -> byob::Result<Vec<Bounds>> {
        let count = (self.0)(&request.table);
        let step = i64::MAX / (count as i64 + 1);
        Ok((0..count as i64)
            .map(|i| Bounds::Keys {
                column: "occurred_at".into(),
                from: (i > 0).then(|| i * step),
                to: Some((i + 1) * step),
                nulls: i == 0,
                infinity: i + 1 == count as i64,
            })
            .collect())
    }

    async fn open(&self, _request: &TableRequest, _bounds: &Bounds) -> byob::Result<TableStream> {
        unreachable!("the budget never reads rows")
    }
}

fn config(destinations: usize) -> Config {
    let tables: String =
        byob_testkit::generate::TABLES.iter().map(|t| format!("[[tables]]\nname = \"{t}\"\n")).collect();
    let destinations: String = (0..destinations)
        .map(|i| {
            format!(
                "[[destinations]]\nid = \"customer-{i:05}-eu-west-1-production\"\ntenant = \"tenant-{i:05}\"\n\
                 bucket = \"customer-{i:05}-data-exports-eu-west-1\"\nprefix = \"exports/byob/v1\"\n\
                 role_arn = \"arn:aws:iam::{:012}:role/byob-exports-writer\"\nexternal_id = \"byob-{i:05}-7f3e9c1d2b\"\n\n",
                100_000_000_000u64 + i as u64
            )
        })
        .collect();
    let text = format!(
        "[source]\ntype = \"postgres\"\nurl = \"postgresql://byob@db.internal:5432/platform\"\n\n{tables}\n{destinations}\
         [aws]\nwriter_role_arn = \"arn:aws:iam::111122223333:role/byob-destination-writer-eu-west-1\"\n\n\
         [state]\npath = \"s3://byob-state-111122223333-eu-west-1/\"\n"
    );
    Config::from_toml_str(&text, std::path::Path::new("/tmp")).unwrap_or_else(|e| panic!("{e}"))
}

fn size(value: &impl serde::Serialize) -> usize {
    serde_json::to_vec(value).expect("JSON").len()
}

/// Plans and stores a run of `config`; returns the stored plan, its destinations and tasks.
async fn stored(
    config: &Config,
    source: &Planned,
) -> (StoredPlan, Vec<(DestinationItem, Vec<ExportTask>)>, tempfile::TempDir) {
    let run = "2026-11-30T04:00".parse().expect("run");
    let plan = byob::plan::plan(config, source, None, run, &PlanFilter::default()).await.expect("plan");
    let dir = tempfile::tempdir().expect("tempdir");
    let state = LocalState::new(dir.path());
    let stored = store_plan(&state, &plan, "5b0c7c1e-9a52-3f0b-4d8e-9a611f2e3d4c").await.expect("store");
    let read = |key: &str| std::fs::read(dir.path().join(key)).expect("document");
    let items: Vec<DestinationItem> = serde_json::from_slice(&read(&stored.destinations)).expect("items");
    let with_tasks = items
        .into_iter()
        .map(|item| {
            let tasks: Vec<ExportTask> = serde_json::from_slice(&read(&item.tasks)).expect("tasks");
            (item, tasks)
        })
        .collect();
    (stored, with_tasks, dir)
}

/// The largest payload of every state, from a stored plan (the JSON each step produces, and
/// the ItemSelector and Parameters shapes of template.yaml).
fn payloads(stored: &StoredPlan, destinations: &[(DestinationItem, Vec<ExportTask>)]) -> Vec<(&'static str, usize)> {
    let plan_output = {
        let mut v = serde_json::to_value(stored).expect("JSON");
        v["destination_concurrency"] = json!(1000);
        v["export_concurrency"] = json!(1000);
        v
    };
    let child_input = |item: &DestinationItem| {
        json!({"run": stored.run, "config": stored.config, "bucket": "byob-state-111122223333-eu-west-1",
               "export_concurrency": 1000, "destination": item.destination, "tasks": item.tasks})
    };
    let export_input =
        |task: &ExportTask| ExportInput { run: stored.run, config: Some(stored.config.clone()), task: task.clone() };
    let finalize_input = |item: &DestinationItem| FinalizeInput {
        run: stored.run,
        config: Some(stored.config.clone()),
        destination: item.destination.clone(),
        tasks: Tasks::Stored(item.tasks.clone()),
        results: None,
    };
    let failed = |item: &DestinationItem| {
        let mut v: Value = child_input(item);
        v["error"] = json!({"Error": "NonRetryable", "Cause": "x".repeat(32 * 1024)});
        v
    };
    let max = |sizes: &mut dyn Iterator<Item = usize>| sizes.max().unwrap_or(0);
    vec![
        ("Plan output (the parent's state)", size(&plan_output)),
        ("a destinations.json item", max(&mut destinations.iter().map(|(i, _)| size(i)))),
        ("a destination's child input", max(&mut destinations.iter().map(|(i, _)| size(&child_input(i))))),
        (
            "an export task's input",
            max(&mut destinations.iter().flat_map(|(_, t)| t.iter().map(|t| size(&export_input(t))))),
        ),
        ("Finalize input", max(&mut destinations.iter().map(|(i, _)| size(&finalize_input(i))))),
        ("DestinationFailed (a 32 KB Lambda error)", max(&mut destinations.iter().map(|(i, _)| size(&failed(i))))),
    ]
}

#[tokio::test]
async fn ten_thousand_destinations_of_six_tables_stay_inside_every_limit() {
    // Events in 4 slices, the rest in one: 30,000 tasks over 10,000 destinations.
    let source = Planned(|table| if table == "events" { 4 } else { 1 });
    let (big, big_tasks, _dir) = stored(&config(10_000), &source).await;
    let (small, _, _small_dir) = stored(&config(10), &source).await;
    assert_eq!((big.destination_count, big.task_count), (10_000, 90_000));
    for (state, bytes) in payloads(&big, &big_tasks) {
        println!("{state}: {bytes} bytes");
        assert!(bytes < BUDGET, "{state}: {bytes} bytes");
    }
    // The parent's state does not grow with destinations or tasks (only a count's digits do).
    let (a, b) = (size(&big), size(&small));
    assert!(a.abs_diff(b) < 16, "Plan's output: {a} bytes for 10,000 destinations, {b} for 10");
    // Every summary fits too: at most MAX_LISTED_FAILURES failures of at most 1,000 characters.
    let failure = byob::workflow::DestinationFailure {
        destination: "customer-00000-eu-west-1-production".into(),
        error: "NonRetryable".into(),
        cause: "x".repeat(1000),
    };
    let summary = byob::workflow::RunSummary {
        run: big.run,
        destinations: 10_000,
        ok: 0,
        failed: 10_000,
        rows: u64::MAX,
        failures: vec![failure; byob::workflow::MAX_LISTED_FAILURES],
        summary: "summaries/2026-11-30T04_00.json".into(),
    };
    assert!(size(&summary) < 2 * BUDGET, "the execution's output: {} bytes", size(&summary));
}

#[tokio::test]
async fn a_terabyte_table_of_one_destination_stays_inside_every_limit() {
    // 5 billion rows (1 TB at ~200 bytes a row) at the default 5,000,000 rows per slice.
    let source = Planned(|table| if table == "events" { 1_000 } else { 1 });
    let config = config(1);
    assert_eq!(config.export.target_rows_per_slice, 5_000_000);
    let (stored, destinations, _dir) = stored(&config, &source).await;
    assert_eq!(stored.task_count, 1_005);
    for (state, bytes) in payloads(&stored, &destinations) {
        println!("{state}: {bytes} bytes");
        assert!(bytes < BUDGET, "{state}: {bytes} bytes");
    }
    let tasks_document = size(&destinations[0].1);
    println!("the destination's tasks document: {tasks_document} bytes (an S3 object the Map reads)");
}
