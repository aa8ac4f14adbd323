//! Checks on a receipt that need no file: where it lives (and so its prefix), its version and
//! totals, and that every key it lists stays inside the receipt's own run folder.
//!
//! A receipt is input from a bucket: a key is only ever joined to the prefix after it passed
//! [`check_keys`], so no receipt can make the loader read outside `<prefix>/<run>/...`
//! (no `..`, no absolute key, no URL to another bucket, nothing of another run).

use std::collections::HashSet;

use crate::increment::TableMode;
use crate::layout::{self, RECEIPT_FILE, RUN_RECEIPT_FILE, RunId};
use crate::receipt::{Receipt, TableReceipt};

/// The largest receipt the loader reads: 64 MiB. A receipt lists every file of a run (a
/// few hundred bytes each), so a real one is far smaller; anything bigger is refused before
/// it is read, so a hostile or corrupt object cannot exhaust the loader's memory.
pub const MAX_RECEIPT_BYTES: u64 = 64 * 1024 * 1024;

/// Refuses a receipt of `size` bytes (as the file system or S3's Content-Length says, or as
/// counted while reading) when it exceeds [`MAX_RECEIPT_BYTES`]; the message names the limit
/// (the error it goes into names the receipt).
pub fn check_receipt_size(size: u64) -> Result<(), String> {
    if size > MAX_RECEIPT_BYTES {
        return Err(format!(
            "it is {size} bytes or more, over the limit of {MAX_RECEIPT_BYTES} bytes (64 MiB) for a receipt; it was not read"
        ));
    }
    Ok(())
}

/// Where the receipt's files live, from where the receipt itself lives: `<prefix>/receipt.json`
/// (the root copy, rewritten by every run) or `<prefix>/<run>/receipt.run.json` (the run's
/// immutable copy; `<run>/receipt.json`, its name before byob 0.2, is read too). Both name the
/// same files: keys in a receipt are relative to the prefix.
///
/// `receipt_key` is a `/`-separated key (or path); the result has no trailing `/` and is `""`
/// for a receipt at the top of the bucket.
pub fn prefix_of(receipt_key: &str, run: &RunId) -> Result<String, String> {
    let parent = [RECEIPT_FILE, RUN_RECEIPT_FILE]
        .iter()
        .find_map(|name| {
            if receipt_key == *name {
                Some("")
            } else {
                receipt_key.strip_suffix(name).and_then(|p| p.strip_suffix('/'))
            }
        })
        .ok_or_else(|| format!("{receipt_key:?} is not a {RECEIPT_FILE} or {RUN_RECEIPT_FILE}"))?;
    let run = run.to_string();
    Ok(match parent.rsplit_once('/') {
        Some((prefix, last)) if last == run => prefix.to_owned(),
        None if parent == run => String::new(),
        _ => parent.to_owned(),
    })
}

/// How far ahead of this machine's clock a receipt's run or timestamp may be (clock skew).
pub const FUTURE_TOLERANCE: chrono::Duration = chrono::Duration::minutes(15);

/// A receipt's times against the clock: `timestamp` must be an RFC 3339 time, and neither it
/// nor the run may lie more than [`FUTURE_TOLERANCE`] ahead of `now`. A far-future run would
/// be "newer" than every real dump after it, so every later load would be skipped as older.
pub fn check_times(receipt: &Receipt, now: chrono::DateTime<chrono::Utc>) -> Result<(), String> {
    let limit = now + FUTURE_TOLERANCE;
    if receipt.run.datetime() > limit {
        return Err(format!(
            "run {} is in the future (this machine's clock says {}); refused, as it would hide every later dump",
            receipt.run,
            now.format("%Y-%m-%dT%H:%M:%SZ")
        ));
    }
    let timestamp = chrono::DateTime::parse_from_rfc3339(&receipt.timestamp).map_err(|e| {
        format!(
            "timestamp {:?} is not an RFC 3339 time ({e})",
            receipt.timestamp.chars().take(SHOWN_CHARS).collect::<String>()
        )
    })?;
    if timestamp > limit {
        return Err(format!(
            "timestamp {} is in the future (this machine's clock says {}); refused",
            receipt.timestamp,
            now.format("%Y-%m-%dT%H:%M:%SZ")
        ));
    }
    Ok(())
}

