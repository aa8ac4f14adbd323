//! The one configuration schema of byob, read from TOML or JSON, and its validation.
//!
//! Every field is documented here (why it exists, with an example); the same text is the
//! reference for `tests/fixtures/config/byob.example.toml`, which shows every field and is
//! checked to validate.
//!
//! Loading is one pipeline for both syntaxes: the text becomes a `serde_json::Value` (TOML via
//! `toml::from_str`), each section is deserialized on its own with `serde_path_to_error` (so a
//! type error names its field path) and `serde_ignored` (so EVERY unknown field is reported,
//! not just the first: the effect of `deny_unknown_fields`, with a complete list), relative
//! local paths are resolved against the config file's folder, and [`Config::validate`] checks
//! every rule. All problems come back at once in [`ConfigErrors`], one line each, naming the
//! field path, the offending value and what is allowed, so a platform engineer fixes a config
//! in one round trip and nothing is written before the config is known to be good.
//!
//! Because unknown fields are collected by the loader rather than by `deny_unknown_fields`
//! on each struct, deserialize a whole [`Config`] (its `Deserialize` runs the same pipeline)
//! or call [`Config::load`] / [`Config::from_toml_str`] / [`Config::from_json_str`]; the
//! section types on their own ignore unknown fields.
//!
//! This module must never echo the value of a field that may hold a secret (password, secret,
//! token, key material) in a problem: such values are left out of every message.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::format::{EncoderOptions, Format};
use crate::layout::{self, KeyTemplate, LayoutError};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
const TIB: u64 = 1024 * GIB;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// One thing wrong with a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Where, as a field path: `destinations[1].bucket`, `export.part_size`; empty for the
    /// file as a whole (unreadable, not TOML, ...).
    pub path: String,
    /// The offending value as it would be written in the config (strings quoted), when
    /// showing it helps; never set for a field that may hold a secret.
    pub value: Option<String>,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl ConfigProblem {
    /// A problem at `path`; `value` is dropped when the path names a field that may hold a
    /// secret.
    pub fn new(path: impl Into<String>, value: Option<String>, message: impl Into<String>) -> Self {
        let path = path.into();
        let value = if is_sensitive_path(&path) { None } else { value };
        ConfigProblem { path, value, message: message.into() }
    }

    fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(path, None, message)
    }

    fn with_str(path: impl Into<String>, value: &str, message: impl Into<String>) -> Self {
        Self::new(path, Some(format!("{value:?}")), message)
    }

    fn with_num(path: impl Into<String>, value: impl fmt::Display, message: impl Into<String>) -> Self {
        Self::new(path, Some(value.to_string()), message)
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.path.is_empty(), &self.value) {
            (true, _) => write!(f, "{}", self.message),
            (false, None) => write!(f, "{}: {}", self.path, self.message),
            (false, Some(value)) => write!(f, "{} = {}: {}", self.path, value, self.message),
        }
    }
}

/// Every problem found in a configuration, in the order of the file. Displayed one per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_problems(.0))]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

fn render_problems(problems: &[ConfigProblem]) -> String {
    match problems {
        [] => "invalid configuration".to_owned(),
        [one] => format!("invalid configuration: {one}"),
        many => {
            let mut out = format!("invalid configuration ({} problems):", many.len());
            for p in many {
                out.push_str("\n  ");
                out.push_str(&p.to_string());
            }
            out
        }
    }
}

impl ConfigErrors {
    /// The problems, in the order of the file.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigProblem> {
        self.0.iter()
    }

    /// The first problem at exactly `path`, if any.
    pub fn at(&self, path: &str) -> Option<&ConfigProblem> {
        self.0.iter().find(|p| p.path == path)
    }

    /// One problem with the config as a whole (unreadable, missing, not set).
    pub fn file(message: impl Into<String>) -> Self {
        ConfigErrors(vec![ConfigProblem::at("", message)])
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigProblem;
    type IntoIter = std::slice::Iter<'a, ConfigProblem>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Whether a field path names something that may hold a secret, whose value must never be
/// shown.
fn is_sensitive_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    ["password", "passwd", "secret", "token", "private_key", "access_key", "api_key", "credential"]
        .iter()
        .any(|word| lower.contains(word))
}

// ---------------------------------------------------------------------------------------------
// Byte sizes
// ---------------------------------------------------------------------------------------------

/// A number of bytes, written in the config as an integer (`268435456`) or a string with a
/// unit (`"256MiB"`, `"8 MiB"`, `"1GB"`, `"1.5 GiB"`). Units are case-insensitive: `B`,
/// `KB` `MB` `GB` `TB` (powers of 1000) and `KiB` `MiB` `GiB` `TiB` (powers of 1024).
/// Serialized as the integer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// `n` KiB.
    pub const fn kib(n: u64) -> Self {
        ByteSize(n * KIB)
    }

    /// `n` MiB.
    pub const fn mib(n: u64) -> Self {
        ByteSize(n * MIB)
    }

    /// `n` GiB.
    pub const fn gib(n: u64) -> Self {
        ByteSize(n * GIB)
    }

    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// The number of bytes as a `usize`, saturating on 32-bit targets.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

/// Why a byte size could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a byte size: {reason}; write an integer number of bytes or a number and a unit, e.g. \"256MiB\", \"8 MiB\", \"1GB\" (units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
)]
pub struct ByteSizeError {
    /// The text that was given.
    pub input: String,
    /// What is wrong.
    pub reason: String,
}

impl FromStr for ByteSize {
    type Err = ByteSizeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| ByteSizeError { input: s.to_owned(), reason: reason.to_owned() };
        let text = s.trim();
        let number_end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
        let (number, unit) = text.split_at(number_end);
        let unit = unit.trim();
        let multiplier: u128 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            "kib" => KIB.into(),
            "mib" => MIB.into(),
            "gib" => GIB.into(),
            "tib" => TIB.into(),
            _ => return Err(err(&format!("unknown unit {unit:?}"))),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() || fraction.contains('.') || (number.contains('.') && fraction.is_empty()) {
            return Err(err("the number is missing or malformed"));
        }
        if whole.len() + fraction.len() > 24 {
            return Err(err("the number is too large"));
        }
        let digits = |d: &str| d.bytes().fold(0u128, |acc, c| acc * 10 + u128::from(c - b'0'));
        let scale = 10u128.pow(u32::try_from(fraction.len()).map_err(|_| err("the number is too large"))?);
        let scaled = (digits(whole) * scale + digits(fraction)) * multiplier;
        if !scaled.is_multiple_of(scale) {
            return Err(err("it is not a whole number of bytes"));
        }
        u64::try_from(scaled / scale).map(ByteSize).map_err(|_| err("the number is too large"))
    }
}

