//! The Parquet lake source against lakes written by the generator: tenant filtering, row-group
//! skipping, projection, errors found before streaming, slices, and the generator's
//! determinism. Expected values come from reading the files with Parquet's plain reader.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray, StringViewArray};
use arrow::datatypes::{DataType, Field, Schema};
use byob::source::lake::LakeSource;
use byob::source::{Bounds, FilePart, Source, TableRequest};
use byob_testkit::generate::{GenerateOptions, TABLES, TableReport, generate, table_schema};
use futures::TryStreamExt;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::properties::WriterProperties;

const TENANTS: [&str; 4] = ["acme", "globex", "initech", "umbrella"];

/// A small lake with small row groups and files, so a tiny lake still has many of both.
fn small_lake(out: &Path, seed: u64) -> Vec<TableReport> {
    let options = GenerateOptions {
        out: out.to_path_buf(),
        scale: 0.01,
        seed,
        // Row groups and files that do not line up with tenants: some row groups hold two.
        row_group_rows: 600,
        file_rows: 2_500,
        ..GenerateOptions::default()
    };
    generate(&options, &|_, _| {}).expect("generate")
}

fn request(table: &str, tenant: &str, columns: Option<&[&str]>) -> TableRequest {
    TableRequest {
        table: table.to_string(),
        tenant: tenant.to_string(),
        tenant_column: "tenant_id".to_string(),
        columns: columns.map(|c| c.iter().map(|s| s.to_string()).collect()),
        window: None,
    }
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    files
}

fn strings(array: &ArrayRef) -> Vec<Option<String>> {
    if let Some(a) = array.as_any().downcast_ref::<StringArray>() {
        return a.iter().map(|v| v.map(str::to_string)).collect();
    }
    let a = array.as_any().downcast_ref::<StringViewArray>().expect("a string column");
    a.iter().map(|v| v.map(str::to_string)).collect()
}

/// Every value of `column` of a tenant's rows, read with the plain reader (no source logic).
fn plain_values(dir: &Path, tenant: &str, column: &str) -> Vec<String> {
    let mut values = Vec::new();
    for file in parquet_files(dir) {
        let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(file).unwrap()).unwrap().build().unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let tenants = strings(batch.column_by_name("tenant_id").unwrap());
            let wanted = strings(batch.column_by_name(column).unwrap());
            for (t, v) in tenants.iter().zip(wanted) {
                if t.as_deref() == Some(tenant) {
                    values.push(v.unwrap_or_default());
                }
            }
        }
    }
    values
}

/// Row groups of the whole table, those holding at least one row of `tenant`, and their rows.
fn plain_row_groups(dir: &Path, tenant: &str) -> (usize, usize, u64) {
    let (mut total, mut holding, mut rows) = (0, 0, 0);
    for file in parquet_files(dir) {
        let builder = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(&file).unwrap()).unwrap();
        let groups = builder.metadata().num_row_groups();
        for group in 0..groups {
            let builder = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(&file).unwrap()).unwrap();
            let group_rows = builder.metadata().row_group(group).num_rows() as u64;
            let reader = builder.with_row_groups(vec![group]).build().unwrap();
            let found = reader
                .map(|b| b.unwrap())
                .any(|b| strings(b.column_by_name("tenant_id").unwrap()).iter().any(|t| t.as_deref() == Some(tenant)));
            total += 1;
            holding += usize::from(found);
            rows += if found { group_rows } else { 0 };
        }
    }
    (total, holding, rows)
}

async fn read_all(source: &LakeSource, request: &TableRequest, bounds: &Bounds) -> Vec<RecordBatch> {
    let stream = source.open(request, bounds).await.expect("open");
    let batches: Vec<RecordBatch> = stream.batches.try_collect().await.expect("read");
    for batch in &batches {
        assert_eq!(batch.schema(), stream.schema, "every batch has the announced schema");
    }
    batches
}

fn column_values(batches: &[RecordBatch], column: &str) -> Vec<String> {
    batches.iter().flat_map(|b| strings(b.column_by_name(column).unwrap())).map(Option::unwrap_or_default).collect()
}

