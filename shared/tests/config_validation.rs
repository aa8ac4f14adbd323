//! The configuration contract: one test per validation rule (asserting the field path and
//! what the message says), all problems reported at once, unknown fields at every depth,
//! TOML and JSON equivalence, path resolution, byte sizes, and the example config.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use byob::config::{
    AwsConfig, ByteSize, Config, ConfigErrors, DestinationConfig, Encryption, ExportConfig, ParquetSource,
    SourceConfig, StateConfig, TableConfig,
};
use byob::format::{Codec, Format, FormatKind};
use byob::layout::KeyTemplate;
use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/config")
}

/// A valid config with one S3 destination, one local destination and two tables.
fn valid() -> Value {
    json!({
        "source": { "type": "parquet", "path": "lake" },
        "tables": [ { "name": "companies" }, { "name": "people" } ],
        "destinations": [
            {
                "id": "acme",
                "tenant": "acme",
                "bucket": "acme-data-exports",
                "role_arn": "arn:aws:iam::123456789012:role/byob-writer",
                "external_id": "byob-acme-7f3e9c2a41d8"
            },
            { "id": "globex", "tenant": "globex", "folder": "out/globex" }
        ]
    })
}

fn base() -> &'static Path {
    Path::new("/etc/byob")
}

/// Applies `change` to the valid config and returns its problems (it must have some).
fn problems(change: impl FnOnce(&mut Value)) -> ConfigErrors {
    let mut v = valid();
    change(&mut v);
    match Config::from_value(v, base()) {
        Ok(c) => panic!("expected problems, got a valid config: {c:?}"),
        Err(e) => e,
    }
}

/// Sets the value at a JSON pointer, creating objects along the way.
fn set(v: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let mut node = v;
    for part in parent.split('/').skip(1) {
        node = match node {
            Value::Array(items) => &mut items[part.parse::<usize>().unwrap()],
            Value::Object(map) => map.entry(part).or_insert_with(|| json!({})),
            other => panic!("cannot descend into {other}"),
        };
    }
    match node {
        Value::Array(items) => match key.parse::<usize>().unwrap() {
            i if i == items.len() => items.push(value),
            i => items[i] = value,
        },
        Value::Object(map) => {
            map.insert(key.to_owned(), value);
        }
        other => panic!("cannot set in {other}"),
    }
}

fn remove(v: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    v.pointer_mut(parent).unwrap().as_object_mut().unwrap().remove(key);
}

/// Asserts a problem at exactly `path` whose message contains every one of `words`.
#[track_caller]
fn assert_problem(errors: &ConfigErrors, path: &str, words: &[&str]) {
    let found: Vec<_> = errors.iter().filter(|p| p.path == path).collect();
    assert!(!found.is_empty(), "no problem at {path:?}; got:\n{errors}");
    assert!(
        found.iter().any(|p| words.iter().all(|w| p.message.contains(w))),
        "problem at {path:?} does not mention {words:?}; got:\n{errors}"
    );
}

fn paths(errors: &ConfigErrors) -> BTreeSet<&str> {
    errors.iter().map(|p| p.path.as_str()).collect()
}

// ---- the example and the basics ---------------------------------------------------------------

#[test]
fn example_config_validates() {
    let config = Config::load(&fixtures().join("byob.example.toml")).unwrap();
    config.validate().unwrap();
    let dir = std::path::absolute(fixtures()).unwrap();
    assert_eq!(config.tables.len(), 3);
    assert_eq!(config.destinations.len(), 2);
    let acme = config.destination("acme").unwrap();
    assert_eq!(acme.bucket.as_deref(), Some("acme-data-exports"));
    assert_eq!(acme.table_names(&config.tables), ["companies", "people"]);
    assert_eq!(acme.bucket_owner().as_deref(), Some("123456789012"));
    assert_eq!(acme.max_file_bytes, ByteSize::mib(256));
    assert!(
        matches!(&acme.encryption, Some(Encryption::SseKms { kms_key_id }) if kms_key_id.starts_with("arn:aws:kms:"))
    );
    let globex = config.destination("globex-local").unwrap();
    assert_eq!(globex.folder.as_deref(), Some(dir.join("out/globex").as_path()));
    assert_eq!(
        globex.format,
        Format {
            delimiter: Some(byob::format::Delimiter::Semicolon),
            header: Some(true),
            quote: Some('\''),
            escape: Some('\\'),
            null: Some("NULL".into()),
            line_ending: Some(byob::format::LineEnding::Crlf),
            ..Format::new(FormatKind::Csv, Codec::Gzip)
        }
    );
    assert_eq!(globex.table_names(&config.tables), ["companies", "people", "events"]);
    assert_eq!(config.state.path, dir.join(".byob-state"));
    assert_eq!(config.aws.writer_role_arn.as_deref(), Some("arn:aws:iam::111122223333:role/byob-destination-writer"));
}

#[test]
fn example_json_equals_example_toml() {
    let toml = Config::load(&fixtures().join("byob.example.toml")).unwrap();
    let json = Config::load(&fixtures().join("byob.example.json")).unwrap();
    assert_eq!(toml, json);
}

