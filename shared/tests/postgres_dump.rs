//! A whole dump from PostgreSQL through the library's runner (what `byob run` calls): the
//! synthetic platform loaded into PostgreSQL exports, table by table and row for row, exactly
//! what the Parquet-lake run of the same data exports. Also: loading the lake into
//! PostgreSQL (what `byob generate --postgres` does) replaces tables and keeps every row.

#![allow(clippy::unwrap_used)]

use byob_testkit::postgres as postgres_harness;

use std::path::Path;
use std::sync::Arc;

use arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use arrow::record_batch::RecordBatch;
use byob::config::Config;
use byob::layout::RunId;
use byob::plan::PlanFilter;
use byob::receipt::Receipt;
use byob::run::{self, RunOptions, RunReport, Silent};
use byob_testkit::generate::postgres::load_lake;
use byob_testkit::generate::{self, GenerateOptions, TABLES};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

const TENANTS: [&str; 2] = ["acme", "globex"];

fn config(dir: &Path, source: &str, buckets: &str) -> Config {
    let tables: String = TABLES.iter().map(|t| format!("[[tables]]\nname = \"{t}\"\n")).collect();
    let destinations: String = TENANTS
        .iter()
        .map(|t| {
            format!(
                "[[destinations]]\nid = \"{t}\"\ntenant = \"{t}\"\nfolder = \"{buckets}/{t}\"\nprefix = \"dump\"\nmax_file_rows = 2500\nformat = {{ type = \"parquet\", codec = \"zstd\" }}\n\n"
            )
        })
        .collect();
    let text = format!(
        "{source}\n{tables}\n{destinations}\n[export]\nparallelism = 4\ntarget_rows_per_slice = 1500\n\n[state]\npath = \"state-{buckets}\"\n"
    );
    let path = dir.join(format!("{buckets}.toml"));
    std::fs::write(&path, text).unwrap();
    Config::load(&path).unwrap_or_else(|e| panic!("config: {e}"))
}

async fn run(config: &Config) -> RunReport {
    let run: RunId = "2024-03-01T04:00".parse().unwrap();
    let report = run::run(config, &RunOptions { run, filter: PlanFilter::default() }, Arc::new(Silent)).await.unwrap();
    let failed: Vec<_> = report.failed().map(|d| (&d.destination, &d.outcome)).collect();
    assert!(failed.is_empty(), "{failed:?}");
    report
}

/// Every row of a table's files, ordered by its first column (a unique id).
fn table_rows(root: &Path, receipt: &Receipt, table: &str) -> RecordBatch {
    let entry = &receipt.tables[table];
    let mut batches = Vec::new();
    let mut schema = None;
    for file in &entry.files {
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(root.join(&file.key)).unwrap()).unwrap();
        schema.get_or_insert_with(|| reader.schema().clone());
        batches.extend(reader.build().unwrap().map(Result::unwrap));
    }
    let all = concat_batches(&schema.unwrap(), &batches).unwrap();
    let order = sort_to_indices(all.column(0), None, None).unwrap();
    take_record_batch(&all, &order).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_run_exports_exactly_what_the_lake_run_exports() {
    let Some(pg) = postgres_harness::shared() else { return };
    // GIVEN the synthetic platform as a Parquet lake, and the same loaded into PostgreSQL
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let options = GenerateOptions {
        out: lake.clone(),
        scale: 0.02,
        seed: 11,
        tenants: ["acme", "globex", "initech"].map(String::from).to_vec(),
        ..GenerateOptions::default()
    };
    let generated = generate::generate(&options, &|_, _| {}).unwrap();
    let db = pg.database("dump").await;
    let connector = pg.connector(&db);
    for _ in 0..2 {
        // Loading twice replaces the tables: still exactly the lake's rows.
        let loaded = load_lake(&connector, "public", &lake, &TABLES).await.unwrap();
        let loaded: Vec<(String, u64)> = loaded.into_iter().map(|r| (r.table, r.rows)).collect();
        let wanted: Vec<(String, u64)> = generated.iter().map(|r| (r.table.clone(), r.rows)).collect();
        assert_eq!(loaded, wanted);
    }

    // WHEN the same dump runs from each
    let from_lake = config(dir.path(), "[source]\ntype = \"parquet\"\npath = \"lake\"\n", "lake-buckets");
    let from_pg =
        config(dir.path(), &format!("[source]\ntype = \"postgres\"\nurl = \"{}\"\n", pg.url(&db)), "pg-buckets");
    run(&from_lake).await;
    let pg_report = run(&from_pg).await;

    // THEN the big table was split into slices ...
    let events_slices = pg_report.destinations[0].tasks.iter().filter(|t| t.task.table == "events").count();
    assert!(events_slices > 1, "events of acme exported in {events_slices} slice(s)");
    // ... and every table of every destination has the same schema and the same rows
    for tenant in TENANTS {
        let lake_root = dir.path().join("lake-buckets").join(tenant).join("dump");
        let pg_root = dir.path().join("pg-buckets").join(tenant).join("dump");
        let lake_receipt = Receipt::from_json(&std::fs::read(lake_root.join("receipt.json")).unwrap()).unwrap();
        let pg_receipt = Receipt::from_json(&std::fs::read(pg_root.join("receipt.json")).unwrap()).unwrap();
        assert_eq!(lake_receipt.tables.keys().collect::<Vec<_>>(), pg_receipt.tables.keys().collect::<Vec<_>>());
        for table in TABLES {
            let (a, b) = (&lake_receipt.tables[table], &pg_receipt.tables[table]);
            assert_eq!(a.schema, b.schema, "{tenant}/{table}: schema");
            assert_eq!(a.row_count, b.row_count, "{tenant}/{table}: rows");
            assert!(a.row_count > 0, "{tenant}/{table}");
            let (lake_rows, pg_rows) =
                (table_rows(&lake_root, &lake_receipt, table), table_rows(&pg_root, &pg_receipt, table));
            assert_eq!(lake_rows.schema(), pg_rows.schema(), "{tenant}/{table}: Arrow schema");
            for (i, (x, y)) in lake_rows.columns().iter().zip(pg_rows.columns()).enumerate() {
                assert_eq!(x, y, "{tenant}/{table}: column {}", lake_rows.schema().field(i).name());
            }
        }
    }
}

