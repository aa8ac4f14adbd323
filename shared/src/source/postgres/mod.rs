//! The PostgreSQL source: one table (or one SELECT) per configured table, filtered to the
//! destination's tenant, read with `COPY (...) TO STDOUT (FORMAT binary)` and decoded
//! straight into Arrow record batches of bounded size.
//!
//! How a slice is read:
//! 1. A connection opens a `REPEATABLE READ READ ONLY` transaction that imports the
//!    source's exported snapshot (see Consistency), so a slice never writes and every slice
//!    sees the same data.
//! 2. The tenant value becomes a quoted literal ([`sql::literal`], PostgreSQL's own
//!    `quote_literal` rules), and before it is used the server confirms, with the value
//!    sent as a bound parameter, that the literal is that exact value. COPY takes no bind
//!    parameters; the literal also lets the planner use the tenant column's statistics.
//!    Every identifier (schema, table, columns, tenant column, slice key) is quoted
//!    ([`sql::ident`]); nothing from a config or request reaches SQL any other way.
//! 3. The SELECT is prepared first: PostgreSQL describes its columns (type, modifier,
//!    NOT NULL), so a missing column or an unsupported type fails here, before any file is
//!    written, naming table, column and type ([`types`] has the mapping).
//! 4. `COPY (SELECT ...) TO STDOUT (FORMAT binary)` streams rows into the decoder
//!    ([`decode`]), which hands out a batch every `max_rows` rows or `max_bytes` bytes.
//!
//! Slices ([`slices`]): planned once, by the dump step, each task carrying its exact bounds:
//! ranges of a `slice_key` (else of the table's single-column primary key when slices are
//! read in separate snapshots, as deployed), or `ctid` page ranges of a plain table when
//! every slice imports one exported snapshot (`byob run`). The planner's count comes from
//! PostgreSQL's own row estimate for the tenant (`EXPLAIN`, i.e. `pg_class.reltuples` scaled
//! to the current `pg_relation_size`, times the tenant's selectivity from `pg_stats`) over
//! `target_rows_per_slice`.
//!
//! Consistency: with a shared snapshot (the default, `byob run`), the source opens one more
//! connection on first use, starts a `REPEATABLE READ` transaction and exports its snapshot
//! (`pg_export_snapshot()`), kept open for as long as the source lives; every slice, table
//! and destination read through this source imports it, so a local run is one consistent
//! snapshot of the database. The deployed steps each open their own source without a shared
//! snapshot (`with_shared_snapshot(false)`), closed when the step returns: each slice reads
//! its own snapshot, and the planned key ranges keep slices disjoint: a row whose key is in
//! a planned range and that exists when its slice is read is exported exactly once; a row
//! inserted after the plan is in this run only if its key falls inside a planned range (the
//! last range ends at the largest key at plan time), and a row deleted before its slice is
//! read is not in it. Each slice is internally consistent; slices of one table may see
//! different moments.
//!
//! This source must never interpolate a value into SQL unquoted, never hold a whole table
//! in memory, never yield a row whose tenant column differs from the request, and never
//! put a password or a full connection URL into an error or a log line.

mod connect;
mod decode;
mod slices;
mod sql;
mod types;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema};
use futures::{StreamExt, TryStreamExt, stream};
use tokio::sync::OnceCell;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

pub use connect::Connector;
use connect::{ConnectSpec, RedactedUrl};
use decode::BatchDecoder;
pub use decode::{BatchLimits, DecodeError};
use slices::KeyKind;
use types::SourceColumn;

use super::{BatchStream, Bounds, Source, TableRequest, TableStream};
use crate::config::{self, TableConfig};
use crate::increment::HighWater;
use crate::pg::pg_message;
use crate::{Error, Result};

