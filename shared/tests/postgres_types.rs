//! The PostgreSQL source against a real server (see `postgres_harness`): every supported type
//! round-trips real values, NULLs and edge values included, from PostgreSQL through byob's
//! export pipeline into Parquet and back, compared with what PostgreSQL itself says the
//! values are. Also: unsupported types fail before any file is written, naming table, column
//! and type; hostile identifiers and tenant values cannot inject; batches stay bounded.

#![allow(clippy::unwrap_used)]

use byob_testkit::postgres as postgres_harness;

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::{sort_to_indices, take_record_batch};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimeUnit, TimestampMicrosecondType,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use byob::format::Codec;
use byob::source::postgres::{BatchLimits, Connector, PgSource, PgTable};
use byob::source::{Bounds, Source, TableRequest};
use futures::TryStreamExt;
use postgres_harness::{export_parquet, files_under};
use tokio_postgres::Client;

/// One test's database: a client for setting up and probing, and a source reading it.
struct Db {
    client: Client,
    connector: Connector,
    name: String,
}

/// A fresh database whose sessions default to a non-UTC time zone (so nothing depends on
/// it), or `None` when PostgreSQL is unavailable (the harness has said so loudly).
async fn db(prefix: &str) -> Option<Db> {
    let pg = postgres_harness::shared()?;
    let name = pg.database(prefix).await;
    let admin = postgres_harness::client(&pg.url(&name)).await;
    admin.batch_execute(&format!("ALTER DATABASE \"{name}\" SET timezone = 'America/New_York'")).await.unwrap();
    let client = postgres_harness::client(&pg.url(&name)).await;
    client.batch_execute("SET intervalstyle = 'iso_8601'").await.unwrap();
    Some(Db { client, connector: pg.connector(&name), name })
}

impl Db {
    /// A new source: a source reads one snapshot, exported on first use, so tables made
    /// after that are read by a new one.
    fn source(&self) -> PgSource {
        PgSource::new(self.connector.clone())
    }

    /// Creates `table (id, tenant_id, v <ty>)` holding `values` (SQL expressions) for
    /// tenant acme and the same again for tenant other, exports acme's rows to Parquet and
    /// returns them read back, ordered by id.
    async fn round_trip(&self, table: &str, ty: &str, values: &[&str]) -> RecordBatch {
        let rows: Vec<String> = values.iter().enumerate().map(|(i, v)| format!("({i}, 'acme', {v})")).collect();
        self.client
            .batch_execute(&format!(
                "CREATE TABLE {table} (id integer NOT NULL, tenant_id text NOT NULL, v {ty});
                 INSERT INTO {table} VALUES {};
                 INSERT INTO {table} SELECT id + 1000, 'other', v FROM {table};",
                rows.join(", ")
            ))
            .await
            .unwrap();
        let exported = export_parquet(&self.source(), table, "acme", None, &Bounds::Whole, Codec::Zstd).await.unwrap();
        let batch = exported.rows;
        assert_eq!(batch.num_rows(), values.len(), "{table}: one row per value, none of tenant other");
        assert_eq!(exported.result.rows, values.len() as u64);
        let tenants = batch.column(1).as_string::<i32>();
        assert!(tenants.iter().all(|t| t == Some("acme")));
        let order = sort_to_indices(batch.column(0), None, None).unwrap();
        take_record_batch(&batch, &order).unwrap()
    }

