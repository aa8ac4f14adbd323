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