/// Rows per batch unless [`PgSource::with_batch_limits`] says otherwise.
pub const DEFAULT_BATCH_ROWS: usize = 16_384;
/// Field bytes per batch unless [`PgSource::with_batch_limits`] says otherwise.
pub const DEFAULT_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Why a PostgreSQL table could not be read. Carried as the `source` of
/// [`Error::Source`], whose `table` names the table and `location` the server
/// (`postgres://user@host:port/dbname`, never a password).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The connection settings are unusable.
    #[error("connection settings: {0}")]
    Settings(String),
    /// TLS could not be set up.
    #[error("TLS: {0}")]
    Tls(String),
    /// The connection secret could not be read.
    #[error("secret {id:?}: {reason}")]
    Secret {
        /// The secret's ARN or name.
        id: String,
        /// Why it could not be used.
        reason: String,
        /// Whether reading it again may succeed (throttling, a timeout), as the AWS side said.
        retryable: bool,
    },
    /// Connecting (or authenticating) failed. (PostgreSQL's error is shown in the message,
    /// with its causes, rather than chained as a `source`, so it is not printed twice.)
    #[error("cannot connect: {}", pg_message(.0))]
    Connect(tokio_postgres::Error),
    /// A statement failed.
    #[error("{what}: {}", pg_message(error))]
    Query {
        /// What was being done.
        what: String,
        /// PostgreSQL's error (`error.code()` is its SQLSTATE).
        error: tokio_postgres::Error,
    },
    /// The table (or view) does not exist, or this user cannot see it.
    #[error("relation {relation} does not exist or is not visible to this user ({})", pg_message(error))]
    MissingTable {
        /// The quoted, schema-qualified name that was looked up.
        relation: String,
        /// PostgreSQL's error.
        error: tokio_postgres::Error,
    },
    /// A column's type has no Arrow mapping.
    #[error(
        "column {column:?} has type {type_name}, which byob cannot export; select it cast to a supported type in the table's query (e.g. {column}::text)"
    )]
    UnsupportedType {
        /// The column.
        column: String,
        /// Its PostgreSQL type.
        type_name: String,
    },
    /// Two output columns have the same name.
    #[error("column {column:?} appears twice in the output; select each column once (alias duplicates in the query)")]
    DuplicateColumn {
        /// The repeated name.
        column: String,
    },
    /// The slice key cannot cut ranges.
    #[error(
        "slice_key {column:?} has type {type_name}; a slice key is a smallint, integer, bigint, timestamp, timestamptz or date column"
    )]
    SliceKey {
        /// The slice key.
        column: String,
        /// Its type.
        type_name: String,
    },
    /// The watermark column cannot be one.
    #[error(
        "watermark {column:?} has type {type_name}; a watermark is a smallint, integer, bigint, timestamp, timestamptz or date column"
    )]
    Watermark {
        /// The watermark column.
        column: String,
        /// Its type.
        type_name: String,
    },
    /// An identifier or value cannot be sent.
    #[error("{0}")]
    Identifier(String),
    /// The planned bounds cannot be read here (not planned by a PostgreSQL source, a key that
    /// is not the table's slice key, pages cut in another snapshot).
    #[error("planned bounds: {0}")]
    Bounds(String),
    /// The COPY stream could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl PostgresError {
    /// Whether reading the table again may succeed: a connection or statement that failed
    /// for a transient reason ([`crate::pg::is_transient`]), or a secret that could not be read
    /// for one. Settings, TLS setup, a missing table, an unsupported or repeated column, a bad
    /// slice key or identifier, bounds that cannot be read here and undecodable data are
    /// permanent: the same config and data fail the same way.
    pub fn is_retryable(&self) -> bool {
        match self {
            PostgresError::Connect(error) | PostgresError::Query { error, .. } => crate::pg::is_transient(error),
            PostgresError::Secret { retryable, .. } => *retryable,
            PostgresError::Settings(_)
            | PostgresError::Tls(_)
            | PostgresError::MissingTable { .. }
            | PostgresError::UnsupportedType { .. }
            | PostgresError::DuplicateColumn { .. }
            | PostgresError::SliceKey { .. }
            | PostgresError::Watermark { .. }
            | PostgresError::Identifier(_)
            | PostgresError::Bounds(_)
            | PostgresError::Decode(_) => false,
        }
    }
}

/// How one table is read, beyond its name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PgTable {
    /// Read the rows of this SELECT instead of the table `<schema>.<name>`. It is wrapped as
    /// `SELECT ... FROM (<query>) WHERE <tenant filter>`, so it must return the tenant
    /// column.
    pub query: Option<String>,
    /// Cut slices by ranges of this column (integer, timestamp, timestamptz or date)
    /// instead of `ctid` pages; required to split a `query`.
    pub slice_key: Option<String>,
}

impl PgTable {
    /// The settings of a configured table.
    pub fn from_config(table: &TableConfig) -> PgTable {
        PgTable { query: table.query.clone(), slice_key: table.slice_key.clone() }
    }
}

