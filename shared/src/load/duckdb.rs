//! The DuckDB target: an embedded database file, loaded from Arrow batches, swapped in one
//! transaction, exactly once. The CLI's default (`byob load --target warehouse.duckdb`, the
//! demo); not built into the Lambda functions (feature `duckdb`).
//!
//! The same contract as the PostgreSQL target ([`super::postgres`]):
//!
//! 1. An exclusive lock on `<file>.byob-lock` (an OS file lock, released when the process
//!    dies) serializes every byob loader of the file; DuckDB's own lock keeps other writers
//!    out while one is open.
//! 2. Under the lock, `byob_load_history` decides (same receipt once, older runs skipped, an
//!    incremental table that does not continue the loaded range refused).
//! 3. Each table is appended from Arrow batches into `byob_staging.<table>` (recreated); the
//!    row count must equal the receipt's.
//! 4. One transaction then, per table: creates or evolves the live table (new columns added;
//!    a changed type is an error naming the column, nothing applied), replaces its rows with
//!    the staged ones (an incremental table: merges them, as `Merge` in `load` says), drops the
//!    staging table; records the load and each table's loaded range; commits.
//!
//! A crash before the commit leaves the live tables as they were (DuckDB's write-ahead log
//! replays committed transactions only); the next delivery starts over.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, IntervalUnit, Schema, TimeUnit};
use duckdb::Connection;

use super::{
    LoadError, LoadOutcome, LoadReport, LoadedRange, Merge, ReceiptInfo, SwapNames, Target, VerifiedReceipt, read,
};
use crate::format::Format;
use crate::receipt::TableReceipt;
use crate::schema::{ColumnSchema, parse_type_name};

use super::postgres::{HISTORY_TABLE, MANAGED_TABLE, STAGING_SCHEMA, ident};

/// Loads receipts into one DuckDB database file and schema.
#[derive(Clone, Debug)]
pub struct DuckDbTarget {
    path: PathBuf,
    name: String,
    schema: String,
    fail_before_swap: bool,
}

/// A column as DuckDB stores it.
#[derive(Clone, Debug)]
pub struct DuckColumn {
    /// The column name.
    pub name: String,
    /// The portable type name from the receipt.
    pub portable: String,
    /// The type as DuckDB's `information_schema.columns` spells it.
    pub sql_type: String,
    /// Whether nulls are allowed.
    pub nullable: bool,
    arrow: DataType,
}

impl DuckDbTarget {
    /// Loads into schema `main` of the database file at `path` (created if missing).
    pub fn new(path: impl Into<PathBuf>) -> DuckDbTarget {
        let path = path.into();
        let name = format!("duckdb:{}", path.display());
        DuckDbTarget { path, name, schema: "main".into(), fail_before_swap: false }
    }

    /// Loads into `schema` (created if missing) instead of `main`.
    pub fn with_schema(mut self, schema: &str) -> DuckDbTarget {
        self.schema = schema.to_owned();
        self
    }

    /// Test support: stop after staging, before the swap, as a crash there would.
    #[doc(hidden)]
    pub fn failing_before_swap(mut self, fail: bool) -> DuckDbTarget {
        self.fail_before_swap = fail;
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> LoadError {
        LoadError::Target { target: self.name.clone(), reason: format!("{what}: {e}"), retryable: false }
    }

    /// Takes the loader lock (blocking until other loaders of the file are done).
    fn lock(&self) -> Result<File, LoadError> {
        let mut lock_path = self.path.clone().into_os_string();
        lock_path.push(".byob-lock");
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| self.err(&format!("creating {}", parent.display()), e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| self.err(&format!("opening the lock file {}", Path::new(&lock_path).display()), e))?;
        file.lock().map_err(|e| self.err("taking the loader lock", e))?;
        Ok(file)
    }

    fn open(&self) -> Result<Connection, LoadError> {
        Connection::open(&self.path).map_err(|e| LoadError::Target {
            target: self.name.clone(),
            // Another process (a DuckDB shell, say) holding the file is worth retrying.
            retryable: e.to_string().contains("lock"),
            reason: format!("opening the database: {e}"),
        })
    }

    fn history(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(HISTORY_TABLE))
    }

