//! The PostgreSQL target: stage with binary COPY, swap in one transaction, exactly once.
//!
//! 1. A session advisory lock ([`LOCK_KEY`]) serializes every byob loader of the database, so
//!    two loaders racing on the same (or different) receipts apply one after the other; the
//!    second finds the first in `byob_load_history` and skips.
//! 2. Under the lock, `byob_load_history` decides: the same receipt (sha256) loads once; a
//!    receipt of an older run (or an older receipt of the same run) than the newest loaded is
//!    skipped with a log line.
//! 3. Each table is loaded into `byob_staging.<table>` (UNLOGGED, recreated) with
//!    `COPY ... FROM STDIN (FORMAT binary)`; the row count must equal the receipt's.
//! 4. One transaction then, per table: creates the live table or evolves it (new columns are
//!    added; a column whose type changed is an error naming it, and nothing is applied),
//!    `TRUNCATE`s it and inserts the staged rows, drops the staging table; records the load
//!    in the history; commits. Readers see the old dump or the new one, never a mix. The live
//!    table keeps its OID, grants, indexes and dependent views (a rename swap would not).
//!
//! A crash anywhere before the commit leaves the live tables untouched; the next delivery
//! of the receipt starts over (staging tables are recreated).

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Decimal256Array, Float32Array,
    Float64Array, Int16Array, Int32Array, Int64Array, IntervalMonthDayNanoArray, ListArray, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
use bytes::Bytes;
use futures::SinkExt;
use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::{LoadError, LoadOutcome, LoadReport, ReceiptInfo, Target, VerifiedReceipt, read};
use crate::config::TlsMode;
use crate::pg::pg_message;
use crate::receipt::TableReceipt;
use crate::schema::{ColumnSchema, parse_type_name};
use crate::source::postgres::Connector;

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
        let list: Vec<String> = columns.iter().map(|c| ident(&c.name)).collect();
        let sink = client
            .copy_in::<_, Bytes>(&format!("COPY {staging} ({}) FROM STDIN (FORMAT binary)", list.join(", ")))
            .await
            .map_err(|e| self.err(&format!("starting COPY into {staging}"), e))?;
        let mut sink = Box::pin(sink);

        let (tx, mut rx) = mpsc::channel::<Result<Bytes, LoadError>>(4);
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
        let format = verified.info.receipt.format;
        let table_name = name.to_owned();
        let encoder = tokio::task::spawn_blocking(move || {
            if let Err(e) = encode_files(&table_name, &format, &columns, &files, &tx) {
                let _ = tx.blocking_send(Err(e));
            }
        });
        while let Some(chunk) = rx.recv().await {
            let chunk = chunk?;
            sink.send(chunk).await.map_err(|e| self.err(&format!("COPY into {staging}"), e))?;
        }
        encoder.await.map_err(|e| LoadError::Decode {
            table: name.to_owned(),
            key: String::new(),
            reason: e.to_string(),
        })?;
        let rows = sink.as_mut().finish().await.map_err(|e| self.err(&format!("COPY into {staging}"), e))?;
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
        self.decide(&client, info).await
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
                   loaded_at timestamptz NOT NULL DEFAULT now())",
                schema = ident(&self.schema),
                staging = ident(STAGING_SCHEMA),
                h = self.history(),
            ))
            .await
            .map_err(|e| self.err("creating the load history", e))?;
        if let Some(skip) = self.decide(client, info).await? {
            return Ok(skip);
        }
        self.check_managed(client, info).await?;
        let mut tables = Vec::new();
        for (name, table) in &info.receipt.tables {
            let rows = self.stage(client, verified, name, table).await?;
            tables.push((name.clone(), rows));
        }
        if self.fail_before_swap {
            return Err(LoadError::Interrupted { run: info.receipt.run.to_string() });
        }
        let tx = client.transaction().await.map_err(|e| self.err("starting the swap", e))?;
        for (name, table) in &info.receipt.tables {
            self.evolve(&tx, &info.receipt.run.to_string(), name, table).await?;
            let live = format!("{}.{}", ident(&self.schema), ident(name));
            let staging = format!("{}.{}", ident(STAGING_SCHEMA), ident(name));
            let list: Vec<String> = table.schema.iter().map(|c| ident(&c.name)).collect();
            let list = list.join(", ");
            tx.batch_execute(&format!(
                "TRUNCATE {live}; INSERT INTO {live} ({list}) SELECT {list} FROM {staging}; DROP TABLE {staging}"
            ))
            .await
            .map_err(|e| self.err(&format!("swapping {live}"), e))?;
        }
        let rows: u64 = tables.iter().map(|(_, r)| r).sum();
        let names: Vec<String> = tables.iter().map(|(n, _)| n.clone()).collect();
        let run = info.receipt.run.to_string();
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

