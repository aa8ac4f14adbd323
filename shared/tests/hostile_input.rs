//! Hostile input: property-based fuzzing (proptest) of everything byob parses from outside.
//!
//! Proves, for arbitrary and for structurally mutated real inputs, that
//! - the config parser (TOML and JSON: arbitrary bytes, text mutations and value mutations of
//!   `tests/fixtures/config/byob.example.toml`) never panics, and every rejection is a list of
//!   non-empty problems, each naming a field of the config (or the file as a whole);
//! - key templates (arbitrary and generated valid ones, with arbitrary valid table names,
//!   runs, shards and prefixes) either fail with an error naming the template, or render keys
//!   that stay inside the destination's prefix and the table's folder: no leading `/`, no
//!   `.`, `..` or empty segment, only S3-safe characters, one key per (table, shard), and
//!   keys the loader's own checks accept; a hostile table name, tenant, destination id,
//!   prefix or template in a config is rejected by a problem naming that field;
//! - the receipt parser and the loader's receipt checks (arbitrary JSON, mutations of a real
//!   receipt) never panic, every rejection is a bounded, non-empty message, and an accepted
//!   receipt only names objects inside its prefix;
//! - the S3/SQS event parser (arbitrary JSON, mutations of `events/*.json` and of SQS/SNS
//!   envelopes around them) never panics, and only ever reports receipts named `receipt.json`;
//! - destination ids that collide in STS session names, and destinations that write to the
//!   same place, are rejected naming both.
//!
//! Case counts are small enough for CI (a few seconds); set `PROPTEST_CASES=<n>` to run every
//! target `n` cases instead (e.g. `PROPTEST_CASES=200000 cargo test -p byob-shared --release
//! --test hostile_input -- --nocapture`). Each target prints the cases it executed.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use byob::config::{Config, ConfigErrors};
use byob::format::{Codec, Format, FormatKind};
use byob::layout::{self, KeyTemplate, LayoutError, RunId};
use byob::load::event::{self, Notification};
use byob::load::{LoadError, ReceiptLocation, verify};
use byob::receipt::{FileEntry, Receipt, TableReceipt};
use byob::schema::ColumnSchema;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// The harness: a runner per target, a case counter, the figures printed
// ---------------------------------------------------------------------------------------------

/// Runs `test` on `cases` values of `strategy` (or `PROPTEST_CASES` of them) and prints how
/// many cases ran.
fn fuzz<S: Strategy>(target: &str, cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(cases);
    let config = RunnerConfig { cases, failure_persistence: None, ..RunnerConfig::default() };
    let executed = AtomicU64::new(0);
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |value| {
        executed.fetch_add(1, Ordering::Relaxed);
        test(value)
    });
    eprintln!("fuzz target {target}: {} cases executed", executed.load(Ordering::Relaxed));
    if let Err(e) = result {
        panic!("fuzz target {target} failed: {e}");
    }
}

/// Fragments attackers (and accidents) put into names, keys and values.
const HOSTILE: &[&str] = &[
    "",
    ".",
    "..",
    "../",
    "/",
    "//",
    "/etc/passwd",
    "..\\..\\x",
    "C:\\x",
    "s3://other-bucket/x",
    "arn:aws:s3:::other",
    "%2e%2e%2f",
    "%",
    "+",
    "\0",
    "\n",
    "\r\n",
    "\t",
    " ",
    "\"",
    "'",
    ";",
    "--",
    "x\"; DROP TABLE t; --",
    "\\",
    "{run}",
    "{table}",
    "{shard}",
    "{ext}",
    "{prefix}",
    "{YYYY}",
    "{",
    "}",
    "{{",
    "ü",
    "名前",
    "😀",
    "\u{202e}",
    "\u{feff}",
    "\u{fffd}",
    "2023-03-14T04:03",
    "receipt.json",
    "companies",
    "acme",
    "tenant_id",
    "list<",
    ">",
    "decimal(",
    "=",
    "[",
    "]",
    "#",
    "-1",
    "18446744073709551616",
    "1e400",
    "NaN",
];

/// Strings made of hostile fragments, arbitrary characters and plain words.
fn hostile_string() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(HOSTILE).prop_map(str::to_owned),
            3 => "[a-z0-9_]{1,8}",
            2 => any::<char>().prop_map(String::from),
            1 => (1usize..3000).prop_map(|n| "a".repeat(n)),
        ],
        0..6,
    )
    .prop_map(|parts| parts.concat())
}

