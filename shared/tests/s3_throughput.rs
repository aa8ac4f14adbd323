//! Throughput and peak memory of the S3 sink streaming one large object into moto: a
//! benchmark, not a test (`#[ignore]`, prints figures, asserts only that the object landed).
//!
//! ```sh
//! cargo test -p byob-shared --test s3_throughput -- --ignored --nocapture
//! BYOB_BENCH_MIB=1024 BYOB_BENCH_PART_MIB=8 BYOB_BENCH_IN_FLIGHT=4 cargo test ...   # the defaults
//! ```
//!
//! The figures are moto's as much as ours: moto is a single Python process that keeps every
//! part in memory and concatenates them on complete. Peak RSS is this process's high-water
//! mark (VmHWM) minus what it held before the upload, so it shows what the upload itself
//! buffered: at most `(parts in flight + 1) x part size` plus the HTTP stack's buffers.

use byob_testkit::moto;

use std::time::Instant;

use byob::aws::{self, S3Endpoint};
use byob::sink::{ObjectSink, PutOptions, S3Sink, S3SinkOptions};
use bytes::Bytes;
use moto::Moto;

const MIB: usize = 1024 * 1024;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `VmHWM` or `VmRSS` of a process, in MiB.
fn memory_mib(pid: &str, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn s3_sink_throughput_and_peak_memory_for_one_large_object() {
    let Some(moto) = Moto::start() else { return };
    let total = env_usize("BYOB_BENCH_MIB", 1024) * MIB;
    let part_size = env_usize("BYOB_BENCH_PART_MIB", 8) * MIB;
    let in_flight = env_usize("BYOB_BENCH_IN_FLIGHT", 4);
    let chunk = 256 * 1024; // what an encoder hands over at a time

    let admin = moto.s3(&moto.admin_config());
    admin.create_bucket().bucket("bench").send().await.expect("bucket");
    let base = moto.admin_config();
    let credentials = base.credentials_provider().expect("credentials");
    let client = aws_sdk_s3::Client::from_conf(aws::s3_config(&base, credentials, &S3Endpoint::default()).build());
    let mut options = S3SinkOptions::new("bench");
    options.expected_bucket_owner = Some(moto::ACCOUNT.into());
    options.part_size = part_size;
    options.parts_in_flight = in_flight;
    let sink = S3Sink::new(client, options);
    // Warm up the connection pool and the identity cache with a small object.
    sink.put("warmup", Bytes::from_static(b"x"), &PutOptions::default()).await.expect("warmup");

    let pattern: Vec<u8> = (0..chunk).map(|i| (i * 7 % 251) as u8).collect();
    let before = memory_mib("self", "VmRSS");
    let started = Instant::now();
    let mut upload = sink.start("bench/object.bin", &PutOptions::default()).await.expect("start");
    let mut sent = 0;
    while sent < total {
        let n = chunk.min(total - sent);
        upload.put_part(Bytes::copy_from_slice(&pattern[..n])).await.expect("put_part");
        sent += n;
    }
    upload.complete().await.expect("complete");
    let seconds = started.elapsed().as_secs_f64();
    let peak = memory_mib("self", "VmHWM");

    let head = admin.head_object().bucket("bench").key("bench/object.bin").send().await.expect("head");
    assert_eq!(head.content_length(), Some(total as i64));
    let mib = total as f64 / MIB as f64;
    println!(
        "\nS3 sink -> moto: {mib:.0} MiB in {seconds:.1} s = {:.1} MiB/s; part size {} MiB, {in_flight} parts in flight, {} parts",
        mib / seconds,
        part_size / MIB,
        total.div_ceil(part_size)
    );
    println!(
        "peak RSS of this process: {peak:.0} MiB ({before:.0} MiB before the upload, so at most +{:.0} MiB for it; bound (in flight + 1) x part = {} MiB); moto's peak RSS: {:.0} MiB\n",
        peak - before,
        (in_flight + 1) * part_size / MIB,
        memory_mib(&moto.pid().to_string(), "VmHWM")
    );
}
