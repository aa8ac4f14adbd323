//! A whole dump through the library's runner: generated lake -> every destination -> receipts.
//! Proves tenant isolation, completeness against the lake, and failure isolation between
//! destinations.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use byob::config::Config;
use byob::layout::RunId;
use byob::plan::PlanFilter;
use byob::receipt::Receipt;
use byob::run::{self, RunOptions, Silent};
use byob_testkit::generate::{self, GenerateOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sha2::{Digest, Sha256};

const TENANTS: [&str; 4] = ["acme", "globex", "initech", "umbrella"];

fn lake(dir: &Path) -> PathBuf {
    let out = dir.join("lake");
    let options = GenerateOptions { out: out.clone(), scale: 0.02, seed: 7, ..GenerateOptions::default() };
    generate::generate(&options, &|_, _| {}).expect("generate");
    out
}

fn config(dir: &Path, destinations: &str) -> Config {
    let tables: String = generate::TABLES.iter().map(|t| format!("[[tables]]\nname = \"{t}\"\n")).collect();
    let text = format!(
        "[source]\ntype = \"parquet\"\npath = \"lake\"\n\n{tables}\n{destinations}\n[export]\nparallelism = 3\ntarget_rows_per_slice = 2000\n\n[state]\npath = \"state\"\n"
    );
    let path = dir.join("byob.toml");
    std::fs::write(&path, text).expect("write config");
    Config::load(&path).unwrap_or_else(|e| panic!("config: {e}"))
}

/// Rows per (table, tenant) in the lake, read with the plain parquet reader.
fn lake_counts(lake: &Path) -> BTreeMap<(String, String), u64> {
    let mut counts = BTreeMap::new();
    for table in generate::TABLES {
        for entry in std::fs::read_dir(lake.join(table)).expect("table folder").flatten() {
            let file = std::fs::File::open(entry.path()).expect("open");
            for batch in ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet").build().expect("reader") {
                let batch = batch.expect("batch");
                let col = batch.column_by_name("tenant_id").expect("tenant_id");
                let col = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8).expect("cast");
                for t in col.as_string::<i32>().iter().flatten() {
                    *counts.entry((table.to_string(), t.to_string())).or_default() += 1;
                }
            }
        }
    }
    counts
}