    fn managed(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(MANAGED_TABLE))
    }

    fn ranges(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(super::RANGES_TABLE))
    }

    /// What the file holds of each table with a watermark (empty before the first such load).
    fn loaded_ranges(&self, conn: &Connection) -> Result<HashMap<String, LoadedRange>, LoadError> {
        if !self.table_exists(conn, super::RANGES_TABLE)? {
            return Ok(HashMap::new());
        }
        let what = "reading the loaded ranges";
        let mut statement = conn
            .prepare(&format!("SELECT table_name, run, watermark_column, loaded_to FROM {}", self.ranges()))
            .map_err(|e| self.err(what, e))?;
        let rows = statement
            .query_map([], |r| {
                let name: String = r.get(0)?;
                Ok((name, LoadedRange::from_row(r.get(1)?, r.get(2)?, r.get(3)?)))
            })
            .map_err(|e| self.err(what, e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(what, e))
    }

    /// Inside the swap transaction: the staged rows of `name` into its live table, as its
    /// receipt entry says (replace, merge by key, or replace the range), and its loaded range.
    fn merge(
        &self,
        tx: &duckdb::Transaction<'_>,
        run: &str,
        name: &str,
        table: &TableReceipt,
    ) -> Result<(), LoadError> {
        let SwapNames { live, staging, list } = SwapNames::of(&self.schema, name, table);
        let fail = |e| self.err(&format!("merging into {live}"), e);
        match Merge::of(table) {
            Merge::Replace => tx.execute_batch(&format!("DELETE FROM {live}")).map_err(fail)?,
            Merge::ByKey(keys) => {
                let on: Vec<String> =
                    keys.iter().map(|k| format!("{live}.{k} = {staging}.{k}", k = ident(k))).collect();
                tx.execute_batch(&format!("DELETE FROM {live} USING {staging} WHERE {}", on.join(" AND ")))
                    .map_err(fail)?;
            }
            Merge::ByRange { column, after, through } => {
                let sql_type = duck_columns(name, &table.schema)?
                    .into_iter()
                    .find(|c| c.name == column)
                    .map(|c| c.sql_type)
                    .unwrap_or_else(|| "VARCHAR".to_owned());
                let w = ident(column);
                tx.execute(
                    &format!("DELETE FROM {live} WHERE {w} > CAST(? AS {sql_type}) AND {w} <= CAST(? AS {sql_type})"),
                    [after.as_str(), through.as_str()],
                )
                .map_err(fail)?;
            }
        }
        tx.execute_batch(&format!("INSERT INTO {live} ({list}) SELECT {list} FROM {staging}; DROP TABLE {staging}"))
            .map_err(fail)?;
        let r = self.ranges();
        let recorded = match &table.range {
            Some(range) => tx.execute(
                &format!(
                    "INSERT OR REPLACE INTO {r} (table_name, run, watermark_column, loaded_to) VALUES (?, ?, ?, ?)"
                ),
                duckdb::params![name, run, range.column, super::range_text(range.to)],
            ),
            None => tx.execute(&format!("DELETE FROM {r} WHERE table_name = ?"), [name]),
        };
        recorded.map_err(|e| self.err(&format!("recording the loaded range of {live}"), e))?;
        Ok(())
    }

    fn table_exists(&self, conn: &Connection, name: &str) -> Result<bool, LoadError> {
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                [self.schema.as_str(), name],
                |r| r.get(0),
            )
            .map_err(|e| self.err("reading the catalog", e))?;
        Ok(n > 0)
    }

    /// Under the lock, before anything is staged: every table of the receipt is new or one
    /// this loader created (the registry starts with the tables of earlier loads).
    fn check_managed(&self, conn: &Connection, info: &ReceiptInfo) -> Result<(), LoadError> {
        let m = self.managed();
        if !self.table_exists(conn, MANAGED_TABLE)? {
            conn.execute_batch(&format!(
                "CREATE TABLE {m} (table_name VARCHAR PRIMARY KEY, created_run VARCHAR NOT NULL, \
                   created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now())"
            ))
            .map_err(|e| self.err("creating the managed-table registry", e))?;
            let mut stmt = conn
                .prepare(&format!("SELECT DISTINCT unnest(tables) FROM {}", self.history()))
                .map_err(|e| self.err("adopting the tables of earlier loads", e))?;
            let earlier = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|e| self.err("adopting the tables of earlier loads", e))?;
            for name in earlier {
                if self.table_exists(conn, &name)? {
                    conn.execute(&format!("INSERT INTO {m} (table_name, created_run) VALUES (?, 'adopted')"), [&name])
                        .map_err(|e| self.err("adopting the tables of earlier loads", e))?;
                }
            }
        }
        for name in info.receipt.tables.keys() {
            let managed: i64 = conn
                .query_row(&format!("SELECT count(*) FROM {m} WHERE table_name = ?"), [name.as_str()], |r| r.get(0))
                .map_err(|e| self.err("reading the managed-table registry", e))?;
            if managed == 0 && self.table_exists(conn, name)? {
                let live = format!("{}.{}", ident(&self.schema), ident(name));
                return Err(super::not_managed(name, &live));
            }
        }
        Ok(())
    }

    fn decide(&self, conn: &Connection, info: &ReceiptInfo) -> Result<Option<LoadOutcome>, LoadError> {
        if !self.table_exists(conn, HISTORY_TABLE)? {
            return Ok(None);
        }
        let h = self.history();
        let dup: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {h} WHERE receipt_sha256 = ?"), [info.sha256.as_str()], |r| {
                r.get(0)
            })
            .map_err(|e| self.err("reading the load history", e))?;
        let mut newest = conn
            .prepare(&format!(
                "SELECT run, receipt_timestamp FROM {h} ORDER BY run DESC, receipt_timestamp DESC LIMIT 1"
            ))
            .map_err(|e| self.err("reading the load history", e))?;
        let newest = newest
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.err("reading the load history", e))?
            .next()
            .transpose()
            .map_err(|e| self.err("reading the load history", e))?;
        Ok(super::decide(info, dup > 0, newest))
    }

    fn stage(
        &self,
        conn: &Connection,
        format: &Format,
        name: &str,
        table: &TableReceipt,
        files: &[read::TableFile],
    ) -> Result<u64, LoadError> {
        let staging = format!("{}.{}", ident(STAGING_SCHEMA), ident(name));
        let columns = duck_columns(name, &table.schema)?;
        let ddl: Vec<String> = columns.iter().map(|c| format!("{} {}", ident(&c.name), c.sql_type)).collect();
        conn.execute_batch(&format!("CREATE OR REPLACE TABLE {staging} ({})", ddl.join(", ")))
            .map_err(|e| self.err(&format!("creating {staging}"), e))?;
        let fields: Vec<Field> = columns.iter().map(|c| Field::new(&c.name, c.arrow.clone(), true)).collect();
        let schema = Arc::new(Schema::new(fields));
        let types: Vec<DataType> = columns.iter().map(|c| c.arrow.clone()).collect();
        let mut appender =
            conn.appender_to_db(name, STAGING_SCHEMA).map_err(|e| self.err(&format!("appending to {staging}"), e))?;
        let rows = read::for_each_batch(name, format, &table.schema, &types, files, |arrays, _| {
            let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| LoadError::Decode {
                table: name.to_owned(),
                key: String::new(),
                reason: e.to_string(),
            })?;
            let batch = to_duckdb_batch(batch).map_err(|reason| LoadError::Decode {
                table: name.to_owned(),
                key: String::new(),
                reason,
            })?;
            appender.append_record_batch(batch).map_err(|e| self.err(&format!("appending to {staging}"), e))
        })?;
        appender.flush().map_err(|e| self.err(&format!("appending to {staging}"), e))?;
        drop(appender);
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
    fn evolve(&self, conn: &Connection, run: &str, name: &str, table: &TableReceipt) -> Result<(), LoadError> {
        let live = format!("{}.{}", ident(&self.schema), ident(name));
        let columns = duck_columns(name, &table.schema)?;
        let mut stmt = conn
            .prepare(
                "SELECT column_name, data_type FROM information_schema.columns \
                 WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            )
            .map_err(|e| self.err(&format!("reading the columns of {live}"), e))?;
        let existing = stmt
            .query_map([self.schema.as_str(), name], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(&format!("reading the columns of {live}"), e))?;
        if existing.is_empty() {
            let ddl: Vec<String> = columns
                .iter()
                .map(|c| format!("{} {}{}", ident(&c.name), c.sql_type, if c.nullable { "" } else { " NOT NULL" }))
                .collect();
            conn.execute_batch(&format!("CREATE TABLE {live} ({})", ddl.join(", ")))
                .map_err(|e| self.err(&format!("creating {live}"), e))?;
            conn.execute(
                &format!("INSERT INTO {} (table_name, created_run) VALUES (?, ?)", self.managed()),
                [name, run],
            )
            .map_err(|e| self.err(&format!("registering {live}"), e))?;
            return Ok(());
        }
        for c in &columns {
            match existing.iter().find(|(n, _)| *n == c.name) {
                None => {
                    tracing::info!(table = name, column = %c.name, r#type = %c.sql_type, "adding a column");
                    conn.execute_batch(&format!("ALTER TABLE {live} ADD COLUMN {} {}", ident(&c.name), c.sql_type))
                        .map_err(|e| self.err(&format!("adding column {:?} to {live}", c.name), e))?;
                }
                Some((_, have)) if !have.eq_ignore_ascii_case(&c.sql_type) => {
                    return Err(LoadError::Schema {
                        table: name.to_owned(),
                        reason: format!(
                            "column {:?} is {have} in {live} but the receipt has {} ({}); \
                             change or drop the column, then deliver the receipt again",
                            c.name, c.portable, c.sql_type
                        ),
                    });
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn apply_locked(&self, verified: &VerifiedReceipt) -> Result<LoadOutcome, LoadError> {
        let info = &verified.info;
        let mut conn = self.open()?;
        conn.execute_batch(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}; CREATE SCHEMA IF NOT EXISTS {staging}; \
             CREATE TABLE IF NOT EXISTS {h} (\
               run VARCHAR NOT NULL, receipt_sha256 VARCHAR PRIMARY KEY, receipt_timestamp VARCHAR NOT NULL, \
               receipt VARCHAR NOT NULL, tables VARCHAR[] NOT NULL, rows BIGINT NOT NULL, \
               loaded_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now()); \
             CREATE TABLE IF NOT EXISTS {r} (\
               table_name VARCHAR PRIMARY KEY, run VARCHAR NOT NULL, watermark_column VARCHAR NOT NULL, \
               loaded_to VARCHAR)",
            schema = ident(&self.schema),
            staging = ident(STAGING_SCHEMA),
            h = self.history(),
            r = self.ranges(),
        ))
        .map_err(|e| self.err("creating the load history", e))?;
        if let Some(skip) = self.decide(&conn, info)? {
            return Ok(skip);
        }
        self.check_managed(&conn, info)?;
        super::check_continuity(info, &self.loaded_ranges(&conn)?)?;
        let format = info.receipt.format.clone();
        let mut tables = Vec::new();
        for (name, table) in &info.receipt.tables {
            let files: Vec<read::TableFile> = table
                .files
                .iter()
                .filter_map(|f| verified.path(&f.key).map(|p| (f.key.clone(), f.rows, p.to_path_buf())))
                .collect();
            if files.len() != table.files.len() {
                return Err(LoadError::Receipt {
                    receipt: info.location.clone(),
                    reason: format!("table {name:?}: a file was not verified"),
                });
            }
            let rows = self.stage(&conn, &format, name, table, &files)?;
            tables.push((name.clone(), rows));
        }
        if self.fail_before_swap {
            return Err(LoadError::Interrupted { run: info.receipt.run.to_string() });
        }
        let tx = conn.transaction().map_err(|e| self.err("starting the swap", e))?;
        let run = info.receipt.run.to_string();
        for (name, table) in &info.receipt.tables {
            self.evolve(&tx, &run, name, table)?;
            self.merge(&tx, &run, name, table)?;
        }
        let rows: u64 = tables.iter().map(|(_, r)| r).sum();
        // The table names go in as parameters of a list literal (no quoting by hand).
        let names: Vec<&str> = tables.iter().map(|(n, _)| n.as_str()).collect();
        let list = if names.is_empty() {
            "CAST([] AS VARCHAR[])".to_owned()
        } else {
            format!("[{}]", vec!["?"; names.len()].join(", "))
        };
        let rows_text = rows.to_string();
        let mut params: Vec<&str> = vec![&run, &info.sha256, &info.receipt.timestamp, &info.location];
        params.extend(&names);
        params.push(&rows_text);
        tx.execute(
            &format!(
                "INSERT INTO {} (run, receipt_sha256, receipt_timestamp, receipt, tables, rows) \
                 VALUES (?, ?, ?, ?, {list}, CAST(? AS BIGINT))",
                self.history()
            ),
            duckdb::params_from_iter(params),
        )
        .map_err(|e| self.err("recording the load", e))?;
        tx.commit().map_err(|e| self.err("committing the swap", e))?;
        Ok(LoadOutcome::Loaded(LoadReport {
            receipt: info.location.clone(),
            run,
            receipt_sha256: info.sha256.clone(),
            tables,
            rows,
        }))
    }
}

#[async_trait::async_trait]
impl Target for DuckDbTarget {
    fn name(&self) -> &str {
        &self.name
    }

    async fn precheck(&self, info: &ReceiptInfo) -> Result<Option<LoadOutcome>, LoadError> {
        if !self.path.exists() {
            return Ok(None);
        }
        let (target, info) = (self.clone(), info.clone());
        blocking(move || {
            let _lock = target.lock()?;
            let conn = target.open()?;
            if let Some(skip) = target.decide(&conn, &info)? {
                return Ok(Some(skip));
            }
            // A gap is refused before a file is fetched (and checked again under the lock).
            super::check_continuity(&info, &target.loaded_ranges(&conn)?)?;
            Ok(None)
        })
        .await
    }

    async fn apply(&self, verified: &VerifiedReceipt) -> Result<LoadOutcome, LoadError> {
        // DuckDB's API is synchronous: the load runs on a blocking thread, while `verified`
        // (and the downloaded files it owns) stays alive in this task.
        let target = self.clone();
        let owned = VerifiedReceipt { info: verified.info.clone(), paths: verified.paths.clone(), _downloads: None };
        let result = blocking(move || {
            let _lock = target.lock()?;
            target.apply_locked(&owned)
        })
        .await;
        if let Err(e) = &result {
            tracing::warn!(receipt = %verified.info.location, error = %e, "load failed; the live tables are unchanged");
        }
        result
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LoadError> + Send + 'static,
) -> Result<T, LoadError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| LoadError::Target {
        target: "duckdb".into(),
        reason: format!("the load thread failed: {e}"),
        retryable: true,
    })?
}

/// DuckDB type and the Arrow type every batch is cast to, for a scalar portable type.
fn scalar(dt: &DataType) -> Option<(String, DataType)> {
    use DataType as D;
    Some(match dt {
        D::Boolean => ("BOOLEAN".into(), D::Boolean),
        D::Int8 => ("TINYINT".into(), D::Int8),
        D::Int16 => ("SMALLINT".into(), D::Int16),
        D::Int32 => ("INTEGER".into(), D::Int32),
        D::Int64 => ("BIGINT".into(), D::Int64),
        D::UInt8 => ("UTINYINT".into(), D::UInt8),
        D::UInt16 => ("USMALLINT".into(), D::UInt16),
        D::UInt32 => ("UINTEGER".into(), D::UInt32),
        D::UInt64 => ("UBIGINT".into(), D::UInt64),
        D::Float32 => ("FLOAT".into(), D::Float32),
        D::Float64 => ("DOUBLE".into(), D::Float64),
        D::Decimal128(p, s) | D::Decimal256(p, s) if *p <= 38 && *s >= 0 && s.unsigned_abs() <= *p => {
            (format!("DECIMAL({p},{s})"), D::Decimal128(*p, *s))
        }
        D::Utf8 => ("VARCHAR".into(), D::Utf8),
        D::Binary => ("BLOB".into(), D::Binary),
        D::Date32 => ("DATE".into(), D::Date32),
        D::Time32(_) | D::Time64(_) => ("TIME".into(), D::Time64(TimeUnit::Microsecond)),
        D::Timestamp(_, None) => ("TIMESTAMP".into(), D::Timestamp(TimeUnit::Microsecond, None)),
        D::Timestamp(_, Some(_)) => {
            ("TIMESTAMP WITH TIME ZONE".into(), D::Timestamp(TimeUnit::Microsecond, Some("UTC".into())))
        }
        D::Interval(IntervalUnit::MonthDayNano) => ("INTERVAL".into(), dt.clone()),
        _ => return None,
    })
}

/// Hands a batch of our Arrow to the DuckDB crate's own Arrow (another major version) through
/// the Arrow C Data Interface, the ABI Arrow defines for passing arrays between
/// implementations: no copy of the buffers, which stay owned by their release callbacks.
fn to_duckdb_batch(batch: RecordBatch) -> Result<duckdb::arrow::array::RecordBatch, String> {
    use duckdb::arrow as duck_arrow;

    let data = arrow::array::Array::into_data(arrow::array::StructArray::from(batch));
    let (array, schema) = arrow::ffi::to_ffi(&data).map_err(|e| e.to_string())?;
    // SAFETY: both `FFI_ArrowArray` and both `FFI_ArrowSchema` are `#[repr(C)]` definitions of
    // the same C structs (ArrowArray, ArrowSchema) of the C Data Interface, so moving one into
    // the other is a move of the same bytes (transmute checks the sizes at compile time). The
    // release callbacks travel with them, so each buffer is released exactly once, by
    // whichever side drops it last; `from_ffi` validates the array against the schema.
    #[allow(unsafe_code)]
    let imported = unsafe {
        let array: duck_arrow::ffi::FFI_ArrowArray = std::mem::transmute(array);
        let schema: duck_arrow::ffi::FFI_ArrowSchema = std::mem::transmute(schema);
        duck_arrow::ffi::from_ffi(array, &schema)
    }
    .map_err(|e| e.to_string())?;
    Ok(duck_arrow::array::RecordBatch::from(duck_arrow::array::StructArray::from(imported)))
}

/// The DuckDB columns of a receipt's table schema (`list<T>` -> `T[]`; times and timestamps
/// at microseconds, as DuckDB's TIMESTAMP and TIME hold them).
pub fn duck_columns(table: &str, schema: &[ColumnSchema]) -> Result<Vec<DuckColumn>, LoadError> {
    schema
        .iter()
        .map(|c| {
            let bad = |reason: String| LoadError::Schema { table: table.to_owned(), reason };
            let dt = parse_type_name(&c.data_type).map_err(|e| bad(format!("column {:?}: {e}", c.name)))?;
            let unsupported = || bad(format!("column {:?}: type {} has no DuckDB mapping", c.name, c.data_type));
            let (sql_type, arrow) = match &dt {
                DataType::List(item) => {
                    let (t, a) = scalar(item.data_type()).ok_or_else(unsupported)?;
                    (format!("{t}[]"), DataType::List(Arc::new(Field::new_list_field(a, true))))
                }
                other => scalar(other).ok_or_else(unsupported)?,
            };
            Ok(DuckColumn {
                name: c.name.clone(),
                portable: c.data_type.clone(),
                sql_type,
                nullable: c.nullable,
                arrow,
            })
        })
        .collect()
}

/// Row counts of every table in `schema` of the database at `path` (the demo prints them).
pub fn table_counts(path: &Path, schema: &str) -> Result<Vec<(String, u64)>, LoadError> {
    let target = DuckDbTarget::new(path).with_schema(schema);
    let _lock = target.lock()?;
    let conn = target.open()?;
    let mut stmt = conn
        .prepare(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_name NOT IN (?, ?, ?) \
             ORDER BY table_name",
        )
        .map_err(|e| target.err("listing tables", e))?;
    let names = stmt
        .query_map([schema, HISTORY_TABLE, MANAGED_TABLE, super::RANGES_TABLE], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(|e| target.err("listing tables", e))?;
    names
        .into_iter()
        .map(|t| {
            let n: i64 = conn
                .query_row(&format!("SELECT count(*) FROM {}.{}", ident(schema), ident(&t)), [], |r| r.get(0))
                .map_err(|e| target.err(&format!("counting {t}"), e))?;
            Ok((t, n.max(0) as u64))
        })
        .collect()
}
