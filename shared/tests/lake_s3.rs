//! The Parquet lake in S3 (moto), read under enforced IAM with exactly the policy
//! `byob iam-policy --only execution` grants: a whole `byob run` and the deployed steps
//! (dump, every export, finalize) give the same objects as the same run over the lake on
//! local disk; an export reads only footers and the column chunks of its row groups (the
//! figures per slice are printed); a tenant-partitioned table (`{tenant}` in its path) reads
//! only the tenant's folder; nothing outside the lake's prefix is readable.
//!
//! The run and the steps build their S3 client from the default credential chain, as deployed,
//! so they run in a child process of this test binary whose environment holds the IAM user's
//! keys (`child_runs_the_dump_from_the_s3_lake`, ignored unless this test starts it).
//!
//! Mocked, and why: moto evaluates identity policies but not the `s3:prefix` condition of
//! `s3:ListBucket` (its condition support covers `sts:ExternalId` only), so the test user gets
//! the generated statements with that one condition removed; the test then checks the
//! condition's patterns by hand. Everything else is the generated policy as is.

#![allow(clippy::unwrap_used)]

use byob_testkit::files;
use byob_testkit::moto;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{AsArray, RecordBatch};
use byob::config::Config;
use byob::plan::PlanFilter;
use byob::receipt::Receipt;
use byob::run::{self, RunOptions, Silent};
use byob::source::lake::LakeSource;
use byob::source::{Bounds, Source, TableRequest};
use byob::workflow::{DestinationItem, DumpInput, DumpStep, ExportInput, FinalizeInput, Tasks, Workflow};
use byob_testkit::generate::{GenerateOptions, TABLES, generate};
use files::objects;
use futures::TryStreamExt;
use moto::Moto;
use serde_json::json;

const BUCKET: &str = "platform-lake";
const RUN: &str = "2024-05-01T06:00";
const CHILD: &str = "BYOB_LAKE_S3_CHILD_DIR";

fn lake(out: &Path) {
    let options = GenerateOptions {
        out: out.to_path_buf(),
        scale: 0.005,
        seed: 11,
        row_group_rows: 400,
        file_rows: 1_500,
        ..GenerateOptions::default()
    };
    generate(&options, &|_, _| {}).unwrap();
}

/// A config over the lake at `path`, two destinations under `<dir>/<buckets>/`.
fn config(dir: &Path, name: &str, path: &str, endpoint: Option<&str>) -> Config {
    let tables: String = TABLES.iter().map(|t| format!("[[tables]]\nname = \"{t}\"\n")).collect();
    let aws = endpoint.map(|e| format!("[aws]\nregion = \"us-east-1\"\nendpoint_url = \"{e}\"\n")).unwrap_or_default();
    let text = format!(
        "[source]\ntype = \"parquet\"\npath = \"{path}\"\n\n{tables}\n\
         [[destinations]]\nid = \"acme\"\ntenant = \"acme\"\nfolder = \"{name}/acme\"\nprefix = \"dump\"\n\n\
         [[destinations]]\nid = \"globex\"\ntenant = \"globex\"\nfolder = \"{name}/globex\"\nprefix = \"dump\"\n\
         format = {{ type = \"csv\" }}\n\n[export]\ntarget_rows_per_slice = 500\n\n{aws}\n[state]\npath = \"state-{name}\"\n"
    );
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, text).unwrap();
    Config::load(&file).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The two destinations' objects of run `a` equal those of run `b` (receipts but for their
/// timestamp).
fn assert_same_dump(a: &Path, b: &Path, what: &str) {
    let (ours, theirs) = (objects(a), objects(b));
    assert!(!ours.is_empty(), "{what}: nothing written");
    assert_eq!(ours.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>(), "{what}: same keys");
    for (key, bytes) in &ours {
        if key.ends_with("receipt.json") || key.ends_with("receipt.run.json") {
            let (x, y) = (Receipt::from_json(bytes).unwrap(), Receipt::from_json(&theirs[key]).unwrap());
            assert_eq!((x.run, x.format, &x.tables), (y.run, y.format, &y.tables), "{what}: {key}");
        } else {
            assert!(bytes == &theirs[key], "{what}: {key} differs");
        }
    }
}