impl fmt::Display for ByteSize {
    /// The largest binary unit that divides the size exactly: `256 MiB`, `1000 B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, name) in [(TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
            if self.0 >= unit && self.0.is_multiple_of(unit) {
                return write!(f, "{} {name}", self.0 / unit);
            }
        }
        write!(f, "{} B", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ByteSizeVisitor;

        impl Visitor<'_> for ByteSizeVisitor {
            type Value = ByteSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte size: an integer number of bytes or a string like \"256MiB\", \"8 MiB\", \"1GB\"")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v).map(ByteSize).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }

        d.deserialize_any(ByteSizeVisitor)
    }
}

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

    fn resolve_paths(&mut self, base: &Path) {
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

fn default_tenant_column() -> String {
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

fn default_pg_schema() -> String {
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
}

impl TableConfig {
    /// A table with only a name: everything else defaults.
    pub fn named(name: impl Into<String>) -> Self {
        TableConfig { name: name.into(), tenant_column: None, columns: None, path: None, query: None, slice_key: None }
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
struct RawEncryption {
    #[serde(rename = "type")]
    kind: EncryptionKind,
    #[serde(default)]
    kms_key_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum EncryptionKind {
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
}

fn default_prefix() -> String {
    String::new()
}

fn default_format() -> Format {
    Format::default()
}

fn default_max_file_rows() -> u64 {
    1_000_000
}

fn default_max_file_bytes() -> ByteSize {
    ByteSize::mib(256)
}

fn default_key_template() -> String {
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
            encryption: None,
            bucket_owner_full_control: false,
            tags: BTreeMap::new(),
            tables: None,
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
    /// (one batch always passes). 1 MiB to 1 GiB. Example: `"32MiB"` (the default).
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

fn default_parallelism() -> usize {
    4
}

fn default_part_size() -> ByteSize {
    ByteSize::mib(8)
}

fn default_row_group_bytes() -> ByteSize {
    ByteSize::mib(32)
}

fn default_upload_bytes_in_flight() -> ByteSize {
    ByteSize::mib(32)
}

fn default_read_ahead_bytes() -> ByteSize {
    ByteSize::mib(32)
}

fn default_upload_queue_bytes() -> ByteSize {
    ByteSize::mib(16)
}

fn default_gzip_block_bytes() -> ByteSize {
    ByteSize::mib(2)
}

fn default_gzip_level() -> u32 {
    6
}

fn default_target_rows_per_slice() -> u64 {
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

fn default_state_path() -> PathBuf {
    PathBuf::from(".byob-state")
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig { path: default_state_path() }
    }
}

// ---------------------------------------------------------------------------------------------
// AWS names
// ---------------------------------------------------------------------------------------------

const BUCKET_RULE: &str = "bucket names are 3-63 characters of lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit";

/// Checks an S3 general purpose bucket name against AWS's naming rules; the message says
/// which rule is broken and what is allowed.
pub fn check_bucket_name(name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if !(3..=63).contains(&len) {
        return Err(format!("{BUCKET_RULE}; this one has {len}"));
    }
    let bad: BTreeSet<char> =
        name.chars().filter(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-')).collect();
    if !bad.is_empty() {
        let listed: Vec<String> = bad.iter().map(|c| format!("{c:?}")).collect();
        return Err(format!("{BUCKET_RULE}; this one contains {}", listed.join(", ")));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        return Err(format!("{BUCKET_RULE}; this one starts or ends with a symbol"));
    }
    if name.contains("..") {
        return Err("bucket names must not contain two adjacent dots".to_owned());
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() == 4 && labels.iter().all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit())) {
        return Err("bucket names must not be formatted as an IP address (e.g. 192.168.5.4)".to_owned());
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(prefix) {
            return Err(format!("bucket names must not start with {prefix:?} (reserved by AWS)"));
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(suffix) {
            return Err(format!(
                "bucket names must not end with {suffix:?} (reserved by AWS for access points and special buckets)"
            ));
        }
    }
    Ok(())
}

const ROLE_ARN_RULE: &str = "a role ARN looks like arn:aws:iam::123456789012:role/byob-writer: partition aws, aws-cn or aws-us-gov, a 12-digit account id, an optional /path/ and a role name of 1-64 letters, digits and +=,.@_-";

/// An IAM role ARN, `arn:<partition>:iam::<account>:role/<path/><name>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoleArn {
    /// `aws`, `aws-cn` or `aws-us-gov`.
    pub partition: String,
    /// The 12-digit account that owns the role.
    pub account_id: String,
    /// The role's path, `/` or `/a/b/`.
    pub path: String,
    /// The role's name.
    pub name: String,
}

impl RoleArn {
    /// Parses and checks a role ARN; the message says what is wrong and what is allowed.
    pub fn parse(arn: &str) -> Result<RoleArn, String> {
        let err = |what: &str| format!("{what}; {ROLE_ARN_RULE}");
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(resource)) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(err("this is not an ARN"));
        };
        if !["aws", "aws-cn", "aws-us-gov"].contains(&partition) {
            return Err(err(&format!("unknown partition {partition:?}")));
        }
        if service != "iam" {
            return Err(err(&format!("the service is {service:?}, not \"iam\"")));
        }
        if !region.is_empty() {
            return Err(err("IAM ARNs have no region (\"iam::\")"));
        }
        check_account_id(account).map_err(|e| err(&e))?;
        let Some(rest) = resource.strip_prefix("role/") else {
            return Err(err("the resource is not \"role/...\""));
        };
        let (inner, name) = rest.rsplit_once('/').unwrap_or(("", rest));
        let path = if inner.is_empty() { "/".to_owned() } else { format!("/{inner}/") };
        let segment_ok = |seg: &str| !seg.is_empty() && seg.chars().all(|c| ('!'..='~').contains(&c));
        if path.len() > 512 || (!inner.is_empty() && !inner.split('/').all(segment_ok)) {
            return Err(err(&format!(
                "the role path {path:?} is invalid (segments of printable ASCII between single '/', at most 512 characters)"
            )));
        }
        let name_ok = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
        if name.is_empty() || name.len() > 64 || !name.chars().all(name_ok) {
            return Err(err(&format!("the role name {name:?} is invalid")));
        }
        Ok(RoleArn { partition: partition.to_owned(), account_id: account.to_owned(), path, name: name.to_owned() })
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "arn:{}:iam::{}:role{}{}", self.partition, self.account_id, self.path, self.name)
    }
}

impl FromStr for RoleArn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RoleArn::parse(s)
    }
}

/// Checks a 12-digit AWS account id.
pub fn check_account_id(s: &str) -> Result<(), String> {
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err("an AWS account id is exactly 12 digits, e.g. \"123456789012\"".to_owned())
    }
}

/// Checks an STS ExternalId: 2-1224 characters of letters, digits and `_+=,.@:/-`.
pub fn check_external_id(s: &str) -> Result<(), String> {
    let rule = "an ExternalId is 2-1224 characters of letters, digits and _+=,.@:/- (e.g. \"byob-acme-7f3e9c2a41d8\"), unique per customer";
    let len = s.chars().count();
    if !(2..=1224).contains(&len) {
        return Err(format!("{rule}; this one has {len}"));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(*c))) {
        return Err(format!("{rule}; this one contains {c:?}"));
    }
    Ok(())
}