fn source_error_text(result: byob::Result<impl std::fmt::Debug>) -> String {
    let error = result.expect_err("an error");
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(s) = source {
        text.push_str(&format!(" / {s}"));
        source = s.source();
    }
    text
}

#[tokio::test]
async fn tenant_filter_returns_exactly_the_tenants_rows_of_every_table() {
    // GIVEN a lake of four tenants
    let dir = tempfile::tempdir().unwrap();
    let reports = small_lake(dir.path(), 7);
    let source = LakeSource::new(dir.path().to_path_buf()).with_batch_size(1_000);

    for report in &reports {
        let id_column = table_schema(&report.table).unwrap().field(0).name().clone();
        let mut rows = 0;
        for tenant in TENANTS {
            // WHEN one tenant's table is read
            let batches = read_all(&source, &request(&report.table, tenant, None), &Bounds::Whole).await;
            // THEN it holds that tenant's rows, all of them, and nothing else
            let tenants = column_values(&batches, "tenant_id");
            assert!(tenants.iter().all(|t| t == tenant), "{}: another tenant's row leaked", report.table);
            let mut ids = column_values(&batches, &id_column);
            let mut expected = plain_values(&dir.path().join(&report.table), tenant, &id_column);
            assert!(!expected.is_empty());
            ids.sort();
            expected.sort();
            assert_eq!(ids, expected, "{} of {tenant}", report.table);
            assert!(batches.iter().all(|b| b.num_rows() <= 1_000));
            rows += ids.len() as u64;
        }
        assert_eq!(rows, report.rows, "{}: the tenants together are the whole table", report.table);
    }

    // AND a tenant that does not exist has no rows
    let batches = read_all(&source, &request("events", "nobody", None), &Bounds::Whole).await;
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 0);
}

#[tokio::test]
async fn row_groups_of_other_tenants_are_skipped() {
    // GIVEN events in many row groups, clustered by tenant
    let dir = tempfile::tempdir().unwrap();
    small_lake(dir.path(), 7);
    let events = dir.path().join("events");

    for tenant in ["globex", "umbrella"] {
        let (total, holding, _) = plain_row_groups(&events, tenant);
        assert!(holding < total / 2, "{tenant}: {holding} of {total} row groups: the test lake is not clustered");

        // WHEN one tenant's events are read
        let source = LakeSource::new(dir.path().to_path_buf());
        read_all(&source, &request("events", tenant, Some(&["event_id"])), &Bounds::Whole).await;

        // THEN only the row groups holding its rows were read
        assert_eq!(source.row_groups_read(), holding as u64, "{tenant}: {total} row groups in all");
    }

    // AND a tenant outside every row group's range reads nothing at all
    let source = LakeSource::new(dir.path().to_path_buf());
    read_all(&source, &request("events", "zzz", None), &Bounds::Whole).await;
    assert_eq!(source.row_groups_read(), 0);
}

#[tokio::test]
async fn projection_returns_the_requested_columns_in_the_requested_order() {
    let dir = tempfile::tempdir().unwrap();
    small_lake(dir.path(), 7);
    let source = LakeSource::new(dir.path().to_path_buf());
    let columns = ["is_conversion", "event_id", "revenue", "tenant_id"];

    let stream = source.open(&request("events", "initech", Some(&columns)), &Bounds::Whole).await.unwrap();

    let full = table_schema("events").unwrap();
    let expected: Vec<Field> = columns.iter().map(|c| full.field_with_name(c).unwrap().clone()).collect();
    let names: Vec<&str> = stream.schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, columns);
    for (got, want) in stream.schema.fields().iter().zip(&expected) {
        // Strings are read as views (their values stay in the pages they were read from); what
        // the receipt calls them does not change.
        let read_as = match want.data_type() {
            DataType::Utf8 => DataType::Utf8View,
            other => other.clone(),
        };
        assert_eq!(got.data_type(), &read_as, "{}", want.name());
        assert_eq!(byob::schema::type_name(got.data_type()), byob::schema::type_name(want.data_type()));
        assert_eq!(got.is_nullable(), want.is_nullable(), "{}", want.name());
    }
    let batches: Vec<RecordBatch> = stream.batches.try_collect().await.unwrap();
    let mut ids = column_values(&batches, "event_id");
    let mut expected_ids = plain_values(&dir.path().join("events"), "initech", "event_id");
    ids.sort();
    expected_ids.sort();
    assert_eq!(ids, expected_ids);
    assert!(batches.iter().all(|b| b.num_columns() == 4));
}