fn read_receipt(root: &Path) -> Receipt {
    Receipt::from_json(&std::fs::read(root.join("receipt.json")).expect("receipt.json")).expect("valid receipt")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenant_gets_exactly_its_rows_and_nothing_else() {
    // GIVEN a lake of four tenants and one Parquet destination per tenant
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = lake(dir.path());
    let destinations: String = TENANTS
        .iter()
        .map(|t| format!("[[destinations]]\nid = \"{t}\"\ntenant = \"{t}\"\nfolder = \"buckets/{t}\"\nprefix = \"dump\"\nmax_file_rows = 1500\n\n"))
        .collect();
    let config = config(dir.path(), &destinations);
    let run: RunId = "2024-01-02T04:00".parse().expect("run");

    // WHEN the whole dump runs
    let report =
        run::run(&config, &RunOptions { run, filter: PlanFilter::default() }, Arc::new(Silent)).await.expect("run");

    // THEN every destination is finalized ...
    assert_eq!(report.failed().count(), 0, "{:?}", report.failed().map(|d| &d.outcome).collect::<Vec<_>>());
    let expected = lake_counts(&lake);
    for tenant in TENANTS {
        let root = dir.path().join("buckets").join(tenant).join("dump");
        let receipt = read_receipt(&root);
        assert_eq!(receipt.run, run);
        assert_eq!(receipt.tables.len(), 6);
        for (table, t) in &receipt.tables {
            // ... each table holds exactly the tenant's rows of the lake ...
            let want = expected.get(&(table.clone(), tenant.to_string())).copied().unwrap_or(0);
            assert_eq!(t.row_count, want, "{tenant}/{table}");
            let mut read = 0u64;
            for f in &t.files {
                let bytes = std::fs::read(root.join(&f.key)).expect("listed file exists");
                assert_eq!(hex::encode(Sha256::digest(&bytes)), f.sha256, "{}", f.key);
                assert!(f.rows <= 1500, "{} exceeds max_file_rows", f.key);
                let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
                    .expect("parquet")
                    .build()
                    .expect("reader");
                for batch in reader {
                    let batch = batch.expect("batch");
                    read += batch.num_rows() as u64;
                    // ... and no row of another tenant.
                    let col = batch.column_by_name("tenant_id").expect("tenant_id");
                    let col = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8).expect("cast");
                    let col = col.as_string::<i32>();
                    assert_eq!(col.null_count(), 0);
                    assert!(col.iter().flatten().all(|v| v == tenant), "{tenant}/{table}: a row of another tenant");
                }
            }
            assert_eq!(read, want, "{tenant}/{table}: rows read from the files");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_destination_gets_no_receipt_and_does_not_stop_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    lake(dir.path());
    // `broken` exports a column that does not exist: its tasks fail before writing.
    let destinations = "\
[[destinations]]\nid = \"good\"\ntenant = \"acme\"\nfolder = \"buckets/good\"\n\n\
[[destinations]]\nid = \"broken\"\ntenant = \"globex\"\nfolder = \"buckets/broken\"\nformat = { type = \"csv\" }\n\n";
    let mut config = config(dir.path(), destinations);
    config.tables[2].columns = Some(vec!["event_id".into(), "no_such_column".into()]);
    config.destinations[0].tables = Some(vec!["companies".into(), "contacts".into()]);

    let run: RunId = "2024-01-02T15:00".parse().expect("run");
    let report =
        run::run(&config, &RunOptions { run, filter: PlanFilter::default() }, Arc::new(Silent)).await.expect("run");

    let by_id: BTreeMap<&str, &run::DestinationReport> =
        report.destinations.iter().map(|d| (d.destination.as_str(), d)).collect();
    assert!(by_id["good"].outcome.is_ok());
    let err = by_id["broken"].outcome.as_ref().expect_err("broken must fail").to_string();
    assert!(err.contains("no_such_column") && err.contains("events"), "the cause names table and column: {err}");
    assert!(dir.path().join("buckets/good/receipt.json").exists());
    assert!(!dir.path().join("buckets/broken/receipt.json").exists(), "a failed destination has no receipt");
    assert!(!dir.path().join(format!("buckets/broken/{run}/receipt.run.json")).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_rewrites_the_same_keys_and_records_previous_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    lake(dir.path());
    let config = config(
        dir.path(),
        "[[destinations]]\nid = \"acme\"\ntenant = \"acme\"\nfolder = \"buckets/acme\"\nformat = { type = \"jsonl\" }\n",
    );
    let first: RunId = "2024-01-02T04:00".parse().expect("run");
    let second: RunId = "2024-01-02T15:00".parse().expect("run");
    let root = dir.path().join("buckets/acme");

    run::run(&config, &RunOptions { run: first, filter: PlanFilter::default() }, Arc::new(Silent))
        .await
        .expect("first");
    let a = read_receipt(&root);
    run::run(&config, &RunOptions { run: first, filter: PlanFilter::default() }, Arc::new(Silent))
        .await
        .expect("again");
    let b = read_receipt(&root);
    assert_eq!(a.tables, b.tables, "a re-run writes the same keys, rows and checksums");
    assert_eq!(b.previous_run, None);

    run::run(&config, &RunOptions { run: second, filter: PlanFilter::default() }, Arc::new(Silent))
        .await
        .expect("second");
    let c = read_receipt(&root);
    assert_eq!(c.run, second);
    assert_eq!(c.previous_run, Some(first));
    assert!(
        root.join(format!("{first}/receipt.run.json")).exists()
            && root.join(format!("{second}/receipt.run.json")).exists()
    );
}

#[tokio::test]
async fn unknown_destination_or_table_in_the_filter_is_an_error_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    lake(dir.path());
    let config = config(dir.path(), "[[destinations]]\nid = \"acme\"\ntenant = \"acme\"\nfolder = \"buckets/acme\"\n");
    let run: RunId = "2024-01-02T04:00".parse().expect("run");
    for filter in [
        PlanFilter { destinations: vec!["nope".into()], ..PlanFilter::default() },
        PlanFilter { tables: vec!["nope".into()], ..PlanFilter::default() },
    ] {
        let err = run::run(&config, &RunOptions { run, filter }, Arc::new(Silent)).await.expect_err("unknown name");
        assert!(err.to_string().contains("\"nope\""), "{err}");
    }
    assert!(!dir.path().join("buckets").exists(), "nothing was written");
}

/// `manifest = true`: AEP's manifest lands beside the receipt, lists every file of the run with
/// the size of the stored object, and the receipt names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_with_a_manifest_gets_aeps_manifest_whose_sizes_equal_the_objects() {
    let dir = tempfile::tempdir().expect("tempdir");
    lake(dir.path());
    let config = config(
        dir.path(),
        "[[destinations]]\nid = \"acme\"\ntenant = \"acme\"\nfolder = \"buckets/acme\"\nprefix = \"exports/byob\"\nmanifest = true\n",
    );
    let run: RunId = "2024-01-02T04:00".parse().expect("run");
    let report =
        run::run(&config, &RunOptions { run, filter: PlanFilter::default() }, Arc::new(Silent)).await.expect("run");
    assert_eq!(report.failed().count(), 0);
    let bucket = dir.path().join("buckets/acme");
    let receipt = Receipt::from_json(&std::fs::read(bucket.join("exports/byob/receipt.json")).expect("receipt"))
        .expect("receipt parses");
    assert_eq!(receipt.manifest.as_deref(), Some("manifest-acme-2024-01-02T04:00.json"));
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(bucket.join("exports/byob/manifest-acme-2024-01-02T04:00.json")).expect("manifest"),
    )
    .expect("manifest parses");
    assert_eq!(manifest["flowRunId"], "acme/2024-01-02T04:00");
    assert_eq!(manifest["scheduledTime"], "2024-01-02T04:00:00Z");
    let results = manifest["exportResults"].as_array().expect("exportResults");
    let files: usize = receipt.tables.values().map(|t| t.files.len()).sum();
    assert_eq!(results.len(), files, "one entry per file of the receipt");
    for entry in results {
        let folder = entry["sinkPath"].as_str().expect("sinkPath");
        let name = entry["name"].as_str().expect("name");
        assert!(folder.starts_with("/exports/byob/2024-01-02T04:00/"), "{folder}");
        let object = bucket.join(&folder[1..]).join(name);
        let size = std::fs::metadata(&object).unwrap_or_else(|e| panic!("{}: {e}", object.display())).len();
        assert_eq!(entry["size"].as_u64(), Some(size), "{name}");
    }
}