/// Checks the shape of an AWS region name: `[a-z]{2}(-[a-z]+)+-\d+`, e.g. `eu-west-1`,
/// `us-gov-west-1`.
pub fn check_region(s: &str) -> Result<(), String> {
    let rule = || {
        "a region looks like \"eu-west-1\" or \"us-gov-west-1\": two letters, one or more -words, then -digits"
            .to_owned()
    };
    let parts: Vec<&str> = s.split('-').collect();
    let (Some((last, middle)), Some(first)) = (parts.split_last(), parts.first()) else {
        return Err(rule());
    };
    let first_ok = first.len() == 2 && first.bytes().all(|b| b.is_ascii_lowercase());
    let words = &middle[1.min(middle.len())..];
    let middle_ok =
        !words.is_empty() && words.iter().all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()));
    let last_ok = !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit());
    if parts.len() >= 3 && first_ok && middle_ok && last_ok { Ok(()) } else { Err(rule()) }
}

/// Checks an endpoint URL: `http://` or `https://`, a host, no spaces.
pub fn check_endpoint_url(s: &str) -> Result<(), String> {
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') && !s.contains(char::is_whitespace) => Ok(()),
        _ => Err("an endpoint is an http:// or https:// URL, e.g. \"http://127.0.0.1:5000\"".to_owned()),
    }
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

impl Config {
    /// Reads a `.toml` or `.json` config file, resolves relative local paths against the
    /// file's folder, normalizes prefixes and validates. Every problem is reported at once.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigErrors::file(format!("cannot read {}: {e}", path.display())))?;
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let base = absolute.parent().unwrap_or(Path::new(""));
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("toml") => Self::from_toml_str(&text, base),
            Some("json") => Self::from_json_str(&text, base),
            _ => Err(ConfigErrors::file(format!(
                "{}: config files end in .toml or .json, which says how to read them",
                path.display()
            ))),
        }
    }

    /// Parses TOML text; relative local paths are resolved against `base_dir`.
    pub fn from_toml_str(s: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
        let value = toml::from_str::<Value>(s).map_err(|e| {
            let place = e.span().map(|span| {
                let before = &s[..span.start.min(s.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(" at line {line}, column {column}")
            });
            ConfigErrors::file(format!("not valid TOML{}: {}", place.unwrap_or_default(), e.message().trim()))
        })?;
        Self::from_value(value, base_dir)
    }

    /// Parses JSON text; relative local paths are resolved against `base_dir`.
    pub fn from_json_str(s: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
        let value = serde_json::from_str::<Value>(s).map_err(|e| ConfigErrors::file(format!("not valid JSON: {e}")))?;
        Self::from_value(value, base_dir)
    }

    /// Builds a config from an already parsed document (e.g. a config embedded in an event):
    /// reports every unknown field and type error, resolves relative local paths against
    /// `base_dir`, normalizes prefixes and validates.
    pub fn from_value(value: Value, base_dir: &Path) -> Result<Config, ConfigErrors> {
        let mut problems = Vec::new();
        let mut parts = Parts::from_value(value, &mut problems);
        parts.resolve_paths(base_dir);
        parts.view().validate(&mut problems);
        match parts.complete() {
            Some(mut config) if problems.is_empty() => {
                for d in &mut config.destinations {
                    // Validated above, so normalizing cannot fail; keep the original if it did.
                    if let Ok(prefix) = layout::normalize_prefix(&d.prefix) {
                        d.prefix = prefix;
                    }
                }
                Ok(config)
            }
            _ => Err(ConfigErrors(problems)),
        }
    }

    /// Checks every rule and reports every problem at once.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut problems = Vec::new();
        View {
            source: Some(&self.source),
            source_present: true,
            tables: self.tables.iter().map(Some).collect(),
            destinations: self.destinations.iter().map(Some).collect(),
            export: Some(&self.export),
            aws: Some(&self.aws),
            state: Some(&self.state),
        }
        .validate(&mut problems);
        if problems.is_empty() { Ok(()) } else { Err(ConfigErrors(problems)) }
    }

    /// The config's fingerprint: the sha256 (hex) of its canonical JSON form, after paths are
    /// resolved and defaults applied, so two loads of the same settings agree however the file
    /// is formatted, and any changed setting changes it. A run's plan records it and every later
    /// step of the run checks it ([`crate::workflow`]): one run, one config.
    pub fn sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        // Every map in the schema is a BTreeMap with string keys: the form is deterministic and
        // serializing cannot fail; were it to, the error text still makes a stable fingerprint.
        let canonical = serde_json::to_vec(self).unwrap_or_else(|e| e.to_string().into_bytes());
        hex::encode(Sha256::digest(canonical))
    }

    /// The destination with this id.
    pub fn destination(&self, id: &str) -> Option<&DestinationConfig> {
        self.destinations.iter().find(|d| d.id == id)
    }

    /// The table with this name.
    pub fn table(&self, name: &str) -> Option<&TableConfig> {
        self.tables.iter().find(|t| t.name == name)
    }
}

impl<'de> Deserialize<'de> for Config {
    /// Runs the loader's pipeline: every unknown field and type error is reported and the
    /// config is validated. Relative paths stay relative (to the current directory).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Config::from_value(value, Path::new("")).map_err(de::Error::custom)
    }
}

/// The sections of a config as far as they could be read: `None` where a section (or list
/// element) had a type error, so validation can still check everything else.
struct Parts {
    source: Option<SourceConfig>,
    source_present: bool,
    tables: Vec<Option<TableConfig>>,
    destinations: Vec<Option<DestinationConfig>>,
    export: Option<ExportConfig>,
    aws: Option<AwsConfig>,
    state: Option<StateConfig>,
}

impl Parts {
    fn from_value(value: Value, problems: &mut Vec<ConfigProblem>) -> Parts {
        let mut parts = Parts {
            source: None,
            source_present: false,
            tables: Vec::new(),
            destinations: Vec::new(),
            export: Some(ExportConfig::default()),
            aws: Some(AwsConfig::default()),
            state: Some(StateConfig::default()),
        };
        let Value::Object(map) = value else {
            problems.push(ConfigProblem::at(
                "",
                "the configuration must be a table (TOML) or an object (JSON) at the top level",
            ));
            return parts;
        };
        for (key, value) in map {
            match key.as_str() {
                "source" => {
                    parts.source_present = true;
                    parts.source = source_from_value(value, problems);
                }
                "tables" => {
                    parts.tables = list_at(value, "tables", problems, |v| match v {
                        Value::String(name) => {
                            Value::Object([("name".to_owned(), Value::String(name))].into_iter().collect())
                        }
                        other => other,
                    });
                }
                "destinations" => parts.destinations = list_at(value, "destinations", problems, |v| v),
                "export" => parts.export = deserialize_at(value, "export", problems),
                "aws" => parts.aws = deserialize_at(value, "aws", problems),
                "state" => parts.state = deserialize_at(value, "state", problems),
                _ => problems.push(unknown_field(push_key(String::new(), &key))),
            }
        }
        parts
    }

