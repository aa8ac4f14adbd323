//! `byob export`: one Parquet file or folder of any origin, exported as a dump into a local
//! folder with no tenant filter, through the same planner, encoders, sink and receipt as
//! `byob run` (what `scripts/bench` measures against other tools, and a way to try byob's
//! formats on one's own data).
//!
//! Only the source differs from a dump: the lake source reads every row of the input
//! ([`LakeSource::every_row`]) instead of one tenant's. Slicing follows the same rule (row
//! groups, about `target_rows_per_slice` rows per slice, `--parallelism` slices at once,
//! default 1).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use byob::config::Config;
use byob::layout::RunId;
use byob::plan::{self, PlanFilter, TaskResult};
use byob::receipt::Receipt;
use byob::run::{DestinationParts, DestinationReport, Observer, RunReport, export_destination};
use byob::sink::LocalSink;
use byob::source::Source;
use byob::source::lake::LakeSource;
use byob::state::StateStore;
use tokio::sync::Semaphore;

/// The destination id of the one destination an export has.
const DESTINATION: &str = "export";

/// What `byob export` was asked to do.
#[derive(clap::Args, Debug)]
pub(crate) struct ExportArgs {
    /// A Parquet file, or a folder of `*.parquet` files with one schema.
    #[arg(long)]
    input: PathBuf,
    /// The folder the dump is written to (a local stand-in for a bucket).
    #[arg(long)]
    out: PathBuf,
    /// The table's name in keys and the receipt; default: the input's name (sanitized).
    #[arg(long)]
    table: Option<String>,
    /// File format.
    #[arg(long, value_parser = ["parquet", "csv", "jsonl"], default_value = "parquet")]
    format: String,
    /// Codec: gzip, zstd, snappy or none (CSV and JSON lines: gzip or none).
    #[arg(long, value_parser = ["gzip", "zstd", "snappy", "none"], default_value = "gzip")]
    codec: String,
    /// CSV separator: `,`, `;` or `tab`.
    #[arg(long)]
    delimiter: Option<String>,
    /// Folder inside `--out`.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Run id, `YYYY-MM-DDTHH:MM` (UTC); defaults to the current minute.
    #[arg(long)]
    run: Option<String>,
    /// A file is closed at this many rows (default as in the config: 1000000).
    #[arg(long)]
    max_file_rows: Option<u64>,
    /// A file is closed at about this size, e.g. `256MiB` (the config's default).
    #[arg(long)]
    max_file_bytes: Option<String>,
    /// Parquet row group size in bytes, e.g. `32MiB` (the config's default).
    #[arg(long)]
    row_group_bytes: Option<String>,
    /// gzip level 0-9 (default 6).
    #[arg(long)]
    gzip_level: Option<u32>,
    /// Slices of about this many rows export in parallel (default 5000000).
    #[arg(long)]
    target_rows_per_slice: Option<u64>,
    /// Slices exported at once (default 1: one slice's encoders already use every core, and
    /// each slice at once adds its own pipeline, about 200 MiB for a big table).
    #[arg(long)]
    parallelism: Option<usize>,
}

