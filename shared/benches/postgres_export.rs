//! Benchmark (not a test): a 5-million-row `events` table (or, with `BYOB_BENCH_SHAPE=web`, the
//! string-heavy `web_events` table: unique ids, URLs and JSON documents) exported from
//! PostgreSQL to Parquet with gzip and with zstd, against a bare `COPY (SELECT * FROM <table>)
//! TO STDOUT (FORMAT binary)` read into nothing, on the same server in the same run. Reports seconds, rows/s,
//! MB/s (of the binary COPY stream), output size, this process's peak RSS per phase, and the
//! ratio to the bare COPY: the goal is to be limited by PostgreSQL, not by byob.
//!
//! It starts its own PostgreSQL cluster (see `tests/postgres_harness`), generates the
//! synthetic table for one tenant, loads them, then runs each measured phase in a
//! child process of its own (so each peak RSS is that phase's alone). Run it with
//! `scripts/bench-postgres` (release profile). `BYOB_BENCH_ROWS` changes the row count;
//! `BYOB_BENCH_DATABASE=postgresql://...` measures against an existing database instead (the
//! table is loaded there once and kept, so later runs skip the load); `BYOB_BENCH_PHASES=zstd:1`
//! runs only the named phases (of decode, gzip:1, gzip:2, zstd:1, zstd:2) after the bare COPY;
//! `BYOB_BENCH_REPEAT=3` runs them all 3 times in turn and reports the median and the range,
//! each ratio against the bare COPY of its own round.

#![allow(clippy::unwrap_used)]

use byob_testkit::postgres as postgres_harness;

use std::sync::Arc;
use std::time::Instant;

use byob::export::{self, Cancel, ExportSpec};
use byob::format::{Codec, Format, FormatKind};
use byob::plan::ExportTask;
use byob::sink::LocalSink;
use byob::source::postgres::{Connector, PgSource};
use byob::source::{Bounds, Slice, Source, TableRequest};
use byob_testkit::generate::postgres::load_lake;
use byob_testkit::generate::{self, GenerateOptions};
use futures::StreamExt;

use postgres_harness::peak_rss_mib;

struct Row {
    seconds: f64,
    rows: u64,
    out_bytes: u64,
    peak_mib: f64,
}

/// The table measured: `events`, or `web_events` with `BYOB_BENCH_SHAPE=web`.
fn table() -> &'static str {
    match std::env::var("BYOB_BENCH_SHAPE").as_deref() {
        Ok("web") => generate::web::TABLE,
        Ok("platform") | Err(_) => "events",
        Ok(other) => panic!("BYOB_BENCH_SHAPE={other}: use platform or web"),
    }
}

async fn bare_copy(connector: &Connector) -> (u64, u64, f64) {
    let client = connector.connect().await.unwrap();
    let started = Instant::now();
    let stream = client.copy_out(&format!("COPY (SELECT * FROM {}) TO STDOUT (FORMAT binary)", table())).await.unwrap();
    let mut stream = Box::pin(stream);
    let (mut bytes, mut messages) = (0u64, 0u64);
    while let Some(chunk) = stream.next().await {
        bytes += chunk.unwrap().len() as u64;
        messages += 1;
    }
    (bytes, messages.saturating_sub(2), started.elapsed().as_secs_f64())
}

async fn decode_only(source: &PgSource, request: &TableRequest) -> (u64, f64) {
    let started = Instant::now();
    let mut stream = source.open(request, &Bounds::Whole).await.unwrap().batches;
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        rows += batch.unwrap().num_rows() as u64;
    }
    (rows, started.elapsed().as_secs_f64())
}

async fn export_to(source: &PgSource, request: &TableRequest, codec: Codec, slices: u64, rows: u64) -> (u64, u64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let sink = LocalSink::new(dir.path());
    let spec = ExportSpec {
        max_file_bytes: 256 << 20,
        ..byob_testkit::spec::export_spec("2024-03-01T04:00", "bench", Format::new(FormatKind::Parquet, codec))
    };
    let started = Instant::now();
    // About `slices` slices, as the planner cuts them.
    let planned = source.plan(request, rows.div_ceil(slices.max(1))).await.unwrap();
    let count = planned.len() as u32;
    let tasks = planned.into_iter().zip(0..).map(|(bounds, index)| {
        let task = ExportTask {
            destination: "bench".into(),
            table: table().into(),
            slice: Slice { index, count },
            bounds,
            increment: None,
        };
        let (sink, spec) = (&sink, &spec);
        async move {
            export::export(&task, request, source, sink, spec, &Cancel::default(), Arc::new(|_| {})).await.unwrap()
        }
    });
    let results = futures::future::join_all(tasks).await;
    let seconds = started.elapsed().as_secs_f64();
    (results.iter().map(|r| r.rows).sum(), results.iter().map(|r| r.bytes).sum(), seconds)
}

