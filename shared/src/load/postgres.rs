//! The PostgreSQL target: stage with binary COPY, swap in one transaction, exactly once.
//!
//! 1. A session advisory lock ([`LOCK_KEY`]) serializes every byob loader of the database, so
//!    two loaders racing on the same (or different) receipts apply one after the other; the
//!    second finds the first in `byob_load_history` and skips.
//! 2. Under the lock, `byob_load_history` decides: the same receipt (sha256) loads once; a
//!    receipt of an older run (or an older receipt of the same run) than the newest loaded is
//!    skipped with a log line; an incremental table that does not continue the loaded range
//!    is refused, naming the run to load first (`check_continuity` in `load`).
//! 3. Each table is loaded into `byob_staging.<table>` (UNLOGGED, recreated) with
//!    `COPY ... FROM STDIN (FORMAT binary)`; the row count must equal the receipt's.
//! 4. One transaction then, per table: creates the live table or evolves it (new columns are
//!    added; a column whose type changed is an error naming it, and nothing is applied),
//!    `TRUNCATE`s it and inserts the staged rows (an incremental table instead loses only the
//!    rows the staged ones replace: by primary key, or by watermark range; see `Merge` in `load`),
//!    drops the staging table; records the load in the history and each table's loaded range
//!    in `byob_table_ranges`; commits. Readers see the old dump or the new one, never a mix. The live
//!    table keeps its OID, grants, indexes and dependent views (a rename swap would not).
//!
//! A crash anywhere before the commit leaves the live tables untouched; the next delivery
//! of the receipt starts over (staging tables are recreated).

use std::collections::HashMap;
use std::path::PathBuf;
use tokio_postgres::Client;

use super::{
    LoadError, LoadOutcome, LoadReport, LoadedRange, Merge, ReceiptInfo, SwapNames, Target, VerifiedReceipt, read,
};
use crate::config::TlsMode;
use crate::pg::pg_message;
use crate::receipt::TableReceipt;
use crate::source::postgres::Connector;

mod copy;
pub use copy::{CopyError, PgColumn, copy_files, pg_columns};

pub(crate) use crate::pg::ident;

/// The schema the loader fills unless told otherwise: its own, so a default load never
/// touches the tables of `public` (or any other schema the warehouse already uses).
pub const DEFAULT_SCHEMA: &str = "byob";

/// The advisory lock every byob loader of a database takes (`pg_advisory_lock`).
pub const LOCK_KEY: i64 = 0x6279_6f62_6c6f_6164; // "byobload"
/// The schema staging tables live in.
pub const STAGING_SCHEMA: &str = "byob_staging";
/// The load history table, in the target schema.
pub const HISTORY_TABLE: &str = "byob_load_history";
/// The registry of the tables the loader created in its schema: the only tables it ever
/// alters, truncates or fills. A receipt naming any other existing table is refused.
pub const MANAGED_TABLE: &str = "byob_managed_tables";

/// Bytes of COPY data sent to the server at once.
const CHUNK_BYTES: usize = 1024 * 1024;

/// How the loader secures its connection to the warehouse. The default is TLS required, the
/// server's certificate chain and host name verified (libpq's `verify-full`; byob verifies
/// whenever TLS is used) against the system's roots plus `ca_file`. Amazon RDS and Aurora
/// certificates chain to Amazon's RDS CAs, which are not in the system's roots: give their
/// bundle (<https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem>) as `ca_file`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetTls {
    /// Overrides the URL's or the secret's `sslmode`; `None`: theirs, else `require`.
    pub mode: Option<TlsMode>,
    /// Extra trusted roots (PEM).
    pub ca_file: Option<PathBuf>,
}

impl TargetTls {
    /// From `BYOB_LOAD_TLS` (`disable`, `prefer`, `require`) and `BYOB_LOAD_CA_FILE` (a PEM
    /// file, e.g. the RDS bundle packaged with the function), each when set.
    pub fn from_env() -> Result<TargetTls, LoadError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mode = match var("BYOB_LOAD_TLS").as_deref() {
            None => None,
            Some(text) => Some(parse_tls_mode(text).ok_or_else(|| LoadError::Target {
                target: "postgres".into(),
                reason: format!("BYOB_LOAD_TLS is {text:?}; use disable, prefer or require"),
                retryable: false,
            })?),
        };
        Ok(TargetTls { mode, ca_file: var("BYOB_LOAD_CA_FILE").map(PathBuf::from) })
    }
}

