//! The synthetic data platform that feeds the demo, the tests and the benchmarks.
//!
//! It writes the tables of a B2B marketing-analytics SaaS (companies, contacts, web and ad
//! events, deals, revenue attribution, paid-ad spend) for a few tenants as a Parquet "lake":
//! `<out>/<table>/part-00000.parquet`, `part-00001.parquet`, ... Rows are clustered by tenant
//! (tenants in name order), so row-group min/max statistics let a reader skip every row group
//! of the other tenants, exactly as a real multi-tenant lake partitioned by customer would.
//!
//! What the generator guarantees:
//! - The same [`GenerateOptions`] give byte-identical files: every value comes from a
//!   `ChaCha8Rng` seeded by (seed, table, tenant, chunk) or from a pure hash of the same, never
//!   from the clock or the thread schedule.
//! - References hold: a contact's company, an event's contact and company, a deal's company,
//!   an attribution's deal and event all exist in the same tenant. They are pure functions
//!   of (seed, tenant, row index), so no table is ever held in memory to join against.
//! - Memory stays bounded: at most one batch of [`BATCH_ROWS`] rows and one row group being
//!   encoded per worker thread.
//! - Files appear atomically (written under a temporary name, then renamed); part files left
//!   by an earlier, larger run are removed.
//!
//! It must never be used as a source of truth for anything but tests and demos, and never
//! reads the clock: a lake generated today and next year is the same lake.

pub mod postgres;
pub mod web;

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int32Builder, Int64Builder,
    StringArray, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use byob::format::FormatError;
use byob::{Error, Result};

/// The tables of the synthetic lake, in the order they are reported.
pub const TABLES: [&str; 6] = ["companies", "contacts", "events", "revenue", "revenue_attribution", "paid_ads"];

/// Rows per record batch while generating: the unit of memory and of randomness.
pub const BATCH_ROWS: usize = 65_536;

/// The default number of rows per Parquet row group.
pub const DEFAULT_ROW_GROUP_ROWS: usize = 131_072;

/// The default maximum number of rows per part file (8 default row groups).
pub const DEFAULT_FILE_ROWS: usize = 1_048_576;

/// What to generate and where.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateOptions {
    /// The lake's root folder; each table is written to `<out>/<table>/`.
    pub out: PathBuf,
    /// Size of the lake: `events` gets 1,000,000 x `scale` rows and the other tables
    /// proportionally (e.g. `10.0` = 10 M events, `0.01` = 10,000 events). Every tenant gets
    /// at least one row of every table, however small the scale.
    pub scale: f64,
    /// Seed of every random choice: the same options always give byte-identical files.
    pub seed: u64,
    /// Tenant ids. The first gets the largest share of rows and each next one less
    /// (shares proportional to n, n-1, ..., 1: 40/30/20/10 % for four tenants), because real
    /// platforms are skewed and the skew is what exercises slicing.
    pub tenants: Vec<String>,
    /// Rows per Parquet row group ([`DEFAULT_ROW_GROUP_ROWS`]); tests use small row groups
    /// to get many of them from a tiny lake.
    pub row_group_rows: usize,
    /// Maximum rows per part file ([`DEFAULT_FILE_ROWS`]).
    pub file_rows: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            out: PathBuf::from("lake"),
            scale: 1.0,
            seed: 42,
            tenants: ["acme", "globex", "initech", "umbrella"].map(String::from).to_vec(),
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
            file_rows: DEFAULT_FILE_ROWS,
        }
    }
}

/// What was written for one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableReport {
    /// Table name, one of [`TABLES`].
    pub table: String,
    /// Rows written, all tenants together.
    pub rows: u64,
    /// Part files written.
    pub files: u32,
    /// Bytes of the part files on disk.
    pub bytes: u64,
}

/// The Arrow schema of a generated table, or `None` if `table` is not one of [`TABLES`].
pub fn table_schema(table: &str) -> Option<SchemaRef> {
    Table::from_name(table).map(Table::schema)
}

/// Writes the lake described by `options`, one table folder per entry of [`TABLES`], using
/// every core. `progress` is called from the worker threads with a table name and the rows of
/// that table written so far.
///
/// Returns one report per table, in the order of [`TABLES`]. Fails on invalid options (no
/// tenant, duplicate tenant, scale not a positive finite number, zero row group or file
/// size) before writing anything.
pub fn generate(options: &GenerateOptions, progress: &(dyn Fn(&str, u64) + Sync)) -> Result<Vec<TableReport>> {
    let lake = Lake::new(options)?;
    let props = writer_properties(options.row_group_rows);

    let mut units = Vec::new();
    let mut files_per_table = [0u32; 6];
    for table in Table::ALL {
        let files = lake.files(table);
        files_per_table[table as usize] = u32::try_from(files.len()).map_err(|_| {
            invalid(&options.out, format!("table {} would need more than {} files", table.name(), u32::MAX))
        })?;
        if files.len() > 99_999 {
            return Err(invalid(&options.out, format!("table {} would need more than 99999 files", table.name())));
        }
        for (index, chunks) in files.into_iter().enumerate() {
            units.push(Unit { table, index, chunks });
        }
    }
    // Biggest work first, so the last unit to finish is a small one.
    units.sort_by_key(|unit| std::cmp::Reverse(unit.weight()));

    for table in Table::ALL {
        let dir = options.out.join(table.name());
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }

    let written: [AtomicU64; 6] = Default::default();
    let bytes: [AtomicU64; 6] = Default::default();
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(units.len()).max(1);

    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let Some(unit) = units.get(next.fetch_add(1, Ordering::Relaxed)) else { break };
                    let counter = &written[unit.table as usize];
                    match write_file(&lake, unit, &options.out, &props, &stop, &|rows| {
                        let total = counter.fetch_add(rows, Ordering::Relaxed) + rows;
                        progress(unit.table.name(), total);
                    }) {
                        Ok(size) => {
                            bytes[unit.table as usize].fetch_add(size, Ordering::Relaxed);
                        }
                        Err(error) => {
                            stop.store(true, Ordering::Relaxed);
                            let mut slot = failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                            slot.get_or_insert(error);
                        }
                    }
                }
            });
        }
    });
    if let Some(error) = failure.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner()) {
        return Err(error);
    }

    let mut reports = Vec::with_capacity(TABLES.len());
    for table in Table::ALL {
        let files = files_per_table[table as usize];
        remove_stale_parts(&options.out.join(table.name()), files)?;
        reports.push(TableReport {
            table: table.name().to_string(),
            rows: lake.tenants.iter().map(|t| t.rows[table as usize]).sum(),
            files,
            bytes: bytes[table as usize].load(Ordering::Relaxed),
        });
    }
    Ok(reports)
}

/// The name of part file `index` of a table folder.
fn part_name(index: usize) -> String {
    format!("part-{index:05}.parquet")
}

fn invalid(out: &Path, message: String) -> Error {
    Error::io(out, io::Error::new(io::ErrorKind::InvalidInput, message))
}

