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

    /// Whether running the same step again may succeed: Step Functions retries only these
    /// (`errorType` `Retryable`), everything else fails the destination at once
    /// (`NonRetryable`). The verdicts, kind by kind (README "Errors and retries" has the same table):
    ///
    /// | kind | retried when |
    /// |---|---|
    /// | `Config`, `Layout`, `Format`, `Receipt`, `Incomplete`, `Plan` | never: the same input fails the same way |
    /// | `Source`, PostgreSQL | the connection broke or could not be made, or SQLSTATE class 08/40/53/57/58 or 55P03 ([`crate::pg::is_transient`]), or its secret could not be read for a transient reason; never a missing table or column, an unsupported type, a refused login or unknown database |
    /// | `Source`, Parquet lake | an I/O error other than not found / permission denied / invalid data; never a missing table, column or file, a schema mismatch, a corrupt file |
    /// | `Source`, any other source | always (nothing is known about it) |
    /// | `Sink` (customer bucket, our state bucket) | what S3 said: throttling, 5xx, timeouts, a lost connection; never AccessDenied, NoSuchBucket, NoSuchKey or another 4xx |
    /// | `Io` (a local file) | always |
    /// | `Cancelled` | always |
    /// | `Aws` (role chain, secrets) | STS / Secrets Manager throttling and server errors; never a refused role, an invalid chain, missing credentials |
    /// | `Load` | a transient target or S3 error; never a bad or tampered receipt |
    pub fn is_retryable(&self) -> bool {
        match self {
            // The S3 sink knows what S3 said (AccessDenied is permanent, SlowDown is not).
            Error::Sink { source, .. } => source.downcast_ref::<crate::sink::S3Error>().is_none_or(|e| e.retryable),
            Error::Source { source, .. } => {
                if let Some(e) = source.downcast_ref::<crate::source::postgres::PostgresError>() {
                    e.is_retryable()
                } else if let Some(e) = source.downcast_ref::<crate::source::lake::LakeError>() {
                    e.is_retryable()
                } else {
                    true
                }
            }
            Error::Io { .. } | Error::Cancelled(_) => true,
            Error::Aws(e) => e.is_retryable(),
            Error::Load(e) => e.is_retryable(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::S3Error;
    use crate::source::lake::LakeError;

    fn source(error: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Source { table: "events".into(), location: "here".into(), source: Box::new(error) }
    }

    fn s3(code: &str, retryable: bool) -> Error {
        Error::Sink {
            target: "s3://b".into(),
            key: "k".into(),
            source: Box::new(S3Error {
                operation: "GetObject",
                bucket: "b".into(),
                key: "k".into(),
                code: Some(code.into()),
                status: None,
                retryable,
                message: code.into(),
            }),
        }
    }

    #[test]
    fn each_kind_has_its_verdict() {
        // Permanent kinds.
        assert!(!Error::Config(crate::config::ConfigErrors::file("bad")).is_retryable());
        assert!(!Error::Plan("no destination".into()).is_retryable());
        assert!(!Error::Receipt("bad".into()).is_retryable());
        assert!(!Error::Incomplete { destination: "d".into(), reason: "r".into() }.is_retryable());
        // The lake: only storage hiccups pass on a retry.
        assert!(!source(LakeError::MissingTable).is_retryable());
        assert!(!source(LakeError::NoFiles).is_retryable());
        assert!(!source(LakeError::MissingColumn { column: "c".into(), available: "a".into() }).is_retryable());
        assert!(!source(LakeError::Io(std::io::ErrorKind::NotFound.into())).is_retryable());
        assert!(!source(LakeError::Io(std::io::ErrorKind::PermissionDenied.into())).is_retryable());
        assert!(source(LakeError::Io(std::io::ErrorKind::TimedOut.into())).is_retryable());
        assert!(source(LakeError::Io(std::io::ErrorKind::ConnectionReset.into())).is_retryable());
        // A source that says nothing of its errors: retried.
        assert!(source(std::io::Error::other("unknown")).is_retryable());
        // S3 (customer bucket or our state bucket): S3's verdict.
        assert!(!s3("AccessDenied", false).is_retryable());
        assert!(!s3("NoSuchKey", false).is_retryable());
        assert!(s3("SlowDown", true).is_retryable());
        // Local files and cancellations.
        assert!(Error::io("/tmp/x", std::io::ErrorKind::Other.into()).is_retryable());
        assert!(Error::Cancelled("stopped".into()).is_retryable());
    }
}