#[test]
fn toml_and_json_of_the_same_config_parse_equal() {
    let toml = r#"
        [source]
        type = "parquet"
        path = "lake"
        tenant_column = "org"

        [[tables]]
        name = "companies"
        columns = ["id", "name"]

        [[destinations]]
        id = "acme"
        tenant = "acme"
        bucket = "acme-data-exports"
        prefix = "exports/"
        role_arn = "arn:aws:iam::123456789012:role/byob-writer"
        external_id = "byob-acme-1"
        max_file_bytes = "64 MiB"
        format = { type = "parquet", codec = "zstd" }
        encryption = { type = "sse-s3" }
        tags = { team = "data" }

        [export]
        part_size = 16777216
    "#;
    let json = r#"{
        "source": { "type": "parquet", "path": "lake", "tenant_column": "org" },
        "tables": [ { "name": "companies", "columns": ["id", "name"] } ],
        "destinations": [ {
            "id": "acme", "tenant": "acme", "bucket": "acme-data-exports", "prefix": "exports/",
            "role_arn": "arn:aws:iam::123456789012:role/byob-writer", "external_id": "byob-acme-1",
            "max_file_bytes": 67108864, "format": { "type": "parquet", "codec": "zstd" },
            "encryption": { "type": "sse-s3" }, "tags": { "team": "data" }
        } ],
        "export": { "part_size": "16MiB" }
    }"#;
    let a = Config::from_toml_str(toml, base()).unwrap();
    let b = Config::from_json_str(json, base()).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.destinations[0].prefix, "exports", "the trailing '/' is dropped on load");
    assert_eq!(a.export.part_size, ByteSize::mib(16));
    // What a config serializes to loads back to the same config.
    let round_trip = Config::from_json_str(&serde_json::to_string(&a).unwrap(), base()).unwrap();
    assert_eq!(round_trip, a);
}

#[test]
fn a_minimal_config_gets_every_default() {
    let config = Config::from_value(valid(), base()).unwrap();
    assert_eq!(
        config.source,
        SourceConfig::Parquet(ParquetSource { path: "/etc/byob/lake".into(), tenant_column: "tenant_id".into() })
    );
    assert_eq!(config.export, ExportConfig::default());
    assert_eq!(
        (
            config.export.parallelism,
            config.export.part_size,
            config.export.row_group_bytes,
            config.export.gzip_level,
            config.export.target_rows_per_slice
        ),
        (4, ByteSize::mib(8), ByteSize::mib(32), 6, 5_000_000)
    );
    assert_eq!(config.aws, AwsConfig::default());
    assert_eq!(config.state, StateConfig { path: "/etc/byob/.byob-state".into() });
    let d = &config.destinations[0];
    assert_eq!(d.prefix, "");
    assert_eq!(d.format, Format::default());
    assert_eq!(d.max_file_rows, 1_000_000);
    assert_eq!(d.max_file_bytes, ByteSize::mib(256));
    assert_eq!(d.key_template, KeyTemplate::DEFAULT);
    assert_eq!(d.key_template().unwrap(), KeyTemplate::default());
    assert_eq!(d.encryption, None);
    assert!(!d.bucket_owner_full_control);
    assert!(d.tags.is_empty());
    assert_eq!(d.tables, None);
    assert_eq!(d.bucket_owner().as_deref(), Some("123456789012"), "taken from role_arn");
    assert_eq!(config.tables[0].tenant_column(&config.source), "tenant_id");
}

#[test]
fn every_field_is_shown_in_the_example() {
    // A config with every optional field set: the compiler makes this list every field, so a
    // new field fails here until the example shows it.
    let config = Config {
        source: SourceConfig::Parquet(ParquetSource { path: "lake".into(), tenant_column: "t".into() }),
        tables: vec![TableConfig {
            name: "a".into(),
            tenant_column: Some("t".into()),
            columns: Some(vec![]),
            path: Some("p".into()),
            query: Some("q".into()),
            slice_key: Some("k".into()),
            mode: byob::increment::TableMode::Incremental,
            watermark: Some("w".into()),
            primary_key: Some(vec!["k".into()]),
            lookback: Some(byob::increment::Lookback::Amount(1)),
        }],
        destinations: vec![DestinationConfig {
            id: "a".into(),
            tenant: "a".into(),
            bucket: Some("b".into()),
            folder: Some("f".into()),
            prefix: String::new(),
            region: Some("r".into()),
            endpoint_url: Some("e".into()),
            role_arn: Some("r".into()),
            external_id: Some("e".into()),
            expected_bucket_owner: Some("o".into()),
            format: Format {
                delimiter: Some(byob::format::Delimiter::Tab),
                header: Some(false),
                quote: Some('"'),
                escape: Some('\\'),
                null: Some("N".into()),
                line_ending: Some(byob::format::LineEnding::Crlf),
                ..Format::default()
            },
            max_file_rows: 1,
            max_file_bytes: ByteSize(1),
            key_template: String::new(),
            shard_numbering: byob::config::ShardNumbering::Consecutive,
            encryption: Some(Encryption::SseKms { kms_key_id: "k".into() }),
            bucket_owner_full_control: true,
            tags: [("team".to_owned(), "x".to_owned())].into(),
            tables: Some(vec![]),
            schedule: Some(byob::config::Schedule::parse("hourly").unwrap()),
            manifest: true,
            partition_by: Some(byob::config::PartitionBy { column: "c".into(), grain: byob::config::Grain::Day }),
            pgp_public_key: Some("k".into()),
            full_every: Some(byob::increment::Span::parse("7d").unwrap()),
        }],
        export: ExportConfig::default(),
        aws: AwsConfig { writer_role_arn: Some("w".into()), region: Some("r".into()), endpoint_url: Some("e".into()) },
        state: StateConfig::default(),
    };
    fn keys(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    out.insert(k.clone());
                    if k != "tags" {
                        keys(v, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| keys(i, out)),
            _ => {}
        }
    }
    let mut all = BTreeSet::new();
    keys(&serde_json::to_value(&config).unwrap(), &mut all);
    // The other source kinds' fields, every optional one set.
    let postgres = SourceConfig::Postgres(byob::config::PostgresSource {
        url: Some(byob::config::SecretUrl::new("u")),
        secret: Some("s".into()),
        schema: "s".into(),
        tenant_column: "t".into(),
        tls: Some(byob::config::TlsMode::Require),
        ca_file: Some("c".into()),
    });
    keys(&serde_json::to_value(&postgres).unwrap(), &mut all);
    let example = std::fs::read_to_string(fixtures().join("byob.example.toml")).unwrap();
    for key in all {
        let shown = example.contains(&format!("{key} ="))
            || example.contains(&format!("[{key}]"))
            || example.contains(&format!("[[{key}]]"));
        assert!(shown, "byob.example.toml does not show the field {key:?}");
    }
}

