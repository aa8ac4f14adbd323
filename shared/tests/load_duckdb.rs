//! The loader into DuckDB (the CLI's embedded target): the same exactly-once, all-or-nothing
//! contract as PostgreSQL, checked by reading the database file back with DuckDB itself.
//!
//! Every test gets a database file of its own in a temporary folder (DuckDB is embedded: no
//! server to start).

#![allow(clippy::unwrap_used)]

use crate::load_support;

use std::path::Path;

use byob::load::{DuckDbTarget, LoadError, LoadOutcome, Loader};
use duckdb::Connection;
use load_support::*;

fn loaded(outcome: &LoadOutcome) -> &byob::load::LoadReport {
    match outcome {
        LoadOutcome::Loaded(r) => r,
        other => panic!("expected a load, got {other:?}"),
    }
}

/// The canonical rendering of [`load_support::expected`], computed by DuckDB over the table.
fn checksum(db: &Path, table: &str, country: bool) -> (i64, String) {
    let conn = Connection::open(db).unwrap();
    let mut cols = vec![
        "id::VARCHAR",
        "coalesce(name, '\\N')",
        "amount::VARCHAR",
        "strftime(created_at, '%Y-%m-%d %H:%M:%S')",
        "coalesce(active::VARCHAR, '\\N')",
    ];
    if country {
        cols.push("coalesce(country, '\\N')");
    }
    let sql = format!(
        "SELECT count(*), sha256(coalesce(string_agg(concat_ws('|', {}), chr(10) ORDER BY id), '')) FROM \"{table}\"",
        cols.join(", ")
    );
    conn.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap()
}

fn query_strings(db: &Path, sql: &str) -> Vec<String> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0)).unwrap().map(Result::unwrap).collect()
}

fn count(db: &Path, sql: &str) -> i64 {
    Connection::open(db).unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
}

fn table_exists(db: &Path, table: &str) -> bool {
    !db.exists()
        || count(
            db,
            &format!(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = '{table}'"
            ),
        ) > 0
}