/// Runs one measured phase in this process and prints its result line; the parent runs
/// each phase in a fresh child process, so each peak RSS is that phase's alone.
async fn child(phase: &str, url: &str, rows: u64) {
    let connector = Connector::from_url(url, None, None).unwrap();
    let request = TableRequest {
        table: table().into(),
        tenant: "acme".into(),
        tenant_column: "tenant_id".into(),
        columns: None,
        window: None,
    };
    let (rows, out_bytes, seconds) = match phase {
        "copy" => {
            let (_, rows, seconds) = bare_copy(&connector).await;
            (rows, 0, seconds)
        }
        "decode" => {
            let (rows, seconds) = decode_only(&PgSource::new(connector), &request).await;
            (rows, 0, seconds)
        }
        other => {
            let (codec, slices) = other.split_once(':').unwrap();
            let codec = if codec == "gzip" { Codec::Gzip } else { Codec::Zstd };
            let (exported, out, seconds) =
                export_to(&PgSource::new(connector), &request, codec, slices.parse().unwrap(), rows).await;
            assert_eq!(exported, rows);
            (exported, out, seconds)
        }
    };
    println!("RESULT {seconds} {rows} {out_bytes} {}", peak_rss_mib());
}

fn run_child(phase: &str, url: &str, rows: u64) -> Row {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env("BYOB_BENCH_PHASE", phase)
        .env("BYOB_BENCH_URL", url)
        .env("BYOB_BENCH_ROWS", rows.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("phase {phase} failed: {}{}", text, String::from_utf8_lossy(&out.stderr)));
    let v: Vec<&str> = line.split_whitespace().collect();
    Row {
        seconds: v[0].parse().unwrap(),
        rows: v[1].parse().unwrap(),
        out_bytes: v[2].parse().unwrap(),
        peak_mib: v[3].parse().unwrap(),
    }
}

/// malloc is tuned before the runtime starts its threads, as every byob binary does.
fn main() {
    byob::malloc::tune();
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime").block_on(run());
}