/// Object keys: mostly field names byob reads, sometimes anything.
const FIELDS: &[&str] = &[
    "version",
    "timestamp",
    "run",
    "previous_run",
    "format",
    "type",
    "codec",
    "delimiter",
    "tables",
    "folder",
    "total_file_count",
    "row_count",
    "byte_count",
    "schema",
    "name",
    "nullable",
    "files",
    "key",
    "rows",
    "bytes",
    "sha256",
    "Records",
    "s3",
    "bucket",
    "object",
    "eventName",
    "eventTime",
    "body",
    "Message",
    "Event",
    "source",
    "path",
    "destinations",
    "id",
    "tenant",
    "prefix",
    "role_arn",
    "external_id",
    "key_template",
    "export",
    "aws",
    "state",
    "tenant_column",
    "columns",
];

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![3 => prop::sample::select(FIELDS).prop_map(str::to_owned), 1 => hostile_string()]
}

/// Integers at the edges of what receipts and configs hold.
const EXTREMES: &[u64] = &[0, 1, u64::MAX, u64::MAX - 1, i64::MAX as u64, 1 << 53];

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(EXTREMES).prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        hostile_string().prop_map(Value::String),
    ]
}

/// Arbitrary JSON, biased towards the field names byob reads.
fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((field_name(), inner), 0..8)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// One structural change to a JSON document, at the node a list of choices leads to.
#[derive(Clone, Debug)]
enum Mutation {
    /// Replace the node with another value.
    Replace(Vec<u32>, Value),
    /// Remove the node from its parent.
    Remove(Vec<u32>),
    /// Add a field to an object node (or an element to an array node).
    Insert(Vec<u32>, String, Value),
    /// Repeat an element of an array node, or a whole node inside an array.
    Duplicate(Vec<u32>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let path = prop::collection::vec(any::<u32>(), 0..8);
    prop_oneof![
        5 => (path.clone(), json_leaf()).prop_map(|(p, v)| Mutation::Replace(p, v)),
        1 => (path.clone(), json_value()).prop_map(|(p, v)| Mutation::Replace(p, v)),
        2 => path.clone().prop_map(Mutation::Remove),
        2 => (path.clone(), field_name(), json_leaf()).prop_map(|(p, k, v)| Mutation::Insert(p, k, v)),
        1 => path.prop_map(Mutation::Duplicate),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..5)
}

/// The children of a node, as a count (objects in key order).
fn child_count(v: &Value) -> usize {
    match v {
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        _ => 0,
    }
}

fn child_mut(v: &mut Value, i: usize) -> Option<&mut Value> {
    match v {
        Value::Array(a) => a.get_mut(i),
        Value::Object(o) => o.values_mut().nth(i),
        _ => None,
    }
}

/// Follows `path` (each step picks a child modulo the count) as far as it goes; returns the
/// node's parent and the child index, or `None` for the root.
fn walk<'a>(root: &'a mut Value, path: &[u32]) -> (&'a mut Value, Option<usize>) {
    let mut node = root;
    let mut steps = path.iter();
    // Find how deep the path can go without borrowing problems: descend while the next child
    // has children itself or is the last step.
    loop {
        let Some(&step) = steps.next() else { return (node, None) };
        let n = child_count(node);
        if n == 0 {
            return (node, None);
        }
        let i = step as usize % n;
        let descend = !steps.as_slice().is_empty() && child_mut(node, i).is_some_and(|c| child_count(c) > 0);
        if !descend {
            return (node, Some(i));
        }
        node = child_mut(node, i).unwrap_or_else(|| unreachable!("checked above"));
    }
}

fn apply(doc: &mut Value, m: &Mutation) {
    match m {
        Mutation::Replace(path, value) => match walk(doc, path) {
            (parent, Some(i)) => {
                if let Some(c) = child_mut(parent, i) {
                    *c = value.clone();
                }
            }
            (node, None) => *node = value.clone(),
        },
        Mutation::Remove(path) => {
            if let (parent, Some(i)) = walk(doc, path) {
                match parent {
                    Value::Array(a) => {
                        a.remove(i);
                    }
                    Value::Object(o) => {
                        if let Some(k) = o.keys().nth(i).cloned() {
                            o.remove(&k);
                        }
                    }
                    _ => {}
                }
            }
        }
        Mutation::Insert(path, key, value) => {
            let (parent, i) = walk(doc, path);
            let target = match i {
                Some(i) => child_mut(parent, i).filter(|c| c.is_object() || c.is_array()),
                None => Some(parent),
            };
            match target {
                Some(Value::Object(o)) => {
                    o.insert(key.clone(), value.clone());
                }
                Some(Value::Array(a)) => a.push(value.clone()),
                _ => {}
            }
        }
        Mutation::Duplicate(path) => {
            if let (Value::Array(a), Some(i)) = walk(doc, path) {
                let copy = a[i].clone();
                a.insert(i, copy);
            }
        }
    }
}

fn mutated(base: &Value, ms: &[Mutation]) -> Value {
    let mut doc = base.clone();
    for m in ms {
        apply(&mut doc, m);
    }
    doc
}

