//! Fault injection, in process: the failures AWS really produces, injected by a proxy between
//! the AWS SDK and moto (`common/fault_proxy.rs`), and each dump's final bucket checked against
//! a clean run of the same dump (same config, same run id) into buckets of its own.
//!
//! Guarantees proved here (the kills, and the destination whose AssumeRole fails, are in
//! `cli/tests/faults_kill.rs`, through the `byob` binary):
//!
//! - **Transient S3 failures** (10 % of PutObject / CreateMultipartUpload / UploadPart /
//!   CompleteMultipartUpload answered 500 InternalError, 503 SlowDown or a connection reset,
//!   at most twice per request, chosen by a seeded hash of each request; and, so every kind of
//!   write is hit whatever the draw, the first CreateMultipartUpload, the second UploadPart
//!   and the first CompleteMultipartUpload too): the dump completes, and every key and every byte of the
//!   bucket equal the clean run's (receipts equal except their `timestamp`). No multipart
//!   upload is left open.
//! - **Lost answers** (moto applied the request, then the connection died before the answer:
//!   the first CompleteMultipartUpload, the second PutObject, the third UploadPart): the SDK
//!   retries each (a PutObject or UploadPart sent again writes the same bytes under the same
//!   key or part number; a CompleteMultipartUpload sent again for the upload that made the
//!   current object is answered 200 by S3, and by moto, which models that idempotence); the
//!   bucket equals the clean run, nothing is duplicated, no upload stays open.
//! - **Credentials expiring during an export**: the customer role's sessions are made to
//!   expire 130 s after they were issued (the proxy rewrites AssumeRole's `Expiration`, and
//!   answers 400 ExpiredToken to any request signed with that session at or after that
//!   moment). The SDK clock is moved forward in the middle of the uploads, first into the
//!   identity cache's refresh window (60-120 s before expiry: `byob::aws::identity_cache`,
//!   buffer `REFRESH_BEFORE_EXPIRY` = 120 s minus a random jitter of up to half of it), then
//!   past the expiry. The export completes, the chain was assumed again, and no request was
//!   refused for an expired token. (A moved clock rather than real time: with the jitter, a
//!   real-time refresh comes anywhere from 5 to 65 s after a 125 s session starts.)
//!
//! The dumps here are driven like the Step Functions workflow drives them (plan, export each
//! task, finalize), with sinks built by `S3Sink::for_destination_with` from an SDK config
//! whose endpoint is the proxy: `byob run` reads credentials from the environment, which a
//! test process cannot set safely.

use byob_testkit::fault_proxy;
use byob_testkit::moto;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use byob::config::Config;
use byob::export::{self, Cancel};
use byob::layout::RunId;
use byob::plan::{self, PlanFilter};
use byob::receipt::Receipt;
use byob::sink::S3Sink;
use byob::state::LocalState;
use byob_testkit::generate::{self, GenerateOptions};
use fault_proxy::{Fault, FaultProxy, Op, Rule};
use futures::StreamExt;
use moto::Moto;
use serde_json::{Value, json};

const RUN: &str = "2024-01-02T04:00";
/// Destinations: `bulk` (plain CSV, 30,000-row files: multipart uploads of 5 MiB parts) and
/// `many` (Parquet, 700-row files: many small PutObjects).
const DESTINATIONS: [&str; 2] = ["bulk", "many"];

struct World {
    moto: Moto,
    proxy: FaultProxy,
    dir: tempfile::TempDir,
    writer: String,
    roles: BTreeMap<&'static str, String>,
}

