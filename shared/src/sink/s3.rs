//! The S3 sink: streaming multipart uploads into a customer's bucket.
//!
//! An upload buffers bytes until it holds one part (`export.part_size`, 8 MiB by default),
//! then sends it with UploadPart on a task of its own and keeps accepting bytes; at most
//! [`S3SinkOptions::parts_in_flight`] parts are in flight, after which `put_part` waits for one
//! to finish. Memory per upload is therefore bounded by `(parts_in_flight + 1) x part_size`
//! (the parts in flight and the one being filled), whatever the file's size. An object that
//! fits in one part is sent with a single PutObject on `complete`, never as a multipart upload.
//!
//! Every request carries `ExpectedBucketOwner` (the customer's account), so a look-alike bucket
//! in another account never receives a byte; every part and every PutObject carries a CRC32C
//! checksum we compute ourselves, and CompleteMultipartUpload lists them, so S3 verifies each
//! part and the whole. SSE-S3 / SSE-KMS, the `bucket-owner-full-control` ACL, user metadata and
//! object tags are set when the object is created (PutObject or CreateMultipartUpload).
//!
//! Retries of throttling, 5xx, timeouts and connection errors are the SDK's standard retry
//! mode ([`crate::aws::retry`]); part bodies are in memory, so every retry resends exactly the
//! same bytes. Any failure aborts the multipart upload (AbortMultipartUpload) before the error
//! is returned, so no part is left billed in the customer's bucket; if the abort itself is
//! refused (the role lacks `s3:AbortMultipartUpload`), a warning names bucket, key and upload id.
//!
//! This module must never list, read or head an object (the customer grants PutObject and
//! nothing else), never send a request without `ExpectedBucketOwner` for a destination, and
//! never leave an upload it started neither completed nor aborted.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use aws_config::SdkConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ObjectCannedAcl, ServerSideEncryption,
};
use bytes::Bytes;
use tokio::task::JoinSet;

use super::{ObjectSink, PutOptions, Upload};
use crate::aws::retry::{describe, error_code, http_status, is_retriable};
use crate::aws::{self, AwsError, RoleChain, S3Endpoint};
use crate::config::{Config, DestinationConfig, Encryption, ExportConfig};
use crate::{Error, Result};

/// Parts of one upload sent at once unless configured otherwise.
pub const DEFAULT_PARTS_IN_FLIGHT: usize = 4;

/// S3's smallest part (all but the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// S3's largest part.
pub const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;

/// S3's limit on parts per upload.
pub const MAX_PARTS: i32 = 10_000;

/// How objects are written to one bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3SinkOptions {
    /// The bucket.
    pub bucket: String,
    /// Sent as `ExpectedBucketOwner` on every request: S3 refuses the request (403) if another
    /// account owns the bucket. Always set for a customer's destination.
    pub expected_bucket_owner: Option<String>,
    /// Server-side encryption of every object; `None`: the bucket's default.
    pub encryption: Option<Encryption>,
    /// Sends the `bucket-owner-full-control` canned ACL.
    pub bucket_owner_full_control: bool,
    /// Object tags of every object.
    pub tags: BTreeMap<String, String>,
    /// Bytes per part, 5 MiB to 5 GiB; objects up to this size are sent with one PutObject.
    pub part_size: usize,
    /// Parts of one upload in flight at once (at least 1).
    pub parts_in_flight: usize,
}

impl S3SinkOptions {
    /// Options for `bucket` with default part size (8 MiB) and parallelism, and nothing else.
    pub fn new(bucket: impl Into<String>) -> S3SinkOptions {
        S3SinkOptions {
            bucket: bucket.into(),
            expected_bucket_owner: None,
            encryption: None,
            bucket_owner_full_control: false,
            tags: BTreeMap::new(),
            part_size: ExportConfig::default().part_size.as_usize(),
            parts_in_flight: DEFAULT_PARTS_IN_FLIGHT,
        }
    }