    fn resolve_paths(&mut self, base: &Path) {
        if let Some(source) = &mut self.source {
            source.resolve_paths(base);
        }
        for table in self.tables.iter_mut().flatten() {
            if let Some(path) = &mut table.path {
                resolve(base, path);
            }
        }
        for destination in self.destinations.iter_mut().flatten() {
            if let Some(folder) = &mut destination.folder {
                resolve(base, folder);
            }
        }
        if let Some(state) = &mut self.state {
            resolve(base, &mut state.path);
        }
    }

    fn view(&self) -> View<'_> {
        View {
            source: self.source.as_ref(),
            source_present: self.source_present,
            tables: self.tables.iter().map(Option::as_ref).collect(),
            destinations: self.destinations.iter().map(Option::as_ref).collect(),
            export: self.export.as_ref(),
            aws: self.aws.as_ref(),
            state: self.state.as_ref(),
        }
    }

    fn complete(self) -> Option<Config> {
        Some(Config {
            source: self.source?,
            tables: self.tables.into_iter().collect::<Option<_>>()?,
            destinations: self.destinations.into_iter().collect::<Option<_>>()?,
            export: self.export?,
            aws: self.aws?,
            state: self.state?,
        })
    }
}

/// Resolves a relative local path against `base`; URLs (`s3://...`) and empty paths (which
/// validation reports) are left alone.
fn resolve(base: &Path, path: &mut PathBuf) {
    let is_url = path.to_str().is_some_and(|s| s.contains("://"));
    if path.is_relative() && !is_url && !path.as_os_str().is_empty() && !base.as_os_str().is_empty() {
        *path = base.join(&*path);
    }
}

fn source_from_value(value: Value, problems: &mut Vec<ConfigProblem>) -> Option<SourceConfig> {
    let Value::Object(mut map) = value else {
        problems
            .push(ConfigProblem::at("source", "must be a table, e.g. [source] type = \"parquet\", path = \"lake\""));
        return None;
    };
    let types = SourceConfig::TYPES.iter().map(|t| format!("{t:?}")).collect::<Vec<_>>().join(", ");
    match map.remove("type") {
        Some(Value::String(kind)) => match kind.as_str() {
            "parquet" => deserialize_at(Value::Object(map), "source", problems).map(SourceConfig::Parquet),
            "postgres" => deserialize_at(Value::Object(map), "source", problems).map(SourceConfig::Postgres),
            _ => {
                problems.push(ConfigProblem::with_str(
                    "source.type",
                    &kind,
                    format!("unknown source type; one of {types}"),
                ));
                None
            }
        },
        Some(other) => {
            problems.push(ConfigProblem::with_num("source.type", &other, format!("must be a string, one of {types}")));
            None
        }
        None => {
            problems.push(ConfigProblem::at("source.type", format!("is required: the kind of source, one of {types}")));
            None
        }
    }
}

fn list_at<T: DeserializeOwned>(
    value: Value,
    base: &str,
    problems: &mut Vec<ConfigProblem>,
    shorthand: impl Fn(Value) -> Value,
) -> Vec<Option<T>> {
    let Value::Array(items) = value else {
        problems.push(ConfigProblem::at(base, format!("must be a list ([[{base}]] in TOML, an array in JSON)")));
        return Vec::new();
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| deserialize_at(shorthand(item), &format!("{base}[{i}]"), problems))
        .collect()
}

/// Deserializes one section, recording every unknown field and the first type error (with
/// its path) as problems. Returns `None` on a type error.
fn deserialize_at<T: DeserializeOwned>(value: Value, base: &str, problems: &mut Vec<ConfigProblem>) -> Option<T> {
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(ignored_path(base, &path));
    let result: Result<T, _> = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(value, &mut record));
    problems.extend(unknown.into_iter().map(unknown_field));
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            let mut path = base.to_owned();
            for segment in error.path().iter() {
                path = match segment {
                    serde_path_to_error::Segment::Seq { index } => format!("{path}[{index}]"),
                    serde_path_to_error::Segment::Map { key } => push_key(path, key),
                    serde_path_to_error::Segment::Enum { .. } | serde_path_to_error::Segment::Unknown => path,
                };
            }
            problems.push(type_problem(path, &error.into_inner().to_string()));
            None
        }
    }
}

/// Turns serde's message into a problem, moving a named field into the path.
fn type_problem(path: String, message: &str) -> ConfigProblem {
    let named = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_once('`'))
            .map(|(name, rest)| (name.to_owned(), rest.to_owned()))
    };
    // serde_path_to_error's path may already end at the field (it does for unknown fields).
    let with_field = |path: String, field: &str| {
        let full = push_key(String::new(), field);
        if path == full || path.ends_with(&format!(".{full}")) { path } else { push_key(path, field) }
    };
    if let Some((field, _)) = named("missing field `") {
        return ConfigProblem::at(with_field(path, &field), "is required");
    }
    if let Some((field, rest)) = named("unknown field `") {
        let expected = rest.trim_start_matches(',').trim();
        return ConfigProblem::at(
            with_field(path, &field),
            format!("unknown field: byob does not read it; {expected}"),
        );
    }
    if is_sensitive_path(&path) {
        return ConfigProblem::at(path, "has the wrong type (the value is not shown: this field may hold a secret)");
    }
    ConfigProblem::at(path, message)
}

fn unknown_field(path: String) -> ConfigProblem {
    ConfigProblem::at(path, "unknown field: byob does not read it (misspelled, or in the wrong section?)")
}

fn push_key(mut path: String, key: &str) -> String {
    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !path.is_empty() {
        path.push('.');
    }
    if plain {
        path.push_str(key);
    } else {
        path.push_str(&format!("{key:?}"));
    }
    path
}

fn ignored_path(base: &str, path: &serde_ignored::Path<'_>) -> String {
    match path {
        serde_ignored::Path::Root => base.to_owned(),
        serde_ignored::Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(base, parent)),
        serde_ignored::Path::Map { parent, key } => push_key(ignored_path(base, parent), key),
        serde_ignored::Path::Some { parent }
        | serde_ignored::Path::NewtypeStruct { parent }
        | serde_ignored::Path::NewtypeVariant { parent } => ignored_path(base, parent),
    }
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// What validation looks at: a whole config, or the parts of one that could be read.
struct View<'a> {
    source: Option<&'a SourceConfig>,
    source_present: bool,
    tables: Vec<Option<&'a TableConfig>>,
    destinations: Vec<Option<&'a DestinationConfig>>,
    export: Option<&'a ExportConfig>,
    aws: Option<&'a AwsConfig>,
    state: Option<&'a StateConfig>,
}

const MAX_TAGS: usize = 10;

/// Where a destination writes: bucket, the bucket's endpoint, folder, normalized prefix.
type Location<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a Path>, String);

