//! Our own record of finished runs, per destination.
//!
//! The customer grants PutObject only, so we can never read back their `receipt.json` to learn
//! which run came before. We keep that knowledge on our side instead: the local runner in a
//! folder, the deployed functions in our state bucket. It must never be written to, or read
//! from, a customer's bucket.

use std::path::PathBuf;

use crate::layout::RunId;
use crate::receipt::Receipt;
use crate::sink::S3Error;
use crate::{Error, Result};

/// Where finished runs are recorded.
#[async_trait::async_trait]
pub trait StateStore: Send + Sync + std::fmt::Debug {
    /// Every run recorded as finished for `destination`, in no particular order.
    async fn finished_runs(&self, destination: &str) -> Result<Vec<RunId>>;
    /// Records that `destination` finished `receipt.run`.
    async fn record(&self, destination: &str, receipt: &Receipt) -> Result<()>;
    /// The receipt `destination` finished `run` with, as [`StateStore::record`] kept it.
    async fn receipt(&self, destination: &str, run: RunId) -> Result<Receipt>;
    /// Stores an export task's full result (its file list can be large) and returns a pointer
    /// that travels through the state machine instead.
    async fn put_result(&self, run: RunId, result: &crate::plan::TaskResult) -> Result<String>;
    /// Reads a result stored by [`StateStore::put_result`].
    async fn get_result(&self, pointer: &str) -> Result<crate::plan::TaskResult>;
    /// The result of `task` of `run`, read from the key [`StateStore::put_result`] writes it
    /// to, or `None` when none is stored.
    async fn find_result(&self, run: RunId, task: &crate::plan::ExportTask) -> Result<Option<crate::plan::TaskResult>>;
    /// Stores a document of ours (a plan's parts, a run's summary) under `key`, relative to
    /// the state's root, and says where it is.
    async fn put_document(&self, key: &str, body: Vec<u8>) -> Result<Stored>;
    /// The state bucket's name; empty for a local state folder.
    fn bucket(&self) -> &str {
        ""
    }
    /// A stored key ([`Stored::key`]) as [`StateStore::put_document`] takes it: relative to
    /// the state's root.
    fn relative(&self, stored: &str) -> String {
        stored.to_owned()
    }
    /// Reads a document: `key` as [`Stored::key`] gave it (in the state bucket, or relative to
    /// the state folder). A missing document is an error naming it.
    async fn get_document(&self, key: &str) -> Result<Vec<u8>>;
}

/// Where a document was stored: what a Step Functions `ItemReader` needs to read it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stored {
    /// The state bucket; empty for a local state folder.
    pub bucket: String,
    /// The object's key in the bucket (or the path relative to the state folder).
    pub key: String,
}

/// The latest finished run strictly before `run`: the receipt's `previous_run`.
pub fn previous_run(finished: &[RunId], run: RunId) -> Option<RunId> {
    finished.iter().copied().filter(|r| *r < run).max()
}

/// Whether a run newer than `run` already finished (a backfill must not move the root
/// receipt backwards).
pub fn newer_run_exists(finished: &[RunId], run: RunId) -> bool {
    finished.iter().any(|r| *r > run)
}

/// State in a local folder: `<root>/<destination>/<run>.json` holds each finished run's receipt.
#[derive(Debug, Clone)]
pub struct LocalState {
    root: PathBuf,
}

impl LocalState {
    /// State kept under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalState { root: root.into() }
    }
}

#[async_trait::async_trait]
impl StateStore for LocalState {
    async fn finished_runs(&self, destination: &str) -> Result<Vec<RunId>> {
        let dir = self.root.join(destination);
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut runs = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(|e| Error::io(&dir, e))? {
            let name = entry.file_name().to_string_lossy().into_owned();
            // File names use '_' for ':' so they are valid on every file system.
            if let Some(stem) = name.strip_suffix(".json")
                && let Ok(run) = stem.replace('_', ":").parse::<RunId>()
            {
                runs.push(run);
            }
        }
        Ok(runs)
    }

    async fn record(&self, destination: &str, receipt: &Receipt) -> Result<()> {
        let dir = self.root.join(destination);
        tokio::fs::create_dir_all(&dir).await.map_err(|e| Error::io(&dir, e))?;
        let name = run_file(receipt.run);
        let tmp = dir.join(format!(".{name}.tmp"));
        tokio::fs::write(&tmp, receipt.to_json()).await.map_err(|e| Error::io(&tmp, e))?;
        let path = dir.join(name);
        tokio::fs::rename(&tmp, &path).await.map_err(|e| Error::io(&path, e))
    }