// ---- one test per rule ------------------------------------------------------------------------

#[test]
fn bucket_names_follow_s3_rules() {
    for (bad, words) in [
        ("My_Bucket", &["3-63 characters", "lowercase", "'M', '_'"][..]),
        ("ab", &["3-63", "this one has 2"]),
        ("-acme", &["starting and ending with a letter or digit"]),
        ("acme..exports", &["two adjacent dots"]),
        ("10.0.0.1", &["IP address"]),
        ("xn--acme", &["xn--"]),
        ("acme-s3alias", &["-s3alias"]),
        ("acme--ol-s3", &["--ol-s3"]),
    ] {
        let errors = problems(|v| set(v, "/destinations/0/bucket", json!(bad)));
        assert_problem(&errors, "destinations[0].bucket", words);
        assert_eq!(errors.at("destinations[0].bucket").unwrap().value, Some(format!("{bad:?}")));
    }
    let errors = problems(|v| set(v, "/destinations/0/bucket", json!("My_Bucket")));
    assert!(errors.to_string().contains(
        "destinations[0].bucket = \"My_Bucket\": bucket names are 3-63 characters of lowercase letters, digits, dots and hyphens"
    ));
}

#[test]
fn role_arns_have_the_iam_role_shape() {
    let errors = problems(|v| {
        set(v, "/destinations/0/role_arn", json!("arn:aws:iam::12345:role/x"));
        set(v, "/aws/writer_role_arn", json!("arn:aws:iam::111122223333:user/byob"));
    });
    assert_problem(&errors, "destinations[0].role_arn", &["12 digits", "arn:aws:iam::123456789012:role/byob-writer"]);
    assert_problem(&errors, "aws.writer_role_arn", &["role/"]);
    // Every partition is accepted.
    for arn in ["arn:aws-cn:iam::123456789012:role/x", "arn:aws-us-gov:iam::123456789012:role/path/to/x"] {
        let mut v = valid();
        set(&mut v, "/destinations/0/role_arn", json!(arn));
        Config::from_value(v, base()).unwrap();
    }
}

#[test]
fn external_ids_are_2_to_1224_safe_characters() {
    for bad in ["x", "has space", "quote\"", &"x".repeat(1225)] {
        let errors = problems(|v| set(v, "/destinations/0/external_id", json!(bad)));
        assert_problem(&errors, "destinations[0].external_id", &["2-1224", "_+=,.@:/-"]);
    }
}

#[test]
fn external_ids_are_unique_per_customer() {
    let errors = problems(|v| {
        set(
            v,
            "/destinations/1",
            json!({
                "id": "globex", "tenant": "globex", "bucket": "globex-exports",
                "role_arn": "arn:aws:iam::210987654321:role/byob", "external_id": "byob-acme-7f3e9c2a41d8"
            }),
        );
    });
    assert_problem(&errors, "destinations[1].external_id", &["destinations[0]", "unique per customer"]);
    // The same customer may use its ExternalId for two destinations.
    let mut v = valid();
    set(
        &mut v,
        "/destinations/1",
        json!({
            "id": "acme-us", "tenant": "acme", "bucket": "acme-us-exports",
            "role_arn": "arn:aws:iam::123456789012:role/byob-writer", "external_id": "byob-acme-7f3e9c2a41d8"
        }),
    );
    Config::from_value(v, base()).unwrap();
}

#[test]
fn s3_destinations_need_a_role_and_an_external_id() {
    let errors = problems(|v| {
        remove(v, "/destinations/0/role_arn");
        remove(v, "/destinations/0/external_id");
    });
    assert_problem(&errors, "destinations[0].role_arn", &["required for an S3 destination"]);
    assert_problem(&errors, "destinations[0].external_id", &["required for an S3 destination", "trust policy"]);
    // A folder destination needs neither, but an ExternalId without a role means nothing.
    let errors = problems(|v| set(v, "/destinations/1/external_id", json!("byob-globex-1")));
    assert_problem(&errors, "destinations[1].external_id", &["role_arn, which is not set"]);
}

#[test]
fn exactly_one_of_bucket_or_folder() {
    let errors = problems(|v| set(v, "/destinations/0/folder", json!("out/acme")));
    assert_problem(&errors, "destinations[0]", &["exactly one of bucket", "both are set"]);
    let errors = problems(|v| remove(v, "/destinations/1/folder"));
    assert_problem(&errors, "destinations[1]", &["exactly one of bucket", "neither is set"]);
}

#[test]
fn destination_ids_are_valid_and_unique() {
    let errors = problems(|v| set(v, "/destinations/1/id", json!("acme")));
    assert_problem(&errors, "destinations[1].id", &["destinations[0] has the same id", "unique"]);
    for bad in ["Acme", "acme corp", "-acme", "", &"a".repeat(65)] {
        let errors = problems(|v| set(v, "/destinations/1/id", json!(bad)));
        assert_problem(&errors, "destinations[1].id", &["1-64 lowercase letters, digits, '_' and '-'"]);
    }
}

#[test]
fn table_names_are_valid_and_unique_ignoring_case() {
    let errors = problems(|v| set(v, "/tables/1/name", json!("Companies")));
    assert_problem(&errors, "tables[1].name", &["tables[0] has the same name", "ignoring case"]);
    for bad in ["1st", "my-table", "a.b", "", &"t".repeat(64)] {
        let errors = problems(|v| set(v, "/tables/1/name", json!(bad)));
        assert_problem(&errors, "tables[1].name", &["1-63 ASCII letters, digits and '_'"]);
    }
}

