//! The schema: every section and field of the config, documented, with its defaults.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------
// The schema
// ---------------------------------------------------------------------------------------------

/// A whole byob deployment: where rows come from, which tables, which customers' buckets,
/// and how to export.
///
/// ```toml
/// [source]
/// type = "parquet"
/// path = "lake"
///
/// [[tables]]
/// name = "companies"
///
/// [[destinations]]
/// id = "acme"
/// tenant = "acme"
/// bucket = "acme-data-exports"
/// role_arn = "arn:aws:iam::123456789012:role/byob-writer"
/// external_id = "byob-acme-5f1c2d"
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Config {
    /// Where rows come from (ours, per table, filtered to each destination's tenant), e.g.
    /// `[source] type = "parquet", path = "lake"`.
    pub source: SourceConfig,
    /// The tables every destination receives (unless it picks a subset), e.g.
    /// `[[tables]] name = "companies"`; `tables = ["companies", "people"]` is shorthand for
    /// tables with names only. At least one.
    pub tables: Vec<TableConfig>,
    /// The customers' buckets (or local folders standing in for them), one entry each, e.g.
    /// `[[destinations]] id = "acme"`. At least one.
    pub destinations: Vec<DestinationConfig>,
    /// How exports run: parallelism, upload part size, encoder tuning. Optional: every field
    /// has a default.
    pub export: ExportConfig,
    /// Our own AWS side: the destination-writer role (hop 1 of the role chain), region and
    /// endpoint. Optional.
    pub aws: AwsConfig,
    /// Where byob keeps its own record of finished runs (for `previous_run`). Optional.
    pub state: StateConfig,
}

/// Where rows come from. Tagged by `type`; each kind has its own struct, so adding a kind is
/// a new variant, its struct, and one line in the loader's dispatch ([`SourceConfig::TYPES`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum SourceConfig {
    /// A Parquet lake: `<path>/<table>/*.parquet`, e.g. what `byob generate` writes.
    Parquet(ParquetSource),
    /// A PostgreSQL database: each table (or a per-table query) read with binary COPY.
    Postgres(PostgresSource),
}

impl SourceConfig {
    /// The values of `source.type`.
    pub const TYPES: &'static [&'static str] = &["parquet", "postgres"];

    /// The column holding the tenant id, unless a table overrides it.
    pub fn tenant_column(&self) -> &str {
        match self {
            SourceConfig::Parquet(p) => &p.tenant_column,
            SourceConfig::Postgres(p) => &p.tenant_column,
        }
    }

    pub(super) fn resolve_paths(&mut self, base: &Path) {
        match self {
            SourceConfig::Parquet(p) => resolve(base, &mut p.path),
            SourceConfig::Postgres(p) => {
                if let Some(ca_file) = &mut p.ca_file {
                    resolve(base, ca_file);
                }
            }
        }
    }
}

/// `source.type = "parquet"`: a folder of Parquet files, one sub-folder per table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParquetSource {
    /// The lake's root folder; table `t` is read from `<path>/t/` (all `*.parquet` files in
    /// it) unless the table sets its own `path`. Relative paths are relative to the config
    /// file's folder; an `s3://bucket/prefix` URL is kept as it is. Example: `"lake"`.
    pub path: PathBuf,
    /// The column that holds the tenant id; each destination receives only the rows whose
    /// value equals its `tenant`. Example: `"tenant_id"` (the default).
    #[serde(default = "default_tenant_column")]
    pub tenant_column: String,
}

pub(super) fn default_tenant_column() -> String {
    "tenant_id".to_owned()
}