    /// The options a destination's config asks for. Fails unless the destination names a
    /// bucket and a bucket owner (configured, or the account of its `role_arn`).
    pub fn for_destination(destination: &DestinationConfig, export: &ExportConfig) -> Result<S3SinkOptions, AwsError> {
        let problem =
            |reason: &str| AwsError::Destination { destination: destination.id.clone(), reason: reason.to_owned() };
        let bucket = destination.bucket.clone().ok_or_else(|| problem("has no bucket"))?;
        let owner = destination.bucket_owner().ok_or_else(|| {
            problem("has no bucket owner: set expected_bucket_owner or a role_arn, whose account must own the bucket")
        })?;
        Ok(S3SinkOptions {
            bucket,
            expected_bucket_owner: Some(owner),
            encryption: destination.encryption.clone(),
            bucket_owner_full_control: destination.bucket_owner_full_control,
            tags: destination.tags.clone(),
            part_size: export.part_size.as_usize(),
            parts_in_flight: export.parts_in_flight(),
        })
    }

    /// The most bytes one upload holds in memory: the parts in flight and the one being filled.
    pub fn max_buffered_bytes(&self) -> usize {
        self.part_size.saturating_mul(self.parts_in_flight + 1)
    }
}

/// Why an S3 request failed, after the SDK's retries. Names the operation, bucket and key.
#[derive(Debug, thiserror::Error)]
#[error("{operation} on s3://{bucket}/{key} failed: {message}{}", hint(code.as_deref(), *status))]
pub struct S3Error {
    /// The S3 operation, e.g. `UploadPart`.
    pub operation: &'static str,
    /// The bucket.
    pub bucket: String,
    /// The object key.
    pub key: String,
    /// S3's error code (`AccessDenied`, `NoSuchBucket`), when there is one.
    pub code: Option<String>,
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Whether trying again may succeed ([`crate::aws::is_retriable`]).
    pub retryable: bool,
    /// What S3 or the SDK said (never contains credentials).
    pub message: String,
}

fn hint(code: Option<&str>, status: Option<u16>) -> &'static str {
    match (code, status) {
        (Some("AccessDenied"), _) | (_, Some(403)) => {
            "; the customer's role needs s3:PutObject on the prefix (see `byob iam-policy`), the bucket must be owned by the expected account, and with SSE-KMS the role needs kms:GenerateDataKey and kms:Decrypt on the key"
        }
        (Some("NoSuchBucket"), _) => "; check the bucket name (not its ARN) and the region",
        (Some("PermanentRedirect" | "AuthorizationHeaderMalformed"), _) | (_, Some(301)) => {
            "; the bucket is in another region: set the destination's region"
        }
        _ => "",
    }
}

impl S3Error {
    pub(crate) fn from_sdk<E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static>(
        operation: &'static str,
        bucket: &str,
        key: &str,
        error: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> S3Error {
        S3Error {
            operation,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            code: error_code(&error),
            status: http_status(&error),
            retryable: is_retriable(&error),
            message: describe(&error),
        }
    }

    fn other(operation: &'static str, bucket: &str, key: &str, message: String) -> S3Error {
        S3Error {
            operation,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            code: None,
            status: None,
            retryable: false,
            message,
        }
    }

    pub(crate) fn into_error(self) -> Error {
        Error::Sink { target: format!("s3://{}", self.bucket), key: self.key.clone(), source: Box::new(self) }
    }
}

/// Writes objects to one S3 bucket (see the module documentation).
#[derive(Clone)]
pub struct S3Sink {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    options: S3SinkOptions,
    /// `Tagging` as S3 wants it: URL-encoded `key=value&...`.
    tagging: Option<String>,
}

impl fmt::Debug for S3Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Sink").field("options", &self.inner.options).finish_non_exhaustive()
    }
}