/// A rejection must be clear: a non-empty message of bounded length.
fn clear(message: &str, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(!message.trim().is_empty(), "{what}: an empty error message");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The config parser
// ---------------------------------------------------------------------------------------------

fn fixture(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)).unwrap()
}

fn example_toml() -> String {
    fixture("tests/fixtures/config/byob.example.toml")
}

fn example_json() -> Value {
    let toml: toml::Value = toml::from_str(&example_toml()).unwrap();
    serde_json::to_value(toml).unwrap()
}

fn base() -> &'static Path {
    Path::new("/srv/byob")
}

const SECTIONS: &[&str] = &["source", "tables", "destinations", "export", "aws", "state"];

/// Every problem of a rejected config has a message and names a field of a known section (or
/// the file as a whole, path ""); a config that is accepted validates again and its every
/// destination renders keys inside its prefix.
fn check_config_outcome(outcome: Result<Config, ConfigErrors>, what: &str) -> Result<(), TestCaseError> {
    match outcome {
        Err(errors) => {
            prop_assert!(!errors.0.is_empty(), "{what}: rejected with no problem");
            clear(&errors.to_string(), what)?;
            for p in &errors {
                clear(&p.message, what)?;
                let section = p.path.split(['.', '[']).next().unwrap_or("");
                prop_assert!(
                    p.path.is_empty() || SECTIONS.contains(&section) || p.message.starts_with("unknown field"),
                    "{what}: problem at an unknown place {:?}: {p}",
                    p.path
                );
            }
        }
        Ok(config) => {
            prop_assert!(config.validate().is_ok(), "{what}: accepted but does not validate again");
            let run: RunId = "2023-03-14T04:03".parse().unwrap();
            for d in &config.destinations {
                let template = d.key_template().map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
                let prefix = layout::normalize_prefix(&d.prefix).map_err(|e| TestCaseError::fail(e.to_string()))?;
                for t in d.tables(&config.tables) {
                    check_rendered(&template, &prefix, &run, &t.name, 0, d.format.extension())?;
                }
                let session = byob::names::session_name(&d.id, &run.to_string());
                prop_assert!(byob::names::check_session_name(&session).is_ok(), "{session}");
            }
        }
    }
    Ok(())
}

#[test]
fn config_arbitrary_bytes() {
    fuzz("config: arbitrary bytes as TOML and JSON", 1500, prop::collection::vec(any::<u8>(), 0..512), |bytes| {
        let text = String::from_utf8_lossy(&bytes);
        check_config_outcome(Config::from_toml_str(&text, base()), "toml")?;
        check_config_outcome(Config::from_json_str(&text, base()), "json")
    });
}

/// One text-level change to the example's TOML.
#[derive(Clone, Debug)]
enum TextEdit {
    Delete(u32, u16),
    Insert(u32, String),
    DuplicateLine(u32),
    SwapLines(u32, u32),
}

#[test]
fn config_text_mutations_of_the_example() {
    let example = example_toml();
    let edit = prop_oneof![
        (any::<u32>(), 1u16..64).prop_map(|(at, n)| TextEdit::Delete(at, n)),
        (any::<u32>(), hostile_string()).prop_map(|(at, s)| TextEdit::Insert(at, s)),
        any::<u32>().prop_map(TextEdit::DuplicateLine),
        (any::<u32>(), any::<u32>()).prop_map(|(a, b)| TextEdit::SwapLines(a, b)),
    ];
    fuzz("config: text mutations of byob.example.toml", 1000, prop::collection::vec(edit, 1..4), |edits| {
        let mut text = example.clone();
        for e in &edits {
            let boundary = |at: u32, text: &str| {
                let mut i = at as usize % (text.len() + 1);
                while !text.is_char_boundary(i) {
                    i -= 1;
                }
                i
            };
            match e {
                TextEdit::Delete(at, n) => {
                    let start = boundary(*at, &text);
                    let end = boundary(start as u32 + u32::from(*n), &text).max(start);
                    text.replace_range(start..end, "");
                }
                TextEdit::Insert(at, s) => {
                    let at = boundary(*at, &text);
                    text.insert_str(at, s);
                }
                TextEdit::DuplicateLine(n) => {
                    let mut lines: Vec<&str> = text.lines().collect();
                    let i = *n as usize % lines.len().max(1);
                    if let Some(line) = lines.get(i).copied() {
                        lines.insert(i, line);
                    }
                    text = lines.join("\n");
                }
                TextEdit::SwapLines(a, b) => {
                    let mut lines: Vec<&str> = text.lines().collect();
                    let n = lines.len().max(1);
                    if !lines.is_empty() {
                        lines.swap(*a as usize % n, *b as usize % n);
                    }
                    text = lines.join("\n");
                }
            }
        }
        check_config_outcome(Config::from_toml_str(&text, base()), "toml")
    });
}