    async fn receipt(&self, destination: &str, run: RunId) -> Result<Receipt> {
        let path = self.root.join(destination).join(run_file(run));
        let bytes = tokio::fs::read(&path).await.map_err(|e| Error::io(&path, e))?;
        parse_receipt(&path.display().to_string(), &bytes)
    }

    async fn put_result(&self, run: RunId, result: &crate::plan::TaskResult) -> Result<String> {
        let pointer = result_key(run, &result.task);
        let path = self.root.join(&pointer);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(|e| Error::io(dir, e))?;
        }
        let body = serde_json::to_vec(result).map_err(|e| Error::Receipt(format!("task result: {e}")))?;
        tokio::fs::write(&path, body).await.map_err(|e| Error::io(&path, e))?;
        Ok(pointer)
    }

    /// `pointer` is relative to the state folder (so fixtures and state machines can carry it).
    async fn get_result(&self, pointer: &str) -> Result<crate::plan::TaskResult> {
        let bytes = self.get_document(pointer).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Receipt(format!("task result {pointer:?}: {e}")))
    }

    async fn find_result(&self, run: RunId, task: &crate::plan::ExportTask) -> Result<Option<crate::plan::TaskResult>> {
        let key = result_key(run, task);
        match tokio::fs::metadata(self.root.join(&key)).await {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            _ => self.get_result(&key).await.map(Some),
        }
    }

    async fn put_document(&self, key: &str, body: Vec<u8>) -> Result<Stored> {
        let path = self.inside(key)?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(|e| Error::io(dir, e))?;
        }
        tokio::fs::write(&path, body).await.map_err(|e| Error::io(&path, e))?;
        Ok(Stored { bucket: String::new(), key: key.to_owned() })
    }

    async fn get_document(&self, key: &str) -> Result<Vec<u8>> {
        let path = self.inside(key)?;
        tokio::fs::read(&path).await.map_err(|e| Error::io(&path, e))
    }
}

impl LocalState {
    /// `key` as a path inside the state folder (no `..`, not absolute).
    fn inside(&self, key: &str) -> Result<PathBuf> {
        let relative = std::path::Path::new(key);
        let inside = relative.components().all(|c| matches!(c, std::path::Component::Normal(_)));
        if key.is_empty() || !inside {
            return Err(Error::Receipt(format!("{key:?} is not a path inside the state folder")));
        }
        Ok(self.root.join(relative))
    }
}

/// State in our own S3 bucket: `<prefix>/runs/<destination>/<run>.json` for finished runs,
/// `<prefix>/results/<run>/<destination>/<table>/<slice>-of-<count>.json` for task results.
/// Uses our execution role's credentials, never a customer's.
#[derive(Debug, Clone)]
pub struct S3State {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl S3State {
    /// State under `s3://bucket/prefix`.
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        S3State { client, bucket: bucket.into(), prefix: prefix.into().trim_matches('/').to_string() }
    }

    fn key(&self, rest: &str) -> String {
        crate::layout::join(&self.prefix, rest)
    }

    /// An S3 request on the state bucket failed: S3's verdict decides whether a retry can help
    /// (AccessDenied or NoSuchKey never passes on a retry).
    fn error<E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static>(
        &self,
        operation: &'static str,
        key: &str,
        e: aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> Error {
        S3Error::from_sdk(operation, &self.bucket, key, e).into_error()
    }

    async fn put_json(&self, key: &str, body: Vec<u8>) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(body.into())
            .send()
            .await
            .map_err(|e| self.error("PutObject", key, e))?;
        Ok(())
    }
}

/// A finished run's file name: `<run>.json`, `_` for `:` (valid on every file system).
fn run_file(run: RunId) -> String {
    format!("{}.json", run.to_string().replace(':', "_"))
}

/// A receipt kept in our state, checked as a loader would check it.
fn parse_receipt(location: &str, bytes: &[u8]) -> Result<Receipt> {
    Receipt::from_json(bytes).map_err(|e| Error::Receipt(format!("the state's receipt {location}: {e}")))
}

fn result_key(run: RunId, task: &crate::plan::ExportTask) -> String {
    format!("results/{run}/{}/{}/{}-of-{}.json", task.destination, task.table, task.slice.index, task.slice.count)
        .replace(':', "_")
}

