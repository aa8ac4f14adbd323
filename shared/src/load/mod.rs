//! The customer-side loader: a `receipt.json` in, warehouse tables out, exactly once.
//!
//! [`Loader::load`] reads a receipt (from S3 with the customer's own credentials, or from a
//! local folder), checks it ([`verify`]), asks the target whether it already holds this run
//! or a newer one, fetches every file and checks its size and sha256, and only then hands the
//! verified files to a [`Target`], which stages them and swaps them in atomically.
//!
//! This module must never touch a table before every file of the receipt has been verified,
//! never read a key outside the receipt's own `<prefix>/<run>/` folder, and never put a
//! password in an error or a log line.
//!
//! - [`verify`]: checks on the receipt alone (prefix, keys, totals).
//! - [`event`]: S3 (and S3-via-SQS) notifications -> receipt locations, leniently.
//! - [`read`]: a verified file -> Arrow record batches (Parquet, CSV, JSON lines).
//! - [`postgres`]: the PostgreSQL target.
//! - `duckdb` (feature `duckdb`, the CLI's): the embedded DuckDB target, a local file.

#[cfg(feature = "duckdb")]
pub mod duckdb;
pub mod event;
pub mod postgres;
pub mod read;
pub mod verify;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::increment::{TableMode, Watermark};
use crate::layout::{self, RECEIPT_FILE, RunId};
use crate::receipt::{Receipt, TableReceipt};

#[cfg(feature = "duckdb")]
pub use self::duckdb::DuckDbTarget;
pub use postgres::{DEFAULT_SCHEMA, PostgresTarget, TargetTls, parse_tls_mode};

/// Why a receipt was not loaded. Every variant names the receipt, key or table; none carries
/// a password or a connection URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The receipt is not a valid version-1 receipt or lists something it must not.
    #[error("receipt {receipt}: {reason}")]
    Receipt { receipt: String, reason: String },
    /// A listed file does not exist.
    #[error("receipt {receipt}: file {key:?} is missing")]
    Missing { receipt: String, key: String },
    /// A listed file differs from what the receipt says (size or sha256).
    #[error("receipt {receipt}: file {key:?} {reason}")]
    Tampered { receipt: String, key: String, reason: String },
    /// Reading the receipt or a file failed (network, permissions, disk).
    #[error("reading {location}: {reason}")]
    Read { location: String, reason: String, retryable: bool },
    /// A file could not be decoded into rows of the receipt's schema.
    #[error("table {table:?}, file {key:?}: {reason}")]
    Decode { table: String, key: String, reason: String },
    /// The live table cannot take the receipt's schema.
    #[error("table {table:?}: {reason}")]
    Schema { table: String, reason: String },
    /// The target failed (connection, statement). `target` is its redacted name.
    #[error("target {target}: {reason}")]
    Target { target: String, reason: String, retryable: bool },
    /// An S3 notification could not be understood.
    #[error("event: {0}")]
    Event(String),
    /// An incremental dump does not continue what the warehouse holds: a run in between was
    /// not loaded (or the table never was). Nothing was changed.
    #[error("receipt {receipt}: table {table:?}: {reason}")]
    Gap { receipt: String, table: String, reason: String },

    /// A newer run (or a newer receipt of the same run) is already loaded: the receipt is not
    /// applied (the tables never move backwards), and the operator is told, since a root
    /// receipt never moves backwards either: an older receipt arriving means a backfill by hand,
    /// or a receipt that byob did not write.
    #[error(
        "receipt {receipt}: run {run} is older than run {loaded_run}, already loaded; nothing was changed (to load an older run, load it into another schema)"
    )]
    Older { receipt: String, run: String, loaded_run: String },
    /// The load stopped at an injected failure point (tests of crash safety).
    #[error("load of run {run} interrupted before the swap (injected failure)")]
    Interrupted { run: String },
}

impl LoadError {
    /// Whether delivering the same receipt again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            LoadError::Read { retryable, .. } | LoadError::Target { retryable, .. } => *retryable,
            LoadError::Interrupted { .. } => true,
            _ => false,
        }
    }
}

/// Where a receipt is: a local file or an S3 object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReceiptLocation {
    /// A `receipt.json` on the local file system.
    Path(PathBuf),
    /// `s3://bucket/key`.
    S3 { bucket: String, key: String },
}

impl ReceiptLocation {
    /// `s3://bucket/key` or a path.
    pub fn parse(s: &str) -> Result<ReceiptLocation, LoadError> {
        match s.strip_prefix("s3://") {
            Some(rest) => match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
                    Ok(ReceiptLocation::S3 { bucket: bucket.to_owned(), key: key.to_owned() })
                }
                _ => Err(LoadError::Receipt { receipt: s.to_owned(), reason: "expected s3://bucket/key".into() }),
            },
            None => Ok(ReceiptLocation::Path(PathBuf::from(s))),
        }
    }
}

impl fmt::Display for ReceiptLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReceiptLocation::Path(p) => write!(f, "{}", p.display()),
            ReceiptLocation::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