/// A column as PostgreSQL stores it.
#[derive(Clone, Debug)]
pub struct PgColumn {
    /// The column name.
    pub name: String,
    /// The portable type name from the receipt.
    pub portable: String,
    /// The type as PostgreSQL's `format_type` spells it (so it compares with a live table).
    pub pg_type: String,
    /// Whether nulls are allowed.
    pub nullable: bool,
    /// The Arrow type every batch is cast to before encoding.
    arrow: DataType,
    kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bool,
    I16,
    I32,
    I64,
    F32,
    F64,
    Numeric,
    Text,
    Bytea,
    Date,
    Time,
    Timestamp,
    Interval,
}

impl Kind {
    fn oid(self) -> u32 {
        match self {
            Kind::Bool => 16,
            Kind::I16 => 21,
            Kind::I32 => 23,
            Kind::I64 => 20,
            Kind::F32 => 700,
            Kind::F64 => 701,
            Kind::Numeric => 1700,
            Kind::Text => 25,
            Kind::Bytea => 17,
            Kind::Date => 1082,
            Kind::Time => 1083,
            Kind::Timestamp => 1114,
            Kind::Interval => 1186,
        }
    }
}

/// PostgreSQL type, Arrow type to cast to, and encoding of a scalar portable type.
fn scalar(dt: &DataType) -> Option<(String, DataType, Kind)> {
    use DataType as D;
    Some(match dt {
        D::Boolean => ("boolean".into(), D::Boolean, Kind::Bool),
        D::Int8 | D::Int16 | D::UInt8 => ("smallint".into(), D::Int16, Kind::I16),
        D::Int32 | D::UInt16 => ("integer".into(), D::Int32, Kind::I32),
        D::Int64 | D::UInt32 => ("bigint".into(), D::Int64, Kind::I64),
        D::UInt64 => ("numeric(20,0)".into(), D::Decimal128(20, 0), Kind::Numeric),
        D::Float32 => ("real".into(), D::Float32, Kind::F32),
        D::Float64 => ("double precision".into(), D::Float64, Kind::F64),
        D::Decimal128(p, s) | D::Decimal256(p, s) if *s >= 0 && s.unsigned_abs() <= *p => {
            (format!("numeric({p},{s})"), dt.clone(), Kind::Numeric)
        }
        D::Utf8 => ("text".into(), D::Utf8, Kind::Text),
        D::Binary => ("bytea".into(), D::Binary, Kind::Bytea),
        D::Date32 => ("date".into(), D::Date32, Kind::Date),
        D::Time32(_) | D::Time64(_) => ("time without time zone".into(), D::Time64(TimeUnit::Microsecond), Kind::Time),
        D::Timestamp(_, None) => {
            ("timestamp without time zone".into(), D::Timestamp(TimeUnit::Microsecond, None), Kind::Timestamp)
        }
        D::Timestamp(_, Some(_)) => (
            "timestamp with time zone".into(),
            D::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Kind::Timestamp,
        ),
        D::Interval(IntervalUnit::MonthDayNano) => ("interval".into(), dt.clone(), Kind::Interval),
        _ => return None,
    })
}

