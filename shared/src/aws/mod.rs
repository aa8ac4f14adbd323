//! Our AWS side: the SDK configuration every client is built from, the role chain into a
//! customer's account, retry classification, Secrets Manager secrets and the IAM policies a
//! customer (and we) must put in place.
//!
//! - [`chain`]: the role chain (execution role -> our writer role -> the customer's role),
//!   each hop an `AssumeRoleProvider` built on the previous hop's provider.
//! - [`retry`]: which SDK errors a retry can fix (one plain function).
//! - [`secrets`]: RDS-format secrets from Secrets Manager, with the password redacted.
//! - [`policy`]: the trust and permission policies `byob iam-policy` prints.
//!
//! This module must never log, display or put into an error a credential, a session token or
//! a secret's value, and must never widen what a customer grants: the only S3 calls it sets up
//! are writes.

pub mod chain;
pub mod policy;
pub mod retry;
pub mod secrets;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::{IdentityCache, SharedCredentialsProvider};

use crate::config::AwsConfig;

pub use chain::{Hop, RoleChain};
pub use retry::is_retriable;
pub use secrets::Secret;

/// Attempts per AWS request (the first try included) before an error is returned: the SDK's
/// standard retry mode retries throttling, 5xx, timeouts and connection errors with
/// exponential backoff and jitter (see [`retry`]).
pub const MAX_ATTEMPTS: u32 = 5;

/// Credentials are refreshed this long before they expire, so a request signed just before
/// the refresh still reaches AWS with valid credentials (the SDK's lazy identity cache).
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(120);

/// The region used with a custom endpoint (moto, MinIO) when none is configured: such servers
/// accept any region, and the SDK refuses to sign without one.
pub const LOCAL_ENDPOINT_REGION: &str = "us-east-1";

/// Something went wrong on our AWS side: setting up the role chain, assuming a role, reading
/// a secret. Names the role, destination or secret id; never a credential or a secret value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AwsError {
    /// A destination cannot be written through a role chain as configured.
    #[error("destination {destination:?}: {reason}")]
    Destination {
        /// The destination id.
        destination: String,
        /// What is missing or wrong, and the fix.
        reason: String,
    },

    /// A hop of a role chain is invalid (bad ARN, duration, session name, ExternalId).
    #[error("role chain hop {hop} ({role_arn}): {reason}")]
    InvalidHop {
        /// 1-based position in the chain.
        hop: usize,
        /// The role the hop assumes.
        role_arn: String,
        /// What is wrong.
        reason: String,
    },

    /// No credentials to start the chain from (the default provider chain found none).
    #[error("no AWS credentials to start the role chain from: {reason}")]
    NoCredentials {
        /// Where the default provider chain looked.
        reason: String,
    },

    /// STS refused or failed to assume a role of the chain.
    #[error("assuming role {role_arn} (hop {hop} of {hops}): {message}")]
    AssumeRole {
        /// The role that could not be assumed.
        role_arn: String,
        /// 1-based position in the chain.
        hop: usize,
        /// Hops in the chain.
        hops: usize,
        /// STS's answer (error code and message), without credentials.
        message: String,
        /// Whether trying again may succeed (throttling, network), see [`retry`].
        retryable: bool,
    },

    /// A secret could not be read or is not in the RDS secret format.
    #[error("secret {secret_id:?}: {reason}")]
    Secret {
        /// The secret's name or ARN (never its value).
        secret_id: String,
        /// What went wrong; never contains the secret's value.
        reason: String,
        /// Whether trying again may succeed.
        retryable: bool,
    },
}

impl AwsError {
    /// Whether trying again may succeed: throttling, timeouts and server errors may pass on
    /// a retry; configuration and permission problems never do.
    pub fn is_retryable(&self) -> bool {
        match self {
            AwsError::AssumeRole { retryable, .. } | AwsError::Secret { retryable, .. } => *retryable,
            AwsError::Destination { .. } | AwsError::InvalidHop { .. } | AwsError::NoCredentials { .. } => false,
        }
    }
}

/// The SDK configuration every client of ours starts from: the default credential provider
/// chain (the Lambda execution role, or the environment on a laptop), `aws.region`,
/// `aws.endpoint_url` for every service, the standard retry mode with [`MAX_ATTEMPTS`].
///
/// Loading reads the environment only; no request is sent until a client is used.
pub async fn sdk_config(aws: &AwsConfig) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(retry_config());
    if let Some(region) = &aws.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &aws.endpoint_url {
        loader = loader.endpoint_url(url.clone());
    }
    let config = loader.load().await;
    if config.region().is_none() && aws.endpoint_url.is_some() {
        return config.into_builder().region(Region::from_static(LOCAL_ENDPOINT_REGION)).build();
    }
    config
}

/// The retry policy of every client: standard mode, [`MAX_ATTEMPTS`] attempts, exponential
/// backoff with full jitter from 200 ms up to 20 s.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(20))
}

/// The identity cache of every client that writes to a customer's bucket: credentials are
/// cached and fetched again [`REFRESH_BEFORE_EXPIRY`] before they expire, so an export longer
/// than one role session (at most an hour when chained) keeps writing.
pub fn identity_cache() -> aws_sdk_s3::config::SharedIdentityCache {
    IdentityCache::lazy().buffer_time(REFRESH_BEFORE_EXPIRY).build()
}

/// Where an S3 client sends requests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Endpoint {
    /// The bucket's region; `None`: the SDK config's.
    pub region: Option<String>,
    /// An S3-compatible endpoint (moto, MinIO); `None`: the SDK config's, or AWS S3. Any custom
    /// endpoint switches to path-style addressing (`http://host/bucket/key`).
    pub endpoint_url: Option<String>,
}

/// An S3 client configuration built on `base`, authenticated by `credentials` (the role
/// chain's provider), with our identity cache and path-style addressing for custom endpoints.
/// Tests add interceptors to the returned builder before building the client.
pub fn s3_config(
    base: &SdkConfig,
    credentials: SharedCredentialsProvider,
    endpoint: &S3Endpoint,
) -> aws_sdk_s3::config::Builder {
    let mut builder =
        aws_sdk_s3::config::Builder::from(base).credentials_provider(credentials).identity_cache(identity_cache());
    if let Some(region) = &endpoint.region {
        builder = builder.region(Region::new(region.clone()));
    }
    if let Some(url) = &endpoint.endpoint_url {
        builder = builder.endpoint_url(url.clone());
    }
    if endpoint.endpoint_url.is_some() || base.endpoint_url().is_some() {
        builder = builder.force_path_style(true);
    }
    builder
}
