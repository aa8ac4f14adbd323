//! The files under a folder (a local sink's bucket, a state folder), for tests that compare two
//! dumps or list what was written.

use std::collections::BTreeMap;
use std::path::Path;

/// Every file under `root`, by its path relative to `root`, with its bytes.
pub fn objects(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(root) {
                let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
                out.insert(rel.to_string_lossy().into_owned(), bytes);
            }
        }
    }
    out
}

/// Every file under `root`, relative to it, sorted.
pub fn files_under(root: &Path) -> Vec<String> {
    objects(root).into_keys().collect()
}
