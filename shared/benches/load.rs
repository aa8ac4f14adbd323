//! Benchmark (not a test): the loader on a 5-million-row `events` dump, against `psql \copy`
//! of the same rows as CSV, on the same PostgreSQL server in the same run.
//!
//! 1. Generates the synthetic platform's events for one tenant (`BYOB_BENCH_ROWS`, default
//!    5,000,000), and dumps them with byob twice into local folders: Parquet zstd (what the
//!    loader reads) and plain CSV (what `psql \copy` reads).
//! 2. Each measured phase runs in a child process of its own (so each peak RSS is that
//!    phase's alone), against a fresh database on a throwaway cluster:
//!    - `psql \copy events FROM '<file>' (FORMAT csv, HEADER)` for every CSV file, into a table
//!      created beforehand (psql's own process: its peak RSS is psql's);
//!    - `byob load` into PostgreSQL: verify every file's sha256, decode Parquet, binary COPY
//!      into an UNLOGGED staging table, then the swap transaction (INSERT INTO the live table
//!      from staging, the load history, commit);
//!    - `byob load` into DuckDB (a file in the temporary folder), with `--features duckdb`.
//!
//! Run it with `scripts/bench-load` (release profile).

#![allow(clippy::unwrap_used)]

use byob_testkit::postgres as postgres_harness;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use byob::config::Config;
use byob::layout::RunId;
#[cfg(feature = "duckdb")]
use byob::load::DuckDbTarget;
use byob::load::{LoadOutcome, Loader, PostgresTarget, ReceiptLocation, Target};
use byob::plan::PlanFilter;
use byob::run::{RunOptions, Silent};

use postgres_harness::peak_rss_mib;

/// `/usr/bin/time`, when installed: psql's peak RSS is read from its `-f %M`.
fn time_binary() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/bin/time");
    p.exists().then_some(p)
}

const CONFIG: &str = r#"
[source]
type = "parquet"
path = "lake"
tenant_column = "tenant_id"

[[tables]]
name = "events"

[[destinations]]
id = "parquet"
tenant = "acme"
folder = "out"
prefix = "parquet"
format = { type = "parquet", codec = "zstd" }

[[destinations]]
id = "csv"
tenant = "acme"
folder = "out"
prefix = "csv"
format = { type = "csv", codec = "none" }
"#;

struct Row {
    phase: &'static str,
    seconds: f64,
    rows: u64,
    peak_mib: f64,
}

async fn child(phase: &str, work: &Path, url: &str) {
    let receipt = ReceiptLocation::Path(work.join("out/parquet/receipt.json"));
    let target: Box<dyn Target> = match phase {
        "byob-pg" => Box::new(PostgresTarget::from_url(url).unwrap()),
        #[cfg(feature = "duckdb")]
        "byob-duckdb" => Box::new(DuckDbTarget::new(work.join("bench.duckdb"))),
        other => panic!("unknown phase {other}"),
    };
    let started = Instant::now();
    let outcome = Loader::local().load(&receipt, target.as_ref()).await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let LoadOutcome::Loaded(report) = outcome else { panic!("not loaded: {outcome:?}") };
    println!("RESULT {seconds} {} {}", report.rows, peak_rss_mib());
}

fn run_child(phase: &'static str, work: &Path, url: &str) -> Row {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env("BYOB_BENCH_PHASE", phase)
        .env("BYOB_BENCH_WORK", work)
        .env("BYOB_BENCH_URL", url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("phase {phase} failed: {}{}", text, String::from_utf8_lossy(&out.stderr)));
    let v: Vec<&str> = line.split_whitespace().collect();
    Row { phase, seconds: v[0].parse().unwrap(), rows: v[1].parse().unwrap(), peak_mib: v[2].parse().unwrap() }
}

/// `psql \copy` of every CSV file of the dump, in one psql process.
fn psql_copy(server: &postgres_harness::PgServer, db: &str, files: &[PathBuf], rows: u64) -> Row {
    let bindir = std::env::var("BYOB_PG_BINDIR").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from("/usr/bin"));
    let psql = [bindir.join("psql"), PathBuf::from("/usr/bin/psql")].into_iter().find(|p| p.exists()).unwrap();
    let script: String = files
        .iter()
        .map(|f| format!("\\copy events FROM '{}' WITH (FORMAT csv, HEADER true)\n", f.display()))
        .collect();
    let mut command = match time_binary() {
        Some(time) => {
            let mut c = std::process::Command::new(time);
            c.arg("-f").arg("PEAK_KB %M").arg(&psql);
            c
        }
        None => std::process::Command::new(&psql),
    };
    command.arg("--no-psqlrc").arg("-v").arg("ON_ERROR_STOP=1").arg("-q").arg(server.url(db));
    command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "psql failed: {stderr}");
    let peak_mib = stderr
        .lines()
        .find_map(|l| l.strip_prefix("PEAK_KB "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0);
    Row { phase: "psql \\copy (CSV, one table, no swap)", seconds, rows, peak_mib }
}

