//! `receipt.json` version 1: the contract between a dump and every loader.
//!
//! A superset of Dreamdata's receipt: `timestamp`, `tables.*.folder` and
//! `tables.*.total_file_count` keep their names and meaning, so a loader written for
//! Dreamdata works unchanged. Everything a loader needs to check completeness and integrity
//! (row counts, sizes, sha256 of every file, the schema) is in the receipt: a loader never
//! has to list the bucket.
//!
//! A receipt is only ever written after every file it lists is complete; see [`crate::finalize`].

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::format::Format;
use crate::increment::{Increment, Range, TableMode};
use crate::layout::RunId;
use crate::schema::ColumnSchema;

/// The receipt version this code writes.
pub const VERSION: u32 = 1;

/// A whole receipt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// Always 1 for this layout.
    pub version: u32,
    /// When the receipt was written (UTC, microseconds), e.g. `2023-03-14T04:03:07.963883Z`.
    pub timestamp: String,
    /// The run id: the scheduled minute of the run, e.g. `2023-03-14T04:03`.
    pub run: RunId,
    /// The run this destination completed before this one, if any: a loader that sees a
    /// `previous_run` it never loaded knows it missed a dump.
    pub previous_run: Option<RunId>,
    /// How every file of the run is encoded.
    pub format: Format,
    /// Every table of the run, by name.
    pub tables: BTreeMap<String, TableReceipt>,
    /// The AEP-style manifest written just before this receipt (key relative to the prefix),
    /// when the destination asks for one (`manifest = true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// How the files are encrypted, when they are (`pgp_public_key`): every listed `bytes` and
    /// `sha256` is then the stored, encrypted object's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<FileEncryption>,
}

/// The files' encryption, as the receipt states it (the receipt itself is never encrypted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEncryption {
    /// `openpgp`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The recipient key's primary fingerprint, uppercase hex (what `gpg --list-keys` shows).
    pub fingerprint: String,
    /// The (sub)key the files are encrypted to, uppercase hex.
    pub encryption_key: String,
}

/// One table of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableReceipt {
    /// The folder holding the table's files, relative to the prefix (Dreamdata's meaning).
    pub folder: String,
    /// How many files the table has (Dreamdata's name); equals `files.len()`.
    pub total_file_count: u64,
    /// Rows over all files.
    pub row_count: u64,
    /// Bytes over all files, as stored.
    pub byte_count: u64,
    /// The columns, in file order.
    pub schema: Vec<ColumnSchema>,
    /// Every file, in shard order.
    pub files: Vec<FileEntry>,
    /// `full`: the files hold every row of the table (load by replacing it); `incremental`:
    /// only the rows whose watermark is in `range` (load by merging them in). Receipts written
    /// before incremental dumps have no `mode`: full.
    #[serde(default)]
    pub mode: TableMode,
    /// For a table with a watermark: the range this dump covers (`from` exclusive, `to`
    /// inclusive; a full dump has no `from`), and the full dump its chain starts at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<Range>,
    /// Incremental: the run this dump continues; a loader that has not loaded it (its `to` is
    /// this `range.from`) must not load this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builds_on: Option<RunId>,
    /// The columns that identify a row: an incremental dump's rows replace the loaded rows with
    /// the same key. Absent: rows are only added, and an incremental dump replaces its range.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_key: Vec<String>,
}

/// One file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileEntry {
    /// The key relative to the prefix.
    pub key: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size of the object in bytes.
    pub bytes: u64,
    /// sha256 of the object, lowercase hex.
    pub sha256: String,
    /// The date partition the file holds rows of (`2024-01-02`, `2024-01`,
    /// `__HIVE_DEFAULT_PARTITION__` for NULL, `all` for a table without the column), when the
    /// destination sets `partition_by`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
}

impl TableReceipt {
    /// Builds a table entry from its files, deriving the totals so they always add up.
    pub fn new(folder: String, schema: Vec<ColumnSchema>, files: Vec<FileEntry>) -> Self {
        TableReceipt {
            folder,
            total_file_count: files.len() as u64,
            row_count: files.iter().map(|f| f.rows).sum(),
            byte_count: files.iter().map(|f| f.bytes).sum(),
            schema,
            files,
            mode: TableMode::Full,
            range: None,
            builds_on: None,
            primary_key: Vec::new(),
        }
    }

    /// This table's entry as `increment` (from the plan) describes it.
    pub fn with_increment(mut self, increment: Option<&Increment>) -> Self {
        if let Some(increment) = increment {
            self.mode = increment.mode;
            self.range = Some(increment.range.clone());
            self.builds_on = increment.builds_on;
            self.primary_key = increment.primary_key.clone();
        }
        self
    }