fn writer_properties(row_group_rows: usize) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_statistics_enabled(EnabledStatistics::Page)
        // Every table's second column is tenant_id, and rows are sorted by it.
        .set_sorting_columns(Some(vec![SortingColumn { column_idx: 1, descending: false, nulls_first: false }]));
    // Random ids never repeat: a dictionary would only be built to be thrown away.
    for column in ["company_id", "contact_id", "event_id", "session_id", "deal_id", "attribution_id", "ad_id", "email"]
    {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(column), false);
    }
    builder.build()
}

/// Removes `part-NNNNN.parquet` files numbered `files` or more (left by an earlier run that
/// wrote more files) and any leftover temporary file. Nothing else in the folder is touched.
fn remove_stale_parts(dir: &Path, files: u32) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let stale = match part_number(name) {
            Some((number, false)) => number >= u64::from(files),
            Some((_, true)) => true,
            None => false,
        };
        if stale {
            let path = entry.path();
            fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

/// `part-00012.parquet` -> (12, false), `part-00012.parquet.tmp` -> (12, true).
fn part_number(name: &str) -> Option<(u64, bool)> {
    let rest = name.strip_prefix("part-")?;
    let (digits, tmp) = match rest.strip_suffix(".parquet.tmp") {
        Some(digits) => (digits, true),
        None => (rest.strip_suffix(".parquet")?, false),
    };
    if digits.len() != 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(|n| (n, tmp))
}

/// Writes one part file under a temporary name, then renames it. Returns its size in bytes.
fn write_file(
    lake: &Lake,
    unit: &Unit,
    out: &Path,
    props: &WriterProperties,
    stop: &AtomicBool,
    on_batch: &dyn Fn(u64),
) -> Result<u64> {
    let table = unit.table;
    let dir = out.join(table.name());
    let path = dir.join(part_name(unit.index));
    let tmp = dir.join(format!("{}.tmp", part_name(unit.index)));
    let format_error = |source: FormatError| Error::Format { table: table.name().to_string(), source };

    let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut writer = ArrowWriter::try_new(file, table.schema(), Some(props.clone()))
        .map_err(|e| format_error(FormatError::Parquet(e)))?;
    for chunk in &unit.chunks {
        if stop.load(Ordering::Relaxed) {
            drop(writer);
            // Best effort: the run has already failed and that error is the one reported.
            let _ = fs::remove_file(&tmp);
            return Err(Error::Cancelled(format!("writing {}", path.display())));
        }
        let batch = lake.batch(table, chunk).map_err(|e| format_error(FormatError::Arrow(e)))?;
        writer.write(&batch).map_err(|e| format_error(FormatError::Parquet(e)))?;
        on_batch(chunk.len as u64);
    }
    writer.close().map_err(|e| format_error(FormatError::Parquet(e)))?;
    fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    let size = fs::metadata(&path).map_err(|e| Error::io(&path, e))?.len();
    Ok(size)
}

/// One part file to write: a run of chunks of one table.
struct Unit {
    table: Table,
    index: usize,
    chunks: Vec<Chunk>,
}

impl Unit {
    /// Rough uncompressed bytes, to schedule the biggest files first.
    fn weight(&self) -> u64 {
        let rows: u64 = self.chunks.iter().map(|c| c.len as u64).sum();
        rows * self.table.bytes_per_row()
    }
}

/// Rows `start..start + len` (tenant-local indices) of one tenant: one record batch.
#[derive(Clone, Copy, Debug)]
struct Chunk {
    tenant: usize,
    start: u64,
    len: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Table {
    Companies,
    Contacts,
    Events,
    Revenue,
    RevenueAttribution,
    PaidAds,
}

impl Table {
    const ALL: [Table; 6] =
        [Table::Companies, Table::Contacts, Table::Events, Table::Revenue, Table::RevenueAttribution, Table::PaidAds];

    fn name(self) -> &'static str {
        TABLES[self as usize]
    }

    fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Rows at scale 1.0, all tenants together.
    fn rows_per_scale(self) -> f64 {
        match self {
            Table::Companies => 20_000.0,
            Table::Contacts => 100_000.0,
            Table::Events => 1_000_000.0,
            Table::Revenue => 10_000.0,
            Table::RevenueAttribution => 50_000.0,
            Table::PaidAds => 30_000.0,
        }
    }

    fn bytes_per_row(self) -> u64 {
        match self {
            Table::Companies => 320,
            Table::Contacts => 260,
            Table::Events => 450,
            Table::Revenue => 150,
            Table::RevenueAttribution => 170,
            Table::PaidAds => 160,
        }
    }

    fn schema(self) -> SchemaRef {
        let ts = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let money = DataType::Decimal128(18, 2);
        let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
        let fields = match self {
            Table::Companies => vec![
                text("company_id", false),
                text("tenant_id", false),
                text("name", false),
                text("domain", false),
                text("industry", true),
                Field::new("employee_count", DataType::Int32, true),
                text("country", true),
                Field::new("is_customer", DataType::Boolean, false),
                text("properties", false),
                Field::new("created_at", ts(), false),
                Field::new("updated_at", ts(), false),
            ],
            Table::Contacts => vec![
                text("contact_id", false),
                text("tenant_id", false),
                text("company_id", true),
                text("email", false),
                text("first_name", false),
                text("last_name", true),
                text("title", true),
                text("lifecycle_stage", false),
                Field::new("unsubscribed", DataType::Boolean, false),
                text("properties", false),
                Field::new("created_at", ts(), false),
            ],
            Table::Events => vec![
                text("event_id", false),
                text("tenant_id", false),
                text("contact_id", true),
                text("company_id", true),
                text("session_id", false),
                text("event_type", false),
                Field::new("occurred_at", ts(), false),
                text("url", true),
                text("referrer", true),
                text("properties", false),
                Field::new("revenue", DataType::Float64, true),
                Field::new("is_conversion", DataType::Boolean, false),
            ],
            Table::Revenue => vec![
                text("deal_id", false),
                text("tenant_id", false),
                text("company_id", false),
                Field::new("amount", money, false),
                text("currency", false),
                text("stage", false),
                Field::new("is_won", DataType::Boolean, false),
                Field::new("created_at", ts(), false),
                Field::new("closed_at", ts(), true),
            ],
            Table::RevenueAttribution => vec![
                text("attribution_id", false),
                text("tenant_id", false),
                text("deal_id", false),
                text("event_id", false),
                text("model", false),
                Field::new("weight", DataType::Float64, false),
                Field::new("attributed_amount", money, false),
                Field::new("touch_at", ts(), false),
            ],
            Table::PaidAds => vec![
                text("ad_id", false),
                text("tenant_id", false),
                Field::new("date", DataType::Date32, false),
                text("platform", false),
                text("campaign_id", false),
                text("campaign_name", false),
                Field::new("impressions", DataType::Int64, false),
                Field::new("clicks", DataType::Int64, false),
                Field::new("spend", money, false),
                Field::new("conversions", DataType::Int32, false),
                text("currency", false),
            ],
        };
        Arc::new(Schema::new(fields))
    }
}

// ---------------------------------------------------------------------------------------------
// The lake: tenants, row counts, and the pure functions that tie the tables together.
// ---------------------------------------------------------------------------------------------

/// 2023-01-01T00:00:00Z: every timestamp lies in the two years after it.
const BASE_MICROS: i64 = 1_672_531_200_000_000;
const DAY_MICROS: i64 = 86_400_000_000;
const SPAN_DAYS: i64 = 730;
const SPAN_MICROS: i64 = SPAN_DAYS * DAY_MICROS;
/// 2023-01-01 in days since the Unix epoch.
const BASE_DAY: i32 = 19_358;
/// Campaigns per tenant.
const CAMPAIGNS: u64 = 40;
/// Events per web session.
const SESSION_EVENTS: u64 = 6;

/// Hash domains: each derived value has its own, so no two are correlated.
mod key {
    pub const ID: u64 = 0x100;
    pub const SESSION_ID: u64 = 0x200;
    pub const CHUNK: u64 = 0x300;
    pub const CONTACT_COMPANY: u64 = 0x400;
    pub const SESSION: u64 = 0x500;
    pub const EVENT_TIME: u64 = 0x600;
    pub const DEAL: u64 = 0x700;
    pub const CAMPAIGN: u64 = 0x800;
    pub const TENANT: u64 = 0x900;
}

struct Tenant {
    name: String,
    /// Hash of the name: a tenant's data does not depend on which other tenants exist.
    key: u64,
    /// Rows per table, indexed by `Table as usize`.
    rows: [u64; 6],
    /// The tenant's own web site, e.g. `www.acme.com`.
    site: String,
    currency: &'static str,
}

struct Lake {
    seed: u64,
    /// Sorted by name: the order rows are written in.
    tenants: Vec<Tenant>,
    file_rows: usize,
}

impl Lake {
    fn new(options: &GenerateOptions) -> Result<Lake> {
        let out = &options.out;
        if !(options.scale.is_finite() && options.scale > 0.0) {
            return Err(invalid(out, format!("scale must be a positive number, got {}", options.scale)));
        }
        if options.tenants.is_empty() {
            return Err(invalid(out, "at least one tenant is needed".into()));
        }
        if options.row_group_rows == 0 || options.file_rows == 0 {
            return Err(invalid(out, "row_group_rows and file_rows must be at least 1".into()));
        }
        let n = options.tenants.len() as f64;
        let total_weight = n * (n + 1.0) / 2.0;
        let mut tenants = Vec::with_capacity(options.tenants.len());
        for (position, name) in options.tenants.iter().enumerate() {
            if name.is_empty() {
                return Err(invalid(out, "a tenant id is empty".into()));
            }
            let share = (n - position as f64) / total_weight;
            let mut rows = [0u64; 6];
            for table in Table::ALL {
                let wanted = (table.rows_per_scale() * options.scale * share).round();
                // Saturating float->int cast; absurd scales are caught by the file count check.
                rows[table as usize] = (wanted as u64).max(1);
            }
            let key = mix(fnv1a(name.as_bytes()) ^ key::TENANT);
            let slug: String =
                name.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect();
            let slug = if slug.is_empty() { format!("tenant{:x}", key & 0xffff) } else { slug };
            let currency = ["USD", "USD", "EUR", "GBP"][(key % 4) as usize];
            tenants.push(Tenant { name: name.clone(), key, rows, site: format!("www.{slug}.com"), currency });
        }
        tenants.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(pair) = tenants.windows(2).find(|pair| pair[0].name == pair[1].name) {
            return Err(invalid(out, format!("tenant {:?} is listed twice", pair[0].name)));
        }
        Ok(Lake { seed: options.seed, tenants, file_rows: options.file_rows })
    }

    /// The part files of a table: the rows of all tenants (tenants in order) cut into files
    /// of exactly `file_rows` rows (the last one fewer), and each file into chunks that never
    /// cross a tenant, a multiple of [`BATCH_ROWS`] of the tenant's rows, or a file.
    fn files(&self, table: Table) -> Vec<Vec<Chunk>> {
        let mut files = Vec::new();
        let mut current: Vec<Chunk> = Vec::new();
        let mut current_rows = 0usize;
        for (tenant, t) in self.tenants.iter().enumerate() {
            let rows = t.rows[table as usize];
            let mut start = 0u64;
            while start < rows {
                if current_rows == self.file_rows {
                    files.push(std::mem::take(&mut current));
                    current_rows = 0;
                }
                let to_batch_end = BATCH_ROWS as u64 - start % BATCH_ROWS as u64;
                let len = (rows - start).min(to_batch_end).min((self.file_rows - current_rows) as u64) as usize;
                current.push(Chunk { tenant, start, len });
                current_rows += len;
                start += len as u64;
            }
        }
        if !current.is_empty() {
            files.push(current);
        }
        files
    }

    fn hash(&self, domain: u64, tenant: &Tenant, index: u64) -> u64 {
        mix(mix(mix(self.seed ^ domain.wrapping_mul(0xA24B_AED4_963E_E407)) ^ tenant.key) ^ index)
    }

    /// A version-4-shaped UUID, a pure function of (seed, table, tenant, row).
    fn uuid(&self, domain: u64, tenant: &Tenant, index: u64) -> Uuid {
        let hi = self.hash(domain, tenant, index);
        Uuid::new(hi, mix(hi ^ 0x5851_F42D_4C95_7F2D))
    }

    fn id(&self, table: Table, tenant: &Tenant, index: u64) -> Uuid {
        self.uuid(key::ID + table as u64, tenant, index)
    }

    /// The company a contact works for (15 % are unknown).
    fn company_of_contact(&self, tenant: &Tenant, contact: u64) -> Option<u64> {
        let h = self.hash(key::CONTACT_COMPANY, tenant, contact);
        (h % 100 >= 15).then(|| (h >> 8) % tenant.rows[Table::Companies as usize])
    }

    /// The company a deal belongs to.
    fn company_of_deal(&self, tenant: &Tenant, deal: u64) -> u64 {
        (self.hash(key::DEAL, tenant, deal) >> 8) % tenant.rows[Table::Companies as usize]
    }

    /// A deal's amount in cents: 1,000.00 to ~250,000.00, skewed towards small deals.
    fn deal_amount_cents(&self, tenant: &Tenant, deal: u64) -> i128 {
        let h = self.hash(key::DEAL, tenant, deal);
        let unit = (h >> 40) as f64 / (1u64 << 24) as f64;
        let amount = 1_000.0 * 250f64.powf(unit * unit);
        (amount * 100.0).round() as i128
    }

    /// When event `index` of a tenant happened: spread evenly over the two years, in order.
    fn event_time(&self, tenant: &Tenant, index: u64) -> i64 {
        let n = i128::from(tenant.rows[Table::Events as usize]);
        let step = (i128::from(SPAN_MICROS) / n).max(1);
        let jitter = i128::from(self.hash(key::EVENT_TIME, tenant, index) % 1_000_000) * step / 1_000_000;
        BASE_MICROS + (i128::from(index) * i128::from(SPAN_MICROS) / n + jitter) as i64
    }

    /// Who is behind web session `session` of a tenant.
    fn session(&self, tenant: &Tenant, session: u64) -> Session {
        let h = self.hash(key::SESSION, tenant, session);
        let (contact, company) = if h % 100 < 65 {
            let contact = (h >> 8) % tenant.rows[Table::Contacts as usize];
            (Some(contact), self.company_of_contact(tenant, contact))
        } else if (h >> 8) % 100 < 25 {
            // Anonymous, but the company is known from its IP address.
            (None, Some((h >> 16) % tenant.rows[Table::Companies as usize]))
        } else {
            (None, None)
        };
        let h2 = mix(h);
        let channel = &CHANNELS[(h2 % CHANNELS.len() as u64) as usize];
        Session {
            contact,
            company,
            channel,
            campaign: (h2 >> 8) % CAMPAIGNS,
            device: DEVICES[((h2 >> 16) % DEVICES.len() as u64) as usize],
            browser: BROWSERS[((h2 >> 24) % BROWSERS.len() as u64) as usize],
            country: COUNTRIES[((h2 >> 32) % COUNTRIES.len() as u64) as usize],
        }
    }

    fn session_text(&self, tenant: &Tenant, session_index: u64) -> SessionText {
        let session = self.session(tenant, session_index);
        SessionText {
            contact_id: session.contact.map(|c| self.id(Table::Contacts, tenant, c)),
            company_id: session.company.map(|c| self.id(Table::Companies, tenant, c)),
            session_id: self.uuid(key::SESSION_ID, tenant, session_index),
            campaign: self.campaign_slug(session.campaign),
            session,
        }
    }

    /// A company's name and domain; domains are unique within a tenant.
    fn company_name(&self, tenant: &Tenant, company: u64) -> (String, String) {
        let n = company + (tenant.key % 1024);
        let prefix = NAME_PREFIXES[(n % 32) as usize];
        let suffix = NAME_SUFFIXES[((n / 32) % 32) as usize];
        let round = n / 1024;
        let name = if round == 0 { format!("{prefix} {suffix}") } else { format!("{prefix} {suffix} {round}") };
        let mut domain = String::with_capacity(24);
        domain.extend(prefix.chars().chain(suffix.chars()).map(|c| c.to_ascii_lowercase()));
        if round > 0 {
            let _ = write!(domain, "{round}");
        }
        domain.push_str(".com");
        (name, domain)
    }

    fn campaign_slug(&self, campaign: u64) -> String {
        let theme = CAMPAIGN_THEMES[(campaign % CAMPAIGN_THEMES.len() as u64) as usize];
        let audience = ["abm", "retargeting"][((campaign / CAMPAIGN_THEMES.len() as u64) % 2) as usize];
        format!("{theme}-{audience}")
    }

    fn campaign_id(&self, tenant: &Tenant, campaign: u64) -> String {
        format!("cmp_{:010}", self.hash(key::CAMPAIGN, tenant, campaign) % 10_000_000_000)
    }

    /// The record batch of one chunk.
    fn batch(&self, table: Table, chunk: &Chunk) -> Result<RecordBatch, ArrowError> {
        let tenant = &self.tenants[chunk.tenant];
        let mut rng = ChaCha8Rng::seed_from_u64(self.hash(key::CHUNK + table as u64, tenant, chunk.start));
        let rows = chunk.start..chunk.start + chunk.len as u64;
        let tenant_ids: ArrayRef =
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(tenant.name.as_str(), chunk.len)));
        let columns = match table {
            Table::Companies => self.companies(tenant, rows, &mut rng, tenant_ids)?,
            Table::Contacts => self.contacts(tenant, rows, &mut rng, tenant_ids)?,
            Table::Events => self.events(tenant, rows, &mut rng, tenant_ids)?,
            Table::Revenue => self.revenue(tenant, rows, &mut rng, tenant_ids)?,
            Table::RevenueAttribution => self.attribution(tenant, rows, &mut rng, tenant_ids)?,
            Table::PaidAds => self.paid_ads(tenant, rows, &mut rng, tenant_ids)?,
        };
        RecordBatch::try_new(table.schema(), columns)
    }

    fn companies(
        &self,
        tenant: &Tenant,
        rows: std::ops::Range<u64>,
        rng: &mut ChaCha8Rng,
        tenant_ids: ArrayRef,
    ) -> Result<Vec<ArrayRef>, ArrowError> {
        let n = (rows.end - rows.start) as usize;
        let mut id = StringBuilder::with_capacity(n, n * 36);
        let mut name = StringBuilder::with_capacity(n, n * 20);
        let mut domain = StringBuilder::with_capacity(n, n * 20);
        let mut industry = StringBuilder::with_capacity(n, n * 12);
        let mut employees = Int32Builder::with_capacity(n);
        let mut country = StringBuilder::with_capacity(n, n * 2);
        let mut is_customer = BooleanBuilder::with_capacity(n);
        let mut properties = StringBuilder::with_capacity(n, n * 120);
        let mut created = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        let mut updated = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        for row in rows {
            id.append_value(self.id(Table::Companies, tenant, row).as_str());
            let (company_name, company_domain) = self.company_name(tenant, row);
            name.append_value(&company_name);
            domain.append_value(&company_domain);
            industry.append_option(rng.random_bool(0.9).then(|| pick(rng, INDUSTRIES)));
            employees.append_option(rng.random_bool(0.85).then(|| 10f64.powf(rng.random_range(0.3..4.7)) as i32));
            country.append_option(rng.random_bool(0.92).then(|| pick(rng, COUNTRIES)));
            let customer = rng.random_bool(0.18);
            is_customer.append_value(customer);
            let _ = write!(
                properties,
                r#"{{"lead_source":"{}","tier":"{}","crm":"{}","crm_id":"{}","owner":"{}@{}","arr_band":"{}"}}"#,
                pick(rng, LEAD_SOURCES),
                pick(rng, TIERS),
                pick(rng, CRMS),
                rng.random_range(100_000u32..999_999),
                pick(rng, FIRST_NAMES).to_ascii_lowercase(),
                &tenant.site[4..],
                if customer { pick(rng, ARR_BANDS) } else { "none" },
            );
            properties.append_value("");
            let created_at = BASE_MICROS + rng.random_range(0..SPAN_MICROS);
            created.append_value(created_at);
            updated.append_value(created_at + rng.random_range(0..120 * DAY_MICROS));
        }
        Ok(vec![
            Arc::new(id.finish()),
            tenant_ids,
            Arc::new(name.finish()),
            Arc::new(domain.finish()),
            Arc::new(industry.finish()),
            Arc::new(employees.finish()),
            Arc::new(country.finish()),
            Arc::new(is_customer.finish()),
            Arc::new(properties.finish()),
            Arc::new(created.finish()),
            Arc::new(updated.finish()),
        ])
    }

    fn contacts(
        &self,
        tenant: &Tenant,
        rows: std::ops::Range<u64>,
        rng: &mut ChaCha8Rng,
        tenant_ids: ArrayRef,
    ) -> Result<Vec<ArrayRef>, ArrowError> {
        let n = (rows.end - rows.start) as usize;
        let mut id = StringBuilder::with_capacity(n, n * 36);
        let mut company = StringBuilder::with_capacity(n, n * 36);
        let mut email = StringBuilder::with_capacity(n, n * 30);
        let mut first = StringBuilder::with_capacity(n, n * 6);
        let mut last = StringBuilder::with_capacity(n, n * 7);
        let mut title = StringBuilder::with_capacity(n, n * 16);
        let mut stage = StringBuilder::with_capacity(n, n * 12);
        let mut unsubscribed = BooleanBuilder::with_capacity(n);
        let mut properties = StringBuilder::with_capacity(n, n * 80);
        let mut created = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        for row in rows {
            id.append_value(self.id(Table::Contacts, tenant, row).as_str());
            let company_index = self.company_of_contact(tenant, row);
            company
                .append_option(company_index.map(|c| self.id(Table::Companies, tenant, c)).as_ref().map(Uuid::as_str));
            let first_name = pick(rng, FIRST_NAMES);
            let last_name = pick(rng, LAST_NAMES);
            let _ = match company_index {
                Some(c) => write!(
                    email,
                    "{}.{}{}@{}",
                    first_name.to_ascii_lowercase(),
                    last_name.to_ascii_lowercase(),
                    row % 97,
                    self.company_name(tenant, c).1
                ),
                None => write!(
                    email,
                    "{}.{}{}@{}",
                    first_name.to_ascii_lowercase(),
                    last_name.to_ascii_lowercase(),
                    row % 997,
                    pick(rng, FREE_MAIL)
                ),
            };
            email.append_value("");
            first.append_value(first_name);
            last.append_option(rng.random_bool(0.95).then_some(last_name));
            title.append_option(rng.random_bool(0.7).then(|| pick(rng, TITLES)));
            stage.append_value(weighted(rng, LIFECYCLE_STAGES));
            unsubscribed.append_value(rng.random_bool(0.08));
            let _ = write!(
                properties,
                r#"{{"source":"{}","persona":"{}","lead_score":{},"opted_in":{}}}"#,
                pick(rng, LEAD_SOURCES),
                pick(rng, PERSONAS),
                rng.random_range(0u32..100),
                rng.random_bool(0.7),
            );
            properties.append_value("");
            created.append_value(BASE_MICROS + rng.random_range(0..SPAN_MICROS));
        }
        Ok(vec![
            Arc::new(id.finish()),
            tenant_ids,
            Arc::new(company.finish()),
            Arc::new(email.finish()),
            Arc::new(first.finish()),
            Arc::new(last.finish()),
            Arc::new(title.finish()),
            Arc::new(stage.finish()),
            Arc::new(unsubscribed.finish()),
            Arc::new(properties.finish()),
            Arc::new(created.finish()),
        ])
    }

    fn events(
        &self,
        tenant: &Tenant,
        rows: std::ops::Range<u64>,
        rng: &mut ChaCha8Rng,
        tenant_ids: ArrayRef,
    ) -> Result<Vec<ArrayRef>, ArrowError> {
        let n = (rows.end - rows.start) as usize;
        let mut id = StringBuilder::with_capacity(n, n * 36);
        let mut contact = StringBuilder::with_capacity(n, n * 24);
        let mut company = StringBuilder::with_capacity(n, n * 24);
        let mut session_id = StringBuilder::with_capacity(n, n * 36);
        let mut event_type = StringBuilder::with_capacity(n, n * 10);
        let mut occurred = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        let mut url = StringBuilder::with_capacity(n, n * 48);
        let mut referrer = StringBuilder::with_capacity(n, n * 20);
        let mut properties = StringBuilder::with_capacity(n, n * 190);
        let mut revenue = Float64Builder::with_capacity(n);
        let mut conversion = BooleanBuilder::with_capacity(n);

        // Consecutive events share a session: its ids and text are made once per session.
        let mut cached: Option<(u64, SessionText)> = None;
        for row in rows {
            let session_index = row / SESSION_EVENTS;
            if cached.as_ref().is_none_or(|c| c.0 != session_index) {
                cached = Some((session_index, self.session_text(tenant, session_index)));
            }
            let Some((_, SessionText { session, contact_id, company_id, session_id: sid, campaign })) = cached.as_ref()
            else {
                continue;
            };
            id.append_value(self.id(Table::Events, tenant, row).as_str());
            contact.append_option(contact_id.as_ref().map(Uuid::as_str));
            company.append_option(company_id.as_ref().map(Uuid::as_str));
            session_id.append_value(sid.as_str());
            let kind = weighted(rng, EVENT_TYPES);
            event_type.append_value(kind);
            occurred.append_value(self.event_time(tenant, row));

            let (path, page_title) = PAGES[rng.random_range(0..PAGES.len())];
            let has_url = match kind {
                "email_open" => false,
                "ad_click" => write!(
                    url,
                    "https://{}/lp/{campaign}?utm_source={}&utm_medium={}&utm_campaign={campaign}",
                    tenant.site, session.channel.source, session.channel.medium
                )
                .is_ok(),
                "email_click" => write!(url, "https://{}{path}?utm_medium=email", tenant.site).is_ok(),
                _ => write!(url, "https://{}{path}", tenant.site).is_ok(),
            };
            if has_url {
                url.append_value("");
            } else {
                url.append_null();
            }
            referrer.append_option(match kind {
                "page_view" if rng.random_bool(0.55) => Some(session.channel.referrer),
                "ad_click" => Some(session.channel.referrer),
                _ => None,
            });
            let _ = write!(
                properties,
                r#"{{"utm_source":"{}","utm_medium":"{}","utm_campaign":"{}","device":"{}","browser":"{}","country":"{}","page_title":"{page_title}"}}"#,
                session.channel.source,
                session.channel.medium,
                if session.channel.medium == "(none)" { "(none)" } else { campaign.as_str() },
                session.device,
                session.browser,
                session.country,
            );
            properties.append_value("");
            let converts =
                matches!(kind, "form_submit" | "demo_request" | "signup" | "meeting_booked") && rng.random_bool(0.6);
            conversion.append_value(converts);
            revenue.append_option(
                (converts && rng.random_bool(0.3))
                    .then(|| (rng.random_range(50.0..5_000.0f64) * 100.0).round() / 100.0),
            );
        }
        Ok(vec![
            Arc::new(id.finish()),
            tenant_ids,
            Arc::new(contact.finish()),
            Arc::new(company.finish()),
            Arc::new(session_id.finish()),
            Arc::new(event_type.finish()),
            Arc::new(occurred.finish()),
            Arc::new(url.finish()),
            Arc::new(referrer.finish()),
            Arc::new(properties.finish()),
            Arc::new(revenue.finish()),
            Arc::new(conversion.finish()),
        ])
    }

    fn revenue(
        &self,
        tenant: &Tenant,
        rows: std::ops::Range<u64>,
        rng: &mut ChaCha8Rng,
        tenant_ids: ArrayRef,
    ) -> Result<Vec<ArrayRef>, ArrowError> {
        let n = (rows.end - rows.start) as usize;
        let mut id = StringBuilder::with_capacity(n, n * 36);
        let mut company = StringBuilder::with_capacity(n, n * 36);
        let mut amount = Decimal128Builder::with_capacity(n).with_precision_and_scale(18, 2)?;
        let mut currency = StringBuilder::with_capacity(n, n * 3);
        let mut stage = StringBuilder::with_capacity(n, n * 12);
        let mut won = BooleanBuilder::with_capacity(n);
        let mut created = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        let mut closed = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        for row in rows {
            id.append_value(self.id(Table::Revenue, tenant, row).as_str());
            company.append_value(self.id(Table::Companies, tenant, self.company_of_deal(tenant, row)).as_str());
            amount.append_value(self.deal_amount_cents(tenant, row));
            currency.append_value(tenant.currency);
            let deal_stage = weighted(rng, DEAL_STAGES);
            stage.append_value(deal_stage);
            won.append_value(deal_stage == "closed_won");
            let created_at = BASE_MICROS + rng.random_range(0..SPAN_MICROS);
            created.append_value(created_at);
            closed.append_option(
                deal_stage
                    .starts_with("closed_")
                    .then(|| created_at + rng.random_range(7 * DAY_MICROS..180 * DAY_MICROS)),
            );
        }
        Ok(vec![
            Arc::new(id.finish()),
            tenant_ids,
            Arc::new(company.finish()),
            Arc::new(amount.finish()),
            Arc::new(currency.finish()),
            Arc::new(stage.finish()),
            Arc::new(won.finish()),
            Arc::new(created.finish()),
            Arc::new(closed.finish()),
        ])
    }

    fn attribution(
        &self,
        tenant: &Tenant,
        rows: std::ops::Range<u64>,
        rng: &mut ChaCha8Rng,
        tenant_ids: ArrayRef,
    ) -> Result<Vec<ArrayRef>, ArrowError> {
        let n = (rows.end - rows.start) as usize;
        let deals = tenant.rows[Table::Revenue as usize];
        let events = tenant.rows[Table::Events as usize];
        let mut id = StringBuilder::with_capacity(n, n * 36);
        let mut deal = StringBuilder::with_capacity(n, n * 36);
        let mut event = StringBuilder::with_capacity(n, n * 36);
        let mut model = StringBuilder::with_capacity(n, n * 10);
        let mut weight = Float64Builder::with_capacity(n);
        let mut attributed = Decimal128Builder::with_capacity(n).with_precision_and_scale(18, 2)?;
        let mut touch = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        for row in rows {
            id.append_value(self.id(Table::RevenueAttribution, tenant, row).as_str());
            // Five touches per deal, deals in a scrambled order.
            let deal_index = mix((row / 5) ^ tenant.key) % deals;
            deal.append_value(self.id(Table::Revenue, tenant, deal_index).as_str());
            let event_index = rng.random_range(0..events);
            event.append_value(self.id(Table::Events, tenant, event_index).as_str());
            let attribution_model = ATTRIBUTION_MODELS[(row % ATTRIBUTION_MODELS.len() as u64) as usize];
            model.append_value(attribution_model);
            let w = match attribution_model {
                "linear" => 0.2,
                "first_touch" | "last_touch" => {
                    if rng.random_bool(0.2) {
                        1.0
                    } else {
                        0.0
                    }
                }
                _ => (rng.random_range(0.0..1.0f64) * 10_000.0).round() / 10_000.0,
            };
            weight.append_value(w);
            attributed.append_value((self.deal_amount_cents(tenant, deal_index) as f64 * w).round() as i128);
            touch.append_value(self.event_time(tenant, event_index));
        }
        Ok(vec![
            Arc::new(id.finish()),
            tenant_ids,
            Arc::new(deal.finish()),
            Arc::new(event.finish()),
            Arc::new(model.finish()),
            Arc::new(weight.finish()),
            Arc::new(attributed.finish()),
            Arc::new(touch.finish()),
        ])
    }

    fn paid_ads(
        &self,
        tenant: &Tenant,
        rows: std::ops::Range<u64>,
        rng: &mut ChaCha8Rng,
        tenant_ids: ArrayRef,
    ) -> Result<Vec<ArrayRef>, ArrowError> {
        let n = (rows.end - rows.start) as usize;
        let total = tenant.rows[Table::PaidAds as usize];
        let mut id = StringBuilder::with_capacity(n, n * 36);
        let mut date = Date32Builder::with_capacity(n);
        let mut platform = StringBuilder::with_capacity(n, n * 11);
        let mut campaign_id = StringBuilder::with_capacity(n, n * 14);
        let mut campaign_name = StringBuilder::with_capacity(n, n * 28);
        let mut impressions = Int64Builder::with_capacity(n);
        let mut clicks = Int64Builder::with_capacity(n);
        let mut spend = Decimal128Builder::with_capacity(n).with_precision_and_scale(18, 2)?;
        let mut conversions = Int32Builder::with_capacity(n);
        let mut currency = StringBuilder::with_capacity(n, n * 3);
        for row in rows {
            id.append_value(self.id(Table::PaidAds, tenant, row).as_str());
            let day = (i128::from(row) * i128::from(SPAN_DAYS) / i128::from(total)) as i32;
            date.append_value(BASE_DAY + day);
            let campaign = rng.random_range(0..CAMPAIGNS);
            platform.append_value(PLATFORMS[(campaign % PLATFORMS.len() as u64) as usize]);
            campaign_id.append_value(self.campaign_id(tenant, campaign));
            campaign_name.append_value(self.campaign_slug(campaign));
            let shown = 10f64.powf(rng.random_range(2.0..5.0)) as i64;
            let clicked = (shown as f64 * rng.random_range(0.002..0.03)) as i64;
            let cpc_cents = rng.random_range(40..1_500i64);
            impressions.append_value(shown);
            clicks.append_value(clicked);
            spend.append_value(i128::from(clicked * cpc_cents));
            conversions.append_value((clicked as f64 * rng.random_range(0.0..0.1)) as i32);
            currency.append_value(tenant.currency);
        }
        Ok(vec![
            Arc::new(id.finish()),
            tenant_ids,
            Arc::new(date.finish()),
            Arc::new(platform.finish()),
            Arc::new(campaign_id.finish()),
            Arc::new(campaign_name.finish()),
            Arc::new(impressions.finish()),
            Arc::new(clicks.finish()),
            Arc::new(spend.finish()),
            Arc::new(conversions.finish()),
            Arc::new(currency.finish()),
        ])
    }
}