/// Everything that can be checked in the receipt alone: version 1 and totals (already checked
/// by [`Receipt::from_json`], checked again for receipts built in code), table names usable
/// as identifiers, every column type a portable type name, and every key inside its table's
/// folder inside the run. Messages quote at most [`SHOWN_CHARS`] characters of any value.
pub fn check_receipt(receipt: &Receipt) -> Result<(), String> {
    if receipt.version != crate::receipt::VERSION {
        return Err(format!("receipt version {} is not supported (this byob reads version 1)", receipt.version));
    }
    receipt.format.validate().map_err(|e| format!("format: {e}"))?;
    let mut seen = HashSet::new();
    for (name, table) in &receipt.tables {
        let shown_name = shown(name);
        layout::validate_table_name(name).map_err(|e| format!("table {shown_name}: {}", e.reason()))?;
        if name.to_ascii_lowercase().starts_with("byob_") {
            return Err(format!(
                "table {shown_name}: names starting with byob_ are the loader's own (its load history and \
                 table registry); a receipt never names one"
            ));
        }
        table.check_totals().map_err(|e| format!("table {shown_name}: {e}"))?;
        if table.schema.is_empty() {
            return Err(format!("table {shown_name}: the schema lists no column"));
        }
        let mut columns = HashSet::new();
        for c in &table.schema {
            if !columns.insert(c.name.as_str()) {
                return Err(format!("table {shown_name}: column {} is listed twice", shown(&c.name)));
            }
            check_type(&c.data_type).map_err(|e| format!("table {shown_name}: column {}: {e}", shown(&c.name)))?;
            if c.name.is_empty() || c.name.len() > layout::MAX_IDENTIFIER_BYTES {
                return Err(format!(
                    "table {shown_name}: column {} is {} bytes long; column names are 1-{} bytes, what every \
                     warehouse holds (PostgreSQL truncates longer names, and two could collide)",
                    shown(&c.name),
                    c.name.len(),
                    layout::MAX_IDENTIFIER_BYTES
                ));
            }
        }
        check_keys(&receipt.run, name, table)?;
        check_increment(&receipt.run, table, &columns).map_err(|e| format!("table {shown_name}: {e}"))?;
        for f in &table.files {
            if !seen.insert(f.key.as_str()) {
                return Err(format!("key {} is listed twice", shown(&f.key)));
            }
            if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("key {}: sha256 {} is not 64 hex digits", shown(&f.key), shown(&f.sha256)));
            }
        }
    }
    Ok(())
}

/// A table's mode, range and keys: an incremental table has a range with `from` and `to` on
/// one of its columns and builds on an earlier run; keys are columns of the table.
fn check_increment(run: &RunId, table: &TableReceipt, columns: &HashSet<&str>) -> Result<(), String> {
    for key in &table.primary_key {
        if !columns.contains(key.as_str()) {
            return Err(format!("primary_key column {} is not one of its columns", shown(key)));
        }
    }
    if let Some(range) = &table.range {
        if !columns.contains(range.column.as_str()) {
            return Err(format!("the range's watermark column {} is not one of its columns", shown(&range.column)));
        }
        let kinds: HashSet<_> =
            [range.from, range.to, range.reexported_from].into_iter().flatten().map(|w| w.kind()).collect();
        if kinds.len() > 1 {
            return Err("the range mixes watermarks of different types".into());
        }
        if range.full_run > *run {
            return Err(format!("the range's full_run {} is after the run {run}", range.full_run));
        }
    }
    if table.mode == TableMode::Incremental {
        let Some(range) = &table.range else { return Err("an incremental table must state its range".into()) };
        let (Some(from), Some(to)) = (range.from, range.to) else {
            return Err("an incremental table's range must have a from and a to".into());
        };
        if from > to || range.reexported_from.is_some_and(|r| r > from) {
            return Err(format!("its range ({from}, {to}] runs backwards"));
        }
        if table.builds_on.is_none_or(|b| b >= *run) {
            return Err("an incremental table must name the earlier run it builds_on".into());
        }
    }
    Ok(())
}