impl World {
    fn start(seed: u64) -> Option<World> {
        let moto = Moto::start()?;
        let proxy = FaultProxy::start(&moto.endpoint, seed);
        let anyone = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]});
        let all = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
        let writer = moto.role("byob-destination-writer", &anyone, &all);
        let roles = DESTINATIONS.iter().map(|d| (*d, moto.role(&format!("{d}-byob"), &anyone, &all))).collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let options =
            GenerateOptions { out: dir.path().join("lake"), scale: 0.1, seed: 7, ..GenerateOptions::default() };
        generate::generate(&options, &|_, _| {}).expect("generate");
        Some(World { moto, proxy, dir, writer, roles })
    }

    /// The SDK config of our side (moto's admin credentials), every service through the proxy.
    fn base(&self) -> SdkConfig {
        self.moto.admin_config().into_builder().endpoint_url(&self.proxy.endpoint).build()
    }

    /// An S3 client straight to moto, for creating and reading buckets.
    fn admin(&self) -> aws_sdk_s3::Client {
        self.moto.s3(&self.moto.admin_config())
    }

    /// The config of one dump into the buckets `<name>-bulk` and `<name>-many`.
    async fn config(&self, name: &str) -> Config {
        let tables: String = generate::TABLES.iter().map(|t| format!("[[tables]]\nname = \"{t}\"\n")).collect();
        let mut text = format!("[source]\ntype = \"parquet\"\npath = \"lake\"\n\n{tables}\n");
        for (id, format, rows) in
            [("bulk", "{ type = \"csv\", codec = \"none\" }", 30_000), ("many", "{ type = \"parquet\" }", 700)]
        {
            let bucket = format!("{name}-{id}");
            self.admin().create_bucket().bucket(&bucket).send().await.expect("bucket");
            text.push_str(&format!(
                "[[destinations]]\nid = \"{id}\"\ntenant = \"acme\"\nbucket = \"{bucket}\"\nprefix = \"exports/byob\"\nrole_arn = \"{}\"\nexternal_id = \"byob-{id}-0a1b2c3d\"\nformat = {format}\nmax_file_rows = {rows}\n\n",
                self.roles[id]
            ));
        }
        text.push_str(&format!(
            "[export]\nparallelism = 4\npart_size = \"5MiB\"\n\n[aws]\nwriter_role_arn = \"{}\"\nregion = \"us-east-1\"\nendpoint_url = \"{}\"\n\n[state]\npath = \"state-{name}\"\n",
            self.writer, self.proxy.endpoint
        ));
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).expect("write config");
        Config::load(&path).unwrap_or_else(|e| panic!("config: {e}"))
    }

    /// Every object of `bucket` (straight from moto): key -> bytes, receipts without their
    /// `timestamp` (the only thing two runs of the same dump may differ in).
    async fn contents(&self, bucket: &str) -> BTreeMap<String, Vec<u8>> {
        let client = self.admin();
        let mut out = BTreeMap::new();
        let mut token = None;
        loop {
            let page =
                client.list_objects_v2().bucket(bucket).set_continuation_token(token).send().await.expect("list");
            for object in page.contents() {
                let key = object.key().expect("key").to_owned();
                let mut bytes = moto::get(&client, bucket, &key).await.expect("listed object");
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

    /// Asserts that the dump `name` left exactly what the dump `clean` left, bucket by bucket;
    /// returns the number of objects compared.
    async fn assert_same(&self, name: &str, clean: &str) -> usize {
        let mut compared = 0;
        for id in DESTINATIONS {
            let (got, want) =
                (self.contents(&format!("{name}-{id}")).await, self.contents(&format!("{clean}-{id}")).await);
            assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{id}: the same keys");
            for (key, bytes) in &want {
                assert!(got[key] == *bytes, "{id}: {key} differs from the clean run");
            }
            assert!(want.contains_key("exports/byob/receipt.json"), "{id}: the clean run has a receipt");
            compared += want.len();
            let open = moto::open_uploads(&self.admin(), &format!("{name}-{id}")).await;
            assert!(open.is_empty(), "{id}: multipart uploads left open: {open:?}");
        }
        compared
    }
}

/// A whole dump as the Step Functions workflow runs it: plan, every task exported (four at a
/// time), then finalize, per destination. Returns each destination's receipt or error.
async fn dump(base: &SdkConfig, config: &Config) -> BTreeMap<String, Result<Receipt, byob::Error>> {
    let run: RunId = RUN.parse().expect("run id");
    let source = byob::wiring::source(config, &byob::wiring::sdk(config).await, byob::wiring::Reads::OneSource);
    let state = LocalState::new(config.state.path.clone());
    let plan = plan::plan(config, source.as_ref(), Some(&state), run, &PlanFilter::default()).await.expect("plan");
    let mut outcomes = BTreeMap::new();
    for dp in &plan.destinations {
        let destination = config.destinations.iter().find(|d| d.id == dp.destination).expect("destination");
        let outcome = async {
            let sink = S3Sink::for_destination_with(base, config, destination, RUN).await?;
            let spec = byob::wiring::export_spec(config, destination, run)?;
            let results: Vec<_> = futures::stream::iter(dp.tasks.iter().map(|task| {
                let request = plan::table_request(config, destination, &task.table);
                let (source, sink, spec) = (source.clone(), sink.clone(), &spec);
                async move {
                    export::export(task, &request, source.as_ref(), &sink, spec, &Cancel::default(), Arc::new(|_| {}))
                        .await
                }
            }))
            .buffer_unordered(4)
            .collect()
            .await;
            let results = results.into_iter().collect::<Result<Vec<_>, _>>()?;
            let (receipt, _) = byob::finalize::finalize(dp, &results, &spec, &sink, &state).await?;
            Ok::<_, byob::Error>(receipt)
        }
        .await;
        outcomes.insert(dp.destination.clone(), outcome);
    }
    outcomes
}

fn assert_complete(outcomes: &BTreeMap<String, Result<Receipt, byob::Error>>) {
    assert_eq!(outcomes.len(), DESTINATIONS.len());
    for (id, outcome) in outcomes {
        if let Err(e) = outcome {
            panic!("destination {id} failed: {e}");
        }
    }
}

fn count(requests: &[fault_proxy::Request], f: impl Fn(&fault_proxy::Request) -> bool) -> usize {
    requests.iter().filter(|r| f(r)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_of_s3_requests_failing_transiently_changes_nothing() {
    let Some(world) = World::start(0x5eed) else { return };
    let base = world.base();
    // GIVEN a clean dump of the run
    let clean = world.config("clean").await;
    assert_complete(&dump(&base, &clean).await);
    world.proxy.forget();

    // WHEN the same run is dumped again while 10 % of S3 writes get a 500, a 503 SlowDown or
    // a reset connection (at most twice for one request, so the SDK's 5 attempts get through)
    let writes = [Op::PutObject, Op::CreateMultipartUpload, Op::UploadPart, Op::CompleteMultipartUpload];
    world.proxy.add(
        Rule::on(&writes, Fault::InternalError)
            .faults(&[Fault::InternalError, Fault::SlowDown, Fault::Reset])
            .probability(0.10)
            .per_request(2),
    );
    let mix = [Fault::InternalError, Fault::SlowDown, Fault::Reset];
    for (op, n) in [(Op::CreateMultipartUpload, 1), (Op::UploadPart, 2), (Op::CompleteMultipartUpload, 1)] {
        world.proxy.add(Rule::on(&[op], Fault::InternalError).faults(&mix).nth(n));
    }
    let faulty = world.config("faulty").await;
    let outcomes = dump(&base, &faulty).await;

    // THEN the dump completes, and the buckets equal the clean run's, key for key, byte for byte
    assert_complete(&outcomes);
    let compared = world.assert_same("faulty", "clean").await;
    let requests = world.proxy.requests();
    let s3 = count(&requests, |r| writes.contains(&r.op));
    let faults = world.proxy.faults();
    let kinds: BTreeMap<String, usize> = faults.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(format!("{:?} {:?}", r.op, r.fault.expect("fault"))).or_default() += 1;
        m
    });
    eprintln!(
        "transient: {s3} S3 write requests, {} faults injected {kinds:?}; {compared} objects compared",
        faults.len()
    );
    assert!(faults.len() >= 5, "the run saw faults: {kinds:?}");
    for fault in mix {
        assert!(faults.iter().any(|r| r.fault == Some(fault)), "{fault:?} was injected: {kinds:?}");
    }
    for op in writes {
        assert!(faults.iter().any(|r| r.op == op), "{op:?} got a fault: {kinds:?}");
    }
    // and every request to a customer bucket named the bucket owner
    for r in requests.iter().filter(|r| writes.contains(&r.op)) {
        assert_eq!(r.header("x-amz-expected-bucket-owner"), Some(moto::ACCOUNT), "{} {}", r.method, r.path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_lost_after_s3_applied_the_request_duplicate_and_corrupt_nothing() {
    let Some(world) = World::start(7) else { return };
    let base = world.base();
    let clean = world.config("clean").await;
    assert_complete(&dump(&base, &clean).await);
    world.proxy.forget();

    // WHEN moto applies the first CompleteMultipartUpload, the second PutObject and the third
    // UploadPart, but their answers never arrive
    for (op, n) in [(Op::CompleteMultipartUpload, 1), (Op::PutObject, 2), (Op::UploadPart, 3)] {
        world.proxy.add(Rule::on(&[op], Fault::DropResponse).nth(n));
    }
    let outcomes = dump(&base, &world.config("lost").await).await;

    // THEN each was retried, and the dump equals the clean run: no object corrupted or
    // duplicated, no upload left open
    assert_complete(&outcomes);
    let compared = world.assert_same("lost", "clean").await;
    let requests = world.proxy.requests();
    let dropped = world.proxy.faults();
    assert_eq!(dropped.len(), 3, "{dropped:?}");
    for lost in &dropped {
        assert_eq!(lost.upstream_status, Some(200), "moto applied {:?}", lost.op);
        let retries: Vec<_> = requests
            .iter()
            .filter(|r| r.seq > lost.seq && r.op == lost.op && r.path == lost.path && r.query == lost.query)
            .collect();
        assert!(!retries.is_empty(), "{:?} on {} was retried", lost.op, lost.path);
        assert_eq!(retries.last().and_then(|r| r.status), Some(200), "the retry of {:?} succeeded", lost.op);
        eprintln!(
            "lost answer to {:?} {}: retried {} time(s), answered {:?}",
            lost.op,
            lost.path,
            retries.len(),
            retries.iter().map(|r| r.status).collect::<Vec<_>>()
        );
    }
    eprintln!("lost answers: {compared} objects compared");
}

/// A clock the SDK reads, moved forward by the test.
#[derive(Clone, Debug, Default)]
struct Clock(Arc<AtomicU64>);

impl aws_smithy_async::time::TimeSource for Clock {
    fn now(&self) -> SystemTime {
        SystemTime::now() + Duration::from_secs(self.0.load(Ordering::SeqCst))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_expiring_during_an_export_are_renewed_and_the_export_completes() {
    let Some(world) = World::start(11) else { return };
    let clean = world.config("clean").await;
    assert_complete(&dump(&world.base(), &clean).await);
    world.proxy.forget();

    // GIVEN sessions of the bulk customer's role that end 130 s after they are issued, and an
    // SDK clock the test moves
    let role = world.roles["bulk"].clone();
    world.proxy.expire_sessions(&role, Duration::from_secs(130));
    let clock = Clock::default();
    let base = world.base().into_builder().time_source(clock.clone()).build();
    // WHEN, during the uploads, time passes: +90 s at the first data write of the bulk bucket
    // (inside the 60-120 s refresh window: the cache must assume the chain again), and +60 s
    // more at the fourth (past the first session's end: its key is refused from then on)
    let writes = Arc::new(AtomicUsize::new(0));
    {
        let (clock, writes) = (clock.clone(), writes.clone());
        world.proxy.on_request(move |r| {
            if matches!(r.op, Op::PutObject | Op::UploadPart) && r.bucket_key().0 == "expiring-bulk" {
                match writes.fetch_add(1, Ordering::SeqCst) {
                    0 => clock.0.fetch_add(90, Ordering::SeqCst),
                    3 => clock.0.fetch_add(60, Ordering::SeqCst),
                    _ => 0,
                };
            }
        });
    }
    let outcomes = dump(&base, &world.config("expiring").await).await;

    // THEN the export completes, equal to the clean run ...
    assert_complete(&outcomes);
    let compared = world.assert_same("expiring", "clean").await;
    // ... the customer's role was assumed again, and no request used an expired session
    let requests = world.proxy.requests();
    let assumed = count(&requests, |r| r.op == Op::AssumeRole && r.form("RoleArn") == Some(role.as_str()));
    let bulk_writes = writes.load(Ordering::SeqCst);
    let keys: std::collections::BTreeSet<_> = requests
        .iter()
        .filter(|r| matches!(r.op, Op::PutObject | Op::UploadPart) && r.bucket_key().0 == "expiring-bulk")
        .filter_map(|r| r.access_key.clone())
        .collect();
    let refused = count(&requests, |r| r.status == Some(400));
    eprintln!(
        "expiry: {assumed} AssumeRole of the customer role, {bulk_writes} data writes, {} session keys used, {refused} refused; {compared} objects compared",
        keys.len()
    );
    assert!(bulk_writes > 4, "the clock moved twice during the uploads ({bulk_writes} writes)");
    assert!(assumed >= 2, "the chain was assumed again ({assumed} AssumeRole calls)");
    assert!(keys.len() >= 2, "writes were signed by more than one session: {keys:?}");
    assert_eq!(refused, 0, "no request was refused as expired");
}