impl S3Sink {
    /// A sink writing with `client` (whose credentials, region and endpoint are used as they
    /// are) under `options`. Part size is clamped to S3's 5 MiB - 5 GiB.
    pub fn new(client: Client, mut options: S3SinkOptions) -> S3Sink {
        options.part_size = options.part_size.clamp(MIN_PART_SIZE, MAX_PART_SIZE);
        options.parts_in_flight = options.parts_in_flight.max(1);
        let tagging = (!options.tags.is_empty()).then(|| {
            options
                .tags
                .iter()
                .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
                .collect::<Vec<_>>()
                .join("&")
        });
        S3Sink { inner: Arc::new(Inner { client, options, tagging }) }
    }

    /// The sink of a destination, writing through its role chain (`aws.writer_role_arn`, then
    /// the customer's role with its ExternalId), starting from the default credential chain.
    /// `label` (the run id) goes into the STS session names.
    pub async fn for_destination(config: &Config, destination: &DestinationConfig, label: &str) -> Result<S3Sink> {
        let base = aws::sdk_config(&config.aws).await;
        S3Sink::for_destination_with(&base, config, destination, label).await
    }

    /// [`S3Sink::for_destination`] starting from an SDK config of the caller's (tests, or a
    /// Lambda function that loaded its config once).
    pub async fn for_destination_with(
        base: &SdkConfig,
        config: &Config,
        destination: &DestinationConfig,
        label: &str,
    ) -> Result<S3Sink> {
        let options = S3SinkOptions::for_destination(destination, &config.export)?;
        let chain = RoleChain::for_destination(&config.aws, destination, label)?;
        let credentials = chain.provider(base).await?;
        let endpoint =
            S3Endpoint { region: destination.region.clone(), endpoint_url: destination.endpoint_url.clone() };
        let client = Client::from_conf(aws::s3_config(base, credentials, &endpoint).build());
        Ok(S3Sink::new(client, options))
    }

    /// The options in force (after clamping).
    pub fn options(&self) -> &S3SinkOptions {
        &self.inner.options
    }

    /// The client, for tests that inspect its configuration.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }
}

fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The base64 CRC32C of `bytes`, as S3's `x-amz-checksum-crc32c` wants it.
fn crc32c(bytes: &[u8]) -> String {
    let mut checksum = aws_smithy_checksums::ChecksumAlgorithm::Crc32c.into_impl();
    checksum.update(bytes);
    checksum.header_value().to_str().map(str::to_owned).unwrap_or_default()
}

/// Sets what an object is created with (PutObject and CreateMultipartUpload share these).
macro_rules! object_settings {
    ($request:expr, $inner:expr, $options:expr) => {{
        let o = &$inner.options;
        let mut r = $request
            .bucket(&o.bucket)
            .set_expected_bucket_owner(o.expected_bucket_owner.clone())
            .checksum_algorithm(ChecksumAlgorithm::Crc32C)
            .set_tagging($inner.tagging.clone());
        if !$options.content_type.is_empty() {
            r = r.content_type(&$options.content_type);
        }
        if !$options.metadata.is_empty() {
            r = r.set_metadata(Some(
                $options.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<HashMap<_, _>>(),
            ));
        }
        match &o.encryption {
            Some(Encryption::SseS3) => r = r.server_side_encryption(ServerSideEncryption::Aes256),
            Some(Encryption::SseKms { kms_key_id }) => {
                r = r.server_side_encryption(ServerSideEncryption::AwsKms).ssekms_key_id(kms_key_id)
            }
            None => {}
        }
        if o.bucket_owner_full_control {
            r = r.acl(ObjectCannedAcl::BucketOwnerFullControl);
        }
        r
    }};
}

#[async_trait::async_trait]
impl ObjectSink for S3Sink {
    fn location(&self) -> String {
        format!("s3://{}", self.inner.options.bucket)
    }

    async fn start(&self, key: &str, options: &PutOptions) -> Result<Box<dyn Upload>> {
        if key.is_empty() || key.starts_with('/') || key.len() > 1024 {
            return Err(S3Error::other(
                "start",
                &self.inner.options.bucket,
                key,
                "keys are 1-1024 bytes, not starting with '/'".into(),
            )
            .into_error());
        }
        Ok(Box::new(S3Upload {
            inner: self.inner.clone(),
            key: key.to_owned(),
            options: options.clone(),
            buffer: Vec::new(),
            first_part: None,
            multipart: None,
            finished: false,
        }))
    }
}