/// The longest label byob puts into an STS session name after the destination id: `byob
/// check`'s `check-<UTC time>` (a run's label, `2023-03-14T04-03`, is shorter), so ids that
/// differ in their session names under it differ under every label.
const LONGEST_SESSION_LABEL: &str = "check-00000000T000000Z";

/// How many leading characters of a destination id survive into every STS session name.
fn id_chars_in_session_names() -> usize {
    let longest = "x".repeat(64);
    let name = crate::names::session_name(&longest, LONGEST_SESSION_LABEL);
    name.len().saturating_sub("byob-".len() + 1 + LONGEST_SESSION_LABEL.len())
}

impl View<'_> {
    fn validate(&self, problems: &mut Vec<ConfigProblem>) {
        if !self.source_present {
            problems.push(ConfigProblem::at(
                "source",
                "is required: where rows come from, e.g. [source] type = \"parquet\", path = \"lake\"",
            ));
        }
        if let Some(source) = self.source {
            validate_source(source, problems);
        }
        self.validate_tables(problems);
        self.validate_destinations(problems);
        if let Some(export) = self.export {
            validate_export(export, problems);
        }
        if let Some(aws) = self.aws {
            validate_aws(aws, problems);
        }
        if let Some(state) = self.state
            && state.path.as_os_str().is_empty()
        {
            problems.push(ConfigProblem::at("state.path", "must not be empty; the default is \".byob-state\""));
        }
    }

    fn validate_tables(&self, problems: &mut Vec<ConfigProblem>) {
        if self.tables.is_empty() {
            problems.push(ConfigProblem::at(
                "tables",
                "at least one table is required, e.g. [[tables]] name = \"companies\"",
            ));
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, table) in self.tables.iter().enumerate() {
            let Some(table) = table else { continue };
            let at = |field: &str| format!("tables[{i}].{field}");
            match layout::validate_table_name(&table.name) {
                Err(e) => problems.push(ConfigProblem::with_str(at("name"), &table.name, e.reason())),
                Ok(()) => {
                    let lower = table.name.to_ascii_lowercase();
                    if let Some(&first) = seen.get(&lower) {
                        problems.push(ConfigProblem::with_str(
                            at("name"),
                            &table.name,
                            format!("tables[{first}] has the same name; table names must be unique, ignoring case"),
                        ));
                    } else {
                        seen.insert(lower, i);
                    }
                }
            }
            if let Some(column) = &table.tenant_column {
                check_column(problems, at("tenant_column"), column);
            }
            if let Some(columns) = &table.columns {
                if columns.is_empty() {
                    problems.push(ConfigProblem::at(
                        at("columns"),
                        "list at least one column, or leave columns out to export all",
                    ));
                }
                let mut names = BTreeSet::new();
                for (j, column) in columns.iter().enumerate() {
                    let path = format!("tables[{i}].columns[{j}]");
                    if !check_column(problems, path.clone(), column) {
                        continue;
                    }
                    if !names.insert(column.as_str()) {
                        problems.push(ConfigProblem::with_str(
                            path,
                            column,
                            "is listed twice; each column appears once",
                        ));
                    }
                }
            }
            if let Some(path) = &table.path
                && path.as_os_str().is_empty()
            {
                problems.push(ConfigProblem::at(
                    at("path"),
                    "must not be empty; leave it out to read <source.path>/<name>",
                ));
            }
            let postgres = matches!(self.source, Some(SourceConfig::Postgres(_)));
            let parquet = matches!(self.source, Some(SourceConfig::Parquet(_)));
            if postgres && table.path.is_some() {
                problems.push(ConfigProblem::at(
                    at("path"),
                    "applies to parquet sources only; a PostgreSQL table reads <source.schema>.<name> or its query",
                ));
            }
            if let Some(query) = &table.query {
                if parquet {
                    problems.push(ConfigProblem::at(at("query"), "applies to postgres sources only"));
                }
                let body = query.trim().trim_end_matches(';').trim();
                if body.is_empty() || body.contains('\0') {
                    problems.push(ConfigProblem::at(
                        at("query"),
                        "must be a SELECT returning the tenant column, e.g. \"SELECT id, tenant_id, name FROM crm.companies\"",
                    ));
                }
            }
            if let Some(key) = &table.slice_key {
                if parquet {
                    problems.push(ConfigProblem::at(
                        at("slice_key"),
                        "applies to postgres sources only (a lake is sliced by row groups)",
                    ));
                }
                check_column(problems, at("slice_key"), key);
            }
        }
    }

    fn validate_destinations(&self, problems: &mut Vec<ConfigProblem>) {
        if self.destinations.is_empty() {
            problems.push(ConfigProblem::at(
                "destinations",
                "at least one destination is required, e.g. [[destinations]] id = \"acme\", tenant = \"acme\", folder = \"out/acme\"",
            ));
        }
        // Table names are known only if every table could be read.
        let table_names: Option<Vec<&str>> = self.tables.iter().map(|t| t.map(|t| t.name.as_str())).collect();
        let mut ids: HashMap<&str, usize> = HashMap::new();
        let mut sessions: HashMap<String, (usize, &str)> = HashMap::new();
        // (bucket, its endpoint, folder, normalized prefix) -> the first destination there
        let mut locations: HashMap<Location<'_>, usize> = HashMap::new();
        let mut external_ids: HashMap<&str, (usize, &str)> = HashMap::new();
        for (i, d) in self.destinations.iter().enumerate() {
            let Some(d) = d else { continue };
            let at = |field: &str| format!("destinations[{i}].{field}");

            match layout::validate_destination_id(&d.id) {
                Err(e) => problems.push(ConfigProblem::with_str(at("id"), &d.id, e.reason())),
                Ok(()) => {
                    if let Some(&first) = ids.get(d.id.as_str()) {
                        problems.push(ConfigProblem::with_str(
                            at("id"),
                            &d.id,
                            format!("destinations[{first}] has the same id; destination ids must be unique"),
                        ));
                    } else {
                        ids.insert(&d.id, i);
                        // STS session names keep only the first characters of an id: two ids
                        // that agree there would look the same in the customer's CloudTrail.
                        let session = crate::names::session_name(&d.id, LONGEST_SESSION_LABEL);
                        if let Some(&(first, other)) = sessions.get(&session) {
                            problems.push(ConfigProblem::with_str(
                                at("id"),
                                &d.id,
                                format!(
                                    "destinations[{first}] (id {other:?}) gets the same STS session name {session:?}: session names keep only the first {} characters of an id; make the two ids differ within them",
                                    id_chars_in_session_names()
                                ),
                            ));
                        } else {
                            sessions.insert(session, (i, &d.id));
                        }
                    }
                }
            }
            // Two destinations writing to one place would overwrite each other's files and
            // receipts (a bucket and a folder never collide; a prefix is compared normalized).
            if let (Ok(prefix), true) = (layout::normalize_prefix(&d.prefix), d.bucket.is_some() != d.folder.is_some())
            {
                let endpoint = d.bucket.as_ref().and(d.endpoint_url.as_deref());
                let key = (d.bucket.as_deref(), endpoint, d.folder.as_deref(), prefix);
                if let Some(&first) = locations.get(&key) {
                    let (field, place) = match (&d.bucket, &d.folder) {
                        (Some(bucket), _) => ("bucket", format!("s3://{bucket}/{}", key.3)),
                        (_, Some(folder)) => ("folder", format!("{}/{}", folder.display(), key.3)),
                        _ => ("prefix", key.3.clone()),
                    };
                    problems.push(ConfigProblem::at(
                        at(field),
                        format!(
                            "destinations[{first}] writes to the same place ({place}); each destination needs a bucket (or folder) and prefix of its own, or their files and receipts overwrite each other"
                        ),
                    ));
                } else {
                    locations.insert(key, i);
                }
            }
            if d.tenant.trim().is_empty() {
                problems.push(ConfigProblem::with_str(
                    at("tenant"),
                    &d.tenant,
                    "must not be empty: it selects the rows this destination receives",
                ));
            } else if d.tenant.trim() != d.tenant {
                problems.push(ConfigProblem::with_str(
                    at("tenant"),
                    &d.tenant,
                    "has leading or trailing spaces, which would match no rows",
                ));
            }

            match (&d.bucket, &d.folder) {
                (Some(_), Some(_)) => problems.push(ConfigProblem::at(
                    format!("destinations[{i}]"),
                    "set exactly one of bucket (the customer's S3 bucket) or folder (a local folder standing in for one); both are set",
                )),
                (None, None) => problems.push(ConfigProblem::at(
                    format!("destinations[{i}]"),
                    "set exactly one of bucket (the customer's S3 bucket) or folder (a local folder standing in for one); neither is set",
                )),
                (None, Some(folder)) if folder.as_os_str().is_empty() => {
                    problems.push(ConfigProblem::at(at("folder"), "must not be empty"));
                }
                _ => {}
            }
            if let Some(bucket) = &d.bucket {
                if let Err(e) = check_bucket_name(bucket) {
                    problems.push(ConfigProblem::with_str(at("bucket"), bucket, e));
                }
                if d.role_arn.is_none() {
                    problems.push(ConfigProblem::at(
                        at("role_arn"),
                        "is required for an S3 destination: the customer's role byob assumes to write, e.g. \"arn:aws:iam::123456789012:role/byob-writer\"",
                    ));
                }
                if d.external_id.is_none() {
                    problems.push(ConfigProblem::at(
                        at("external_id"),
                        "is required for an S3 destination: the ExternalId we generated for this customer, which their role's trust policy requires",
                    ));
                }
            }
            if let Some(arn) = &d.role_arn
                && let Err(e) = RoleArn::parse(arn)
            {
                problems.push(ConfigProblem::with_str(at("role_arn"), arn, e));
            }
            if let Some(external_id) = &d.external_id {
                if let Err(e) = check_external_id(external_id) {
                    problems.push(ConfigProblem::with_str(at("external_id"), external_id, e));
                } else if let Some(&(first, tenant)) = external_ids.get(external_id.as_str()) {
                    if tenant != d.tenant {
                        problems.push(ConfigProblem::with_str(
                            at("external_id"),
                            external_id,
                            format!(
                                "destinations[{first}] (tenant {tenant:?}) uses the same ExternalId; it must be unique per customer, or it no longer guards against the confused deputy"
                            ),
                        ));
                    }
                } else {
                    external_ids.insert(external_id, (i, &d.tenant));
                }
                if d.role_arn.is_none() && d.bucket.is_none() {
                    problems
                        .push(ConfigProblem::at(at("external_id"), "is sent when assuming role_arn, which is not set"));
                }
            }
            if let Some(owner) = &d.expected_bucket_owner
                && let Err(e) = check_account_id(owner)
            {
                problems.push(ConfigProblem::with_str(at("expected_bucket_owner"), owner, e));
            }
            if let Some(region) = &d.region
                && let Err(e) = check_region(region)
            {
                problems.push(ConfigProblem::with_str(at("region"), region, e));
            }
            if let Some(url) = &d.endpoint_url
                && let Err(e) = check_endpoint_url(url)
            {
                problems.push(ConfigProblem::with_str(at("endpoint_url"), url, e));
            }
            if let Err(e) = layout::normalize_prefix(&d.prefix) {
                problems.push(ConfigProblem::with_str(at("prefix"), &d.prefix, e.reason()));
            }
            if let Err(e) = KeyTemplate::parse(&d.key_template) {
                problems.push(ConfigProblem::with_str(at("key_template"), &d.key_template, e.reason()));
            }
            if let Err(e) = d.format.validate() {
                problems.push(ConfigProblem::new(at("format"), serde_json::to_string(&d.format).ok(), e));
            }
            if d.max_file_rows < 1 {
                problems.push(ConfigProblem::with_num(at("max_file_rows"), d.max_file_rows, "must be at least 1"));
            }
            if d.max_file_bytes < ByteSize::mib(1) {
                problems.push(ConfigProblem::with_num(
                    at("max_file_bytes"),
                    d.max_file_bytes.0,
                    format!("is {}; files must be allowed at least 1 MiB (the default is 256 MiB)", d.max_file_bytes),
                ));
            } else if let Some(export) = self.export {
                // A file may exceed max_file_bytes by a row group; keep half of S3's 10,000
                // parts in reserve for that.
                let limit = export.part_size.0.saturating_mul(5_000);
                if d.max_file_bytes.0 > limit {
                    problems.push(ConfigProblem::with_num(
                        at("max_file_bytes"),
                        d.max_file_bytes.0,
                        format!(
                            "is {}; a file must fit in 5,000 upload parts of export.part_size ({}), i.e. at most {}: raise export.part_size or lower max_file_bytes",
                            d.max_file_bytes,
                            export.part_size,
                            ByteSize(limit)
                        ),
                    ));
                }
            }
            if let Some(Encryption::SseKms { kms_key_id }) = &d.encryption
                && (kms_key_id.trim().is_empty() || kms_key_id.contains(char::is_whitespace))
            {
                problems.push(ConfigProblem::with_str(
                    at("encryption.kms_key_id"),
                    kms_key_id,
                    "must be the customer's KMS key id, key ARN, alias or alias ARN, without spaces",
                ));
            }
            validate_tags(i, &d.tags, problems);
            if let Some(subset) = &d.tables {
                if subset.is_empty() {
                    problems.push(ConfigProblem::at(
                        at("tables"),
                        "list at least one table, or leave tables out to send all",
                    ));
                }
                let mut seen = BTreeSet::new();
                for (j, name) in subset.iter().enumerate() {
                    let path = format!("destinations[{i}].tables[{j}]");
                    if !seen.insert(name.as_str()) {
                        problems.push(ConfigProblem::with_str(path, name, "is listed twice"));
                    } else if let Some(known) = &table_names
                        && !known.contains(&name.as_str())
                    {
                        problems.push(ConfigProblem::with_str(
                            path,
                            name,
                            format!("no such table; the configured tables are: {}", known.join(", ")),
                        ));
                    }
                }
            }
        }
    }
}