    /// Checks that the totals equal the sums over `files`.
    pub fn check_totals(&self) -> Result<(), String> {
        // A receipt is input: sums that overflow are an error, never a panic or a wrapped total.
        let sum = |what: &str, of: fn(&FileEntry) -> u64| {
            self.files
                .iter()
                .try_fold(0u64, |total, f| total.checked_add(of(f)))
                .ok_or_else(|| format!("the files' {what} add up to more than {}", u64::MAX))
        };
        let rows = sum("rows", |f| f.rows)?;
        let bytes = sum("bytes", |f| f.bytes)?;
        if self.total_file_count != self.files.len() as u64 {
            return Err(format!(
                "total_file_count is {} but {} files are listed",
                self.total_file_count,
                self.files.len()
            ));
        }
        if self.row_count != rows {
            return Err(format!("row_count is {} but the files hold {rows}", self.row_count));
        }
        if self.byte_count != bytes {
            return Err(format!("byte_count is {} but the files hold {bytes}", self.byte_count));
        }
        Ok(())
    }
}

impl Receipt {
    /// A version-1 receipt stamped with `now`.
    pub fn new(
        run: RunId,
        previous_run: Option<RunId>,
        format: Format,
        tables: BTreeMap<String, TableReceipt>,
        now: DateTime<Utc>,
    ) -> Self {
        Receipt {
            version: VERSION,
            timestamp: timestamp(now),
            run,
            previous_run,
            format,
            tables,
            manifest: None,
            encryption: None,
        }
    }

    /// The pretty-printed JSON written to the bucket.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_else(|e| {
            // Serializing plain structs of strings and integers cannot fail.
            unreachable!("receipt serialization failed: {e}")
        });
        out.push(b'\n');
        out
    }

    /// Parses a receipt and checks its version and totals.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let receipt: Receipt =
            serde_json::from_slice(bytes).map_err(|e| format!("not a byob receipt: {}", cut(&e.to_string())))?;
        if receipt.version != VERSION {
            return Err(format!(
                "receipt version {} is not supported (this byob reads version {VERSION})",
                receipt.version
            ));
        }
        for (name, table) in &receipt.tables {
            table.check_totals().map_err(|e| format!("table {name:?}: {e}"))?;
        }
        Ok(receipt)
    }

    /// Rows over all tables.
    pub fn row_count(&self) -> u64 {
        self.tables.values().map(|t| t.row_count).sum()
    }
}

/// A parser message cut to its first 300 and last 60 characters: serde quotes the offending
/// value, and a receipt is input from a bucket (a megabyte-long string must not become a
/// megabyte-long error).
fn cut(message: &str) -> String {
    let chars = message.chars().count();
    if chars <= 400 {
        return message.to_owned();
    }
    let head: String = message.chars().take(300).collect();
    let tail: String = message.chars().skip(chars - 60).collect();
    format!("{head} ... {tail}")
}

/// Dreamdata's timestamp shape: RFC 3339, UTC, microseconds, `Z`.
pub fn timestamp(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Adobe Experience Platform's manifest of one run, `manifest-<destination>-<run>.json` beside
/// the receipt: `flowRunId`, `scheduledTime`, and per file `sinkPath` (its folder from the bucket's
/// root), `name` and `size` (bytes as stored). Written just before the receipt, for consumers
/// built on AEP's export manifests; the receipt stays the complete contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// `<destination>/<run>`: which dump wrote the files.
    pub flow_run_id: String,
    /// The run's scheduled minute, UTC, RFC 3339 (`2023-03-14T04:03:00Z`).
    pub scheduled_time: String,
    /// Every file of the run, tables in name order, files in shard order.
    pub export_results: Vec<ManifestFile>,
}

/// One file in a [`Manifest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestFile {
    /// The folder holding the file, from the bucket's root, with a leading `/`.
    pub sink_path: String,
    /// The file name.
    pub name: String,
    /// Size of the object in bytes.
    pub size: u64,
}

impl Manifest {
    /// The manifest's file name (also its key relative to the prefix).
    pub fn key(destination: &str, run: RunId) -> String {
        format!("manifest-{destination}-{run}.json")
    }

    /// The manifest of `receipt`'s files for `destination`, whose prefix is `prefix`.
    pub fn of(destination: &str, prefix: &str, receipt: &Receipt) -> Manifest {
        let export_results = receipt
            .tables
            .values()
            .flat_map(|table| &table.files)
            .map(|file| {
                let key = crate::layout::join(prefix, &file.key);
                let (folder, name) = key.rsplit_once('/').unwrap_or(("", key.as_str()));
                ManifestFile { sink_path: format!("/{folder}"), name: name.to_owned(), size: file.bytes }
            })
            .collect();
        Manifest {
            flow_run_id: format!("{destination}/{}", receipt.run),
            scheduled_time: receipt.run.datetime().to_rfc3339_opts(SecondsFormat::Secs, true),
            export_results,
        }
    }

