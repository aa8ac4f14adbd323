//! The loader into PostgreSQL: receipts from a local folder (and from S3 through S3 -> SQS
//! notifications, in `load_s3_events.rs`) become live tables exactly once, all or nothing.
//!
//! Every test gets a database of its own on the binary's throwaway cluster.

#![allow(clippy::unwrap_used)]

use crate::load_support;
use byob_testkit::postgres as postgres_harness;

use byob::load::{LoadError, LoadOutcome, Loader, PostgresTarget, ReceiptLocation};
use load_support::*;

async fn target(prefix: &str) -> Option<(PostgresTarget, String)> {
    let server = postgres_harness::shared()?;
    let db = server.database(prefix).await;
    let url = server.url(&db);
    Some((PostgresTarget::from_url(&url).unwrap().with_schema("public"), url))
}

fn loaded(outcome: &LoadOutcome) -> &byob::load::LoadReport {
    match outcome {
        LoadOutcome::Loaded(r) => r,
        other => panic!("expected a load, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn loads_a_local_dump_and_the_same_receipt_twice_loads_once() {
    let Some((target, url)) = target("load_dup").await else { return };
    // GIVEN a dump of two tables in three files, with both receipt copies
    let dir = tempfile::tempdir().unwrap();
    let dump =
        Dump::new(RUN1, None).table("companies", companies(0, 2500, false), 3).table("contacts", contacts(40), 1);
    dump.write_local(dir.path(), "byob");
    // WHEN the run copy and then the root copy are delivered
    let first = Loader::local().load(&run_receipt(dir.path(), "byob", RUN1), &target).await.unwrap();
    let second = Loader::local().load(&root_receipt(dir.path(), "byob"), &target).await.unwrap();
    // THEN the first loads, the second is the same receipt and loads nothing
    assert_eq!(loaded(&first).rows, 2540);
    assert_eq!(loaded(&first).tables, vec![("companies".into(), 2500), ("contacts".into(), 40)]);
    assert!(matches!(second, LoadOutcome::Duplicate { ref run, .. } if run == RUN1), "{second:?}");
    let client = postgres_harness::client(&url).await;
    assert_eq!(checksum(&client, "companies", false).await, expected(&companies(0, 2500, false), false));
    assert_eq!(count(&client, "contacts").await, 40);
    let history = client.query("SELECT run, tables, rows FROM byob_load_history", &[]).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].get::<_, Vec<String>>(1), vec!["companies", "contacts"]);
    assert_eq!(history[0].get::<_, i64>(2), 2540);
    // and the staging tables are gone
    let staged: i64 =
        client.query_one("SELECT count(*) FROM pg_tables WHERE schemaname = 'byob_staging'", &[]).await.unwrap().get(0);
    assert_eq!(staged, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_older_receipt_after_a_newer_one_is_refused_and_reported() {
    let Some((target, url)) = target("load_older").await else { return };
    let dir = tempfile::tempdir().unwrap();
    Dump::new(RUN1, None).table("companies", companies(0, 100, false), 1).write_local(dir.path(), "p");
    Dump::new(RUN2, Some(RUN1)).table("companies", companies(1000, 120, false), 1).write_local(dir.path(), "p");
    // WHEN run 2 arrives first, then run 1 (S3 events are unordered)
    loaded(&Loader::local().load(&run_receipt(dir.path(), "p", RUN2), &target).await.unwrap());
    let late = Loader::local().load(&run_receipt(dir.path(), "p", RUN1), &target).await.unwrap_err();
    // THEN run 1 is not applied, the table keeps run 2, and the operator gets an error (not a
    // quiet skip) that no retry fixes
    assert!(matches!(late, LoadError::Older { ref loaded_run, .. } if loaded_run == RUN2), "{late:?}");
    assert!(!late.is_retryable());
    let client = postgres_harness::client(&url).await;
    assert_eq!(checksum(&client, "companies", false).await, expected(&companies(1000, 120, false), false));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_far_future_run_is_refused_and_later_dumps_still_load() {
    let Some((target, url)) = target("load_future").await else { return };
    let dir = tempfile::tempdir().unwrap();
    // GIVEN a receipt someone wrote for run 9999-12-31T23:59, then a real dump
    Dump::new("9999-12-31T23:59", None).table("companies", companies(0, 10, false), 1).write_local(dir.path(), "p");
    Dump::new(RUN1, None).table("companies", companies(0, 100, false), 1).write_local(dir.path(), "q");
    // WHEN the far-future receipt arrives first
    let err = Loader::local().load(&run_receipt(dir.path(), "p", "9999-12-31T23:59"), &target).await.unwrap_err();
    // THEN it is refused, naming the run, and changes nothing ...
    assert!(matches!(err, LoadError::Receipt { .. }) && err.to_string().contains("future"), "{err}");
    let client = postgres_harness::client(&url).await;
    assert!(!exists(&client, "companies").await);
    // ... so the real dump after it still loads
    loaded(&Loader::local().load(&run_receipt(dir.path(), "q", RUN1), &target).await.unwrap());
    assert_eq!(count(&client, "companies").await, 100);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_file_loads_nothing_and_names_the_key() {
    let Some((target, url)) = target("load_missing").await else { return };
    let dir = tempfile::tempdir().unwrap();
    let dump = Dump::new(RUN1, None).table("companies", companies(0, 300, false), 3).table("contacts", contacts(5), 1);
    dump.write_local(dir.path(), "p");
    let gone = dump.files[1].0.clone();
    std::fs::remove_file(dir.path().join("p").join(&gone)).unwrap();
    let err = Loader::local().load(&run_receipt(dir.path(), "p", RUN1), &target).await.unwrap_err();
    assert!(matches!(&err, LoadError::Missing { key, .. } if *key == gone), "{err}");
    assert!(err.to_string().contains(&gone) && err.to_string().contains("receipt.run.json"), "{err}");
    let client = postgres_harness::client(&url).await;
    assert!(!exists(&client, "companies").await && !exists(&client, "contacts").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_file_fails_on_its_sha256_and_the_live_table_is_kept() {
    let Some((target, url)) = target("load_tampered").await else { return };
    let dir = tempfile::tempdir().unwrap();
    Dump::new(RUN1, None).table("companies", companies(0, 50, false), 1).write_local(dir.path(), "p");
    loaded(&Loader::local().load(&run_receipt(dir.path(), "p", RUN1), &target).await.unwrap());
    // GIVEN run 2 whose file had one byte changed (same size)
    let dump = Dump::new(RUN2, Some(RUN1)).table("companies", companies(500, 60, false), 1);
    dump.write_local(dir.path(), "p");
    let path = dir.path().join("p").join(&dump.files[0].0);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    // WHEN it is loaded THEN it fails naming the key and the sha256
    let err = Loader::local().load(&run_receipt(dir.path(), "p", RUN2), &target).await.unwrap_err();
    assert!(matches!(err, LoadError::Tampered { .. }), "{err}");
    assert!(err.to_string().contains("sha256") && err.to_string().contains(&dump.files[0].0), "{err}");
    let client = postgres_harness::client(&url).await;
    assert_eq!(checksum(&client, "companies", false).await, expected(&companies(0, 50, false), false));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_outside_the_prefix_is_refused_before_anything_is_read() {
    let Some((target, url)) = target("load_outside").await else { return };
    for bad in
        ["2023-03-13T15:04/companies/companies_000000000000.parquet.gz", "../secret/x.parquet.gz", "s3://other/x"]
    {
        let dir = tempfile::tempdir().unwrap();
        let mut dump = Dump::new(RUN1, None).table("companies", companies(0, 10, false), 1);
        dump.rename_key(0, bad);
        dump.write_local(dir.path(), "p");
        let err = Loader::local().load(&run_receipt(dir.path(), "p", RUN1), &target).await.unwrap_err();
        assert!(matches!(err, LoadError::Receipt { .. }), "{bad}: {err}");
        assert!(err.to_string().contains(bad), "{err}");
    }
    let client = postgres_harness::client(&url).await;
    assert!(!exists(&client, "companies").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_staging_and_swap_leaves_the_live_table_and_the_next_delivery_completes() {
    let Some((target, url)) = target("load_crash").await else { return };
    let dir = tempfile::tempdir().unwrap();
    Dump::new(RUN1, None).table("companies", companies(0, 400, false), 2).write_local(dir.path(), "p");
    Dump::new(RUN2, Some(RUN1)).table("companies", companies(9000, 450, false), 2).write_local(dir.path(), "p");
    loaded(&Loader::local().load(&run_receipt(dir.path(), "p", RUN1), &target).await.unwrap());
    // WHEN run 2 stops after staging (as a crash there would)
    let crashing = target.clone().failing_before_swap(true);
    let err = Loader::local().load(&run_receipt(dir.path(), "p", RUN2), &crashing).await.unwrap_err();
    assert!(matches!(err, LoadError::Interrupted { .. }) && err.is_retryable(), "{err}");
    // THEN readers still see run 1 in full
    let client = postgres_harness::client(&url).await;
    assert_eq!(checksum(&client, "companies", false).await, expected(&companies(0, 400, false), false));
    // WHEN the receipt is delivered again THEN run 2 is loaded
    let again = Loader::local().load(&root_receipt(dir.path(), "p"), &target).await.unwrap();
    assert_eq!(loaded(&again).run, RUN2);
    assert_eq!(checksum(&client, "companies", false).await, expected(&companies(9000, 450, false), false));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_added_column_is_added_and_a_changed_type_is_a_clear_error() {
    let Some((target, url)) = target("load_schema").await else { return };
    let dir = tempfile::tempdir().unwrap();
    Dump::new(RUN1, None).table("companies", companies(0, 30, false), 1).write_local(dir.path(), "p");
    Dump::new(RUN2, Some(RUN1)).table("companies", companies(100, 35, true), 1).write_local(dir.path(), "p");
    loaded(&Loader::local().load(&run_receipt(dir.path(), "p", RUN1), &target).await.unwrap());
    let client = postgres_harness::client(&url).await;
    client.batch_execute("CREATE VIEW big AS SELECT id FROM companies WHERE id > 10").await.unwrap();
    // WHEN run 2 has a new column "country"
    loaded(&Loader::local().load(&run_receipt(dir.path(), "p", RUN2), &target).await.unwrap());
    // THEN it is added, filled, and the dependent view still works
    assert_eq!(checksum(&client, "companies", true).await, expected(&companies(100, 35, true), true));
    let big: i64 = client.query_one("SELECT count(*) FROM big", &[]).await.unwrap().get(0);
    assert_eq!(big, 35);
    // WHEN run 3 changes "name" from string to int64 THEN nothing is applied and the error says so
    let bad = Dump::new(RUN3, Some(RUN2)).table("companies", renamed_type(), 1);
    bad.write_local(dir.path(), "p");
    let err = Loader::local().load(&run_receipt(dir.path(), "p", RUN3), &target).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, LoadError::Schema { .. }), "{msg}");
    assert!(msg.contains("\"name\"") && msg.contains("text") && msg.contains("int64"), "{msg}");
    assert_eq!(checksum(&client, "companies", true).await, expected(&companies(100, 35, true), true));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_loaders_racing_on_one_receipt_apply_it_once() {
    let Some((target, url)) = target("load_race").await else { return };
    let dir = tempfile::tempdir().unwrap();
    Dump::new(RUN1, None).table("companies", companies(0, 3000, false), 3).write_local(dir.path(), "p");
    let a = run_receipt(dir.path(), "p", RUN1);
    let b = root_receipt(dir.path(), "p");
    let (t1, t2) = (target.clone(), target.clone());
    let one = tokio::spawn(async move { Loader::local().load(&a, &t1).await.unwrap() });
    let two = tokio::spawn(async move { Loader::local().load(&b, &t2).await.unwrap() });
    let outcomes = [one.await.unwrap(), two.await.unwrap()];
    let applied = outcomes.iter().filter(|o| matches!(o, LoadOutcome::Loaded(_))).count();
    assert_eq!(applied, 1, "{outcomes:?}");
    let client = postgres_harness::client(&url).await;
    assert_eq!(checksum(&client, "companies", false).await, expected(&companies(0, 3000, false), false));
    let n: i64 = client.query_one("SELECT count(*) FROM byob_load_history", &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_portable_type_round_trips_through_binary_copy() {
    let Some((target, url)) = target("load_types").await else { return };
    let dir = tempfile::tempdir().unwrap();
    Dump::new(RUN1, None).table("types", all_types(), 1).write_local(dir.path(), "p");
    loaded(&Loader::local().load(&run_receipt(dir.path(), "p", RUN1), &target).await.unwrap());
    let client = postgres_harness::client(&url).await;
    client.batch_execute("SET TimeZone = 'UTC'").await.unwrap();
    let rows = client.query(&all_types_query(), &[]).await.unwrap();
    let got: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(got, all_types_as_postgres_text());
}

#[test]
fn locations_parse() {
    assert_eq!(
        ReceiptLocation::parse("s3://b/p/receipt.json").unwrap(),
        ReceiptLocation::S3 { bucket: "b".into(), key: "p/receipt.json".into() }
    );
    assert!(ReceiptLocation::parse("s3://b").is_err());
    assert!(matches!(ReceiptLocation::parse("./x/receipt.json").unwrap(), ReceiptLocation::Path(_)));
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_and_json_lines_dumps_load_the_same_rows_as_parquet() {
    for (n, format) in load_support::formats().into_iter().enumerate() {
        let Some((target, url)) = target(&format!("load_fmt{n}")).await else { return };
        let dir = tempfile::tempdir().unwrap();
        let mut dump = Dump::new(RUN1, None);
        dump.format = format.clone();
        dump.table("companies", companies(0, 700, true), 2).write_local(dir.path(), "p");
        loaded(&Loader::local().load(&run_receipt(dir.path(), "p", RUN1), &target).await.unwrap());
        let client = postgres_harness::client(&url).await;
        assert_eq!(checksum(&client, "companies", true).await, expected(&companies(0, 700, true), true), "{format:?}");
    }
}

/// CSV cannot tell NULL from an empty string unless asked: with `null = "\\N"` both load as
/// they were; by default (empty NULL text) both load as NULL, the documented trade-off.
#[tokio::test(flavor = "multi_thread")]
async fn csv_with_a_null_text_loads_null_and_empty_string_distinctly() {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use byob::format::{Codec, Format, FormatKind};
    let schema =
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("note", DataType::Utf8, true)]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
        Arc::new(StringArray::from(vec![Some(""), None, Some("x"), Some("")])),
    ];
    let batch = arrow::record_batch::RecordBatch::try_new(schema, columns).unwrap();
    for (n, null, expected) in [(0, Some("\\N"), (2i64, 1i64)), (1, None, (0, 3))] {
        let Some((target, url)) = target(&format!("load_null{n}")).await else { return };
        let dir = tempfile::tempdir().unwrap();
        let mut dump = Dump::new(RUN1, None);
        dump.format = Format { null: null.map(str::to_owned), ..Format::new(FormatKind::Csv, Codec::Gzip) };
        dump.table("notes", batch.clone(), 1).write_local(dir.path(), "p");
        loaded(&Loader::local().load(&run_receipt(dir.path(), "p", RUN1), &target).await.unwrap());
        let client = postgres_harness::client(&url).await;
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE note = ''), count(*) FILTER (WHERE note IS NULL) FROM public.notes",
                &[],
            )
            .await
            .unwrap();
        assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), expected, "null text {null:?}");
    }
}

/// A receipt is hostile input: it may name any table. The loader alters, truncates or fills
/// only tables it created itself (its registry), and never a `byob_*` table of its own.
#[tokio::test(flavor = "multi_thread")]
async fn a_receipt_never_touches_a_table_the_loader_did_not_create() {
    let Some((target, url)) = target("load_foreign").await else { return };
    let client = postgres_harness::client(&url).await;
    // GIVEN the customer's own table `companies` (one row) in the loader's schema
    client
        .batch_execute("CREATE TABLE companies (id bigint, note text); INSERT INTO companies VALUES (1, 'ours')")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    Dump::new(RUN1, None).table("companies", companies(0, 100, false), 1).write_local(dir.path(), "p");
    // WHEN a receipt names it
    let err = Loader::local().load(&run_receipt(dir.path(), "p", RUN1), &target).await.unwrap_err();
    // THEN nothing is altered or truncated, and the error names the table and the fix
    assert!(matches!(err, LoadError::Schema { .. }) && err.to_string().contains("did not create"), "{err}");
    assert!(!err.is_retryable());
    let rows: Vec<(i64, String)> = client
        .query("SELECT id, note FROM companies", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rows, [(1, "ours".to_owned())]);
    let columns: i64 = client
        .query_one("SELECT count(*) FROM information_schema.columns WHERE table_name = 'companies'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(columns, 2, "no column was added");

    // AND a receipt naming the loader's own history is refused before anything is read
    Dump::new(RUN2, None).table("byob_load_history", companies(0, 1, false), 1).write_local(dir.path(), "q");
    let err = Loader::local().load(&run_receipt(dir.path(), "q", RUN2), &target).await.unwrap_err();
    assert!(matches!(err, LoadError::Receipt { .. }) && err.to_string().contains("byob_"), "{err}");

    // AND a table the loader created keeps loading, across a renamed-away customer table
    client.batch_execute("ALTER TABLE companies RENAME TO customer_companies").await.unwrap();
    loaded(&Loader::local().load(&run_receipt(dir.path(), "p", RUN1), &target).await.unwrap());
    Dump::new(RUN2, Some(RUN1)).table("companies", companies(5, 50, false), 1).write_local(dir.path(), "p");
    loaded(&Loader::local().load(&run_receipt(dir.path(), "p", RUN2), &target).await.unwrap());
    assert_eq!(count(&client, "companies").await, 50);
    assert_eq!(count(&client, "customer_companies").await, 1);
}

/// An allow-list: only the listed tables of a receipt are loaded; the others are never read,
/// created or touched, and a receipt naming none of them is ignored.
#[tokio::test(flavor = "multi_thread")]
async fn an_allow_list_loads_only_its_tables() {
    let Some((target, url)) = target("load_allow").await else { return };
    let dir = tempfile::tempdir().unwrap();
    Dump::new(RUN1, None)
        .table("companies", companies(0, 100, false), 2)
        .table("contacts", contacts(7), 1)
        .write_local(dir.path(), "p");
    // GIVEN companies' files are gone: an allow-list without it must not even look for them
    for (key, _) in Dump::new(RUN1, None).table("companies", companies(0, 100, false), 2).files {
        let _ = std::fs::remove_file(dir.path().join("p").join(key));
    }
    let loader = Loader::local().only_tables(["contacts".to_owned()]);
    let report = loaded(&loader.load(&run_receipt(dir.path(), "p", RUN1), &target).await.unwrap()).clone();
    assert_eq!(report.tables, [("contacts".to_owned(), 7)]);
    let client = postgres_harness::client(&url).await;
    assert_eq!(count(&client, "contacts").await, 7);
    assert!(!exists(&client, "companies").await);
    // A receipt with none of the allowed tables is ignored.
    let only_orders = Loader::local().only_tables(["orders".to_owned()]);
    Dump::new(RUN2, Some(RUN1)).table("contacts", contacts(9), 1).write_local(dir.path(), "q");
    let outcome = only_orders.load(&run_receipt(dir.path(), "q", RUN2), &target).await.unwrap();
    assert!(matches!(outcome, LoadOutcome::Ignored { .. }), "{outcome:?}");
    assert_eq!(count(&client, "contacts").await, 7);
}

/// PostgreSQL's -infinity and infinity dates and timestamps, as the PostgreSQL source exports
/// them (i32::MIN/MAX days, i64::MIN/MAX microseconds), load back as infinities.
#[tokio::test(flavor = "multi_thread")]
async fn infinite_dates_and_timestamps_load_back_as_infinities() {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Date32Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    let Some((target, url)) = target("load_infinity").await else { return };
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("d", DataType::Date32, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new("tz", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, 2, 3])),
        Arc::new(Date32Array::from(vec![i32::MAX, i32::MIN, 19_430])),
        Arc::new(TimestampMicrosecondArray::from(vec![i64::MAX, i64::MIN, 1_678_766_587_000_000])),
        Arc::new(TimestampMicrosecondArray::from(vec![i64::MIN, i64::MAX, 0]).with_timezone("UTC")),
    ];
    let batch = RecordBatch::try_new(Arc::new(schema), columns).unwrap();
    let dir = tempfile::tempdir().unwrap();
    Dump::new(RUN1, None).table("moments", batch, 1).write_local(dir.path(), "p");
    loaded(&Loader::local().load(&run_receipt(dir.path(), "p", RUN1), &target).await.unwrap());
    let client = postgres_harness::client(&url).await;
    client.batch_execute("SET TimeZone = 'UTC'").await.unwrap();
    let rows: Vec<String> = client
        .query("SELECT concat_ws('|', d::text, ts::text, tz::text) FROM moments ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        rows,
        [
            "infinity|infinity|-infinity",
            "-infinity|-infinity|infinity",
            "2023-03-14|2023-03-14 04:03:07|1970-01-01 00:00:00+00"
        ]
    );
}

/// The loader's connection is verified TLS unless the URL (or the secret, or BYOB_LOAD_TLS)
/// says otherwise: against a server without TLS it fails before touching anything, for good,
/// saying how to allow plain text on a trusted network.
#[tokio::test(flavor = "multi_thread")]
async fn tls_is_required_unless_the_url_says_otherwise() {
    use byob::config::TlsMode;
    use byob::load::TargetTls;

    let Some((plain, url)) = target("load_tls").await else { return };
    assert_eq!(plain.tls_mode(), TlsMode::Disable, "the URL says sslmode=disable");
    let without = url.replace("?sslmode=disable", "");
    assert!(!without.contains("sslmode"), "{without}");
    let strict = PostgresTarget::from_url(&without).unwrap();
    assert_eq!(strict.tls_mode(), TlsMode::Require);
    let overridden = TargetTls { mode: Some(TlsMode::Prefer), ca_file: None };
    assert_eq!(PostgresTarget::from_url_with(&url, &overridden).unwrap().tls_mode(), TlsMode::Prefer);

    let dir = tempfile::tempdir().unwrap();
    Dump::new(RUN1, None).table("companies", companies(0, 10, false), 1).write_local(dir.path(), "p");
    let e = Loader::local().load(&root_receipt(dir.path(), "p"), &strict).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    let message = e.to_string();
    assert!(message.contains("does not offer TLS") && message.contains("sslmode=disable"), "{message}");
    let client = postgres_harness::client(&url).await;
    let tables: i64 = client
        .query_one("SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "nothing created");
    // The same URL with sslmode=disable loads.
    Loader::local().load(&root_receipt(dir.path(), "p"), &plain).await.unwrap();
}

/// By default the loader fills a schema of its own, `byob`: a default load never touches a
/// table of `public`, even one named like a dumped table.
#[tokio::test(flavor = "multi_thread")]
async fn the_default_schema_is_the_loaders_own() {
    let Some((_, url)) = target("load_default_schema").await else { return };
    let client = postgres_harness::client(&url).await;
    client
        .batch_execute("CREATE TABLE public.companies (note text); INSERT INTO public.companies VALUES ('ours')")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    Dump::new(RUN1, None).table("companies", companies(0, 25, false), 1).write_local(dir.path(), "p");
    let target = PostgresTarget::from_url(&url).unwrap();
    assert_eq!(byob::load::DEFAULT_SCHEMA, "byob");
    let outcome = Loader::local().load(&root_receipt(dir.path(), "p"), &target).await.unwrap();
    assert_eq!(loaded(&outcome).rows, 25);
    let loaded_rows: i64 = client.query_one("SELECT count(*) FROM byob.companies", &[]).await.unwrap().get(0);
    assert_eq!(loaded_rows, 25);
    let ours: Vec<String> =
        client.query("SELECT note FROM public.companies", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(ours, ["ours"], "public.companies untouched");
}