#[tokio::test(flavor = "multi_thread")]
async fn loads_a_local_dump_and_the_same_receipt_twice_loads_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("warehouse.duckdb");
    let target = DuckDbTarget::new(&db);
    // GIVEN a dump of two tables in three files, with both receipt copies
    Dump::new(RUN1, None)
        .table("companies", companies(0, 2500, false), 3)
        .table("contacts", contacts(40), 1)
        .write_local(dir.path(), "byob");
    // WHEN the run copy and then the root copy are delivered
    let first = Loader::local().load(&run_receipt(dir.path(), "byob", RUN1), &target).await.unwrap();
    let second = Loader::local().load(&root_receipt(dir.path(), "byob"), &target).await.unwrap();
    // THEN the first loads, the second is the same receipt and loads nothing
    assert_eq!(loaded(&first).rows, 2540);
    assert_eq!(loaded(&first).tables, vec![("companies".into(), 2500), ("contacts".into(), 40)]);
    assert!(matches!(second, LoadOutcome::Duplicate { ref run, .. } if run == RUN1), "{second:?}");
    assert_eq!(checksum(&db, "companies", false), expected(&companies(0, 2500, false), false));
    assert_eq!(count(&db, "SELECT count(*) FROM contacts"), 40);
    assert_eq!(
        query_strings(&db, "SELECT run || ' ' || array_to_string(tables, ',') || ' ' || rows FROM byob_load_history"),
        vec![format!("{RUN1} companies,contacts 2540")]
    );
    // and the staging tables are gone
    assert_eq!(count(&db, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'byob_staging'"), 0);
    // and the demo's read-back lists the two tables with their counts
    assert_eq!(
        byob::load::duckdb::table_counts(&db, "main").unwrap(),
        vec![("companies".to_string(), 2500), ("contacts".to_string(), 40)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_older_receipt_after_a_newer_one_is_refused_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.duckdb");
    let target = DuckDbTarget::new(&db);
    Dump::new(RUN1, None).table("companies", companies(0, 100, false), 1).write_local(dir.path(), "p");
    Dump::new(RUN2, Some(RUN1)).table("companies", companies(1000, 120, false), 1).write_local(dir.path(), "p");
    loaded(&Loader::local().load(&run_receipt(dir.path(), "p", RUN2), &target).await.unwrap());
    let late = Loader::local().load(&run_receipt(dir.path(), "p", RUN1), &target).await.unwrap_err();
    assert!(matches!(late, LoadError::Older { ref loaded_run, .. } if loaded_run == RUN2), "{late:?}");
    assert_eq!(checksum(&db, "companies", false), expected(&companies(1000, 120, false), false));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_tampered_file_loads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.duckdb");
    let target = DuckDbTarget::new(&db);
    // A missing file: nothing is created, not even the database file.
    let dump = Dump::new(RUN1, None).table("companies", companies(0, 300, false), 3);
    dump.write_local(dir.path(), "p");
    let gone = dump.files[1].0.clone();
    std::fs::remove_file(dir.path().join("p").join(&gone)).unwrap();
    let err = Loader::local().load(&run_receipt(dir.path(), "p", RUN1), &target).await.unwrap_err();
    assert!(matches!(&err, LoadError::Missing { key, .. } if *key == gone), "{err}");
    assert!(!db.exists());
    // A tampered file after a good load: the live table keeps the good run.
    let dir = tempfile::tempdir().unwrap();
    Dump::new(RUN1, None).table("companies", companies(0, 50, false), 1).write_local(dir.path(), "q");
    loaded(&Loader::local().load(&run_receipt(dir.path(), "q", RUN1), &target).await.unwrap());
    let dump = Dump::new(RUN2, Some(RUN1)).table("companies", companies(500, 60, false), 1);
    dump.write_local(dir.path(), "q");
    let path = dir.path().join("q").join(&dump.files[0].0);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let err = Loader::local().load(&run_receipt(dir.path(), "q", RUN2), &target).await.unwrap_err();
    assert!(matches!(err, LoadError::Tampered { .. }) && err.to_string().contains("sha256"), "{err}");
    assert_eq!(checksum(&db, "companies", false), expected(&companies(0, 50, false), false));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_staging_and_swap_leaves_the_live_table_and_the_next_delivery_completes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.duckdb");
    let target = DuckDbTarget::new(&db);
    Dump::new(RUN1, None).table("companies", companies(0, 400, false), 2).write_local(dir.path(), "p");
    Dump::new(RUN2, Some(RUN1)).table("companies", companies(9000, 450, false), 2).write_local(dir.path(), "p");
    loaded(&Loader::local().load(&run_receipt(dir.path(), "p", RUN1), &target).await.unwrap());
    // WHEN run 2 stops after staging (as a crash there would)
    let err = Loader::local()
        .load(&run_receipt(dir.path(), "p", RUN2), &target.clone().failing_before_swap(true))
        .await
        .unwrap_err();
    assert!(matches!(err, LoadError::Interrupted { .. }) && err.is_retryable(), "{err}");
    // THEN readers still see run 1 in full
    assert_eq!(checksum(&db, "companies", false), expected(&companies(0, 400, false), false));
    // WHEN the receipt is delivered again THEN run 2 is loaded
    let again = Loader::local().load(&root_receipt(dir.path(), "p"), &target).await.unwrap();
    assert_eq!(loaded(&again).run, RUN2);
    assert_eq!(checksum(&db, "companies", false), expected(&companies(9000, 450, false), false));
    assert_eq!(count(&db, "SELECT count(*) FROM byob_load_history"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_added_column_is_added_and_a_changed_type_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.duckdb");
    let target = DuckDbTarget::new(&db);
    Dump::new(RUN1, None).table("companies", companies(0, 30, false), 1).write_local(dir.path(), "p");
    Dump::new(RUN2, Some(RUN1)).table("companies", companies(100, 35, true), 1).write_local(dir.path(), "p");
    loaded(&Loader::local().load(&run_receipt(dir.path(), "p", RUN1), &target).await.unwrap());
    // WHEN run 2 has a new column "country" THEN it is added and filled
    loaded(&Loader::local().load(&run_receipt(dir.path(), "p", RUN2), &target).await.unwrap());
    assert_eq!(checksum(&db, "companies", true), expected(&companies(100, 35, true), true));
    // WHEN run 3 changes "name" from string to int64 THEN nothing is applied and the error says so
    Dump::new(RUN3, Some(RUN2)).table("companies", renamed_type(), 1).write_local(dir.path(), "p");
    let err = Loader::local().load(&run_receipt(dir.path(), "p", RUN3), &target).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, LoadError::Schema { .. }), "{msg}");
    assert!(msg.contains("\"name\"") && msg.contains("VARCHAR") && msg.contains("int64"), "{msg}");
    assert_eq!(checksum(&db, "companies", true), expected(&companies(100, 35, true), true));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_loaders_racing_on_one_receipt_apply_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.duckdb");
    Dump::new(RUN1, None).table("companies", companies(0, 3000, false), 3).write_local(dir.path(), "p");
    let (a, b) = (run_receipt(dir.path(), "p", RUN1), root_receipt(dir.path(), "p"));
    let (t1, t2) = (DuckDbTarget::new(&db), DuckDbTarget::new(&db));
    let one = tokio::spawn(async move { Loader::local().load(&a, &t1).await.unwrap() });
    let two = tokio::spawn(async move { Loader::local().load(&b, &t2).await.unwrap() });
    let outcomes = [one.await.unwrap(), two.await.unwrap()];
    let applied = outcomes.iter().filter(|o| matches!(o, LoadOutcome::Loaded(_))).count();
    assert_eq!(applied, 1, "{outcomes:?}");
    assert_eq!(checksum(&db, "companies", false), expected(&companies(0, 3000, false), false));
    assert_eq!(count(&db, "SELECT count(*) FROM byob_load_history"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_portable_type_round_trips_from_arrow() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.duckdb");
    Dump::new(RUN1, None).table("types", all_types(), 1).write_local(dir.path(), "p");
    loaded(&Loader::local().load(&run_receipt(dir.path(), "p", RUN1), &DuckDbTarget::new(&db)).await.unwrap());
    let cols = ["i64", "b", "i8", "u16", "u32", "u64", "f32", "f64", "dec", "s", "bin", "d", "tm", "ts", "tz", "l"];
    let parts: Vec<String> = cols.iter().map(|c| format!("coalesce(\"{c}\"::VARCHAR, 'NULL')")).collect();
    let got = query_strings(&db, &format!("SELECT concat_ws('|', {}) FROM types ORDER BY i64", parts.join(", ")));
    assert_eq!(got, vec![
        "1|true|-5|65535|4294967295|18446744073709551615|1.5|-2.25|12.345|hello|\\xDE\\xAD|2023-03-14|04:03:07.5|2023-03-14 04:03:07.123456|2023-03-14 04:03:07+00|[1, NULL, 3]".to_string(),
        "2|NULL|NULL|NULL|NULL|0|NULL|NULL|-0.001|a,b|NULL|1969-12-31|NULL|NULL|NULL|[]".to_string(),
    ]);
    let types = query_strings(
        &db,
        "SELECT column_name || ' ' || data_type FROM information_schema.columns WHERE table_name = 'types' ORDER BY ordinal_position",
    );
    assert_eq!(types[13], "ts TIMESTAMP");
    assert_eq!(types[14], "tz TIMESTAMP WITH TIME ZONE");
    assert_eq!(types[15], "l BIGINT[]");
    // The same receipt's schema is recognised as unchanged on the next run (no type error).
    Dump::new(RUN2, Some(RUN1)).table("types", all_types(), 1).write_local(dir.path(), "p");
    loaded(&Loader::local().load(&run_receipt(dir.path(), "p", RUN2), &DuckDbTarget::new(&db)).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_and_json_lines_dumps_load_the_same_rows_as_parquet() {
    for format in load_support::formats() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("w.duckdb");
        let mut dump = Dump::new(RUN1, None);
        dump.format = format.clone();
        dump.table("companies", companies(0, 700, true), 2).write_local(dir.path(), "p");
        loaded(&Loader::local().load(&run_receipt(dir.path(), "p", RUN1), &DuckDbTarget::new(&db)).await.unwrap());
        assert_eq!(checksum(&db, "companies", true), expected(&companies(0, 700, true), true), "{format:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_table_and_column_names_are_quoted_not_executed() {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.duckdb");
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("x\"; DROP TABLE byob_load_history; --", DataType::Utf8, true),
        Field::new("naïve ünïcode 表", DataType::Utf8, true),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec![Some("a'b"), None])),
            Arc::new(StringArray::from(vec![Some("ok"), Some("表")])),
        ],
    )
    .unwrap();
    Dump::new(RUN1, None).table("t", batch, 1).write_local(dir.path(), "p");
    loaded(&Loader::local().load(&run_receipt(dir.path(), "p", RUN1), &DuckDbTarget::new(&db)).await.unwrap());
    let cols = query_strings(
        &db,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 't' ORDER BY ordinal_position",
    );
    assert_eq!(cols, vec!["id", "x\"; DROP TABLE byob_load_history; --", "naïve ünïcode 表"]);
    assert_eq!(count(&db, "SELECT count(*) FROM byob_load_history"), 1);
    assert_eq!(
        query_strings(
            &db,
            "SELECT coalesce(\"x\"\"; DROP TABLE byob_load_history; --\", 'NULL') || '|' || \"naïve ünïcode 表\" FROM t ORDER BY id"
        ),
        vec!["a'b|ok", "NULL|表"]
    );
    assert!(table_exists(&db, "t"));
}

/// The DuckDB target, like PostgreSQL's, alters, replaces or fills only tables it created.
#[tokio::test(flavor = "multi_thread")]
async fn a_receipt_never_touches_a_table_the_loader_did_not_create() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.duckdb");
    Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE companies (id BIGINT, note VARCHAR); INSERT INTO companies VALUES (1, 'ours')")
        .unwrap();
    let target = DuckDbTarget::new(&db);
    Dump::new(RUN1, None).table("companies", companies(0, 100, false), 1).write_local(dir.path(), "p");
    let err = Loader::local().load(&run_receipt(dir.path(), "p", RUN1), &target).await.unwrap_err();
    assert!(matches!(err, LoadError::Schema { .. }) && err.to_string().contains("did not create"), "{err}");
    assert_eq!(count(&db, "SELECT count(*) FROM companies WHERE note = 'ours'"), 1);
    assert_eq!(count(&db, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'companies'"), 2);
    // A new table loads, and loads again.
    Dump::new(RUN1, None).table("contacts", contacts(7), 1).write_local(dir.path(), "q");
    loaded(&Loader::local().load(&run_receipt(dir.path(), "q", RUN1), &target).await.unwrap());
    Dump::new(RUN2, Some(RUN1)).table("contacts", contacts(9), 1).write_local(dir.path(), "q");
    loaded(&Loader::local().load(&run_receipt(dir.path(), "q", RUN2), &target).await.unwrap());
    assert_eq!(count(&db, "SELECT count(*) FROM contacts"), 9);
}