fn validate_source(source: &SourceConfig, problems: &mut Vec<ConfigProblem>) {
    match source {
        SourceConfig::Parquet(p) => {
            if p.path.as_os_str().is_empty() {
                problems
                    .push(ConfigProblem::at("source.path", "must not be empty: the lake's root folder, e.g. \"lake\""));
            }
            check_column(problems, "source.tenant_column".to_owned(), &p.tenant_column);
        }
        SourceConfig::Postgres(p) => {
            match (&p.url, &p.secret) {
                (Some(_), Some(_)) => problems.push(ConfigProblem::at(
                    "source",
                    "set exactly one of url (a connection URL) or secret (a Secrets Manager secret in the RDS format); both are set",
                )),
                (None, None) => problems.push(ConfigProblem::at(
                    "source",
                    "set exactly one of url (e.g. \"postgresql://byob@127.0.0.1:5432/platform\") or secret (a Secrets Manager secret ARN or name in the RDS format); neither is set",
                )),
                _ => {}
            }
            if let Some(url) = &p.url
                && let Err(e) = check_postgres_url(url.expose())
            {
                // Never the value: a URL may carry a password.
                problems.push(ConfigProblem::at("source.url", e));
            }
            if let Some(secret) = &p.secret
                && let Err(e) = check_secret_id(secret)
            {
                problems.push(ConfigProblem::at("source.secret", e));
            }
            if p.schema.is_empty() || p.schema.chars().any(char::is_control) {
                problems.push(ConfigProblem::with_str(
                    "source.schema",
                    &p.schema,
                    "must be a schema name: not empty, no control characters (the default is \"public\")",
                ));
            }
            check_column(problems, "source.tenant_column".to_owned(), &p.tenant_column);
            if let Some(ca_file) = &p.ca_file
                && ca_file.as_os_str().is_empty()
            {
                problems.push(ConfigProblem::at(
                    "source.ca_file",
                    "must not be empty; leave it out to trust the system's roots only",
                ));
            }
        }
    }
}