async fn run() {
    let rows: u64 = std::env::var("BYOB_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000_000);
    if let (Ok(phase), Ok(url)) = (std::env::var("BYOB_BENCH_PHASE"), std::env::var("BYOB_BENCH_URL")) {
        return child(&phase, &url, rows).await;
    }
    // An existing database (`BYOB_BENCH_DATABASE`, loaded on first use and kept) or a
    // throwaway cluster of our own.
    let (server, url) = match std::env::var("BYOB_BENCH_DATABASE") {
        Ok(url) => (None, url),
        Err(_) => {
            let server = match postgres_harness::PgServer::start() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("cannot start PostgreSQL: {e}");
                    std::process::exit(1);
                }
            };
            let admin = postgres_harness::client(&server.url("postgres")).await;
            admin.batch_execute("CREATE DATABASE bench").await.unwrap();
            let url = server.url("bench");
            (Some(server), url)
        }
    };
    let connector = Connector::from_url(&url, None, None).unwrap();
    let table = table();
    let client = postgres_harness::client(&url).await;
    let loaded: Option<i64> =
        client.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.ok().map(|row| row.get(0));
    match loaded {
        Some(count) if count as u64 == rows => eprintln!("{table} already holds {rows} rows"),
        Some(count) => panic!("{table} holds {count} rows, not {rows}: drop it or set BYOB_BENCH_ROWS={count}"),
        None => load(&connector, table, rows).await,
    }
    let table_mib: i64 =
        client.query_one(&format!("SELECT pg_table_size('{table}') / 1048576"), &[]).await.unwrap().get(0);

    // Warm the cache: every measured phase reads the table from memory.
    let (copy_bytes, _, warm) = bare_copy(&connector).await;
    eprintln!("warm-up COPY: {warm:.1}s");

    let all = [
        ("copy", "bare COPY ... TO STDOUT (FORMAT binary) -> /dev/null"),
        ("decode", "byob source only (COPY -> Arrow batches)"),
        ("gzip:1", "byob export -> Parquet gzip, 1 slice"),
        ("gzip:2", "byob export -> Parquet gzip, 2 slices in parallel"),
        ("zstd:1", "byob export -> Parquet zstd, 1 slice"),
        ("zstd:2", "byob export -> Parquet zstd, 2 slices in parallel"),
    ];
    // `BYOB_BENCH_PHASES=zstd:1,decode` measures some of them (the bare COPY always, first).
    let chosen = std::env::var("BYOB_BENCH_PHASES").unwrap_or_default();
    let phases: Vec<_> = all
        .into_iter()
        .filter(|(phase, _)| *phase == "copy" || chosen.is_empty() || chosen.split(',').any(|c| c.trim() == *phase))
        .collect();
    // `BYOB_BENCH_REPEAT=3` runs every phase 3 times, in turn (copy, then each phase, again and
    // again), so each ratio is taken against the bare COPY of its own round.
    let repeat = match std::env::var("BYOB_BENCH_REPEAT") {
        Err(_) => 1,
        Ok(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or_else(|| panic!("BYOB_BENCH_REPEAT={v}: use a count of rounds, such as 3")),
    };
    let mut rounds: Vec<Vec<Row>> = Vec::new();
    for round in 1..=repeat {
        let mut measured = Vec::new();
        for (phase, label) in &phases {
            let row = run_child(phase, &url, rows);
            eprintln!("[{round}/{repeat}] {label}: {:.2}s", row.seconds);
            measured.push(row);
        }
        rounds.push(measured);
    }

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!(
        "{table}: {rows} rows, table {table_mib} MiB in PostgreSQL, binary COPY stream {:.0} MiB; {cores} cores; \
         {repeat} round(s)",
        copy_bytes as f64 / 1048576.0
    );
    println!(
        "{:<58} {:>13} {:>10} {:>8} {:>10} {:>10} {:>11}",
        "phase", "seconds", "rows/s", "MB/s", "out MiB", "peak RSS", "x COPY"
    );
    for (at, (_, label)) in phases.iter().enumerate() {
        let runs: Vec<&Row> = rounds.iter().map(|round| &round[at]).collect();
        let seconds = median(runs.iter().map(|r| r.seconds).collect());
        let ratios: Vec<f64> = rounds.iter().map(|round| round[at].seconds / round[0].seconds).collect();
        let ratio = median(ratios.clone());
        let spread = |values: Vec<f64>, digits: usize| {
            let (low, high) = values.iter().fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
            if repeat == 1 { format!("{low:.digits$}") } else { format!("{low:.digits$}-{high:.digits$}") }
        };
        println!(
            "{:<58} {:>13} {:>10.0} {:>8.1} {:>10.1} {:>8.0}Mi {:>11}",
            label,
            spread(runs.iter().map(|r| r.seconds).collect(), 2),
            runs[0].rows as f64 / seconds,
            copy_bytes as f64 / 1e6 / seconds,
            runs[0].out_bytes as f64 / 1048576.0,
            runs.iter().map(|r| r.peak_mib).fold(0.0, f64::max),
            if repeat == 1 { format!("{ratio:.2}") } else { format!("{ratio:.2} ({})", spread(ratios, 2)) }
        );
    }
    println!(
        "rows/s and MB/s at the median seconds (MB/s = megabytes of the binary COPY stream per \
         second); peak RSS: the highest of the rounds;"
    );
    println!("x COPY = seconds / the same round's bare COPY seconds: the median, and the range over rounds.");
    drop(server);
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

/// Generates the synthetic table, all of one tenant (so the tenant filter keeps every row),
/// and loads it into the database `connector` reaches.
async fn load(connector: &Connector, table: &str, rows: u64) {
    let work = tempfile::tempdir().unwrap();
    let lake = work.path().join("lake");
    let started = Instant::now();
    let options = GenerateOptions {
        out: lake.clone(),
        scale: rows as f64 / 1_000_000.0,
        tenants: vec!["acme".into()],
        ..GenerateOptions::default()
    };
    if table == generate::web::TABLE {
        generate::web::generate(&lake, rows, options.seed, &options.tenants).unwrap();
    } else {
        generate::generate(&options, &|_, _| {}).unwrap();
    }
    eprintln!("generated the lake in {:.1}s", started.elapsed().as_secs_f64());
    let started = Instant::now();
    let loaded = load_lake(connector, "public", &lake, &[table]).await.unwrap();
    eprintln!("loaded {} rows of {table} in {:.1}s", loaded[0].rows, started.elapsed().as_secs_f64());
}