/// One object being written.
struct S3Upload {
    inner: Arc<Inner>,
    key: String,
    options: PutOptions,
    /// Bytes not yet sent: less than one part.
    buffer: Vec<u8>,
    /// The first full part, held back until more bytes arrive: an object of exactly one part
    /// is then sent with one PutObject on `complete`, not as a multipart upload.
    first_part: Option<Bytes>,
    /// Set once the object outgrew one part.
    multipart: Option<Multipart>,
    /// Completed or aborted: nothing more may be sent, and dropping needs no cleanup.
    finished: bool,
}

struct Multipart {
    upload_id: String,
    next_part: i32,
    in_flight: JoinSet<Result<CompletedPart, S3Error>>,
    done: Vec<CompletedPart>,
}

impl S3Upload {
    fn error(&self, operation: &'static str, message: impl Into<String>) -> Error {
        S3Error::other(operation, &self.inner.options.bucket, &self.key, message.into()).into_error()
    }

    /// Takes a full part: holds the very first one back (see `first_part`), sends the rest.
    async fn emit(&mut self, part: Bytes) -> Result<()> {
        if self.multipart.is_none() && self.first_part.is_none() {
            self.first_part = Some(part);
            return Ok(());
        }
        self.send(part).await
    }

    /// Queues one full part (or the last one), waiting while too many are in flight.
    async fn send(&mut self, part: Bytes) -> Result<()> {
        if self.multipart.is_none() {
            let output = object_settings!(self.inner.client.create_multipart_upload(), self.inner, self.options)
                .key(&self.key)
                .send()
                .await
                .map_err(|e| {
                    self.finished = true;
                    S3Error::from_sdk("CreateMultipartUpload", &self.inner.options.bucket, &self.key, e).into_error()
                })?;
            let Some(upload_id) = output.upload_id else {
                self.finished = true;
                return Err(self.error("CreateMultipartUpload", "the response has no upload id"));
            };
            tracing::debug!(bucket = %self.inner.options.bucket, key = %self.key, "multipart upload started");
            self.multipart = Some(Multipart { upload_id, next_part: 1, in_flight: JoinSet::new(), done: Vec::new() });
        }
        let limit = self.inner.options.parts_in_flight;
        while let Some(mp) = self.multipart.as_mut() {
            if mp.in_flight.len() < limit {
                break;
            }
            if let Err(e) = Self::collect_one(mp).await {
                return Err(self.fail(e).await);
            }
        }
        let Some(mp) = self.multipart.as_mut() else {
            return Err(self.error("UploadPart", "the upload is closed"));
        };
        let number = mp.next_part;
        if number > MAX_PARTS {
            let e = S3Error::other(
                "UploadPart",
                &self.inner.options.bucket,
                &self.key,
                format!("the object needs more than {MAX_PARTS} parts; raise export.part_size"),
            );
            return Err(self.fail(e).await);
        }
        mp.next_part += 1;
        let (inner, key, upload_id) = (self.inner.clone(), self.key.clone(), mp.upload_id.clone());
        mp.in_flight.spawn(upload_part(inner, key, upload_id, number, part));
        Ok(())
    }

    /// Waits for one part in flight; `Ok` when none is left or it succeeded.
    async fn collect_one(mp: &mut Multipart) -> Result<(), S3Error> {
        match mp.in_flight.join_next().await {
            None => Ok(()),
            Some(Ok(Ok(part))) => {
                mp.done.push(part);
                Ok(())
            }
            Some(Ok(Err(e))) => Err(e),
            Some(Err(join)) => Err(S3Error::other("UploadPart", "", "", format!("the part's task ended: {join}"))),
        }
    }