/// Checks a PostgreSQL connection URL without ever echoing it (it may hold a password).
fn check_postgres_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("must be a URL starting with postgresql:// or postgres://, e.g. \"postgresql://byob@127.0.0.1:5432/platform\" (the value is not shown: it may hold a password)".to_owned());
    }
    match url.parse::<tokio_postgres::Config>() {
        Err(e) => Err(format!(
            "is not a valid PostgreSQL URL: {} (the value is not shown: it may hold a password)",
            crate::redact::redact_url(&crate::pg::pg_message(&e), url)
        )),
        Ok(config) if config.get_hosts().is_empty() => Err("names no host".to_owned()),
        Ok(config) if config.get_user().is_none_or(str::is_empty) => {
            Err("names no user (postgresql://USER@host/db)".to_owned())
        }
        Ok(_) => Ok(()),
    }
}

/// Checks the shape of a Secrets Manager secret id: a name (1-512 characters of letters,
/// digits and `/_+=.@-`) or an ARN.
fn check_secret_id(id: &str) -> Result<(), String> {
    let rule = "a secret is its ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>) or its name (1-512 characters of letters, digits and /_+=.@-)";
    if let Some(rest) = id.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(6, ':').collect();
        let ok = parts.len() == 6
            && parts[1] == "secretsmanager"
            && check_region(parts[2]).is_ok()
            && check_account_id(parts[3]).is_ok()
            && parts[4] == "secret"
            && !parts[5].is_empty();
        return if ok { Ok(()) } else { Err(format!("{rule}; this ARN is not a secretsmanager secret ARN")) };
    }
    let len = id.chars().count();
    if (1..=512).contains(&len) && id.chars().all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c)) {
        Ok(())
    } else {
        Err(rule.to_owned())
    }
}

/// Checks a column name is non-empty and without control characters; returns whether it is.
fn check_column(problems: &mut Vec<ConfigProblem>, path: String, column: &str) -> bool {
    if column.trim().is_empty() || column.chars().any(char::is_control) {
        problems.push(ConfigProblem::with_str(path, column, "must be a column name: not empty, no control characters"));
        return false;
    }
    if column.len() > layout::MAX_IDENTIFIER_BYTES {
        problems.push(ConfigProblem::with_str(
            path,
            column,
            "must be at most 63 bytes: warehouses (PostgreSQL) truncate longer names; select it under a shorter alias",
        ));
        return false;
    }
    true
}

fn validate_tags(i: usize, tags: &BTreeMap<String, String>, problems: &mut Vec<ConfigProblem>) {
    if tags.len() > MAX_TAGS {
        problems.push(ConfigProblem::at(
            format!("destinations[{i}].tags"),
            format!("has {} tags; S3 allows at most {MAX_TAGS} per object", tags.len()),
        ));
    }
    let allowed = |c: char| c.is_alphanumeric() || c == ' ' || "+-=._:/@".contains(c);
    for (key, value) in tags {
        let path = push_key(format!("destinations[{i}].tags"), key);
        let len = key.chars().count();
        if !(1..=128).contains(&len) || !key.chars().all(allowed) {
            problems.push(ConfigProblem::with_str(
                path.clone(),
                key,
                "tag keys are 1-128 characters of letters, digits, spaces and +-=._:/@",
            ));
        } else if key.starts_with("aws:") {
            problems.push(ConfigProblem::with_str(
                path.clone(),
                key,
                "tag keys starting with \"aws:\" are reserved by AWS",
            ));
        }
        if value.chars().count() > 256 || !value.chars().all(allowed) {
            problems.push(ConfigProblem::with_str(
                path,
                value,
                "tag values are at most 256 characters of letters, digits, spaces and +-=._:/@",
            ));
        }
    }
}