/// `partition_by`: every row of `events` lands once, in the file of its UTC day; each day is
/// a file sequence of its own (small files force several per day, and more days than open
/// files force closing and reopening); tables without the column are the one partition `all`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_dumps_hold_every_row_once_in_the_right_partition() {
    use std::collections::HashSet;
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = lake(dir.path());
    let config = config(
        dir.path(),
        "[[destinations]]\nid = \"acme\"\ntenant = \"acme\"\nfolder = \"buckets/acme\"\nmax_file_rows = 300\n\
         partition_by = { column = \"occurred_at\", grain = \"day\" }\n\
         key_template = \"{run}/{table}/day={partition}/{table}_{shard}.{ext}\"\n",
    );
    let run: RunId = "2024-01-02T04:00".parse().expect("run");
    let report =
        run::run(&config, &RunOptions { run, filter: PlanFilter::default() }, Arc::new(Silent)).await.expect("run");
    assert_eq!(report.failed().count(), 0);
    let root = dir.path().join("buckets/acme");
    let receipt = read_receipt(&root);
    let expected = lake_counts(&lake);
    let events = &receipt.tables["events"];
    let mut ids = HashSet::new();
    let mut days = HashSet::new();
    for file in &events.files {
        let partition = file.partition.as_deref().expect("every file names its partition");
        assert!(file.key.contains(&format!("/day={partition}/")), "{} in {partition}", file.key);
        days.insert(partition.to_owned());
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(root.join(&file.key)).expect("open"))
            .expect("parquet")
            .build()
            .expect("reader");
        let mut rows = 0;
        for batch in reader {
            let batch = batch.expect("batch");
            rows += batch.num_rows() as u64;
            let at = batch.column_by_name("occurred_at").expect("occurred_at");
            let at = arrow::compute::cast(at, &arrow::datatypes::DataType::Int64).expect("micros");
            let ids_col = batch.column_by_name("event_id").expect("event_id").as_string::<i32>().clone();
            for (i, micros) in at.as_primitive::<arrow::datatypes::Int64Type>().iter().enumerate() {
                let day =
                    chrono::DateTime::from_timestamp_micros(micros.expect("not null")).expect("time").date_naive();
                assert_eq!(day.to_string(), partition, "a row of {} in the wrong partition", file.key);
                assert!(ids.insert(ids_col.value(i).to_owned()), "event {} twice", ids_col.value(i));
            }
        }
        assert_eq!(rows, file.rows);
    }
    assert_eq!(ids.len() as u64, expected[&("events".to_string(), "acme".to_string())], "every acme event once");
    assert!(days.len() > byob::export::MAX_OPEN_PARTITIONS, "the lake spans {} days", days.len());
    let companies = &receipt.tables["companies"];
    assert!(companies.files.iter().all(|f| f.partition.as_deref() == Some("all") && f.key.contains("/day=all/")));
}