    /// `probe` for every acme row of `table`, ordered by id.
    async fn probe<T: for<'a> tokio_postgres::types::FromSql<'a>>(&self, table: &str, probe: &str) -> Vec<T> {
        self.client
            .query(&format!("SELECT {probe} FROM {table} WHERE tenant_id = 'acme' ORDER BY id"), &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect()
    }
}

fn field_type(batch: &RecordBatch, column: usize) -> &DataType {
    batch.schema_ref().field(column).data_type()
}

fn strings(batch: &RecordBatch, column: usize) -> Vec<Option<String>> {
    batch.column(column).as_string::<i32>().iter().map(|v| v.map(str::to_owned)).collect()
}

#[tokio::test]
async fn smallint_integer_bigint_keep_their_extremes_and_nulls() {
    let Some(db) = db("ints").await else { return };
    let i2 = db.round_trip("i2", "smallint", &["-32768", "32767", "0", "-1", "NULL"]).await;
    assert_eq!(field_type(&i2, 2), &DataType::Int16);
    let got: Vec<Option<i16>> = i2.column(2).as_primitive::<Int16Type>().iter().collect();
    assert_eq!(got, db.probe::<Option<i16>>("i2", "v").await);
    assert_eq!(got, [Some(i16::MIN), Some(i16::MAX), Some(0), Some(-1), None]);

    let i4 = db.round_trip("i4", "integer", &["-2147483648", "2147483647", "0", "NULL", "42"]).await;
    assert_eq!(field_type(&i4, 2), &DataType::Int32);
    let got: Vec<Option<i32>> = i4.column(2).as_primitive::<Int32Type>().iter().collect();
    assert_eq!(got, db.probe::<Option<i32>>("i4", "v").await);
    assert_eq!(got[..2], [Some(i32::MIN), Some(i32::MAX)]);

    let i8 = db.round_trip("i8", "bigint", &["-9223372036854775808", "9223372036854775807", "NULL", "7"]).await;
    assert_eq!(field_type(&i8, 2), &DataType::Int64);
    let got: Vec<Option<i64>> = i8.column(2).as_primitive::<Int64Type>().iter().collect();
    assert_eq!(got, db.probe::<Option<i64>>("i8", "v").await);
    assert_eq!(got[..2], [Some(i64::MIN), Some(i64::MAX)]);

    // The id column is NOT NULL in PostgreSQL, and so in the file's schema.
    assert!(!i8.schema_ref().field(0).is_nullable());
    assert!(i8.schema_ref().field(2).is_nullable());
}

#[tokio::test]
async fn real_and_double_keep_nan_infinities_negative_zero_and_subnormals() {
    let Some(db) = db("floats").await else { return };
    let values =
        ["'NaN'", "'Infinity'", "'-Infinity'", "'-0'", "3.4028235e38", "1e-45", "1.17549435e-38", "0.1", "NULL"];
    let f4 = db.round_trip("f4", "real", &values).await;
    assert_eq!(field_type(&f4, 2), &DataType::Float32);
    let got: Vec<Option<u32>> =
        f4.column(2).as_primitive::<Float32Type>().iter().map(|v| v.map(f32::to_bits)).collect();
    let want: Vec<Option<u32>> =
        db.probe::<Option<f32>>("f4", "v").await.into_iter().map(|v| v.map(f32::to_bits)).collect();
    assert_eq!(got, want);
    assert_eq!(got[3], Some((-0.0f32).to_bits()));

    let values = ["'NaN'", "'Infinity'", "'-Infinity'", "'-0'", "1.7976931348623157e308", "5e-324", "0.1", "NULL"];
    let f8 = db.round_trip("f8", "double precision", &values).await;
    assert_eq!(field_type(&f8, 2), &DataType::Float64);
    let got: Vec<Option<u64>> =
        f8.column(2).as_primitive::<Float64Type>().iter().map(|v| v.map(f64::to_bits)).collect();
    let want: Vec<Option<u64>> =
        db.probe::<Option<f64>>("f8", "v").await.into_iter().map(|v| v.map(f64::to_bits)).collect();
    assert_eq!(got, want);
    assert!(f64::from_bits(got[0].unwrap()).is_nan());
    assert_eq!(got[5], Some(5e-324f64.to_bits()));
}

#[tokio::test]
async fn numeric_with_precision_is_decimal128_and_unconstrained_numeric_is_its_text() {
    let Some(db) = db("numeric").await else { return };
    let cases: [(&str, &str, &[&str], DataType); 4] = [
        (
            "n18",
            "numeric(18,2)",
            &["9999999999999999.99", "-9999999999999999.99", "0", "0.01", "-0.01", "123.4", "NULL"],
            DataType::Decimal128(18, 2),
        ),
        (
            "n38",
            "numeric(38,10)",
            &["9999999999999999999999999999.9999999999", "-0.0000000001", "1", "NULL"],
            DataType::Decimal128(38, 10),
        ),
        (
            "n38s38",
            "numeric(38,38)",
            &["0.99999999999999999999999999999999999999", "-0.00000000000000000000000000000000000001"],
            DataType::Decimal128(38, 38),
        ),
        ("n5", "numeric(5)", &["99999", "-99999", "0", "NULL"], DataType::Decimal128(5, 0)),
    ];
    for (table, ty, values, expected) in cases {
        let batch = db.round_trip(table, ty, values).await;
        assert_eq!(field_type(&batch, 2), &expected, "{ty}");
        let decimals = batch.column(2).as_primitive::<Decimal128Type>();
        let got: Vec<Option<String>> =
            (0..decimals.len()).map(|i| decimals.is_valid(i).then(|| decimals.value_as_string(i))).collect();
        assert_eq!(got, db.probe::<Option<String>>(table, "v::text").await, "{ty}");
    }

    // Unconstrained numeric (and numeric wider than 38 digits) keeps PostgreSQL's own text.
    let values = [
        "0",
        "-0.000001",
        "123456789012345678901234567890.123456789",
        "1e-20",
        "'NaN'",
        "'Infinity'",
        "'-Infinity'",
        "1000000",
        "NULL",
    ];
    let batch = db.round_trip("nfree", "numeric", &values).await;
    assert_eq!(field_type(&batch, 2), &DataType::Utf8);
    let want = db.probe::<Option<String>>("nfree", "v::text").await;
    assert_eq!(strings(&batch, 2), want);
    assert_eq!(want[3].as_deref(), Some("0.00000000000000000001"));
    let batch = db.round_trip("n40", "numeric(40,2)", &["12345678901234567890123456789012345678.90", "NULL"]).await;
    assert_eq!(field_type(&batch, 2), &DataType::Utf8);
    assert_eq!(strings(&batch, 2), db.probe::<Option<String>>("n40", "v::text").await);
}

#[tokio::test]
async fn nan_in_a_decimal_column_is_an_error_naming_table_and_column() {
    let Some(db) = db("numnan").await else { return };
    db.client
        .batch_execute("CREATE TABLE money_like (id int, tenant_id text, amount numeric(10,2)); INSERT INTO money_like VALUES (1, 'acme', 'NaN')")
        .await
        .unwrap();
    let e = export_parquet(&db.source(), "money_like", "acme", None, &Bounds::Whole, Codec::Gzip)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("\"money_like\"") && e.contains("\"amount\"") && e.contains("numeric(10,2)") && e.contains("NaN"),
        "{e}"
    );
}