#[test]
fn config_value_mutations_of_the_example_as_toml_and_json() {
    let example = example_json();
    check_config_outcome(Config::from_value(example.clone(), base()), "the example itself").unwrap();
    fuzz("config: value mutations of the example (TOML and JSON)", 1000, mutations(), |ms| {
        let doc = mutated(&example, &ms);
        check_config_outcome(Config::from_json_str(&doc.to_string(), base()), "json")?;
        // TOML has no null and needs a table at the top: only documents it can hold.
        if let Ok(text) = toml::to_string(&doc) {
            check_config_outcome(Config::from_toml_str(&text, base()), "toml")?;
        }
        Ok(())
    });
}

/// The fields a hostile value can be put into, with the JSON pointer and the config path a
/// rejection must name.
const NAMED_FIELDS: &[(&str, &str)] = &[
    ("/tables/0/name", "tables[0].name"),
    ("/destinations/0/id", "destinations[0].id"),
    ("/destinations/0/tenant", "destinations[0].tenant"),
    ("/destinations/0/prefix", "destinations[0].prefix"),
    ("/destinations/0/key_template", "destinations[0].key_template"),
    ("/destinations/1/key_template", "destinations[1].key_template"),
    ("/source/tenant_column", "source.tenant_column"),
];

#[test]
fn config_hostile_names_are_rejected_naming_the_field_or_stay_inside_the_prefix() {
    let example = example_json();
    let value = prop_oneof![hostile_string(), "[a-z0-9_-]{1,70}", "[A-Za-z_][A-Za-z0-9_]{0,130}"];
    fuzz(
        "config: hostile table names, tenants, ids, prefixes, templates",
        1500,
        (prop::sample::select(NAMED_FIELDS), value),
        |((pointer, path), value)| {
            let mut doc = example.clone();
            *doc.pointer_mut(pointer).unwrap() = Value::String(value.clone());
            let outcome = Config::from_value(doc, base());
            if let Err(errors) = &outcome {
                // Renaming a table may also orphan a destination's subset naming it, or
                // duplicate another table's name (reported at the later table).
                let table = path == "tables[0].name";
                let related = |p: &str| {
                    p == path || (table && (p.starts_with("destinations[0].tables") || p.starts_with("tables[")))
                };
                prop_assert!(
                    errors.iter().any(|p| related(&p.path)),
                    "{value:?} at {path}: rejected elsewhere: {errors}"
                );
                for p in errors {
                    prop_assert!(related(&p.path), "{value:?} at {path}: an unrelated problem {p}");
                    clear(&p.message, path)?;
                }
            }
            check_config_outcome(outcome, path)
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Key templates
// ---------------------------------------------------------------------------------------------

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!-_.*'()=:/".contains(c)
}

/// Every property a rendered key must have.
fn check_rendered(
    template: &KeyTemplate,
    prefix: &str,
    run: &RunId,
    table: &str,
    shard: u64,
    ext: &str,
) -> Result<String, TestCaseError> {
    let key = template.render(run, table, shard, ext);
    let folder = template.folder(run, table);
    let t = template.as_str();
    prop_assert!(!key.starts_with('/'), "{t}: absolute key {key}");
    for segment in key.split('/') {
        prop_assert!(!matches!(segment, "" | "." | ".."), "{t}: key {key:?} has a {segment:?} segment");
    }
    prop_assert!(key.chars().all(is_key_char), "{t}: key {key:?} has a character outside S3's safe set");
    prop_assert!(key.starts_with(&format!("{folder}/")), "{t}: key {key} is outside its folder {folder}");
    let full = layout::join(prefix, &key);
    if !prefix.is_empty() {
        prop_assert!(full.starts_with(&format!("{prefix}/")), "{t}: {full} is outside the prefix {prefix}");
    }
    prop_assert!(!full.split('/').any(|s| s == ".." || s.is_empty()), "{t}: {full}");
    // The loader accepts what the exporter writes: the key is inside the folder of the run.
    let schema = vec![ColumnSchema { name: "id".into(), data_type: "int64".into(), nullable: false }];
    let file = FileEntry { key: key.clone(), rows: 1, bytes: 1, sha256: "0".repeat(64), partition: None };
    let receipt_table = TableReceipt::new(folder, schema, vec![file]);
    verify::check_keys(run, table, &receipt_table)
        .map_err(|e| TestCaseError::fail(format!("{t}: the loader refuses a key the exporter writes: {e}")))?;
    Ok(key)
}

fn run_id() -> impl Strategy<Value = RunId> {
    (0u32..=9999, 1u32..=12, 1u32..=28, 0u32..24, 0u32..60)
        .prop_map(|(y, mo, d, h, mi)| RunId::from_parts(y, mo, d, h, mi).unwrap())
}

fn table_name() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_]{0,127}"
}

