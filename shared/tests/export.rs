//! Export and finalize against an in-memory source and a local folder sink: rollover, shard
//! numbering, empty tables, checksums, failures that must leave nothing behind.

use byob_testkit::files;
use files::files_under;

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use byob::export::{self, Cancel, ExportSpec};
use byob::finalize;
use byob::format::{Codec, Format, FormatKind};
use byob::layout::RunId;
use byob::plan::{DestinationPlan, ExportTask, TaskResult};
use byob::sink::LocalSink;
use byob::source::{BatchStream, Bounds, Slice, Source, TableRequest, TableStream};
use byob::state::{LocalState, StateStore};
use byob_testkit::memory::MemorySource;
use sha2::{Digest, Sha256};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("tenant_id", DataType::Utf8, false),
        Field::new("id", DataType::Int64, false),
        Field::new("note", DataType::Utf8, true),
    ]))
}

fn rows(n: i64, tenant_of: impl Fn(i64) -> &'static str) -> RecordBatch {
    let tenants: Vec<&str> = (0..n).map(&tenant_of).collect();
    let notes: Vec<Option<String>> = (0..n).map(|i| (i % 7 != 0).then(|| format!("note {i}; \"quoted\""))).collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(tenants)) as ArrayRef,
            Arc::new(Int64Array::from_iter_values(0..n)),
            Arc::new(StringArray::from(notes)),
        ],
    )
    .expect("batch")
}

fn spec(format: Format, max_file_rows: u64) -> ExportSpec {
    ExportSpec { max_file_rows, ..byob_testkit::spec::export_spec("2023-03-14T04:03", "byob", format) }
}

/// The spec finalize reads: run `run`, prefix `p`, default format.
fn finalizing(run: &str) -> ExportSpec {
    ExportSpec { run: run.parse().expect("run id"), prefix: "p".into(), ..spec(Format::default(), 1) }
}

fn request(table: &str, tenant: &str) -> TableRequest {
    TableRequest::new(table, tenant, "tenant_id")
}

fn task(table: &str, slice: Slice) -> ExportTask {
    ExportTask { destination: "acme".into(), table: table.into(), slice, bounds: Bounds::Whole, increment: None }
}

fn no_progress() -> export::RowsCallback {
    Arc::new(|_| {})
}