#[tokio::test]
async fn boolean_text_varchar_and_char_keep_unicode_controls_and_padding() {
    let Some(db) = db("text").await else { return };
    let b = db.round_trip("b", "boolean", &["true", "false", "NULL"]).await;
    assert_eq!(field_type(&b, 2), &DataType::Boolean);
    let got: Vec<Option<bool>> = b.column(2).as_boolean().iter().collect();
    assert_eq!(got, db.probe::<Option<bool>>("b", "v").await);

    let values = [
        "''",
        "'plain'",
        "'Grüße 👋 ☃'",
        "E'tab\\there\\nnewline\\r\\\\ back'",
        "'quotes '' and \"'",
        "repeat('x', 100000)",
        "NULL",
    ];
    for (table, ty) in [("t_text", "text"), ("t_varchar", "varchar(100000)")] {
        let batch = db.round_trip(table, ty, &values).await;
        assert_eq!(field_type(&batch, 2), &DataType::Utf8);
        assert_eq!(strings(&batch, 2), db.probe::<Option<String>>(table, "v").await, "{ty}");
    }
    let batch = db.round_trip("t_char", "char(6)", &["'ab'", "''", "'ü'", "NULL"]).await;
    let got = strings(&batch, 2);
    assert_eq!(got, db.probe::<Option<String>>("t_char", "v").await);
    assert_eq!(got[0].as_deref(), Some("ab    "), "char(n) keeps its padding, as PostgreSQL sends it");
}

#[tokio::test]
async fn uuid_bytea_json_jsonb_and_enums() {
    let Some(db) = db("misc").await else { return };
    let batch = db
        .round_trip(
            "u",
            "uuid",
            &[
                "'00000000-0000-0000-0000-000000000000'",
                "'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF'",
                "gen_random_uuid()",
                "NULL",
            ],
        )
        .await;
    assert_eq!(field_type(&batch, 2), &DataType::Utf8);
    let got = strings(&batch, 2);
    assert_eq!(got, db.probe::<Option<String>>("u", "v::text").await);
    assert_eq!(got[1].as_deref(), Some("ffffffff-ffff-ffff-ffff-ffffffffffff"));

    let batch =
        db.round_trip("by", "bytea", &["'\\x'", "'\\x00ff10'", "decode(repeat('ab', 100000), 'hex')", "NULL"]).await;
    assert_eq!(field_type(&batch, 2), &DataType::Binary);
    let got: Vec<Option<Vec<u8>>> = batch.column(2).as_binary::<i32>().iter().map(|v| v.map(<[u8]>::to_vec)).collect();
    assert_eq!(got, db.probe::<Option<Vec<u8>>>("by", "v").await);
    assert_eq!(got[0].as_deref(), Some(&[][..]));

    let docs = [
        "'{\"a\": [1, 2.50, \"x\"], \"b\": null}'",
        "'[]'",
        "'\"str\"'",
        "'null'",
        "'{\"ü\": \"\\u00e9\\n\"}'",
        "NULL",
    ];
    for (table, ty) in [("j", "json"), ("jb", "jsonb")] {
        let batch = db.round_trip(table, ty, &docs).await;
        assert_eq!(field_type(&batch, 2), &DataType::Utf8);
        assert_eq!(strings(&batch, 2), db.probe::<Option<String>>(table, "v::text").await, "{ty}");
    }

    db.client.batch_execute("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy ☺', 'it''s')").await.unwrap();
    let batch = db.round_trip("e", "mood", &["'sad'", "'happy ☺'", "'it''s'", "NULL"]).await;
    assert_eq!(field_type(&batch, 2), &DataType::Utf8);
    assert_eq!(strings(&batch, 2), db.probe::<Option<String>>("e", "v::text").await);

    db.client.batch_execute("CREATE DOMAIN positive AS integer CHECK (VALUE > 0)").await.unwrap();
    let batch = db.round_trip("dom", "positive", &["1", "2147483647", "NULL"]).await;
    assert_eq!(field_type(&batch, 2), &DataType::Int32);
    let got: Vec<Option<i32>> = batch.column(2).as_primitive::<Int32Type>().iter().collect();
    assert_eq!(got, [Some(1), Some(i32::MAX), None]);
}