/// Per-destination schedules: at each hour of a day (a Monday), a scheduled run plans exactly
/// the destinations due then; a run by hand plans every one.
#[tokio::test]
async fn a_scheduled_run_plans_the_destinations_due_at_each_hour_of_a_day() {
    let dir = tempfile::tempdir().expect("tempdir");
    lake(dir.path());
    let destinations: String = [
        ("hourly", "hourly"),
        ("twice", "twice-daily"),
        ("daily", "daily"),
        ("weekdays6h", "0 */6 * * 1-5"),
        ("sundays", "0 9 * * 0"),
    ]
    .iter()
    .map(|(id, schedule)| {
        format!(
            "[[destinations]]\nid = \"{id}\"\ntenant = \"acme\"\nfolder = \"buckets/{id}\"\nschedule = \"{schedule}\"\n"
        )
    })
    .collect();
    let config = config(dir.path(), &destinations);
    let sdk = byob::wiring::sdk(&config).await;
    let source = byob::wiring::source(&config, &sdk, byob::wiring::Reads::OneSource);
    let planned = |run: RunId, due_only: bool| {
        let config = &config;
        let source = source.clone();
        async move {
            let filter = PlanFilter { due_only, ..PlanFilter::default() };
            let plan = byob::plan::plan(config, source.as_ref(), None, run, &filter).await.expect("plan");
            plan.destinations.iter().map(|d| d.destination.clone()).collect::<Vec<_>>()
        }
    };
    for hour in 0..24 {
        let run: RunId = format!("2026-11-30T{hour:02}:00").parse().expect("run");
        let mut expected = vec!["hourly"];
        if hour == 4 || hour == 15 {
            expected.push("twice");
        }
        if hour == 4 {
            expected.push("daily");
        }
        if hour % 6 == 0 {
            expected.push("weekdays6h");
        }
        assert_eq!(planned(run, true).await, expected, "at {run}");
        assert_eq!(planned(run, false).await.len(), 5, "a run by hand plans every destination");
    }
    // Half past: nothing is due.
    assert!(planned("2026-11-30T04:30".parse().expect("run"), true).await.is_empty());
    // Sunday 09:00: the Sunday destination and the hourly one.
    assert_eq!(planned("2026-11-29T09:00".parse().expect("run"), true).await, ["hourly", "sundays"]);
}