/// `source.type = "postgres"`: a PostgreSQL database (RDS, Aurora, self-hosted). Each table
/// is `<schema>.<name>` (or the table's own `query`), read with `COPY ... TO STDOUT (FORMAT
/// binary)` inside a read-only transaction; see README.md, "PostgreSQL source".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostgresSource {
    /// The connection as a URL, for local runs and tests; a production deployment uses
    /// `secret` so no password sits in the config. Exactly one of `url` and `secret`. Its
    /// `sslmode` may be `disable`, `prefer` (default) or `require`. Never shown in messages
    /// or logs. Example: `"postgresql://byob:pw@127.0.0.1:5432/platform?sslmode=disable"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<SecretUrl>,
    /// An AWS Secrets Manager secret (ARN or name) in the RDS format (`username`,
    /// `password`, `host`, `port`, `dbname`, `engine`), as RDS creates for a database.
    /// Exactly one of `url` and `secret`. Example:
    /// `"arn:aws:secretsmanager:eu-west-1:111122223333:secret:byob/platform-db-AbCdEf"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The schema holding the tables (a table's name is its relation name in it, matched
    /// exactly, case included). Example: `"public"` (the default).
    #[serde(default = "default_pg_schema")]
    pub schema: String,
    /// The column that holds the tenant id; each destination receives only the rows whose
    /// value equals its `tenant`. Example: `"tenant_id"` (the default).
    #[serde(default = "default_tenant_column")]
    pub tenant_column: String,
    /// TLS: `"disable"`, `"prefer"` (TLS when the server offers it) or `"require"`;
    /// overrides the URL's `sslmode`. When TLS is used the server's certificate and host
    /// name are always verified. Example: `"require"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsMode>,
    /// A PEM file of extra trusted root certificates, e.g. Amazon RDS's global bundle;
    /// relative to the config file's folder. Example: `"certs/rds-global-bundle.pem"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

pub(super) fn default_pg_schema() -> String {
    "public".to_owned()
}

impl PostgresSource {
    /// A source connecting with `url`, everything else default.
    pub fn with_url(url: impl Into<String>) -> Self {
        PostgresSource {
            url: Some(SecretUrl::new(url)),
            secret: None,
            schema: default_pg_schema(),
            tenant_column: default_tenant_column(),
            tls: None,
            ca_file: None,
        }
    }
}

/// A connection URL that may hold a password: `Debug` never shows it, serde reads and
/// writes it as a plain string.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        SecretUrl(url.into())
    }

    /// The URL itself, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretUrl(<redacted>)")
    }
}

/// Whether a PostgreSQL connection uses TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Never.
    Disable,
    /// When the server offers it (a failed certificate check is still an error).
    Prefer,
    /// Always; connecting fails when the server does not offer TLS.
    Require,
}

/// One table of the dump.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableConfig {
    /// The table's name: its folder in the customer's bucket, its file names and the name of
    /// the loaded warehouse table. 1-63 ASCII letters, digits and `_`, not starting with a
    /// digit; unique ignoring case (warehouses and some file systems ignore case). Example:
    /// `"companies"`.
    pub name: String,
    /// Overrides the source's `tenant_column` for this table, for tables whose tenant
    /// column is named differently. Example: `"account_id"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_column: Option<String>,
    /// Exports only these columns, in this order, instead of all of them: keeps internal
    /// columns out of customers' buckets. Example: `["company_id", "name", "domain"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// Reads this table from this folder instead of `<source.path>/<name>`. Relative paths
    /// are relative to the config file's folder (like every path in the config). Example:
    /// `"lake/crm/companies_v2"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// PostgreSQL sources: read the rows of this SELECT instead of the table
    /// `<source.schema>.<name>` (joins, renames, casts of types byob cannot export). It is
    /// wrapped as a subquery and filtered by the tenant column, which it must return; it
    /// runs in a read-only transaction. Example:
    /// `"SELECT c.id AS company_id, c.tenant_id, c.name, c.ip::text AS ip FROM crm.companies c"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// PostgreSQL sources: split the table into slices by ranges of this column (smallint,
    /// integer, bigint, timestamp, timestamptz or date; ideally indexed together with the
    /// tenant column) instead of by `ctid` page ranges; needed to split a `query`. Example:
    /// `"occurred_at"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice_key: Option<String>,
    /// `"full"` (default): every run dumps every row. `"incremental"`: after a first full dump,
    /// each run dumps only the tenant's rows whose `watermark` grew since the last run the
    /// destination completed, and the loader merges them in (by `primary_key`, or by replacing
    /// the range). Needs `watermark`. Example: `"incremental"`.
    #[serde(default, skip_serializing_if = "is_full")]
    pub mode: TableMode,
    /// The column whose value only grows when a row is written (an `updated_at` timestamp, an
    /// ingestion sequence; integer, timestamp or date): what an incremental run filters on
    /// (`watermark > last run's high-water AND watermark <= this run's`). Ideally indexed
    /// together with the tenant column (PostgreSQL), or the files sorted by it (lake: row-group
    /// statistics skip what a run does not need). Example: `"updated_at"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
    /// For tables whose rows change: the columns that identify a row. The loader replaces the
    /// rows of an incremental dump by these columns (an updated row's old version goes). Without
    /// one, rows are only ever added, and the loader replaces the dump's watermark range.
    /// Example: `["event_id"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<Vec<String>>,
    /// Re-export this much before the last run's high-water, for rows written late with a
    /// smaller watermark (a transaction that committed after the run was planned): a duration
    /// for timestamp and date watermarks, a number for integer ones. The loader's merge makes
    /// the overlap harmless. Example: `"30m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookback: Option<Lookback>,
}