#[tokio::test]
async fn dates_times_and_timestamps_in_utc_with_infinities() {
    let Some(db) = db("time").await else { return };
    let dates = [
        "'2023-01-01'",
        "'1970-01-01'",
        "'2000-01-01'",
        "'0001-01-01'",
        "'4713-01-01 BC'",
        "'5874897-12-31'",
        "'infinity'",
        "'-infinity'",
        "NULL",
    ];
    let batch = db.round_trip("d", "date", &dates).await;
    assert_eq!(field_type(&batch, 2), &DataType::Date32);
    let got: Vec<Option<i32>> = batch.column(2).as_primitive::<Date32Type>().iter().collect();
    let finite = db.probe::<Option<i32>>("d", "CASE WHEN isfinite(v) THEN v - DATE '1970-01-01' END").await;
    assert_eq!(got[..6], finite[..6]);
    assert_eq!(
        got[6..],
        [Some(i32::MAX), Some(i32::MIN), None],
        "infinity -> the largest Date32, -infinity -> the smallest"
    );

    let batch =
        db.round_trip("tm", "time", &["'00:00:00'", "'23:59:59.999999'", "'24:00:00'", "'12:34:56.789'", "NULL"]).await;
    assert_eq!(field_type(&batch, 2), &DataType::Time64(TimeUnit::Microsecond));
    let got: Vec<Option<i64>> = batch.column(2).as_primitive::<Time64MicrosecondType>().iter().collect();
    assert_eq!(got, db.probe::<Option<i64>>("tm", "(extract(epoch FROM v) * 1000000)::int8").await);

    let stamps = [
        "'2000-01-01 00:00:00'",
        "'1970-01-01 00:00:00'",
        "'2023-03-12 02:30:00.000001'",
        "'0001-01-01 00:00:00'",
        "'4713-01-01 00:00:00 BC'",
        "'294247-01-01 00:00:00'",
        "'infinity'",
        "'-infinity'",
        "NULL",
    ];
    let micros = "CASE WHEN isfinite(v) THEN (extract(epoch FROM v) * 1000000)::int8 END";
    let batch = db.round_trip("ts", "timestamp", &stamps).await;
    assert_eq!(field_type(&batch, 2), &DataType::Timestamp(TimeUnit::Microsecond, None));
    let got: Vec<Option<i64>> = batch.column(2).as_primitive::<TimestampMicrosecondType>().iter().collect();
    assert_eq!(got[..6], db.probe::<Option<i64>>("ts", micros).await[..6]);
    assert_eq!(got[6..], [Some(i64::MAX), Some(i64::MIN), None]);

    // Zoned values given in several zones are the same instants, whatever the session's zone.
    let zoned = [
        "'2023-03-12 02:30:00-05'",
        "'2023-03-12 07:30:00+00'",
        "'2023-11-05 01:30:00 America/New_York'",
        "'1969-12-31 23:59:59.999999+00'",
        "'infinity'",
        "NULL",
    ];
    let batch = db.round_trip("tz", "timestamptz", &zoned).await;
    assert!(
        matches!(field_type(&batch, 2), DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if tz.as_ref() == "UTC" || tz.as_ref() == "+00:00")
    );
    let got: Vec<Option<i64>> = batch.column(2).as_primitive::<TimestampMicrosecondType>().iter().collect();
    assert_eq!(got[..4], db.probe::<Option<i64>>("tz", micros).await[..4]);
    assert_eq!(got[0], got[1]);
    assert_eq!(got[3], Some(-1));
    assert_eq!(got[4..], [Some(i64::MAX), None]);
}

#[tokio::test]
async fn a_timestamp_beyond_what_arrow_holds_is_an_error_naming_the_column() {
    let Some(db) = db("tsmax").await else { return };
    db.client
        .batch_execute("CREATE TABLE far (id int, tenant_id text, at timestamp); INSERT INTO far VALUES (1, 'acme', '294276-12-31 23:59:59')")
        .await
        .unwrap();
    let e =
        export_parquet(&db.source(), "far", "acme", None, &Bounds::Whole, Codec::Zstd).await.err().unwrap().to_string();
    assert!(e.contains("\"far\"") && e.contains("\"at\"") && e.contains("timestamp"), "{e}");
}