/// The most characters of a value a message quotes.
pub const SHOWN_CHARS: usize = 200;

/// `value` quoted for a message, cut to [`SHOWN_CHARS`] characters (a receipt is input from a
/// bucket: a megabyte-long key must not become a megabyte-long log line).
fn shown(value: &str) -> String {
    match value.char_indices().nth(SHOWN_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}... ({} bytes)", &value[..cut], value.len()),
    }
}

/// The deepest `list<...>` nesting a column type may have (loaders take one level; Arrow's
/// nested lists a few more).
const MAX_TYPE_DEPTH: usize = 8;

/// A column type must be a portable type name ([`crate::schema::parse_type_name`]) of at most
/// [`MAX_TYPE_DEPTH`] levels of lists, checked before anything parses it recursively.
fn check_type(data_type: &str) -> Result<(), String> {
    if data_type.len() > 256 || data_type.matches("list<").count() > MAX_TYPE_DEPTH {
        return Err(format!(
            "type {} is not a portable type name (at most 256 characters and {MAX_TYPE_DEPTH} levels of list<...>)",
            shown(data_type)
        ));
    }
    crate::schema::parse_type_name(data_type).map(|_| ())
}

/// Every key of `table` must be a plain relative key inside the table's folder, and a
/// segment of the folder must hold the run id (`<run>/<table>` in the default layout; custom
/// key templates put `{run}` anywhere in the folder part, e.g. `{run}_{table}/...`).
pub fn check_keys(run: &RunId, name: &str, table: &TableReceipt) -> Result<(), String> {
    let folder = &table.folder;
    let (shown_name, shown_folder) = (shown(name), shown(folder));
    check_relative(folder).map_err(|reason| format!("table {shown_name}: folder {shown_folder} {reason}"))?;
    let run = run.to_string();
    if !folder.split('/').any(|s| s.contains(run.as_str())) {
        return Err(format!("table {shown_name}: folder {shown_folder} is outside the receipt's run {run}"));
    }
    for f in &table.files {
        let key = &f.key;
        check_relative(key).map_err(|reason| format!("key {} {reason}", shown(key)))?;
        let inside = key.strip_prefix(folder.as_str()).is_some_and(|rest| rest.starts_with('/') && rest.len() > 1);
        if !inside {
            return Err(format!("key {} is outside its table's folder {shown_folder} (run {run})", shown(key)));
        }
    }
    Ok(())
}

