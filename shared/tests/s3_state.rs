//! Our state in our own S3 bucket (what the deployed functions use), against moto.

use byob_testkit::moto;

use byob::format::Format;
use byob::layout::RunId;
use byob::plan::{ExportTask, TaskResult};
use byob::receipt::{FileEntry, Receipt};
use byob::source::{Bounds, Slice};
use byob::state::{S3State, StateStore, previous_run};
use moto::Moto;

fn result(run: &str) -> TaskResult {
    TaskResult {
        task: ExportTask {
            destination: "acme".into(),
            table: "events".into(),
            slice: Slice { index: 1, count: 3 },
            bounds: Bounds::Rows { from: 10, to: 20 },
            increment: None,
        },
        folder: format!("{run}/events"),
        schema: vec![],
        files: vec![FileEntry {
            key: format!("{run}/events/events_000001000000.parquet.gz"),
            rows: 7,
            bytes: 99,
            sha256: "ab".repeat(32),
            partition: None,
        }],
        rows: 7,
        bytes: 99,
        seconds: 0.5,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_and_task_results_round_trip_through_the_state_bucket() {
    let Some(moto) = Moto::start() else { return };
    let s3 = moto.s3(&moto.admin_config());
    s3.create_bucket().bucket("byob-state").send().await.expect("create bucket");
    let state = S3State::new(s3.clone(), "byob-state", "prod/");

    // GIVEN two finished runs of acme
    assert!(state.finished_runs("acme").await.expect("empty list").is_empty());
    for run in ["2023-03-13T15:00", "2023-03-14T04:00"] {
        let receipt =
            Receipt::new(run.parse().expect("run"), None, Format::default(), Default::default(), chrono::Utc::now());
        state.record("acme", &receipt).await.expect("record");
    }
    // THEN they are listed, and previous_run of a later run is the newest of them
    let runs = state.finished_runs("acme").await.expect("list");
    assert_eq!(runs.len(), 2);
    let next: RunId = "2023-03-14T15:00".parse().expect("run");
    assert_eq!(previous_run(&runs, next).map(|r| r.to_string()).as_deref(), Some("2023-03-14T04:00"));
    assert!(state.finished_runs("globex").await.expect("other").is_empty());

    // AND a task result is stored under the prefix and read back through its pointer
    let run: RunId = "2023-03-14T04:00".parse().expect("run");
    let pointer = state.put_result(run, &result("2023-03-14T04:00")).await.expect("put");
    assert_eq!(pointer, "s3://byob-state/prod/results/2023-03-14T04_00/acme/events/1-of-3.json");
    assert_eq!(state.get_result(&pointer).await.expect("get"), result("2023-03-14T04:00"));

    // AND a pointer into another bucket is refused, not followed
    let err = state.get_result("s3://someone-else/prod/results/x.json").await.expect_err("foreign pointer");
    assert!(err.to_string().contains("not in state bucket"), "{err}");
}

/// A tiny lake table `t` (tenant acme): ids `from..to`, `updated_at` = id seconds after 2024-03-01.
fn lake_file(folder: &std::path::Path, name: &str, ids: std::ops::Range<i64>) {
    use arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use std::sync::Arc;
    let schema = Arc::new(Schema::new(vec![
        Field::new("tenant_id", DataType::Utf8, false),
        Field::new("id", DataType::Int64, false),
        Field::new("updated_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
    ]));
    let n = (ids.end - ids.start) as usize;
    let batch = arrow::record_batch::RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["acme"; n])),
            Arc::new(Int64Array::from_iter_values(ids.clone())),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(ids.map(|i| 1_709_251_200_000_000 + i * 1_000_000))
                    .with_timezone("UTC"),
            ),
        ],
    )
    .expect("batch");
    std::fs::create_dir_all(folder).expect("folder");
    let file = std::fs::File::create(folder.join(name)).expect("file");
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployed_steps_take_an_incremental_range_from_the_state_bucket() {
    use byob::increment::{TableMode, Watermark};
    use byob::workflow::{DumpInput, ExportInput, FinalizeInput, Tasks, Workflow};
    use std::sync::Arc;

    let Some(moto) = Moto::start() else { return };
    let s3 = moto.s3(&moto.admin_config());
    s3.create_bucket().bucket("byob-state").send().await.expect("create bucket");
    let dir = tempfile::tempdir().expect("tempdir");
    lake_file(&dir.path().join("lake/t"), "a.parquet", 0..100);
    let path = dir.path().join("byob.toml");
    std::fs::write(
        &path,
        "[source]\ntype = \"parquet\"\npath = \"lake\"\n\n\
         [[tables]]\nname = \"t\"\nmode = \"incremental\"\nwatermark = \"updated_at\"\nprimary_key = [\"id\"]\n\n\
         [[destinations]]\nid = \"acme\"\ntenant = \"acme\"\nfolder = \"out\"\n",
    )
    .expect("config");
    // Each step a workflow of its own over the state bucket, as separate Lambda invocations.
    let step = || {
        let config = byob::config::Config::load(&path).expect("config");
        Workflow::new(config, Arc::new(S3State::new(s3.clone(), "byob-state", "prod")))
    };
    let dump = |run: &str| {
        let input = DumpInput { run: Some(run.parse().expect("run")), ..DumpInput::default() };
        async move { step().dump(&input).await.expect("plan") }
    };
    let finish = |plan: byob::plan::Plan| async move {
        let tasks = plan.destinations[0].tasks.clone();
        let mut outputs = Vec::new();
        for task in &tasks {
            let input = ExportInput { run: plan.run, config: Some(plan.config.clone()), task: task.clone() };
            outputs.push(step().export(&input).await.expect("export"));
        }
        let input = FinalizeInput {
            run: plan.run,
            config: Some(plan.config.clone()),
            destination: "acme".into(),
            tasks: Tasks::Listed(tasks),
            results: Some(outputs),
        };
        step().finalize(&input).await.expect("finalize")
    };

    // GIVEN a first run: full, up to the largest watermark
    let first = dump("2024-03-01T04:00").await;
    let increment = first.destinations[0].tasks[0].increment.clone().expect("increment");
    assert_eq!(increment.mode, TableMode::Full);
    let to = increment.range.to;
    assert_eq!(to, Watermark::from_micros(1_709_251_200_000_000 + 99 * 1_000_000));
    assert_eq!(finish(first).await.rows, 100);
    // WHEN rows arrive and the next run is planned in another invocation
    lake_file(&dir.path().join("lake/t"), "b.parquet", 100..130);
    let second = dump("2024-03-01T05:00").await;
    // THEN its range continues the first run's, read back from the state bucket
    let increment = second.destinations[0].tasks[0].increment.clone().expect("increment");
    assert_eq!(increment.mode, TableMode::Incremental);
    assert_eq!(increment.builds_on, Some("2024-03-01T04:00".parse().expect("run")));
    assert_eq!(increment.range.from, to);
    assert_eq!(finish(second).await.rows, 30, "only the new rows");
    let receipt = state_receipt(&s3, "2024-03-01T05:00").await;
    assert_eq!(receipt.tables["t"].mode, TableMode::Incremental);
}