#[tokio::test]
async fn intervals_are_iso_8601_text_exactly_as_postgres_prints_them() {
    let Some(db) = db("interval").await else { return };
    let values = [
        "'0'",
        "'1 year 2 months 3 days 04:05:06.5'",
        "'-1 day +02:00:00'",
        "'-1.5 seconds'",
        "'-0.5 seconds'",
        "'178000000 years'",
        "'00:00:00.000001'",
        "'-2147483648 days'",
        "'2562047788:00:54.775807'",
        "'-13 months'",
        "NULL",
    ];
    let batch = db.round_trip("iv", "interval", &values).await;
    assert_eq!(field_type(&batch, 2), &DataType::Utf8);
    let got = strings(&batch, 2);
    assert_eq!(got, db.probe::<Option<String>>("iv", "v::text").await);
    assert_eq!(got[1].as_deref(), Some("P1Y2M3DT4H5M6.5S"));
    // And PostgreSQL reads them back as the same intervals.
    for (i, text) in got.iter().enumerate().filter_map(|(i, t)| t.as_ref().map(|t| (i, t))) {
        let same: bool = db
            .client
            .query_one(&format!("SELECT $1::text::interval = v FROM iv WHERE id = {i}"), &[text])
            .await
            .unwrap()
            .get(0);
        assert!(same, "{text}");
    }
}

/// Row `row` of a list column, each element as Arrow displays it.
fn list_row(batch: &RecordBatch, column: usize, row: usize) -> Option<Vec<Option<String>>> {
    let lists = batch.column(column).as_list::<i32>();
    if lists.is_null(row) {
        return None;
    }
    let values = lists.value(row);
    let format = ArrayFormatter::try_new(values.as_ref(), &FormatOptions::default()).unwrap();
    Some((0..values.len()).map(|i| values.is_valid(i).then(|| format.value(i).to_string())).collect())
}

#[tokio::test]
async fn one_dimensional_arrays_are_lists_with_null_elements() {
    let Some(db) = db("arrays").await else { return };
    db.client.batch_execute("CREATE TYPE color AS ENUM ('red', 'green')").await.unwrap();
    let cases: [(&str, &str, &[&str], DataType); 6] = [
        (
            "a_int",
            "integer[]",
            &["'{1,NULL,3}'", "'{}'", "NULL", "'{2147483647,-2147483648}'", "'[5:6]={7,8}'"],
            DataType::Int32,
        ),
        ("a_text", "text[]", &["ARRAY['a', '', NULL, 'with \"quote\"', 'ü']", "'{}'", "NULL"], DataType::Utf8),
        ("a_num", "numeric(10,2)[]", &["'{1.5,NULL,-2.25}'", "NULL"], DataType::Decimal128(10, 2)),
        ("a_bool", "boolean[]", &["'{true,false,NULL}'"], DataType::Boolean),
        ("a_uuid", "uuid[]", &["ARRAY['00000000-0000-0000-0000-00000000000a'::uuid, NULL]"], DataType::Utf8),
        ("a_enum", "color[]", &["'{red,green,NULL}'"], DataType::Utf8),
    ];
    for (table, ty, values, element) in cases {
        let batch = db.round_trip(table, ty, values).await;
        match field_type(&batch, 2) {
            DataType::List(f) => assert_eq!(f.data_type(), &element, "{ty}"),
            other => panic!("{ty} became {other}"),
        }
        let want = db.probe::<Option<Vec<Option<String>>>>(table, "v::text[]").await;
        let got: Vec<_> = (0..batch.num_rows()).map(|r| list_row(&batch, 2, r)).collect();
        assert_eq!(got, want, "{ty}");
    }

    let batch = db
        .round_trip(
            "a_ts",
            "timestamptz[]",
            &["ARRAY['2023-01-01 00:00:00+00'::timestamptz, NULL, 'infinity']", "'{}'"],
        )
        .await;
    let lists = batch.column(2).as_list::<i32>();
    let first = lists.value(0);
    let first = first.as_primitive::<TimestampMicrosecondType>();
    assert_eq!((first.value(0), first.is_null(1), first.value(2)), (1_672_531_200_000_000, true, i64::MAX));
    assert_eq!(lists.value(1).len(), 0);

    let batch = db.round_trip("a_date", "date[]", &["ARRAY['2023-01-01'::date]"]).await;
    assert_eq!(batch.column(2).as_list::<i32>().value(0).as_primitive::<Date32Type>().value(0), 19_358);
}

