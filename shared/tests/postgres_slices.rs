//! Slices of a PostgreSQL table against a real server: by `ctid` pages, by an integer key, by
//! a timestamp or date key, of a query. Every split is checked the same way: the planned
//! slices, exported in parallel through byob's pipeline, together hold exactly the tenant's
//! rows (count, no id twice, and a checksum over every value equal to PostgreSQL's own).
//! Also: slice counts follow PostgreSQL's estimate; with one source (`byob run`) every slice
//! reads the snapshot the planner exported, so writes after planning are in no slice; and
//! with a source per step (deployed), the planned key ranges hold every row exactly once
//! while rows are inserted, updated and deleted between the plan and each slice.

#![allow(clippy::unwrap_used)]

use byob_testkit::postgres as postgres_harness;

use std::collections::BTreeSet;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use byob::format::Codec;
use byob::source::postgres::{Connector, PgSource, PgTable};
use byob::source::{Bounds, Source, TableRequest};
use futures::future::join_all;
use postgres_harness::export_parquet;
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

struct Db {
    client: Client,
    connector: Connector,
}

async fn db(prefix: &str) -> Option<Db> {
    let pg = postgres_harness::shared()?;
    let name = pg.database(prefix).await;
    Some(Db { client: postgres_harness::client(&pg.url(&name)).await, connector: pg.connector(&name) })
}

fn request(table: &str, tenant: &str) -> TableRequest {
    TableRequest::new(table, tenant, "tenant_id")
}

/// `items`: 60,000 rows, tenants interleaved (acme 2/3, globex 1/3), ids with gaps and
/// negatives, a few NULL and infinite keys, then analyzed.
async fn items(db: &Db) {
    db.client
        .batch_execute(
            "CREATE TABLE items (
                 id bigint NOT NULL, tenant_id text NOT NULL, k bigint, at timestamptz, day date, payload text
             );
             INSERT INTO items
             SELECT i, CASE WHEN i % 3 = 0 THEN 'globex' ELSE 'acme' END,
                    CASE WHEN i % 997 = 0 THEN NULL ELSE (i * 7) - 100000 END,
                    CASE WHEN i % 1009 = 0 THEN NULL
                         WHEN i = 5 THEN 'infinity'::timestamptz
                         WHEN i = 7 THEN '-infinity'::timestamptz
                         ELSE timestamptz '2023-01-01 00:00:00+00' + i * interval '17 minutes' END,
                    CASE WHEN i % 1013 = 0 THEN NULL WHEN i = 8 THEN 'infinity'::date
                         ELSE date '2020-01-01' + (i % 2000) END,
                    md5(i::text) || repeat('p', i % 50)
             FROM generate_series(1, 60000) i;
             ANALYZE items;",
        )
        .await
        .unwrap();
}

/// (rows, sha256) of the tenant's rows as PostgreSQL sees them, in id order.
async fn expected(db: &Db, table: &str, tenant: &str) -> (usize, String) {
    let rows = db
        .client
        .query(&format!("SELECT id, coalesce(payload, '') FROM {table} WHERE tenant_id = $1 ORDER BY id"), &[&tenant])
        .await
        .unwrap();
    let mut hash = Sha256::new();
    for row in &rows {
        let (id, payload): (i64, String) = (row.get(0), row.get(1));
        hash.update(format!("{id}\t{payload}\n"));
    }
    (rows.len(), hex::encode(hash.finalize()))
}

/// Plans `table` for `tenant` at `target` rows per slice.
async fn plan(source: &PgSource, table: &str, tenant: &str, target: u64) -> Vec<Bounds> {
    source.plan(&request(table, tenant), target).await.unwrap()
}

/// Exports every planned slice in parallel; checks no id appears twice and returns
/// (rows per slice, rows, sha256 over the rows in id order).
async fn export_slices(
    source: &PgSource,
    table: &str,
    tenant: &str,
    planned: &[Bounds],
) -> (Vec<usize>, usize, String) {
    let exports = planned.iter().map(|bounds| async move {
        export_parquet(source, table, tenant, Some(&["id", "payload"]), bounds, Codec::Zstd).await.unwrap().rows
    });
    let slices: Vec<RecordBatch> = join_all(exports).await;
    summarize(&slices)
}