impl TableConfig {
    /// A table with only a name: everything else defaults.
    pub fn named(name: impl Into<String>) -> Self {
        TableConfig {
            name: name.into(),
            tenant_column: None,
            columns: None,
            path: None,
            query: None,
            slice_key: None,
            mode: TableMode::Full,
            watermark: None,
            primary_key: None,
            lookback: None,
        }
    }

    /// The tenant column of this table: its own override, or the source's.
    pub fn tenant_column<'a>(&'a self, source: &'a SourceConfig) -> &'a str {
        self.tenant_column.as_deref().unwrap_or_else(|| source.tenant_column())
    }
}

/// Server-side encryption of every object written to a destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", try_from = "RawEncryption")]
pub enum Encryption {
    /// `{ type = "sse-s3" }`: S3-managed keys (AES256).
    SseS3,
    /// `{ type = "sse-kms", kms_key_id = "arn:aws:kms:eu-west-1:123456789012:key/..." }`:
    /// the customer's KMS key; their key policy must let the customer's role use it.
    SseKms {
        /// The key's id, ARN, alias name or alias ARN; an ARN works across accounts, so
        /// prefer it. Example: `"arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"`.
        kms_key_id: String,
    },
}

/// The flat shape `encryption` is read through, so unknown fields inside it are reported
/// like everywhere else and a missing `kms_key_id` gets a clear message.
#[derive(Deserialize)]
pub(super) struct RawEncryption {
    #[serde(rename = "type")]
    kind: EncryptionKind,
    #[serde(default)]
    kms_key_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum EncryptionKind {
    SseS3,
    SseKms,
}

impl TryFrom<RawEncryption> for Encryption {
    type Error = String;

    fn try_from(raw: RawEncryption) -> Result<Self, Self::Error> {
        match (raw.kind, raw.kms_key_id) {
            (EncryptionKind::SseS3, None) => Ok(Encryption::SseS3),
            (EncryptionKind::SseS3, Some(_)) => {
                Err("kms_key_id applies to { type = \"sse-kms\" } only; sse-s3 uses S3's own keys".to_owned())
            }
            (EncryptionKind::SseKms, Some(kms_key_id)) => Ok(Encryption::SseKms { kms_key_id }),
            (EncryptionKind::SseKms, None) => Err(
                "sse-kms needs kms_key_id, the customer's key, e.g. { type = \"sse-kms\", kms_key_id = \"arn:aws:kms:eu-west-1:123456789012:key/...\" }"
                    .to_owned(),
            ),
        }
    }
}

/// How a destination's files are numbered within each table folder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardNumbering {
    /// By slice: slice `i` from `i x 1,000,000` (parallel slices, gaps between them).
    #[default]
    Slices,
    /// 0, 1, 2, ... in every table folder (one export task per table).
    Consecutive,
}

impl ShardNumbering {
    fn is_default(&self) -> bool {
        *self == ShardNumbering::Slices
    }
}

