//! Checks on a receipt that need no file: where it lives (and so its prefix), its version and
//! totals, and that every key it lists stays inside the receipt's own run folder.
//!
//! A receipt is input from a bucket: a key is only ever joined to the prefix after it passed
//! [`check_keys`], so no receipt can make the loader read outside `<prefix>/<run>/...`
//! (no `..`, no absolute key, no URL to another bucket, nothing of another run).

use std::collections::HashSet;

use crate::layout::{self, RECEIPT_FILE, RunId};
use crate::receipt::{Receipt, TableReceipt};

/// Where the receipt's files live, from where the receipt itself lives: `<prefix>/receipt.json`
/// (the root copy, rewritten by every run) or `<prefix>/<run>/receipt.json` (the run's
/// immutable copy). Both name the same files: keys in a receipt are relative to the prefix.
///
/// `receipt_key` is a `/`-separated key (or path); the result has no trailing `/` and is `""`
/// for a receipt at the top of the bucket.
pub fn prefix_of(receipt_key: &str, run: &RunId) -> Result<String, String> {
    let parent = if receipt_key == RECEIPT_FILE {
        ""
    } else {
        receipt_key
            .strip_suffix(RECEIPT_FILE)
            .and_then(|p| p.strip_suffix('/'))
            .ok_or_else(|| format!("{receipt_key:?} is not a {RECEIPT_FILE}"))?
    };
    let run = run.to_string();
    Ok(match parent.rsplit_once('/') {
        Some((prefix, last)) if last == run => prefix.to_owned(),
        None if parent == run => String::new(),
        _ => parent.to_owned(),
    })
}

/// Everything that can be checked in the receipt alone: version 1 and totals (already checked
/// by [`Receipt::from_json`], checked again for receipts built in code), table names usable
/// as identifiers, and every key inside its table's folder inside the run.
pub fn check_receipt(receipt: &Receipt) -> Result<(), String> {
    if receipt.version != crate::receipt::VERSION {
        return Err(format!("receipt version {} is not supported (this byob reads version 1)", receipt.version));
    }
    receipt.format.validate().map_err(|e| format!("format: {e}"))?;
    let mut seen = HashSet::new();
    for (name, table) in &receipt.tables {
        layout::validate_table_name(name).map_err(|e| format!("table {name:?}: {e}"))?;
        table.check_totals().map_err(|e| format!("table {name:?}: {e}"))?;
        if table.schema.is_empty() {
            return Err(format!("table {name:?}: the schema lists no column"));
        }
        let mut columns = HashSet::new();
        for c in &table.schema {
            if !columns.insert(c.name.as_str()) {
                return Err(format!("table {name:?}: column {:?} is listed twice", c.name));
            }
        }
        check_keys(&receipt.run, name, table)?;
        for f in &table.files {
            if !seen.insert(f.key.as_str()) {
                return Err(format!("key {:?} is listed twice", f.key));
            }
            if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("key {:?}: sha256 {:?} is not 64 hex digits", f.key, f.sha256));
            }
        }
    }
    Ok(())
}

/// Every key of `table` must be a plain relative key inside the table's folder, and the
/// folder must hold the run id as a whole segment (`<run>/<table>` in the default layout;
/// custom key templates put `{run}` anywhere in the folder part).
pub fn check_keys(run: &RunId, name: &str, table: &TableReceipt) -> Result<(), String> {
    let folder = &table.folder;
    check_relative(folder).map_err(|reason| format!("table {name:?}: folder {folder:?} {reason}"))?;
    let run = run.to_string();
    if !folder.split('/').any(|s| s == run) {
        return Err(format!("table {name:?}: folder {folder:?} is outside the receipt's run {run}"));
    }
    for f in &table.files {
        let key = &f.key;
        check_relative(key).map_err(|reason| format!("key {key:?} {reason}"))?;
        let inside = key.strip_prefix(folder.as_str()).is_some_and(|rest| rest.starts_with('/') && rest.len() > 1);
        if !inside {
            return Err(format!("key {key:?} is outside its table's folder {folder:?} (run {run})"));
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
            .map(|k| FileEntry { key: (*k).into(), rows: 1, bytes: 1, sha256: "ab".repeat(32) })
            .collect();
        let schema = vec![ColumnSchema { name: "id".into(), data_type: "int64".into(), nullable: false }];
        TableReceipt::new("2023-03-14T04:03/companies".into(), schema, files)
    }

    #[test]
    fn prefixes_from_both_receipt_copies() {
        assert_eq!(prefix_of("exports/acme/receipt.json", &run()).unwrap(), "exports/acme");
        assert_eq!(prefix_of("exports/acme/2023-03-14T04:03/receipt.json", &run()).unwrap(), "exports/acme");
        assert_eq!(prefix_of("receipt.json", &run()).unwrap(), "");
        assert_eq!(prefix_of("2023-03-14T04:03/receipt.json", &run()).unwrap(), "");
        // another run's folder is just part of the prefix
        assert_eq!(prefix_of("p/2023-03-13T15:04/receipt.json", &run()).unwrap(), "p/2023-03-13T15:04");
        assert!(prefix_of("p/other.json", &run()).is_err());
        assert!(prefix_of("p/myreceipt.json", &run()).is_err());
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
        let mut t = table(&[ok]);
        t.folder = "2023-03-13T15:04/companies".into();
        t.files[0].key = "2023-03-13T15:04/companies/x".into();
        assert!(check_keys(&run(), "companies", &t).unwrap_err().contains("outside the receipt's run"));
        t.folder = "../2023-03-14T04:03".into();
        assert!(check_keys(&run(), "companies", &t).unwrap_err().contains("\"..\""));
    }
}
