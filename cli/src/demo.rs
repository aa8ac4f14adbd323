//! `byob demo` and `byob generate`: the embedded default, no servers and no AWS (and, on
//! request, the same synthetic tables loaded into PostgreSQL).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use byob::layout::RunId;
use byob::plan::PlanFilter;
use byob_testkit::generate::{self, GenerateOptions};

/// The demo's config: two destinations standing in for two customers' buckets.
const DEMO_CONFIG: &str = r#"# Written by `byob demo`. Relative paths are relative to this file.
# Every field is documented in README.md ("Configuration reference").

[source]
type = "parquet"             # the synthetic lake `byob generate` wrote
path = "lake"
tenant_column = "tenant_id"  # each destination receives only its tenant's rows

[[tables]]
name = "companies"
[[tables]]
name = "contacts"
[[tables]]
name = "events"
[[tables]]
name = "revenue"
[[tables]]
name = "revenue_attribution"
[[tables]]
name = "paid_ads"

# Customer 1: Dreamdata's layout, Parquet with gzip column chunks (.parquet.gz).
[[destinations]]
id = "acme"
tenant = "acme"
folder = "buckets/acme-data"          # stands in for s3://acme-data
prefix = "byob"
format = { type = "parquet", codec = "gzip" }

# Customer 2: gzip CSV with semicolons, smaller files.
[[destinations]]
id = "globex"
tenant = "globex"
folder = "buckets/globex-data"
prefix = "exports/byob"
format = { type = "csv", codec = "gzip", delimiter = ";" }
max_file_rows = 250000

[state]
path = "state"
"#;

/// `byob generate --shape web`: the string-heavy `web_events` table, 1,000,000 x `scale` rows.
fn generate_web(out: &Path, scale: f64, seed: u64) -> anyhow::Result<()> {
    anyhow::ensure!(scale > 0.0 && scale.is_finite(), "--scale must be a positive number, got {scale}");
    let started = Instant::now();
    let rows = (scale * 1_000_000.0).round().max(1.0) as u64;
    eprintln!("generating {rows} rows of {} into {}", generate::web::TABLE, out.display());
    let tenants = GenerateOptions::default().tenants;
    let report = generate::web::generate(out, rows, seed, &tenants)
        .with_context(|| format!("generating into {}", out.display()))?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "  {:<22} {:>12} rows {:>4} files {:>11} in {secs:.1}s",
        report.table,
        report.rows,
        report.files,
        crate::progress::human_bytes(report.bytes)
    );
    Ok(())
}

pub(crate) fn generate(out: &Path, scale: f64, seed: u64) -> anyhow::Result<()> {
    anyhow::ensure!(scale > 0.0 && scale.is_finite(), "--scale must be a positive number, got {scale}");
    let started = Instant::now();
    eprintln!("generating the synthetic data platform (scale {scale}) into {}", out.display());
    let options = GenerateOptions { out: out.to_path_buf(), scale, seed, ..GenerateOptions::default() };
    let reports =
        generate::generate(&options, &|_, _| {}).with_context(|| format!("generating into {}", out.display()))?;
    let mut rows = 0;
    for r in &reports {
        eprintln!(
            "  {:<22} {:>12} rows {:>4} files {:>11}",
            r.table,
            r.rows,
            r.files,
            crate::progress::human_bytes(r.bytes)
        );
        rows += r.rows;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!("  {rows} rows in {secs:.1}s ({:.0} rows/s)", rows as f64 / secs.max(1e-9));
    Ok(())
}

/// `byob generate`: the lake into `out` (or a temporary folder), then, with `postgres`, its
/// tables loaded into that database.
pub(crate) async fn generate_into(
    out: Option<&Path>,
    scale: f64,
    shape: &str,
    seed: u64,
    postgres: Option<&str>,
    schema: &str,
) -> anyhow::Result<()> {
    let connector = postgres
        .map(|url| byob::source::postgres::Connector::from_url(url, None, None))
        .transpose()
        .context("--postgres")?;
    let temporary = match out {
        Some(_) => None,
        None => Some(TemporaryLake::new()?),
    };
    let lake = out.or(temporary.as_ref().map(|t| t.0.as_path())).context("--out is required without --postgres")?;
    let tables: Vec<&str> = if shape == "web" {
        generate_web(lake, scale, seed)?;
        vec![generate::web::TABLE]
    } else {
        generate(lake, scale, seed)?;
        generate::TABLES.to_vec()
    };
    if let Some(connector) = connector {
        let started = Instant::now();
        eprintln!("loading the tables into {} (schema {schema})", connector.name());
        let reports = generate::postgres::load_lake(&connector, schema, lake, &tables)
            .await
            .with_context(|| format!("loading into {}", connector.name()))?;
        let mut rows = 0;
        for r in &reports {
            eprintln!("  {:<22} {:>12} rows", r.table, r.rows);
            rows += r.rows;
        }
        let secs = started.elapsed().as_secs_f64();
        eprintln!("  {rows} rows loaded in {secs:.1}s ({:.0} rows/s)", rows as f64 / secs.max(1e-9));
    }
    Ok(())
}

/// A lake folder under the system's temporary folder, removed when dropped.
struct TemporaryLake(std::path::PathBuf);

impl TemporaryLake {
    fn new() -> anyhow::Result<TemporaryLake> {
        let path = std::env::temp_dir().join(format!("byob-generate-{}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TemporaryLake(path))
    }
}

impl Drop for TemporaryLake {
    fn drop(&mut self) {
        // Best effort: a leftover temporary folder is harmless.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) async fn demo(dir: &Path, scale: f64, load_postgres: Option<&str>) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let lake = dir.join("lake");
    generate(&lake, scale, 42)?;
    let config_path = dir.join("byob.toml");
    std::fs::write(&config_path, DEMO_CONFIG).with_context(|| format!("writing {}", config_path.display()))?;
    let config = crate::load_config(&config_path)?;

    let run = RunId::now();
    let report = crate::run_dump(&config, run, PlanFilter::default()).await?;

    println!();
    for d in &report.destinations {
        let Some(dest) = config.destinations.iter().find(|c| c.id == d.destination) else { continue };
        let Some(folder) = &dest.folder else { continue };
        let root = folder.join(&dest.prefix);
        match &d.outcome {
            Ok(receipt) => {
                let first = receipt.tables.values().next().and_then(|t| t.files.first());
                println!("{}: {} rows in {}", d.destination, receipt.row_count(), root.display());
                println!("    receipt:    {}", root.join("receipt.json").display());
                if let Some(f) = first {
                    println!("    e.g.        {}", root.join(&f.key).display());
                }
            }
            Err(e) => println!("{}: FAILED: {e}", d.destination),
        }
    }
    let roots: Vec<(String, std::path::PathBuf)> = report
        .destinations
        .iter()
        .filter(|d| d.outcome.is_ok())
        .filter_map(|d| config.destinations.iter().find(|c| c.id == d.destination))
        .filter_map(|c| c.folder.as_ref().map(|f| (c.id.clone(), f.join(&c.prefix))))
        .collect();
    if !roots.is_empty() {
        println!();
        crate::load::demo_load(&dir.join("warehouse.duckdb"), load_postgres, &roots).await?;
    }
    println!();
    println!("config: {}  (run it again: byob run --config {})", config_path.display(), config_path.display());
    println!("demo finished in {:.1}s", started.elapsed().as_secs_f64());
    Ok(if report.failed().next().is_some() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