/// A key relative to the prefix: not empty, not absolute, not a URL, no `.`/`..`/empty
/// segment, no backslash or control character.
fn check_relative(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err("is empty");
    }
    if key.len() > 1024 {
        return Err("is longer than S3's limit of 1,024 bytes for a key");
    }
    if key.contains("://") || key.starts_with("s3:") || key.starts_with("arn:") {
        return Err("is a URL, not a key relative to the receipt's prefix");
    }
    if key.starts_with('/') {
        return Err("is absolute");
    }
    if key.contains('\\') || key.chars().any(char::is_control) {
        return Err("holds a backslash or a control character");
    }
    for segment in key.split('/') {
        match segment {
            "" => return Err("has an empty segment"),
            "." | ".." => return Err("has a \".\" or \"..\" segment"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::receipt::FileEntry;
    use crate::schema::ColumnSchema;

    fn run() -> RunId {
        "2023-03-14T04:03".parse().unwrap()
    }

    fn table(keys: &[&str]) -> TableReceipt {
        let files = keys
            .iter()
            .map(|k| FileEntry { key: (*k).into(), rows: 1, bytes: 1, sha256: "ab".repeat(32), partition: None })
            .collect();
        let schema = vec![ColumnSchema { name: "id".into(), data_type: "int64".into(), nullable: false }];
        TableReceipt::new("2023-03-14T04:03/companies".into(), schema, files)
    }

    #[test]
    fn prefixes_from_both_receipt_copies() {
        assert_eq!(prefix_of("exports/acme/receipt.json", &run()).unwrap(), "exports/acme");
        assert_eq!(prefix_of("exports/acme/2023-03-14T04:03/receipt.json", &run()).unwrap(), "exports/acme");
        assert_eq!(prefix_of("exports/acme/2023-03-14T04:03/receipt.run.json", &run()).unwrap(), "exports/acme");
        assert_eq!(prefix_of("2023-03-14T04:03/receipt.run.json", &run()).unwrap(), "");
        assert_eq!(prefix_of("receipt.json", &run()).unwrap(), "");
        assert_eq!(prefix_of("2023-03-14T04:03/receipt.json", &run()).unwrap(), "");
        // another run's folder is just part of the prefix
        assert_eq!(prefix_of("p/2023-03-13T15:04/receipt.json", &run()).unwrap(), "p/2023-03-13T15:04");
        assert!(prefix_of("p/other.json", &run()).is_err());
        assert!(prefix_of("p/myreceipt.json", &run()).is_err());
    }

    #[test]
    fn receipt_size_is_capped() {
        check_receipt_size(MAX_RECEIPT_BYTES).unwrap();
        let e = check_receipt_size(MAX_RECEIPT_BYTES + 1).unwrap_err();
        assert!(e.contains("67108865") && e.contains("67108864") && e.contains("64 MiB"), "{e}");
    }

    #[test]
    fn keys_must_stay_inside_the_run_folder() {
        let ok = "2023-03-14T04:03/companies/companies_000000000000.parquet.gz";
        check_keys(&run(), "companies", &table(&[ok])).unwrap();
        for (bad, why) in [
            ("2023-03-14T04:03/companies/../../secret", "\"..\""),
            ("/2023-03-14T04:03/companies/x", "absolute"),
            ("s3://other-bucket/2023-03-14T04:03/companies/x", "URL"),
            ("2023-03-13T15:04/companies/x", "outside"),
            ("2023-03-14T04:03/companies", "outside"),
            ("2023-03-14T04:03/companies/", "empty segment"),
            ("2023-03-14T04:03/companiesX/x", "outside"),
            ("2023-03-14T04:03/companies/./x", "\".\""),
            ("2023-03-14T04:03/companies\\x", "backslash"),
            ("", "empty"),
        ] {
            let e = check_keys(&run(), "companies", &table(&[bad])).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        // a custom template may join the run to the table in one segment
        let mut t = table(&["2023-03-14T04:03_companies/000000000000"]);
        t.folder = "2023-03-14T04:03_companies".into();
        check_keys(&run(), "companies", &t).unwrap();
        let mut t = table(&[ok]);
        t.folder = "2023-03-13T15:04/companies".into();
        t.files[0].key = "2023-03-13T15:04/companies/x".into();
        assert!(check_keys(&run(), "companies", &t).unwrap_err().contains("outside the receipt's run"));
        t.folder = "../2023-03-14T04:03".into();
        assert!(check_keys(&run(), "companies", &t).unwrap_err().contains("\"..\""));
    }

    #[test]
    fn names_longer_than_a_warehouse_holds_are_refused() {
        let receipt_with = |table_name: &str, column: &str| {
            let mut t = table(&[&format!("2023-03-14T04:03/{table_name}/{table_name}_000000000000.parquet.gz")]);
            t.folder = format!("2023-03-14T04:03/{table_name}");
            t.schema[0].name = column.to_owned();
            let tables = [(table_name.to_owned(), t)].into_iter().collect();
            Receipt::new(run(), None, crate::format::Format::default(), tables, chrono::Utc::now())
        };
        check_receipt(&receipt_with("companies", &"c".repeat(63))).unwrap();
        let e = check_receipt(&receipt_with("companies", &"c".repeat(64))).unwrap_err();
        assert!(e.contains("64 bytes") && e.contains("1-63"), "{e}");
        // Multi-byte characters count as bytes, as PostgreSQL counts them.
        let e = check_receipt(&receipt_with("companies", &"é".repeat(32))).unwrap_err();
        assert!(e.contains("64 bytes"), "{e}");
        let e = check_receipt(&receipt_with(&"t".repeat(64), "id")).unwrap_err();
        assert!(e.contains("1-63"), "{e}");
    }

    #[test]
    fn receipts_from_the_future_and_odd_timestamps_are_refused() {
        let now = chrono::DateTime::parse_from_rfc3339("2023-03-14T05:00:00Z").unwrap().with_timezone(&chrono::Utc);
        let receipt = |run: &str, timestamp: &str| {
            let mut r =
                Receipt::new(run.parse().unwrap(), None, crate::format::Format::default(), Default::default(), now);
            r.timestamp = timestamp.to_owned();
            r
        };
        check_times(&receipt("2023-03-14T04:03", "2023-03-14T04:03:07.963883Z"), now).unwrap();
        // Clock skew within the tolerance passes.
        check_times(&receipt("2023-03-14T05:10", "2023-03-14T05:10:00Z"), now).unwrap();
        let far = check_times(&receipt("9999-12-31T23:59", "2023-03-14T04:03:07Z"), now).unwrap_err();
        assert!(far.contains("9999-12-31T23:59") && far.contains("future"), "{far}");
        let ts = check_times(&receipt("2023-03-14T04:03", "2023-03-15T04:03:07Z"), now).unwrap_err();
        assert!(ts.contains("timestamp") && ts.contains("future"), "{ts}");
        let odd = check_times(&receipt("2023-03-14T04:03", "yesterday"), now).unwrap_err();
        assert!(odd.contains("RFC 3339"), "{odd}");
    }

    #[test]
    fn incremental_entries_must_state_a_sound_range_on_their_own_columns() {
        use crate::increment::{Range, TableMode, Watermark};
        let columns: HashSet<&str> = ["id"].into();
        let range = Range {
            column: "id".into(),
            from: Some(Watermark::Integer(10)),
            to: Some(Watermark::Integer(20)),
            reexported_from: Some(Watermark::Integer(5)),
            full_run: "2023-03-13T04:03".parse().unwrap(),
        };
        let good = TableReceipt {
            mode: TableMode::Incremental,
            range: Some(range.clone()),
            builds_on: Some("2023-03-14T03:03".parse().unwrap()),
            primary_key: vec!["id".into()],
            ..table(&[])
        };
        check_increment(&run(), &good, &columns).unwrap();
        let cases = [
            (TableReceipt { primary_key: vec!["nope".into()], ..good.clone() }, "primary_key"),
            (
                TableReceipt { range: Some(Range { column: "w".into(), ..range.clone() }), ..good.clone() },
                "watermark column",
            ),
            (TableReceipt { range: None, ..good.clone() }, "must state its range"),
            (TableReceipt { range: Some(Range { from: None, ..range.clone() }), ..good.clone() }, "from and a to"),
            (
                TableReceipt {
                    range: Some(Range { from: Some(Watermark::Integer(30)), ..range.clone() }),
                    ..good.clone()
                },
                "backwards",
            ),
            (
                TableReceipt {
                    range: Some(Range { reexported_from: Some(Watermark::Integer(15)), ..range.clone() }),
                    ..good.clone()
                },
                "backwards",
            ),
            (
                TableReceipt { range: Some(Range { to: Some(Watermark::Date(3)), ..range.clone() }), ..good.clone() },
                "different types",
            ),
            (TableReceipt { builds_on: None, ..good.clone() }, "builds_on"),
            (TableReceipt { builds_on: Some(run()), ..good.clone() }, "builds_on"),
            (
                TableReceipt {
                    range: Some(Range { full_run: "2024-01-01T00:00".parse().unwrap(), ..range.clone() }),
                    ..good.clone()
                },
                "full_run",
            ),
        ];
        for (bad, why) in cases {
            let e = check_increment(&run(), &bad, &columns).unwrap_err();
            assert!(e.contains(why), "{why}: {e}");
        }
    }
}