async fn state_receipt(s3: &aws_sdk_s3::Client, run: &str) -> Receipt {
    let state = S3State::new(s3.clone(), "byob-state", "prod");
    let receipt = state.receipt("acme", run.parse().expect("run")).await.expect("recorded");
    let missing = state.receipt("acme", "2020-01-01T00:00".parse().expect("run")).await.expect_err("never ran");
    assert!(missing.to_string().contains("2020-01-01T00_00"), "{missing}");
    receipt
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_kept_receipt_costs_its_destination_a_full_dump_not_the_run() {
    use byob::increment::TableMode;
    use byob::plan::PlanFilter;
    use byob::state::LocalState;

    // GIVEN a kept receipt of acme's last run that does not parse (a partial write, an edit)
    let dir = tempfile::tempdir().expect("tempdir");
    lake_file(&dir.path().join("lake/t"), "a.parquet", 0..10);
    std::fs::create_dir_all(dir.path().join("state/acme")).expect("state");
    std::fs::write(dir.path().join("state/acme/2024-03-01T04_00.json"), "{\"version\": 1, \"tab").expect("garbage");
    let path = dir.path().join("byob.toml");
    std::fs::write(
        &path,
        "[source]\ntype = \"parquet\"\npath = \"lake\"\n\n\
         [[tables]]\nname = \"t\"\nmode = \"incremental\"\nwatermark = \"updated_at\"\n\n\
         [[destinations]]\nid = \"acme\"\ntenant = \"acme\"\nfolder = \"out\"\n",
    )
    .expect("config");
    let config = byob::config::Config::load(&path).expect("config");
    let source = byob::source::lake::LakeSource::new(dir.path().join("lake"));
    let state = LocalState::new(dir.path().join("state"));
    // WHEN the next run is planned
    let run = "2024-03-01T05:00".parse().expect("run");
    let plan = byob::plan::plan(&config, &source, Some(&state), run, &PlanFilter::default()).await.expect("plans");
    // THEN the table is dumped in full
    let increment = plan.destinations[0].tasks[0].increment.clone().expect("increment");
    assert_eq!(increment.mode, TableMode::Full);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lake_table_is_listed_once_for_its_high_water_and_its_plan() {
    use byob::increment::{Watermark, Window};
    use byob::source::{Source, TableRequest};

    // GIVEN a lake table in two files, the second holding the newer rows
    let dir = tempfile::tempdir().expect("tempdir");
    lake_file(&dir.path().join("lake/t"), "a.parquet", 0..100);
    lake_file(&dir.path().join("lake/t"), "b.parquet", 100..130);
    let source = byob::source::lake::LakeSource::new(dir.path().join("lake"));
    let request = TableRequest::new("t", "acme", "tenant_id");
    // WHEN its high-water is read and its increment planned, as a plan does
    let found = source.high_water(&request, "updated_at").await.expect("high-water");
    assert_eq!(found.max, Watermark::from_micros(1_709_251_200_000_000 + 129 * 1_000_000));
    let window = Window {
        column: "updated_at".into(),
        after: Watermark::from_micros(1_709_251_200_000_000 + 99 * 1_000_000),
        through: found.max,
    };
    let planned = source.plan(&TableRequest { window: Some(window), ..request.clone() }, 1_000).await.expect("plan");
    // THEN the folder was listed once, and the plan names only the newer file
    assert_eq!(source.read_stats().lists, 1);
    let text = format!("{planned:?}");
    assert!(text.contains("b.parquet") && !text.contains("a.parquet"), "{text}");
    // AND a plan of another tenant lists again (the kept scan is not another tenant's)
    source.plan(&TableRequest::new("t", "globex", "tenant_id"), 1_000).await.expect("plan");
    assert_eq!(source.read_stats().lists, 2);
}
