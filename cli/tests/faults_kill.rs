//! Fault injection through the `byob` binary: processes killed with SIGKILL, and a customer
//! whose role cannot be assumed. Each final state is checked against a clean run of the same
//! dump (same run id). The in-process faults (transient S3 errors, lost answers, expiring
//! credentials) are in `shared/tests/faults.rs`.
//!
//! Guarantees proved here:
//!
//! - **`byob run` killed mid-dump, then the same run started again**: the process is killed
//!   (SIGKILL: no cleanup at all) once a data object is complete and a multipart upload is
//!   open, and the same `--run` is started again. The final bucket equals a clean run's, key
//!   for key and byte for byte (receipts except their `timestamp`); while both processes ran,
//!   a poller read the bucket continuously, and every receipt it saw listed only files that
//!   existed with their size. The rerun leaves no multipart upload of its own open. The
//!   killed process's open uploads DO remain: a killed process cannot abort them, and byob
//!   may not list the customer's bucket (the customer grants PutObject and
//!   AbortMultipartUpload only), so nothing can find them afterwards. They are invisible (not
//!   objects, never in a receipt) and are removed by the AbortIncompleteMultipartUpload
//!   lifecycle rule the onboarding guide asks for (README, "Lifecycle rules"). The test
//!   asserts exactly that: every upload still open after the rerun was opened by the killed
//!   process.
//! - **AssumeRole into one customer fails** (every AssumeRole of that customer's role answered
//!   with STS's `Throttling`, so the SDK retries and gives up): that destination fails, and the
//!   run's output names the destination, the role and STS's answer; every other destination
//!   completes with its receipt; the failed one has no receipt and no object at all; exit 1.
//! - **`byob load` killed while COPY runs, then the event redelivered**: the loader is killed
//!   (SIGKILL) while PostgreSQL shows its COPY into the staging schema; nothing is loaded (no
//!   live table, no history row). Running the same load again (S3's redelivery) loads it once:
//!   one `byob_load_history` row for the run, row counts equal the receipt's, and a checksum
//!   of every row equals a load of the same receipt that was never interrupted. A third
//!   delivery loads nothing more.

use byob_testkit::fault_proxy;
use byob_testkit::moto;
use byob_testkit::postgres as postgres_harness;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use byob::receipt::Receipt;
use byob_testkit::generate::{self, GenerateOptions};
use fault_proxy::{Fault, FaultProxy, Op, Rule};
use moto::Moto;
use serde_json::{Value, json};

const RUN: &str = "2024-01-02T04:00";
const POLL: Duration = Duration::from_millis(20);

fn lake(dir: &Path, scale: f64) {
    let options = GenerateOptions { out: dir.join("lake"), scale, seed: 7, ..GenerateOptions::default() };
    generate::generate(&options, &|_, _| {}).expect("generate");
}

/// `byob <args>` in `cwd` with moto's anything-goes credentials and no profile files.
fn byob(args: &[&str], cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_byob"));
    command.args(args).current_dir(cwd).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for var in ["AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ENDPOINT_URL"] {
        command.env_remove(var);
    }
    let empty = cwd.join(".aws-empty");
    std::fs::write(&empty, "").expect("empty aws config");
    command
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", &empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing");
    command
}

fn text(o: &Output) -> String {
    format!("--- stdout\n{}\n--- stderr\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A role anyone may assume, allowed everything (moto does not evaluate trust policies).
fn role(moto: &Moto, name: &str) -> String {
    let anyone = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]});
    let all = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
    moto.role(name, &anyone, &all)
}

/// Writes `<name>.toml`: `destinations` (TOML) over the lake, through `endpoint`.
fn write_config(dir: &Path, name: &str, destinations: &str, writer: &str, endpoint: &str) -> PathBuf {
    let tables: String = generate::TABLES.iter().map(|t| format!("[[tables]]\nname = \"{t}\"\n")).collect();
    let text = format!(
        "[source]\ntype = \"parquet\"\npath = \"lake\"\n\n{tables}\n{destinations}\n[export]\nparallelism = 4\npart_size = \"5MiB\"\n\n[aws]\nwriter_role_arn = \"{writer}\"\nregion = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\n\n[state]\npath = \"state-{name}\"\n"
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("write config");
    path
}

/// Every object of `bucket`: key -> bytes, receipts without their `timestamp`.
async fn contents(client: &aws_sdk_s3::Client, bucket: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut token = None;
    loop {
        let page = client.list_objects_v2().bucket(bucket).set_continuation_token(token).send().await.expect("list");
        for object in page.contents() {
            let key = object.key().expect("key").to_owned();
            let mut bytes = moto::get(client, bucket, &key).await.expect("listed object");
            if key.ends_with("receipt.json") || key.ends_with("receipt.run.json") {
                let mut receipt: Value = serde_json::from_slice(&bytes).expect("receipt JSON");
                receipt.as_object_mut().expect("object").remove("timestamp");
                bytes = serde_json::to_vec_pretty(&receipt).expect("json");
            }
            out.insert(key, bytes);
        }
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            return out;
        }
    }
}

