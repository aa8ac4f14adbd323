//! `byob export`: any Parquet file or folder, every row, as a dump with a receipt.

use std::path::Path;
use std::process::{Command, Output};

use byob::receipt::Receipt;

fn byob(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_byob")).args(args).current_dir(cwd).output().expect("byob runs")
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "byob failed ({:?}):\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn receipt(path: &Path) -> Receipt {
    Receipt::from_json(&std::fs::read(path).expect("receipt")).expect("a valid receipt")
}

/// A lake whose events table has 300,000 rows in 3 row groups (of every tenant).
fn lake(dir: &Path) {
    ok(&byob(&["generate", "--out", "lake", "--scale", "0.3"], dir));
}

#[test]
fn a_folder_exports_every_row_of_every_tenant_in_parallel_slices() {
    let dir = tempfile::tempdir().expect("tempdir");
    lake(dir.path());
    let out = byob(
        &[
            "export",
            "--input",
            "lake/events",
            "--out",
            "out",
            "--format",
            "csv",
            "--codec",
            "none",
            "--run",
            "2024-01-01T00:00",
            "--target-rows-per-slice",
            "100000",
            "--max-file-rows",
            "60000",
        ],
        dir.path(),
    );
    ok(&out);
    let r = receipt(&dir.path().join("out/receipt.json"));
    let events = &r.tables["events"];
    assert_eq!(events.row_count, 300_000);
    // Three slices, one row group each (131,072, 131,072 and 37,856 rows), rolled at 60,000
    // rows: 3 + 3 + 1 files, each slice numbering from its own shard range.
    assert_eq!(events.files.len(), 7, "{:?}", events.files);
    for key in ["events_000001000002.csv", "events_000002000000.csv"] {
        assert!(events.files.iter().any(|f| f.key.ends_with(key)), "no {key} in {:?}", events.files);
    }
    let mut lines = 0;
    let mut tenants = std::collections::BTreeSet::new();
    for f in &events.files {
        let text = std::fs::read_to_string(dir.path().join("out").join(&f.key)).expect("a file of the receipt");
        assert_eq!(text.len() as u64, f.bytes);
        assert!(text.starts_with("event_id,tenant_id,"), "{}", &text[..80.min(text.len())]);
        lines += text.lines().count() as u64 - 1;
        tenants.extend(text.lines().skip(1).filter_map(|l| l.split(',').nth(1).map(str::to_owned)));
    }
    assert_eq!(lines, 300_000);
    // No tenant filter: the rows of every tenant.
    assert!(tenants.len() > 1, "{tenants:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("receipt: "));
}

#[test]
fn a_single_file_exports_as_parquet_named_after_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    lake(dir.path());
    let file = dir.path().join("lake/events/part-00000.parquet");
    let out = byob(
        &[
            "export",
            "--input",
            file.to_str().expect("utf-8 path"),
            "--out",
            "out",
            "--prefix",
            "exports",
            "--format",
            "parquet",
            "--codec",
            "zstd",
            "--run",
            "2024-01-01T00:00",
        ],
        dir.path(),
    );
    ok(&out);
    let r = receipt(&dir.path().join("out/exports/receipt.json"));
    let table = &r.tables["part_00000"];
    assert_eq!(table.row_count, 300_000);
    assert_eq!(table.files[0].key, "2024-01-01T00:00/part_00000/part_00000_000000000000.zstd.parquet");
    assert!(dir.path().join("out/exports").join(&table.files[0].key).is_file());
}

#[test]
fn bad_input_is_named_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = byob(&["export", "--input", "missing", "--out", "out"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing"), "{err}");
    assert!(!dir.path().join("out").exists());

    std::fs::create_dir(dir.path().join("empty")).expect("mkdir");
    let out = byob(&["export", "--input", "empty", "--out", "out", "--format", "csv", "--codec", "zstd"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("codec"), "{err}");
    assert!(!dir.path().join("out").exists());
}
