//! Many destinations at once: the scaled-down twin of `scripts/bench-destinations` (which runs
//! 500 destinations x 6 tables through the `byob` binary and reports wall time and peak RSS).
//!
//! Proves that one run of 40 destinations x 6 tables (240 export tasks, four formats) with
//! bounded parallelism completes every destination: each gets its receipt (root and run
//! copy, byte-identical), every file a receipt lists exists with the listed size and sha256,
//! nothing unlisted lies in a run folder, and each table holds exactly its tenant's rows of
//! the lake.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use arrow::array::AsArray;
use byob::config::Config;
use byob::layout::RunId;
use byob::plan::PlanFilter;
use byob::receipt::Receipt;
use byob::run::{self, RunOptions, Silent};
use byob_testkit::generate::{self, GenerateOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sha2::{Digest, Sha256};

const DESTINATIONS: usize = 40;
const TENANTS: [&str; 4] = ["acme", "globex", "initech", "umbrella"];
const FORMATS: [&str; 4] = [
    "{ type = \"parquet\", codec = \"gzip\" }",
    "{ type = \"csv\", codec = \"gzip\", delimiter = \";\" }",
    "{ type = \"jsonl\", codec = \"gzip\" }",
    "{ type = \"parquet\", codec = \"zstd\" }",
];

/// Rows per (table, tenant) in the lake.
fn lake_counts(lake: &Path) -> BTreeMap<(String, String), u64> {
    let mut counts = BTreeMap::new();
    for table in generate::TABLES {
        for entry in std::fs::read_dir(lake.join(table)).unwrap().flatten() {
            let file = std::fs::File::open(entry.path()).unwrap();
            for batch in ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap() {
                let batch = batch.unwrap();
                let col =
                    arrow::compute::cast(batch.column_by_name("tenant_id").unwrap(), &arrow::datatypes::DataType::Utf8)
                        .unwrap();
                for t in col.as_string::<i32>().iter().flatten() {
                    *counts.entry((table.to_string(), t.to_string())).or_default() += 1;
                }
            }
        }
    }
    counts
}

/// Every file under `dir`, relative to it, with `/` separators.
fn files_under(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.strip_prefix(dir).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_destinations_of_six_tables_all_get_complete_receipts() {
    // GIVEN a small lake of four tenants and 40 destinations cycling through tenants and formats
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    generate::generate(
        &GenerateOptions { out: lake.clone(), scale: 0.002, seed: 7, ..GenerateOptions::default() },
        &|_, _| {},
    )
    .unwrap();
    let tables: String = generate::TABLES.iter().map(|t| format!("[[tables]]\nname = \"{t}\"\n")).collect();
    let destinations: String = (0..DESTINATIONS)
        .map(|i| {
            format!(
                "[[destinations]]\nid = \"d{i:04}\"\ntenant = \"{}\"\nfolder = \"buckets/d{i:04}\"\nprefix = \"byob\"\nformat = {}\nmax_file_rows = 400\n\n",
                TENANTS[i % TENANTS.len()],
                FORMATS[i % FORMATS.len()]
            )
        })
        .collect();
    let text = format!(
        "[source]\ntype = \"parquet\"\npath = \"lake\"\n\n{tables}\n{destinations}[export]\nparallelism = 4\n\n[state]\npath = \"state\"\n"
    );
    std::fs::write(dir.path().join("byob.toml"), text).unwrap();
    let config = Config::load(&dir.path().join("byob.toml")).unwrap_or_else(|e| panic!("{e}"));

    // WHEN one run dumps them all
    let run: RunId = "2024-01-02T04:00".parse().unwrap();
    let report = run::run(&config, &RunOptions { run, filter: PlanFilter::default() }, Arc::new(Silent)).await.unwrap();

    // THEN every destination completed with a complete receipt
    assert_eq!(report.destinations.len(), DESTINATIONS);
    assert_eq!(report.failed().count(), 0, "{:?}", report.failed().map(|d| &d.destination).collect::<Vec<_>>());
    let expected = lake_counts(&lake);
    let (mut receipts, mut files) = (0, 0);
    for i in 0..DESTINATIONS {
        let tenant = TENANTS[i % TENANTS.len()];
        let root = dir.path().join(format!("buckets/d{i:04}/byob"));
        let bytes = std::fs::read(root.join("receipt.json")).unwrap();
        assert_eq!(
            bytes,
            std::fs::read(root.join(run.to_string()).join("receipt.run.json")).unwrap(),
            "d{i:04}: the two copies differ"
        );
        let receipt = Receipt::from_json(&bytes).unwrap();
        byob::load::verify::check_receipt(&receipt).unwrap();
        assert_eq!(receipt.tables.len(), generate::TABLES.len(), "d{i:04}");
        let mut listed = BTreeSet::from([format!("{run}/receipt.run.json"), "receipt.json".to_owned()]);
        for (table, t) in &receipt.tables {
            assert_eq!(
                t.row_count,
                expected.get(&(table.clone(), tenant.to_owned())).copied().unwrap_or(0),
                "d{i:04}/{table}"
            );
            for f in &t.files {
                let data = std::fs::read(root.join(&f.key)).unwrap_or_else(|e| panic!("d{i:04}: {}: {e}", f.key));
                assert_eq!(data.len() as u64, f.bytes, "d{i:04}: {}", f.key);
                assert_eq!(hex::encode(Sha256::digest(&data)), f.sha256, "d{i:04}: {}", f.key);
                listed.insert(f.key.clone());
                files += 1;
            }
        }
        assert_eq!(files_under(&root), listed, "d{i:04}: files that no receipt lists");
        receipts += 1;
    }
    assert_eq!(receipts, DESTINATIONS);
    eprintln!("{receipts} receipts complete, {files} files verified (size and sha256)");
}