/// Open multipart uploads of `bucket`: upload id -> key.
async fn open_uploads(client: &aws_sdk_s3::Client, bucket: &str) -> BTreeMap<String, String> {
    let out = client.list_multipart_uploads().bucket(bucket).send().await.expect("list uploads");
    out.uploads().iter().filter_map(|u| Some((u.upload_id()?.to_owned(), u.key().unwrap_or("").to_owned()))).collect()
}

/// What the receipt poller saw.
#[derive(Default)]
struct Watch {
    stop: AtomicBool,
    receipts_seen: AtomicUsize,
    files_checked: AtomicUsize,
    violations: std::sync::Mutex<Vec<String>>,
}

/// Reads every receipt of `prefix` in `bucket` again and again until told to stop, and checks
/// that each file it lists exists with its size (read after the receipt, so a file the
/// receipt points at must already be there).
async fn watch_receipts(client: aws_sdk_s3::Client, bucket: String, prefix: String, watch: Arc<Watch>) {
    loop {
        // Read before testing `stop`, so the pass after the rerun ended sees its final receipts.
        let last = watch.stop.load(Ordering::SeqCst);
        for key in [format!("{prefix}/receipt.json"), format!("{prefix}/{RUN}/receipt.run.json")] {
            let Some(bytes) = moto::get(&client, &bucket, &key).await else { continue };
            watch.receipts_seen.fetch_add(1, Ordering::SeqCst);
            let receipt = match Receipt::from_json(&bytes) {
                Ok(r) => r,
                Err(e) => {
                    watch.violations.lock().expect("lock").push(format!("{key}: unreadable receipt: {e}"));
                    continue;
                }
            };
            for table in receipt.tables.values() {
                for file in &table.files {
                    let found = client.head_object().bucket(&bucket).key(format!("{prefix}/{}", file.key)).send().await;
                    watch.files_checked.fetch_add(1, Ordering::SeqCst);
                    match found {
                        Ok(head) if head.content_length() == Some(file.bytes as i64) => {}
                        Ok(head) => watch.violations.lock().expect("lock").push(format!(
                            "{key} lists {} with {} bytes; the object has {:?}",
                            file.key,
                            file.bytes,
                            head.content_length()
                        )),
                        Err(_) => watch
                            .violations
                            .lock()
                            .expect("lock")
                            .push(format!("{key} lists {}, which does not exist", file.key)),
                    }
                }
            }
        }
        if last {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits for `child` to end, collecting its output.
async fn finish(child: Child) -> Output {
    tokio::task::spawn_blocking(move || child.wait_with_output()).await.expect("join").expect("wait")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_killed_mid_upload_and_run_again_equals_a_clean_run() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    // GIVEN a lake whose plain-CSV dump has files of 2-3 parts (5 MiB) and a clean run of it
    lake(dir.path(), 0.2);
    let writer = role(&moto, "byob-destination-writer");
    let acme = role(&moto, "acme-byob");
    let admin = moto.s3(&moto.admin_config());
    let config = |name: &str| {
        let destination = format!(
            "[[destinations]]\nid = \"acme\"\ntenant = \"acme\"\nbucket = \"{name}\"\nprefix = \"exports/byob\"\nrole_arn = \"{acme}\"\nexternal_id = \"byob-acme-7f3e9c2a41d8\"\nformat = {{ type = \"csv\", codec = \"none\" }}\nmax_file_rows = 25000\n"
        );
        write_config(dir.path(), name, &destination, &writer, &moto.endpoint)
    };
    for bucket in ["clean", "killed"] {
        admin.create_bucket().bucket(bucket).send().await.expect("bucket");
    }
    let clean = config("clean");
    let out =
        byob(&["run", "--config", clean.to_str().expect("utf-8"), "--run", RUN], dir.path()).output().expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // WHEN the dump into `killed` is killed once a data object is complete while an upload is
    // open, and the same run is started again, with a poller reading every receipt throughout
    let watch = Arc::new(Watch::default());
    let poller = tokio::spawn(watch_receipts(admin.clone(), "killed".into(), "exports/byob".into(), watch.clone()));
    let killed = config("killed");
    let args = ["run", "--config", killed.to_str().expect("utf-8"), "--run", RUN];
    let mut child = byob(&args, dir.path()).spawn().expect("spawn");
    let data_prefix = format!("exports/byob/{RUN}/");
    let mut mid_upload = false;
    while child.try_wait().expect("try_wait").is_none() {
        let objects = admin.list_objects_v2().bucket("killed").prefix(&data_prefix).send().await.expect("list");
        if !objects.contents().is_empty() && !open_uploads(&admin, "killed").await.is_empty() {
            child.kill().expect("SIGKILL");
            mid_upload = true;
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let first = finish(child).await;
    assert!(mid_upload, "the dump ended before it could be killed mid-upload: {}", text(&first));
    assert_eq!(first.status.code(), None, "killed by a signal");
    let left_by_kill = open_uploads(&admin, "killed").await;
    let objects_at_kill = admin.list_objects_v2().bucket("killed").send().await.expect("list").contents().len();
    assert!(moto::get(&admin, "killed", "exports/byob/receipt.json").await.is_none(), "no receipt after the kill");
    let second = byob(&args, dir.path()).output().expect("rerun");
    watch.stop.store(true, Ordering::SeqCst);
    poller.await.expect("poller");
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));

    // THEN the bucket equals the clean run's, key for key and byte for byte ...
    let (got, want) = (contents(&admin, "killed").await, contents(&admin, "clean").await);
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (key, bytes) in &want {
        assert!(got[key] == *bytes, "{key} differs from the clean run");
    }
    // ... no receipt ever pointed at a missing or different file ...
    let violations = watch.violations.lock().expect("lock").clone();
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(watch.receipts_seen.load(Ordering::SeqCst) >= 2, "the poller saw both receipts of the rerun");
    // ... and every upload still open is one the killed process opened: the rerun left none
    let open = open_uploads(&admin, "killed").await;
    assert!(!left_by_kill.is_empty(), "the kill left at least one upload open");
    for (id, key) in &open {
        assert!(left_by_kill.contains_key(id), "the rerun left {key} ({id}) open");
    }
    eprintln!(
        "kill: {objects_at_kill} objects complete and {} uploads open at the kill; {} uploads open after the rerun (left by the kill, for the lifecycle rule); {} objects compared; {} receipt reads, {} listed files checked, 0 missing",
        left_by_kill.len(),
        open.len(),
        want.len(),
        watch.receipts_seen.load(Ordering::SeqCst),
        watch.files_checked.load(Ordering::SeqCst)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_whose_role_cannot_be_assumed_fails_alone_and_gets_no_receipt() {
    let Some(moto) = Moto::start() else { return };
    let proxy = FaultProxy::start(&moto.endpoint, 1);
    let dir = tempfile::tempdir().expect("tempdir");
    lake(dir.path(), 0.02);
    let writer = role(&moto, "byob-destination-writer");
    let admin = moto.s3(&moto.admin_config());
    let mut destinations = String::new();
    let mut roles = BTreeMap::new();
    for id in ["acme", "globex", "initech"] {
        let arn = role(&moto, &format!("{id}-byob"));
        admin.create_bucket().bucket(format!("{id}-exports")).send().await.expect("bucket");
        destinations.push_str(&format!(
            "[[destinations]]\nid = \"{id}\"\ntenant = \"{id}\"\nbucket = \"{id}-exports\"\nprefix = \"byob\"\nrole_arn = \"{arn}\"\nexternal_id = \"byob-{id}-0a1b2c3d\"\nmax_file_rows = 2000\n\n"
        ));
        roles.insert(id, arn);
    }
    let config = write_config(dir.path(), "s3", &destinations, &writer, &proxy.endpoint);

    // GIVEN STS throttling every AssumeRole into globex's role
    proxy.add(Rule::on(&[Op::AssumeRole], Fault::Throttle).role(&roles["globex"]));
    // WHEN the whole dump runs
    let out =
        byob(&["run", "--config", config.to_str().expect("utf-8"), "--run", RUN], dir.path()).output().expect("run");

    // THEN globex fails, named with its role and STS's answer, and exit is 1 ...
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("destination globex: FAILED"))
        .unwrap_or_else(|| panic!("no failure line for globex: {}", text(&out)));
    assert!(line.contains(&roles["globex"]) && line.contains("Throttling"), "{line}");
    // ... the others complete with their receipts, and globex has no receipt and no object
    for id in ["acme", "initech"] {
        let receipt = moto::get(&admin, &format!("{id}-exports"), "byob/receipt.json").await;
        assert!(receipt.is_some(), "{id} got its receipt: {}", text(&out));
    }
    let globex = admin.list_objects_v2().bucket("globex-exports").send().await.expect("list");
    assert!(globex.contents().is_empty(), "globex's bucket is untouched: {:?}", globex.contents());
    let requests = proxy.requests();
    let refused = requests.iter().filter(|r| r.fault.is_some()).count();
    let to_globex = requests.iter().filter(|r| r.bucket_key().0 == "globex-exports").count();
    assert_eq!(to_globex, 0, "nothing was sent to globex's bucket");
    eprintln!("assume-role: {refused} AssumeRole calls into globex throttled; the failure reads: {line}");
}

/// A checksum of a whole table: its rows as text, sorted, hashed.
async fn table_checksum(client: &tokio_postgres::Client, table: &str) -> (i64, String) {
    let row = client
        .query_one(
            &format!(
                "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM \"{table}\" t"
            ),
            &[],
        )
        .await
        .expect("checksum");
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loader_killed_during_copy_and_redelivered_loads_exactly_once() {
    let Some(server) = postgres_harness::shared() else { return };
    // GIVEN a local dump of the lake's events and companies for acme
    let dir = tempfile::tempdir().expect("tempdir");
    lake(dir.path(), 0.3);
    let config = "[source]\ntype = \"parquet\"\npath = \"lake\"\n\n[[tables]]\nname = \"companies\"\n[[tables]]\nname = \"events\"\n\n[[destinations]]\nid = \"acme\"\ntenant = \"acme\"\nfolder = \"bucket\"\nprefix = \"byob\"\n\n[state]\npath = \"state\"\n";
    std::fs::write(dir.path().join("local.toml"), config).expect("config");
    let out = byob(&["run", "--config", "local.toml", "--run", RUN], dir.path()).output().expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let receipt_path = dir.path().join("bucket/byob/receipt.json");
    let receipt = Receipt::from_json(&std::fs::read(&receipt_path).expect("receipt")).expect("receipt");
    let receipt_arg = receipt_path.to_str().expect("utf-8").to_owned();
    let (db, clean_db) = (server.database("killed_load").await, server.database("clean_load").await);
    let (url, clean_url) = (server.url(&db), server.url(&clean_db));
    let client = postgres_harness::client(&url).await;
    let load =
        |url: &str| byob(&["load", "--receipt", &receipt_arg, "--target", url, "--schema", "public"], dir.path());

    // WHEN the loader is killed while PostgreSQL runs its COPY into staging
    let mut child = load(&url).spawn().expect("spawn load");
    let mut during_copy = false;
    while child.try_wait().expect("try_wait").is_none() {
        let copying: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query ILIKE 'COPY %byob_staging%'",
                &[],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if copying > 0 {
            child.kill().expect("SIGKILL");
            during_copy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed = finish(child).await;
    assert!(during_copy, "the load ended before its COPY could be seen: {}", text(&killed));
    // THEN nothing was applied ...
    let has_history: Option<String> =
        client.query_one("SELECT to_regclass('byob_load_history')::text", &[]).await.expect("regclass").get(0);
    if has_history.is_some() {
        let rows: i64 = client.query_one("SELECT count(*) FROM byob_load_history", &[]).await.expect("history").get(0);
        assert_eq!(rows, 0, "the killed load recorded nothing");
    }
    for table in ["companies", "events"] {
        let live: Option<String> = client
            .query_one("SELECT to_regclass($1)::text", &[&format!("public.{table}")])
            .await
            .expect("regclass")
            .get(0);
        assert!(live.is_none(), "the killed load created no live table {table}");
    }

    // WHEN the event is redelivered (twice)
    let again = load(&url).output().expect("load again");
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let third = load(&url).output().expect("load a third time");
    assert_eq!(third.status.code(), Some(0), "{}", text(&third));
    assert!(String::from_utf8_lossy(&third.stdout).contains("already loaded"), "{}", text(&third));
    // THEN exactly one load was applied, equal to an uninterrupted load of the same receipt
    let clean = load(&clean_url).output().expect("clean load");
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));
    let history = client.query("SELECT run, rows FROM byob_load_history", &[]).await.expect("history");
    assert_eq!(history.len(), 1, "one load applied");
    assert_eq!(history[0].get::<_, String>(0), RUN);
    assert_eq!(history[0].get::<_, i64>(1), receipt.row_count() as i64);
    let clean_client = postgres_harness::client(&clean_url).await;
    let mut rows = 0;
    for (name, table) in &receipt.tables {
        let (got, want) = (table_checksum(&client, name).await, table_checksum(&clean_client, name).await);
        assert_eq!(got.0, table.row_count as i64, "{name}: the receipt's row count");
        assert_eq!(got, want, "{name}: the same rows as an uninterrupted load");
        rows += got.0;
    }
    let staged: i64 = client
        .query_one("SELECT count(*) FROM pg_tables WHERE schemaname = 'byob_staging'", &[])
        .await
        .expect("staging")
        .get(0);
    assert_eq!(staged, 0, "no staging table left");
    let tables: BTreeSet<_> = receipt.tables.keys().collect();
    eprintln!(
        "loader kill: killed during COPY, redelivered twice; 1 load applied, {rows} rows in {tables:?} equal to an uninterrupted load"
    );
}
