//! Dumps for the loader tests: record batches written with byob's own file writer, a
//! version-1 receipt over them, stored in a local folder or an S3 bucket exactly where a
//! dump puts them; and the canonical rendering the loaded rows are checked against.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int8Array,
    Int64Array, ListArray, StringArray, Time32MillisecondArray, TimestampMicrosecondArray, TimestampNanosecondArray,
    UInt16Array, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use byob::format::{EncoderOptions, FileWriter, Format};
use byob::layout::{KeyTemplate, RunId};
use byob::load::ReceiptLocation;
use byob::receipt::{FileEntry, Receipt, TableReceipt};
use sha2::{Digest, Sha256};

pub const RUN1: &str = "2023-03-14T04:03";
pub const RUN2: &str = "2023-03-14T15:04";
pub const RUN3: &str = "2023-03-15T04:03";

/// One run's files and receipt.
pub struct Dump {
    pub run: RunId,
    pub previous: Option<RunId>,
    pub format: Format,
    pub tables: BTreeMap<String, TableReceipt>,
    /// (key relative to the prefix, bytes)
    pub files: Vec<(String, Vec<u8>)>,
}

impl Dump {
    pub fn new(run: &str, previous: Option<&str>) -> Dump {
        Dump {
            run: run.parse().unwrap(),
            previous: previous.map(|p| p.parse().unwrap()),
            format: Format::default(),
            tables: BTreeMap::new(),
            files: Vec::new(),
        }
    }

    /// Adds `table` with `batch`'s rows split over `files` files.
    pub fn table(mut self, name: &str, batch: RecordBatch, files: usize) -> Dump {
        let template = KeyTemplate::default();
        let per_file = batch.num_rows().div_ceil(files.max(1)).max(1);
        let mut entries = Vec::new();
        for (n, start) in (0..batch.num_rows().max(1)).step_by(per_file).enumerate() {
            let len = per_file.min(batch.num_rows() - start.min(batch.num_rows()));
            let slice = batch.slice(start.min(batch.num_rows()), len);
            let mut writer = FileWriter::new(&self.format, batch.schema(), &EncoderOptions::default()).unwrap();
            writer.write(&slice).unwrap();
            let mut bytes = writer.take_ready().concat();
            let (last, stats) = writer.finish().unwrap();
            bytes.extend_from_slice(&last.concat());
            let key = template.render(&self.run, name, n as u64, self.format.extension());
            entries.push(FileEntry {
                key: key.clone(),
                rows: stats.rows,
                bytes: stats.bytes,
                sha256: stats.sha256,
                partition: None,
            });
            self.files.push((key, bytes));
        }
        let schema = byob::schema::describe(&batch.schema()).unwrap();
        self.tables.insert(name.into(), TableReceipt::new(template.folder(&self.run, name), schema, entries));
        self
    }

    /// Lists file `i` under another key (the bytes are stored under the new key too).
    pub fn rename_key(&mut self, i: usize, key: &str) {
        let old = std::mem::replace(&mut self.files[i].0, key.to_owned());
        for t in self.tables.values_mut() {
            for f in &mut t.files {
                if f.key == old {
                    f.key = key.to_owned();
                }
            }
        }
    }

    pub fn receipt(&self) -> Receipt {
        let now = self.run.datetime() + chrono::Duration::seconds(65);
        Receipt::new(self.run, self.previous, self.format.clone(), self.tables.clone(), now)
    }