/// One customer's bucket (or a local folder standing in for one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationConfig {
    /// Our id for this destination: used in STS session names (so the customer's CloudTrail
    /// shows who wrote), in our state and in logs. 1-64 lowercase letters, digits, `_` and
    /// `-`, starting with a letter or digit; unique. Example: `"acme-eu"`.
    pub id: String,
    /// The tenant whose rows this destination receives: compared with each table's tenant
    /// column. Example: `"acme"`.
    pub tenant: String,
    /// The customer's S3 bucket. Exactly one of `bucket` and `folder`. Example:
    /// `"acme-data-exports"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// A local folder standing in for a bucket (demo, tests, a laptop run with no AWS).
    /// Exactly one of `bucket` and `folder`; relative to the config file's folder. Example:
    /// `"out/acme"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<PathBuf>,
    /// The folder inside the bucket that receives everything (`<prefix>/receipt.json`,
    /// `<prefix>/<run>/...`); empty for the bucket root. No leading `/`; a trailing `/` is
    /// dropped on load. Example: `"exports/byob"`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// The bucket's region, when it differs from `aws.region` and the environment's. Example:
    /// `"eu-west-1"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// An S3-compatible endpoint instead of AWS S3 (MinIO, moto); path-style addressing is
    /// used. Example: `"http://127.0.0.1:5000"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// The customer's role that byob assumes (after `aws.writer_role_arn`) to write into the
    /// bucket; required with `bucket`. Its trust policy names our writer role and this
    /// destination's `external_id`. Example: `"arn:aws:iam::123456789012:role/byob-writer"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The ExternalId sent when assuming `role_arn`: WE generate it, unique per customer,
    /// and the customer's trust policy requires it (the confused-deputy guard). Required with
    /// `bucket`; 2-1224 characters of letters, digits and `_+=,.@:/-`. Not a secret. Example:
    /// `"byob-acme-7f3e9c2a41d8"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The 12-digit account that must own the bucket; every write sends it as
    /// `ExpectedBucketOwner`, so a look-alike bucket in another account never receives data.
    /// Defaults to the account in `role_arn`. Example: `"123456789012"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_bucket_owner: Option<String>,
    /// File format and codec. Default `{ type = "parquet", codec = "gzip" }` (Dreamdata's
    /// `.parquet.gz`). Example: `{ type = "csv", codec = "gzip", delimiter = ";" }`.
    #[serde(default = "default_format")]
    pub format: Format,
    /// A file is closed and the next one started after this many rows, so loaders can work
    /// file by file. At least 1. Example: `1000000` (the default).
    #[serde(default = "default_max_file_rows")]
    pub max_file_rows: u64,
    /// A file is closed once it reaches this size (it may exceed it by one row group). At
    /// least 1 MiB. Example: `"256MiB"` (the default).
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: ByteSize,
    /// Where each file goes, relative to `prefix`; placeholders `{run}`, `{table}`,
    /// `{shard}`, `{YYYY}`, `{MM}`, `{DD}`, `{HH}`, `{ext}` (see
    /// [`KeyTemplate`]). Default
    /// `"{run}/{table}/{table}_{shard}.{ext}"` (Dreamdata's layout). Example:
    /// `"{table}/{YYYY}/{MM}/{run}/{table}_{shard}.{ext}"`.
    #[serde(default = "default_key_template")]
    pub key_template: String,
    /// How a table's files are numbered. `"slices"` (the default): slice `i` numbers its files
    /// from `i x 1,000,000`, so the slices of a big table export in parallel; numbers are unique
    /// and ordered, with gaps between slices (the receipt lists every file). `"consecutive"`:
    /// every table's files are numbered 0, 1, 2, ... like Dreamdata's (BigQuery's), for a consumer
    /// that builds names from a folder and `total_file_count`; each table then exports as one
    /// task, without parallel slices. Example: `"consecutive"`.
    #[serde(default, skip_serializing_if = "ShardNumbering::is_default")]
    pub shard_numbering: ShardNumbering,
    /// Server-side encryption for every object, when the bucket's default is not enough.
    /// Example: `{ type = "sse-kms", kms_key_id = "arn:aws:kms:..." }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
    /// Sends the `bucket-owner-full-control` canned ACL, for buckets that still use ACLs
    /// (object ownership "object writer") so the customer owns what we write. Example: `true`.
    #[serde(default)]
    pub bucket_owner_full_control: bool,
    /// Object tags put on every file and receipt, e.g. for the customer's lifecycle rules. At
    /// most 10 (S3's limit); keys 1-128 and values up to 256 characters; `aws:` keys are
    /// reserved. Example: `{ source = "byob", team = "data" }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Only these tables (names from `tables`), for a customer that buys a subset; default
    /// all. Example: `["companies", "events"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<Vec<String>>,
    /// When this destination is dumped: `"hourly"`, `"twice-daily"` (04:00 and 15:00 UTC),
    /// `"daily"` (04:00 UTC) or five-field cron in UTC (see [`Schedule`]). A scheduled run plans
    /// only the destinations due at its minute; without a schedule, a destination is due at every
    /// run. Either every destination has one or none does. Example: `"hourly"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Writes Adobe Experience Platform's manifest, `<prefix>/manifest-<id>-<run>.json`
    /// (`flowRunId`, `scheduledTime`, `exportResults[].sinkPath/name/size`), just before each
    /// receipt, for consumers built on AEP's exports. Example: `true` (default `false`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub manifest: bool,
    /// Splits each table's files by the day or month of a date or timestamp column (UTC), each
    /// partition its own file sequence, named by `{partition}` in `key_template` (`2024-01-02`
    /// or `2024-01`; NULL: `__HIVE_DEFAULT_PARTITION__`). A table without the column is one
    /// partition, `all`. Example: `{ column = "occurred_at", grain = "day" }` with
    /// `key_template = "{run}/{table}/occurred_at={partition}/{table}_{shard}.{ext}"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_by: Option<PartitionBy>,
    /// The customer's OpenPGP public key (ASCII-armored), as AEP lets customers attach one:
    /// every file is encrypted to it after compression (`events_000000000000.parquet.gz.gpg`);
    /// the receipt stays plain and names the key's fingerprint. RSA of 2048+ bits or Curve25519,
    /// not expired or revoked: `byob config validate` refuses a key that does not parse and shows
    /// whether it is usable now; an unusable key fails this destination's exports alone (and
    /// `byob check`), never the rest of the config. Example:
    /// `"""-----BEGIN PGP PUBLIC KEY BLOCK----- ..."""`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgp_public_key: Option<String>,
    /// For tables with `mode = "incremental"`: dump them in full again once this long has
    /// passed since their last full dump (`s`, `m`, `h` or `d`), so deletes and anything an
    /// incremental run cannot see are caught up. Without it, only the first run (and a change
    /// of the table's columns or watermark) is full. Example: `"7d"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_every: Option<Span>,
}