#[test]
fn destination_table_subsets_name_configured_tables() {
    let errors = problems(|v| set(v, "/destinations/0/tables", json!(["companies", "persons", "companies"])));
    assert_problem(&errors, "destinations[0].tables[1]", &["no such table", "companies, people"]);
    assert_problem(&errors, "destinations[0].tables[2]", &["listed twice"]);
    let errors = problems(|v| set(v, "/destinations/0/tables", json!([])));
    assert_problem(&errors, "destinations[0].tables", &["at least one table"]);
}

#[test]
fn table_columns_and_tenant_columns_are_named() {
    let errors = problems(|v| {
        set(v, "/tables/0/columns", json!([]));
        set(v, "/tables/1/columns", json!(["id", "", "id"]));
        set(v, "/tables/1/tenant_column", json!(" "));
        set(v, "/source/tenant_column", json!(""));
    });
    assert_problem(&errors, "tables[0].columns", &["at least one column"]);
    assert_problem(&errors, "tables[1].columns[1]", &["column name"]);
    assert_problem(&errors, "tables[1].columns[2]", &["listed twice"]);
    assert_problem(&errors, "tables[1].tenant_column", &["column name"]);
    assert_problem(&errors, "source.tenant_column", &["column name"]);
}

#[test]
fn incremental_tables_need_a_watermark_and_exported_keys() {
    let errors = problems(|v| {
        set(v, "/tables/0/mode", json!("incremental"));
        set(v, "/tables/0/primary_key", json!(["id"]));
        set(v, "/tables/0/lookback", json!("30m"));
        set(v, "/tables/1/watermark", json!("updated_at"));
        set(v, "/tables/1/columns", json!(["id", "name"]));
        set(v, "/tables/1/primary_key", json!(["id", "id", "email"]));
        set(v, "/tables/1/lookback", json!(0));
        set(v, "/destinations/1/full_every", json!("7d"));
    });
    assert_problem(&errors, "tables[0].watermark", &["required", "incremental"]);
    assert_problem(&errors, "tables[0].primary_key", &["only to a table with a watermark"]);
    assert_problem(&errors, "tables[0].lookback", &["only to a table with a watermark"]);
    assert_problem(&errors, "tables[1].watermark", &["not in columns"]);
    assert_problem(&errors, "tables[1].primary_key[1]", &["listed twice"]);
    assert_problem(&errors, "tables[1].primary_key[2]", &["not in columns"]);
    assert_problem(&errors, "tables[1].lookback", &["positive"]);
    // No table is incremental: full_every has nothing to do.
    let errors = problems(|v| set(v, "/destinations/1/full_every", json!("7d")));
    assert_problem(&errors, "destinations[1].full_every", &["7d", "no table", "incremental"]);
    let errors = problems(|v| {
        set(v, "/tables/0/mode", json!("sometimes"));
        set(v, "/destinations/1/full_every", json!("a week"));
    });
    assert!(errors.to_string().contains("sometimes"), "{errors}");
    assert!(errors.to_string().contains("s, m, h or d"), "{errors}");
}

#[test]
fn tenants_are_not_empty() {
    let errors = problems(|v| set(v, "/destinations/0/tenant", json!("")));
    assert_problem(&errors, "destinations[0].tenant", &["must not be empty"]);
    let errors = problems(|v| set(v, "/destinations/0/tenant", json!("acme ")));
    assert_problem(&errors, "destinations[0].tenant", &["trailing spaces"]);
}

#[test]
fn max_file_rows_is_at_least_one() {
    let errors = problems(|v| set(v, "/destinations/0/max_file_rows", json!(0)));
    assert_problem(&errors, "destinations[0].max_file_rows", &["at least 1"]);
    assert_eq!(errors.at("destinations[0].max_file_rows").unwrap().value.as_deref(), Some("0"));
}

#[test]
fn max_file_bytes_is_at_least_one_mib_and_fits_the_upload() {
    let errors = problems(|v| set(v, "/destinations/0/max_file_bytes", json!("512KiB")));
    assert_problem(&errors, "destinations[0].max_file_bytes", &["512 KiB", "at least 1 MiB"]);
    let errors = problems(|v| set(v, "/destinations/0/max_file_bytes", json!("1TiB")));
    assert_problem(&errors, "destinations[0].max_file_bytes", &["5,000 upload parts", "export.part_size"]);
}

#[test]
fn part_size_is_5_mib_to_5_gib() {
    for bad in [json!("4MiB"), json!(5 * 1024 * 1024 - 1), json!("6GiB")] {
        let errors = problems(|v| set(v, "/export/part_size", bad));
        assert_problem(&errors, "export.part_size", &["5 MiB to 5 GiB"]);
    }
    for ok in ["5MiB", "5GiB"] {
        let mut v = valid();
        set(&mut v, "/export/part_size", json!(ok));
        Config::from_value(v, base()).unwrap();
    }
}

#[test]
fn parallelism_is_1_to_256() {
    for bad in [0, 257] {
        let errors = problems(|v| set(v, "/export/parallelism", json!(bad)));
        assert_problem(&errors, "export.parallelism", &["1-256"]);
    }
}

#[test]
fn export_tuning_bounds() {
    let errors = problems(|v| {
        set(v, "/export/gzip_level", json!(10));
        set(v, "/export/row_group_bytes", json!("2GiB"));
        set(v, "/export/target_rows_per_slice", json!(0));
    });
    assert_problem(&errors, "export.gzip_level", &["0-9"]);
    assert_problem(&errors, "export.row_group_bytes", &["1 MiB to 1 GiB"]);
    assert_problem(&errors, "export.target_rows_per_slice", &["at least 1"]);
}

