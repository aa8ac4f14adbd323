//! The S3 sink against a moto server of each test's own: the shared sink conformance suite,
//! failures mid-upload, retries, and what goes on the wire.
//!
//! moto cannot check ExpectedBucketOwner (every bucket is in one account), KMS permissions or
//! checksums; for those the tests record what the client SENDS with an SDK interceptor
//! (`common/wire.rs`) and assert the headers are there.

use byob_testkit::moto;
use byob_testkit::wire;

use std::sync::{Arc, Mutex};

use byob::aws::{self, S3Endpoint};
use byob::config::Encryption;
use byob::sink::{ObjectSink, PutOptions, S3Sink, S3SinkOptions};
use byob_testkit::conformance;
use bytes::Bytes;
use moto::Moto;
use wire::{Fault, Wire};

const MIB: usize = 1024 * 1024;
const OWNER: &str = "123456789012";

/// A sink on `bucket` of `moto`, writing with moto's admin credentials, its client recording
/// (and faulting) through `wire`.
fn sink(moto: &Moto, bucket: &str, options: impl FnOnce(&mut S3SinkOptions), wire: &Wire) -> S3Sink {
    let base = moto.admin_config();
    let credentials = base.credentials_provider().expect("credentials");
    let config = aws::s3_config(&base, credentials, &S3Endpoint::default()).interceptor(wire.clone()).build();
    let mut o = S3SinkOptions::new(bucket);
    o.expected_bucket_owner = Some(OWNER.into());
    o.part_size = 5 * MIB;
    o.parts_in_flight = 2;
    options(&mut o);
    S3Sink::new(aws_sdk_s3::Client::from_conf(config), o)
}

async fn bucket(moto: &Moto, name: &str) -> aws_sdk_s3::Client {
    let admin = moto.s3(&moto.admin_config());
    admin.create_bucket().bucket(name).send().await.expect("create bucket");
    admin
}