/// Reads tables from one PostgreSQL database. Cheap to clone; clones share the connection
/// settings and the exported snapshot.
#[derive(Clone)]
pub struct PgSource {
    spec: ConnectSpec,
    connector: Arc<OnceCell<Connector>>,
    schema: String,
    tables: BTreeMap<String, PgTable>,
    limits: BatchLimits,
    share_snapshot: bool,
    snapshot: Arc<OnceCell<Option<Snapshot>>>,
}

/// The connection that holds the exported snapshot open for the source's lifetime.
struct Snapshot {
    id: String,
    _holder: Client,
}

impl fmt::Debug for PgSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSource")
            .field("server", &self.location())
            .field("schema", &self.schema)
            .field("tables", &self.tables)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl PgSource {
    /// A source reading through `connector`, tables in schema `public`.
    pub fn new(connector: Connector) -> PgSource {
        PgSource::with_spec(ConnectSpec::Ready(connector), "public")
    }

    fn with_spec(spec: ConnectSpec, schema: &str) -> PgSource {
        PgSource {
            spec,
            connector: Arc::default(),
            schema: schema.to_owned(),
            tables: BTreeMap::new(),
            limits: BatchLimits { max_rows: DEFAULT_BATCH_ROWS, max_bytes: DEFAULT_BATCH_BYTES },
            share_snapshot: true,
            snapshot: Arc::default(),
        }
    }

    /// The source a validated config describes. Nothing connects until the first slice is
    /// planned or opened; a secret is read then.
    pub fn from_config(source: &config::PostgresSource, tables: &[TableConfig], aws: &config::AwsConfig) -> PgSource {
        let spec = match (&source.url, &source.secret) {
            (Some(url), _) => match Connector::from_url(url.expose(), source.tls, source.ca_file.as_deref()) {
                Ok(connector) => ConnectSpec::Ready(connector),
                Err(_) => ConnectSpec::Url {
                    url: RedactedUrl(url.expose().to_owned()),
                    tls: source.tls,
                    ca_file: source.ca_file.clone(),
                },
            },
            (None, Some(id)) => ConnectSpec::Secret {
                id: id.clone(),
                tls: source.tls,
                ca_file: source.ca_file.clone(),
                aws: aws.clone(),
            },
            (None, None) => ConnectSpec::Url { url: RedactedUrl(String::new()), tls: None, ca_file: None },
        };
        let mut pg = PgSource::with_spec(spec, &source.schema);
        for table in tables {
            pg = pg.with_table(&table.name, PgTable::from_config(table));
        }
        pg
    }

    /// Reads tables from `schema` (default `public`).
    pub fn with_schema(mut self, schema: &str) -> PgSource {
        self.schema = schema.to_owned();
        self
    }

    /// Reads `table` as `settings` say (a query, a slice key).
    pub fn with_table(mut self, table: &str, settings: PgTable) -> PgSource {
        self.tables.insert(table.to_owned(), settings);
        self
    }

    /// Bounds every batch (default [`DEFAULT_BATCH_ROWS`] rows, [`DEFAULT_BATCH_BYTES`]).
    pub fn with_batch_limits(mut self, limits: BatchLimits) -> PgSource {
        self.limits = limits;
        self
    }

    /// Whether every slice imports one exported snapshot (default true: `byob run`). The
    /// deployed steps, each its own source, say false: then no page slices are planned.
    pub fn with_shared_snapshot(mut self, share: bool) -> PgSource {
        self.share_snapshot = share;
        self
    }

    /// The server, named without its password.
    pub fn location(&self) -> String {
        match (self.connector.get(), &self.spec) {
            (Some(c), _) | (None, ConnectSpec::Ready(c)) => c.name().to_owned(),
            (None, ConnectSpec::Url { .. }) => "postgres (invalid URL)".to_owned(),
            (None, ConnectSpec::Secret { id, .. }) => format!("postgres (secret {id})"),
        }
    }

    fn fail(&self, table: &str, error: PostgresError) -> Error {
        Error::Source { table: table.to_owned(), location: self.location(), source: Box::new(error) }
    }

    async fn connector(&self) -> std::result::Result<&Connector, PostgresError> {
        self.connector
            .get_or_try_init(|| async {
                match &self.spec {
                    ConnectSpec::Ready(c) => Ok(c.clone()),
                    ConnectSpec::Url { url, tls, ca_file } => Connector::from_url(&url.0, *tls, ca_file.as_deref())
                        .map_err(|e| match e {
                            PostgresError::Settings(m) => {
                                PostgresError::Settings(crate::redact::redact_url(&m, &url.0))
                            }
                            other => other,
                        }),
                    ConnectSpec::Secret { id, tls, ca_file, aws } => {
                        connector_from_secret(id, *tls, ca_file.as_deref(), aws).await
                    }
                }
            })
            .await
    }

    /// The id of the snapshot every slice imports (`pg_export_snapshot()`), exporting it on
    /// first use; `None` when snapshots are not shared or the server refused to export one.
    pub async fn snapshot_id(&self) -> Result<Option<String>> {
        self.snapshot_inner().await.map_err(|e| self.fail("", e))
    }

    async fn snapshot_inner(&self) -> std::result::Result<Option<String>, PostgresError> {
        if !self.share_snapshot {
            return Ok(None);
        }
        let snapshot = self
            .snapshot
            .get_or_try_init(|| async {
                let client = self.connector().await?.connect().await?;
                // This transaction idles for the whole run by design.
                client
                    .batch_execute(
                        "SET idle_in_transaction_session_timeout = 0; BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                    )
                    .await
                    .map_err(|e| query_error("starting the snapshot transaction", e))?;
                match client.query_one("SELECT pg_export_snapshot()", &[]).await {
                    Ok(row) => {
                        let id: String = row.try_get(0).map_err(|e| query_error("reading the snapshot id", e))?;
                        tracing::debug!(snapshot = %id, "exported a snapshot for every slice");
                        Ok::<_, PostgresError>(Some(Snapshot { id, _holder: client }))
                    }
                    Err(e) => {
                        tracing::warn!(
                            error = %e,
                            "the server did not export a snapshot: each slice reads its own snapshot"
                        );
                        Ok(None)
                    }
                }
            })
            .await?;
        Ok(snapshot.as_ref().map(|s| s.id.clone()))
    }

    /// A connection inside a read-only transaction on the shared snapshot.
    async fn session(&self) -> std::result::Result<Client, PostgresError> {
        let snapshot = self.snapshot_inner().await?;
        let client = self.connector().await?.connect().await?;
        // A slice is sized to finish in time by the planner; a generic statement timeout
        // meant for application queries must not cut a long COPY short.
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL statement_timeout = 0")
            .await
            .map_err(|e| query_error("starting a read-only transaction", e))?;
        if let Some(id) = snapshot {
            client
                .batch_execute(&format!("SET TRANSACTION SNAPSHOT {}", sql::literal(&id)?))
                .await
                .map_err(|e| query_error("importing the run's snapshot", e))?;
        }
        Ok(client)
    }

    /// What a request reads from, and the tenant filter, checked with the server.
    async fn prepare_read(&self, client: &Client, request: &TableRequest) -> std::result::Result<Read, PostgresError> {
        let settings = self.tables.get(&request.table).cloned().unwrap_or_default();
        let (from, relation) = match &settings.query {
            Some(query) => {
                let query = query.trim().trim_end_matches(';').trim_end();
                (format!("(\n{query}\n) AS \"byob_query\""), None)
            }
            None => {
                let relation = format!("{}.{}", sql::ident(&self.schema)?, sql::ident(&request.table)?);
                (relation.clone(), Some(relation))
            }
        };
        let tenant = sql::literal(&request.tenant)?;
        // The literal must be exactly the value the parameter carries: a quoting bug can
        // then never turn into a wider filter.
        let same: bool = client
            .query_one(&format!("SELECT {tenant} = $1::text"), &[&request.tenant])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| query_error("checking the tenant value", e))?;
        if !same {
            return Err(PostgresError::Identifier("the tenant value does not survive quoting".into()));
        }
        let filter = format!("{} = {tenant}", sql::ident(&request.tenant_column)?);
        let mut read = Read { settings, from, relation, filter };
        if let Some(window) = &request.window {
            // The window narrows every statement of the read (estimates, key ranges, COPY).
            let (quoted, kind) = self.watermark(client, &read, &window.column).await?;
            let condition = slices::window_condition(&quoted, kind, window).ok_or_else(|| {
                PostgresError::Bounds(format!(
                    "the plan's range of watermark {:?} does not fit its type (planned on another column type?); \
                     plan the run again",
                    window.column
                ))
            })?;
            read.filter = format!("{} AND {condition}", read.filter);
        }
        Ok(read)
    }

    /// The quoted watermark column of a read and its kind.
    async fn watermark(
        &self,
        client: &Client,
        read: &Read,
        column: &str,
    ) -> std::result::Result<(String, KeyKind), PostgresError> {
        let quoted = sql::ident(column)?;
        match self.key_kind(client, read, column, &quoted).await {
            Ok(kind) => Ok((quoted, kind)),
            Err(PostgresError::SliceKey { column, type_name }) => Err(PostgresError::Watermark { column, type_name }),
            Err(e) => Err(e),
        }
    }

    /// The tenant's largest watermark and the columns the request exports.
    async fn high_water_inner(
        &self,
        request: &TableRequest,
        column: &str,
    ) -> std::result::Result<HighWater, PostgresError> {
        let client = self.session().await?;
        let request = TableRequest { window: None, ..request.clone() };
        let read = self.prepare_read(&client, &request).await?;
        let (quoted, kind) = self.watermark(&client, &read, column).await?;
        let row = client
            .query_one(&kind.min_max_sql(&quoted, &read.from, &read.filter), &[])
            .await
            .map_err(|e| describe_error(&read, "reading the watermark's high-water", e))?;
        let max: Option<i64> = row.try_get(1).map_err(|e| query_error("reading the watermark's high-water", e))?;
        let max = match max {
            None => None,
            Some(value) => Some(kind.watermark(value).ok_or_else(|| PostgresError::Watermark {
                column: column.to_owned(),
                type_name: format!("a value ({value}) outside the years 1677-2262 watermarks cover"),
            })?),
        };
        let statement = client
            .prepare(&format!("SELECT {} FROM {} LIMIT 0", select_list(&request)?, read.from))
            .await
            .map_err(|e| describe_error(&read, "resolving the exported columns", e))?;
        let fields: Vec<Field> = self
            .describe(&client, statement.columns())
            .await?
            .iter()
            .map(|c| Field::new(&c.name, c.kind.data_type(), c.nullable))
            .collect();
        let columns = crate::schema::describe(&Schema::new(fields))
            .map_err(|reason| PostgresError::Bounds(format!("describing the exported columns: {reason}")))?;
        Ok(HighWater { kind: kind.watermark_kind(), max, columns })
    }

    /// The relation's kind and current size in pages, or `None` for anything that cannot be
    /// cut by `ctid` (views, partitioned tables, foreign tables).
    async fn heap_pages(&self, client: &Client, relation: &str) -> std::result::Result<Option<u64>, PostgresError> {
        let row = client
            .query_one(
                "SELECT c.relkind::text, pg_relation_size(c.oid) / current_setting('block_size')::int8 \
                 FROM pg_class c WHERE c.oid = $1::text::regclass",
                &[&relation],
            )
            .await
            .map_err(|e| relation_error(relation, "reading the table's size", e))?;
        let kind: String = row.try_get(0).map_err(|e| query_error("reading the table's kind", e))?;
        let pages: i64 = row.try_get(1).map_err(|e| query_error("reading the table's size", e))?;
        Ok(matches!(kind.as_str(), "r" | "m").then_some(u64::try_from(pages).unwrap_or(0)))
    }

    /// The kind of the key column `quoted` of the read (its type, checked by the server).
    async fn key_kind(
        &self,
        client: &Client,
        read: &Read,
        column: &str,
        quoted: &str,
    ) -> std::result::Result<KeyKind, PostgresError> {
        let statement = client
            .prepare(&format!("SELECT {quoted} FROM {} LIMIT 0", read.from))
            .await
            .map_err(|e| describe_error(read, "reading the slice key's type", e))?;
        let ty = statement.columns().first().map(|c| c.type_().clone());
        ty.as_ref().and_then(KeyKind::of).ok_or_else(|| PostgresError::SliceKey {
            column: column.to_owned(),
            type_name: ty.as_ref().map_or_else(|| "unknown".to_owned(), |t| types::display_type(t, -1)),
        })
    }

    /// The table's primary key when it is one column that can cut key ranges.
    async fn primary_key(
        &self,
        client: &Client,
        read: &Read,
        relation: &str,
    ) -> std::result::Result<Option<String>, PostgresError> {
        let row = client
            .query_opt(
                "SELECT a.attname::text FROM pg_index i \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
                 WHERE i.indrelid = $1::text::regclass AND i.indisprimary AND i.indnkeyatts = 1",
                &[&relation],
            )
            .await
            .map_err(|e| relation_error(relation, "reading the primary key", e))?;
        let Some(row) = row else { return Ok(None) };
        let column: String = row.try_get(0).map_err(|e| query_error("reading the primary key", e))?;
        let usable = self.key_kind(client, read, &column, &sql::ident(&column)?).await.is_ok();
        Ok(usable.then_some(column))
    }

    /// The bounds of `count` slices of the read, cut now.
    async fn cut(
        &self,
        client: &Client,
        request: &TableRequest,
        read: &Read,
        count: u32,
    ) -> std::result::Result<Vec<Bounds>, PostgresError> {
        let key = match (&read.settings.slice_key, &read.relation) {
            (Some(column), _) => Some(column.clone()),
            (None, Some(relation)) if !self.share_snapshot => self.primary_key(client, read, relation).await?,
            _ => None,
        };
        if let Some(column) = key {
            let quoted = sql::ident(&column)?;
            let kind = self.key_kind(client, read, &column, &quoted).await?;
            let row = client
                .query_one(&kind.min_max_sql(&quoted, &read.from, &read.filter), &[])
                .await
                .map_err(|e| query_error("reading the slice key's range", e))?;
            let min: Option<i64> = row.try_get(0).map_err(|e| query_error("reading the slice key's range", e))?;
            let max: Option<i64> = row.try_get(1).map_err(|e| query_error("reading the slice key's range", e))?;
            return Ok(match (min, max) {
                (Some(min), Some(max)) => {
                    slices::key_bounds(&column, kind, min, max, count).unwrap_or_else(|| vec![Bounds::Whole])
                }
                _ => vec![Bounds::Whole],
            });
        }
        let (Some(relation), Some(snapshot)) = (&read.relation, self.snapshot_inner().await?) else {
            tracing::warn!(
                table = %request.table,
                "the table has no slice_key and no single-column integer or timestamp primary key, and its slices \
                 would be read in separate snapshots: it exports as one slice; set slice_key to split it"
            );
            return Ok(vec![Bounds::Whole]);
        };
        Ok(match self.heap_pages(client, relation).await? {
            Some(pages) if pages > 0 => slices::page_bounds(pages, count, &snapshot),
            _ => vec![Bounds::Whole],
        })
    }

    /// The WHERE condition of planned `bounds`, checked against this source and table.
    async fn bounds_condition(
        &self,
        client: &Client,
        request: &TableRequest,
        read: &Read,
        bounds: &Bounds,
    ) -> std::result::Result<String, PostgresError> {
        let key = match bounds {
            Bounds::Keys { column, .. } => {
                // The key must be the table's slice key (or, without one, its primary key):
                // a plan never names another column.
                let expected = match (&read.settings.slice_key, &read.relation) {
                    (Some(key), _) => Some(key.clone()),
                    (None, Some(relation)) => self.primary_key(client, read, relation).await?,
                    (None, None) => None,
                };
                if expected.as_ref() != Some(column) {
                    return Err(PostgresError::Bounds(format!(
                        "the plan cut table {:?} by column {column:?}, which is not its slice key or primary key",
                        request.table
                    )));
                }
                let quoted = sql::ident(column)?;
                let kind = self.key_kind(client, read, column, &quoted).await?;
                Some((quoted, kind))
            }
            Bounds::Pages { snapshot, .. } => {
                let ours = self.snapshot_inner().await?;
                if ours.as_deref() != Some(snapshot.as_str()) {
                    return Err(PostgresError::Bounds(format!(
                        "page ranges were cut in snapshot {snapshot}, and this read is in {}: page ranges are exact \
                         only inside the snapshot they were cut in; plan the run again",
                        ours.as_deref().unwrap_or("a snapshot of its own")
                    )));
                }
                None
            }
            _ => None,
        };
        slices::condition(bounds, key.as_ref().map(|(q, k)| (q.as_str(), *k)))
            .ok_or_else(|| PostgresError::Bounds(format!("{bounds:?} were not planned by a PostgreSQL source")))
    }

    /// Names, types and nullability of a prepared statement's columns; unsupported types
    /// and duplicate names are errors.
    async fn describe(
        &self,
        client: &Client,
        columns: &[tokio_postgres::Column],
    ) -> std::result::Result<Vec<SourceColumn>, PostgresError> {
        let mut not_null: HashSet<(u32, i16)> = HashSet::new();
        let tables: HashSet<u32> = columns.iter().filter_map(|c| c.table_oid()).filter(|&oid| oid != 0).collect();
        for oid in tables {
            let rows = client
                .query("SELECT attnum FROM pg_attribute WHERE attrelid = $1 AND attnotnull AND attnum > 0", &[&oid])
                .await
                .map_err(|e| query_error("reading NOT NULL constraints", e))?;
            for row in rows {
                let attnum: i16 = row.try_get(0).map_err(|e| query_error("reading NOT NULL constraints", e))?;
                not_null.insert((oid, attnum));
            }
        }
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(columns.len());
        for column in columns {
            let type_name = types::display_type(column.type_(), column.type_modifier());
            let kind = types::column_kind(column.type_(), column.type_modifier()).ok_or_else(|| {
                PostgresError::UnsupportedType { column: column.name().to_owned(), type_name: type_name.clone() }
            })?;
            if !seen.insert(column.name().to_owned()) {
                return Err(PostgresError::DuplicateColumn { column: column.name().to_owned() });
            }
            let nullable = match (column.table_oid(), column.column_id()) {
                (Some(oid), Some(attnum)) => !not_null.contains(&(oid, attnum)),
                _ => true,
            };
            out.push(SourceColumn { name: column.name().to_owned(), kind, type_name, nullable });
        }
        Ok(out)
    }

    async fn plan_inner(&self, request: &TableRequest, target: u64) -> std::result::Result<Vec<Bounds>, PostgresError> {
        let client = self.session().await?;
        let read = self.prepare_read(&client, request).await?;
        let limit = match (&read.settings.slice_key, &read.relation) {
            (Some(_), _) => u64::from(slices::MAX_SLICES),
            (None, Some(relation)) => match self.heap_pages(&client, relation).await? {
                Some(pages) if pages > 1 => pages,
                _ => return Ok(vec![Bounds::Whole]),
            },
            (None, None) => return Ok(vec![Bounds::Whole]),
        };
        let plan = client
            .query(&format!("EXPLAIN SELECT 1 FROM {} WHERE {}", read.from, read.filter), &[])
            .await
            .map_err(|e| describe_error(&read, "estimating the tenant's rows", e))?;
        let first: String = plan
            .first()
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(|e| query_error("estimating the tenant's rows", e))?
            .unwrap_or_default();
        let count = slices::slice_count(slices::explain_rows(&first)?, target, limit);
        if count <= 1 {
            return Ok(vec![Bounds::Whole]);
        }
        self.cut(&client, request, &read, count).await
    }

    async fn open_inner(
        &self,
        request: &TableRequest,
        bounds: &Bounds,
    ) -> std::result::Result<TableStream, PostgresError> {
        let client = self.session().await?;
        let read = self.prepare_read(&client, request).await?;
        let condition = self.bounds_condition(&client, request, &read, bounds).await?;
        let select_list = select_list(request)?;
        let select = format!("SELECT {select_list} FROM {} WHERE {} AND {}", read.from, read.filter, condition);
        let statement =
            client.prepare(&select).await.map_err(|e| describe_error(&read, "resolving the exported columns", e))?;
        let columns = self.describe(&client, statement.columns()).await?;
        let schema = Arc::new(Schema::new(
            columns.iter().map(|c| Field::new(&c.name, c.kind.data_type(), c.nullable)).collect::<Vec<_>>(),
        ));
        let copy = client
            .copy_out(&format!("COPY ({select}) TO STDOUT (FORMAT binary)"))
            .await
            .map_err(|e| query_error("starting COPY", e))?;
        let decoder = BatchDecoder::new(columns, schema.clone(), self.limits);
        let state = CopyState { _client: client, copy: Box::pin(copy), decoder, done: false };
        let (table, location) = (request.table.clone(), self.location());
        let batches: BatchStream = stream::try_unfold(state, |mut state| async move {
            loop {
                if let Some(batch) = state.decoder.next_batch() {
                    return Ok(Some((batch, state)));
                }
                if state.done {
                    return Ok(None);
                }
                match state.copy.next().await {
                    Some(chunk) => state.decoder.feed(chunk.map_err(|e| query_error("reading the COPY stream", e))?)?,
                    None => {
                        state.done = true;
                        state.decoder.finish()?;
                    }
                }
            }
        })
        .map_err(move |e: PostgresError| Error::Source {
            table: table.clone(),
            location: location.clone(),
            source: Box::new(e),
        })
        .boxed();
        Ok(TableStream { schema, batches })
    }
}