/// A destination's date partitioning of table files.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionBy {
    /// The date or timestamp column whose value picks the partition.
    pub column: String,
    /// `day` (`2024-01-02`) or `month` (`2024-01`).
    pub grain: Grain,
}

/// The width of a date partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Grain {
    /// One partition per UTC day.
    Day,
    /// One partition per UTC month.
    Month,
}

fn is_full(mode: &TableMode) -> bool {
    *mode == TableMode::Full
}

fn is_false(value: &bool) -> bool {
    !value
}

pub(super) fn default_prefix() -> String {
    String::new()
}

pub(super) fn default_format() -> Format {
    Format::default()
}

pub(super) fn default_max_file_rows() -> u64 {
    1_000_000
}

pub(super) fn default_max_file_bytes() -> ByteSize {
    ByteSize::mib(256)
}

pub(super) fn default_key_template() -> String {
    KeyTemplate::DEFAULT.to_owned()
}

impl DestinationConfig {
    /// A destination writing to a local folder, everything else default: the shape of the
    /// demo and of tests.
    pub fn local(id: impl Into<String>, tenant: impl Into<String>, folder: impl Into<PathBuf>) -> Self {
        DestinationConfig {
            id: id.into(),
            tenant: tenant.into(),
            bucket: None,
            folder: Some(folder.into()),
            prefix: default_prefix(),
            region: None,
            endpoint_url: None,
            role_arn: None,
            external_id: None,
            expected_bucket_owner: None,
            format: default_format(),
            max_file_rows: default_max_file_rows(),
            max_file_bytes: default_max_file_bytes(),
            key_template: default_key_template(),
            shard_numbering: ShardNumbering::default(),
            encryption: None,
            bucket_owner_full_control: false,
            tags: BTreeMap::new(),
            tables: None,
            schedule: None,
            manifest: false,
            partition_by: None,
            pgp_public_key: None,
            full_every: None,
        }
    }

