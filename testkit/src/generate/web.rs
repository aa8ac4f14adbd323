//! A string-heavy event table, `web_events`, of the shape SaaS platforms hold and the platform
//! generator does not: most of its bytes are three strings unique to every row (a 36-character
//! id, a ~200-byte URL and a ~200-byte JSON properties document), beside low-cardinality
//! strings, integers, a timestamp, a double and a bool. Benchmarks use it (`byob generate
//! --shape web`, `scripts/bench --shape web`) so encoder work on unique long strings is measured,
//! not only the dictionary-friendly columns of `events`.
//!
//! Deterministic (the same seed and rows give byte-identical files), uncompressed Parquet in
//! row groups of 122,880 rows, 1,000,000 rows per file, tenants in blocks (skewed 40/30/20/10 %
//! for four), so the lake source's statistics skip other tenants' row groups.

use std::fs::{self, File};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::TableReport;
use byob::format::FormatError;
use byob::{Error, Result};

/// The table's name (its folder under the lake).
pub const TABLE: &str = "web_events";
/// Rows per Parquet row group (~120 k, as a typical writer leaves them).
pub const ROW_GROUP_ROWS: usize = 122_880;
/// Rows per part file.
pub const FILE_ROWS: u64 = 1_000_000;
const BATCH_ROWS: usize = 16_384;

const SECTIONS: [&str; 6] = ["dashboards", "reports", "settings", "accounts", "pipelines", "workspaces"];
const SOURCES: [&str; 8] = ["google", "linkedin", "newsletter", "partner", "direct", "bing", "twitter", "g2"];
const REFERRERS: [&str; 12] = [
    "https://www.google.com/",
    "https://www.linkedin.com/",
    "https://news.ycombinator.com/",
    "https://www.bing.com/",
    "https://duckduckgo.com/",
    "https://t.co/",
    "https://www.reddit.com/",
    "https://github.com/",
    "https://www.g2.com/",
    "https://mail.google.com/",
    "https://outlook.office.com/",
    "",
];
const AGENTS: [&str; 6] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36",
    "curl/8.8.0",
];
const COUNTRIES: [&str; 16] =
    ["US", "GB", "DE", "FR", "NL", "DK", "SE", "ES", "IT", "CA", "AU", "JP", "BR", "IN", "PL", "IE"];
const PLANS: [&str; 4] = ["free", "starter", "pro", "enterprise"];
const FEATURES: [&str; 8] = ["export", "import", "share", "comment", "search", "filter", "alert", "embed"];

/// The table's schema: 12 columns, tenant second (as in every generated table).
pub fn schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("tenant_id", DataType::Utf8, false),
        Field::new("occurred_at", ts, false),
        Field::new("url", DataType::Utf8, false),
        Field::new("referrer", DataType::Utf8, true),
        Field::new("properties", DataType::Utf8, false),
        Field::new("user_agent", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, true),
        Field::new("duration_ms", DataType::Int64, false),
        Field::new("revenue", DataType::Float64, true),
        Field::new("is_bot", DataType::Boolean, false),
        Field::new("session_id", DataType::Int64, false),
    ]))
}

/// Writes `rows` rows of `web_events` under `<out>/web_events/`, tenants in blocks (the first
/// tenant the largest share). Returns what was written.
pub fn generate(out: &Path, rows: u64, seed: u64, tenants: &[String]) -> Result<TableReport> {
    let dir = out.join(TABLE);
    fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let format_error = |source: FormatError| Error::Format { table: TABLE.into(), source };
    let props = WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let shares: Vec<u64> = (1..=tenants.len() as u64).rev().collect();
    let total_share: u64 = shares.iter().sum::<u64>().max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut written, mut files, mut bytes) = (0u64, 0u32, 0u64);
    while written < rows {
        let path = dir.join(super::part_name(files as usize));
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut writer = ArrowWriter::try_new(file, schema(), Some(props.clone()))
            .map_err(|e| format_error(FormatError::Parquet(e)))?;
        let file_end = (written + FILE_ROWS).min(rows);
        while written < file_end {
            let len = usize::try_from((file_end - written).min(BATCH_ROWS as u64)).unwrap_or(BATCH_ROWS);
            let batch = batch(&mut rng, written, len, rows, tenants, &shares, total_share)
                .map_err(|e| format_error(FormatError::Arrow(e)))?;
            writer.write(&batch).map_err(|e| format_error(FormatError::Parquet(e)))?;
            written += len as u64;
        }
        writer.close().map_err(|e| format_error(FormatError::Parquet(e)))?;
        bytes += fs::metadata(&path).map_err(|e| Error::io(&path, e))?.len();
        files += 1;
    }
    Ok(TableReport { table: TABLE.into(), rows, files, bytes })
}