/// `disable`, `prefer`, `require` (and libpq's `verify-ca` / `verify-full`, which byob's
/// `require` already is).
pub fn parse_tls_mode(text: &str) -> Option<TlsMode> {
    match text {
        "disable" => Some(TlsMode::Disable),
        "prefer" => Some(TlsMode::Prefer),
        "require" | "verify-ca" | "verify-full" => Some(TlsMode::Require),
        _ => None,
    }
}

/// Loads receipts into one PostgreSQL database and schema.
#[derive(Clone, Debug)]
pub struct PostgresTarget {
    connector: Connector,
    schema: String,
    fail_before_swap: bool,
}

impl PostgresTarget {
    /// Loads into [`DEFAULT_SCHEMA`] of the database `connector` reaches.
    pub fn new(connector: Connector) -> PostgresTarget {
        PostgresTarget { connector, schema: DEFAULT_SCHEMA.into(), fail_before_swap: false }
    }

    /// From a `postgres://` URL, with verified TLS unless the URL says `sslmode` (the URL
    /// never appears in an error).
    pub fn from_url(url: &str) -> Result<PostgresTarget, LoadError> {
        PostgresTarget::from_url_with(url, &TargetTls::default())
    }

    /// From a `postgres://` URL, TLS as `tls` says.
    pub fn from_url_with(url: &str, tls: &TargetTls) -> Result<PostgresTarget, LoadError> {
        let mode = tls.mode.or(if url.contains("sslmode=") { None } else { Some(TlsMode::Require) });
        Connector::from_url(url, mode, tls.ca_file.as_deref()).map(PostgresTarget::new).map_err(|e| LoadError::Target {
            target: "postgres".into(),
            reason: e.to_string(),
            retryable: false,
        })
    }

    /// From an AWS Secrets Manager secret in the RDS format, read with `config`, with
    /// verified TLS unless the secret says `sslmode`.
    pub async fn from_secret(config: &aws_config::SdkConfig, secret_id: &str) -> Result<PostgresTarget, LoadError> {
        PostgresTarget::from_secret_with(config, secret_id, &TargetTls::default()).await
    }

    /// From an AWS Secrets Manager secret, TLS as `tls` says.
    pub async fn from_secret_with(
        config: &aws_config::SdkConfig,
        secret_id: &str,
        tls: &TargetTls,
    ) -> Result<PostgresTarget, LoadError> {
        let secret = crate::aws::secrets::read_with(config, secret_id).await.map_err(|e| LoadError::Target {
            target: format!("secret {secret_id:?}"),
            retryable: e.is_retryable(),
            reason: e.to_string(),
        })?;
        let mode = tls.mode.or(secret.sslmode).unwrap_or(TlsMode::Require);
        Connector::from_secret(&secret, Some(mode), tls.ca_file.as_deref()).map(PostgresTarget::new).map_err(|e| {
            LoadError::Target { target: format!("secret {secret_id:?}"), reason: e.to_string(), retryable: false }
        })
    }

    /// The TLS mode the target's connections use.
    pub fn tls_mode(&self) -> TlsMode {
        self.connector.tls_mode()
    }

    /// Loads into `schema` (created if missing) instead of [`DEFAULT_SCHEMA`].
    pub fn with_schema(mut self, schema: &str) -> PostgresTarget {
        self.schema = schema.to_owned();
        self
    }

    /// Test support: stop after staging, before the swap, as a crash there would.
    #[doc(hidden)]
    pub fn failing_before_swap(mut self, fail: bool) -> PostgresTarget {
        self.fail_before_swap = fail;
        self
    }

    fn err(&self, what: &str, e: tokio_postgres::Error) -> LoadError {
        // Constraint, type and data errors are permanent; connection trouble is not.
        let retryable = crate::pg::is_transient(&e);
        LoadError::Target {
            target: self.connector.name().to_owned(),
            reason: format!("{what}: {}", pg_message(&e)),
            retryable,
        }
    }

    async fn connect(&self) -> Result<Client, LoadError> {
        self.connector.connect().await.map_err(|e| LoadError::Target {
            target: self.connector.name().to_owned(),
            retryable: e.is_retryable(),
            reason: e.to_string(),
        })
    }