/// The quoted columns `request` exports (`*` without a list).
fn select_list(request: &TableRequest) -> std::result::Result<String, PostgresError> {
    let Some(columns) = &request.columns else { return Ok("*".to_owned()) };
    let mut seen = HashSet::new();
    let mut quoted = Vec::with_capacity(columns.len());
    for column in columns {
        if !seen.insert(column.as_str()) {
            return Err(PostgresError::DuplicateColumn { column: column.clone() });
        }
        quoted.push(sql::ident(column)?);
    }
    Ok(quoted.join(", "))
}

/// One slice's COPY in progress.
struct CopyState {
    /// Keeps the connection (and its transaction) open while the stream is read.
    _client: Client,
    copy: std::pin::Pin<Box<tokio_postgres::CopyOutStream>>,
    decoder: BatchDecoder,
    done: bool,
}

/// What one request reads from.
struct Read {
    settings: PgTable,
    /// `"schema"."table"` or `(<query>) AS "byob_query"`.
    from: String,
    /// The quoted relation, when reading a table.
    relation: Option<String>,
    /// `"tenant_column" = '<tenant>'`.
    filter: String,
}

fn query_error(what: &str, error: tokio_postgres::Error) -> PostgresError {
    PostgresError::Query { what: what.to_owned(), error }
}