fn extension() -> impl Strategy<Value = &'static str> {
    let mut exts = Vec::new();
    for kind in [FormatKind::Parquet, FormatKind::Csv, FormatKind::Jsonl] {
        for codec in [Codec::None, Codec::Gzip, Codec::Zstd, Codec::Snappy] {
            let f = Format::new(kind, codec);
            if f.validate().is_ok() {
                exts.push(f.extension());
            }
        }
    }
    prop::sample::select(exts)
}

fn prefix() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z0-9!_.*'()=-]{1,12}(/[a-z0-9!_.*'()=-]{1,12}){0,3}"]
        .prop_filter_map("a valid prefix", |p| layout::normalize_prefix(&p).ok())
}

/// Templates that parse: segments of literals and placeholders, {run} and {table} in the
/// folder, {shard} in the file name.
fn valid_template() -> impl Strategy<Value = String> {
    let literal = "[A-Za-z0-9!_.*'()=-]{1,6}".prop_filter("no dot segment", |s| s != "." && s != "..");
    let piece = prop_oneof![
        3 => literal,
        1 => prop::sample::select(&["{run}", "{table}", "{YYYY}", "{MM}", "{DD}", "{HH}", "{ext}"][..]).prop_map(str::to_owned),
    ];
    let segment = prop::collection::vec(piece, 1..4).prop_map(|p| p.concat());
    (
        any::<bool>(),
        prop::collection::vec(segment.clone(), 0..3),
        prop::sample::select(&["{run}/{table}", "{table}/{run}", "{run}_{table}", "{run}/x/{table}"][..]),
        segment.clone(),
        segment,
    )
        .prop_map(|(with_prefix, before, core, name_a, name_b)| {
            let mut s = String::new();
            if with_prefix {
                s.push_str("{prefix}/");
            }
            for b in before {
                s.push_str(&b);
                s.push('/');
            }
            format!("{s}{core}/{name_a}{{shard}}{name_b}")
        })
        .prop_filter("parses", |t| KeyTemplate::parse(t).is_ok())
}

/// Template text from template-ish pieces and hostile fragments.
fn template_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(&["{run}", "{table}", "{shard}", "{ext}", "{prefix}", "{YYYY}", "{MM}", "{DD}", "{HH}", "/", ".", "_", "{", "}", "{x}", "..", "a"][..]).prop_map(str::to_owned),
            2 => hostile_string(),
            1 => any::<char>().prop_map(String::from),
        ],
        0..12,
    )
    .prop_map(|p| p.concat())
}

#[test]
fn key_templates_arbitrary_text() {
    fuzz(
        "key templates: arbitrary text, rendered with arbitrary tables, runs, shards, prefixes",
        3000,
        (template_text(), table_name(), run_id(), any::<u64>(), extension(), prefix()),
        |(text, table, run, shard, ext, prefix)| {
            match KeyTemplate::parse(&text) {
                Err(LayoutError::Template { template, reason }) => {
                    prop_assert_eq!(&template, &text);
                    clear(&reason, "template")?;
                }
                Err(other) => return Err(TestCaseError::fail(format!("{text:?}: not a template error: {other}"))),
                Ok(template) => {
                    check_rendered(&template, &prefix, &run, &table, shard, ext)?;
                }
            }
            Ok(())
        },
    );
}