/// Uploads every file under `local` to `s3://BUCKET/<prefix>/<relative path>`.
async fn upload(s3: &aws_sdk_s3::Client, local: &Path, prefix: &str) {
    let mut stack = vec![local.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let key = format!("{prefix}/{}", p.strip_prefix(local).unwrap().display());
            let body = aws_sdk_s3::primitives::ByteStream::from(std::fs::read(&p).unwrap());
            s3.put_object().bucket(BUCKET).key(key).body(body).send().await.unwrap();
        }
    }
}

fn request(table: &str, tenant: &str) -> TableRequest {
    TableRequest::new(table, tenant, "tenant_id")
}

async fn read(source: &LakeSource, request: &TableRequest, bounds: &Bounds) -> Vec<RecordBatch> {
    source.open(request, bounds).await.unwrap().batches.try_collect().await.unwrap()
}

/// The bounds planned over S3 name `s3://` files; the same bounds over local disk name the
/// same files under the local root.
fn to_local(bounds: &Bounds, s3_root: &str, local_root: &Path) -> Bounds {
    match bounds {
        Bounds::RowGroups { files } => Bounds::RowGroups {
            files: files
                .iter()
                .map(|f| byob::source::FilePart {
                    path: local_root
                        .join(f.path.strip_prefix(s3_root).unwrap().trim_start_matches('/'))
                        .display()
                        .to_string(),
                    ..f.clone()
                })
                .collect(),
        },
        other => other.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_lake_reads_like_the_local_lake_under_enforced_iam() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let local_lake = dir.path().join("lake");
    lake(&local_lake);
    // GIVEN the lake uploaded under s3://platform-lake/lake/, and something else beside it
    let admin = moto.s3(&moto.admin_config());
    admin.create_bucket().bucket(BUCKET).send().await.unwrap();
    upload(&admin, &local_lake, "lake").await;
    upload(&admin, &local_lake.join("companies"), "private").await;
    let s3_root = format!("s3://{BUCKET}/lake");
    let s3_config = config(dir.path(), "from-s3", &s3_root, Some(&moto.endpoint));

    // AND a user holding exactly the execution role's lake statements (see the module
    // documentation for the one condition moto cannot evaluate)
    let mut statements = byob::aws::policy::lake_read_statements(&s3_config, "aws");
    assert_eq!(statements.len(), 2, "{statements:?}");
    assert_eq!(statements[0]["Condition"]["StringLike"]["s3:prefix"], json!(["lake/*"]));
    assert_eq!(statements[1]["Resource"], json!([format!("arn:aws:s3:::{BUCKET}/lake/*")]));
    statements[0].as_object_mut().unwrap().remove("Condition");
    let user = moto.user("lake-reader", &json!({"Version": "2012-10-17", "Statement": statements}));
    moto.enforce_iam();
    let reader = moto.s3(&moto.sdk_config(user.clone()));

    // WHEN every slice of events is planned and read from S3 and from disk
    let s3_lake = LakeSource::new(s3_root.clone()).with_s3(reader.clone());
    let disk_lake = LakeSource::new(local_lake.clone());
    let events = request("events", "acme");
    let planned = s3_lake.plan(&events, 500).await.unwrap();
    assert!(planned.len() > 2, "{planned:?}");
    let after_plan = s3_lake.read_stats();
    println!("plan of events/acme from S3: {after_plan:?} ({} slices)", planned.len());
    for (index, bounds) in planned.iter().enumerate() {
        let before = s3_lake.read_stats();
        let started = Instant::now();
        let from_s3 = read(&s3_lake, &events, bounds).await;
        let seconds = started.elapsed().as_secs_f64();
        let stats = s3_lake.read_stats();
        let local = to_local(bounds, &s3_root, &local_lake);
        let started = Instant::now();
        let from_disk = read(&disk_lake, &events, &local).await;
        let disk_seconds = started.elapsed().as_secs_f64();
        // THEN both give the same rows, and the S3 read never lists
        assert_eq!(from_s3, from_disk, "slice {index}");
        assert_eq!(stats.lists, before.lists, "an export never lists the table");
        assert!(matches!(bounds, Bounds::RowGroups { .. }), "{bounds:?}");
        println!(
            "slice {index}: {} rows; S3 {:.3} s, {} GETs, {} bytes; disk {:.3} s",
            from_s3.iter().map(RecordBatch::num_rows).sum::<usize>(),
            seconds,
            stats.gets - before.gets,
            stats.bytes - before.bytes,
            disk_seconds
        );
    }

    // AND what is outside the lake's prefix is refused for good, naming what to grant
    let outside = LakeSource::new(s3_root.clone())
        .with_s3(reader.clone())
        .with_table_path("secrets", format!("s3://{BUCKET}/private"));
    let e = outside.plan(&request("secrets", "acme"), 500).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("s3:ListBucket and s3:GetObject on the lake's prefix"), "{e}");

    // AND a whole `byob run` and the deployed steps, in a process whose credentials are the
    // user's, write what the same run over the local lake writes
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "lake_s3::child_runs_the_dump_from_the_s3_lake", "--nocapture"])
        .env(CHILD, dir.path())
        .env("AWS_ACCESS_KEY_ID", user.access_key_id())
        .env("AWS_SECRET_ACCESS_KEY", user.secret_access_key())
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .status()
        .unwrap();
    assert!(status.success(), "the child run failed");
    let local_config = config(dir.path(), "from-disk", &local_lake.display().to_string(), None);
    let options = RunOptions { run: RUN.parse().unwrap(), filter: PlanFilter::default() };
    let report = run::run(&local_config, &options, Arc::new(Silent)).await.unwrap();
    assert_eq!(report.failed().count(), 0);
    for id in ["acme", "globex"] {
        let disk = dir.path().join("from-disk").join(id);
        assert_same_dump(&dir.path().join("from-s3").join(id), &disk, &format!("byob run, {id}"));
        assert_same_dump(&dir.path().join("from-s3-steps").join(id), &disk, &format!("the steps, {id}"));
    }
}