/// (rows per slice, rows, sha256 over the rows in id order); no id twice.
fn summarize(slices: &[RecordBatch]) -> (Vec<usize>, usize, String) {
    let per_slice = slices.iter().map(RecordBatch::num_rows).collect();
    let mut rows: Vec<(i64, String)> = Vec::new();
    for batch in slices {
        if batch.num_columns() == 0 {
            continue;
        }
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let payloads = batch.column(1).as_string::<i32>();
        for i in 0..batch.num_rows() {
            let payload = if payloads.is_valid(i) { payloads.value(i).to_owned() } else { String::new() };
            rows.push((ids.value(i), payload));
        }
    }
    let ids: BTreeSet<i64> = rows.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), rows.len(), "an id was exported by two slices");
    rows.sort();
    let mut hash = Sha256::new();
    for (id, payload) in &rows {
        hash.update(format!("{id}\t{payload}\n"));
    }
    (per_slice, rows.len(), hex::encode(hash.finalize()))
}

#[tokio::test]
async fn ctid_slices_together_hold_every_row_exactly_once() {
    let Some(db) = db("ctid").await else { return };
    items(&db).await;
    let source = PgSource::new(db.connector.clone());
    // GIVEN the planner's slices for ~40,000 acme rows at 8,000 rows per slice
    let planned = plan(&source, "items", "acme", 8_000).await;
    assert!((4..=7).contains(&planned.len()), "PostgreSQL estimates ~40,000 rows: {planned:?}");
    assert!(planned.iter().all(|b| matches!(b, Bounds::Pages { .. })), "{planned:?}");
    // WHEN every slice is exported in parallel
    let (per_slice, rows, checksum) = export_slices(&source, "items", "acme", &planned).await;
    // THEN together they are exactly the tenant's rows, spread over every slice
    assert_eq!((rows, checksum), expected(&db, "items", "acme").await);
    assert!(per_slice.iter().all(|&n| n > 2_000), "page ranges split evenly: {per_slice:?}");
    // and any other count splits exactly too
    for target in [15_000, 9_000, 1_500] {
        let planned = plan(&source, "items", "globex", target).await;
        let (_, rows, checksum) = export_slices(&source, "items", "globex", &planned).await;
        assert_eq!((rows, checksum), expected(&db, "items", "globex").await, "{} slices", planned.len());
    }
    // Page ranges are exact only in the snapshot they were cut in: another source refuses them.
    let other = PgSource::new(db.connector.clone());
    let e = other.open(&request("items", "acme"), &planned[1]).await.err().unwrap();
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("page ranges were cut in snapshot"), "{e}");
}

#[tokio::test]
async fn key_slices_by_integer_timestamp_and_date_hold_every_row_exactly_once() {
    let Some(db) = db("keys").await else { return };
    items(&db).await;
    for key in ["k", "at", "day", "id"] {
        let source = PgSource::new(db.connector.clone())
            .with_table("items", PgTable { query: None, slice_key: Some(key.into()) });
        let planned = plan(&source, "items", "acme", 5_000).await;
        assert!((6..=10).contains(&planned.len()), "{key}: {planned:?}");
        assert!(planned.iter().all(|b| matches!(b, Bounds::Keys { column, .. } if column == key)), "{planned:?}");
        let (per_slice, rows, checksum) = export_slices(&source, "items", "acme", &planned).await;
        assert_eq!((rows, checksum), expected(&db, "items", "acme").await, "{key}");
        assert!(per_slice.iter().filter(|&&n| n > 0).count() >= planned.len() - 1, "{key}: {per_slice:?}");
        for target in [15_000, 3_000] {
            let planned = plan(&source, "items", "globex", target).await;
            let (_, rows, checksum) = export_slices(&source, "items", "globex", &planned).await;
            assert_eq!((rows, checksum), expected(&db, "items", "globex").await, "{key}, {} slices", planned.len());
        }
    }
    // A key of another type is refused, naming it.
    let source = PgSource::new(db.connector.clone())
        .with_table("items", PgTable { query: None, slice_key: Some("payload".into()) });
    let e = source.plan(&request("items", "acme"), 5_000).await.err().unwrap().to_string();
    assert!(e.contains("\"payload\"") && e.contains("text") && e.contains("\"items\""), "{e}");
    // Bounds naming a column that is not the slice key are refused.
    let keyed =
        PgSource::new(db.connector.clone()).with_table("items", PgTable { query: None, slice_key: Some("k".into()) });
    let forged = Bounds::Keys { column: "payload".into(), from: Some(0), to: Some(10), nulls: false, infinity: false };
    let e = keyed.open(&request("items", "acme"), &forged).await.err().unwrap().to_string();
    assert!(e.contains("not its slice key or primary key"), "{e}");
}