fn files_with_extension(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_with_extension(&path, ext, out);
        } else if path.to_string_lossy().ends_with(ext) {
            out.push(path);
        }
    }
}

/// malloc is tuned before the runtime starts its threads, as every byob binary does.
fn main() {
    byob::malloc::tune();
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime").block_on(run());
}

async fn run() {
    if let (Ok(phase), Ok(work), Ok(url)) =
        (std::env::var("BYOB_BENCH_PHASE"), std::env::var("BYOB_BENCH_WORK"), std::env::var("BYOB_BENCH_URL"))
    {
        return child(&phase, Path::new(&work), &url).await;
    }
    let rows: u64 = std::env::var("BYOB_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000_000);
    let server = match postgres_harness::PgServer::start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot start PostgreSQL: {e}");
            std::process::exit(1);
        }
    };
    let work = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let options = byob_testkit::generate::GenerateOptions {
        out: work.path().join("lake"),
        scale: rows as f64 / 1_000_000.0,
        tenants: vec!["acme".into()],
        ..byob_testkit::generate::GenerateOptions::default()
    };
    byob_testkit::generate::generate(&options, &|_, _| {}).unwrap();
    eprintln!("generated the lake in {:.1}s", started.elapsed().as_secs_f64());

    let started = Instant::now();
    let config = Config::from_toml_str(CONFIG, work.path()).unwrap();
    let run: RunId = "2024-03-01T04:00".parse().unwrap();
    let report =
        byob::run::run(&config, &RunOptions { run, filter: PlanFilter::default() }, Arc::new(Silent)).await.unwrap();
    assert!(report.failed().next().is_none(), "the dump failed");
    eprintln!("dumped Parquet zstd and CSV in {:.1}s", started.elapsed().as_secs_f64());
    let mut parquet = Vec::new();
    files_with_extension(&work.path().join("out/parquet"), ".parquet.zst", &mut parquet);
    files_with_extension(&work.path().join("out/parquet"), ".parquet", &mut parquet);
    let mut csv = Vec::new();
    files_with_extension(&work.path().join("out/csv"), ".csv", &mut csv);
    csv.sort();
    let size =
        |files: &[PathBuf]| files.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum::<u64>() as f64 / 1048576.0;
    let (parquet_mib, csv_mib) = (size(&parquet), size(&csv));

    let admin = postgres_harness::client(&server.url("postgres")).await;
    // One statement each: CREATE DATABASE cannot run inside a (multi-statement) transaction.
    admin.batch_execute("CREATE DATABASE byob_load").await.unwrap();
    admin.batch_execute("CREATE DATABASE psql_copy").await.unwrap();

    // byob first: its table definition is the one psql copies into.
    let byob_pg = run_child("byob-pg", work.path(), &server.url("byob_load"));
    eprintln!("byob load -> PostgreSQL: {:.2}s", byob_pg.seconds);
    let ddl: String = postgres_harness::client(&server.url("byob_load"))
        .await
        .query(
            "SELECT format('%I %s', attname, format_type(atttypid, atttypmod)) FROM pg_attribute \
             WHERE attrelid = 'public.events'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join(", ");
    postgres_harness::client(&server.url("psql_copy"))
        .await
        .batch_execute(&format!("CREATE TABLE events ({ddl})"))
        .await
        .unwrap();
    let copy = psql_copy(&server, "psql_copy", &csv, byob_pg.rows);
    eprintln!("psql \\copy: {:.2}s", copy.seconds);
    let copied: i64 = postgres_harness::client(&server.url("psql_copy"))
        .await
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(copied as u64, byob_pg.rows, "psql copied a different number of rows");
    let mut table = vec![copy, byob_pg];
    table[1].phase = "byob load -> PostgreSQL (verify, stage, swap, history)";
    #[cfg(feature = "duckdb")]
    {
        let mut duck = run_child("byob-duckdb", work.path(), &server.url("byob_load"));
        eprintln!("byob load -> DuckDB: {:.2}s", duck.seconds);
        duck.phase = "byob load -> DuckDB (verify, stage, swap, history)";
        table.push(duck);
    }

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!(
        "events: {} rows; dump: {} Parquet zstd files ({parquet_mib:.0} MiB), {} CSV files ({csv_mib:.0} MiB); {cores} cores",
        table[1].rows,
        parquet.len(),
        csv.len()
    );
    println!("{:<62} {:>8} {:>12} {:>10} {:>8}", "phase", "seconds", "rows/s", "peak RSS", "x psql");
    let base = table[0].seconds;
    for r in &table {
        println!(
            "{:<62} {:>8.2} {:>12.0} {:>8.0}Mi {:>8.2}",
            r.phase,
            r.seconds,
            r.rows as f64 / r.seconds,
            r.peak_mib,
            r.seconds / base
        );
    }
    println!("x psql = seconds / psql \\copy seconds (lower is better).");
}
