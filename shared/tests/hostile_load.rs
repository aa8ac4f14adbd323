//! Hostile names and hostile receipts, end to end into PostgreSQL.
//!
//! Proves that
//! - column names, a tenant value and target schema names full of quotes, semicolons,
//!   backslashes, SQL comments, newlines and unicode (e.g. a column `x"; DROP TABLE t; --`)
//!   go from a Parquet lake through `byob::run` (Parquet, CSV with `;` and `,`, JSON lines)
//!   and `byob::load` into PostgreSQL with every name and value intact, and that nothing is
//!   injected: the sentinel tables the names try to drop or empty are untouched;
//! - a table name that is not an identifier never gets that far: the config refuses it,
//!   and so does the loader when a receipt carries one;
//! - a receipt in S3 (moto) that lists `../`, absolute, or other-bucket keys is refused
//!   after reading the receipt alone: moto recorded no other request, and no table exists;
//! - a 100 MB receipt is refused, naming the limit and the receipt, without being read:
//!   locally on its size (a sparse file), and in S3 on its Content-Length.

#![allow(clippy::unwrap_used)]

use byob_testkit::moto;
use byob_testkit::postgres as postgres_harness;

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use byob::config::Config;
use byob::layout::RunId;
use byob::load::{LoadError, LoadOutcome, Loader, PostgresTarget, ReceiptLocation};
use byob::plan::PlanFilter;
use byob::run::{self, RunOptions, Silent};
use serde_json::{Value, json};

/// The names the test throws at every layer.
const COLUMNS: &[&str] = &[
    "id",
    "tenant_id",
    "x\"; DROP TABLE t; --",
    "'; DELETE FROM victims; --",
    "semi;colon",
    "back\\slash",
    "名前 ünïcødé 😀",
    "\"quoted\"",
    "a,b",
    "$1",
    "Mixed Case",
    "mixed case",
    "new\nline",
    "%s%n{}",
];

const TENANT: &str = "acme'; DROP TABLE t; --";

/// A value for row `i` of column `c` (never empty: CSV writes NULL and "" alike).
fn value(i: usize, c: &str) -> String {
    let samples = [
        "'; DROP TABLE t; --",
        "a\"b",
        "back\\slash\\",
        "x;y",
        "line\nbreak",
        "tab\there",
        "ünï 😀",
        "\\N",
        "NULL",
        ",",
    ];
    format!("{}{c}{}", samples[i % samples.len()], i)
}

/// The lake: table `hostile` with [`COLUMNS`], rows of [`TENANT`] and of another tenant.
fn lake(dir: &Path) -> Vec<Value> {
    let rows = 25usize;
    let tenant_of = |i: usize| if i.is_multiple_of(3) { "other" } else { TENANT };
    let fields: Vec<Field> = COLUMNS
        .iter()
        .map(|c| Field::new(*c, if *c == "id" { DataType::Int64 } else { DataType::Utf8 }, *c != "id"))
        .collect();
    let columns: Vec<ArrayRef> = COLUMNS
        .iter()
        .map(|c| -> ArrayRef {
            match *c {
                "id" => Arc::new(Int64Array::from((0..rows as i64).collect::<Vec<_>>())),
                "tenant_id" => Arc::new(StringArray::from((0..rows).map(tenant_of).collect::<Vec<_>>())),
                c => Arc::new(StringArray::from((0..rows).map(|i| value(i, c)).collect::<Vec<_>>())),
            }
        })
        .collect();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let folder = dir.join("lake/hostile");
    std::fs::create_dir_all(&folder).unwrap();
    let file = std::fs::File::create(folder.join("part-0.parquet")).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    // The rows the tenant must get, as PostgreSQL's row_to_json renders them.
    (0..rows)
        .filter(|i| tenant_of(*i) == TENANT)
        .map(|i| {
            let mut row = serde_json::Map::new();
            for c in COLUMNS {
                let v = match *c {
                    "id" => json!(i),
                    "tenant_id" => json!(TENANT),
                    c => json!(value(i, c)),
                };
                row.insert((*c).to_owned(), v);
            }
            Value::Object(row)
        })
        .collect()
}