/// The PostgreSQL columns of a receipt's table schema: portable names -> PostgreSQL types
/// (`list<T>` -> `T[]`; nanosecond times are truncated to PostgreSQL's microseconds).
pub fn pg_columns(table: &str, schema: &[ColumnSchema]) -> Result<Vec<PgColumn>, LoadError> {
    schema
        .iter()
        .map(|c| {
            let bad = |reason: String| LoadError::Schema { table: table.to_owned(), reason };
            let dt = parse_type_name(&c.data_type).map_err(|e| bad(format!("column {:?}: {e}", c.name)))?;
            let unsupported = || bad(format!("column {:?}: type {} has no PostgreSQL mapping", c.name, c.data_type));
            let (pg_type, arrow, kind) = match &dt {
                DataType::List(item) => {
                    let (t, a, k) = scalar(item.data_type()).ok_or_else(unsupported)?;
                    (format!("{t}[]"), DataType::List(Arc::new(Field::new_list_field(a, true))), k)
                }
                other => scalar(other).ok_or_else(unsupported)?,
            };
            Ok(PgColumn {
                name: c.name.clone(),
                portable: c.data_type.clone(),
                pg_type,
                nullable: c.nullable,
                arrow,
                kind,
            })
        })
        .collect()
}

pub(crate) use crate::pg::ident;

// ---- binary COPY encoding ---------------------------------------------------------------

const PG_EPOCH_DAYS: i64 = 10_957; // 2000-01-01 - 1970-01-01
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS * 86_400_000_000;