    /// The parsed key template. Cannot fail on a validated config (validation parses it).
    pub fn key_template(&self) -> Result<KeyTemplate, LayoutError> {
        KeyTemplate::parse(&self.key_template)
    }

    /// The tables this destination receives, in the order of `all` (the config's `tables`).
    pub fn tables<'a>(&'a self, all: &'a [TableConfig]) -> Vec<&'a TableConfig> {
        all.iter().filter(|t| self.tables.as_ref().is_none_or(|subset| subset.contains(&t.name))).collect()
    }

    /// The names of the tables this destination receives, in the order of `all`.
    pub fn table_names<'a>(&'a self, all: &'a [TableConfig]) -> Vec<&'a str> {
        self.tables(all).into_iter().map(|t| t.name.as_str()).collect()
    }

    /// The account that must own the bucket: `expected_bucket_owner`, or the account in
    /// `role_arn`.
    pub fn bucket_owner(&self) -> Option<String> {
        self.expected_bucket_owner
            .clone()
            .or_else(|| self.role_arn.as_deref().and_then(|arn| RoleArn::parse(arn).ok()).map(|a| a.account_id))
    }
}

/// How exports run. Every field has a default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportConfig {
    /// How many export tasks run at once in the local runner (the Step Functions Map's
    /// MaxConcurrency when deployed); bounds memory and source load. 1-256. Example: `4`.
    #[serde(default = "default_parallelism")]
    pub parallelism: usize,
    /// The size of each multipart upload part, i.e. how much of a file is buffered in memory
    /// per upload. S3 allows 5 MiB to 5 GiB and 10,000 parts. Example: `"8MiB"` (the default).
    #[serde(default = "default_part_size")]
    pub part_size: ByteSize,
    /// Bytes of one upload's parts sent at once (`upload_bytes_in_flight / part_size` parts,
    /// at least 1); with the part being filled, an upload holds at most this plus one part.
    /// 5 MiB to 5 GiB. Example: `"32MiB"` (the default: 4 parts of 8 MiB).
    #[serde(default = "default_upload_bytes_in_flight")]
    pub upload_bytes_in_flight: ByteSize,
    /// Parquet: a row group is closed when its encoded size reaches this; bigger groups
    /// compress better, smaller ones need less memory. The encoder holds about one row
    /// group, and one more may be waiting for the uploader. 1 MiB to 1 GiB. Example:
    /// `"32MiB"` (the default; about 500,000 rows of a typical events table).
    #[serde(default = "default_row_group_bytes")]
    pub row_group_bytes: ByteSize,
    /// Record batches read from the source ahead of the encoder, in bytes of Arrow memory
    /// (one batch always passes). 1 MiB to 1 GiB. Example: `"16MiB"` (the default).
    #[serde(default = "default_read_ahead_bytes")]
    pub read_ahead_bytes: ByteSize,
    /// Encoded bytes waiting for the uploader (one piece always passes: a whole Parquet row
    /// group, or the gzip blocks finished since the last batch). 1 MiB to 1 GiB. Example:
    /// `"16MiB"` (the default).
    #[serde(default = "default_upload_queue_bytes")]
    pub upload_queue_bytes: ByteSize,
    /// CSV and JSON lines with gzip: text is compressed in blocks of this size on every core
    /// at once, each block one gzip member (a multi-member gzip file, which every gzip
    /// reader reads as one stream). Bigger blocks compress a little better. 64 KiB to
    /// 64 MiB. Example: `"2MiB"` (the default).
    #[serde(default = "default_gzip_block_bytes")]
    pub gzip_block_bytes: ByteSize,
    /// gzip level 0 (store) to 9 (smallest), for Parquet's gzip codec and gzip-wrapped CSV
    /// and JSON lines. Example: `6` (the default).
    #[serde(default = "default_gzip_level")]
    pub gzip_level: u32,
    /// The planner splits a table into slices of about this many rows, each exported by its
    /// own task in parallel, sized so a task finishes well within Lambda's 15 minutes.
    /// At least 1. Example: `5000000` (the default).
    #[serde(default = "default_target_rows_per_slice")]
    pub target_rows_per_slice: u64,
}

