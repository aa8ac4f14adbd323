//! `byob`: run a whole dump on this machine, generate demo data, validate a config.

mod check;
mod demo;
mod export;
mod iam;
mod load;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use byob::config::Config;
use byob::layout::RunId;
use byob::plan::PlanFilter;
use byob::run::{RunOptions, RunReport};
use clap::{Parser, Subcommand};

/// byob ("bring your own bucket"): scheduled, complete dumps of data-platform tables into
/// each customer's own bucket, and the loader that loads them into a warehouse.
#[derive(Parser, Debug)]
#[command(name = "byob", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate a synthetic data platform, dump it to two local destinations, and show the result.
    Demo {
        /// Folder for the lake, the config and the destinations.
        #[arg(long, default_value = "byob-demo")]
        dir: PathBuf,
        /// Size of the synthetic platform: 1.0 = 1 million event rows.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Also load each destination into this PostgreSQL database (one schema per
        /// destination), e.g. postgresql://user:password@127.0.0.1:5432/warehouse. The demo
        /// always loads them into <dir>/warehouse.duckdb.
        // No environment variable: BYOB_LOAD_URL is `byob load`'s target, and setting it for
        // the loader must not make every demo write into that database too.
        #[arg(long)]
        load_postgres: Option<String>,
    },
    /// Write the synthetic data platform (six multi-tenant tables) as a Parquet lake, and
    /// optionally load it into PostgreSQL.
    Generate {
        /// Output folder; one sub-folder per table. Optional with --postgres (a temporary
        /// folder is used, then removed).
        #[arg(long, required_unless_present = "postgres")]
        out: Option<PathBuf>,
        /// 1.0 = 1 million event rows; 10 = 10 million.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// What to generate: `platform` (the six tables of the demo) or `web` (one
        /// string-heavy table, web_events: unique ids, URLs and JSON documents; for benchmarks).
        #[arg(long, value_parser = ["platform", "web"], default_value = "platform")]
        shape: String,
        /// Seed: the same seed and scale give byte-identical files.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Also load the six tables into this PostgreSQL database, replacing tables of the
        /// same names, e.g. postgresql://user:password@127.0.0.1:5432/platform.
        #[arg(long, env = "BYOB_POSTGRES_URL", hide_env_values = true)]
        postgres: Option<String>,
        /// The schema the tables are loaded into (created if missing).
        #[arg(long, default_value = "public", requires = "postgres")]
        schema: String,
    },
    /// Run a whole dump: plan, export every table of every destination, write the receipts.
    Run {
        /// The config file (.toml or .json).
        #[arg(long, short)]
        config: PathBuf,
        /// Run id, `YYYY-MM-DDTHH:MM` (UTC); defaults to the current minute. Re-running a run id
        /// rewrites exactly the same keys.
        #[arg(long)]
        run: Option<String>,
        /// Only these destinations (repeatable).
        #[arg(long = "destination")]
        destinations: Vec<String>,
        /// Only these tables (repeatable).
        #[arg(long = "table")]
        tables: Vec<String>,
        /// Only the destinations whose `schedule` is due at the run's minute, as a scheduled run
        /// plans them (default: every destination).
        #[arg(long)]
        due: bool,
    },
    /// Preflight one S3 destination step by step: assume each hop of its role chain, prove the
    /// customer's role refuses an AssumeRole without the ExternalId, write a probe object under
    /// the prefix (`<prefix>/.byob-probe/<UTC time>`), verify the bucket owner. Each step
    /// prints PASS or FAIL with the fix; exit 0 only when all pass.
    Check {
        /// The config file (.toml or .json).
        #[arg(long, short)]
        config: PathBuf,
        /// The destination id.
        #[arg(long)]
        destination: String,
    },
    /// Print the IAM policies a destination needs, as JSON: the customer role's trust and
    /// permission policies, our writer role's and our execution roles' policies.
    IamPolicy {
        /// The config file (.toml or .json).
        #[arg(long, short)]
        config: PathBuf,
        /// The destination id.
        #[arg(long)]
        destination: String,
        /// Print only this policy document.
        #[arg(long, value_enum)]
        only: Option<iam::Only>,
    },
    /// Load a dump's receipt.json into PostgreSQL or DuckDB, exactly as the deployed loader does:
    /// verify every file (size, sha256, keys inside the run), then stage and swap every table
    /// in one transaction. The same receipt twice loads once; an older run is skipped.
    Load {
        /// The receipt: s3://bucket/<prefix>/receipt.json (or .../<run>/receipt.run.json), or a path.
        #[arg(long)]
        receipt: String,
        /// The target: a PostgreSQL URL (postgresql://user:password@host:5432/warehouse) or a
        /// DuckDB database file (warehouse.duckdb, or duckdb:<path>; created if missing).
        #[arg(long, env = "BYOB_LOAD_URL", hide_env_values = true, required_unless_present = "secret")]
        target: Option<String>,
        /// Or: an AWS Secrets Manager secret (name or ARN) in the RDS format.
        #[arg(long)]
        secret: Option<String>,
        /// The schema the tables are loaded into (created if missing) [default: byob for
        /// PostgreSQL, so no table of public is ever touched; main for DuckDB].
        #[arg(long)]
        schema: Option<String>,
        /// Load only these tables (comma separated): a receipt's other tables are never read,
        /// created or touched.
        #[arg(long, value_delimiter = ',')]
        tables: Vec<String>,
        /// PostgreSQL TLS: disable, prefer or require [default: the URL's or the secret's
        /// sslmode, else require; the certificate chain and host name are always verified when
        /// TLS is used].
        #[arg(long, env = "BYOB_LOAD_TLS", value_parser = ["disable", "prefer", "require", "verify-ca", "verify-full"])]
        tls: Option<String>,
        /// Extra trusted roots for PostgreSQL TLS (PEM), e.g. Amazon RDS's global bundle.
        #[arg(long, env = "BYOB_LOAD_CA_FILE")]
        ca_file: Option<std::path::PathBuf>,
        /// The OpenPGP secret key (armored or binary) that opens an encrypted dump's files; its
        /// passphrase, if any, in BYOB_LOAD_PGP_PASSPHRASE. Or BYOB_LOAD_PGP_SECRET: a Secrets
        /// Manager secret holding the key.
        #[arg(long, env = "BYOB_LOAD_PGP_KEY_FILE")]
        pgp_key_file: Option<std::path::PathBuf>,
    },
    /// Export one Parquet file or folder of any origin (every row, no tenant filter) as a dump
    /// into a local folder: the same planner, encoders, receipt and file layout as `byob run`.
    Export(export::ExportArgs),
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Check a config file and name every problem in it.
    Validate {
        /// The config file (.toml or .json).
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    byob::malloc::tune();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("BYOB_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", render_error(&e));
            ExitCode::from(2)
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Demo { dir, scale, load_postgres } => demo::demo(&dir, scale, load_postgres.as_deref()).await,
        Command::Load { receipt, target, secret, schema, tables, tls, ca_file, pgp_key_file } => {
            let tls = byob::load::TargetTls { mode: tls.as_deref().and_then(byob::load::parse_tls_mode), ca_file };
            let (secret, schema) = (secret.as_deref(), schema.as_deref());
            load::load(&receipt, target.as_deref(), secret, schema, tables, &tls, pgp_key_file.as_deref()).await
        }
        Command::Generate { out, scale, shape, seed, postgres, schema } => {
            demo::generate_into(out.as_deref(), scale, &shape, seed, postgres.as_deref(), &schema).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { config, run, destinations, tables, due } => {
            let config = load_config(&config)?;
            let run = match run {
                Some(r) => r.parse::<RunId>().with_context(|| format!("--run {r:?}"))?,
                None => RunId::now(),
            };
            let report = run_dump(&config, run, PlanFilter { destinations, tables, due_only: due }).await?;
            Ok(exit_code(&report))
        }
        Command::Export(args) => export::export(args).await,
        Command::Check { config, destination } => check::check(&load_config(&config)?, &destination).await,
        Command::IamPolicy { config, destination, only } => iam::print(&load_config(&config)?, &destination, only),
        Command::Config { command: ConfigCommand::Validate { file } } => {
            let config = load_config(&file)?;
            println!("{}: valid", file.display());
            print_destinations(&config);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Each destination's delivery options, and the deployed schedule its schedules need.
fn print_destinations(config: &Config) {
    let rows: Vec<[String; 5]> = config
        .destinations
        .iter()
        .map(|d| {
            let f = &d.format;
            let mut format = f.extension().to_owned();
            let csv: Vec<String> = [
                f.delimiter.map(|_| format!("delimiter {:?}", char::from(f.delimiter().byte()))),
                f.header.map(|h| format!("header {h}")),
                f.quote.map(|c| format!("quote {c:?}")),
                f.escape.map(|c| format!("escape {c:?}")),
                f.null.as_ref().map(|n| format!("null {n:?}")),
                f.line_ending.map(|l| format!("line ending {l:?}").to_lowercase()),
            ]
            .into_iter()
            .flatten()
            .collect();
            if !csv.is_empty() {
                format = format!("{format} ({})", csv.join(", "));
            }
            let location = match (&d.bucket, &d.folder) {
                (Some(b), _) => format!("s3://{b}/{}", d.prefix),
                (_, Some(folder)) => folder.display().to_string(),
                _ => String::new(),
            };
            let mut extras: Vec<String> = Vec::new();
            if let Some(p) = &d.partition_by {
                extras.push(format!("partitioned by {} ({:?})", p.column, p.grain).to_lowercase());
            }
            if d.manifest {
                extras.push("AEP manifest".into());
            }
            if let Some(every) = d.full_every {
                extras.push(format!("incremental tables full every {every}"));
            }
            if let Some(key) = &d.pgp_public_key {
                // Parsed by validation; whether it is usable now is shown, not required.
                let status = byob::format::pgp::RecipientKey::parse(key.as_bytes()).map(|k| {
                    match k.check(std::time::SystemTime::now()) {
                        Ok(_) => format!("encrypted to {}", k.fingerprint()),
                        Err(e) => format!("encrypted to {} (UNUSABLE NOW, exports will fail: {e})", k.fingerprint()),
                    }
                });
                extras.push(status.unwrap_or_else(|e| e.to_string()));
            }
            if !extras.is_empty() {
                format = format!("{format}; {}", extras.join("; "));
            }
            let schedule = d.schedule.as_ref().map_or("every run", |s| s.as_str()).to_owned();
            [d.id.clone(), d.tenant.clone(), format, schedule, location]
        })
        .collect();
    let header = ["destination", "tenant", "format", "schedule", "writes to"].map(str::to_owned);
    let widths: Vec<usize> =
        (0..5).map(|i| rows.iter().chain([&header]).map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for row in [&header].into_iter().chain(&rows) {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("  {}", cells.join("  ").trim_end());
    }
    for t in config.tables.iter().filter(|t| t.mode == byob::increment::TableMode::Incremental) {
        let mut how = vec![format!("watermark {}", t.watermark.as_deref().unwrap_or_default())];
        match &t.primary_key {
            Some(keys) => how.push(format!("merged by {}", keys.join(", "))),
            None => how.push("rows only added".into()),
        }
        if let Some(lookback) = &t.lookback {
            how.push(format!("lookback {lookback}"));
        }
        println!("table {}: incremental ({})", t.name, how.join(", "));
    }
    match byob::config::firing_expression(config.destinations.iter().filter_map(|d| d.schedule.as_ref())) {
        Some(expression) => println!("deployed schedule (template parameter DumpSchedule): {expression}"),
        None => println!("no destination has a schedule: each run of DumpSchedule dumps every destination"),
    }
}

/// Loads and validates a config, printing every problem.
pub(crate) fn load_config(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|e| anyhow::anyhow!("{} is not a valid byob config:\n{e}", path.display()))
}

/// Runs a dump with progress output and prints the summary table.
pub(crate) async fn run_dump(config: &Config, run: RunId, filter: PlanFilter) -> anyhow::Result<RunReport> {
    let observer = Arc::new(progress::Progress::new());
    let report = byob::run::run(config, &RunOptions { run, filter }, observer.clone()).await?;
    observer.clear();
    progress::print_summary(&report);
    Ok(report)
}

fn exit_code(report: &RunReport) -> ExitCode {
    if report.failed().next().is_some() { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// The error and its causes on one line, skipping a cause whose text the message already
/// carries (library errors name their cause in their message and also chain it).
fn render_error(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::render_error;

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let io = std::io::Error::other("connection reset");
        let e = anyhow::Error::new(io).context("reading table \"events\": connection reset").context("run failed");
        assert_eq!(render_error(&e), "run failed: reading table \"events\": connection reset");
    }
}