#[tokio::test]
async fn files_roll_over_at_the_row_limit_with_consecutive_shards_and_true_checksums() {
    // GIVEN 10,000 rows of which acme owns a third
    let source = MemorySource::new().with_table(
        "events",
        schema(),
        vec![rows(10_000, |i| if i % 3 == 0 { "acme" } else { "globex" })],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = LocalSink::new(dir.path());
    let csv = Format::new(FormatKind::Csv, Codec::Gzip);

    // WHEN acme's slice is exported with at most 1,000 rows per file
    let result = export::export(
        &task("events", Slice::WHOLE),
        &request("events", "acme"),
        &source,
        &sink,
        &spec(csv, 1000),
        &Cancel::default(),
        no_progress(),
    )
    .await
    .expect("export");

    // THEN 3,334 rows land in 4 files numbered 0..3, every one exactly as reported
    assert_eq!(result.rows, 3334);
    let keys: Vec<&str> = result.files.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(
        keys,
        (0..4).map(|i| format!("2023-03-14T04:03/events/events_00000000000{i}.csv.gz")).collect::<Vec<_>>()
    );
    assert_eq!(result.files.iter().map(|f| f.rows).collect::<Vec<_>>(), vec![1000, 1000, 1000, 334]);
    assert_eq!(result.folder, "2023-03-14T04:03/events");
    for f in &result.files {
        let bytes = std::fs::read(dir.path().join("byob").join(&f.key)).expect("file exists");
        assert_eq!(bytes.len() as u64, f.bytes, "{}", f.key);
        assert_eq!(hex::encode(Sha256::digest(&bytes)), f.sha256, "{}", f.key);
    }
    assert_eq!(files_under(dir.path()).len(), 4, "no temporary files remain");
}

#[tokio::test]
async fn a_slice_without_planned_bounds_is_refused_before_anything_is_written() {
    let source = MemorySource::new().with_table("t", schema(), vec![rows(10, |_| "acme")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = LocalSink::new(dir.path());
    // A hand-made task naming slice 1 of 2 but no bounds would read the whole table again.
    let e = export::export(
        &task("t", Slice { index: 1, count: 2 }),
        &request("t", "acme"),
        &source,
        &sink,
        &spec(Format::default(), 1_000_000),
        &Cancel::default(),
        no_progress(),
    )
    .await
    .expect_err("refused");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("slice 1 of 2 but carries no bounds"), "{e}");
    assert!(files_under(dir.path()).is_empty(), "nothing written");
}

#[tokio::test]
async fn slices_number_their_files_apart_and_only_slice_zero_writes_an_empty_file() {
    let source = MemorySource::new().with_table("t", schema(), vec![rows(10, |_| "acme")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = LocalSink::new(dir.path());
    let parquet = Format::default();
    let s = spec(parquet, 1_000_000);
    // 10 rows in 20 slices: most slices are empty.
    let mut all = Vec::new();
    for index in 0..20 {
        let r = export::export(
            &ExportTask {
                bounds: Bounds::Rows { from: u64::from(index) * 10 / 20, to: u64::from(index + 1) * 10 / 20 },
                ..task("t", Slice { index, count: 20 })
            },
            &request("t", "acme"),
            &source,
            &sink,
            &s,
            &Cancel::default(),
            no_progress(),
        )
        .await
        .expect("export");
        if index == 0 {
            // Slice 0 always writes a file, so an empty table still carries its schema.
            assert_eq!(r.files.len(), 1, "slice 0 wrote {:?}", r.files);
            assert_eq!(r.files[0].key, "2023-03-14T04:03/t/t_000000000000.parquet.gz");
        } else if r.rows == 0 {
            assert!(r.files.is_empty(), "empty slice {index} wrote {:?}", r.files);
        } else {
            assert_eq!(r.files.len(), 1);
            assert_eq!(r.files[0].key, format!("2023-03-14T04:03/t/t_{:012}.parquet.gz", u64::from(index) * 1_000_000));
        }
        all.extend(r.files);
    }
    assert_eq!(all.iter().map(|f| f.rows).sum::<u64>(), 10);
}

#[tokio::test]
async fn an_empty_table_gets_one_file_with_its_schema() {
    let source = MemorySource::new().with_table("t", schema(), vec![rows(100, |_| "globex")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = LocalSink::new(dir.path());
    let r = export::export(
        &task("t", Slice::WHOLE),
        &request("t", "acme"),
        &source,
        &sink,
        &spec(Format::default(), 10),
        &Cancel::default(),
        no_progress(),
    )
    .await
    .expect("export");
    assert_eq!(r.rows, 0);
    assert_eq!(r.files.len(), 1);
    assert_eq!(r.files[0].rows, 0);
    let file = std::fs::File::open(dir.path().join("byob").join(&r.files[0].key)).expect("file");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet");
    assert_eq!(reader.schema().fields().len(), 3, "the empty file carries the schema");
    assert_eq!(reader.metadata().file_metadata().num_rows(), 0);
}

/// A source whose stream fails after some rows: a network error in the middle of a table.
#[derive(Debug)]
struct FailingSource;

#[async_trait::async_trait]
impl Source for FailingSource {
    async fn plan(&self, _: &TableRequest, _: u64) -> byob::Result<Vec<Bounds>> {
        Ok(vec![Bounds::Whole])
    }
    async fn open(&self, request: &TableRequest, _: &Bounds) -> byob::Result<TableStream> {
        let table = request.table.clone();
        let items: Vec<byob::Result<RecordBatch>> = vec![
            Ok(rows(3000, |_| "acme")),
            Ok(rows(3000, |_| "acme")),
            Err(byob::Error::Source { table, location: "test".into(), source: "connection reset".into() }),
        ];
        let batches: BatchStream = Box::pin(futures::stream::iter(items));
        Ok(TableStream { schema: schema(), batches })
    }
}

#[tokio::test]
async fn a_source_failure_mid_table_leaves_no_partial_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = LocalSink::new(dir.path());
    let err = export::export(
        &task("t", Slice::WHOLE),
        &request("t", "acme"),
        &FailingSource,
        &sink,
        &spec(Format::default(), 4000),
        &Cancel::default(),
        no_progress(),
    )
    .await
    .expect_err("the source failed");
    assert!(err.to_string().contains("connection reset"), "{err}");
    // The first file (4,000 rows) completed before the failure; the second was aborted.
    let files = files_under(dir.path());
    assert!(files.iter().all(|f| !f.contains("byob-partial")), "partial files left: {files:?}");
    assert!(files.len() <= 1, "{files:?}");
}

#[tokio::test]
async fn a_cancelled_export_stops_and_cleans_up() {
    let source = MemorySource::new().with_table("t", schema(), vec![rows(50_000, |_| "acme")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = LocalSink::new(dir.path());
    let cancel = Cancel::default();
    cancel.cancel();
    let err = export::export(
        &task("t", Slice::WHOLE),
        &request("t", "acme"),
        &source,
        &sink,
        &spec(Format::default(), 1_000_000),
        &cancel,
        no_progress(),
    )
    .await
    .expect_err("cancelled");
    assert!(matches!(err, byob::Error::Cancelled(_)), "{err}");
    assert!(files_under(dir.path()).is_empty(), "{:?}", files_under(dir.path()));
}

#[tokio::test]
async fn rerunning_a_run_rewrites_the_same_keys_with_the_same_bytes() {
    let source = MemorySource::new().with_table("t", schema(), vec![rows(5000, |_| "acme")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = LocalSink::new(dir.path());
    let s = spec(Format::new(FormatKind::Jsonl, Codec::Gzip), 2000);
    let first = export::export(
        &task("t", Slice::WHOLE),
        &request("t", "acme"),
        &source,
        &sink,
        &s,
        &Cancel::default(),
        no_progress(),
    )
    .await
    .expect("first");
    let second = export::export(
        &task("t", Slice::WHOLE),
        &request("t", "acme"),
        &source,
        &sink,
        &s,
        &Cancel::default(),
        no_progress(),
    )
    .await
    .expect("second");
    assert_eq!(first.files, second.files);
    assert_eq!(files_under(dir.path()).len(), 3);
}

fn result_for(table: &str, slice: Slice, files: Vec<(&str, u64)>) -> TaskResult {
    let files: Vec<byob::receipt::FileEntry> = files
        .into_iter()
        .map(|(k, rows)| byob::receipt::FileEntry {
            key: k.into(),
            rows,
            bytes: 10,
            sha256: "00".repeat(32),
            partition: None,
        })
        .collect();
    TaskResult {
        task: task(table, slice),
        folder: format!("2023-03-14T04:03/{table}"),
        schema: byob::schema::describe(&schema()).expect("describable"),
        rows: files.iter().map(|f| f.rows).sum(),
        bytes: files.iter().map(|f| f.bytes).sum(),
        files,
        seconds: 0.0,
    }
}

#[test]
fn finalize_refuses_a_destination_with_a_missing_task() {
    let run: RunId = "2023-03-14T04:03".parse().expect("run");
    let plan = DestinationPlan {
        destination: "acme".into(),
        tasks: vec![
            task("a", Slice { index: 0, count: 2 }),
            task("a", Slice { index: 1, count: 2 }),
            task("b", Slice::WHOLE),
        ],
    };
    let ok = vec![
        result_for("a", Slice { index: 0, count: 2 }, vec![("2023-03-14T04:03/a/a_000000000000.parquet.gz", 5)]),
        result_for("a", Slice { index: 1, count: 2 }, vec![("2023-03-14T04:03/a/a_000001000000.parquet.gz", 6)]),
        result_for("b", Slice::WHOLE, vec![("2023-03-14T04:03/b/b_000000000000.parquet.gz", 0)]),
    ];
    let receipt =
        finalize::build_receipt(&plan, &ok, run, None, Format::default(), chrono::Utc::now()).expect("complete");
    assert_eq!(receipt.tables["a"].row_count, 11);
    assert_eq!(receipt.tables["a"].total_file_count, 2);
    assert_eq!(receipt.tables["b"].total_file_count, 1);

    let err = finalize::build_receipt(&plan, &ok[..2], run, None, Format::default(), chrono::Utc::now())
        .expect_err("b missing");
    assert!(err.to_string().contains("\"b\"") && err.to_string().contains("no result"), "{err}");

    let mut dup = ok.clone();
    dup.push(ok[0].clone());
    assert!(finalize::build_receipt(&plan, &dup, run, None, Format::default(), chrono::Utc::now()).is_err());

    let mut outside = ok.clone();
    outside[2].files[0].key = "2023-03-14T04:03/a/b_000000000000.parquet.gz".into();
    let err = finalize::build_receipt(&plan, &outside, run, None, Format::default(), chrono::Utc::now())
        .expect_err("outside");
    assert!(err.to_string().contains("outside its table folder"), "{err}");
}

#[tokio::test]
async fn finalize_writes_the_run_copy_then_the_root_and_never_moves_the_root_backwards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = LocalSink::new(dir.path().join("bucket"));
    let state = LocalState::new(dir.path().join("state"));
    let plan = DestinationPlan { destination: "acme".into(), tasks: vec![task("a", Slice::WHOLE)] };
    let results = |run: &str| {
        let mut r = result_for("a", Slice::WHOLE, vec![]);
        r.folder = format!("{run}/a");
        r.files = vec![byob::receipt::FileEntry {
            key: format!("{run}/a/a_000000000000.parquet.gz"),
            rows: 1,
            bytes: 1,
            sha256: "00".repeat(32),
            partition: None,
        }];
        r.rows = 1;
        vec![r]
    };
    let read_root = || {
        byob::receipt::Receipt::from_json(&std::fs::read(dir.path().join("bucket/p/receipt.json")).expect("root"))
            .expect("parses")
    };

    let (r1, w1) =
        finalize::finalize(&plan, &results("2023-03-14T04:03"), &finalizing("2023-03-14T04:03"), &sink, &state)
            .await
            .expect("first");
    assert_eq!(r1.previous_run, None);
    assert_eq!(w1.run_copy, "p/2023-03-14T04:03/receipt.run.json");
    assert_eq!(read_root().run.to_string(), "2023-03-14T04:03");

    let (r2, _) =
        finalize::finalize(&plan, &results("2023-03-14T15:00"), &finalizing("2023-03-14T15:00"), &sink, &state)
            .await
            .expect("second");
    assert_eq!(r2.previous_run.map(|r| r.to_string()).as_deref(), Some("2023-03-14T04:03"));
    assert_eq!(read_root().run.to_string(), "2023-03-14T15:00");

    // A backfill of an older run writes its own copy but leaves the root on the newest run.
    let (_, w3) =
        finalize::finalize(&plan, &results("2023-03-13T04:00"), &finalizing("2023-03-13T04:00"), &sink, &state)
            .await
            .expect("backfill");
    assert_eq!(w3.root, None);
    assert!(dir.path().join("bucket/p/2023-03-13T04:00/receipt.run.json").exists());
    assert_eq!(read_root().run.to_string(), "2023-03-14T15:00");
    assert_eq!(state.finished_runs("acme").await.expect("state").len(), 3);
}

/// A local sink whose first three uploads finish only once the next object has been started
/// (waiting at most 10 s, then failing): what a slow S3 CompleteMultipartUpload looks like to an
/// exporter that waits for it before going on.
#[derive(Debug)]
struct SlowToFinish {
    inner: LocalSink,
    started: Arc<tokio::sync::watch::Sender<usize>>,
}

struct SlowUpload {
    inner: Box<dyn byob::sink::Upload>,
    number: usize,
    started: tokio::sync::watch::Receiver<usize>,
}

#[async_trait::async_trait]
impl byob::sink::ObjectSink for SlowToFinish {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn start(&self, key: &str, options: &byob::sink::PutOptions) -> byob::Result<Box<dyn byob::sink::Upload>> {
        let inner = self.inner.start(key, options).await?;
        let mut number = 0;
        self.started.send_modify(|n| {
            *n += 1;
            number = *n;
        });
        Ok(Box::new(SlowUpload { inner, number, started: self.started.subscribe() }))
    }
}

#[async_trait::async_trait]
impl byob::sink::Upload for SlowUpload {
    async fn put_part(&mut self, data: bytes::Bytes) -> byob::Result<()> {
        self.inner.put_part(data).await
    }

    async fn complete(mut self: Box<Self>) -> byob::Result<()> {
        let next = self.number + 1;
        if next <= 4 {
            let waited =
                tokio::time::timeout(std::time::Duration::from_secs(10), self.started.wait_for(|n| *n >= next));
            if !matches!(waited.await, Ok(Ok(_))) {
                return Err(byob::Error::Cancelled(format!("file {} waited in vain for file {next}", self.number)));
            }
        }
        self.inner.complete().await
    }

    async fn abort(self: Box<Self>) -> byob::Result<()> {
        self.inner.abort().await
    }
}

#[tokio::test]
async fn a_file_is_finished_while_the_next_one_is_written() {
    // GIVEN 4,000 rows that make 4 files, and a sink that finishes each of the first three
    // only once the next has started
    let source = MemorySource::new().with_table("events", schema(), vec![rows(4_000, |_| "acme")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = SlowToFinish { inner: LocalSink::new(dir.path()), started: Arc::new(tokio::sync::watch::channel(0).0) };

    // WHEN the table is exported
    let result = export::export(
        &task("events", Slice::WHOLE),
        &request("events", "acme"),
        &source,
        &sink,
        &spec(Format::new(FormatKind::Csv, Codec::None), 1000),
        &Cancel::default(),
        no_progress(),
    )
    .await
    .expect("no file waited for the next to start before it was finished");

    // THEN every file is reported, in order, and stored whole
    assert_eq!(result.files.iter().map(|f| f.rows).collect::<Vec<_>>(), vec![1000; 4]);
    for f in &result.files {
        let bytes = std::fs::read(dir.path().join("byob").join(&f.key)).expect("file exists");
        assert_eq!(hex::encode(Sha256::digest(&bytes)), f.sha256, "{}", f.key);
    }
    assert_eq!(files_under(dir.path()).len(), 4, "no temporary files remain");
}