    /// The pretty-printed JSON written to the bucket.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_else(|e| {
            // Serializing plain structs of strings and integers cannot fail.
            unreachable!("manifest serialization failed: {e}")
        });
        out.push(b'\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Receipt {
        let run: RunId = "2023-03-14T04:03".parse().expect("valid run id");
        let files = vec![
            FileEntry {
                key: "2023-03-14T04:03/companies/companies_000000000000.parquet.gz".into(),
                rows: 21000,
                bytes: 17_000_000,
                sha256: "ab".repeat(32),
                partition: None,
            },
            FileEntry {
                key: "2023-03-14T04:03/companies/companies_000000000001.parquet.gz".into(),
                rows: 5,
                bytes: 1000,
                sha256: "cd".repeat(32),
                partition: None,
            },
        ];
        let schema = vec![ColumnSchema { name: "company_id".into(), data_type: "string".into(), nullable: false }];
        let mut tables = BTreeMap::new();
        tables.insert("companies".to_string(), TableReceipt::new("2023-03-14T04:03/companies".into(), schema, files));
        let now = DateTime::parse_from_rfc3339("2023-03-14T04:03:07.963883Z").expect("valid time").with_timezone(&Utc);
        Receipt::new(run, "2023-03-13T15:04".parse().ok(), Format::default(), tables, now)
    }

    #[test]
    fn json_has_the_contract_field_names_and_values() {
        let json: serde_json::Value = serde_json::from_slice(&sample().to_json()).expect("receipt is JSON");
        assert_eq!(json["version"], 1);
        assert_eq!(json["timestamp"], "2023-03-14T04:03:07.963883Z");
        assert_eq!(json["run"], "2023-03-14T04:03");
        assert_eq!(json["previous_run"], "2023-03-13T15:04");
        assert_eq!(json["format"], serde_json::json!({"type": "parquet", "codec": "gzip"}));
        let t = &json["tables"]["companies"];
        assert_eq!(t["folder"], "2023-03-14T04:03/companies");
        assert_eq!(t["total_file_count"], 2);
        assert_eq!(t["row_count"], 21005);
        assert_eq!(t["byte_count"], 17_001_000);
        assert_eq!(t["schema"][0], serde_json::json!({"name": "company_id", "type": "string", "nullable": false}));
        assert_eq!(t["files"][1]["key"], "2023-03-14T04:03/companies/companies_000000000001.parquet.gz");
        assert_eq!(t["files"][1]["rows"], 5);
    }

    #[test]
    fn round_trips_and_checks_totals() {
        let r = sample();
        assert_eq!(Receipt::from_json(&r.to_json()).expect("parses"), r);

        let mut bad = sample();
        if let Some(t) = bad.tables.get_mut("companies") {
            t.row_count += 1;
        }
        let err = Receipt::from_json(&bad.to_json()).expect_err("totals differ");
        assert!(err.contains("companies") && err.contains("row_count"), "{err}");
    }

    #[test]
    fn first_run_has_null_previous_run() {
        let mut r = sample();
        r.previous_run = None;
        let json: serde_json::Value = serde_json::from_slice(&r.to_json()).expect("JSON");
        assert!(json.as_object().is_some_and(|o| o.contains_key("previous_run")));
        assert!(json["previous_run"].is_null());
    }

    #[test]
    fn rejects_other_versions() {
        let mut json: serde_json::Value = serde_json::from_slice(&sample().to_json()).expect("JSON");
        json["version"] = 2.into();
        let err = Receipt::from_json(&serde_json::to_vec(&json).expect("bytes")).expect_err("v2");
        assert!(err.contains("version 2"), "{err}");
    }

    #[test]
    fn a_dreamdata_loader_finds_what_it_expects() {
        // GIVEN a loader that only knows Dreamdata's receipt shape
        #[derive(Deserialize)]
        struct DreamdataTable {
            folder: String,
            total_file_count: u64,
        }
        #[derive(Deserialize)]
        struct DreamdataReceipt {
            timestamp: String,
            tables: BTreeMap<String, DreamdataTable>,
        }
        // WHEN it reads our receipt
        let d: DreamdataReceipt = serde_json::from_slice(&sample().to_json()).expect("compatible");
        // THEN it sees the same values
        assert_eq!(d.timestamp, "2023-03-14T04:03:07.963883Z");
        assert_eq!(d.tables["companies"].folder, "2023-03-14T04:03/companies");
        assert_eq!(d.tables["companies"].total_file_count, 2);
    }
}