/// Who is behind a web session and how they arrived: shared by all its events.
struct Session {
    contact: Option<u64>,
    company: Option<u64>,
    channel: &'static Channel,
    campaign: u64,
    device: &'static str,
    browser: &'static str,
    country: &'static str,
}

/// A session with its ids formatted, as the events of the session write them.
struct SessionText {
    session: Session,
    contact_id: Option<Uuid>,
    company_id: Option<Uuid>,
    session_id: Uuid,
    campaign: String,
}

struct Channel {
    source: &'static str,
    medium: &'static str,
    referrer: &'static str,
}

/// A UUID formatted as text, without an allocation.
#[derive(Clone, Copy)]
struct Uuid([u8; 36]);

impl Uuid {
    fn new(hi: u64, lo: u64) -> Uuid {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&hi.to_be_bytes());
        bytes[8..].copy_from_slice(&lo.to_be_bytes());
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let mut text = [b'-'; 36];
        let mut at = 0;
        for (i, byte) in bytes.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                at += 1;
            }
            text[at] = HEX[usize::from(byte >> 4)];
            text[at + 1] = HEX[usize::from(byte & 0x0f)];
            at += 2;
        }
        Uuid(text)
    }

    fn as_str(&self) -> &str {
        // Always ASCII hex and dashes.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// splitmix64's finalizer: a fast, well-mixed 64-bit hash step.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn pick<'a>(rng: &mut ChaCha8Rng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

/// Picks an item with probability proportional to its weight (weights sum to 1,000).
fn weighted(rng: &mut ChaCha8Rng, items: &[(&'static str, u32)]) -> &'static str {
    let mut roll = rng.random_range(0..WEIGHT_TOTAL);
    for (item, w) in items {
        if roll < *w {
            return item;
        }
        roll -= w;
    }
    items[items.len() - 1].0
}

const WEIGHT_TOTAL: u32 = 1_000;

// ---------------------------------------------------------------------------------------------
// Vocabulary. Plain ASCII without quotes or backslashes, so it can be put into JSON as is.
// ---------------------------------------------------------------------------------------------

const NAME_PREFIXES: [&str; 32] = [
    "Acme", "Apex", "Blue", "Bright", "Cedar", "Cloud", "Core", "Delta", "Echo", "Ever", "Falcon", "Globe", "Green",
    "Harbor", "Iron", "Jade", "Kite", "Lumen", "Maple", "Nova", "Orbit", "Peak", "Quant", "River", "Sage", "Silver",
    "Summit", "Terra", "Union", "Vertex", "Wave", "Zen",
];
const NAME_SUFFIXES: [&str; 32] = [
    "Analytics",
    "Bank",
    "Bio",
    "Capital",
    "Cloud",
    "Consulting",
    "Data",
    "Designs",
    "Dynamics",
    "Energy",
    "Foods",
    "Freight",
    "Group",
    "Health",
    "Holdings",
    "Industries",
    "Insights",
    "Labs",
    "Logistics",
    "Media",
    "Motors",
    "Networks",
    "Partners",
    "Pharma",
    "Retail",
    "Robotics",
    "Security",
    "Software",
    "Systems",
    "Telecom",
    "Travel",
    "Works",
];
const INDUSTRIES: &[&str] = &[
    "software",
    "financial_services",
    "healthcare",
    "manufacturing",
    "retail",
    "education",
    "media",
    "logistics",
    "energy",
    "telecommunications",
    "consulting",
    "real_estate",
];
const COUNTRIES: &[&str] = &["US", "US", "US", "GB", "DE", "FR", "NL", "DK", "SE", "CA", "AU", "ES", "IN", "BR", "JP"];
const LEAD_SOURCES: &[&str] = &["inbound", "outbound", "paid_search", "paid_social", "event", "partner", "referral"];
const TIERS: &[&str] = &["smb", "mid_market", "enterprise", "strategic"];
const CRMS: &[&str] = &["hubspot", "salesforce", "pipedrive"];
const ARR_BANDS: &[&str] = &["0-10k", "10k-50k", "50k-250k", "250k+"];
const FIRST_NAMES: &[&str] = &[
    "Anna", "Ben", "Carla", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kara", "Liam", "Maria",
    "Noah", "Olivia", "Pedro", "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera", "William", "Xenia", "Yusuf", "Zoe",
];
const LAST_NAMES: &[&str] = &[
    "Andersen", "Brown", "Chen", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ito", "Jensen", "Kowalski",
    "Larsen", "Martin", "Nielsen", "Okafor", "Patel", "Rossi", "Schmidt", "Smith", "Tanaka", "Usman", "Varga", "Weber",
    "Young",
];
const FREE_MAIL: &[&str] = &["gmail.com", "outlook.com", "yahoo.com", "proton.me"];
const TITLES: &[&str] = &[
    "CMO",
    "VP Marketing",
    "Head of Growth",
    "Marketing Manager",
    "Demand Generation Manager",
    "Marketing Ops Specialist",
    "Content Lead",
    "CEO",
    "CFO",
    "Sales Director",
    "Account Executive",
    "Data Analyst",
    "RevOps Manager",
];
const PERSONAS: &[&str] = &["decision_maker", "champion", "influencer", "user", "gatekeeper"];
const LIFECYCLE_STAGES: &[(&str, u32)] = &[
    ("subscriber", 300),
    ("lead", 300),
    ("marketing_qualified_lead", 150),
    ("sales_qualified_lead", 100),
    ("opportunity", 70),
    ("customer", 60),
    ("evangelist", 20),
];
const EVENT_TYPES: &[(&str, u32)] = &[
    ("page_view", 550),
    ("email_open", 120),
    ("email_click", 50),
    ("ad_click", 80),
    ("form_submit", 40),
    ("video_play", 35),
    ("content_download", 30),
    ("chat_started", 20),
    ("webinar_join", 15),
    ("demo_request", 15),
    ("signup", 20),
    ("meeting_booked", 10),
    ("pricing_view", 15),
];
const PAGES: &[(&str, &str)] = &[
    ("/", "Home"),
    ("/pricing", "Pricing"),
    ("/product", "Product"),
    ("/product/attribution", "Revenue attribution"),
    ("/product/journeys", "Customer journeys"),
    ("/customers", "Customer stories"),
    ("/blog/b2b-attribution-guide", "The B2B attribution guide"),
    ("/blog/multi-touch-models", "Multi-touch models explained"),
    ("/resources/benchmark-report", "Benchmark report"),
    ("/demo", "Book a demo"),
    ("/signup", "Sign up"),
    ("/about", "About us"),
    ("/careers", "Careers"),
    ("/integrations/hubspot", "HubSpot integration"),
    ("/integrations/salesforce", "Salesforce integration"),
];
const CHANNELS: [Channel; 10] = [
    Channel { source: "google", medium: "organic", referrer: "https://www.google.com/" },
    Channel { source: "google", medium: "organic", referrer: "https://www.google.com/" },
    Channel { source: "google", medium: "cpc", referrer: "https://www.google.com/" },
    Channel { source: "linkedin", medium: "paid_social", referrer: "https://www.linkedin.com/" },
    Channel { source: "linkedin", medium: "social", referrer: "https://www.linkedin.com/" },
    Channel { source: "bing", medium: "cpc", referrer: "https://www.bing.com/" },
    Channel { source: "facebook", medium: "paid_social", referrer: "https://www.facebook.com/" },
    Channel { source: "newsletter", medium: "email", referrer: "https://mail.google.com/" },
    Channel { source: "g2", medium: "referral", referrer: "https://www.g2.com/" },
    Channel { source: "(direct)", medium: "(none)", referrer: "https://duckduckgo.com/" },
];
const DEVICES: &[&str] = &["desktop", "desktop", "desktop", "mobile", "mobile", "tablet"];
const BROWSERS: &[&str] = &["chrome", "chrome", "chrome", "safari", "safari", "edge", "firefox"];
const CAMPAIGN_THEMES: [&str; 20] = [
    "brand-awareness",
    "q1-pipeline-push",
    "q2-pipeline-push",
    "q3-pipeline-push",
    "q4-pipeline-push",
    "attribution-ebook",
    "benchmark-report",
    "webinar-series",
    "product-launch",
    "competitor-conquest",
    "free-trial",
    "demo-request",
    "customer-stories",
    "revops-summit",
    "cmo-roundtable",
    "intent-surge",
    "abm-tier1",
    "abm-tier2",
    "partner-cobrand",
    "year-in-review",
];
const PLATFORMS: &[&str] = &["google_ads", "linkedin_ads", "meta_ads", "bing_ads"];
const DEAL_STAGES: &[(&str, u32)] = &[
    ("prospecting", 150),
    ("qualification", 120),
    ("proposal", 100),
    ("negotiation", 80),
    ("closed_won", 300),
    ("closed_lost", 250),
];
const ATTRIBUTION_MODELS: &[&str] = &["first_touch", "last_touch", "linear", "u_shaped", "time_decay"];

#[cfg(test)]
mod tests {
    use super::*;

    fn options(scale: f64) -> GenerateOptions {
        GenerateOptions { scale, ..GenerateOptions::default() }
    }

    #[test]
    fn shares_follow_tenant_order_and_every_tenant_gets_rows() {
        let lake = Lake::new(&options(0.001)).unwrap();
        let names: Vec<_> = lake.tenants.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["acme", "globex", "initech", "umbrella"]);
        let events: Vec<_> = lake.tenants.iter().map(|t| t.rows[Table::Events as usize]).collect();
        assert_eq!(events, [400, 300, 200, 100]);
        for t in &lake.tenants {
            assert!(t.rows.iter().all(|&rows| rows >= 1), "{}: {:?}", t.name, t.rows);
        }
        let lake = Lake::new(&options(10.0)).unwrap();
        let events: u64 = lake.tenants.iter().map(|t| t.rows[Table::Events as usize]).sum();
        assert_eq!(events, 10_000_000);
    }

    #[test]
    fn invalid_options_are_rejected() {
        for bad in [
            GenerateOptions { scale: 0.0, ..GenerateOptions::default() },
            GenerateOptions { scale: f64::NAN, ..GenerateOptions::default() },
            GenerateOptions { tenants: vec![], ..GenerateOptions::default() },
            GenerateOptions { tenants: vec!["a".into(), "a".into()], ..GenerateOptions::default() },
            GenerateOptions { tenants: vec![String::new()], ..GenerateOptions::default() },
            GenerateOptions { row_group_rows: 0, ..GenerateOptions::default() },
            GenerateOptions { file_rows: 0, ..GenerateOptions::default() },
        ] {
            assert!(Lake::new(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn files_hold_every_row_once_in_tenant_order_within_the_size_limit() {
        for (scale, file_rows) in [(0.05, 7_000), (0.5, 100_000), (3.0, DEFAULT_FILE_ROWS)] {
            let options = GenerateOptions { scale, file_rows, ..GenerateOptions::default() };
            let lake = Lake::new(&options).unwrap();
            let files = lake.files(Table::Events);
            assert!(files.len() > 1);
            let mut expected = (0usize, 0u64);
            for (index, file) in files.iter().enumerate() {
                let rows: usize = file.iter().map(|c| c.len).sum();
                if index + 1 < files.len() {
                    assert_eq!(rows, file_rows);
                } else {
                    assert!(rows <= file_rows);
                }
                for chunk in file {
                    if chunk.tenant != expected.0 {
                        assert_eq!(expected.1, lake.tenants[expected.0].rows[Table::Events as usize]);
                        expected = (chunk.tenant, 0);
                    }
                    assert_eq!(chunk.start, expected.1);
                    let batch = BATCH_ROWS as u64;
                    assert_eq!(chunk.start / batch, (chunk.start + chunk.len as u64 - 1) / batch, "{chunk:?}");
                    expected.1 += chunk.len as u64;
                }
            }
            assert_eq!(expected, (3, lake.tenants[3].rows[Table::Events as usize]));
        }
    }

    #[test]
    fn weights_sum_to_the_total() {
        for items in [LIFECYCLE_STAGES, EVENT_TYPES, DEAL_STAGES] {
            assert_eq!(items.iter().map(|(_, w)| w).sum::<u32>(), WEIGHT_TOTAL);
        }
    }

    #[test]
    fn uuids_are_formatted_like_uuids() {
        let uuid = Uuid::new(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
        assert_eq!(uuid.as_str(), "01234567-89ab-4def-bedc-ba9876543210");
    }

    #[test]
    fn part_names_parse_and_only_part_files_are_stale() {
        assert_eq!(part_number(&part_name(12)), Some((12, false)));
        assert_eq!(part_number("part-00012.parquet.tmp"), Some((12, true)));
        for other in ["part-12.parquet", "part-0001x.parquet", "notes.txt", "part-00001.csv", "xpart-00001.parquet"] {
            assert_eq!(part_number(other), None, "{other}");
        }
    }

    #[test]
    fn batches_match_their_schema_and_json_properties_parse() {
        let lake = Lake::new(&options(0.002)).unwrap();
        for table in Table::ALL {
            let chunk = Chunk { tenant: 1, start: 0, len: 50.min(lake.tenants[1].rows[table as usize] as usize) };
            let batch = lake.batch(table, &chunk).unwrap();
            assert_eq!(batch.num_rows(), chunk.len);
            if let Some((index, _)) = batch.schema().column_with_name("properties") {
                let column = batch.column(index).as_any().downcast_ref::<StringArray>().unwrap();
                for value in column.iter().flatten() {
                    let parsed: serde_json::Value = serde_json::from_str(value).unwrap();
                    assert!(parsed.is_object(), "{value}");
                }
            }
        }
        assert_eq!(Table::Events.schema().fields().len(), 12);
    }

    #[test]
    fn events_are_about_450_bytes_per_row_uncompressed() {
        let lake = Lake::new(&options(0.01)).unwrap();
        let batch = lake.batch(Table::Events, &Chunk { tenant: 0, start: 0, len: 2_000 }).unwrap();
        let bytes: usize = batch.columns().iter().map(|c| c.to_data().get_slice_memory_size().unwrap()).sum();
        let per_row = bytes / batch.num_rows();
        assert!((350..=600).contains(&per_row), "{per_row} bytes per row");
    }
}