/// Rows `first .. first + len` of `rows`.
fn batch(
    rng: &mut ChaCha8Rng,
    first: u64,
    len: usize,
    rows: u64,
    tenants: &[String],
    shares: &[u64],
    total_share: u64,
) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    // The tenant of row i: tenants in blocks by share.
    let tenant_of = |i: u64| {
        let position = u128::from(i) * u128::from(total_share) / u128::from(rows.max(1));
        let mut acc = 0u128;
        for (t, share) in shares.iter().enumerate() {
            acc += u128::from(*share);
            if position < acc {
                return tenants[t].as_str();
            }
        }
        tenants[tenants.len() - 1].as_str()
    };
    let start_micros: i64 = 1_704_067_200_000_000; // 2024-01-01T00:00:00Z
    let mut ids = Vec::with_capacity(len);
    let mut tenant_ids = Vec::with_capacity(len);
    let mut at = Vec::with_capacity(len);
    let mut urls = Vec::with_capacity(len);
    let mut referrers = Vec::with_capacity(len);
    let mut properties = Vec::with_capacity(len);
    let mut agents = Vec::with_capacity(len);
    let mut countries = Vec::with_capacity(len);
    let mut durations = Vec::with_capacity(len);
    let mut revenue = Vec::with_capacity(len);
    let mut bots = Vec::with_capacity(len);
    let mut sessions = Vec::with_capacity(len);
    for offset in 0..len as u64 {
        let i = first + offset;
        let tenant = tenant_of(i);
        let a: u128 = rng.random();
        ids.push(format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            (a >> 96) as u32,
            (a >> 80) as u16,
            (a >> 68) as u16 & 0xfff,
            ((a >> 52) as u16 & 0x3fff) | 0x8000,
            a as u64 & 0xffff_ffff_ffff
        ));
        tenant_ids.push(tenant);
        at.push(start_micros + i as i64 * 1_700 + rng.random_range(0..1_000));
        let (b, c): (u128, u64) = (rng.random(), rng.random());
        urls.push(format!(
            "https://app.example.com/{tenant}/{}/{:016x}/{}?utm_source={}&utm_medium=cpc&utm_campaign={:024x}&session={:032x}&page={}",
            SECTIONS[(c % 6) as usize],
            c,
            FEATURES[(c >> 8) as usize % 8],
            SOURCES[(c >> 16) as usize % 8],
            b >> 32,
            b,
            rng.random_range(1..500u32)
        ));
        referrers.push(REFERRERS[(c >> 24) as usize % REFERRERS.len()]);
        let d: u128 = rng.random();
        properties.push(format!(
            r#"{{"plan":"{}","seats":{},"feature":"{}","experiment":"exp-{:04}","variant":"{}","duration_ms":{},"trace_id":"{:032x}","path":["{}","{}"],"score":{:.4}}}"#,
            PLANS[(c >> 32) as usize % 4],
            rng.random_range(1..500u32),
            FEATURES[(c >> 40) as usize % 8],
            rng.random_range(0..2_000u32),
            if c >> 48 & 1 == 0 { "control" } else { "treatment" },
            rng.random_range(5..60_000u32),
            d,
            SECTIONS[(c >> 50) as usize % 6],
            FEATURES[(c >> 54) as usize % 8],
            rng.random::<f64>()
        ));
        agents.push(AGENTS[(c >> 58) as usize % AGENTS.len()]);
        countries.push((c % 20 != 0).then(|| COUNTRIES[(c >> 4) as usize % COUNTRIES.len()]));
        durations.push(i64::from(rng.random_range(5..600_000u32)));
        revenue.push((c % 7 == 0).then(|| f64::from(rng.random_range(0..100_000u32)) / 100.0));
        bots.push(c % 31 == 0);
        sessions.push((i / 12) as i64);
    }
    let referrers: StringArray = referrers.into_iter().map(|r: &str| (!r.is_empty()).then_some(r)).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(ids)),
        Arc::new(StringArray::from(tenant_ids)),
        Arc::new(TimestampMicrosecondArray::from(at).with_timezone("UTC")),
        Arc::new(StringArray::from(urls)),
        Arc::new(referrers),
        Arc::new(StringArray::from(properties)),
        Arc::new(StringArray::from(agents)),
        Arc::new(StringArray::from(countries)),
        Arc::new(Int64Array::from(durations)),
        Arc::new(Float64Array::from(revenue)),
        Arc::new(BooleanArray::from(bots)),
        Arc::new(Int64Array::from(sessions)),
    ];
    RecordBatch::try_new(schema(), columns)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use arrow::array::AsArray;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;

    #[test]
    fn rows_are_unique_long_strings_and_the_same_seed_gives_the_same_files() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let tenants: Vec<String> = ["acme", "globex"].map(String::from).to_vec();
        let report = generate(a.path(), 20_000, 9, &tenants).unwrap();
        generate(b.path(), 20_000, 9, &tenants).unwrap();
        assert_eq!((report.rows, report.files), (20_000, 1));
        let file = |dir: &Path| fs::read(dir.join(TABLE).join("part-00000.parquet")).unwrap();
        assert!(file(a.path()) == file(b.path()), "deterministic");
        let reader = ParquetRecordBatchReaderBuilder::try_new(
            File::open(a.path().join(TABLE).join("part-00000.parquet")).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        let strings = |column: &str| -> Vec<String> {
            batches
                .iter()
                .flat_map(|b| {
                    b.column_by_name(column)
                        .unwrap()
                        .as_string::<i32>()
                        .iter()
                        .map(|s| s.unwrap_or("").to_owned())
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        for column in ["event_id", "url", "properties"] {
            let values = strings(column);
            assert_eq!(values.iter().collect::<HashSet<_>>().len(), values.len(), "{column} unique per row");
        }
        let mean = |column: &str| strings(column).iter().map(String::len).sum::<usize>() / 20_000;
        assert_eq!(mean("event_id"), 36);
        assert!((170..260).contains(&mean("url")), "url ~200 bytes: {}", mean("url"));
        assert!((170..260).contains(&mean("properties")), "properties ~200 bytes: {}", mean("properties"));
        assert!(strings("properties").iter().all(|p| serde_json::from_str::<serde_json::Value>(p).is_ok()), "JSON");
        let tenants_seen: Vec<String> = strings("tenant_id");
        assert_eq!(tenants_seen.iter().filter(|t| *t == "acme").count(), 13_334, "2/3 for the first of two");
    }
}