    /// Files, then the run's receipt, then the root receipt, under `<dir>/<prefix>/`.
    pub fn write_local(&self, dir: &Path, prefix: &str) {
        let root = dir.join(prefix);
        for (key, bytes) in &self.files {
            if key.contains("://") || key.contains("..") || key.starts_with('/') {
                continue; // never written outside the folder
            }
            let path = root.join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let json = self.receipt().to_json();
        std::fs::create_dir_all(root.join(self.run.to_string())).unwrap();
        std::fs::write(root.join(self.run.to_string()).join("receipt.run.json"), &json).unwrap();
        std::fs::write(root.join("receipt.json"), &json).unwrap();
    }

    /// Files, then the run's receipt, then the root receipt, under `s3://bucket/prefix/`.
    pub async fn write_s3(&self, client: &aws_sdk_s3::Client, bucket: &str, prefix: &str) {
        for (key, bytes) in &self.files {
            client
                .put_object()
                .bucket(bucket)
                .key(format!("{prefix}/{key}"))
                .body(bytes.clone().into())
                .send()
                .await
                .unwrap();
        }
        let json = self.receipt().to_json();
        for key in [format!("{prefix}/{}/receipt.run.json", self.run), format!("{prefix}/receipt.json")] {
            client.put_object().bucket(bucket).key(key).body(json.clone().into()).send().await.unwrap();
        }
    }
}

pub fn run_receipt(dir: &Path, prefix: &str, run: &str) -> ReceiptLocation {
    ReceiptLocation::Path(dir.join(prefix).join(run).join("receipt.run.json"))
}

pub fn root_receipt(dir: &Path, prefix: &str) -> ReceiptLocation {
    ReceiptLocation::Path(dir.join(prefix).join("receipt.json"))
}

/// `companies`: id, name (every 7th NULL), amount decimal(18,2), created_at, active; plus
/// country when `country`. Ids start at `first`.
pub fn companies(first: i64, n: usize, country: bool) -> RecordBatch {
    let ids: Vec<i64> = (0..n as i64).map(|i| first + i).collect();
    let mut fields = vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("amount", DataType::Decimal128(18, 2), true),
        Field::new("created_at", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new("active", DataType::Boolean, true),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(StringArray::from(
            ids.iter().map(|i| (i % 7 != 3).then(|| format!("company \"{i}\", ltd|é"))).collect::<Vec<_>>(),
        )),
        Arc::new(
            Decimal128Array::from(ids.iter().map(|i| Some((i * 12_345 - 50_000) as i128)).collect::<Vec<_>>())
                .with_precision_and_scale(18, 2)
                .unwrap(),
        ),
        Arc::new(TimestampMicrosecondArray::from(
            ids.iter().map(|i| Some(1_678_766_580_000_000 + i * 61_000_000)).collect::<Vec<_>>(),
        )),
        Arc::new(BooleanArray::from(ids.iter().map(|i| (i % 5 != 0).then_some(i % 2 == 0)).collect::<Vec<_>>())),
    ];
    if country {
        fields.push(Field::new("country", DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from(ids.iter().map(|i| Some(format!("C{}", i % 13))).collect::<Vec<_>>())));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

/// `contacts`: id, email.
pub fn contacts(n: usize) -> RecordBatch {
    let schema =
        Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("email", DataType::Utf8, false)]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>())),
            Arc::new(StringArray::from((0..n).map(|i| format!("c{i}@example.com")).collect::<Vec<_>>())),
        ],
    )
    .unwrap()
}

/// `companies` whose `name` became an int64.
pub fn renamed_type() -> RecordBatch {
    let schema = Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("name", DataType::Int64, true)]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![Arc::new(Int64Array::from(vec![1, 2])), Arc::new(Int64Array::from(vec![Some(1), None]))],
    )
    .unwrap()
}

/// The canonical rendering of a `companies` row: PostgreSQL's text of each column, `|`
/// separated, NULL as `\N`, rows ordered by id, one per line; (rows, sha256 of the text).
pub fn expected(batch: &RecordBatch, country: bool) -> (i64, String) {
    use arrow::array::AsArray;
    use arrow::datatypes::{Decimal128Type, TimestampMicrosecondType};
    let ids = batch.column(0).as_primitive::<Int64Type>();
    let names = batch.column(1).as_string::<i32>();
    let amounts = batch.column(2).as_primitive::<Decimal128Type>();
    let created = batch.column(3).as_primitive::<TimestampMicrosecondType>();
    let active = batch.column(4).as_boolean();
    let null = || "\\N".to_string();
    let lines: Vec<String> = (0..batch.num_rows())
        .map(|i| {
            let name = if names.is_valid(i) { names.value(i).to_string() } else { null() };
            let a = amounts.value(i);
            let amount = format!("{}{}.{:02}", if a < 0 { "-" } else { "" }, a.abs() / 100, a.abs() % 100);
            let ts = chrono::DateTime::from_timestamp_micros(created.value(i)).unwrap().naive_utc();
            let ts = ts.format("%Y-%m-%d %H:%M:%S").to_string();
            let act = if active.is_valid(i) { active.value(i).to_string() } else { null() };
            let mut line = format!("{}|{name}|{amount}|{ts}|{act}", ids.value(i));
            if country {
                line.push('|');
                line.push_str(batch.column(5).as_string::<i32>().value(i));
            }
            line
        })
        .collect();
    (batch.num_rows() as i64, hex::encode(Sha256::digest(lines.join("\n").as_bytes())))
}

/// The same rendering, computed by PostgreSQL over the loaded table.
pub async fn checksum(client: &tokio_postgres::Client, table: &str, country: bool) -> (i64, String) {
    let mut cols =
        vec!["id::text", "coalesce(name, '\\N')", "amount::text", "created_at::text", "coalesce(active::text, '\\N')"];
    if country {
        cols.push("coalesce(country, '\\N')");
    }
    let sql = format!(
        "SELECT count(*), encode(sha256(convert_to(coalesce(string_agg(concat_ws('|', {}), E'\\n' ORDER BY id), ''), 'UTF8')), 'hex') FROM \"{table}\"",
        cols.join(", ")
    );
    let row = client.query_one(&sql, &[]).await.unwrap();
    (row.get(0), row.get(1))
}

pub async fn count(client: &tokio_postgres::Client, table: &str) -> i64 {
    client.query_one(&format!("SELECT count(*) FROM \"{table}\""), &[]).await.unwrap().get(0)
}

pub async fn exists(client: &tokio_postgres::Client, table: &str) -> bool {
    let found: Option<String> =
        client.query_one("SELECT to_regclass($1)::text", &[&format!("public.\"{table}\"")]).await.unwrap().get(0);
    found.is_some()
}