    /// Aborts the upload after `error`, and returns the error to report.
    async fn fail(&mut self, mut error: S3Error) -> Error {
        if error.bucket.is_empty() {
            error.bucket = self.inner.options.bucket.clone();
            error.key = self.key.clone();
        }
        // A refused abort is already a warning naming bucket, key and upload id; the failure
        // that caused it is what the caller reports.
        let _ = self.abort_multipart().await;
        error.into_error()
    }

    /// Stops the parts in flight and aborts the multipart upload, if one was started. A refused
    /// abort is logged as a warning naming bucket, key and upload id, and returned.
    async fn abort_multipart(&mut self) -> Result<(), S3Error> {
        self.finished = true;
        self.buffer = Vec::new();
        self.first_part = None;
        let Some(mut mp) = self.multipart.take() else { return Ok(()) };
        mp.in_flight.shutdown().await;
        let o = &self.inner.options;
        let result = self
            .inner
            .client
            .abort_multipart_upload()
            .bucket(&o.bucket)
            .key(&self.key)
            .upload_id(&mp.upload_id)
            .set_expected_bucket_owner(o.expected_bucket_owner.clone())
            .send()
            .await;
        match result {
            Ok(_) => {
                tracing::debug!(bucket = %o.bucket, key = %self.key, "multipart upload aborted");
                Ok(())
            }
            Err(e) => {
                let e = S3Error::from_sdk("AbortMultipartUpload", &o.bucket, &self.key, e);
                tracing::warn!(
                    bucket = %o.bucket,
                    key = %self.key,
                    upload_id = %mp.upload_id,
                    error = %e,
                    "could not abort a multipart upload: its parts stay (and are billed) in the customer's bucket until an AbortIncompleteMultipartUpload lifecycle rule removes them; grant s3:AbortMultipartUpload on the prefix"
                );
                Err(e)
            }
        }
    }

    async fn put_object(&mut self) -> Result<()> {
        let body = match self.first_part.take() {
            Some(part) => part,
            None => Bytes::from(std::mem::take(&mut self.buffer)),
        };
        let checksum = crc32c(&body);
        let length = i64::try_from(body.len()).unwrap_or(i64::MAX);
        object_settings!(self.inner.client.put_object(), self.inner, self.options)
            .key(&self.key)
            .checksum_crc32_c(checksum)
            .content_length(length)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| S3Error::from_sdk("PutObject", &self.inner.options.bucket, &self.key, e).into_error())?;
        Ok(())
    }

    async fn complete_multipart(&mut self) -> Result<()> {
        if let Some(first) = self.first_part.take() {
            self.send(first).await?;
        }
        if !self.buffer.is_empty() {
            let last = Bytes::from(std::mem::take(&mut self.buffer));
            self.send(last).await?;
        }
        let Some(mp) = self.multipart.as_mut() else {
            return Err(self.error("CompleteMultipartUpload", "the upload is closed"));
        };
        while !mp.in_flight.is_empty() {
            if let Err(e) = Self::collect_one(mp).await {
                return Err(self.fail(e).await);
            }
        }
        let mut parts = std::mem::take(&mut mp.done);
        parts.sort_by_key(|p| p.part_number);
        let upload_id = mp.upload_id.clone();
        let o = &self.inner.options;
        let result = self
            .inner
            .client
            .complete_multipart_upload()
            .bucket(&o.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .set_expected_bucket_owner(o.expected_bucket_owner.clone())
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await;
        match result {
            Ok(_) => {
                self.multipart = None;
                Ok(())
            }
            Err(e) => {
                let e = S3Error::from_sdk("CompleteMultipartUpload", &o.bucket, &self.key, e);
                Err(self.fail(e).await)
            }
        }
    }
}