#[test]
fn prefixes_are_relative_and_safe() {
    for (bad, words) in [
        ("/exports", &["starts with '/'"][..]),
        ("exports//acme", &["empty segment"]),
        ("exports/../acme", &["\"..\""]),
        ("exports/acme corp", &["' '", "letters, digits"]),
    ] {
        let errors = problems(|v| set(v, "/destinations/0/prefix", json!(bad)));
        assert_problem(&errors, "destinations[0].prefix", words);
    }
}

#[test]
fn key_templates_follow_the_layout_rules() {
    for (bad, words) in [
        ("/{run}/{table}/{shard}", &["starts with '/'"][..]),
        ("{run}/{table}/{part}.{ext}", &["unknown placeholder {part}", "{run}, {table}, {partition}, {shard}"]),
        ("{run}/{table}/{table}_{shard", &["no matching '}'"]),
        ("{run}/../{table}/{shard}", &["\"..\""]),
        ("{run}/{table}/{table}.{ext}", &["no {shard}"]),
        ("{run}/{shard}/{table}.{ext}", &["only in the file name"]),
        ("{run}/{table}_{shard}.{ext}", &["{table} must appear in the folder part"]),
    ] {
        let errors = problems(|v| set(v, "/destinations/0/key_template", json!(bad)));
        assert_problem(&errors, "destinations[0].key_template", words);
    }
}

#[test]
fn formats_are_checked() {
    let errors = problems(|v| set(v, "/destinations/0/format", json!({ "type": "csv", "codec": "zstd" })));
    assert_problem(&errors, "destinations[0].format", &["gzip", "none"]);
    let errors = problems(|v| set(v, "/destinations/0/format", json!({ "type": "parquet", "delimiter": ";" })));
    assert_problem(&errors, "destinations[0].format", &["csv only"]);
    let errors = problems(|v| set(v, "/destinations/0/format", json!({ "type": "xml" })));
    assert_problem(&errors, "destinations[0].format.type", &["xml", "parquet"]);
    let errors = problems(|v| set(v, "/destinations/0/format", json!({ "type": "csv", "compression": "gzip" })));
    assert_problem(&errors, "destinations[0].format.compression", &["unknown field"]);
}

#[test]
fn schedules_are_parsed_and_either_every_destination_has_one_or_none_does() {
    let errors = problems(|v| set(v, "/destinations/0/schedule", json!("weekly")));
    assert_problem(&errors, "destinations[0].schedule", &["\"weekly\" is not a schedule", "twice-daily", "cron"]);
    let errors = problems(|v| set(v, "/destinations/0/schedule", json!("hourly")));
    assert_problem(&errors, "destinations[1].schedule", &["missing while destinations[0] has one", "every firing"]);
    let mut v = valid();
    set(&mut v, "/destinations/0/schedule", json!("hourly"));
    set(&mut v, "/destinations/1/schedule", json!("30 */6 * * 1-5"));
    let config = Config::from_value(v, base()).unwrap();
    assert_eq!(
        byob::config::firing_expression(config.destinations.iter().filter_map(|d| d.schedule.as_ref())).as_deref(),
        Some("cron(0,30 * * * ? *)")
    );
}

#[test]
fn partitions_need_partition_in_the_template_and_the_template_needs_partition_by() {
    let errors =
        problems(|v| set(v, "/destinations/0/partition_by", json!({ "column": "occurred_at", "grain": "day" })));
    assert_problem(&errors, "destinations[0].key_template", &["no {partition}", "partition_by"]);
    let errors =
        problems(|v| set(v, "/destinations/0/key_template", json!("{run}/{table}/{partition}/{table}_{shard}.{ext}")));
    assert_problem(&errors, "destinations[0].key_template", &["partition_by is not set"]);
    let errors = problems(|v| set(v, "/destinations/0/partition_by", json!({ "column": "at", "grain": "week" })));
    assert_problem(&errors, "destinations[0].partition_by.grain", &["week"]);
    let errors = problems(|v| {
        set(v, "/destinations/0/partition_by", json!({ "column": "at", "grain": "day" }));
        set(v, "/destinations/0/key_template", json!("{run}/{partition}/{table}/{table}_{shard}.{ext}"));
    });
    assert_problem(&errors, "destinations[0].key_template", &["{partition} must come after"]);
    let mut v = valid();
    set(&mut v, "/destinations/0/partition_by", json!({ "column": "at", "grain": "month" }));
    set(&mut v, "/destinations/0/key_template", json!("{run}/{table}/at={partition}/{table}_{shard}.{ext}"));
    Config::from_value(v, base()).unwrap();
}

#[test]
fn csv_options_are_checked() {
    for (format, words) in [
        (json!({ "type": "parquet", "null": "\\N", "header": false }), &["header, null", "csv only"][..]),
        (json!({ "type": "csv", "quote": "a" }), &["quote", "ASCII punctuation"]),
        (json!({ "type": "csv", "escape": "," }), &["escape", "delimiter"]),
        (json!({ "type": "csv", "quote": "'", "escape": "'" }), &["escape must differ from quote"]),
        (json!({ "type": "csv", "null": "a,b" }), &["null", "delimiter"]),
        (json!({ "type": "csv", "null": "NULL-NULL-NULL-NULL" }), &["longer than 16"]),
        (json!({ "type": "csv", "escape": "\\", "null": "\\N" }), &["null", "escape"]),
    ] {
        let errors = problems(|v| set(v, "/destinations/0/format", format.clone()));
        assert_problem(&errors, "destinations[0].format", words);
    }
    let errors = problems(|v| set(v, "/destinations/0/format", json!({ "type": "csv", "line_ending": "cr" })));
    assert_problem(&errors, "destinations[0].format.line_ending", &["cr"]);
    let errors = problems(|v| set(v, "/destinations/0/format", json!({ "type": "csv", "quote": "''" })));
    assert_problem(&errors, "destinations[0].format.quote", &["character"]);
    let mut v = valid();
    set(
        &mut v,
        "/destinations/0/format",
        json!({ "type": "csv", "header": false, "quote": "'", "escape": "\\", "null": "NULL", "line_ending": "crlf" }),
    );
    Config::from_value(v, base()).unwrap();
}