fn encode_files(
    table: &str,
    format: &crate::format::Format,
    columns: &[PgColumn],
    files: &[read::TableFile],
    tx: &mpsc::Sender<Result<Bytes, LoadError>>,
) -> Result<(), LoadError> {
    let schema: Vec<ColumnSchema> = columns
        .iter()
        .map(|c| ColumnSchema { name: c.name.clone(), data_type: c.portable.clone(), nullable: c.nullable })
        .collect();
    let types: Vec<DataType> = columns.iter().map(|c| c.arrow.clone()).collect();
    let mut out = Vec::with_capacity(CHUNK_BYTES + 64 * 1024);
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    let field_count = i16::try_from(columns.len())
        .map_err(|_| LoadError::Schema { table: table.to_owned(), reason: "more than 32767 columns".into() })?;
    read::for_each_batch(table, format, &schema, &types, files, |arrays, rows| {
        let cols = arrays
            .iter()
            .zip(columns)
            .map(|(a, c)| {
                Col::new(a, c.kind).ok_or_else(|| LoadError::Decode {
                    table: table.to_owned(),
                    key: String::new(),
                    reason: format!("column {:?}: unexpected array type", c.name),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for i in 0..rows {
            out.extend_from_slice(&field_count.to_be_bytes());
            for col in &cols {
                col.write(i, &mut out);
            }
            if out.len() >= CHUNK_BYTES {
                let chunk = Bytes::from(std::mem::replace(&mut out, Vec::with_capacity(CHUNK_BYTES + 64 * 1024)));
                if tx.blocking_send(Ok(chunk)).is_err() {
                    // The COPY side failed and reports why; this error only stops the reading.
                    return Err(LoadError::Decode {
                        table: table.to_owned(),
                        key: String::new(),
                        reason: "the COPY stream closed".into(),
                    });
                }
            }
        }
        Ok(())
    })?;
    out.extend_from_slice(&(-1i16).to_be_bytes());
    let _ = tx.blocking_send(Ok(Bytes::from(out)));
    Ok(())
}

/// A column downcast once per batch.
enum Col<'a> {
    Bool(&'a BooleanArray),
    I16(&'a Int16Array),
    I32(&'a Int32Array),
    I64(&'a Int64Array),
    F32(&'a Float32Array),
    F64(&'a Float64Array),
    Dec128(&'a Decimal128Array, i8),
    Dec256(&'a Decimal256Array, i8),
    Text(&'a StringArray),
    Bytea(&'a BinaryArray),
    Date(&'a Date32Array),
    Time(&'a Time64MicrosecondArray),
    Timestamp(&'a TimestampMicrosecondArray),
    Interval(&'a IntervalMonthDayNanoArray),
    List(&'a ListArray, Box<Col<'a>>, u32),
}

impl<'a> Col<'a> {
    fn new(array: &'a ArrayRef, kind: Kind) -> Option<Col<'a>> {
        if let Some(list) = array.as_list_opt::<i32>() {
            let values = list.values();
            return Some(Col::List(list, Box::new(Col::new(values, kind)?), kind.oid()));
        }
        Some(match kind {
            Kind::Bool => Col::Bool(array.as_boolean_opt()?),
            Kind::I16 => Col::I16(array.as_primitive_opt()?),
            Kind::I32 => Col::I32(array.as_primitive_opt()?),
            Kind::I64 => Col::I64(array.as_primitive_opt()?),
            Kind::F32 => Col::F32(array.as_primitive_opt()?),
            Kind::F64 => Col::F64(array.as_primitive_opt()?),
            Kind::Numeric => match array.data_type() {
                DataType::Decimal128(_, s) => Col::Dec128(array.as_primitive_opt()?, *s),
                DataType::Decimal256(_, s) => Col::Dec256(array.as_primitive_opt()?, *s),
                _ => return None,
            },
            Kind::Text => Col::Text(array.as_string_opt()?),
            Kind::Bytea => Col::Bytea(array.as_binary_opt()?),
            Kind::Date => Col::Date(array.as_primitive_opt()?),
            Kind::Time => Col::Time(array.as_primitive_opt()?),
            Kind::Timestamp => Col::Timestamp(array.as_primitive_opt()?),
            Kind::Interval => Col::Interval(array.as_primitive_opt()?),
        })
    }

    fn is_null(&self, i: usize) -> bool {
        match self {
            Col::Bool(a) => a.is_null(i),
            Col::I16(a) => a.is_null(i),
            Col::I32(a) => a.is_null(i),
            Col::I64(a) => a.is_null(i),
            Col::F32(a) => a.is_null(i),
            Col::F64(a) => a.is_null(i),
            Col::Dec128(a, _) => a.is_null(i),
            Col::Dec256(a, _) => a.is_null(i),
            Col::Text(a) => a.is_null(i),
            Col::Bytea(a) => a.is_null(i),
            Col::Date(a) => a.is_null(i),
            Col::Time(a) => a.is_null(i),
            Col::Timestamp(a) => a.is_null(i),
            Col::Interval(a) => a.is_null(i),
            Col::List(a, _, _) => a.is_null(i),
        }
    }

    /// Writes field `i`: its length (-1 for NULL) and its binary value.
    fn write(&self, i: usize, out: &mut Vec<u8>) {
        if self.is_null(i) {
            out.extend_from_slice(&(-1i32).to_be_bytes());
            return;
        }
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        match self {
            Col::Bool(a) => out.push(u8::from(a.value(i))),
            Col::I16(a) => out.extend_from_slice(&a.value(i).to_be_bytes()),
            Col::I32(a) => out.extend_from_slice(&a.value(i).to_be_bytes()),
            Col::I64(a) => out.extend_from_slice(&a.value(i).to_be_bytes()),
            Col::F32(a) => out.extend_from_slice(&a.value(i).to_be_bytes()),
            Col::F64(a) => out.extend_from_slice(&a.value(i).to_be_bytes()),
            Col::Dec128(a, s) => numeric(&a.value(i).to_string(), *s, out),
            Col::Dec256(a, s) => numeric(&a.value(i).to_string(), *s, out),
            Col::Text(a) => out.extend_from_slice(a.value(i).as_bytes()),
            Col::Bytea(a) => out.extend_from_slice(a.value(i)),
            // PostgreSQL's -infinity/infinity are i32::MIN/MAX days and i64::MIN/MAX microseconds
            // in binary COPY, and the PostgreSQL source exports them as those same values: they
            // stay as they are, so infinities load back as infinities.
            Col::Date(a) => {
                let days = match a.value(i) {
                    d @ (i32::MIN | i32::MAX) => d,
                    d => (i64::from(d) - PG_EPOCH_DAYS).clamp(i64::from(i32::MIN) + 1, i64::from(i32::MAX) - 1) as i32,
                };
                out.extend_from_slice(&days.to_be_bytes());
            }
            Col::Time(a) => out.extend_from_slice(&a.value(i).to_be_bytes()),
            Col::Timestamp(a) => {
                let micros = match a.value(i) {
                    m @ (i64::MIN | i64::MAX) => m,
                    m => m.saturating_sub(PG_EPOCH_MICROS).clamp(i64::MIN + 1, i64::MAX - 1),
                };
                out.extend_from_slice(&micros.to_be_bytes());
            }
            Col::Interval(a) => {
                let v = a.value(i);
                out.extend_from_slice(&(v.nanoseconds / 1000).to_be_bytes());
                out.extend_from_slice(&v.days.to_be_bytes());
                out.extend_from_slice(&v.months.to_be_bytes());
            }
            Col::List(a, values, oid) => {
                let offsets = a.value_offsets();
                let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
                let n = end - start;
                let has_nulls = (start..end).any(|j| values.is_null(j));
                out.extend_from_slice(&i32::from(n > 0).to_be_bytes());
                out.extend_from_slice(&i32::from(has_nulls).to_be_bytes());
                out.extend_from_slice(&oid.to_be_bytes());
                if n > 0 {
                    out.extend_from_slice(&(n as i32).to_be_bytes());
                    out.extend_from_slice(&1i32.to_be_bytes());
                }
                for j in start..end {
                    values.write(j, out);
                }
            }
        }
        let len = (out.len() - at - 4) as i32;
        out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
}

/// PostgreSQL's binary `numeric` from an unscaled integer's decimal digits and a scale.
fn numeric(unscaled: &str, scale: i8, out: &mut Vec<u8>) {
    let (negative, digits) = match unscaled.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, unscaled),
    };
    let scale = usize::from(scale.max(0).unsigned_abs());
    let mut digits = digits.to_owned();
    if digits.len() <= scale {
        digits = format!("{}{digits}", "0".repeat(scale + 1 - digits.len()));
    }
    let (int_part, frac_part) = digits.split_at(digits.len() - scale);
    let int_pad = (4 - int_part.len() % 4) % 4;
    let int_part = format!("{}{int_part}", "0".repeat(int_pad));
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let frac_part = format!("{frac_part}{}", "0".repeat(frac_pad));
    let group = |s: &str| s.parse::<i16>().unwrap_or(0);
    let mut groups: Vec<i16> = int_part
        .as_bytes()
        .chunks(4)
        .chain(frac_part.as_bytes().chunks(4))
        .map(|c| group(std::str::from_utf8(c).unwrap_or("0")))
        .collect();
    let mut weight = (int_part.len() / 4) as i16 - 1;
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= leading as i16;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let sign: u16 = if negative && !groups.is_empty() { 0x4000 } else { 0 };
    out.extend_from_slice(&(groups.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(scale as u16).to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn num(unscaled: &str, scale: i8) -> Vec<i16> {
        let mut out = Vec::new();
        numeric(unscaled, scale, &mut out);
        out.chunks(2).map(|c| i16::from_be_bytes([c[0], c[1]])).collect()
    }

    #[test]
    fn numerics_in_base_10000() {
        // ndigits, weight, sign, dscale, digits...
        assert_eq!(num("12345", 2), vec![2, 0, 0, 2, 123, 4500]);
        assert_eq!(num("-12345", 2), vec![2, 0, 0x4000, 2, 123, 4500]);
        assert_eq!(num("0", 2), vec![0, 0, 0, 2]);
        assert_eq!(num("5", 4), vec![1, -1, 0, 4, 5]);
        assert_eq!(num("100000000", 0), vec![1, 2, 0, 0, 1]);
        assert_eq!(num("18446744073709551615", 0), vec![5, 4, 0, 0, 1844, 6744, 737, 955, 1615]);
    }

    #[test]
    fn portable_types_map_to_format_type_spellings() {
        let schema: Vec<ColumnSchema> = [
            ("a", "int8"),
            ("b", "uint32"),
            ("c", "uint64"),
            ("d", "decimal(18,2)"),
            ("e", "timestamptz(ns)"),
            ("f", "list<string>"),
            ("g", "time(ms)"),
            ("h", "interval"),
            ("i", "float32"),
        ]
        .iter()
        .map(|(n, t)| ColumnSchema { name: (*n).into(), data_type: (*t).into(), nullable: true })
        .collect();
        let types: Vec<String> = pg_columns("t", &schema).unwrap().into_iter().map(|c| c.pg_type).collect();
        assert_eq!(
            types,
            [
                "smallint",
                "bigint",
                "numeric(20,0)",
                "numeric(18,2)",
                "timestamp with time zone",
                "text[]",
                "time without time zone",
                "interval",
                "real"
            ]
        );
        let nested = [ColumnSchema { name: "x".into(), data_type: "list<list<int64>>".into(), nullable: true }];
        assert!(pg_columns("t", &nested).unwrap_err().to_string().contains("no PostgreSQL mapping"));
    }
}