async fn upload_part(
    inner: Arc<Inner>,
    key: String,
    upload_id: String,
    number: i32,
    body: Bytes,
) -> Result<CompletedPart, S3Error> {
    let o = &inner.options;
    let checksum = crc32c(&body);
    let length = i64::try_from(body.len()).unwrap_or(i64::MAX);
    let output = inner
        .client
        .upload_part()
        .bucket(&o.bucket)
        .key(&key)
        .upload_id(upload_id)
        .part_number(number)
        .set_expected_bucket_owner(o.expected_bucket_owner.clone())
        .checksum_algorithm(ChecksumAlgorithm::Crc32C)
        .checksum_crc32_c(checksum.clone())
        .content_length(length)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| S3Error::from_sdk("UploadPart", &o.bucket, &key, e))?;
    Ok(CompletedPart::builder().part_number(number).set_e_tag(output.e_tag).checksum_crc32_c(checksum).build())
}

#[async_trait::async_trait]
impl Upload for S3Upload {
    async fn put_part(&mut self, mut data: Bytes) -> Result<()> {
        if self.finished {
            return Err(self.error("UploadPart", "the upload was already completed or aborted"));
        }
        let part_size = self.inner.options.part_size;
        while !data.is_empty() {
            if let Some(first) = self.first_part.take() {
                // More bytes after a full part: this object is a multipart upload.
                self.send(first).await?;
            }
            if self.buffer.is_empty() && data.len() >= part_size {
                // A whole part in the caller's buffer: take it without copying.
                let part = data.split_to(part_size);
                self.emit(part).await?;
                continue;
            }
            if self.buffer.capacity() == 0 {
                self.buffer.reserve_exact(part_size);
            }
            let take = (part_size - self.buffer.len()).min(data.len());
            self.buffer.extend_from_slice(&data.split_to(take));
            if self.buffer.len() >= part_size {
                let part = Bytes::from(std::mem::take(&mut self.buffer));
                self.emit(part).await?;
            }
        }
        Ok(())
    }

    async fn complete(mut self: Box<Self>) -> Result<()> {
        if self.finished {
            return Err(self.error("complete", "the upload was already completed or aborted"));
        }
        let single = self.multipart.is_none() && (self.first_part.is_none() || self.buffer.is_empty());
        let result = if single { self.put_object().await } else { self.complete_multipart().await };
        self.finished = true;
        if result.is_ok() {
            tracing::trace!(bucket = %self.inner.options.bucket, key = %self.key, "object complete");
        }
        result
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.abort_multipart().await.map_err(S3Error::into_error)
    }
}

impl Drop for S3Upload {
    /// An upload dropped mid-way (a cancelled task) still aborts its multipart upload, on a
    /// task of its own, so no parts are left behind.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let Some(mut mp) = self.multipart.take() else { return };
        mp.in_flight.abort_all();
        let (client, o, key) = (self.inner.client.clone(), self.inner.options.clone(), self.key.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    let result = client
                        .abort_multipart_upload()
                        .bucket(&o.bucket)
                        .key(&key)
                        .upload_id(&mp.upload_id)
                        .set_expected_bucket_owner(o.expected_bucket_owner.clone())
                        .send()
                        .await;
                    if let Err(e) = result {
                        tracing::warn!(bucket = %o.bucket, key = %key, upload_id = %mp.upload_id, error = %DisplayErrorContext(&e), "could not abort a dropped multipart upload; a lifecycle rule must remove its parts");
                    }
                });
            }
            Err(_) => {
                tracing::warn!(bucket = %o.bucket, key = %key, upload_id = %mp.upload_id, "a multipart upload was dropped outside a runtime and could not be aborted")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_url_encoded() {
        assert_eq!(url_encode("cost center/a+b=c"), "cost%20center%2Fa%2Bb%3Dc");
        assert_eq!(url_encode("byob"), "byob");
    }

    #[test]
    fn crc32c_is_s3s_base64_form() {
        // RFC 3720's check value for "123456789" is 0xE3069283.
        assert_eq!(crc32c(b"123456789"), "4waSgw==");
    }

    #[test]
    fn memory_bound_is_parts_in_flight_plus_one() {
        let o = S3SinkOptions { part_size: 8 << 20, parts_in_flight: 4, ..S3SinkOptions::new("b") };
        assert_eq!(o.max_buffered_bytes(), 40 << 20);
    }
}
