//! The library's error type.
//!
//! Every variant names the thing that failed (destination, table, bucket, key, path) and keeps
//! its source. No variant ever carries a secret: credentials and connection strings are
//! redacted before they reach an error.

use std::path::PathBuf;

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in byob.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid; every problem found is listed.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigErrors),

    /// A key template, prefix or run id is invalid.
    #[error(transparent)]
    Layout(#[from] crate::layout::LayoutError),

    /// Encoding rows into a file failed.
    #[error("encoding table {table:?}: {source}")]
    Format {
        table: String,
        #[source]
        source: crate::format::FormatError,
    },

    /// Reading rows from a source failed.
    #[error("reading table {table:?} from {location}: {source}")]
    Source {
        table: String,
        location: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// Writing an object failed.
    #[error("writing {key:?} to {target}: {source}")]
    Sink {
        target: String,
        key: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A local file or folder could not be read or written.
    #[error("{path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A receipt could not be built or parsed.
    #[error("receipt: {0}")]
    Receipt(String),

    /// A destination cannot be finalized: a task failed or a file is unaccounted for.
    #[error("destination {destination:?} is incomplete: {reason}")]
    Incomplete { destination: String, reason: String },

    /// The run cannot be planned (unknown destination or table, source estimate failed).
    #[error("plan: {0}")]
    Plan(String),

    /// A task or step was cancelled before it finished.
    #[error("cancelled: {0}")]
    Cancelled(String),

    /// Our AWS side failed: the role chain, a secret, a destination that cannot be written
    /// through a role chain as configured.
    #[error(transparent)]
    Aws(#[from] crate::aws::AwsError),

    /// The loader could not load a receipt (it names the receipt, key or table).
    #[error(transparent)]
    Load(#[from] crate::load::LoadError),
}

impl Error {
    /// Shorthand for an [`Error::Io`] naming `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// Whether running the same step again may succeed: Step Functions retries only these.
    ///
    /// Bad config, bad input, unsupported types and incomplete dumps are permanent; reading,
    /// writing and AWS errors are treated as transient (the AWS SDK has already retried the
    /// clearly transient ones; a step retry also covers an expired session or a lost
    /// container), except AWS errors known to be permanent (a refused role, a bad chain).
    pub fn is_retryable(&self) -> bool {
        match self {
            // The S3 sink knows what S3 said (AccessDenied is permanent, SlowDown is not).
            Error::Sink { source, .. } => source.downcast_ref::<crate::sink::S3Error>().is_none_or(|e| e.retryable),
            Error::Source { .. } | Error::Io { .. } | Error::Cancelled(_) => true,
            Error::Aws(e) => e.is_retryable(),
            Error::Load(e) => e.is_retryable(),
            _ => false,
        }
    }
}