#[test]
fn expected_bucket_owner_is_an_account_id() {
    let errors = problems(|v| set(v, "/destinations/0/expected_bucket_owner", json!("12345")));
    assert_problem(&errors, "destinations[0].expected_bucket_owner", &["12 digits"]);
    let mut v = valid();
    set(&mut v, "/destinations/0/expected_bucket_owner", json!("999988887777"));
    let config = Config::from_value(v, base()).unwrap();
    assert_eq!(config.destinations[0].bucket_owner().as_deref(), Some("999988887777"));
    assert_eq!(config.destinations[1].bucket_owner(), None);
}

#[test]
fn sse_kms_needs_a_key() {
    let errors = problems(|v| set(v, "/destinations/0/encryption", json!({ "type": "sse-kms" })));
    assert_problem(&errors, "destinations[0].encryption", &["sse-kms needs kms_key_id"]);
    let errors = problems(|v| set(v, "/destinations/0/encryption", json!({ "type": "sse-kms", "kms_key_id": "" })));
    assert_problem(&errors, "destinations[0].encryption.kms_key_id", &["KMS key"]);
    let errors = problems(|v| set(v, "/destinations/0/encryption", json!({ "type": "sse-s3", "kms_key_id": "k" })));
    assert_problem(&errors, "destinations[0].encryption", &["sse-kms"]);
    let errors = problems(|v| set(v, "/destinations/0/encryption", json!({ "type": "aes" })));
    assert_problem(&errors, "destinations[0].encryption.type", &["sse-s3", "sse-kms"]);
}

#[test]
fn tags_follow_s3_limits() {
    let eleven: serde_json::Map<String, Value> = (0..11).map(|i| (format!("k{i}"), json!("v"))).collect();
    let errors = problems(|v| set(v, "/destinations/0/tags", Value::Object(eleven)));
    assert_problem(&errors, "destinations[0].tags", &["11 tags", "at most 10"]);
    let errors = problems(|v| {
        set(v, "/destinations/0/tags", json!({ "aws:owner": "x", "ok": "x".repeat(257), "bad key!": "x" }));
        set(v, &format!("/destinations/0/tags/{}", "k".repeat(129)), json!("x"));
    });
    assert_problem(&errors, "destinations[0].tags.\"aws:owner\"", &["reserved"]);
    assert_problem(&errors, "destinations[0].tags.ok", &["at most 256"]);
    assert_problem(&errors, "destinations[0].tags.\"bad key!\"", &["1-128 characters"]);
    assert_problem(&errors, &format!("destinations[0].tags.{}", "k".repeat(129)), &["1-128 characters"]);
}

#[test]
fn at_least_one_table_and_one_destination() {
    let errors = problems(|v| {
        set(v, "/tables", json!([]));
        set(v, "/destinations", json!([]));
    });
    assert_problem(&errors, "tables", &["at least one table"]);
    assert_problem(&errors, "destinations", &["at least one destination"]);
    let errors = problems(|v| {
        remove(v, "/tables");
        remove(v, "/destinations");
        remove(v, "/source");
    });
    assert_eq!(paths(&errors), BTreeSet::from(["source", "tables", "destinations"]));
}

#[test]
fn regions_have_the_aws_shape() {
    let errors = problems(|v| {
        set(v, "/destinations/0/region", json!("Europe"));
        set(v, "/aws/region", json!("eu-west"));
    });
    assert_problem(&errors, "destinations[0].region", &["eu-west-1"]);
    assert_problem(&errors, "aws.region", &["eu-west-1"]);
}

#[test]
fn endpoints_are_http_urls() {
    let errors = problems(|v| {
        set(v, "/destinations/0/endpoint_url", json!("127.0.0.1:5000"));
        set(v, "/aws/endpoint_url", json!("ftp://moto"));
    });
    assert_problem(&errors, "destinations[0].endpoint_url", &["http://"]);
    assert_problem(&errors, "aws.endpoint_url", &["http://"]);
}

#[test]
fn sources_have_a_known_type() {
    let errors = problems(|v| set(v, "/source", json!({ "type": "mysql", "path": "x" })));
    assert_problem(&errors, "source.type", &["unknown source type", "\"parquet\""]);
    let errors = problems(|v| set(v, "/source", json!({ "path": "x" })));
    assert_problem(&errors, "source.type", &["required"]);
    let errors = problems(|v| set(v, "/source", json!({ "type": "parquet" })));
    assert_problem(&errors, "source.path", &["required"]);
    let errors = problems(|v| set(v, "/source", json!({ "type": "parquet", "path": "" })));
    assert_problem(&errors, "source.path", &["must not be empty"]);
}

// ---- all at once ------------------------------------------------------------------------------