#[tokio::test]
async fn a_query_splits_by_its_slice_key_and_views_or_partitioned_tables_without_one_do_not_split() {
    let Some(db) = db("qslices").await else { return };
    items(&db).await;
    db.client
        .batch_execute(
            "CREATE VIEW items_view AS SELECT * FROM items;
             CREATE TABLE parts (id bigint NOT NULL, tenant_id text NOT NULL, payload text) PARTITION BY RANGE (id);
             CREATE TABLE parts_a PARTITION OF parts FOR VALUES FROM (MINVALUE) TO (30000);
             CREATE TABLE parts_b PARTITION OF parts FOR VALUES FROM (30000) TO (MAXVALUE);
             INSERT INTO parts SELECT id, tenant_id, payload FROM items; ANALYZE parts;",
        )
        .await
        .unwrap();
    let query = PgTable {
        query: Some("SELECT id, tenant_id, payload FROM items WHERE id > 20000".into()),
        slice_key: Some("id".into()),
    };
    let source = PgSource::new(db.connector.clone()).with_table("recent", query);
    let planned = plan(&source, "recent", "acme", 4_000).await;
    assert!(planned.len() >= 3, "{planned:?}");
    let (_, rows, checksum) = export_slices(&source, "recent", "acme", &planned).await;
    db.client
        .batch_execute("CREATE TABLE recent AS SELECT id, tenant_id, payload FROM items WHERE id > 20000")
        .await
        .unwrap();
    assert_eq!((rows, checksum), expected(&db, "recent", "acme").await);

    let source = PgSource::new(db.connector.clone());
    for table in ["items_view", "parts"] {
        let planned = plan(&source, table, "acme", 1_000).await;
        assert_eq!(planned, [Bounds::Whole], "{table}");
        let (_, rows, checksum) = export_slices(&source, table, "acme", &planned).await;
        assert_eq!((rows, checksum), expected(&db, "items", "acme").await, "{table}");
    }
    let keyed =
        PgSource::new(db.connector.clone()).with_table("parts", PgTable { query: None, slice_key: Some("id".into()) });
    assert!(plan(&keyed, "parts", "acme", 1_000).await.len() > 10);
}

#[tokio::test]
async fn every_slice_reads_the_snapshot_the_planner_exported() {
    let Some(db) = db("snapshot").await else { return };
    items(&db).await;
    let (rows_before, checksum_before) = expected(&db, "items", "acme").await;
    let source = PgSource::new(db.connector.clone());
    // GIVEN a plan made (and its snapshot exported)
    let planned = plan(&source, "items", "acme", 10_000).await;
    assert!(source.snapshot_id().await.unwrap().is_some());
    // WHEN other sessions insert, update (moving rows to new pages) and delete afterwards
    db.client
        .batch_execute(
            "INSERT INTO items (id, tenant_id, payload) SELECT i, 'acme', 'late' FROM generate_series(100001, 105000) i;
             UPDATE items SET payload = payload || '-updated' WHERE id % 10 = 1;
             DELETE FROM items WHERE id % 10 = 2;",
        )
        .await
        .unwrap();
    // THEN the slices still hold exactly the rows as they were when planned
    let (_, rows, checksum) = export_slices(&source, "items", "acme", &planned).await;
    assert_eq!((rows, checksum), (rows_before, checksum_before));
    // and a new source (a new run, with its own plan) sees the changes.
    let fresh = PgSource::new(db.connector.clone());
    let replanned = plan(&fresh, "items", "acme", 10_000).await;
    let (_, rows, _) = export_slices(&fresh, "items", "acme", &replanned).await;
    assert_eq!(rows, expected(&db, "items", "acme").await.0);
    assert_ne!(rows, rows_before);
}