#[tokio::test]
async fn a_multi_dimensional_array_fails_the_export_without_leaving_a_file() {
    let Some(db) = db("array2d").await else { return };
    db.client
        .batch_execute("CREATE TABLE grid (id int, tenant_id text, cells int[]); INSERT INTO grid VALUES (1, 'acme', '{1}'), (2, 'acme', '{{1,2},{3,4}}')")
        .await
        .unwrap();
    let (e, files) = export_into_folder(&db.source(), "grid").await;
    assert!(e.contains("\"grid\"") && e.contains("\"cells\"") && e.contains("2-dimensional"), "{e}");
    assert!(files.is_empty(), "{files:?}");
}

/// Runs an export expected to fail; returns its error and the files left in the sink.
async fn export_into_folder(source: &PgSource, table: &str) -> (String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let sink = byob::sink::LocalSink::new(dir.path());
    let spec = byob_testkit::spec::export_spec("2024-02-29T04:03", "", byob::format::Format::default());
    let task = byob::plan::ExportTask {
        destination: "d".into(),
        table: table.into(),
        slice: byob::source::Slice::WHOLE,
        bounds: Bounds::Whole,
        increment: None,
    };
    let request = TableRequest::new(table, "acme", "tenant_id");
    let e = byob::export::export(&task, &request, source, &sink, &spec, &Default::default(), Arc::new(|_| {}))
        .await
        .err()
        .unwrap();
    (e.to_string(), files_under(dir.path()))
}

#[tokio::test]
async fn unsupported_types_fail_in_open_naming_table_column_and_type() {
    let Some(db) = db("unsupported").await else { return };
    for (column, ty, value) in [
        ("location", "point", "'(1,2)'"),
        ("price", "money", "'1.50'"),
        ("client_ip", "inet", "'10.0.0.1'"),
        ("during", "tsrange", "'[2023-01-01,2023-01-02)'"),
        ("shapes", "point[]", "ARRAY['(1,2)'::point]"),
    ] {
        let table = format!("odd_{column}");
        db.client
            .batch_execute(&format!(
                "CREATE TABLE {table} (id int, tenant_id text, {column} {ty}); INSERT INTO {table} VALUES (1, 'acme', {value})"
            ))
            .await
            .unwrap();
        let e = db.source().open(&request(&table, "acme", None), &Bounds::Whole).await.err().unwrap().to_string();
        assert!(e.contains(&format!("\"{table}\"")) && e.contains(&format!("\"{column}\"")) && e.contains(ty), "{e}");
        let (e, files) = export_into_folder(&db.source(), &table).await;
        assert!(e.contains(ty), "{e}");
        assert!(files.is_empty(), "nothing is written: {files:?}");
    }
    // Cast in a query, the same column exports.
    let source = db.source().with_table(
        "odd_location",
        PgTable {
            query: Some("SELECT id, tenant_id, location::text AS location FROM odd_location".into()),
            slice_key: None,
        },
    );
    let rows = export_parquet(&source, "odd_location", "acme", None, &Bounds::Whole, Codec::Snappy).await.unwrap().rows;
    assert_eq!(strings(&rows, 2), [Some("(1,2)".to_owned())]);
}

/// What a step that failed reading PostgreSQL tells Step Functions: retry only what a retry
/// can fix (`byob::Error::is_retryable`, the `Retryable` / `NonRetryable` errorType).
#[tokio::test]
async fn errors_say_whether_a_retry_can_help() {
    let Some(db) = db("verdicts").await else { return };
    let pg = postgres_harness::shared().unwrap();
    db.client.batch_execute("CREATE TABLE odd (id int, tenant_id text, location point)").await.unwrap();
    let open = |source: PgSource, table: &'static str| async move {
        source.open(&request(table, "acme", None), &Bounds::Whole).await.expect_err("the open fails")
    };

    // Permanent: the same config fails the same way on every retry.
    let missing = open(db.source(), "no_such_table").await;
    assert!(!missing.is_retryable(), "missing table: {missing}");
    let unsupported = open(db.source(), "odd").await;
    assert!(!unsupported.is_retryable(), "unsupported type: {unsupported}");
    let missing_column = db
        .source()
        .open(&request("odd", "acme", Some(&["id", "nope"])), &Bounds::Whole)
        .await
        .expect_err("a missing column fails");
    assert!(!missing_column.is_retryable(), "missing column: {missing_column}");
    let unknown_db = Connector::from_url(&pg.url("no_such_database"), None, None).unwrap();
    let unknown_db = open(PgSource::new(unknown_db), "odd").await;
    assert!(!unknown_db.is_retryable(), "unknown database (3D000): {unknown_db}");
    let no_role = format!("postgresql://no_such_role@127.0.0.1:{}/{}?sslmode=disable", pg.port, db.name);
    let no_role = open(PgSource::new(Connector::from_url(&no_role, None, None).unwrap()), "odd").await;
    assert!(!no_role.is_retryable(), "refused login (28000): {no_role}");

    // Transient: nothing answers on the port (a restart, a failover) may pass on a retry.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let refused = format!("postgresql://postgres@127.0.0.1:{port}/{}?sslmode=disable&connect_timeout=5", db.name);
    let refused = open(PgSource::new(Connector::from_url(&refused, None, None).unwrap()), "odd").await;
    assert!(refused.is_retryable(), "connection refused: {refused}");

    // Transient: the server ended our session mid-read (57P01 admin shutdown of the backend).
    db.client
        .batch_execute("CREATE TABLE big AS SELECT g AS id, 'acme' AS tenant_id FROM generate_series(1, 2000000) g")
        .await
        .unwrap();
    let source = db.source();
    let mut stream = source.open(&request("big", "acme", None), &Bounds::Whole).await.unwrap();
    db.client
        .batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
            db.name
        ))
        .await
        .unwrap();
    let mut broken = None;
    while let Some(batch) = futures::StreamExt::next(&mut stream.batches).await {
        if let Err(e) = batch {
            broken = Some(e);
            break;
        }
    }
    let broken = broken.expect("reading from a terminated session fails");
    assert!(broken.is_retryable(), "terminated session: {broken}");
}

