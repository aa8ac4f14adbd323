//! `byob load`: load one receipt by hand (a backfill, a retry, a local dump) with exactly the
//! code the deployed loader runs, and the demo's last step.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use byob::load::{LoadOutcome, Loader, PostgresTarget, ReceiptLocation};

/// Loads `receipt` (`s3://bucket/key` or a path) into the PostgreSQL database at `target`
/// (a URL) or named by `secret` (Secrets Manager, RDS format), in `schema`.
pub(crate) async fn load(receipt: &str, target: Option<&str>, secret: Option<&str>, schema: &str) -> anyhow::Result<ExitCode> {
    let location = ReceiptLocation::parse(receipt)?;
    let target = match (target, secret) {
        (_, Some(secret)) => {
            let base = byob::aws::sdk_config(&byob::config::AwsConfig::default()).await;
            PostgresTarget::from_secret(&base, secret).await?
        }
        (Some(url), None) => PostgresTarget::from_url(url)?,
        (None, None) => anyhow::bail!("give --target <postgres URL> or --secret <Secrets Manager secret>"),
    }
    .with_schema(schema);
    let loader = match location {
        ReceiptLocation::S3 { .. } => Loader::from_env().await,
        ReceiptLocation::Path(_) => Loader::local(),
    };
    let outcome = loader.load(&location, &target).await.with_context(|| format!("loading {location}"))?;
    print(&outcome);
    Ok(ExitCode::SUCCESS)
}

fn print(outcome: &LoadOutcome) {
    match outcome {
        LoadOutcome::Loaded(r) => {
            println!("loaded run {} from {} ({} rows)", r.run, r.receipt, r.rows);
            for (table, rows) in &r.tables {
                println!("    {table:<22} {rows:>12} rows");
            }
        }
        LoadOutcome::Duplicate { receipt, run } => println!("skipped {receipt}: run {run} is already loaded (same receipt)"),
        LoadOutcome::Older { receipt, run, loaded_run } => {
            println!("skipped {receipt}: run {run} is older than the loaded run {loaded_run}")
        }
        LoadOutcome::Ignored { reason } => println!("ignored: {reason}"),
    }
}

/// The demo's last step: each destination's root receipt loaded into the schema named after it.
pub(crate) async fn demo_load(url: &str, destinations: &[(String, std::path::PathBuf)]) -> anyhow::Result<()> {
    for (id, root) in destinations {
        let target = PostgresTarget::from_url(url)?.with_schema(id);
        let location = ReceiptLocation::Path(root.join(Path::new("receipt.json")));
        println!("loading {id} into {} (schema {id})", byob::load::Target::name(&target));
        let outcome = Loader::local().load(&location, &target).await.with_context(|| format!("loading {location}"))?;
        print(&outcome);
    }
    Ok(())
}