#[tokio::test]
async fn problems_found_before_reading_are_errors_from_open_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    small_lake(dir.path(), 7);
    let source = LakeSource::new(dir.path().to_path_buf());

    // A table whose folder does not exist.
    let error = source_error_text(source.open(&request("nope", "acme", None), &Bounds::Whole).await);
    assert!(error.contains("\"nope\"") && error.contains("does not exist"), "{error}");
    assert!(error.contains(&dir.path().join("nope").display().to_string()), "{error}");

    // A column the table does not have; the tenant column missing.
    let error =
        source_error_text(source.open(&request("events", "acme", Some(&["event_id", "colour"])), &Bounds::Whole).await);
    assert!(error.contains("\"events\"") && error.contains("\"colour\"") && error.contains("events"), "{error}");
    let mut bad_tenant_column = request("events", "acme", None);
    bad_tenant_column.tenant_column = "customer".into();
    let error = source_error_text(source.plan(&bad_tenant_column, 100).await);
    assert!(error.contains("\"customer\""), "{error}");

    // A column requested twice.
    let error = source_error_text(
        source.open(&request("events", "acme", Some(&["event_id", "event_id"])), &Bounds::Whole).await,
    );
    assert!(error.contains("twice"), "{error}");

    // A folder without Parquet files (other files do not count).
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    fs::write(empty.join("notes.txt"), "not data").unwrap();
    fs::write(empty.join("_SUCCESS"), "").unwrap();
    let error = source_error_text(source.open(&request("empty", "acme", None), &Bounds::Whole).await);
    assert!(error.contains("no .parquet file") && error.contains(&empty.display().to_string()), "{error}");

    // A folder whose files disagree on the schema: the differing file is named.
    let mixed = dir.path().join("mixed");
    fs::create_dir(&mixed).unwrap();
    fs::copy(dir.path().join("companies/part-00000.parquet"), mixed.join("a.parquet")).unwrap();
    fs::copy(dir.path().join("contacts/part-00000.parquet"), mixed.join("b.parquet")).unwrap();
    let error = source_error_text(source.open(&request("mixed", "acme", None), &Bounds::Whole).await);
    assert!(error.contains("b.parquet") && error.contains("different schema"), "{error}");

    // Bounds that cannot be read: not a lake's, a file outside the table's folder, a row group
    // the file does not have, a file rewritten since the plan. None is worth a retry.
    let events = request("events", "acme", None);
    let planned = source.plan(&events, 1_000_000).await.unwrap();
    let Bounds::RowGroups { files } = &planned[0] else { panic!("{planned:?}") };
    let part = files[0].clone();
    let outside =
        FilePart { path: dir.path().join("contacts/part-00000.parquet").display().to_string(), ..part.clone() };
    let past_end = FilePart { row_groups: vec![0, 999], ..part.clone() };
    let resized = FilePart { bytes: part.bytes + 1, ..part.clone() };
    for (bounds, expected) in [
        (Bounds::Rows { from: 0, to: 1 }, "were not planned by a Parquet lake source"),
        (Bounds::RowGroups { files: vec![outside] }, "not in the table's folder"),
        (Bounds::RowGroups { files: vec![past_end] }, "a file that has"),
        (Bounds::RowGroups { files: vec![resized] }, "the file changed since the run was planned"),
        (Bounds::RowGroups { files: vec![] }, "no file listed"),
    ] {
        let result = source.open(&events, &bounds).await;
        let error = result.as_ref().err().map(|e| e.is_retryable());
        assert_eq!(error, Some(false), "{bounds:?}");
        let text = source_error_text(result);
        assert!(text.contains(expected), "{text}");
    }
}