/// A consumer written from Dreamdata's guide alone: it reads the receipt's `timestamp`,
/// `tables.*.folder` and `tables.*.total_file_count`, and builds each file's name as
/// `<folder>/<table>_<12-digit shard>.parquet.gz` for shards 0 .. count-1. With
/// `shard_numbering = "consecutive"` it finds every file and every row; with the default
/// numbering (slices in parallel) a sliced table's names have gaps, which is why the option
/// exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_builds_names_from_total_file_count_reads_every_row_with_consecutive_numbering() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A lake of small row groups, so a big table is cut into several slices.
    let lake = dir.path().join("lake");
    let options = GenerateOptions {
        out: lake.clone(),
        scale: 0.02,
        seed: 7,
        row_group_rows: 600,
        file_rows: 2_500,
        ..GenerateOptions::default()
    };
    generate::generate(&options, &|_, _| {}).expect("generate");
    let counts = lake_counts(&lake);
    // GIVEN two destinations of one tenant, files of at most 300 rows, slices of 2,000 rows
    let config = config(
        dir.path(),
        "[[destinations]]\nid = \"dreamdata-like\"\ntenant = \"acme\"\nfolder = \"out/consecutive\"\nmax_file_rows = 300\nshard_numbering = \"consecutive\"\n\n\
         [[destinations]]\nid = \"default\"\ntenant = \"acme\"\nfolder = \"out/slices\"\nmax_file_rows = 300\n",
    );
    let run: RunId = "2024-03-01T04:00".parse().expect("run");
    let report =
        run::run(&config, &RunOptions { run, filter: PlanFilter::default() }, Arc::new(Silent)).await.expect("run");
    assert_eq!(report.failed().count(), 0);

    // The consumer: only Dreamdata's fields.
    let consume = |root: &Path| -> (BTreeMap<String, u64>, Vec<String>) {
        let receipt: serde_json::Value =
            serde_json::from_slice(&std::fs::read(root.join("receipt.json")).expect("receipt")).expect("JSON");
        assert!(receipt["timestamp"].as_str().is_some());
        let mut rows = BTreeMap::new();
        let mut missing = Vec::new();
        for (table, entry) in receipt["tables"].as_object().expect("tables") {
            let folder = entry["folder"].as_str().expect("folder");
            for shard in 0..entry["total_file_count"].as_u64().expect("total_file_count") {
                let path = root.join(folder).join(format!("{table}_{shard:012}.parquet.gz"));
                let Ok(file) = std::fs::File::open(&path) else {
                    missing.push(path.display().to_string());
                    continue;
                };
                let reader = ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet").build().expect("reader");
                *rows.entry(table.clone()).or_default() +=
                    reader.map(|b| b.expect("batch").num_rows() as u64).sum::<u64>();
            }
        }
        (rows, missing)
    };
    let (rows, missing) = consume(&dir.path().join("out/consecutive"));
    assert!(missing.is_empty(), "{missing:?}");
    for table in generate::TABLES {
        let expected = counts.get(&(table.to_string(), "acme".to_string())).copied().unwrap_or(0);
        assert_eq!(rows.get(table).copied().unwrap_or(0), expected, "{table}");
    }
    let events = read_receipt(&dir.path().join("out/consecutive")).tables["events"].files.len();
    assert!(events > 3, "events spans several files: {events}");
    // The default numbering: the same consumer misses the files of every slice but the first ...
    let (_, missing) = consume(&dir.path().join("out/slices"));
    assert!(!missing.is_empty(), "sliced tables number their files with gaps");
    // ... while a consumer that loads each folder, as Dreamdata's guide describes ("performing a
    // load operation on the folder value"), reads every row of the sliced dump, and finds exactly
    // `total_file_count` files there.
    let root = dir.path().join("out/slices");
    let receipt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("receipt.json")).expect("receipt")).expect("JSON");
    let mut sliced = 0;
    for (table, entry) in receipt["tables"].as_object().expect("tables") {
        let folder = root.join(entry["folder"].as_str().expect("folder"));
        let files: Vec<PathBuf> = std::fs::read_dir(&folder).expect("folder").flatten().map(|e| e.path()).collect();
        assert_eq!(files.len() as u64, entry["total_file_count"].as_u64().expect("count"), "{table}");
        sliced += usize::from(files.iter().any(|f| f.display().to_string().contains("_000001000000")));
        let rows: u64 = files
            .iter()
            .map(|f| {
                let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(f).expect("open"))
                    .expect("parquet")
                    .build()
                    .expect("reader");
                reader.map(|b| b.expect("batch").num_rows() as u64).sum::<u64>()
            })
            .sum();
        let expected = counts.get(&(table.clone(), "acme".to_string())).copied().unwrap_or(0);
        assert_eq!(rows, expected, "{table}");
    }
    assert!(sliced > 0, "the default dump really is sliced");
}
