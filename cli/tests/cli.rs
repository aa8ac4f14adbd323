//! The `byob` binary as a user runs it: exit codes, messages, and nothing written on bad input.

use std::path::Path;
use std::process::{Command, Output};

fn byob(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_byob")).args(args).current_dir(cwd).output().expect("byob runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const BAD: &str = r#"
[source]
type = "parquet"
path = "lake"

[[tables]]
name = "events"

[[destinations]]
id = "acme"
tenant = "acme"
bucket = "My_Bucket"
role_arn = "arn:aws:iam::12345:user/bob"
external_id = "x"
key_template = "../{table}/{shard}.{ext}"
colour = "blue"

[[destinations]]
id = "acme"
tenant = ""
folder = "out"
"#;

#[test]
fn config_validate_names_every_problem_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bad.toml"), BAD).expect("write");
    let out = byob(&["config", "validate", "bad.toml"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for needle in [
        "destinations[0].bucket",
        "My_Bucket",
        "destinations[0].role_arn",
        "destinations[0].external_id",
        "destinations[0].key_template",
        "destinations[0].colour",
        "destinations[1].id",
        "destinations[1].tenant",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
fn config_validate_accepts_the_example() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/config/byob.example.toml");
    let out = byob(&["config", "validate", example.to_str().expect("utf-8 path")], Path::new("."));
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("valid"));
    assert!(
        stdout.contains("table events: incremental (watermark occurred_at, merged by event_id, lookback 30m)")
            && stdout.contains("incremental tables full every 7d"),
        "{stdout}"
    );
}

#[test]
fn run_with_a_bad_config_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bad.toml"), BAD).expect("write");
    let out = byob(&["run", "--config", "bad.toml"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let entries: Vec<_> = std::fs::read_dir(dir.path()).expect("list").flatten().map(|e| e.file_name()).collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("bad.toml")], "nothing but the config exists");
}

#[test]
fn a_bad_run_id_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/config/byob.example.toml");
    let out = byob(&["run", "--config", example.to_str().expect("utf-8"), "--run", "2024-13-01T00:00"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--run \"2024-13-01T00:00\""), "{}", stderr(&out));
}

#[test]
fn demo_dumps_two_destinations_and_a_rerun_reuses_the_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = byob(&["demo", "--dir", "d", "--scale", "0.01"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("total"), "summary table printed:\n{stdout}");
    let acme = dir.path().join("d/buckets/acme-data/byob/receipt.json");
    let globex = dir.path().join("d/buckets/globex-data/exports/byob/receipt.json");
    assert!(acme.exists() && globex.exists());
    let receipt: serde_json::Value = serde_json::from_slice(&std::fs::read(&globex).expect("read")).expect("json");
    assert_eq!(receipt["format"], serde_json::json!({"type": "csv", "codec": "gzip", "delimiter": ";"}));

    let out = byob(
        &["run", "--config", "d/byob.toml", "--run", "2020-01-01T04:00", "--destination", "acme", "--table", "events"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let run_copy = dir.path().join("d/buckets/acme-data/byob/2020-01-01T04:00/receipt.run.json");
    let receipt: serde_json::Value = serde_json::from_slice(&std::fs::read(run_copy).expect("run copy")).expect("json");
    assert_eq!(receipt["tables"].as_object().map(|t| t.len()), Some(1), "only the events table");
}