#[tokio::test]
async fn slices_hold_every_row_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    small_lake(dir.path(), 7);
    let source = LakeSource::new(dir.path().to_path_buf()).with_batch_size(700);

    for (table, tenant) in [("events", "acme"), ("events", "umbrella"), ("contacts", "globex"), ("paid_ads", "initech")]
    {
        let req = request(table, tenant, None);
        let id_column = table_schema(table).unwrap().field(0).name().clone();
        let whole = column_values(&read_all(&source, &req, &Bounds::Whole).await, &id_column);
        for target in [1_000_000, 2_000, 1_500, 600, 450] {
            let planned = source.plan(&req, target).await.unwrap();
            let count = planned.len();
            let mut ids = Vec::new();
            let mut checksum = 0u64;
            for bounds in &planned {
                let slice_ids = column_values(&read_all(&source, &req, bounds).await, &id_column);
                checksum = slice_ids.iter().fold(checksum, |sum, id| sum.wrapping_add(fnv(id)));
                ids.extend(slice_ids);
            }
            // Same rows, same order: slices are contiguous runs of the whole.
            assert_eq!(ids, whole, "{table}/{tenant} in {count} slices");
            assert_eq!(checksum, whole.iter().fold(0u64, |sum, id| sum.wrapping_add(fnv(id))));
            assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len(), "ids are unique");
        }
    }
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[tokio::test]
async fn slice_count_follows_the_statistics_of_the_tenants_row_groups() {
    let dir = tempfile::tempdir().unwrap();
    small_lake(dir.path(), 7);
    let source = LakeSource::new(dir.path().to_path_buf());
    let req = request("events", "acme", None);
    // acme has 4,000 of the 10,000 events, in 8 row groups of up to 600 rows.
    let (_, holding, rows) = plain_row_groups(&dir.path().join("events"), "acme");
    assert_eq!(holding, 8);
    assert!(rows >= 4_000);
    let expected = |target: u64| rows.div_ceil(target.max(1)).min(holding as u64).max(1) as usize;
    let count = |planned: Vec<Bounds>| planned.len();

    for target in [1_000_000, 4_400, 2_000, 1_500, 1, 0] {
        assert_eq!(count(source.plan(&req, target).await.unwrap()), expected(target), "target {target}");
    }
    assert_eq!(count(source.plan(&req, 1_000_000).await.unwrap()), 1);
    assert_eq!(count(source.plan(&req, 1).await.unwrap()), 8, "capped by row groups");
    // A tenant no row group may hold (above every maximum): one slice that lists a file (for the schema), no row group.
    let nobody = source.plan(&request("events", "zz-nobody", None), 10).await.unwrap();
    let [Bounds::RowGroups { files }] = nobody.as_slice() else { panic!("{nobody:?}") };
    assert_eq!(files.len(), 1);
    assert!(files[0].row_groups.is_empty());
    assert!(
        read_all(&source, &request("events", "zz-nobody", None), &nobody[0]).await.iter().all(|b| b.num_rows() == 0)
    );
}

