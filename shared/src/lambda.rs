//! Glue between the library and the Lambda runtime (feature `lambda`): the error type every
//! function returns, which tells Step Functions whether a retry can help, and the shared
//! start-up of a function (tracing, config, state), done once per container.

use std::sync::Arc;

use lambda_runtime::Diagnostic;

use crate::Error;
use crate::state;
use crate::workflow::Workflow;

/// The `errorType` Step Functions retries on.
pub const RETRYABLE: &str = "Retryable";
/// The `errorType` of errors a retry cannot fix (bad input, bad config, incomplete dump).
pub const NON_RETRYABLE: &str = "NonRetryable";

/// A handler error: its message, and whether a retry can help.
#[derive(Debug)]
pub struct HandlerError(pub Error);

impl From<Error> for HandlerError {
    fn from(e: Error) -> Self {
        HandlerError(e)
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(e: HandlerError) -> Diagnostic {
        Diagnostic {
            error_type: if e.0.is_retryable() { RETRYABLE } else { NON_RETRYABLE }.to_string(),
            error_message: e.0.to_string(),
        }
    }
}

/// A function's `main`: [`crate::malloc::tune`] and tracing first, then `serve` on the
/// multi-threaded Tokio runtime `#[tokio::main]` would build (which cannot run code before
/// its worker threads start).
pub fn start<F>(serve: F) -> Result<(), lambda_runtime::Error>
where
    F: std::future::Future<Output = Result<(), lambda_runtime::Error>>,
{
    crate::malloc::tune();
    // Logs for CloudWatch, level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG` (default info).
    lambda_runtime::tracing::init_default_subscriber();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve)
}

/// Builds the workflow from the environment: `BYOB_CONFIG` is the config's path in the
/// package or an `s3://bucket/key` of our own account; the state store is the config's
/// `[state] path` (an `s3://` URL when deployed).
pub async fn workflow_from_env() -> Result<Workflow, Error> {
    let location = std::env::var("BYOB_CONFIG").map_err(|_| {
        crate::config::ConfigErrors::file("BYOB_CONFIG is not set: point it at the config (a path or s3://bucket/key)")
    })?;
    let config = state::load_config(&location).await?;
    let state = state::store_for(&config).await?;
    Ok(Workflow::new(config, Arc::from(state)))
}