#[async_trait::async_trait]
impl StateStore for S3State {
    async fn finished_runs(&self, destination: &str) -> Result<Vec<RunId>> {
        let prefix = self.key(&format!("runs/{destination}/"));
        let mut runs = Vec::new();
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(&prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("ListObjectsV2", &prefix, e))?;
            for object in page.contents() {
                let name = object.key().and_then(|k| k.rsplit('/').next()).unwrap_or_default();
                if let Some(run) = name.strip_suffix(".json").and_then(|s| s.replace('_', ":").parse::<RunId>().ok()) {
                    runs.push(run);
                }
            }
        }
        Ok(runs)
    }

    async fn record(&self, destination: &str, receipt: &Receipt) -> Result<()> {
        let key = self.key(&format!("runs/{destination}/{}", run_file(receipt.run)));
        self.put_json(&key, receipt.to_json()).await
    }

    async fn receipt(&self, destination: &str, run: RunId) -> Result<Receipt> {
        let key = self.key(&format!("runs/{destination}/{}", run_file(run)));
        let bytes = self.get_document(&key).await?;
        parse_receipt(&format!("s3://{}/{key}", self.bucket), &bytes)
    }

    async fn put_result(&self, run: RunId, result: &crate::plan::TaskResult) -> Result<String> {
        let key = self.key(&result_key(run, &result.task));
        let body = serde_json::to_vec(result).map_err(|e| Error::Receipt(format!("task result: {e}")))?;
        self.put_json(&key, body).await?;
        Ok(format!("s3://{}/{key}", self.bucket))
    }

    async fn get_result(&self, pointer: &str) -> Result<crate::plan::TaskResult> {
        let key = pointer.strip_prefix(&format!("s3://{}/", self.bucket)).ok_or_else(|| {
            Error::Receipt(format!("task result {pointer:?} is not in state bucket {:?}", self.bucket))
        })?;
        let bytes = self.get_document(key).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Receipt(format!("task result {pointer:?}: {e}")))
    }

    async fn find_result(&self, run: RunId, task: &crate::plan::ExportTask) -> Result<Option<crate::plan::TaskResult>> {
        let key = self.key(&result_key(run, task));
        match self.client.get_object().bucket(&self.bucket).key(&key).send().await {
            Ok(object) => {
                let bytes = object.body.collect().await.map_err(|e| body_error(&self.bucket, &key, e))?.into_bytes();
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| Error::Receipt(format!("task result s3://{}/{key}: {e}", self.bucket)))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(self.error("GetObject", &key, e)),
        }
    }

    fn bucket(&self) -> &str {
        &self.bucket
    }

    fn relative(&self, stored: &str) -> String {
        if self.prefix.is_empty() {
            return stored.to_owned();
        }
        stored.strip_prefix(&format!("{}/", self.prefix)).unwrap_or(stored).to_owned()
    }

    async fn put_document(&self, key: &str, body: Vec<u8>) -> Result<Stored> {
        let key = self.key(key);
        self.put_json(&key, body).await?;
        Ok(Stored { bucket: self.bucket.clone(), key })
    }

    async fn get_document(&self, key: &str) -> Result<Vec<u8>> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.error("GetObject", key, e))?;
        Ok(object.body.collect().await.map_err(|e| body_error(&self.bucket, key, e))?.into_bytes().to_vec())
    }
}

/// Loads the config from a path or from `s3://bucket/key` of our own account.
pub async fn load_config(location: &str) -> Result<crate::config::Config> {
    let Some((bucket, key)) = split_s3_url(location) else {
        return Ok(crate::config::Config::load(std::path::Path::new(location))?);
    };
    let sdk = crate::aws::sdk_config(&crate::config::AwsConfig::default()).await;
    let s3 = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(sdk.endpoint_url().is_some()).build();
    let client = aws_sdk_s3::Client::from_conf(s3);
    let object = client
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .map_err(|e| S3Error::from_sdk("GetObject", &bucket, &key, e).into_error())?;
    let bytes = object.body.collect().await.map_err(|e| body_error(&bucket, &key, e))?.into_bytes();
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| crate::config::ConfigErrors::file(format!("s3://{bucket}/{key} is not UTF-8 text")))?;
    let base = std::path::Path::new("/tmp");
    let config = if key.ends_with(".json") {
        crate::config::Config::from_json_str(&text, base)?
    } else {
        crate::config::Config::from_toml_str(&text, base)?
    };
    Ok(config)
}

/// Reading an object's body broke off after S3 answered: a lost connection, worth a retry.
fn body_error(bucket: &str, key: &str, e: impl std::fmt::Display) -> Error {
    S3Error {
        operation: "GetObject",
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        code: None,
        status: None,
        retryable: true,
        message: format!("reading the body: {e}"),
    }
    .into_error()
}

/// `s3://bucket/rest` -> (bucket, rest).
fn split_s3_url(s: &str) -> Option<(String, String)> {
    let rest = s.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    Some((bucket.to_string(), key.to_string()))
}