pub(super) fn default_parallelism() -> usize {
    4
}

pub(super) fn default_part_size() -> ByteSize {
    ByteSize::mib(8)
}

pub(super) fn default_row_group_bytes() -> ByteSize {
    ByteSize::mib(32)
}

pub(super) fn default_upload_bytes_in_flight() -> ByteSize {
    ByteSize::mib(32)
}

pub(super) fn default_read_ahead_bytes() -> ByteSize {
    ByteSize::mib(16)
}

pub(super) fn default_upload_queue_bytes() -> ByteSize {
    ByteSize::mib(16)
}

pub(super) fn default_gzip_block_bytes() -> ByteSize {
    ByteSize::mib(2)
}

pub(super) fn default_gzip_level() -> u32 {
    6
}

pub(super) fn default_target_rows_per_slice() -> u64 {
    5_000_000
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            parallelism: default_parallelism(),
            part_size: default_part_size(),
            upload_bytes_in_flight: default_upload_bytes_in_flight(),
            row_group_bytes: default_row_group_bytes(),
            read_ahead_bytes: default_read_ahead_bytes(),
            upload_queue_bytes: default_upload_queue_bytes(),
            gzip_block_bytes: default_gzip_block_bytes(),
            gzip_level: default_gzip_level(),
            target_rows_per_slice: default_target_rows_per_slice(),
        }
    }
}

impl ExportConfig {
    /// The encoder and pipeline tuning these settings imply (other knobs at their defaults).
    pub fn encoder_options(&self) -> EncoderOptions {
        EncoderOptions {
            row_group_bytes: self.row_group_bytes.as_usize(),
            gzip_level: self.gzip_level,
            gzip_block_bytes: self.gzip_block_bytes.as_usize(),
            read_ahead_bytes: self.read_ahead_bytes.as_usize(),
            upload_queue_bytes: self.upload_queue_bytes.as_usize(),
            ..EncoderOptions::default()
        }
    }

    /// Parts of one upload in flight at once: `upload_bytes_in_flight / part_size`, at least 1.
    pub fn parts_in_flight(&self) -> usize {
        usize::try_from(self.upload_bytes_in_flight.0 / self.part_size.0.max(1)).unwrap_or(usize::MAX).max(1)
    }
}

/// Our own AWS side.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsConfig {
    /// Our single, stable "destination writer" role (hop 1 of the role chain): the ARN
    /// customers trust, so execution roles can change with every deploy. Unset: the
    /// function's own credentials assume the customers' roles directly (local runs, moto).
    /// Example: `"arn:aws:iam::111122223333:role/byob-destination-writer"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer_role_arn: Option<String>,
    /// Region for STS and for buckets without their own `region`; unset: the environment's.
    /// Example: `"eu-west-1"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// An endpoint for every AWS service (STS, S3, Secrets Manager), e.g. a local moto
    /// server. Example: `"http://127.0.0.1:5000"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
}

/// Where byob keeps its own record of finished runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateConfig {
    /// A local folder (relative to the config file's folder) or an `s3://bucket/prefix` of
    /// OUR account; never the customer's bucket, which we cannot read. Example:
    /// `".byob-state"` (the default).
    #[serde(default = "default_state_path")]
    pub path: PathBuf,
}

pub(super) fn default_state_path() -> PathBuf {
    PathBuf::from(".byob-state")
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig { path: default_state_path() }
    }
}