#[tokio::test]
async fn planned_key_ranges_hold_every_row_once_when_each_slice_reads_its_own_snapshot() {
    let Some(db) = db("separate").await else { return };
    items(&db).await;
    db.client
        .batch_execute(
            "ALTER TABLE items ADD PRIMARY KEY (id); CREATE TABLE heap AS SELECT * FROM items; ANALYZE heap;",
        )
        .await
        .unwrap();
    // A source per step, as deployed: each slice in its own invocation and snapshot.
    let step = || PgSource::new(db.connector.clone()).with_shared_snapshot(false);
    // GIVEN a plan: no slice_key, so the primary key cuts the ranges (never page ranges)
    let planned = plan(&step(), "items", "acme", 8_000).await;
    assert!(planned.len() >= 4, "{planned:?}");
    assert!(planned.iter().all(|b| matches!(b, Bounds::Keys { column, .. } if column == "id")), "{planned:?}");
    let Some(Bounds::Keys { to: Some(end), .. }) = planned.last() else { panic!("{planned:?}") };
    let planned_max = end - 1;
    // and a table with neither slice_key nor primary key is one slice
    assert_eq!(plan(&step(), "heap", "acme", 8_000).await, [Bounds::Whole]);

    // WHEN rows are inserted (inside the planned ranges and above them), deleted, and updated
    // (every update moves the row to another page) between the plan and each slice's export
    db.client
        .batch_execute(
            "INSERT INTO items (id, tenant_id, payload) SELECT -i, 'acme', 'early' FROM generate_series(1, 300) i;
             INSERT INTO items (id, tenant_id, payload) SELECT i, 'acme', 'late' FROM generate_series(60001, 61000) i;
             DELETE FROM items WHERE id % 10 = 2;",
        )
        .await
        .unwrap();
    let mut slices = Vec::new();
    for (index, bounds) in planned.iter().enumerate() {
        db.client
            .batch_execute(&format!("UPDATE items SET payload = payload || '-{index}' WHERE tenant_id = 'acme'"))
            .await
            .unwrap();
        let fresh = step();
        slices.push(
            export_parquet(&fresh, "items", "acme", Some(&["id", "payload"]), bounds, Codec::Zstd).await.unwrap().rows,
        );
    }
    // THEN every row of the planned ranges that exists when its slice is read is exported
    // exactly once (no id twice: `summarize` checks), and none above the planned maximum
    let (_, rows, _) = summarize(&slices);
    let ids: BTreeSet<i64> = slices
        .iter()
        .filter(|b| b.num_columns() > 0)
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    let want: BTreeSet<i64> = db
        .client
        .query("SELECT id FROM items WHERE tenant_id = 'acme' AND id <= $1", &[&planned_max])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows, want.len());
    assert_eq!(ids, want);
    assert!(ids.contains(&-300) && !ids.contains(&60_001) && !ids.contains(&2), "inserted below, above, deleted");
}

#[tokio::test]
async fn slice_counts_follow_the_estimate_and_the_target() {
    let Some(db) = db("counts").await else { return };
    items(&db).await;
    let source = PgSource::new(db.connector.clone());
    assert_eq!(plan(&source, "items", "acme", 1_000_000).await.len(), 1);
    let small = plan(&source, "items", "acme", 20_000).await.len();
    let large = plan(&source, "items", "acme", 2_000).await.len();
    assert!((2..=3).contains(&small), "{small}");
    assert!((16..=25).contains(&large), "{large}");
    assert_eq!(plan(&source, "items", "nobody", 1_000).await.len(), 1, "a tenant with no rows");
    // ctid slices never outnumber the table's pages.
    let pages: i64 = db
        .client
        .query_one("SELECT pg_relation_size('items') / current_setting('block_size')::int8", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(plan(&source, "items", "acme", 1).await.len() as i64, pages);
}