#[test]
fn many_problems_are_reported_at_once() {
    // GIVEN a config with a dozen unrelated mistakes
    let toml = r#"
        [source]
        type = "parquet"
        path = "lake"

        [[tables]]
        name = "companies"

        [[tables]]
        name = "2nd"

        [[destinations]]
        id = "acme"
        tenant = "acme"
        bucket = "My_Bucket"
        role_arn = "arn:aws:iam::123:role/x"
        external_id = "x"
        key_template = "{run}/{table}/{oops}_{shard}"
        tables = ["nope"]

        [[destinations]]
        id = "acme"
        tenant = ""
        folder = "out"
        prefix = "/abs"
        max_file_rows = 0

        [export]
        parallelism = 0
        part_size = "1MiB"

        [aws]
        region = "moon"
    "#;
    // WHEN it is loaded
    let errors = Config::from_toml_str(toml, base()).unwrap_err();
    // THEN every mistake is named, each on its own line
    let expected = [
        "tables[1].name",
        "destinations[0].bucket",
        "destinations[0].role_arn",
        "destinations[0].external_id",
        "destinations[0].key_template",
        "destinations[0].tables[0]",
        "destinations[1].id",
        "destinations[1].tenant",
        "destinations[1].prefix",
        "destinations[1].max_file_rows",
        "export.parallelism",
        "export.part_size",
        "aws.region",
    ];
    assert_eq!(paths(&errors), expected.into_iter().collect::<BTreeSet<_>>(), "{errors}");
    let text = errors.to_string();
    assert!(text.starts_with(&format!("invalid configuration ({} problems):", errors.0.len())), "{text}");
    assert_eq!(text.lines().count(), errors.0.len() + 1);
    for path in expected {
        assert!(text.lines().any(|l| l.trim_start().starts_with(path)), "{path} not on a line of its own:\n{text}");
    }
}

#[test]
fn unknown_fields_are_all_reported_at_every_depth() {
    let toml = r#"
        verison = 1

        [source]
        type = "parquet"
        path = "lake"
        tenant_colum = "tenant_id"

        [[tables]]
        name = "companies"

        [[tables]]
        name = "people"
        colums = ["a"]

        [[destinations]]
        id = "acme"
        tenant = "acme"
        bucket = "acme-data-exports"
        role = "arn:aws:iam::123456789012:role/x"
        role_arn = "arn:aws:iam::123456789012:role/byob-writer"
        external_id = "byob-acme-1"
        encryption = { type = "sse-kms", kms_key_id = "k", key_id = "k" }
        extra = { nested = { deeper = 1 } }

        [export]
        paralellism = 8

        [aws]
        writer_role = "arn:aws:iam::123456789012:role/w"

        [state]
        dir = "x"
    "#;
    let errors = Config::from_toml_str(toml, base()).unwrap_err();
    let expected = [
        "verison",
        "source.tenant_colum",
        "tables[1].colums",
        "destinations[0].role",
        "destinations[0].encryption.key_id",
        "destinations[0].extra",
        "export.paralellism",
        "aws.writer_role",
        "state.dir",
    ];
    assert_eq!(paths(&errors), expected.into_iter().collect::<BTreeSet<_>>(), "{errors}");
    for p in &errors.0 {
        assert!(p.message.contains("unknown field"), "{p}");
        assert_eq!(p.value, None, "unknown fields never echo their value: {p}");
    }
    // One unknown field is enough to reject the config, exactly like deny_unknown_fields.
    let mut v = valid();
    set(&mut v, "/destinations/1/colour", json!("blue"));
    let errors = Config::from_value(v, base()).unwrap_err();
    assert_eq!(paths(&errors), BTreeSet::from(["destinations[1].colour"]));
}

#[test]
fn type_errors_name_their_path_and_do_not_hide_other_problems() {
    let errors = problems(|v| {
        set(v, "/destinations/0/max_file_rows", json!("lots"));
        remove(v, "/destinations/1/tenant");
        set(v, "/export/parallelism", json!(-1));
        set(v, "/tables/1/name", json!("bad-name"));
        set(v, "/destinations/2", json!({ "id": "x", "tenant": "x", "folder": "y", "max_file_bytes": "12 parsecs" }));
    });
    assert_problem(&errors, "destinations[0].max_file_rows", &["invalid type", "\"lots\""]);
    assert_problem(&errors, "destinations[1].tenant", &["is required"]);
    assert_problem(&errors, "export.parallelism", &["invalid value"]);
    assert_problem(&errors, "destinations[2].max_file_bytes", &["unknown unit \"parsecs\"", "256MiB"]);
    // Validation still ran on what could be read.
    assert_problem(&errors, "tables[1].name", &["1-63"]);
}

#[test]
fn secrets_are_never_echoed() {
    let errors = problems(|v| {
        set(v, "/source/password", json!("hunter2"));
        set(v, "/destinations/0/secret_token", json!({ "a": "hunter2" }));
    });
    assert_problem(&errors, "source.password", &["unknown field"]);
    assert_problem(&errors, "destinations[0].secret_token", &["unknown field"]);
    assert!(!errors.to_string().contains("hunter2"));
    assert!(!format!("{errors:?}").contains("hunter2"));
}

// ---- files, paths and syntax ------------------------------------------------------------------

#[test]
fn relative_paths_resolve_against_the_config_folder() {
    let dir = tempfile::tempdir().unwrap();
    let conf_dir = dir.path().join("conf");
    std::fs::create_dir(&conf_dir).unwrap();
    let absolute = dir.path().join("elsewhere/events");
    let toml = format!(
        r#"
        [source]
        type = "parquet"
        path = "../lake"

        [[tables]]
        name = "companies"
        path = "tables/companies"

        [[tables]]
        name = "events"
        path = {absolute:?}

        [[destinations]]
        id = "acme"
        tenant = "acme"
        folder = "out/acme"

        [state]
        path = "s3://our-state-bucket/byob"
    "#
    );
    let file = conf_dir.join("byob.toml");
    std::fs::write(&file, toml).unwrap();
    let config = Config::load(&file).unwrap();
    let base = std::path::absolute(&conf_dir).unwrap();
    let SourceConfig::Parquet(source) = &config.source else { unreachable!() };
    assert_eq!(source.path, base.join("../lake"));
    assert_eq!(config.tables[0].path.as_deref(), Some(base.join("tables/companies").as_path()));
    assert_eq!(config.tables[1].path.as_deref(), Some(absolute.as_path()), "absolute paths are kept");
    assert_eq!(config.destinations[0].folder.as_deref(), Some(base.join("out/acme").as_path()));
    assert_eq!(config.state.path, PathBuf::from("s3://our-state-bucket/byob"), "URLs are kept");

    // The same file as JSON resolves the same way.
    let json = serde_json::json!({
        "source": { "type": "parquet", "path": "../lake" },
        "tables": ["companies"],
        "destinations": [ { "id": "acme", "tenant": "acme", "folder": "out/acme" } ]
    });
    let json_file = conf_dir.join("byob.json");
    std::fs::write(&json_file, json.to_string()).unwrap();
    let config = Config::load(&json_file).unwrap();
    assert_eq!(config.destinations[0].folder.as_deref(), Some(base.join("out/acme").as_path()));
    assert_eq!(config.state.path, base.join(".byob-state"));
    assert_eq!(config.tables, vec![TableConfig::named("companies")], "a name alone is shorthand for a table");
}