fn validate_export(export: &ExportConfig, problems: &mut Vec<ConfigProblem>) {
    if !(1..=256).contains(&export.parallelism) {
        problems.push(ConfigProblem::with_num("export.parallelism", export.parallelism, "must be 1-256 tasks at once"));
    }
    if export.part_size < ByteSize::mib(5) || export.part_size > ByteSize::gib(5) {
        problems.push(ConfigProblem::with_num(
            "export.part_size",
            export.part_size.0,
            format!("is {}; S3 multipart parts are 5 MiB to 5 GiB (the default is 8 MiB)", export.part_size),
        ));
    }
    if export.row_group_bytes < ByteSize::mib(1) || export.row_group_bytes > ByteSize::gib(1) {
        problems.push(ConfigProblem::with_num(
            "export.row_group_bytes",
            export.row_group_bytes.0,
            format!("is {}; row groups are 1 MiB to 1 GiB (the default is 32 MiB)", export.row_group_bytes),
        ));
    }
    if export.gzip_level > 9 {
        problems.push(ConfigProblem::with_num("export.gzip_level", export.gzip_level, "gzip levels are 0-9"));
    }
    let sizes = [
        ("export.upload_bytes_in_flight", export.upload_bytes_in_flight, ByteSize::mib(5), ByteSize::gib(5), "32 MiB"),
        ("export.read_ahead_bytes", export.read_ahead_bytes, ByteSize::mib(1), ByteSize::gib(1), "32 MiB"),
        ("export.upload_queue_bytes", export.upload_queue_bytes, ByteSize::mib(1), ByteSize::gib(1), "16 MiB"),
        ("export.gzip_block_bytes", export.gzip_block_bytes, ByteSize::kib(64), ByteSize::mib(64), "2 MiB"),
    ];
    for (path, value, min, max, default) in sizes {
        if value < min || value > max {
            problems.push(ConfigProblem::with_num(
                path,
                value.0,
                format!("is {value}; it must be {min} to {max} (the default is {default})"),
            ));
        }
    }
    if export.target_rows_per_slice < 1 {
        problems.push(ConfigProblem::with_num(
            "export.target_rows_per_slice",
            export.target_rows_per_slice,
            "must be at least 1",
        ));
    }
}

fn validate_aws(aws: &AwsConfig, problems: &mut Vec<ConfigProblem>) {
    if let Some(arn) = &aws.writer_role_arn
        && let Err(e) = RoleArn::parse(arn)
    {
        problems.push(ConfigProblem::with_str("aws.writer_role_arn", arn, e));
    }
    if let Some(region) = &aws.region
        && let Err(e) = check_region(region)
    {
        problems.push(ConfigProblem::with_str("aws.region", region, e));
    }
    if let Some(url) = &aws.endpoint_url
        && let Err(e) = check_endpoint_url(url)
    {
        problems.push(ConfigProblem::with_str("aws.endpoint_url", url, e));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        for ok in ["abc", "acme-data-exports", "my.bucket.name", "a1b", &"a".repeat(63), "1-2", "192.168.5.4a"] {
            check_bucket_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, why) in [
            ("ab", "this one has 2"),
            (&"a".repeat(64), "this one has 64"),
            ("My_Bucket", "'M', '_'"),
            ("my bucket", "' '"),
            ("-abc", "starts or ends"),
            ("abc-", "starts or ends"),
            (".abc", "starts or ends"),
            ("a..b", "two adjacent dots"),
            ("192.168.5.4", "IP address"),
            ("xn--abc", "\"xn--\""),
            ("sthree-abc", "\"sthree-\""),
            ("amzn-s3-demo-bucket", "\"amzn-s3-demo-\""),
            ("abc-s3alias", "\"-s3alias\""),
            ("abc--ol-s3", "\"--ol-s3\""),
            ("abc.mrap", "\".mrap\""),
            ("abc--x-s3", "\"--x-s3\""),
            ("abc--table-s3", "\"--table-s3\""),
        ] {
            let e = check_bucket_name(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn role_arns() {
        let a = RoleArn::parse("arn:aws:iam::123456789012:role/byob-writer").unwrap();
        assert_eq!((a.account_id.as_str(), a.path.as_str(), a.name.as_str()), ("123456789012", "/", "byob-writer"));
        let b = RoleArn::parse("arn:aws-us-gov:iam::123456789012:role/team/data/byob+w=,.@_-1").unwrap();
        assert_eq!(
            (b.partition.as_str(), b.path.as_str(), b.name.as_str()),
            ("aws-us-gov", "/team/data/", "byob+w=,.@_-1")
        );
        assert_eq!(b.to_string(), "arn:aws-us-gov:iam::123456789012:role/team/data/byob+w=,.@_-1");
        RoleArn::parse("arn:aws-cn:iam::123456789012:role/x").unwrap();
        for (bad, why) in [
            ("", "not an ARN"),
            ("byob-writer", "not an ARN"),
            ("arn:aws:iam::123456789012", "not an ARN"),
            ("arn:gcp:iam::123456789012:role/x", "partition"),
            ("arn:aws:s3::123456789012:role/x", "\"s3\""),
            ("arn:aws:iam:eu-west-1:123456789012:role/x", "no region"),
            ("arn:aws:iam::12345678901:role/x", "12 digits"),
            ("arn:aws:iam::12345678901a:role/x", "12 digits"),
            ("arn:aws:iam::123456789012:user/x", "\"role/...\""),
            ("arn:aws:iam::123456789012:role/", "role name \"\""),
            ("arn:aws:iam::123456789012:role/a b", "role name"),
            (&format!("arn:aws:iam::123456789012:role/{}", "x".repeat(65)), "role name"),
            ("arn:aws:iam::123456789012:role/a//b", "role path"),
        ] {
            let e = RoleArn::parse(bad).unwrap_err();
            assert!(e.contains(why) && e.contains("arn:aws:iam::123456789012:role/byob-writer"), "{bad}: {e}");
        }
    }

    #[test]
    fn external_ids_regions_accounts_endpoints() {
        for ok in ["ab", "byob-acme-7f3e9c2a41d8", "a_b+c=d,e.f@g:h/i-j", &"x".repeat(1224)] {
            check_external_id(ok).unwrap();
        }
        for bad in ["a", "", "has space", "tab\t", "é1", &"x".repeat(1225)] {
            assert!(check_external_id(bad).unwrap_err().contains("2-1224"), "{bad}");
        }
        for ok in ["eu-west-1", "us-east-1", "us-gov-west-1", "ap-southeast-2", "cn-north-1", "me-central-10"] {
            check_region(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["", "eu", "eu-west", "euwest1", "EU-west-1", "eu-west-x", "e-west-1", "eu--1", "eu-west-1-", "eu-1"]
        {
            assert!(check_region(bad).is_err(), "{bad}");
        }
        check_account_id("123456789012").unwrap();
        for bad in ["", "12345678901", "1234567890123", "12345678901a"] {
            assert!(check_account_id(bad).is_err(), "{bad}");
        }
        for ok in ["http://127.0.0.1:5000", "https://s3.example.com/base"] {
            check_endpoint_url(ok).unwrap();
        }
        for bad in ["127.0.0.1:5000", "http://", "ftp://x", "http://a b", "http:///x"] {
            assert!(check_endpoint_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sensitive_values_are_never_shown() {
        let p = ConfigProblem::new("source.password", Some("\"hunter2\"".into()), "bad");
        assert_eq!(p.value, None);
        assert!(!p.to_string().contains("hunter2"));
        let p = type_problem("source.db_password".into(), "invalid type: string \"hunter2\", expected u64");
        assert!(!p.to_string().contains("hunter2"), "{p}");
        assert!(ConfigProblem::new("destinations[0].external_id", Some("\"x\"".into()), "m").value.is_some());
    }

    #[test]
    fn paths_quote_unusual_keys() {
        assert_eq!(push_key(String::new(), "export"), "export");
        assert_eq!(push_key("destinations[0].tags".into(), "cost center"), "destinations[0].tags.\"cost center\"");
    }
}