fn options() -> PutOptions {
    let mut o = PutOptions { content_type: "application/vnd.apache.parquet".into(), ..Default::default() };
    o.metadata.insert("byob-run".into(), "2023-03-14T04:03".into());
    o.metadata.insert("byob-table".into(), "companies".into());
    o
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_sink_passes_the_sink_conformance_suite() {
    let Some(moto) = Moto::start() else { return };
    let admin = bucket(&moto, "conformance").await;
    let wire = Wire::default();
    let sink = sink(&moto, "conformance", |_| {}, &wire);

    let read = |key: &str| moto::block_on(moto::get(&admin, "conformance", key));
    conformance::run_all(&sink, &read).await;

    // Nothing half-done is left, and the sink never read, listed or headed anything.
    assert!(moto::open_uploads(&admin, "conformance").await.is_empty(), "open multipart uploads left");
    let ops = wire.operations();
    assert!(
        ops.contains(&"UploadPart") && ops.contains(&"PutObject") && ops.contains(&"AbortMultipartUpload"),
        "{ops:?}"
    );
    for op in &ops {
        assert!(
            ["PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload"]
                .contains(op),
            "the sink sent {op}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_mid_upload_leaves_no_object_and_no_open_upload() {
    let Some(moto) = Moto::start() else { return };
    let admin = bucket(&moto, "failures").await;
    let wire = Wire::default();
    let sink = sink(&moto, "failures", |_| {}, &wire);

    // GIVEN an earlier object under the key, and S3 refusing the 3rd part (AccessDenied is
    // not retryable: e.g. the customer revoked our rights mid-export)
    sink.put("dump/t/t_000000000000.parquet", Bytes::from_static(b"earlier run"), &options()).await.expect("put");
    wire.fail(Fault::answer("UploadPart", 3, 403, "AccessDenied"));

    // WHEN an upload of 6 parts streams through
    let mut upload = sink.start("dump/t/t_000000000000.parquet", &options()).await.expect("start");
    let mut failed = None;
    for i in 0..6u8 {
        if let Err(e) = upload.put_part(Bytes::from(data(5 * MIB, i))).await {
            failed = Some(e);
            break;
        }
    }
    let error = match failed {
        Some(e) => {
            // The sink aborted already; the caller's abort is a no-op.
            upload.abort().await.expect("abort after failure");
            e
        }
        None => upload.complete().await.expect_err("complete must fail"),
    };

    // THEN the error names the operation, bucket and key, and says it is not retryable ...
    let message = error.to_string();
    assert!(
        message.contains("UploadPart") && message.contains("failures") && message.contains("t_000000000000"),
        "{message}"
    );
    assert!(message.contains("AccessDenied"), "{message}");
    // ... the upload was aborted, no upload is left open, and the earlier object is intact.
    assert!(wire.operations().contains(&"AbortMultipartUpload"), "{:?}", wire.operations());
    assert!(moto::open_uploads(&admin, "failures").await.is_empty(), "an open multipart upload was left");
    assert_eq!(
        moto::get(&admin, "failures", "dump/t/t_000000000000.parquet").await.as_deref(),
        Some(&b"earlier run"[..])
    );

    // A CompleteMultipartUpload that never reaches S3 (the network failed) aborts too, and
    // leaves no object.
    wire.clear();
    wire.fail(Fault::unsent("CompleteMultipartUpload", 1));
    let mut upload = sink.start("dump/t/t_000000000001.parquet", &options()).await.expect("start");
    upload.put_part(Bytes::from(data(11 * MIB, 9))).await.expect("parts");
    let e = upload.complete().await.expect_err("complete must fail");
    assert!(e.to_string().contains("CompleteMultipartUpload"), "{e}");
    assert_eq!(wire.operations().last(), Some(&"AbortMultipartUpload"));
    assert!(moto::open_uploads(&admin, "failures").await.is_empty());
    assert!(moto::get(&admin, "failures", "dump/t/t_000000000001.parquet").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_errors_are_retried_with_the_same_bytes() {
    let Some(moto) = Moto::start() else { return };
    let admin = bucket(&moto, "retries").await;
    let wire = Wire::default();
    let sink = sink(&moto, "retries", |_| {}, &wire);
    // GIVEN S3 answering the 2nd part attempt with 503 SlowDown and the 1st PutObject with 500
    wire.fail(Fault::answer("UploadPart", 2, 503, "SlowDown"));
    wire.fail(Fault::answer("PutObject", 1, 500, "InternalError"));

    // WHEN a multi-part object and a small one are written
    let big = data(12 * MIB, 3);
    let mut upload = sink.start("r/big.bin", &options()).await.expect("start");
    upload.put_part(Bytes::from(big.clone())).await.expect("parts");
    upload.complete().await.expect("complete after a retried part");
    sink.put("r/receipt.json", Bytes::from_static(b"{}"), &options()).await.expect("put after a retried 500");

    // THEN both land intact, and the SDK sent the failed requests again.
    assert_eq!(moto::get(&admin, "retries", "r/big.bin").await.expect("big"), big);
    assert_eq!(moto::get(&admin, "retries", "r/receipt.json").await.as_deref(), Some(&b"{}"[..]));
    let ops = wire.operations();
    assert_eq!(ops.iter().filter(|o| **o == "UploadPart").count(), 4, "3 parts + 1 retry: {ops:?}");
    assert_eq!(ops.iter().filter(|o| **o == "PutObject").count(), 2, "1 put + 1 retry: {ops:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_checksums_encryption_metadata_and_tags_are_on_the_wire() {
    let Some(moto) = Moto::start() else { return };
    let admin = bucket(&moto, "wire").await;
    let wire = Wire::default();
    let kms = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let sink = sink(
        &moto,
        "wire",
        |o| {
            o.encryption = Some(Encryption::SseKms { kms_key_id: kms.into() });
            o.bucket_owner_full_control = true;
            o.tags.insert("source".into(), "byob".into());
            o.tags.insert("cost center".into(), "data/exports".into());
        },
        &wire,
    );

    // WHEN a one-part object (exactly one part: a single PutObject) and a two-part object are written
    sink.put("w/small.json", Bytes::from(data(5 * MIB, 1)), &options()).await.expect("put");
    let mut upload = sink.start("w/big.parquet", &options()).await.expect("start");
    upload.put_part(Bytes::from(data(5 * MIB + 1, 2))).await.expect("parts");
    upload.complete().await.expect("complete");

    // THEN a single PutObject carried the small one, a multipart upload the big one ...
    let sent = wire.sent();
    let ops: Vec<_> = sent.iter().map(|s| s.operation()).collect();
    assert_eq!(ops, ["PutObject", "CreateMultipartUpload", "UploadPart", "UploadPart", "CompleteMultipartUpload"]);

    // ... EVERY request named the bucket owner (moto cannot check ExpectedBucketOwner: this
    // client-side record is the proof that S3 would refuse a bucket of another account) ...
    for s in &sent {
        assert_eq!(s.header("x-amz-expected-bucket-owner"), Some(OWNER), "{} {}", s.operation(), s.uri);
    }
    // ... every body carried a CRC32C we computed, and the upload was created for CRC32C ...
    for s in sent.iter().filter(|s| ["PutObject", "UploadPart"].contains(&s.operation())) {
        assert!(
            s.header("x-amz-checksum-crc32c").is_some_and(|v| v.len() == 8),
            "{} has no CRC32C: {:?}",
            s.operation(),
            s.headers
        );
    }
    assert_eq!(sent[1].header("x-amz-checksum-algorithm"), Some("CRC32C"));
    // ... and the object settings went with PutObject and CreateMultipartUpload.
    for s in [&sent[0], &sent[1]] {
        assert_eq!(s.header("x-amz-server-side-encryption"), Some("aws:kms"));
        assert_eq!(s.header("x-amz-server-side-encryption-aws-kms-key-id"), Some(kms));
        assert_eq!(s.header("x-amz-acl"), Some("bucket-owner-full-control"));
        assert_eq!(s.header("x-amz-meta-byob-run"), Some("2023-03-14T04:03"));
        assert_eq!(s.header("x-amz-meta-byob-table"), Some("companies"));
        assert_eq!(s.header("x-amz-tagging"), Some("cost%20center=data%2Fexports&source=byob"));
        assert_eq!(s.header("content-type"), Some("application/vnd.apache.parquet"));
    }

    // moto echoes what it stored: SSE-KMS, the key, metadata and tags, read back as an admin.
    for key in ["w/small.json", "w/big.parquet"] {
        let head = admin.head_object().bucket("wire").key(key).send().await.expect("head");
        assert_eq!(head.server_side_encryption().map(|s| s.as_str()), Some("aws:kms"), "{key}");
        assert_eq!(head.ssekms_key_id(), Some(kms), "{key}");
        assert_eq!(head.metadata().and_then(|m| m.get("byob-table")).map(String::as_str), Some("companies"), "{key}");
        let tags = admin.get_object_tagging().bucket("wire").key(key).send().await.expect("tags");
        let mut tags: Vec<_> = tags.tag_set().iter().map(|t| format!("{}={}", t.key(), t.value())).collect();
        tags.sort();
        assert_eq!(tags, ["cost center=data/exports", "source=byob"], "{key}");
    }
}

#[tokio::test]
async fn a_refused_abort_is_a_warning_naming_bucket_and_key() {
    let Some(moto) = Moto::start() else { return };
    let admin = bucket(&moto, "no-abort").await;
    // GIVEN IAM enforcement and a writer allowed s3:PutObject only (no s3:AbortMultipartUpload)
    let put_only = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::no-abort/p/*"}]});
    let writer = moto.user("put-only", &put_only);
    let everything = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
    let admin_user = moto.user("admin", &everything);
    moto.enforce_iam();
    let base = moto.sdk_config(writer);
    let config =
        aws::s3_config(&base, base.credentials_provider().expect("credentials"), &S3Endpoint::default()).build();
    let mut sink_options = S3SinkOptions::new("no-abort");
    sink_options.part_size = 5 * MIB;
    let sink = S3Sink::new(aws_sdk_s3::Client::from_conf(config), sink_options);
    let logs = Logs::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .finish(),
    );

    // WHEN an upload is aborted
    let mut upload = sink.start("p/never.bin", &options()).await.expect("start");
    upload.put_part(Bytes::from(data(11 * MIB, 0))).await.expect("parts are allowed");
    let e = upload.abort().await.expect_err("the abort is refused");

    // THEN the error and a warning name bucket and key, and say what to grant
    let message = e.to_string();
    assert!(
        message.contains("AbortMultipartUpload") && message.contains("no-abort") && message.contains("p/never.bin"),
        "{message}"
    );
    assert!(message.contains("AccessDenied"), "{message}");
    let logged = logs.text();
    assert!(logged.contains("WARN") && logged.contains("no-abort") && logged.contains("p/never.bin"), "{logged}");
    assert!(logged.contains("s3:AbortMultipartUpload") && logged.contains("lifecycle"), "{logged}");
    // ... and, as the warning says, the upload stays open until a lifecycle rule removes it.
    drop(admin);
    let admin = moto.s3(&moto.sdk_config(admin_user));
    assert_eq!(moto::open_uploads(&admin, "no-abort").await, ["p/never.bin"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_upload_is_aborted_in_the_background() {
    let Some(moto) = Moto::start() else { return };
    let admin = bucket(&moto, "dropped").await;
    let wire = Wire::default();
    let sink = sink(&moto, "dropped", |_| {}, &wire);
    let mut upload = sink.start("d/cancelled.bin", &options()).await.expect("start");
    upload.put_part(Bytes::from(data(11 * MIB, 0))).await.expect("parts");
    drop(upload);
    for _ in 0..100 {
        if moto::open_uploads(&admin, "dropped").await.is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the dropped upload was not aborted: {:?}", wire.operations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_bounded_by_parts_in_flight() {
    let Some(moto) = Moto::start() else { return };
    let admin = bucket(&moto, "bounded").await;
    let wire = Wire::default();
    let sink = sink(&moto, "bounded", |o| o.parts_in_flight = 2, &wire);
    assert_eq!(sink.options().max_buffered_bytes(), 15 * MIB);
    // One put_part of 8 parts: the sink sends them zero-copy, never more than 2 at once.
    let body = data(40 * MIB, 5);
    let mut upload = sink.start("m/eight.bin", &options()).await.expect("start");
    upload.put_part(Bytes::from(body.clone())).await.expect("parts");
    upload.complete().await.expect("complete");
    assert_eq!(moto::get(&admin, "bounded", "m/eight.bin").await.expect("object"), body);
    assert_eq!(wire.operations().iter().filter(|o| **o == "UploadPart").count(), 8);
}

/// A tracing writer into memory.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}