#[test]
fn key_templates_valid_ones_render_one_key_per_file_inside_the_prefix() {
    fuzz(
        "key templates: generated valid templates",
        1500,
        (
            valid_template(),
            table_name(),
            table_name(),
            run_id(),
            run_id(),
            0u64..=layout::MAX_SHARD,
            extension(),
            prefix(),
        ),
        |(text, t1, t2, r1, r2, shard, ext, prefix)| {
            let template = KeyTemplate::parse(&text).unwrap();
            let a = check_rendered(&template, &prefix, &r1, &t1, shard, ext)?;
            let b = check_rendered(&template, &prefix, &r1, &t1, shard + 1, ext)?;
            let c = check_rendered(&template, &prefix, &r1, &t2, shard, ext)?;
            let d = check_rendered(&template, &prefix, &r2, &t1, shard, ext)?;
            prop_assert_ne!(&a, &b, "two shards, one key");
            if t1 != t2 {
                prop_assert_ne!(&a, &c, "two tables, one key");
                prop_assert_ne!(template.folder(&r1, &t1), template.folder(&r1, &t2), "two tables, one folder");
            }
            if r1 != r2 {
                prop_assert_ne!(&a, &d, "two runs, one key");
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// The receipt parser and the loader's receipt checks
// ---------------------------------------------------------------------------------------------

const RUN: &str = "2023-03-14T04:03";

fn real_receipt() -> Value {
    let key = |t: &str, n: u32| format!("{RUN}/{t}/{t}_{n:012}.parquet.gz");
    let file = |t: &str, n: u32, rows: u64| json!({"key": key(t, n), "rows": rows, "bytes": 1000 + rows, "sha256": "ab".repeat(32)});
    json!({
        "version": 1,
        "timestamp": "2023-03-14T04:03:07.963883Z",
        "run": RUN,
        "previous_run": "2023-03-13T15:04",
        "format": {"type": "parquet", "codec": "gzip"},
        "tables": {
            "companies": {
                "folder": format!("{RUN}/companies"), "total_file_count": 2, "row_count": 30, "byte_count": 2030,
                "schema": [{"name": "company_id", "type": "string", "nullable": false},
                           {"name": "x\"; DROP TABLE t; --", "type": "list<int64>", "nullable": true}],
                "files": [file("companies", 0, 10), file("companies", 1, 20)]
            },
            "events": {
                "folder": format!("{RUN}/events"), "total_file_count": 1, "row_count": 5, "byte_count": 1005,
                "schema": [{"name": "at", "type": "timestamptz(us)", "nullable": true},
                           {"name": "amount", "type": "decimal(18,2)", "nullable": true}],
                "files": [file("events", 0, 5)]
            }
        }
    })
}

const RECEIPT_KEYS: &[&str] = &[
    "receipt.json",
    "p/receipt.json",
    "exports/acme/2023-03-14T04:03/receipt.json",
    "2023-03-14T04:03/receipt.json",
    "p/other.json",
];

/// Parsing and checking `bytes` as the loader does never panics; a rejection is a clear,
/// bounded message; an accepted receipt names only keys inside its prefix.
fn check_receipt_bytes(bytes: &[u8], receipt_key: &str) -> Result<(), TestCaseError> {
    let parsed = Receipt::from_json(bytes).and_then(|r| verify::check_receipt(&r).map(|()| r));
    let receipt = match parsed {
        Err(e) => {
            clear(&e, "receipt")?;
            // Values are quoted cut short: a message stays far below the input's size.
            prop_assert!(e.len() < 2000 + bytes.len().min(2000), "a {} byte message", e.len());
            return Ok(());
        }
        Ok(r) => r,
    };
    let prefix = match verify::prefix_of(receipt_key, &receipt.run) {
        Err(e) => return clear(&e, "prefix_of"),
        Ok(p) => p,
    };
    for table in receipt.tables.values() {
        for f in &table.files {
            let object = layout::join(&prefix, &f.key);
            prop_assert!(prefix.is_empty() || object.starts_with(&format!("{prefix}/")), "{object} outside {prefix}");
            prop_assert!(!object.starts_with('/') && !object.contains("://"), "{object}");
            prop_assert!(!object.split('/').any(|s| matches!(s, "" | "." | "..")), "{object}");
            prop_assert!(
                object.split('/').any(|s| s.contains(RUN) || s.contains(&receipt.run.to_string())),
                "{object}"
            );
        }
        for c in &table.schema {
            prop_assert!(byob::schema::parse_type_name(&c.data_type).is_ok(), "{:?} passed the checks", c.data_type);
        }
    }
    Ok(())
}

#[test]
fn receipts_arbitrary_json_and_bytes() {
    fuzz(
        "receipt: arbitrary JSON and bytes",
        1500,
        (
            prop_oneof![
                json_value().prop_map(|v| v.to_string().into_bytes()),
                prop::collection::vec(any::<u8>(), 0..256)
            ],
            prop::sample::select(RECEIPT_KEYS),
        ),
        |(bytes, key)| check_receipt_bytes(&bytes, key),
    );
}

#[test]
fn receipts_mutations_of_a_real_receipt() {
    let real = real_receipt();
    check_receipt_bytes(real.to_string().as_bytes(), "p/receipt.json").unwrap();
    assert!(verify::check_receipt(&Receipt::from_json(real.to_string().as_bytes()).unwrap()).is_ok());
    fuzz(
        "receipt: mutations of a real receipt",
        2000,
        (mutations(), prop::sample::select(RECEIPT_KEYS)),
        |(ms, key)| check_receipt_bytes(mutated(&real, &ms).to_string().as_bytes(), key),
    );
}

#[test]
fn receipts_that_point_outside_are_rejected_naming_the_key() {
    // Hostile keys and folders in an otherwise valid receipt, each refused with the value named.
    let mut cases: Vec<(String, &str, &str)> = vec![
        ("/etc/passwd".into(), "key", "absolute"),
        (format!("{RUN}/companies/../../../etc/passwd"), "key", "\"..\""),
        (format!("s3://other-bucket/{RUN}/companies/x"), "key", "URL"),
        (format!("arn:aws:s3:::other-bucket/{RUN}/companies/x"), "key", "URL"),
        (format!("{RUN}/companies//x"), "key", "empty segment"),
        (format!("{RUN}/companies/x\0"), "key", "control character"),
        (format!("{RUN}/companies\\..\\..\\x"), "key", "backslash"),
        ("2023-03-13T15:04/companies/companies_000000000000.parquet.gz".into(), "key", "outside"),
        ("../2023-03-14T04:03/companies".into(), "folder", "\"..\""),
        ("/2023-03-14T04:03/companies".into(), "folder", "absolute"),
        ("s3://other-bucket/2023-03-14T04:03/companies".into(), "folder", "URL"),
    ];
    cases.push((format!("{RUN}/companies/{}", "k".repeat(2000)), "key", "1,024 bytes"));
    for (bad, field, why) in cases {
        let mut r = real_receipt();
        let table = &mut r["tables"]["companies"];
        if field == "key" {
            table["files"][0]["key"] = json!(bad);
        } else {
            table["folder"] = json!(bad);
        }
        let receipt = Receipt::from_json(r.to_string().as_bytes()).unwrap();
        let e = verify::check_receipt(&receipt).unwrap_err();
        let quoted = format!("{:?}", bad.chars().take(40).collect::<String>());
        assert!(e.contains(why), "{bad:?}: {e}");
        assert!(e.contains(&quoted[..quoted.len() - 1]), "the message names the value: {e}");
        assert!(e.len() < 600, "the message is bounded: {} bytes", e.len());
    }
    // A column type nested 100,000 levels deep is refused before anything parses it
    // recursively (it would overflow the stack).
    let mut r = real_receipt();
    let deep = format!("{}int64{}", "list<".repeat(100_000), ">".repeat(100_000));
    r["tables"]["companies"]["schema"][1]["type"] = json!(deep);
    let e = verify::check_receipt(&Receipt::from_json(r.to_string().as_bytes()).unwrap()).unwrap_err();
    assert!(e.contains("portable type name") && e.len() < 600, "{e}");
    // Totals that overflow are an error, not a panic or a wrapped sum.
    let mut r = real_receipt();
    r["tables"]["events"]["files"] = json!([
        {"key": format!("{RUN}/events/a"), "rows": u64::MAX, "bytes": 1, "sha256": "ab".repeat(32)},
        {"key": format!("{RUN}/events/b"), "rows": 1, "bytes": 1, "sha256": "ab".repeat(32)}
    ]);
    r["tables"]["events"]["total_file_count"] = json!(2);
    r["tables"]["events"]["row_count"] = json!(0);
    r["tables"]["events"]["byte_count"] = json!(2);
    let e = Receipt::from_json(r.to_string().as_bytes()).unwrap_err();
    assert!(e.contains("events") && e.contains("row"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// The S3 / SQS event parser
// ---------------------------------------------------------------------------------------------

/// The parser never panics; an error is a clear event error; a receipt it reports is an
/// `ObjectCreated` of a key named `receipt.json` in a named bucket.
fn check_event(event: &Value) -> Result<(), TestCaseError> {
    match event::receipts(event) {
        Err(LoadError::Event(reason)) => clear(&reason, "event"),
        Err(other) => Err(TestCaseError::fail(format!("not an event error: {other}"))),
        Ok(items) => {
            for item in items {
                match item {
                    Notification::Receipt(ReceiptLocation::S3 { bucket, key }) => {
                        prop_assert!(!bucket.is_empty(), "a receipt in no bucket");
                        prop_assert!(key == "receipt.json" || key.ends_with("/receipt.json"), "{key:?}");
                    }
                    Notification::Receipt(other) => return Err(TestCaseError::fail(format!("{other:?}"))),
                    Notification::Ignored(why) => clear(&why, "ignored")?,
                }
            }
            Ok(())
        }
    }
}

fn sqs(body: &Value) -> Value {
    json!({"Records": [{"messageId": "1", "eventSource": "aws:sqs", "body": body.to_string()}]})
}

fn sns_in_sqs(message: &Value) -> Value {
    sqs(&json!({"Type": "Notification", "MessageId": "m", "Message": message.to_string()}))
}

#[test]
fn events_arbitrary_json() {
    fuzz("S3/SQS events: arbitrary JSON", 2000, json_value(), |v| {
        check_event(&v)?;
        check_event(&json!({"Records": [v.clone()]}))?;
        check_event(&sqs(&v))
    });
}

#[test]
fn events_mutations_of_the_fixtures_and_their_envelopes() {
    let mut bases = Vec::new();
    for name in ["s3-receipt.json", "s3-test-event.json"] {
        let v: Value = serde_json::from_str(&fixture(&format!("events/{name}"))).unwrap();
        bases.push(sqs(&v));
        bases.push(sns_in_sqs(&v));
        bases.push(v);
    }
    for b in &bases {
        check_event(b).unwrap();
    }
    fuzz(
        "S3/SQS events: mutations of events/*.json, in S3, SQS and SNS envelopes",
        2000,
        (prop::sample::select(bases), mutations(), prop::option::of(hostile_string())),
        |(base, ms, key)| {
            let mut doc = mutated(&base, &ms);
            if let Some(key) = key
                && let Some(k) = doc.pointer_mut("/Records/0/s3/object/key")
            {
                *k = Value::String(key);
            }
            check_event(&doc)?;
            // ... also when the mutated document travels inside SQS and SNS envelopes.
            check_event(&sqs(&doc))?;
            check_event(&sns_in_sqs(&doc))
        },
    );
}

#[test]
fn url_decoding_and_receipt_locations_never_panic() {
    fuzz("url_decode and ReceiptLocation::parse", 3000, hostile_string(), |s| {
        let decoded = event::url_decode(&s);
        prop_assert!(decoded.len() <= s.len() * 3, "decoding never grows much");
        match ReceiptLocation::parse(&s) {
            Ok(ReceiptLocation::S3 { bucket, key }) => prop_assert!(!bucket.is_empty() && !key.is_empty()),
            Ok(ReceiptLocation::Path(_)) => prop_assert!(!s.starts_with("s3://")),
            Err(e) => clear(&e.to_string(), "location")?,
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// Destination ids that collide, destinations that write to one place
// ---------------------------------------------------------------------------------------------

fn destinations_config(destinations: &str) -> Result<Config, ConfigErrors> {
    let text =
        format!("[source]\ntype = \"parquet\"\npath = \"lake\"\n\n[[tables]]\nname = \"companies\"\n\n{destinations}");
    Config::from_toml_str(&text, base())
}

#[test]
fn destination_ids_that_share_a_session_name_are_rejected_naming_both() {
    // Two ids of 38 characters that differ only at the end: STS session names keep the first
    // 36 characters of an id (`byob-<id>-check-<time>` is at most 64).
    let a = "acme-corporation-international-data-eu";
    let b = "acme-corporation-international-data-us";
    let one = |id: &str, folder: &str| {
        format!("[[destinations]]\nid = \"{id}\"\ntenant = \"acme\"\nfolder = \"{folder}\"\n\n")
    };
    let errors = destinations_config(&(one(a, "out/a") + &one(b, "out/b"))).unwrap_err();
    let p = errors.at("destinations[1].id").unwrap_or_else(|| panic!("{errors}"));
    let text = p.to_string();
    assert!(text.contains(&format!("{b:?}")) && text.contains(&format!("destinations[0] (id {a:?})")), "{text}");
    assert!(text.contains("session name") && text.contains("first 36 characters"), "{text}");
    assert_eq!(errors.0.len(), 1, "{errors}");
    // Ids that differ within the first 36 characters are fine.
    destinations_config(&(one("acme-eu", "out/a") + &one("acme-us", "out/b"))).unwrap();
    // Sanitising never merges valid ids: every id character is kept in session names.
    for (x, y) in [("a_b", "a-b"), ("ab", "a-b"), ("x1", "x-1")] {
        assert_ne!(byob::names::session_name(x, "2023-03-14T04:03"), byob::names::session_name(y, "2023-03-14T04:03"));
    }
}

#[test]
fn destinations_writing_to_the_same_place_are_rejected_naming_both() {
    let bucket = |id: &str, prefix: &str| {
        format!(
            "[[destinations]]\nid = \"{id}\"\ntenant = \"{id}\"\nbucket = \"shared-exports\"\nprefix = \"{prefix}\"\nrole_arn = \"arn:aws:iam::123456789012:role/w\"\nexternal_id = \"byob-{id}-x\"\n\n"
        )
    };
    // the same bucket and prefix ("exports/" is "exports" normalized)
    let errors = destinations_config(&(bucket("acme", "exports") + &bucket("globex", "exports/"))).unwrap_err();
    let p = errors.at("destinations[1].bucket").unwrap_or_else(|| panic!("{errors}"));
    assert!(p.message.contains("destinations[0]") && p.message.contains("s3://shared-exports/exports"), "{p}");
    // the same folder, spelled differently
    let folder =
        |id: &str, f: &str| format!("[[destinations]]\nid = \"{id}\"\ntenant = \"{id}\"\nfolder = \"{f}\"\n\n");
    let errors = destinations_config(&(folder("acme", "out/x") + &folder("globex", "out/./x/"))).unwrap_err();
    assert!(errors.at("destinations[1].folder").is_some_and(|p| p.message.contains("destinations[0]")), "{errors}");
    // different prefixes in one bucket, and different folders, are fine
    destinations_config(&(bucket("acme", "exports/acme") + &bucket("globex", "exports/globex"))).unwrap();
    destinations_config(&(folder("acme", "out/a") + &folder("globex", "out/g"))).unwrap();
}