fn request(table: &str, tenant: &str, columns: Option<&[&str]>) -> TableRequest {
    TableRequest {
        table: table.into(),
        tenant: tenant.into(),
        tenant_column: "tenant_id".into(),
        columns: columns.map(|c| c.iter().map(|s| s.to_string()).collect()),
        window: None,
    }
}

#[tokio::test]
async fn hostile_names_and_tenant_values_cannot_inject() {
    let Some(db) = db("hostile").await else { return };
    // GIVEN a table whose name and columns are made to break naive SQL, a victim table, and
    // tenants whose ids are classic injections
    let table = "weird\"; DROP TABLE victims; --";
    let tenant_column = "tenant\" = tenant_id OR \"1";
    let value_column = "v'); DROP TABLE victims; --";
    db.client
        .batch_execute(
            "CREATE TABLE victims (id int); INSERT INTO victims VALUES (1);
             CREATE TABLE \"weird\"\"; DROP TABLE victims; --\" (id int NOT NULL, \"tenant\"\" = tenant_id OR \"\"1\" text, \"v'); DROP TABLE victims; --\" text)",
        )
        .await
        .unwrap();
    let tenants = [
        "acme",
        "x' OR '1'='1",
        "x\\' OR 1=1 --",
        "'; DROP TABLE victims; --",
        "back\\slash\\",
        "$$; DROP TABLE victims; $$",
        "acme' --",
        "ünï'cødé",
        "E'acme'",
    ];
    let insert = "INSERT INTO \"weird\"\"; DROP TABLE victims; --\" VALUES ($1, $2, $3)";
    for (i, tenant) in tenants.iter().enumerate() {
        for copy in 0..3 {
            let id = (i * 10 + copy) as i32;
            let value = format!("{tenant} #{copy}");
            db.client.execute(insert, &[&id, tenant, &value]).await.unwrap();
        }
    }
    // WHEN each tenant's rows are exported through the hostile names
    for tenant in tenants {
        let request = TableRequest {
            table: table.into(),
            tenant: tenant.into(),
            tenant_column: tenant_column.into(),
            columns: Some(vec![value_column.into(), tenant_column.into()]),
            window: None,
        };
        let stream = db.source().open(&request, &Bounds::Whole).await.unwrap_or_else(|e| panic!("{tenant}: {e}"));
        assert_eq!(stream.schema.field(0).name(), value_column);
        let batches: Vec<RecordBatch> = stream.batches.try_collect().await.unwrap();
        // THEN each gets exactly its own three rows, and nothing else ran
        let mut got: Vec<String> = Vec::new();
        for b in &batches {
            got.extend(b.column(0).as_string::<i32>().iter().flatten().map(str::to_owned));
            assert!(b.column(1).as_string::<i32>().iter().all(|t| t == Some(tenant)), "{tenant}");
        }
        got.sort();
        assert_eq!(got, (0..3).map(|c| format!("{tenant} #{c}")).collect::<Vec<_>>(), "{tenant}");
    }
    let victims: i64 = db.client.query_one("SELECT count(*) FROM victims", &[]).await.unwrap().get(0);
    assert_eq!(victims, 1, "the victim table is untouched");
    // A tenant with a NUL byte cannot be sent at all.
    let e = db.source().open(&request("victims", "a\0b", None), &Bounds::Whole).await.err().unwrap().to_string();
    assert!(e.contains("NUL"), "{e}");
}

