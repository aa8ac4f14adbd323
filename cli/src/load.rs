//! `byob load`: load one receipt by hand (a backfill, a retry, a local dump) with exactly the
//! code the deployed loader runs, and the demo's last step.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
#[cfg(feature = "duckdb")]
use byob::load::DuckDbTarget;
use byob::load::{LoadOutcome, Loader, PostgresTarget, ReceiptLocation, Target};

/// Where `byob load` writes: a PostgreSQL URL or a DuckDB file.
enum TargetSpec<'a> {
    Postgres(&'a str),
    DuckDb(&'a Path),
}

impl<'a> TargetSpec<'a> {
    /// `postgres://...` / `postgresql://...`, or `duckdb:<path>` / a path ending in `.duckdb`
    /// or `.db`.
    fn parse(target: &'a str) -> anyhow::Result<TargetSpec<'a>> {
        if target.starts_with("postgres://") || target.starts_with("postgresql://") {
            return Ok(TargetSpec::Postgres(target));
        }
        if let Some(path) = target.strip_prefix("duckdb:") {
            return Ok(TargetSpec::DuckDb(Path::new(path)));
        }
        let path = Path::new(target);
        if matches!(path.extension().and_then(|e| e.to_str()), Some("duckdb" | "db")) {
            return Ok(TargetSpec::DuckDb(path));
        }
        // Never echo the value: it may be a URL with a password in it.
        anyhow::bail!(
            "--target: not a PostgreSQL URL (postgresql://user:password@host:5432/db) or a DuckDB file \
             (warehouse.duckdb, or duckdb:<path>)"
        )
    }
}

/// Loads `receipt` (`s3://bucket/key` or a path) into `target` (a PostgreSQL URL or a DuckDB
/// file) or the PostgreSQL database named by `secret` (Secrets Manager, RDS format), in
/// `schema` (default: `public` for PostgreSQL, `main` for DuckDB); only `tables`, when given.
pub(crate) async fn load(
    receipt: &str,
    target: Option<&str>,
    secret: Option<&str>,
    schema: Option<&str>,
    tables: Vec<String>,
    tls: &byob::load::TargetTls,
    pgp_key_file: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let location = ReceiptLocation::parse(receipt)?;
    let target: Box<dyn Target> = match (target, secret) {
        (_, Some(secret)) => {
            let base = byob::aws::sdk_config(&byob::config::AwsConfig::default()).await;
            Box::new(
                PostgresTarget::from_secret_with(&base, secret, tls)
                    .await?
                    .with_schema(schema.unwrap_or(byob::load::DEFAULT_SCHEMA)),
            )
        }
        (Some(target), None) => match TargetSpec::parse(target)? {
            TargetSpec::Postgres(url) => Box::new(
                PostgresTarget::from_url_with(url, tls)?.with_schema(schema.unwrap_or(byob::load::DEFAULT_SCHEMA)),
            ),
            #[cfg(feature = "duckdb")]
            TargetSpec::DuckDb(path) => Box::new(DuckDbTarget::new(path).with_schema(schema.unwrap_or("main"))),
            #[cfg(not(feature = "duckdb"))]
            TargetSpec::DuckDb(path) => anyhow::bail!(
                "--target {}: this byob was built without DuckDB; build it with \
                 `cargo build --release -p byob-cli --features duckdb`",
                path.display()
            ),
        },
        (None, None) => {
            anyhow::bail!("give --target <PostgreSQL URL or DuckDB file> or --secret <Secrets Manager secret>")
        }
    };
    let loader = match location {
        ReceiptLocation::S3 { .. } => Loader::from_env().await,
        ReceiptLocation::Path(_) => Loader::local(),
    };
    // Encrypted dumps: --pgp-key-file (BYOB_LOAD_PGP_KEY_FILE), else BYOB_LOAD_PGP_SECRET.
    let loader = match pgp_key_file {
        Some(path) => {
            let key = std::fs::read(path).with_context(|| format!("--pgp-key-file {}", path.display()))?;
            let passphrase = std::env::var("BYOB_LOAD_PGP_PASSPHRASE").ok().filter(|p| !p.is_empty());
            loader.with_pgp_key(byob::load::PgpSecretKey { key, passphrase })
        }
        None => loader.with_pgp_from_env().await?,
    };
    let loader = if tables.is_empty() { loader } else { loader.only_tables(tables) };
    let outcome = loader.load(&location, target.as_ref()).await.with_context(|| format!("loading {location}"))?;
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
        LoadOutcome::Duplicate { receipt, run } => {
            println!("skipped {receipt}: run {run} is already loaded (same receipt)")
        }
        LoadOutcome::Older { receipt, run, loaded_run } => {
            println!("skipped {receipt}: run {run} is older than the loaded run {loaded_run}")
        }
        LoadOutcome::Ignored { reason } => println!("ignored: {reason}"),
    }
}

/// The demo's last step: each destination's root receipt loaded into the schema named after
/// it, in the DuckDB file `duckdb` (then every table's row count, read back from the file)
/// and, when given, in the PostgreSQL database at `postgres`.
pub(crate) async fn demo_load(
    duckdb: &Path,
    postgres: Option<&str>,
    destinations: &[(String, std::path::PathBuf)],
) -> anyhow::Result<()> {
    for (id, root) in destinations {
        let location = ReceiptLocation::Path(root.join(Path::new("receipt.json")));
        let mut targets: Vec<Box<dyn Target>> = Vec::new();
        #[cfg(feature = "duckdb")]
        targets.push(Box::new(DuckDbTarget::new(duckdb).with_schema(id)));
        if let Some(url) = postgres {
            targets.push(Box::new(PostgresTarget::from_url(url)?.with_schema(id)));
        }
        for target in &targets {
            println!("loading {id} into {} (schema {id})", target.name());
            let outcome = Loader::local()
                .load(&location, target.as_ref())
                .await
                .with_context(|| format!("loading {location}"))?;
            print(&outcome);
        }
    }
    #[cfg(feature = "duckdb")]
    {
        println!();
        println!("row counts read back from {}:", duckdb.display());
        for (id, _) in destinations {
            for (table, rows) in byob::load::duckdb::table_counts(duckdb, id)? {
                println!("    {:<30} {rows:>12}", format!("{id}.{table}"));
            }
        }
    }
    #[cfg(not(feature = "duckdb"))]
    println!(
        "(not loaded into {}: build byob with --features duckdb for the embedded DuckDB warehouse)",
        duckdb.display()
    );
    Ok(())
}