/// `byob export`: plan, export every slice, write the receipt; exit 0 when the receipt is
/// written, 1 when an export failed.
pub(crate) async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let config = config_for(&args)?;
    let run = match &args.run {
        Some(r) => r.parse::<RunId>().with_context(|| format!("--run {r:?}"))?,
        None => RunId::now(),
    };
    let table = config.tables.first().context("the config has no table")?;
    let source = LakeSource::new("").with_table_path(&table.name, args.input.clone()).every_row();
    let plan = plan::plan(&config, &source, Some(&NoState), run, &PlanFilter::default()).await?;
    let destination_plan = plan.destinations.first().context("the plan has no destination")?;
    let destination = config.destinations.first().context("the config has no destination")?;
    let spec = byob::wiring::export_spec(&config, destination, run)?;
    let sink = LocalSink::new(args.out.clone());

    let progress = Arc::new(crate::progress::Progress::new());
    progress.planned(&plan);
    let observer: Arc<dyn Observer> = progress.clone();
    let permits = Semaphore::new(config.export.parallelism.max(1));
    let parts = DestinationParts { config: &config, destination, source: &source, sink: &sink, spec: &spec };
    let (tasks, outcome) = export_destination(&parts, destination_plan, &NoState, &permits, &observer).await;
    let failed = outcome.is_err();
    let report = DestinationReport {
        destination: DESTINATION.to_string(),
        tasks,
        outcome,
        seconds: started.elapsed().as_secs_f64(),
    };
    progress.destination_finished(&report);
    progress.clear();
    let report = RunReport {
        run,
        destinations: vec![report],
        seconds: started.elapsed().as_secs_f64(),
        source_bytes_read: source.bytes_read(),
    };
    crate::progress::print_summary(&report);
    if !failed {
        let root = if spec.prefix.is_empty() { args.out.clone() } else { args.out.join(&spec.prefix) };
        println!("receipt: {}", root.join("receipt.json").display());
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The config of an export: the input as the only table, `--out` as the only destination.
/// Built as a config document so every rule and default of a real config applies.
fn config_for(args: &ExportArgs) -> anyhow::Result<Config> {
    let input = std::path::absolute(&args.input).with_context(|| format!("--input {}", args.input.display()))?;
    let out = std::path::absolute(&args.out).with_context(|| format!("--out {}", args.out.display()))?;
    let table = match &args.table {
        Some(t) => t.clone(),
        None => table_name(&input),
    };
    let mut format = serde_json::json!({ "type": args.format, "codec": args.codec });
    if let Some(d) = &args.delimiter {
        format["delimiter"] = d.clone().into();
    }
    let mut destination = serde_json::json!({
        "id": DESTINATION,
        "tenant": "all",
        "folder": out,
        "prefix": args.prefix,
        "format": format,
    });
    if let Some(n) = args.max_file_rows {
        destination["max_file_rows"] = n.into();
    }
    if let Some(s) = &args.max_file_bytes {
        destination["max_file_bytes"] = size_value(s);
    }
    let mut export = serde_json::json!({});
    if let Some(s) = &args.row_group_bytes {
        export["row_group_bytes"] = size_value(s);
    }
    if let Some(n) = args.gzip_level {
        export["gzip_level"] = n.into();
    }
    if let Some(n) = args.target_rows_per_slice {
        export["target_rows_per_slice"] = n.into();
    }
    export["parallelism"] = args.parallelism.unwrap_or(1).into();
    let document = serde_json::json!({
        "source": { "type": "parquet", "path": input.parent().unwrap_or(&input) },
        "tables": [{ "name": table, "path": input }],
        "destinations": [destination],
        "export": export,
    });
    let base = std::env::current_dir().context("the current folder")?;
    Config::from_value(document, &base).map_err(|e| anyhow::anyhow!("invalid byob export options:\n{e}"))
}

/// A size as the config takes it: a plain number of bytes stays a number.
fn size_value(s: &str) -> serde_json::Value {
    s.parse::<u64>().map_or_else(|_| s.into(), Into::into)
}

/// A table name from the input's file or folder name: `[A-Za-z_][A-Za-z0-9_]*`, at most 128.
fn table_name(input: &Path) -> String {
    let stem = input.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let mut name: String =
        stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).take(128).collect();
    if name.is_empty() {
        return "data".into();
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
        name.truncate(128);
    }
    name
}

/// No state: an export has no previous run, and records none.
#[derive(Debug)]
struct NoState;

#[async_trait::async_trait]
impl StateStore for NoState {
    async fn finished_runs(&self, _destination: &str) -> byob::Result<Vec<RunId>> {
        Ok(Vec::new())
    }
    async fn record(&self, _destination: &str, _receipt: &Receipt) -> byob::Result<()> {
        Ok(())
    }
    async fn receipt(&self, destination: &str, run: RunId) -> byob::Result<Receipt> {
        Err(byob::Error::Plan(format!("byob export keeps no state (receipt of {destination} run {run})")))
    }
    async fn put_result(&self, _run: RunId, _result: &TaskResult) -> byob::Result<String> {
        Err(byob::Error::Plan("byob export keeps no task results".into()))
    }
    async fn get_result(&self, _pointer: &str) -> byob::Result<TaskResult> {
        Err(byob::Error::Plan("byob export keeps no task results".into()))
    }
    async fn find_result(&self, _run: RunId, _task: &byob::plan::ExportTask) -> byob::Result<Option<TaskResult>> {
        Ok(None)
    }
    async fn put_document(&self, _key: &str, _body: Vec<u8>) -> byob::Result<byob::state::Stored> {
        Err(byob::Error::Plan("byob export keeps no state".into()))
    }
    async fn get_document(&self, key: &str) -> byob::Result<Vec<u8>> {
        Err(byob::Error::Plan(format!("byob export keeps no state ({key})")))
    }
}

#[cfg(test)]
mod tests {
    use super::table_name;
    use std::path::Path;

    #[test]
    fn table_names_come_from_the_input_name() {
        assert_eq!(table_name(Path::new("/data/events.parquet")), "events");
        assert_eq!(table_name(Path::new("/data/my-events")), "my_events");
        assert_eq!(table_name(Path::new("/data/2024.parquet")), "_2024");
        assert_eq!(table_name(Path::new("/")), "data");
    }
}