/// The child half of the test above: `byob run` (the library's runner) and the dump, export and
/// finalize steps over the S3 lake, with the credentials of its environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by an_s3_lake_reads_like_the_local_lake_under_enforced_iam, with the lake reader's keys"]
async fn child_runs_the_dump_from_the_s3_lake() {
    let dir = PathBuf::from(
        std::env::var(CHILD).expect("started by an_s3_lake_reads_like_the_local_lake_under_enforced_iam"),
    );
    let config = Config::load(&dir.join("from-s3.toml")).unwrap();
    let options = RunOptions { run: RUN.parse().unwrap(), filter: PlanFilter::default() };
    let report = run::run(&config, &options, Arc::new(Silent)).await.unwrap();
    let failed: Vec<_> = report.failed().map(|d| format!("{}: {:?}", d.destination, d.outcome)).collect();
    assert!(failed.is_empty(), "{failed:?}");

    // The deployed steps: a workflow per step, as separate invocations would have.
    let text = std::fs::read_to_string(dir.join("from-s3.toml")).unwrap().replace("from-s3/", "from-s3-steps/");
    std::fs::write(dir.join("from-s3-steps.toml"), text.replace("state-from-s3", "state-from-s3-steps")).unwrap();
    let step = || {
        let config = Config::load(&dir.join("from-s3-steps.toml")).unwrap();
        let state = Arc::new(byob::state::LocalState::new(config.state.path.clone()));
        Workflow::new(config, state)
    };
    // As deployed: the plan stored in our state, each task read from its document, each
    // destination finalized from the stored tasks and results.
    let step_input = DumpStep {
        input: DumpInput { run: Some(RUN.parse().unwrap()), ..DumpInput::default() },
        execution: "e1".into(),
    };
    let plan = step().dump_stored(&step_input).await.unwrap();
    let state = dir.join("state-from-s3-steps");
    let read = |key: &str| std::fs::read(state.join(key)).unwrap();
    let items: Vec<DestinationItem> = serde_json::from_slice(&read(&plan.destinations)).unwrap();
    assert_eq!(items.len(), 2);
    for item in &items {
        let tasks: Vec<byob::plan::ExportTask> = serde_json::from_slice(&read(&item.tasks)).unwrap();
        for task in tasks {
            let input = ExportInput { run: plan.run, config: Some(plan.config.clone()), task };
            step().export(&input).await.unwrap();
        }
        let input = FinalizeInput {
            run: plan.run,
            config: Some(plan.config.clone()),
            destination: item.destination.clone(),
            tasks: Tasks::Stored(item.tasks.clone()),
            results: None,
        };
        step().finalize(&input).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_partitioned_table_reads_only_the_tenants_folder() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let local_lake = dir.path().join("lake");
    lake(&local_lake);
    let s3 = moto.s3(&moto.admin_config());
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    upload(&s3, &local_lake, "mixed").await;
    // GIVEN events also laid out Hive-style, one folder per tenant, without the tenant column
    let mixed = LakeSource::new(local_lake.clone()).every_row();
    let all: Vec<RecordBatch> = read(&mixed, &request("events", "-"), &Bounds::Whole).await;
    let mut by_tenant: BTreeMap<String, Vec<RecordBatch>> = BTreeMap::new();
    for batch in &all {
        let column =
            arrow::compute::cast(batch.column_by_name("tenant_id").unwrap(), &arrow::datatypes::DataType::Utf8)
                .unwrap();
        let tenants: Vec<String> = column.as_string::<i32>().iter().map(|t| t.unwrap().to_owned()).collect();
        for tenant in tenants.iter().collect::<std::collections::BTreeSet<_>>() {
            let mask = arrow::array::BooleanArray::from(tenants.iter().map(|t| t == tenant).collect::<Vec<_>>());
            let rows = arrow::compute::filter_record_batch(batch, &mask).unwrap();
            let index = rows.schema().index_of("tenant_id").unwrap();
            let mut keep: Vec<usize> = (0..rows.num_columns()).collect();
            keep.remove(index);
            by_tenant.entry(tenant.clone()).or_default().push(rows.project(&keep).unwrap());
        }
    }
    for (tenant, batches) in &by_tenant {
        let mut bytes = Vec::new();
        // Compressed as the generator's files are, so bytes compare.
        let properties = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
            .build();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(&mut bytes, batches[0].schema(), Some(properties)).unwrap();
        for b in batches {
            writer.write(b).unwrap();
        }
        writer.close().unwrap();
        let key = format!("by-tenant/events/tenant_id={tenant}/part-0.parquet");
        s3.put_object().bucket(BUCKET).key(key).body(bytes.into()).send().await.unwrap();
    }

    // WHEN acme's events are read from the partitioned layout and from the mixed one
    let partitioned = LakeSource::new(format!("s3://{BUCKET}/mixed"))
        .with_s3(s3.clone())
        .with_table_path("events", format!("s3://{BUCKET}/by-tenant/events/tenant_id={{tenant}}/"));
    let planned = partitioned.plan(&request("events", "acme"), 1_000_000).await.unwrap();
    let rows: usize =
        read(&partitioned, &request("events", "acme"), &planned[0]).await.iter().map(|b| b.num_rows()).sum();
    let from_folder = partitioned.read_stats();
    let whole_table = LakeSource::new(format!("s3://{BUCKET}/mixed")).with_s3(s3.clone());
    let planned_mixed = whole_table.plan(&request("events", "acme"), 1_000_000).await.unwrap();
    let mixed_rows: usize =
        read(&whole_table, &request("events", "acme"), &planned_mixed[0]).await.iter().map(|b| b.num_rows()).sum();
    let from_table = whole_table.read_stats();
    let table_bytes: u64 =
        std::fs::read_dir(local_lake.join("events")).unwrap().flatten().map(|e| e.metadata().unwrap().len()).sum();

    // THEN the same rows, reading only the tenant's folder
    let Bounds::RowGroups { files } = &planned[0] else { panic!("{planned:?}") };
    assert!(files.iter().all(|f| f.path.contains("/tenant_id=acme/")), "{files:?}");
    assert_eq!(rows, by_tenant["acme"].iter().map(|b| b.num_rows()).sum::<usize>());
    assert_eq!(rows, mixed_rows);
    println!(
        "acme's events out of a {table_bytes}-byte table: {} bytes in {} GETs from its own folder, {} bytes in {} GETs from the mixed table",
        from_folder.bytes, from_folder.gets, from_table.bytes, from_table.gets
    );
    assert!(from_folder.bytes < from_table.bytes, "{from_folder:?} vs {from_table:?}");

    // AND a tenant that cannot name a folder is refused before any request
    for tenant in ["..", "a/b", ""] {
        let e = partitioned.plan(&request("events", tenant), 1_000).await.unwrap_err();
        assert!(e.to_string().contains("cannot be put into the table path"), "{tenant:?}: {e}");
    }
}