#[test]
fn load_reports_unreadable_files_and_syntax_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = Config::load(&dir.path().join("nope.toml")).unwrap_err();
    assert!(missing.to_string().contains("cannot read") && missing.to_string().contains("nope.toml"), "{missing}");

    let yaml = dir.path().join("byob.yaml");
    std::fs::write(&yaml, "source: {}").unwrap();
    assert!(Config::load(&yaml).unwrap_err().to_string().contains(".toml or .json"));

    let bad_toml = Config::from_toml_str("[source]\ntype = \"parquet\"\npath = \n", base()).unwrap_err();
    assert!(bad_toml.to_string().contains("not valid TOML at line 3"), "{bad_toml}");
    assert_eq!(bad_toml.to_string().lines().count(), 1);

    let bad_json = Config::from_json_str("{\n \"source\": [1,\n}", base()).unwrap_err();
    assert!(bad_json.to_string().contains("not valid JSON") && bad_json.to_string().contains("line 3"), "{bad_json}");

    let not_a_table = Config::from_json_str("[1, 2]", base()).unwrap_err();
    assert!(not_a_table.to_string().contains("top level"), "{not_a_table}");
}

#[test]
fn deserializing_a_config_is_as_strict_as_loading_one() {
    let mut v = valid();
    assert!(serde_json::from_value::<Config>(v.clone()).is_ok());
    set(&mut v, "/destinations/0/buckte", json!("x"));
    let e = serde_json::from_value::<Config>(v).unwrap_err().to_string();
    assert!(e.contains("destinations[0].buckte") && e.contains("unknown field"), "{e}");
}

#[test]
fn validate_checks_a_config_built_in_code() {
    let mut config = Config {
        source: SourceConfig::Parquet(ParquetSource { path: "lake".into(), tenant_column: "tenant_id".into() }),
        tables: vec![TableConfig::named("companies")],
        destinations: vec![DestinationConfig::local("acme", "acme", "out/acme")],
        export: ExportConfig::default(),
        aws: AwsConfig::default(),
        state: StateConfig::default(),
    };
    config.validate().unwrap();
    config.destinations.push(DestinationConfig::local("acme", "", "out/acme2"));
    config.export.gzip_level = 11;
    let errors = config.validate().unwrap_err();
    assert_eq!(paths(&errors), BTreeSet::from(["destinations[1].id", "destinations[1].tenant", "export.gzip_level"]));
}

// ---- byte sizes -------------------------------------------------------------------------------

#[test]
fn byte_sizes_parse_from_integers_and_units() {
    for (text, bytes) in [
        ("0", 0),
        ("1024", 1024),
        ("1B", 1),
        ("512KiB", 512 * 1024),
        ("512 kib", 512 * 1024),
        ("8 MiB", 8 << 20),
        ("256MiB", 256 << 20),
        ("1GiB", 1 << 30),
        ("1TiB", 1 << 40),
        ("1KB", 1_000),
        ("5mb", 5_000_000),
        ("1GB", 1_000_000_000),
        ("2TB", 2_000_000_000_000),
        ("1.5GiB", 3 << 29),
        ("0.5 KB", 500),
        ("  64MiB  ", 64 << 20),
    ] {
        assert_eq!(text.parse::<ByteSize>().unwrap(), ByteSize(bytes), "{text}");
    }
    for bad in ["", "MiB", "1.5", "1..5MiB", "1.B", "-1MiB", "12 parsecs", "1 M", "1.0001KB", "99999999999999999999TiB"]
    {
        let e = bad.parse::<ByteSize>().unwrap_err();
        assert!(e.to_string().contains("\"256MiB\""), "{bad}: {e}");
    }
    assert_eq!(ByteSize::mib(256).to_string(), "256 MiB");
    assert_eq!(ByteSize(1000).to_string(), "1000 B");
    assert_eq!(ByteSize::gib(2).to_string(), "2 GiB");
    // Serialized as an integer, read from an integer or a string.
    assert_eq!(serde_json::to_string(&ByteSize::mib(8)).unwrap(), "8388608");
    assert_eq!(serde_json::from_str::<ByteSize>("8388608").unwrap(), ByteSize::mib(8));
    assert_eq!(serde_json::from_str::<ByteSize>("\"8 MiB\"").unwrap(), ByteSize::mib(8));
    assert!(serde_json::from_str::<ByteSize>("-1").is_err());
    assert!(serde_json::from_str::<ByteSize>("1.5").is_err());
    assert_eq!(
        toml::from_str::<Value>("a = \"8MiB\"")
            .map(|v| serde_json::from_value::<ByteSize>(v["a"].clone()).unwrap())
            .unwrap(),
        ByteSize::mib(8)
    );
}

#[test]
fn encoder_options_follow_the_export_settings() {
    let export = ExportConfig { row_group_bytes: ByteSize::mib(16), gzip_level: 9, ..ExportConfig::default() };
    let options = export.encoder_options();
    assert_eq!((options.row_group_bytes, options.gzip_level), (16 << 20, 9));
}