/// Every scalar portable type (interval aside: Parquet cannot store Arrow's MonthDayNano)
/// and a list, two rows.
pub fn all_types() -> RecordBatch {
    let list =
        ListArray::from_iter_primitive::<Int64Type, _, _>(vec![Some(vec![Some(1), None, Some(3)]), Some(vec![])]);
    let fields = vec![
        Field::new("i64", DataType::Int64, false),
        Field::new("b", DataType::Boolean, true),
        Field::new("i8", DataType::Int8, true),
        Field::new("u16", DataType::UInt16, true),
        Field::new("u32", DataType::UInt32, true),
        Field::new("u64", DataType::UInt64, true),
        Field::new("f32", DataType::Float32, true),
        Field::new("f64", DataType::Float64, true),
        Field::new("dec", DataType::Decimal128(10, 3), true),
        Field::new("s", DataType::Utf8, true),
        Field::new("bin", DataType::Binary, true),
        Field::new("d", DataType::Date32, true),
        Field::new("tm", DataType::Time32(TimeUnit::Millisecond), true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
        Field::new("tz", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new("l", list.data_type().clone(), true),
    ];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, 2])),
        Arc::new(BooleanArray::from(vec![Some(true), None])),
        Arc::new(Int8Array::from(vec![Some(-5), None])),
        Arc::new(UInt16Array::from(vec![Some(65535), None])),
        Arc::new(UInt32Array::from(vec![Some(4_294_967_295), None])),
        Arc::new(UInt64Array::from(vec![Some(u64::MAX), Some(0)])),
        Arc::new(Float32Array::from(vec![Some(1.5), None])),
        Arc::new(Float64Array::from(vec![Some(-2.25), None])),
        Arc::new(Decimal128Array::from(vec![Some(12_345), Some(-1)]).with_precision_and_scale(10, 3).unwrap()),
        Arc::new(StringArray::from(vec![Some("hello"), Some("a,b")])),
        Arc::new(BinaryArray::from(vec![Some(&[0xde_u8, 0xad][..]), None])),
        Arc::new(Date32Array::from(vec![Some(19_430), Some(-1)])),
        Arc::new(Time32MillisecondArray::from(vec![Some(14_587_500), None])),
        Arc::new(TimestampNanosecondArray::from(vec![Some(1_678_766_587_123_456_789), None])),
        Arc::new(TimestampMicrosecondArray::from(vec![Some(1_678_766_587_000_000), None]).with_timezone("UTC")),
        Arc::new(list),
    ];
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

/// The columns of [`all_types`] in PostgreSQL's text, `|` separated, NULL as `NULL`.
pub fn all_types_as_postgres_text() -> Vec<String> {
    vec![
        "1|true|-5|65535|4294967295|18446744073709551615|1.5|-2.25|12.345|hello|\\xdead|2023-03-14|04:03:07.5|2023-03-14 04:03:07.123456|2023-03-14 04:03:07+00|{1,NULL,3}".into(),
        "2|NULL|NULL|NULL|NULL|0|NULL|NULL|-0.001|a,b|NULL|1969-12-31|NULL|NULL|NULL|{}".into(),
    ]
}

/// The query rendering [`all_types`]' table as [`all_types_as_postgres_text`] does.
pub fn all_types_query() -> String {
    let cols = ["i64", "b", "i8", "u16", "u32", "u64", "f32", "f64", "dec", "s", "bin", "d", "tm", "ts", "tz", "l"];
    let parts: Vec<String> = cols.iter().map(|c| format!("coalesce(\"{c}\"::text, 'NULL')")).collect();
    format!("SELECT concat_ws('|', {}) FROM types ORDER BY i64", parts.join(", "))
}

pub fn temp_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// Every text and container format the loaders must read back as Parquet's rows: CSV (with a
/// delimiter, without compression, with every CSV option at once), JSON lines, Avro, Parquet.
pub fn formats() -> Vec<byob::format::Format> {
    use byob::format::{Codec, Delimiter, Format, FormatKind, LineEnding};
    vec![
        Format { delimiter: Some(Delimiter::Semicolon), ..Format::new(FormatKind::Csv, Codec::Gzip) },
        Format { delimiter: Some(Delimiter::Tab), ..Format::new(FormatKind::Csv, Codec::None) },
        // Every CSV option at once: no header, `'` quotes with `\\` escapes, a NULL text, CRLF.
        Format {
            header: Some(false),
            quote: Some('\''),
            escape: Some('\\'),
            null: Some("NULL".into()),
            line_ending: Some(LineEnding::Crlf),
            ..Format::new(FormatKind::Csv, Codec::Gzip)
        },
        Format::new(FormatKind::Jsonl, Codec::Gzip),
        Format::new(FormatKind::Avro, Codec::Gzip),
        Format::new(FormatKind::Avro, Codec::Zstd),
        Format::new(FormatKind::Parquet, Codec::Zstd),
    ]
}
