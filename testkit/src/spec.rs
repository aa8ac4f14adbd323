//! The export settings tests and benchmarks start from: one place to build an [`ExportSpec`].

use std::collections::BTreeMap;

use byob::export::ExportSpec;
use byob::format::{EncoderOptions, Format};
use byob::layout::KeyTemplate;

/// Run `run` (`YYYY-MM-DDTHH:MM`) under `prefix` in `format`: Dreamdata's key template, files of
/// up to 1,000,000 rows and 1 GiB, default encoder settings, no metadata, manifest, partitions or
/// encryption. Override fields with struct update syntax.
pub fn export_spec(run: &str, prefix: &str, format: Format) -> ExportSpec {
    ExportSpec {
        run: run.parse().expect("a valid run id"),
        prefix: prefix.to_owned(),
        template: KeyTemplate::default(),
        format,
        max_file_rows: 1_000_000,
        max_file_bytes: 1 << 30,
        encoder: EncoderOptions::default(),
        metadata: BTreeMap::new(),
        manifest: false,
        partition_by: None,
        pgp: None,
    }
}