/// What a target decided about a receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum LoadOutcome {
    /// The receipt's tables were swapped in.
    Loaded(LoadReport),
    /// This very receipt (same sha256) was loaded before.
    Duplicate { receipt: String, run: String },
    /// A newer run (or a newer receipt of the same run) is already loaded.
    Older { receipt: String, run: String, loaded_run: String },
    /// The notification was not about a receipt (s3:TestEvent, another key).
    Ignored { reason: String },
}

/// What one load did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoadReport {
    /// The receipt, as `s3://bucket/key` or a path.
    pub receipt: String,
    /// The run loaded.
    pub run: String,
    /// sha256 of the receipt's bytes.
    pub receipt_sha256: String,
    /// Rows per table, by name.
    pub tables: Vec<(String, u64)>,
    /// Rows over all tables.
    pub rows: u64,
}

/// What a target needs to decide before any file is fetched.
#[derive(Clone, Debug)]
pub struct ReceiptInfo {
    /// The receipt's location, for messages.
    pub location: String,
    /// The parsed receipt.
    pub receipt: Receipt,
    /// sha256 of the receipt's bytes, lowercase hex.
    pub sha256: String,
}

/// A receipt whose every file exists with the listed size and sha256, fetched to local paths.
pub struct VerifiedReceipt {
    /// The receipt.
    pub info: ReceiptInfo,
    paths: HashMap<String, PathBuf>,
    _downloads: Option<tempfile::TempDir>,
}

impl VerifiedReceipt {
    /// The local path of a verified file, by its key in the receipt.
    pub fn path(&self, key: &str) -> Option<&Path> {
        self.paths.get(key).map(PathBuf::as_path)
    }
}

impl fmt::Debug for VerifiedReceipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedReceipt").field("receipt", &self.info.location).finish_non_exhaustive()
    }
}

/// A warehouse the loader writes into.
#[async_trait::async_trait]
pub trait Target: Send + Sync {
    /// The target named without credentials, for messages.
    fn name(&self) -> &str;
    /// Whether `info` is already loaded or older than what is loaded: a cheap read, done
    /// before any file is fetched. `None`: go ahead.
    async fn precheck(&self, info: &ReceiptInfo) -> Result<Option<LoadOutcome>, LoadError>;
    /// Loads a verified receipt all-or-nothing, exactly once (checking again under a lock).
    async fn apply(&self, verified: &VerifiedReceipt) -> Result<LoadOutcome, LoadError>;
}

/// Reads receipts and their files: local paths always, S3 with the client given (the
/// customer's own credentials: the loader runs in their account).
#[derive(Clone, Debug, Default)]
pub struct Loader {
    s3: Option<aws_sdk_s3::Client>,
    scope: Option<Scope>,
    space: Option<u64>,
    tables: Option<std::collections::BTreeSet<String>>,
    pgp: Option<std::sync::Arc<PgpSecretKey>>,
}

/// The OpenPGP secret key that opens encrypted dumps (`pgp_public_key` on the export side).
#[derive(Clone)]
pub struct PgpSecretKey {
    /// The secret key, armored or binary.
    pub key: Vec<u8>,
    /// Its passphrase, when it has one.
    pub passphrase: Option<String>,
}

impl std::fmt::Debug for PgpSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgpSecretKey(<redacted>)")
    }
}

/// The one bucket and prefix a loader reads from, and the account that must own the bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// The dump bucket.
    pub bucket: String,
    /// The prefix inside it (no leading or trailing `/`; empty: the whole bucket).
    pub prefix: String,
    /// The 12-digit account that must own the bucket (sent as ExpectedBucketOwner on every read).
    pub expected_owner: Option<String>,
}

impl Loader {
    /// A loader for local receipts only.
    pub fn local() -> Loader {
        Loader { s3: None, scope: None, space: None, tables: None, pgp: None }
    }

    /// A loader that reads `s3://` receipts with `client`, from any bucket its credentials reach.
    pub fn with_s3(client: aws_sdk_s3::Client) -> Loader {
        Loader { s3: Some(client), scope: None, space: None, tables: None, pgp: None }
    }

    /// Opens encrypted dumps with this secret key: each verified file (the receipt's size and
    /// sha256 are the encrypted object's) is decrypted, integrity checked, before it is read.
    pub fn with_pgp_key(mut self, key: PgpSecretKey) -> Loader {
        self.pgp = Some(std::sync::Arc::new(key));
        self
    }

    /// Reads only receipts (and so files) under `scope`: a notification naming another bucket
    /// or prefix is refused before anything is read, and every read carries ExpectedBucketOwner.
    pub fn within(mut self, scope: Scope) -> Loader {
        self.scope = Some(Scope { prefix: scope.prefix.trim_matches('/').to_owned(), ..scope });
        self
    }

    /// Loads only these tables of any receipt (an allow-list): the others are never read,
    /// created or touched, and a receipt naming none of them is ignored.
    pub fn only_tables(mut self, names: impl IntoIterator<Item = String>) -> Loader {
        self.tables = Some(names.into_iter().collect());
        self
    }

