//! Where files go: the object sink interface, and the local folder that stands in for a bucket.
//!
//! The interface has object_store's multipart shape: [`ObjectSink::start`] opens an upload,
//! [`Upload::put_part`] streams bytes, then exactly one of [`Upload::complete`] or
//! [`Upload::abort`]. An object becomes visible under its key only on `complete`, so a crash
//! never leaves a half file under a final key. A sink is write-only by design: the customer
//! grants PutObject and nothing else, so nothing here lists, reads or heads an object.

mod local;
mod s3;

use std::collections::BTreeMap;
use std::fmt::Debug;

use bytes::Bytes;

pub use local::LocalSink;
pub use s3::{DEFAULT_PARTS_IN_FLIGHT, S3Error, S3Sink, S3SinkOptions};

use crate::Result;

/// What is stored with an object besides its bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// `Content-Type`.
    pub content_type: String,
    /// User metadata (`x-amz-meta-*`), e.g. run and table.
    pub metadata: BTreeMap<String, String>,
}

/// A write-only store of objects under keys.
#[async_trait::async_trait]
pub trait ObjectSink: Send + Sync + Debug {
    /// Where this sink writes, for messages: `s3://bucket` or a folder path.
    fn location(&self) -> String;

    /// Starts a streamed upload of `key`. Nothing is visible under `key` until
    /// [`Upload::complete`] succeeds.
    async fn start(&self, key: &str, options: &PutOptions) -> Result<Box<dyn Upload>>;

    /// Stores a small object in one request (receipts, probes).
    async fn put(&self, key: &str, body: Bytes, options: &PutOptions) -> Result<()> {
        let mut upload = self.start(key, options).await?;
        if let Err(e) = upload.put_part(body).await {
            upload.abort().await.ok();
            return Err(e);
        }
        upload.complete().await
    }
}

/// One object being written.
///
/// Callers must end every upload with `complete` or `abort`; [`finish_or_abort`] does it for
/// a fallible body of work.
#[async_trait::async_trait]
pub trait Upload: Send {
    /// Appends bytes. Parts may be of any size; the sink buffers as its backend needs.
    async fn put_part(&mut self, data: Bytes) -> Result<()>;
    /// Appends `pieces`, in order: one call where a sink can write them together.
    async fn put_parts(&mut self, pieces: Vec<Bytes>) -> Result<()> {
        for piece in pieces {
            self.put_part(piece).await?;
        }
        Ok(())
    }
    /// Makes the object visible under its key, replacing any previous object.
    async fn complete(self: Box<Self>) -> Result<()>;
    /// Discards everything written; the key is left as it was.
    async fn abort(self: Box<Self>) -> Result<()>;
}

/// Aborts `upload`, logging (never hiding) a failure to abort: the original error is what the
/// caller reports.
pub async fn abort_quietly(upload: Box<dyn Upload>, key: &str) {
    if let Err(e) = upload.abort().await {
        tracing::warn!(key, error = %e, "could not abort an upload; an incomplete upload may remain until the bucket's lifecycle rule removes it");
    }
}