fn relation_error(relation: &str, what: &str, source: tokio_postgres::Error) -> PostgresError {
    if source.code() == Some(&SqlState::UNDEFINED_TABLE) {
        PostgresError::MissingTable { relation: relation.to_owned(), error: source }
    } else {
        query_error(what, source)
    }
}

fn describe_error(read: &Read, what: &str, source: tokio_postgres::Error) -> PostgresError {
    match &read.relation {
        Some(relation) => relation_error(relation, what, source),
        None => query_error(&format!("{what} of the table's query"), source),
    }
}

/// Reads an RDS-format secret from AWS Secrets Manager (through `aws.endpoint_url` and
/// `aws.region` when set) and makes its connector.
async fn connector_from_secret(
    id: &str,
    tls: Option<config::TlsMode>,
    ca_file: Option<&std::path::Path>,
    aws: &config::AwsConfig,
) -> std::result::Result<Connector, PostgresError> {
    let sdk = crate::aws::sdk_config(aws).await;
    // AwsError's text names the secret and the problem, never the secret's value.
    let secret = crate::aws::secrets::read_with(&sdk, id).await.map_err(|e| PostgresError::Secret {
        id: id.to_owned(),
        reason: e.to_string(),
        retryable: e.is_retryable(),
    })?;
    Connector::from_secret(&secret, tls, ca_file)
}

#[async_trait::async_trait]
impl Source for PgSource {
    /// PostgreSQL's estimate of the tenant's rows over `target_rows_per_slice` slices, at
    /// least 1; one for views, partitioned tables, queries without a `slice_key`, and tables
    /// that have no key when slices are read in separate snapshots. Each slice's bounds are
    /// cut now, in the planner's transaction.
    async fn plan(&self, request: &TableRequest, target_rows_per_slice: u64) -> Result<Vec<Bounds>> {
        self.plan_inner(request, target_rows_per_slice).await.map_err(|e| self.fail(&request.table, e))
    }

    async fn high_water(&self, request: &TableRequest, column: &str) -> Result<HighWater> {
        self.high_water_inner(request, column).await.map_err(|e| self.fail(&request.table, e))
    }

    async fn open(&self, request: &TableRequest, bounds: &Bounds) -> Result<TableStream> {
        self.open_inner(request, bounds).await.map_err(|e| self.fail(&request.table, e))
    }
}