    /// The receipt's tables the allow-list admits (all without one); the rest are logged and
    /// dropped before anything is read.
    fn admitted(&self, mut info: ReceiptInfo) -> Result<ReceiptInfo, LoadOutcome> {
        let Some(allowed) = &self.tables else { return Ok(info) };
        let refused: Vec<String> = info.receipt.tables.keys().filter(|t| !allowed.contains(*t)).cloned().collect();
        if refused.is_empty() {
            return Ok(info);
        }
        tracing::warn!(receipt = %info.location, tables = ?refused, "tables outside the allow-list are not loaded");
        info.receipt.tables.retain(|name, _| allowed.contains(name));
        if info.receipt.tables.is_empty() {
            return Err(LoadOutcome::Ignored {
                reason: format!("{}: none of its tables is in the allow-list (BYOB_LOAD_TABLES)", info.location),
            });
        }
        Ok(info)
    }

    /// Refuses, before reading any file, a receipt whose files total more than `bytes` (the
    /// room its downloads have: a Lambda's ephemeral storage).
    pub fn with_space(mut self, bytes: u64) -> Loader {
        self.space = Some(bytes);
        self
    }

    /// A loader whose S3 client comes from the default credential chain (the Lambda's role),
    /// path-style when an endpoint is configured (`AWS_ENDPOINT_URL`); scoped to
    /// `BYOB_LOAD_BUCKET` / `BYOB_LOAD_PREFIX`, owned by `BYOB_LOAD_BUCKET_OWNER`, with at most
    /// `BYOB_LOAD_SPACE_BYTES` of downloads, loading only the tables in `BYOB_LOAD_TABLES`
    /// (comma separated), each when set (the template sets them).
    pub async fn from_env() -> Loader {
        let base = crate::aws::sdk_config(&crate::config::AwsConfig::default()).await;
        let path_style = base.endpoint_url().is_some();
        let conf = aws_sdk_s3::config::Builder::from(&base).force_path_style(path_style).build();
        let loader = Loader::with_s3(aws_sdk_s3::Client::from_conf(conf));
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let loader = match var("BYOB_LOAD_SPACE_BYTES").and_then(|v| v.parse().ok()) {
            Some(bytes) => loader.with_space(bytes),
            None => loader,
        };
        let loader = match var("BYOB_LOAD_TABLES") {
            Some(list) => {
                loader.only_tables(list.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from))
            }
            None => loader,
        };
        match var("BYOB_LOAD_BUCKET") {
            Some(bucket) => loader.within(Scope {
                bucket,
                prefix: var("BYOB_LOAD_PREFIX").unwrap_or_default(),
                expected_owner: var("BYOB_LOAD_BUCKET_OWNER"),
            }),
            None => loader,
        }
    }

    /// Adds the OpenPGP secret key the environment names, if any: `BYOB_LOAD_PGP_KEY_FILE` (a
    /// file, with `BYOB_LOAD_PGP_PASSPHRASE` when the key has one) or `BYOB_LOAD_PGP_SECRET` (a
    /// Secrets Manager secret holding the armored key, or JSON `{"private_key": ..., "passphrase": ...}`).
    pub async fn with_pgp_from_env(self) -> Result<Loader, LoadError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let bad = |what: &str, reason: String| LoadError::Read { location: what.to_owned(), reason, retryable: false };
        let key = match (var("BYOB_LOAD_PGP_KEY_FILE"), var("BYOB_LOAD_PGP_SECRET")) {
            (Some(path), _) => {
                let key =
                    std::fs::read(&path).map_err(|e| bad(&format!("BYOB_LOAD_PGP_KEY_FILE {path}"), e.to_string()))?;
                PgpSecretKey { key, passphrase: var("BYOB_LOAD_PGP_PASSPHRASE") }
            }
            (None, Some(secret)) => {
                let base = crate::aws::sdk_config(&crate::config::AwsConfig::default()).await;
                let client = aws_sdk_secretsmanager::Client::new(&base);
                let text = crate::aws::secrets::read_string(&client, &secret).await.map_err(|e| LoadError::Read {
                    location: format!("BYOB_LOAD_PGP_SECRET {secret}"),
                    retryable: e.is_retryable(),
                    reason: e.to_string(),
                })?;
                match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(json) => PgpSecretKey {
                        key: json["private_key"]
                            .as_str()
                            .ok_or_else(|| {
                                bad(
                                    &format!("BYOB_LOAD_PGP_SECRET {secret}"),
                                    "a JSON secret needs a \"private_key\" string (and optionally \"passphrase\")"
                                        .into(),
                                )
                            })?
                            .as_bytes()
                            .to_vec(),
                        passphrase: json["passphrase"].as_str().map(str::to_owned),
                    },
                    Err(_) => PgpSecretKey { key: text.into_bytes(), passphrase: None },
                }
            }
            (None, None) => return Ok(self),
        };
        Ok(self.with_pgp_key(key))
    }

    /// Refuses a receipt whose files would not fit in the room downloads have.
    fn check_space(&self, info: &ReceiptInfo) -> Result<(), LoadError> {
        let stored = info.receipt.tables.values().fold(0u64, |sum, t| sum.saturating_add(t.byte_count));
        // Encrypted files are decrypted beside their downloads: room for both.
        let needed = if info.receipt.encryption.is_some() { stored.saturating_mul(2) } else { stored };
        match self.space {
            Some(space) if needed > space => Err(LoadError::Receipt {
                receipt: info.location.clone(),
                reason: format!(
                    "its files total {needed} bytes, more than the {space} bytes this loader may download \
                     (BYOB_LOAD_SPACE_BYTES; raise the function's ephemeral storage, or run byob load where \
                     there is room); no file was read"
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Refuses an S3 receipt outside the loader's scope (a hostile or misrouted notification).
    fn check_scope(&self, location: &ReceiptLocation) -> Result<(), LoadError> {
        let (Some(scope), ReceiptLocation::S3 { bucket, key }) = (&self.scope, location) else { return Ok(()) };
        let inside =
            scope.prefix.is_empty() || key.strip_prefix(&scope.prefix).is_some_and(|rest| rest.starts_with('/'));
        if *bucket == scope.bucket && inside {
            return Ok(());
        }
        let shown: String = format!("s3://{bucket}/{key}").chars().take(verify::SHOWN_CHARS).collect();
        Err(LoadError::Event(format!(
            "{shown} is outside this loader's bucket and prefix (s3://{}/{}); refused without reading it",
            scope.bucket, scope.prefix
        )))
    }

    /// Loads the receipt at `location` into `target`: verify, then apply, exactly once.
    pub async fn load(&self, location: &ReceiptLocation, target: &dyn Target) -> Result<LoadOutcome, LoadError> {
        self.check_scope(location)?;
        let info = match self.admitted(self.read_receipt(location).await?) {
            Ok(info) => info,
            Err(ignored) => {
                log_skip(&ignored);
                return Ok(ignored);
            }
        };
        if matches!(location, ReceiptLocation::S3 { .. }) {
            self.check_space(&info)?;
        }
        if let Some(skip) = target.precheck(&info).await? {
            log_skip(&skip);
            return older_is_an_error(skip);
        }
        let verified = self.verify(location, info).await?;
        let outcome = target.apply(&verified).await?;
        match &outcome {
            LoadOutcome::Loaded(r) => {
                tracing::info!(receipt = %r.receipt, run = %r.run, rows = r.rows, target = target.name(), "loaded");
            }
            other => log_skip(other),
        }
        older_is_an_error(outcome)
    }

    /// Reads and checks a receipt (version, totals, keys): no file is read.
    pub async fn read_receipt(&self, location: &ReceiptLocation) -> Result<ReceiptInfo, LoadError> {
        let name = location.to_string();
        let bytes = match location {
            ReceiptLocation::Path(p) => read_local_receipt(p, &name).await?,
            ReceiptLocation::S3 { bucket, key } => self.get_object(bucket, key).await?.ok_or_else(|| {
                LoadError::Read { location: name.clone(), reason: "no such object".into(), retryable: false }
            })?,
        };
        let bad = |reason: String| LoadError::Receipt { receipt: name.clone(), reason };
        let receipt = Receipt::from_json(&bytes).map_err(bad)?;
        verify::check_receipt(&receipt).map_err(bad)?;
        verify::check_times(&receipt, chrono::Utc::now()).map_err(bad)?;
        // The receipt must sit where its run says it does (also checks the file name).
        let key = match location {
            ReceiptLocation::Path(p) => p.to_string_lossy().replace('\\', "/"),
            ReceiptLocation::S3 { key, .. } => key.clone(),
        };
        verify::prefix_of(&key, &receipt.run).map_err(bad)?;
        Ok(ReceiptInfo { location: name, receipt, sha256: hex::encode(Sha256::digest(&bytes)) })
    }

    /// Fetches every file of the receipt and checks its size and sha256; the first file that
    /// is missing or differs fails the whole receipt. (Whether the files fit the loader's room
    /// is checked once, by [`Loader::load`], before the target is even asked.)
    pub async fn verify(&self, location: &ReceiptLocation, info: ReceiptInfo) -> Result<VerifiedReceipt, LoadError> {
        let receipt_name = info.location.clone();
        let mut paths = HashMap::new();
        let mut downloads = None;
        match location {
            ReceiptLocation::Path(p) => {
                let root = local_prefix(p, &info.receipt.run);
                for table in info.receipt.tables.values() {
                    for f in &table.files {
                        let path = root.join(&f.key);
                        let (bytes, sha) = hash_file(&path).await.map_err(|e| match e.kind() {
                            std::io::ErrorKind::NotFound => {
                                LoadError::Missing { receipt: receipt_name.clone(), key: f.key.clone() }
                            }
                            _ => LoadError::Read {
                                location: path.display().to_string(),
                                reason: e.to_string(),
                                retryable: true,
                            },
                        })?;
                        check_file(&receipt_name, f, bytes, &sha)?;
                        paths.insert(f.key.clone(), path);
                    }
                }
            }
            ReceiptLocation::S3 { bucket, key } => {
                let prefix = verify::prefix_of(key, &info.receipt.run)
                    .map_err(|reason| LoadError::Receipt { receipt: receipt_name.clone(), reason })?;
                let dir = tempfile::tempdir().map_err(|e| LoadError::Read {
                    location: "a temporary folder".into(),
                    reason: e.to_string(),
                    retryable: true,
                })?;
                for (n, f) in info.receipt.tables.values().flat_map(|t| &t.files).enumerate() {
                    let object = layout::join(&prefix, &f.key);
                    let path = dir.path().join(format!("{n:08}"));
                    let Some((bytes, sha)) = self.download(bucket, &object, &path, f.bytes).await? else {
                        return Err(LoadError::Missing { receipt: receipt_name.clone(), key: f.key.clone() });
                    };
                    check_file(&receipt_name, f, bytes, &sha)?;
                    paths.insert(f.key.clone(), path);
                }
                downloads = Some(dir);
            }
        }
        if let Some(encryption) = &info.receipt.encryption {
            let Some(secret) = self.pgp.clone() else {
                return Err(LoadError::Receipt {
                    receipt: receipt_name,
                    reason: format!(
                        "its files are encrypted ({} to key {}); give the loader the secret key: BYOB_LOAD_PGP_KEY_FILE or `byob load --pgp-key-file` (a file), BYOB_LOAD_PGP_SECRET (a Secrets Manager secret)",
                        encryption.kind, encryption.fingerprint
                    ),
                });
            };
            let dir = match downloads.take() {
                Some(dir) => dir,
                None => tempfile::tempdir().map_err(|e| LoadError::Read {
                    location: "a temporary folder".into(),
                    reason: e.to_string(),
                    retryable: true,
                })?,
            };
            for (n, (key, path)) in paths.iter_mut().enumerate() {
                let plain = dir.path().join(format!("{n:08}.plain"));
                let (input, output, secret) = (path.clone(), plain.clone(), secret.clone());
                tokio::task::spawn_blocking(move || {
                    crate::format::pgp::decrypt_file(&input, &output, &secret.key, secret.passphrase.as_deref())
                })
                .await
                .map_err(|e| LoadError::Decode { table: String::new(), key: key.clone(), reason: e.to_string() })?
                .map_err(|e| LoadError::Tampered {
                    receipt: receipt_name.clone(),
                    key: key.clone(),
                    reason: format!("cannot be decrypted: {e}"),
                })?;
                *path = plain;
            }
            downloads = Some(dir);
        }
        Ok(VerifiedReceipt { info, paths, _downloads: downloads })
    }

    fn client(&self, location: &str) -> Result<&aws_sdk_s3::Client, LoadError> {
        self.s3.as_ref().ok_or_else(|| LoadError::Read {
            location: location.to_owned(),
            reason: "this loader has no S3 client".into(),
            retryable: false,
        })
    }

    async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, LoadError> {
        let location = format!("s3://{bucket}/{key}");
        let Some(mut body) = self.open(bucket, key, &location).await? else { return Ok(None) };
        // A receipt over the limit is refused on its Content-Length, or once that many bytes
        // arrived: never read whole into memory.
        let too_big = |size: u64| {
            verify::check_receipt_size(size).map_err(|reason| LoadError::Receipt { receipt: location.clone(), reason })
        };
        too_big(body.size_hint().0)?;
        let mut out = Vec::new();
        while let Some(chunk) = body.try_next().await.map_err(|e| s3_read(&location, e.to_string()))? {
            out.extend_from_slice(&chunk);
            too_big(out.len() as u64)?;
        }
        Ok(Some(out))
    }

    /// Streams an object into `path`, returning its size and sha256; `None` when it does not
    /// exist. An object whose Content-Length differs from the receipt's size is refused before
    /// its body is read, and no more than the receipt's size is ever written.
    async fn download(
        &self,
        bucket: &str,
        key: &str,
        path: &Path,
        expected: u64,
    ) -> Result<Option<(u64, String)>, LoadError> {
        let location = format!("s3://{bucket}/{key}");
        let Some(mut body) = self.open(bucket, key, &location).await? else { return Ok(None) };
        if let (_, Some(length)) = body.size_hint()
            && length != expected
        {
            // The caller reports the size mismatch (check_file), naming the key.
            return Ok(Some((length, String::new())));
        }
        let disk = |e: std::io::Error| LoadError::Read {
            location: path.display().to_string(),
            reason: e.to_string(),
            retryable: true,
        };
        let mut file = tokio::fs::File::create(path).await.map_err(disk)?;
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        while let Some(chunk) = body.try_next().await.map_err(|e| s3_read(&location, e.to_string()))? {
            hasher.update(&chunk);
            bytes += chunk.len() as u64;
            if bytes > expected {
                return Ok(Some((bytes, String::new())));
            }
            file.write_all(&chunk).await.map_err(disk)?;
        }
        file.flush().await.map_err(disk)?;
        Ok(Some((bytes, hex::encode(hasher.finalize()))))
    }

    async fn open(
        &self,
        bucket: &str,
        key: &str,
        location: &str,
    ) -> Result<Option<aws_sdk_s3::primitives::ByteStream>, LoadError> {
        let client = self.client(location)?;
        let owner = self.scope.as_ref().and_then(|s| s.expected_owner.clone());
        match client.get_object().bucket(bucket).key(key).set_expected_bucket_owner(owner).send().await {
            Ok(out) => Ok(Some(out.body)),
            Err(e) => {
                let code = crate::aws::retry::error_code(&e).unwrap_or_default();
                if code == "NoSuchKey" || crate::aws::retry::http_status(&e) == Some(404) {
                    return Ok(None);
                }
                Err(LoadError::Read {
                    location: location.to_owned(),
                    reason: crate::aws::retry::describe(&e),
                    retryable: crate::aws::is_retriable(&e),
                })
            }
        }
    }
}

fn s3_read(location: &str, reason: String) -> LoadError {
    LoadError::Read { location: location.to_owned(), reason, retryable: true }
}

fn log_skip(outcome: &LoadOutcome) {
    match outcome {
        LoadOutcome::Duplicate { receipt, run } => {
            tracing::info!(%receipt, %run, "skipped: this receipt is already loaded");
        }
        LoadOutcome::Older { receipt, run, loaded_run } => {
            tracing::warn!(%receipt, %run, %loaded_run, "skipped: a newer run is already loaded");
        }
        LoadOutcome::Ignored { reason } => tracing::info!(%reason, "ignored"),
        LoadOutcome::Loaded(_) => {}
    }
}

/// A receipt names `table`, which exists as `live` but is not in the loader's registry of the
/// tables it created: every target refuses it the same way.
/// What a warehouse holds of a table with a watermark (`byob_table_ranges`): the run that last
/// loaded it, its watermark column, and how far its rows reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LoadedRange {
    /// The run that last loaded the table.
    pub run: String,
    /// Its watermark column.
    pub column: String,
    /// Its rows reach this watermark (`None`: the full dump had no row with one).
    pub to: Option<Watermark>,
}

/// The table of loaded ranges, in the target schema: one row per table with a watermark,
/// `loaded_to` as JSON (a number, or a quoted date or timestamp).
pub const RANGES_TABLE: &str = "byob_table_ranges";

impl LoadedRange {
    /// A row of [`RANGES_TABLE`]; an unreadable `loaded_to` counts as none (a full dump is then
    /// needed, never a guess).
    pub(crate) fn from_row(run: String, column: String, to: Option<String>) -> LoadedRange {
        LoadedRange { run, column, to: to.and_then(|text| serde_json::from_str(&text).ok()) }
    }
}

/// `loaded_to` as stored in [`RANGES_TABLE`].
pub(crate) fn range_text(to: Option<Watermark>) -> Option<String> {
    to.and_then(|to| serde_json::to_string(&to).ok())
}

/// Refuses a receipt whose incremental tables do not continue what the warehouse holds: each
/// one's range must start at or before the loaded `to` (an overlap is merged; a gap would lose
/// rows), on the same watermark column.
pub(crate) fn check_continuity(info: &ReceiptInfo, loaded: &HashMap<String, LoadedRange>) -> Result<(), LoadError> {
    for (name, table) in &info.receipt.tables {
        if table.mode != TableMode::Incremental {
            continue;
        }
        let (Some(range), Some(builds_on)) = (&table.range, table.builds_on) else { continue };
        let from = range.from.map(|f| f.to_string()).unwrap_or_default();
        let missing = format!(
            "load run {builds_on}'s receipt first (<prefix>/{builds_on}/receipt.run.json), and every run after it, or \
             ask the sender for a full dump; nothing was changed"
        );
        let gap = |reason: String| LoadError::Gap { receipt: info.location.clone(), table: name.clone(), reason };
        let Some(have) = loaded.get(name) else {
            return Err(gap(format!(
                "this incremental dump holds the rows written after {from}, building on run {builds_on}, but this \
                 warehouse never loaded the table with a watermark: {missing}"
            )));
        };
        if have.column != range.column {
            return Err(gap(format!(
                "this incremental dump is by watermark {:?}, the loaded table by {:?} (run {}): ask the sender for a \
                 full dump; nothing was changed",
                range.column, have.column, have.run
            )));
        }
        match (have.to, range.from) {
            (Some(to), Some(from)) if from <= to => {}
            (to, _) => {
                let reach = to.map_or_else(|| "no watermark".to_owned(), |t| format!("rows up to {t}"));
                return Err(gap(format!(
                    "this incremental dump holds the rows written after {from} (run {builds_on} delivered those up \
                     to it), but the loaded table holds {reach}, from run {}: {missing}",
                    have.run
                )));
            }
        }
    }
    Ok(())
}

/// How one table of a receipt goes into its live table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Merge<'a> {
    /// A full dump: every live row is replaced.
    Replace,
    /// Incremental, with a primary key: live rows whose key a staged row has are deleted, then
    /// the staged rows added.
    ByKey(&'a [String]),
    /// Incremental, without a key: live rows whose watermark lies in `(after, through]` (the
    /// range the dump re-read) are deleted, then the staged rows added.
    ByRange { column: &'a str, after: String, through: String },
}

impl<'a> Merge<'a> {
    /// How `table` is applied.
    pub(crate) fn of(table: &'a TableReceipt) -> Merge<'a> {
        let Some(range) = table.range.as_ref().filter(|_| table.mode == TableMode::Incremental) else {
            return Merge::Replace;
        };
        if !table.primary_key.is_empty() {
            return Merge::ByKey(&table.primary_key);
        }
        match (range.reexported_from.or(range.from), range.to) {
            (Some(after), Some(through)) => {
                Merge::ByRange { column: &range.column, after: after.to_string(), through: through.to_string() }
            }
            // A checked receipt never gets here (an incremental range has both ends).
            _ => Merge::Replace,
        }
    }
}

/// The names a swap of one table uses: its live table, its staging table (both quoted), and its
/// columns as a quoted list.
pub(crate) struct SwapNames {
    pub live: String,
    pub staging: String,
    pub list: String,
}

impl SwapNames {
    /// For table `name` of a receipt, loaded into `schema`.
    pub(crate) fn of(schema: &str, name: &str, table: &TableReceipt) -> SwapNames {
        use postgres::{STAGING_SCHEMA, ident};
        let list: Vec<String> = table.schema.iter().map(|c| ident(&c.name)).collect();
        SwapNames {
            live: format!("{}.{}", ident(schema), ident(name)),
            staging: format!("{}.{}", ident(STAGING_SCHEMA), ident(name)),
            list: list.join(", "),
        }
    }
}

/// The name of the index the loader keeps on a merged table's key or watermark: `byob_merge_`
/// and a digest of the table's name (within PostgreSQL's 63 bytes, unique per table).
pub(crate) fn merge_index(table: &str) -> String {
    format!("byob_merge_{}", &hex::encode(Sha256::digest(table.as_bytes()))[..16])
}

pub(crate) fn not_managed(table: &str, live: &str) -> LoadError {
    LoadError::Schema {
        table: table.to_owned(),
        reason: format!(
            "{live} exists but the loader did not create it: it only ever alters, replaces or fills tables it \
             created; rename or drop that table, or load into another schema"
        ),
    }
}

/// An older run is never applied, and never a quiet skip: the caller gets [`LoadError::Older`]
/// (`byob load` exits 1, the load function fails `NonRetryable`).
fn older_is_an_error(outcome: LoadOutcome) -> Result<LoadOutcome, LoadError> {
    match outcome {
        LoadOutcome::Older { receipt, run, loaded_run } => Err(LoadError::Older { receipt, run, loaded_run }),
        other => Ok(other),
    }
}

/// What the load history says about `info`: `duplicate` when its sha256 was loaded, `newest`
/// the (run, receipt timestamp) loaded last. `None`: load it. Every target decides with this.
pub(crate) fn decide(info: &ReceiptInfo, duplicate: bool, newest: Option<(String, String)>) -> Option<LoadOutcome> {
    let run = info.receipt.run.to_string();
    if duplicate {
        return Some(LoadOutcome::Duplicate { receipt: info.location.clone(), run });
    }
    match newest {
        Some((loaded_run, loaded_ts))
            if (loaded_run.as_str(), loaded_ts.as_str()) >= (run.as_str(), info.receipt.timestamp.as_str()) =>
        {
            Some(LoadOutcome::Older { receipt: info.location.clone(), run, loaded_run })
        }
        _ => None,
    }
}

/// The local folder keys are relative to, from the receipt's path (see [`verify::prefix_of`]).
fn local_prefix(receipt: &Path, run: &RunId) -> PathBuf {
    let parent = receipt.parent().unwrap_or(Path::new(""));
    if parent.file_name().is_some_and(|n| n.to_string_lossy() == run.to_string()) {
        parent.parent().unwrap_or(Path::new("")).to_path_buf()
    } else {
        parent.to_path_buf()
    }
}

/// Reads a local receipt; one over [`verify::MAX_RECEIPT_BYTES`] is refused on its size,
/// before it is read.
async fn read_local_receipt(path: &Path, name: &str) -> Result<Vec<u8>, LoadError> {
    use tokio::io::AsyncReadExt;
    let io = |e: std::io::Error| LoadError::Read {
        location: name.to_owned(),
        retryable: e.kind() != std::io::ErrorKind::NotFound,
        reason: e.to_string(),
    };
    let too_big = |size: u64| {
        verify::check_receipt_size(size).map_err(|reason| LoadError::Receipt { receipt: name.to_owned(), reason })
    };
    let file = tokio::fs::File::open(path).await.map_err(io)?;
    too_big(file.metadata().await.map_err(io)?.len())?;
    let mut bytes = Vec::new();
    file.take(verify::MAX_RECEIPT_BYTES + 1).read_to_end(&mut bytes).await.map_err(io)?;
    too_big(bytes.len() as u64)?;
    Ok(bytes)
}

async fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        let mut hasher = Sha256::new();
        let bytes = std::io::copy(&mut file, &mut hasher)?;
        Ok((bytes, hex::encode(hasher.finalize())))
    })
    .await
    .map_err(std::io::Error::other)?
}

fn check_file(receipt: &str, f: &crate::receipt::FileEntry, bytes: u64, sha: &str) -> Result<(), LoadError> {
    let tampered = |reason: String| LoadError::Tampered { receipt: receipt.to_owned(), key: f.key.clone(), reason };
    if bytes != f.bytes {
        return Err(tampered(format!("has {bytes} bytes, the receipt lists {}", f.bytes)));
    }
    if !sha.eq_ignore_ascii_case(&f.sha256) {
        return Err(tampered(format!("has sha256 {sha}, the receipt lists {}", f.sha256)));
    }
    Ok(())
}

/// Loads every receipt an S3 notification (or an SQS message carrying one) names, in order;
/// what is not a receipt is reported as ignored. The Lambda handler calls this.
pub async fn handle_event(
    loader: &Loader,
    target: &dyn Target,
    event: &serde_json::Value,
) -> Result<Vec<LoadOutcome>, LoadError> {
    let mut outcomes = Vec::new();
    for item in event::receipts(event)? {
        match item {
            event::Notification::Receipt(location) => outcomes.push(loader.load(&location, target).await?),
            event::Notification::Ignored(reason) => {
                tracing::info!(%reason, "ignored");
                outcomes.push(LoadOutcome::Ignored { reason });
            }
        }
    }
    Ok(outcomes)
}

/// The deployed loader's target, from the environment: `BYOB_LOAD_SECRET` (a Secrets Manager
/// secret in the RDS format, read with the function's role) or `BYOB_LOAD_URL` (a
/// `postgres://` URL), `BYOB_LOAD_SCHEMA` (default [`DEFAULT_SCHEMA`]), and its TLS
/// ([`TargetTls::from_env`]: verified TLS unless said otherwise).
pub async fn target_from_env() -> Result<PostgresTarget, LoadError> {
    let tls = TargetTls::from_env()?;
    let target =
        match (std::env::var("BYOB_LOAD_SECRET").ok().filter(|s| !s.is_empty()), std::env::var("BYOB_LOAD_URL")) {
            (Some(secret), _) => {
                let base = crate::aws::sdk_config(&crate::config::AwsConfig::default()).await;
                PostgresTarget::from_secret_with(&base, &secret, &tls).await?
            }
            (None, Ok(url)) if !url.is_empty() => PostgresTarget::from_url_with(&url, &tls)?,
            _ => {
                return Err(LoadError::Target {
                    target: "postgres".into(),
                    reason: "set BYOB_LOAD_SECRET (a Secrets Manager secret) or BYOB_LOAD_URL".into(),
                    retryable: false,
                });
            }
        };
    Ok(match std::env::var("BYOB_LOAD_SCHEMA") {
        Ok(schema) if !schema.is_empty() => target.with_schema(&schema),
        _ => target,
    })
}

/// The name of the receipt file, re-exported for the event filter.
pub const RECEIPT: &str = RECEIPT_FILE;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::increment::Range;
    use crate::schema::ColumnSchema;

    fn info(from: i64, builds_on: &str) -> ReceiptInfo {
        let schema = vec![ColumnSchema { name: "w".into(), data_type: "int64".into(), nullable: false }];
        let mut table = TableReceipt::new("2024-01-03T00:00/t".into(), schema, Vec::new());
        table.mode = TableMode::Incremental;
        table.range = Some(Range {
            column: "w".into(),
            from: Some(Watermark::Integer(from)),
            to: Some(Watermark::Integer(from + 10)),
            reexported_from: None,
            full_run: "2024-01-01T00:00".parse().unwrap(),
        });
        table.builds_on = Some(builds_on.parse().unwrap());
        let receipt = Receipt::new(
            "2024-01-03T00:00".parse().unwrap(),
            None,
            crate::format::Format::default(),
            [("t".to_owned(), table)].into(),
            chrono::Utc::now(),
        );
        ReceiptInfo { location: "r".into(), receipt, sha256: String::new() }
    }

    fn loaded(column: &str, to: Option<i64>) -> HashMap<String, LoadedRange> {
        let range =
            LoadedRange { run: "2024-01-01T00:00".into(), column: column.into(), to: to.map(Watermark::Integer) };
        [("t".to_owned(), range)].into()
    }

    #[test]
    fn an_increment_must_start_within_what_is_loaded() {
        // Continues exactly, or overlaps (merged again): loads.
        check_continuity(&info(100, "2024-01-02T00:00"), &loaded("w", Some(100))).unwrap();
        check_continuity(&info(90, "2024-01-02T00:00"), &loaded("w", Some(100))).unwrap();
        // A gap, a table never loaded, another column, no watermark loaded: refused, naming the run.
        for (have, why) in [
            (loaded("w", Some(99)), "rows up to 99"),
            (HashMap::new(), "never loaded"),
            (loaded("v", Some(100)), "by \"v\""),
            (loaded("w", None), "no watermark"),
        ] {
            let e = check_continuity(&info(100, "2024-01-02T00:00"), &have).unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, LoadError::Gap { .. }) && !e.is_retryable(), "{text}");
            assert!(text.contains(why), "{why}: {text}");
            if why != "by \"v\"" {
                assert!(text.contains("2024-01-02T00:00/receipt.run.json"), "{text}");
            }
        }
        // A stored loaded_to that does not parse counts as none.
        assert_eq!(LoadedRange::from_row("r".into(), "w".into(), Some("garbage".into())).to, None);
        assert_eq!(range_text(Some(Watermark::Integer(7))).as_deref(), Some("7"));
    }

    #[test]
    fn merges_follow_the_receipt() {
        let mut table = info(100, "2024-01-02T00:00").receipt.tables.remove("t").unwrap();
        assert_eq!(Merge::of(&table), Merge::ByRange { column: "w", after: "100".into(), through: "110".into() });
        table.range.as_mut().unwrap().reexported_from = Some(Watermark::Integer(40));
        assert!(matches!(Merge::of(&table), Merge::ByRange { ref after, .. } if after == "40"));
        table.primary_key = vec!["w".into()];
        assert_eq!(Merge::of(&table), Merge::ByKey(&["w".to_owned()]));
        table.mode = TableMode::Full;
        assert_eq!(Merge::of(&table), Merge::Replace);
        assert_eq!(merge_index("t").len(), "byob_merge_".len() + 16);
    }
}