/// (destination id, format, the target schema it is loaded into)
const DESTINATIONS: &[(&str, &str, &str)] = &[
    ("pq", r#"{"type": "parquet", "codec": "zstd"}"#, "we\"ird; schema"),
    ("csv-semicolon", r#"{"type": "csv", "codec": "gzip", "delimiter": ";"}"#, "csv'; DROP SCHEMA public; --"),
    ("csv-comma", r#"{"type": "csv", "codec": "none"}"#, "csv_comma"),
    ("jsonl", r#"{"type": "jsonl", "codec": "gzip"}"#, "ünï 😀"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_column_names_tenant_and_schema_survive_export_and_load_without_injection() {
    let Some(pg) = postgres_harness::shared() else { return };
    let db = pg.database("hostile_names").await;
    let url = pg.url(&db);
    let client = postgres_harness::client(&url).await;
    // Sentinels the names try to destroy.
    client
        .batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1); CREATE TABLE victims (x int); INSERT INTO victims VALUES (2);")
        .await
        .unwrap();

    // GIVEN a lake whose column names and tenant are hostile, and four destinations
    let dir = tempfile::tempdir().unwrap();
    let expected = lake(dir.path());
    let destinations: Vec<Value> = DESTINATIONS
        .iter()
        .map(|(id, format, _)| {
            json!({"id": id, "tenant": TENANT, "folder": format!("buckets/{id}"), "prefix": "dump",
                   "format": serde_json::from_str::<Value>(format).unwrap()})
        })
        .collect();
    let config = json!({
        "source": {"type": "parquet", "path": dir.path().join("lake")},
        "tables": ["hostile"],
        "destinations": destinations,
        "state": {"path": dir.path().join("state")},
    });
    let config = Config::from_value(config, dir.path()).unwrap_or_else(|e| panic!("{e}"));

    // WHEN the dump runs and every destination is loaded into its own (hostile) schema
    let run: RunId = "2024-05-06T07:08".parse().unwrap();
    let report = run::run(&config, &RunOptions { run, filter: PlanFilter::default() }, Arc::new(Silent)).await.unwrap();
    assert_eq!(
        report.failed().count(),
        0,
        "{:?}",
        report.failed().map(|d| d.outcome.as_ref().err().map(ToString::to_string)).collect::<Vec<_>>()
    );
    for (id, _, schema) in DESTINATIONS {
        let receipt = ReceiptLocation::Path(dir.path().join("buckets").join(id).join("dump/receipt.json"));
        let target = PostgresTarget::from_url(&url).unwrap().with_schema(schema);
        let outcome = Loader::local().load(&receipt, &target).await.unwrap_or_else(|e| panic!("{id}: {e}"));
        assert!(matches!(&outcome, LoadOutcome::Loaded(r) if r.rows == expected.len() as u64), "{id}: {outcome:?}");

        // THEN the table has exactly the lake's column names, in order ...
        let names: Vec<String> = client
            .query(
                "SELECT column_name::text FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'hostile' ORDER BY ordinal_position",
                &[schema],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(names, COLUMNS, "{id}");
        // ... and exactly the tenant's rows, every value intact
        let quoted = format!("\"{}\"", schema.replace('"', "\"\""));
        let rows: Vec<Value> = client
            .query(&format!("SELECT row_to_json(h)::text FROM {quoted}.hostile h ORDER BY id"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap())
            .collect();
        assert_eq!(rows, expected, "{id}");
    }
    // AND nothing was injected: the sentinels and the public schema are intact.
    let t: i64 = client.query_one("SELECT count(*) FROM public.t", &[]).await.unwrap().get(0);
    let victims: i64 = client.query_one("SELECT count(*) FROM public.victims", &[]).await.unwrap().get(0);
    assert_eq!((t, victims), (1, 1));
}

#[test]
fn a_table_name_that_is_not_an_identifier_is_refused_by_config_and_loader() {
    for bad in ["x\"; DROP TABLE t; --", "t;", "t'", "back\\slash", "名前", "../t", "t t"] {
        let config = json!({
            "source": {"type": "parquet", "path": "lake"},
            "tables": [bad],
            "destinations": [{"id": "a", "tenant": "a", "folder": "out"}],
        });
        let errors = Config::from_value(config, Path::new("/srv")).unwrap_err();
        let p = errors.at("tables[0].name").unwrap_or_else(|| panic!("{bad:?}: {errors}"));
        assert!(p.to_string().contains("1-63 ASCII letters"), "{p}");
        // A receipt naming such a table is refused before anything is read.
        let receipt = json!({
            "version": 1, "timestamp": "2023-03-14T04:03:07.963883Z", "run": "2023-03-14T04:03",
            "previous_run": null, "format": {"type": "parquet", "codec": "gzip"},
            "tables": {bad: {"folder": "2023-03-14T04:03/t", "total_file_count": 0, "row_count": 0, "byte_count": 0,
                            "schema": [{"name": "id", "type": "int64", "nullable": false}], "files": []}}
        });
        let receipt = byob::receipt::Receipt::from_json(receipt.to_string().as_bytes()).unwrap();
        let e = byob::load::verify::check_receipt(&receipt).unwrap_err();
        assert!(e.contains(&format!("{bad:?}")) && e.contains("1-63 ASCII letters"), "{e}");
    }
}

/// A valid one-table receipt of run [`RUN`] whose one file has `key`.
fn receipt_with_key(key: &str) -> Value {
    json!({
        "version": 1, "timestamp": "2023-03-14T04:03:07.963883Z", "run": RUN, "previous_run": null,
        "format": {"type": "parquet", "codec": "gzip"},
        "tables": {"companies": {
            "folder": format!("{RUN}/companies"), "total_file_count": 1, "row_count": 1, "byte_count": 4,
            "schema": [{"name": "id", "type": "int64", "nullable": false}],
            "files": [{"key": key, "rows": 1, "bytes": 4, "sha256": "ab".repeat(32)}]
        }}
    })
}

const RUN: &str = "2023-03-14T04:03";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_in_s3_that_point_outside_are_refused_before_any_file_is_read() {
    let Some(pg) = postgres_harness::shared() else { return };
    let Some(moto) = moto::Moto::start() else { return };
    let db = pg.database("hostile_s3").await;
    let url = pg.url(&db);
    let admin = moto.admin_config();
    let s3 = moto.s3(&admin);
    for bucket in ["acme-data", "other-bucket"] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
    }
    // Objects an attacker would like the loader to read.
    for (bucket, key) in
        [("other-bucket", "p/2023-03-14T04:03/companies/x"), ("acme-data", "secret/x"), ("acme-data", "x")]
    {
        s3.put_object().bucket(bucket).key(key).body(b"PAR1".to_vec().into()).send().await.unwrap();
    }
    let loader = Loader::with_s3(s3.clone());
    let target = PostgresTarget::from_url(&url).unwrap().with_schema("public");
    for (n, bad) in [
        "s3://other-bucket/p/2023-03-14T04:03/companies/x",
        "../../secret/x",
        "2023-03-14T04:03/companies/../../../secret/x",
        "/x",
        "//x",
        "arn:aws:s3:::other-bucket/p/2023-03-14T04:03/companies/x",
        "2023-03-14T04:03/companies\\..\\..\\x",
        "2023-03-13T15:04/companies/x",
    ]
    .into_iter()
    .enumerate()
    {
        let key = format!("p{n}/receipt.json");
        let body = receipt_with_key(bad).to_string().into_bytes();
        s3.put_object().bucket("acme-data").key(&key).body(body.into()).send().await.unwrap();
        moto.start_recording();
        let location = ReceiptLocation::S3 { bucket: "acme-data".into(), key: key.clone() };
        let e = loader.load(&location, &target).await.unwrap_err();
        assert!(matches!(e, LoadError::Receipt { .. }), "{bad}: {e}");
        let message = e.to_string();
        assert!(message.contains(&format!("s3://acme-data/{key}")), "names the receipt: {message}");
        let shown = format!("{bad:?}");
        assert!(message.contains(&shown), "names the key: {message}");
        // Only the receipt itself was read.
        let requests: Vec<String> = moto
            .recorded()
            .iter()
            .filter(|r| !r.url.contains("/moto-api/"))
            .map(|r| format!("{} {}", r.method, r.url))
            .collect();
        assert_eq!(requests.len(), 1, "{bad}: {requests:?}");
        assert!(
            requests[0].starts_with("GET ") && requests[0].contains(&format!("/acme-data/p{n}/receipt.json")),
            "{requests:?}"
        );
    }
    let client = postgres_harness::client(&url).await;
    let tables: i64 = client
        .query_one("SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "nothing was created");
}

const HUNDRED_MB: u64 = 100 * 1000 * 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_receipt_is_refused_naming_the_limit_without_reading_it() {
    // GIVEN a 100 MB receipt.json on disk, sparse: refusing it must not need to read it
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p/receipt.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::File::create(&path).unwrap().set_len(HUNDRED_MB).unwrap();
    let target = PostgresTarget::from_url("postgresql://nobody@127.0.0.1:9/never?sslmode=disable").unwrap();
    let location = ReceiptLocation::Path(path.clone());
    let e = Loader::local().load(&location, &target).await.unwrap_err();
    let message = e.to_string();
    assert!(matches!(e, LoadError::Receipt { .. }) && !e.is_retryable(), "{message}");
    assert!(message.contains(&path.display().to_string()), "names the receipt: {message}");
    assert!(message.contains("67108864 bytes (64 MiB)") && message.contains("100000000"), "names the limit: {message}");

    // AND the same receipt in S3 is refused on its Content-Length
    let Some(moto) = moto::Moto::start() else { return };
    let s3 = moto.s3(&moto.admin_config());
    s3.create_bucket().bucket("acme-data").send().await.unwrap();
    let mut body = b"{\"version\": 1, \"pad\": \"".to_vec();
    body.resize(HUNDRED_MB as usize - 2, b' ');
    body.extend_from_slice(b"\"}");
    s3.put_object().bucket("acme-data").key("p/receipt.json").body(body.into()).send().await.unwrap();
    let location = ReceiptLocation::S3 { bucket: "acme-data".into(), key: "p/receipt.json".into() };
    let e = Loader::with_s3(s3).load(&location, &target).await.unwrap_err();
    let message = e.to_string();
    assert!(matches!(e, LoadError::Receipt { .. }), "{message}");
    assert!(message.contains("s3://acme-data/p/receipt.json") && message.contains("64 MiB"), "{message}");
}
