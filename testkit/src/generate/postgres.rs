//! Loading a generated Parquet lake into PostgreSQL tables, so the demo, the tests and the
//! benchmarks run against a real database holding exactly the lake's rows.
//!
//! Each table is replaced in one transaction: `DROP TABLE IF EXISTS`, `CREATE TABLE` with the
//! lake's columns (NOT NULL where the lake's field is not nullable), the rows copied with the
//! loader's own binary COPY ([`byob::load::postgres::copy_files`]: one encoder in the house),
//! an index on the tenant column; then `ANALYZE`, so the planner's estimates (and so the slice
//! counts) are right. It only ever touches the tables it is named.

use std::path::{Path, PathBuf};

use byob::format::{Format, FormatKind};
use byob::load::LoadError;
use byob::load::postgres::{copy_files, pg_columns};
use byob::pg::{ident, pg_message};
use byob::source::postgres::Connector;
use byob::{Error, Result};
use parquet::file::reader::{FileReader, SerializedFileReader};

/// What was loaded into one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadReport {
    /// The table name.
    pub table: String,
    /// Rows loaded.
    pub rows: u64,
}

/// Loads `<lake>/<table>/*.parquet` into `<schema>.<table>` for each of `tables`, replacing
/// the tables.
pub async fn load_lake(connector: &Connector, schema: &str, lake: &Path, tables: &[&str]) -> Result<Vec<LoadReport>> {
    let server = |what: &str, e: tokio_postgres::Error| LoadError::Target {
        target: connector.name().to_owned(),
        reason: format!("{what}: {}", pg_message(&e)),
        retryable: false,
    };
    let client = connector.connect().await.map_err(|e| Error::Source {
        table: tables.join(","),
        location: connector.name().to_owned(),
        source: Box::new(e),
    })?;
    let mut reports = Vec::with_capacity(tables.len());
    for &table in tables {
        let files = parquet_files(&lake.join(table))?;
        let Some((first, _, _)) = files.first() else {
            return Err(Error::io(lake.join(table), std::io::Error::other("no .parquet file")));
        };
        let file = std::fs::File::open(first).map_err(|e| Error::io(first, e))?;
        let arrow_schema = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| Error::io(first, std::io::Error::other(e.to_string())))?
            .schema()
            .clone();
        let described = byob::schema::describe(&arrow_schema).map_err(Error::Plan)?;
        let columns = pg_columns(table, &described)?;
        let relation = format!("{}.{}", ident(schema), ident(table));
        let ddl: Vec<String> = columns
            .iter()
            .map(|c| format!("{} {}{}", ident(&c.name), c.pg_type, if c.nullable { "" } else { " NOT NULL" }))
            .collect();
        client
            .batch_execute(&format!(
                "BEGIN; CREATE SCHEMA IF NOT EXISTS {}; DROP TABLE IF EXISTS {relation}; CREATE TABLE {relation} ({});",
                ident(schema),
                ddl.join(", ")
            ))
            .await
            .map_err(|e| server("creating the table", e))?;
        let format = Format { kind: FormatKind::Parquet, ..Format::default() };
        let files = files.into_iter().map(|(path, rows, key)| (key, rows, path)).collect();
        let rows = copy_files(&client, &relation, table, columns, format, files)
            .await
            .map_err(|e| Error::Load(e.into_load_error(server)))?;
        let mut after = String::new();
        if arrow_schema.fields().iter().any(|f| f.name() == "tenant_id") {
            after.push_str(&format!(
                "CREATE INDEX {} ON {relation} (\"tenant_id\"); ",
                ident(&format!("{table}_tenant_id_idx"))
            ));
        }
        after.push_str(&format!("COMMIT; ANALYZE {relation};"));
        client.batch_execute(&after).await.map_err(|e| server("indexing and analyzing", e))?;
        reports.push(LoadReport { table: table.to_owned(), rows });
    }
    Ok(reports)
}

/// The table's Parquet files in name order, each with its row count (from the footer) and its
/// name (the key the loader's errors would name).
fn parquet_files(dir: &Path) -> Result<Vec<(PathBuf, u64, String)>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
            let reader =
                SerializedFileReader::new(file).map_err(|e| Error::io(&path, std::io::Error::other(e.to_string())))?;
            let rows = u64::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0);
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            Ok((path, rows, name))
        })
        .collect()
}