    fn history(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(HISTORY_TABLE))
    }

    fn ranges(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(super::RANGES_TABLE))
    }

    /// What the warehouse holds of each table with a watermark (empty before the first such load).
    async fn loaded_ranges(&self, client: &Client) -> Result<HashMap<String, LoadedRange>, LoadError> {
        let r = self.ranges();
        let what = "reading the loaded ranges";
        let exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&r])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| self.err(what, e))?;
        if !exists {
            return Ok(HashMap::new());
        }
        let rows = client
            .query(&format!("SELECT table_name, run, watermark_column, loaded_to FROM {r}"), &[])
            .await
            .map_err(|e| self.err(what, e))?;
        rows.iter()
            .map(|row| {
                let name: String = row.try_get(0)?;
                Ok((name, LoadedRange::from_row(row.try_get(1)?, row.try_get(2)?, row.try_get(3)?)))
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(|e| self.err(what, e))
    }

    /// Inside the swap transaction: the staged rows of `name` into its live table, as its
    /// receipt entry says (replace, merge by key, or replace the range), and its loaded range.
    async fn merge(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        run: &str,
        name: &str,
        table: &TableReceipt,
    ) -> Result<(), LoadError> {
        let SwapNames { live, staging, list } = SwapNames::of(&self.schema, name, table);
        let index = ident(&super::merge_index(name));
        let fail = |e| self.err(&format!("merging into {live}"), e);
        match Merge::of(table) {
            Merge::Replace => tx.batch_execute(&format!("TRUNCATE {live}")).await.map_err(fail)?,
            Merge::ByKey(keys) => {
                let columns: Vec<String> = keys.iter().map(|k| ident(k)).collect();
                let on: Vec<String> = columns.iter().map(|k| format!("l.{k} = s.{k}")).collect();
                tx.batch_execute(&format!(
                    "CREATE INDEX IF NOT EXISTS {index} ON {live} ({}); DELETE FROM {live} AS l USING {staging} AS s WHERE {}",
                    columns.join(", "),
                    on.join(" AND ")
                ))
                .await
                .map_err(fail)?;
            }
            Merge::ByRange { column, after, through } => {
                let pg_type = pg_columns(name, &table.schema)?
                    .into_iter()
                    .find(|c| c.name == column)
                    .map(|c| c.pg_type)
                    .unwrap_or_else(|| "text".to_owned());
                let w = ident(column);
                tx.batch_execute(&format!("CREATE INDEX IF NOT EXISTS {index} ON {live} ({w})")).await.map_err(fail)?;
                tx.execute(
                    &format!("DELETE FROM {live} WHERE {w} > $1::text::{pg_type} AND {w} <= $2::text::{pg_type}"),
                    &[&after, &through],
                )
                .await
                .map_err(fail)?;
            }
        }
        tx.batch_execute(&format!("INSERT INTO {live} ({list}) SELECT {list} FROM {staging}; DROP TABLE {staging}"))
            .await
            .map_err(fail)?;
        let r = self.ranges();
        let recorded = match &table.range {
            Some(range) => {
                tx.execute(
                    &format!(
                        "INSERT INTO {r} (table_name, run, watermark_column, loaded_to) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (table_name) DO UPDATE SET run = EXCLUDED.run, \
                         watermark_column = EXCLUDED.watermark_column, loaded_to = EXCLUDED.loaded_to, loaded_at = now()"
                    ),
                    &[&name, &run, &range.column, &super::range_text(range.to)],
                )
                .await
            }
            None => tx.execute(&format!("DELETE FROM {r} WHERE table_name = $1"), &[&name]).await,
        };
        recorded.map_err(|e| self.err(&format!("recording the loaded range of {live}"), e))?;
        Ok(())
    }

    fn managed(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(MANAGED_TABLE))
    }

    /// Under the lock, before anything is staged: every table of the receipt is either new or
    /// one this loader created. The registry starts (once) with the tables earlier loads
    /// recorded in the history, so an upgrade keeps loading them.
    async fn check_managed(&self, client: &Client, info: &ReceiptInfo) -> Result<(), LoadError> {
        let (h, m) = (self.history(), self.managed());
        let had_registry: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&m])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| self.err("reading the managed-table registry", e))?;
        if !had_registry {
            client
                .batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {m} (table_name text PRIMARY KEY, created_run text NOT NULL, \
                       created_at timestamptz NOT NULL DEFAULT now())"
                ))
                .await
                .map_err(|e| self.err("creating the managed-table registry", e))?;
            client
                .execute(
                    &format!(
                        "INSERT INTO {m} (table_name, created_run) \
                           SELECT DISTINCT ON (t) t, run FROM {h}, unnest(tables) AS t \
                           WHERE to_regclass(format('%I.%I', $1::text, t)) IS NOT NULL ORDER BY t, run \
                         ON CONFLICT DO NOTHING"
                    ),
                    &[&self.schema],
                )
                .await
                .map_err(|e| self.err("adopting the tables of earlier loads", e))?;
        }
        for name in info.receipt.tables.keys() {
            let live = format!("{}.{}", ident(&self.schema), ident(name));
            let row = client
                .query_one(
                    &format!("SELECT to_regclass($1) IS NOT NULL, EXISTS (SELECT 1 FROM {m} WHERE table_name = $2)"),
                    &[&live, name],
                )
                .await
                .map_err(|e| self.err("reading the managed-table registry", e))?;
            let (exists, managed): (bool, bool) = (
                row.try_get(0).map_err(|e| self.err("reading the managed-table registry", e))?,
                row.try_get(1).map_err(|e| self.err("reading the managed-table registry", e))?,
            );
            if exists && !managed {
                return Err(super::not_managed(name, &live));
            }
        }
        Ok(())
    }

    /// The newest loaded (run, receipt timestamp), and whether `sha256` was loaded.
    async fn decide(&self, client: &Client, info: &ReceiptInfo) -> Result<Option<LoadOutcome>, LoadError> {
        let exists: Option<String> = client
            .query_one("SELECT to_regclass($1)::text", &[&self.history()])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| self.err("reading the load history", e))?;
        if exists.is_none() {
            return Ok(None);
        }
        let h = self.history();
        let dup = client
            .query_opt(&format!("SELECT run FROM {h} WHERE receipt_sha256 = $1"), &[&info.sha256])
            .await
            .map_err(|e| self.err("reading the load history", e))?;
        let newest = client
            .query_opt(
                &format!("SELECT run, receipt_timestamp FROM {h} ORDER BY run DESC, receipt_timestamp DESC LIMIT 1"),
                &[],
            )
            .await
            .and_then(|row| row.map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).transpose())
            .map_err(|e| self.err("reading the load history", e))?;
        Ok(super::decide(info, dup.is_some(), newest))
    }

    async fn stage(
        &self,
        client: &Client,
        verified: &VerifiedReceipt,
        name: &str,
        table: &TableReceipt,
    ) -> Result<u64, LoadError> {
        let staging = format!("{}.{}", ident(STAGING_SCHEMA), ident(name));
        let columns = pg_columns(name, &table.schema)?;
        let ddl: Vec<String> = columns.iter().map(|c| format!("{} {}", ident(&c.name), c.pg_type)).collect();
        client
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {staging}; CREATE UNLOGGED TABLE {staging} ({})",
                ddl.join(", ")
            ))
            .await
            .map_err(|e| self.err(&format!("creating {staging}"), e))?;
        let files: Vec<read::TableFile> = table
            .files
            .iter()
            .filter_map(|f| verified.path(&f.key).map(|p| (f.key.clone(), f.rows, p.to_path_buf())))
            .collect();
        if files.len() != table.files.len() {
            return Err(LoadError::Receipt {
                receipt: verified.info.location.clone(),
                reason: format!("table {name:?}: a file was not verified"),
            });
        }
        let format = verified.info.receipt.format.clone();
        let rows = copy_files(client, &staging, name, columns, format, files)
            .await
            .map_err(|e| e.into_load_error(|what, e| self.err(what, e)))?;
        if rows != table.row_count {
            return Err(LoadError::Decode {
                table: name.to_owned(),
                key: table.folder.clone(),
                reason: format!("{rows} rows were read, the receipt lists {}", table.row_count),
            });
        }
        Ok(rows)
    }

    /// Inside the swap transaction: the live table with the receipt's columns.
    async fn evolve(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        run: &str,
        name: &str,
        table: &TableReceipt,
    ) -> Result<(), LoadError> {
        let live = format!("{}.{}", ident(&self.schema), ident(name));
        let columns = pg_columns(name, &table.schema)?;
        let existing = tx
            .query(
                "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
                 WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
                &[&live],
            )
            .await
            .and_then(|rows| {
                rows.iter()
                    .map(|r| Ok((r.try_get::<_, String>(0)?, r.try_get::<_, String>(1)?)))
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| self.err(&format!("reading the columns of {live}"), e))?;
        if existing.is_empty() {
            let ddl: Vec<String> = columns
                .iter()
                .map(|c| format!("{} {}{}", ident(&c.name), c.pg_type, if c.nullable { "" } else { " NOT NULL" }))
                .collect();
            tx.batch_execute(&format!("CREATE TABLE {live} ({})", ddl.join(", ")))
                .await
                .map_err(|e| self.err(&format!("creating {live}"), e))?;
            tx.execute(
                &format!("INSERT INTO {} (table_name, created_run) VALUES ($1, $2)", self.managed()),
                &[&name, &run],
            )
            .await
            .map_err(|e| self.err(&format!("registering {live}"), e))?;
            return Ok(());
        }
        for c in &columns {
            let found = existing.iter().find(|(column, _)| *column == c.name);
            match found {
                None => {
                    tracing::info!(table = name, column = %c.name, r#type = %c.pg_type, "adding a column");
                    tx.batch_execute(&format!("ALTER TABLE {live} ADD COLUMN {} {}", ident(&c.name), c.pg_type))
                        .await
                        .map_err(|e| self.err(&format!("adding column {:?} to {live}", c.name), e))?;
                }
                Some((_, have)) => {
                    if *have != c.pg_type {
                        return Err(LoadError::Schema {
                            table: name.to_owned(),
                            reason: format!(
                                "column {:?} is {have} in {live} but the receipt has {} ({}); \
                                 change or drop the column, then deliver the receipt again",
                                c.name, c.portable, c.pg_type
                            ),
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Target for PostgresTarget {
    fn name(&self) -> &str {
        self.connector.name()
    }

    async fn precheck(&self, info: &ReceiptInfo) -> Result<Option<LoadOutcome>, LoadError> {
        let client = self.connect().await?;
        if let Some(skip) = self.decide(&client, info).await? {
            return Ok(Some(skip));
        }
        // A gap is refused before a file is fetched (and checked again under the lock).
        super::check_continuity(info, &self.loaded_ranges(&client).await?)?;
        Ok(None)
    }

    async fn apply(&self, verified: &VerifiedReceipt) -> Result<LoadOutcome, LoadError> {
        let info = &verified.info;
        let mut client = self.connect().await?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
            .await
            .map_err(|e| self.err("taking the loader lock", e))?;
        let result = self.apply_locked(&mut client, verified).await;
        // Closing the connection releases the lock too; unlock to be explicit.
        let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]).await;
        if let Err(e) = &result {
            tracing::warn!(receipt = %info.location, error = %e, "load failed; the live tables are unchanged");
        }
        result
    }
}

impl PostgresTarget {
    async fn apply_locked(&self, client: &mut Client, verified: &VerifiedReceipt) -> Result<LoadOutcome, LoadError> {
        let info = &verified.info;
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema}; CREATE SCHEMA IF NOT EXISTS {staging}; \
                 CREATE TABLE IF NOT EXISTS {h} (\
                   run text NOT NULL, receipt_sha256 text PRIMARY KEY, receipt_timestamp text NOT NULL, \
                   receipt text NOT NULL, tables text[] NOT NULL, rows bigint NOT NULL, \
                   loaded_at timestamptz NOT NULL DEFAULT now()); \
                 CREATE TABLE IF NOT EXISTS {r} (\
                   table_name text PRIMARY KEY, run text NOT NULL, watermark_column text NOT NULL, loaded_to text, \
                   loaded_at timestamptz NOT NULL DEFAULT now())",
                schema = ident(&self.schema),
                staging = ident(STAGING_SCHEMA),
                h = self.history(),
                r = self.ranges(),
            ))
            .await
            .map_err(|e| self.err("creating the load history", e))?;
        if let Some(skip) = self.decide(client, info).await? {
            return Ok(skip);
        }
        self.check_managed(client, info).await?;
        super::check_continuity(info, &self.loaded_ranges(client).await?)?;
        let mut tables = Vec::new();
        for (name, table) in &info.receipt.tables {
            let rows = self.stage(client, verified, name, table).await?;
            tables.push((name.clone(), rows));
        }
        if self.fail_before_swap {
            return Err(LoadError::Interrupted { run: info.receipt.run.to_string() });
        }
        let tx = client.transaction().await.map_err(|e| self.err("starting the swap", e))?;
        let run = info.receipt.run.to_string();
        for (name, table) in &info.receipt.tables {
            self.evolve(&tx, &run, name, table).await?;
            self.merge(&tx, &run, name, table).await?;
        }
        let rows: u64 = tables.iter().map(|(_, r)| r).sum();
        let names: Vec<String> = tables.iter().map(|(n, _)| n.clone()).collect();
        tx.execute(
            &format!(
                "INSERT INTO {} (run, receipt_sha256, receipt_timestamp, receipt, tables, rows) VALUES ($1, $2, $3, $4, $5, $6)",
                self.history()
            ),
            &[&run, &info.sha256, &info.receipt.timestamp, &info.location, &names, &(rows as i64)],
        )
        .await
        .map_err(|e| self.err("recording the load", e))?;
        tx.commit().await.map_err(|e| self.err("committing the swap", e))?;
        Ok(LoadOutcome::Loaded(LoadReport {
            receipt: info.location.clone(),
            run,
            receipt_sha256: info.sha256.clone(),
            tables,
            rows,
        }))
    }
}