#[tokio::test]
async fn batches_are_bounded_by_rows_and_by_bytes() {
    let Some(db) = db("batches").await else { return };
    db.client
        .batch_execute(
            "CREATE TABLE wide (id int NOT NULL, tenant_id text NOT NULL, payload text);
             INSERT INTO wide SELECT i, 'acme', repeat('x', 100) FROM generate_series(1, 10000) i;",
        )
        .await
        .unwrap();
    for (limits, most) in [
        (BatchLimits { max_rows: 1000, max_bytes: 1 << 30 }, 1000),
        (BatchLimits { max_rows: 1 << 20, max_bytes: 20_000 }, 200),
    ] {
        let source = db.source().with_batch_limits(limits);
        let stream = source.open(&request("wide", "acme", None), &Bounds::Whole).await.unwrap();
        let batches: Vec<RecordBatch> = stream.batches.try_collect().await.unwrap();
        assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 10_000);
        assert!(
            batches.iter().all(|b| b.num_rows() <= most),
            "{limits:?}: {:?}",
            batches.iter().map(RecordBatch::num_rows).collect::<Vec<_>>()
        );
        assert!(batches.len() >= 10_000 / most, "{limits:?}");
    }
}

#[tokio::test]
async fn columns_are_projected_in_order_and_missing_names_are_errors() {
    let Some(db) = db("columns").await else { return };
    db.client
        .batch_execute(
            "CREATE TABLE people (id int NOT NULL, tenant_id text NOT NULL, name text, secret text);
             INSERT INTO people VALUES (1, 'acme', 'Ann', 's1'), (2, 'globex', 'Bob', 's2');",
        )
        .await
        .unwrap();
    let rows = export_parquet(&db.source(), "people", "acme", Some(&["name", "id"]), &Bounds::Whole, Codec::None)
        .await
        .unwrap()
        .rows;
    let names: Vec<&str> = rows.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["name", "id"]);
    assert_eq!(strings(&rows, 0), [Some("Ann".to_owned())]);

    let e = db
        .source()
        .open(&request("people", "acme", Some(&["name", "nope"])), &Bounds::Whole)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("\"people\"") && e.contains("nope"), "{e}");
    let e = db
        .source()
        .open(&request("people", "acme", Some(&["name", "name"])), &Bounds::Whole)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("twice"), "{e}");
    let e = db.source().open(&request("ghosts", "acme", None), &Bounds::Whole).await.err().unwrap().to_string();
    assert!(e.contains("\"ghosts\"") && e.contains("does not exist"), "{e}");
    let e = db
        .source()
        .open(&request("people", "acme", None), &Bounds::Rows { from: 0, to: 2 })
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("were not planned by a PostgreSQL source"), "{e}");
    let other = db.source().with_schema("elsewhere");
    let e = other.open(&request("people", "acme", None), &Bounds::Whole).await.err().unwrap().to_string();
    assert!(e.contains("\"elsewhere\".\"people\""), "{e}");
    // The location names the server without a password.
    assert!(e.contains(&format!("/{}", db.name)), "{e}");
}

#[tokio::test]
async fn a_query_table_reads_its_select_filtered_by_tenant() {
    let Some(db) = db("query").await else { return };
    db.client
        .batch_execute(
            "CREATE SCHEMA crm;
             CREATE TABLE crm.companies (id int NOT NULL, tenant_id text NOT NULL, name text, revenue numeric(12,2));
             INSERT INTO crm.companies VALUES (1, 'acme', 'A', 10.5), (2, 'acme', 'B', NULL), (3, 'globex', 'C', 7);",
        )
        .await
        .unwrap();
    let source = db.source().with_table(
        "companies",
        PgTable {
            query: Some(
                "SELECT id AS company_id, tenant_id, upper(name) AS name, revenue FROM crm.companies -- a comment\n;"
                    .into(),
            ),
            slice_key: None,
        },
    );
    let rows = export_parquet(&source, "companies", "acme", None, &Bounds::Whole, Codec::Gzip).await.unwrap().rows;
    let order = sort_to_indices(rows.column(0), None, None).unwrap();
    let rows = take_record_batch(&rows, &order).unwrap();
    assert_eq!(strings(&rows, 2), [Some("A".to_owned()), Some("B".to_owned())]);
    assert_eq!(
        field_type(&rows, 3),
        &DataType::Decimal128(12, 2),
        "a column the query passes through keeps its typmod"
    );
    assert_eq!(
        source.plan(&request("companies", "acme", None), 1).await.unwrap(),
        [Bounds::Whole],
        "a query without slice_key is one slice"
    );
}