/// Deployed, one container serves step after step for days: a step must leave no connection
/// (and so no open transaction or exported snapshot) on the platform's database when it
/// returns. The dump step and two export steps run through one `Workflow`, as one warm
/// container runs them; after each, `pg_stat_activity` holds no session of byob's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_container_holds_no_connection_between_steps() {
    use byob::workflow::{DumpInput, ExportInput, Workflow};

    let Some(pg) = postgres_harness::shared() else { return };
    // GIVEN the platform in PostgreSQL and a workflow over it
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let options = GenerateOptions { out: lake.clone(), scale: 0.005, seed: 5, ..GenerateOptions::default() };
    generate::generate(&options, &|_, _| {}).unwrap();
    let db = pg.database("warm").await;
    load_lake(&pg.connector(&db), "public", &lake, &TABLES).await.unwrap();
    config(dir.path(), &format!("[source]\ntype = \"postgres\"\nurl = \"{}\"\n", pg.url(&db)), "warm");
    // Steps read in separate snapshots: a table splits only along a key (here a slice_key).
    let path = dir.path().join("warm.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("name = \"events\"\n", "name = \"events\"\nslice_key = \"occurred_at\"\n"))
        .unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(config.tables.iter().find(|t| t.name == "events").unwrap().slice_key.as_deref(), Some("occurred_at"));
    let state = Arc::new(byob::state::LocalState::new(config.state.path.clone()));
    let workflow = Workflow::new(config, state);
    let probe = postgres_harness::client(&pg.url("postgres")).await;
    let ours = || async {
        // A closed connection's backend exits a moment after the client hangs up.
        let mut count = 0;
        for _ in 0..100 {
            let row = probe
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'byob'",
                    &[&db],
                )
                .await
                .unwrap();
            count = row.get::<_, i64>(0);
            if count == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        count
    };

    // WHEN the dump step plans (estimates, cut points) ...
    let run: RunId = "2024-03-01T04:00".parse().unwrap();
    let plan = workflow.dump(&DumpInput { run: Some(run), ..DumpInput::default() }).await.unwrap();
    // THEN no session of ours is left
    assert_eq!(ours().await, 0, "after the dump step");
    // AND after each of two export steps in the same container, none either
    let tasks: Vec<_> = plan.destinations[0].tasks.iter().filter(|t| t.table == "events").take(2).cloned().collect();
    assert_eq!(tasks.len(), 2, "events is exported in slices");
    for task in tasks {
        let input = ExportInput { run, config: Some(plan.config.clone()), task };
        let out = workflow.export(&input).await.unwrap();
        assert_eq!(out.task, input.task);
        assert_eq!(ours().await, 0, "after exporting {:?}", input.task);
    }
}