#[tokio::test]
async fn integer_and_string_view_tenant_columns_are_filtered_too() {
    // GIVEN a hand-made table whose tenant column is Int64, another with Utf8View
    let dir = tempfile::tempdir().unwrap();
    let ints = dir.path().join("ints");
    let views = dir.path().join("views");
    fs::create_dir(&ints).unwrap();
    fs::create_dir(&views).unwrap();
    for part in 0..3i64 {
        let tenant_ids: Vec<i64> = (0..100).map(|i| part * 10 + i / 25).collect();
        let values: Vec<String> = (0..100).map(|i| format!("p{part}r{i}")).collect();
        let int_schema = Arc::new(Schema::new(vec![
            Field::new("tenant", DataType::Int64, false),
            Field::new("value", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            int_schema,
            vec![Arc::new(Int64Array::from(tenant_ids.clone())), Arc::new(StringArray::from(values.clone()))],
        )
        .unwrap();
        write_parquet(&ints.join(format!("{part}.parquet")), &batch, 30);

        let view_schema = Arc::new(Schema::new(vec![
            Field::new("tenant", DataType::Utf8View, false),
            Field::new("value", DataType::Utf8, false),
        ]));
        let names: Vec<String> = tenant_ids.iter().map(|t| format!("t{t:02}")).collect();
        let batch = RecordBatch::try_new(
            view_schema,
            vec![Arc::new(StringViewArray::from_iter_values(names)), Arc::new(StringArray::from(values))],
        )
        .unwrap();
        write_parquet(&views.join(format!("{part}.parquet")), &batch, 30);
    }
    let source = LakeSource::new(dir.path().to_path_buf());
    let mut req = request("ints", "12", None);
    req.tenant_column = "tenant".into();

    // WHEN tenant 12 is read THEN it gets its 25 rows, from the 2 row groups that hold them
    let batches = read_all(&source, &req, &Bounds::Whole).await;
    assert_eq!(column_values(&batches, "value"), (50..75).map(|i| format!("p1r{i}")).collect::<Vec<_>>());
    assert_eq!(source.row_groups_read(), 2);

    // AND a tenant that is not a number is a clear error
    req.tenant = "acme".into();
    let error = source_error_text(source.open(&req, &Bounds::Whole).await);
    assert!(error.contains("\"acme\"") && error.contains("Int64"), "{error}");

    // AND string views work like strings
    let mut req = request("views", "t21", Some(&["value", "tenant"]));
    req.tenant_column = "tenant".into();
    let batches = read_all(&source, &req, &Bounds::Whole).await;
    assert_eq!(column_values(&batches, "value"), (25..50).map(|i| format!("p2r{i}")).collect::<Vec<_>>());
    assert!(column_values(&batches, "tenant").iter().all(|t| t == "t21"));
}

fn write_parquet(path: &Path, batch: &RecordBatch, row_group_rows: usize) {
    let props = WriterProperties::builder().set_max_row_group_row_count(Some(row_group_rows)).build();
    let mut writer = ArrowWriter::try_new(fs::File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

#[tokio::test]
async fn table_paths_can_be_overridden_per_table() {
    let dir = tempfile::tempdir().unwrap();
    small_lake(dir.path(), 7);
    let elsewhere = dir.path().join("archive/ads_v2");
    fs::create_dir_all(elsewhere.parent().unwrap()).unwrap();
    fs::rename(dir.path().join("paid_ads"), &elsewhere).unwrap();

    let source = LakeSource::new(dir.path().to_path_buf()).with_table_path("paid_ads", elsewhere.clone());
    let rows: usize = read_all(&source, &request("paid_ads", "acme", None), &Bounds::Whole)
        .await
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
    assert_eq!(rows, plain_values(&elsewhere, "acme", "ad_id").len());

    // A single file works as a table path too.
    let one_file = elsewhere.join("part-00000.parquet");
    let source = LakeSource::new(dir.path().to_path_buf()).with_table_path("paid_ads", one_file);
    assert!(source.open(&request("paid_ads", "acme", None), &Bounds::Whole).await.is_ok());
}

#[test]
fn the_generator_is_deterministic_and_replaces_stale_parts() {
    // GIVEN two lakes from the same options, and one from another seed
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    let reports_a = small_lake(a.path(), 99);
    let reports_b = small_lake(b.path(), 99);
    small_lake(c.path(), 100);

    // THEN the same options give byte-identical files, another seed other bytes
    assert_eq!(reports_a, reports_b);
    assert_eq!(reports_a.iter().map(|r| r.table.as_str()).collect::<Vec<_>>(), TABLES);
    for table in TABLES {
        let files_a = parquet_files(&a.path().join(table));
        let files_b = parquet_files(&b.path().join(table));
        assert_eq!(files_a.len(), files_b.len());
        for (fa, fb) in files_a.iter().zip(&files_b) {
            assert_eq!(fa.file_name(), fb.file_name());
            assert!(fs::read(fa).unwrap() == fs::read(fb).unwrap(), "{} differs", fa.display());
        }
        let first_c = fs::read(c.path().join(table).join("part-00000.parquet")).unwrap();
        assert!(fs::read(&files_a[0]).unwrap() != first_c, "{table}: the seed changes the data");
    }

    // AND the report tells the truth about the files
    for report in &reports_a {
        let files = parquet_files(&a.path().join(&report.table));
        assert_eq!(report.files as usize, files.len());
        assert_eq!(report.bytes, files.iter().map(|f| fs::metadata(f).unwrap().len()).sum::<u64>());
        let rows: i64 = files
            .iter()
            .map(|f| {
                ParquetRecordBatchReaderBuilder::try_new(fs::File::open(f).unwrap())
                    .unwrap()
                    .metadata()
                    .file_metadata()
                    .num_rows()
            })
            .sum();
        assert_eq!(rows as u64, report.rows);
    }

    // WHEN the lake is regenerated with bigger files, THEN the extra old parts are gone
    let events_before = reports_a.iter().find(|r| r.table == "events").unwrap().files;
    assert!(events_before > 1);
    let options = GenerateOptions { out: a.path().to_path_buf(), scale: 0.01, seed: 99, ..GenerateOptions::default() };
    let reports = generate(&options, &|_, _| {}).unwrap();
    for report in reports {
        assert_eq!(parquet_files(&a.path().join(&report.table)).len(), report.files as usize, "{}", report.table);
    }
    assert_eq!(parquet_files(&a.path().join("events")).len(), 1);
    let leftovers: Vec<_> = fs::read_dir(a.path().join("events")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, ["part-00000.parquet"]);
}

#[test]
fn generated_references_point_at_rows_of_the_same_tenant() {
    let dir = tempfile::tempdir().unwrap();
    small_lake(dir.path(), 7);
    let by_tenant = |table: &str, column: &str| -> BTreeMap<&str, BTreeSet<String>> {
        TENANTS
            .iter()
            .map(|t| {
                (*t, plain_values(&dir.path().join(table), t, column).into_iter().filter(|v| !v.is_empty()).collect())
            })
            .collect()
    };
    let companies = by_tenant("companies", "company_id");
    let contacts = by_tenant("contacts", "contact_id");
    let events = by_tenant("events", "event_id");
    let deals = by_tenant("revenue", "deal_id");
    for (table, column, targets) in [
        ("contacts", "company_id", &companies),
        ("events", "contact_id", &contacts),
        ("events", "company_id", &companies),
        ("revenue", "company_id", &companies),
        ("revenue_attribution", "deal_id", &deals),
        ("revenue_attribution", "event_id", &events),
    ] {
        let references = by_tenant(table, column);
        for tenant in TENANTS {
            assert!(!references[tenant].is_empty(), "{table}.{column} of {tenant} is never set");
            let dangling: Vec<_> = references[tenant].difference(&targets[tenant]).collect();
            assert!(
                dangling.is_empty(),
                "{table}.{column} of {tenant}: {} dangling, e.g. {:?}",
                dangling.len(),
                dangling.first()
            );
        }
    }
}

#[test]
fn progress_reports_rows_written_per_table() {
    let dir = tempfile::tempdir().unwrap();
    let seen = std::sync::Mutex::new(BTreeMap::<String, u64>::new());
    let options = GenerateOptions { out: dir.path().to_path_buf(), scale: 0.002, ..GenerateOptions::default() };
    let reports = generate(&options, &|table, rows| {
        let mut seen = seen.lock().unwrap();
        let last = seen.entry(table.to_string()).or_default();
        *last = (*last).max(rows);
    })
    .unwrap();
    let seen = seen.into_inner().unwrap();
    for report in reports {
        assert_eq!(seen[&report.table], report.rows, "{}", report.table);
    }
}
