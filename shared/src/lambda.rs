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
    /// The error as Step Functions sees it (`errorType` decides its Retry); also counted as
    /// the `StepErrors` metric of this function ([`crate::metrics::step_error`]).
    fn from(e: HandlerError) -> Diagnostic {
        let verdict = if e.0.is_retryable() { RETRYABLE } else { NON_RETRYABLE };
        let step = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
        crate::metrics::step_error(&step, verdict);
        Diagnostic { error_type: verdict.to_string(), error_message: e.0.to_string() }
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

/// The workflow of one Lambda container, kept for as long as the config is the same.
///
/// A warm container lives for hours and serves many runs: it keeps the SDK clients, the
/// encoder threads and, per config, a [`Workflow`], never a run's config beyond its run. The
/// dump step reads the config at every invocation, so a scheduled run plans with the config as
/// uploaded now; export and finalize run with the config the plan pinned, reading it again
/// only when theirs differs, and fail `NonRetryable` naming both when it still does.
///
/// Nothing is read at start-up: the first invocation reads the config and builds the
/// workflow, so an S3 hiccup there is that invocation's `Retryable` error, which Step
/// Functions retries, not a failed init (`Runtime.ExitError`, which no Retry can tell from a
/// broken deployment).
///
/// `BYOB_CONFIG` is the config's path in the package or an `s3://bucket/key` of our own
/// account; the state store is the config's `[state] path`, which must be an `s3://` URL.
pub struct Workflows {
    location: String,
    current: tokio::sync::Mutex<Option<Arc<Workflow>>>,
}

impl std::fmt::Debug for Workflows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workflows").field("location", &self.location).finish_non_exhaustive()
    }
}

impl Workflows {
    /// Reads `BYOB_CONFIG` (a function without it fails its start-up: a deployment error no
    /// retry fixes). The config itself is read by the first invocation.
    pub fn from_env() -> Result<Workflows, Error> {
        let location = std::env::var("BYOB_CONFIG").map_err(|_| {
            crate::config::ConfigErrors::file(
                "BYOB_CONFIG is not set: point it at the config (a path or s3://bucket/key)",
            )
        })?;
        Ok(Workflows::at(location))
    }

    /// Workflows over the config at `location`, read on first use.
    pub fn at(location: impl Into<String>) -> Workflows {
        Workflows { location: location.into(), current: tokio::sync::Mutex::new(None) }
    }

    /// The workflow over the config as it is now (read again at every call; rebuilt when it
    /// changed).
    pub async fn latest(&self) -> Result<Arc<Workflow>, Error> {
        let config = state::load_config(&self.location).await?;
        let mut current = self.current.lock().await;
        let sha256 = config.sha256();
        match current.as_ref() {
            Some(workflow) if workflow.config_sha256() == sha256 => Ok(workflow.clone()),
            was => {
                if let Some(was) = was {
                    tracing::info!(config_sha256 = %sha256, was = %was.config_sha256(), "the config changed");
                }
                let workflow = Arc::new(build(config).await?);
                *current = Some(workflow.clone());
                Ok(workflow)
            }
        }
    }

    /// The workflow over the config run `run` was planned with (`planned`, its sha256): this
    /// container's when it matches (no request is made), else the config as it is now, which
    /// must then match. Without a pin (a hand-made event), this container's.
    pub async fn pinned(&self, run: crate::layout::RunId, planned: Option<&str>) -> Result<Arc<Workflow>, Error> {
        let current = self.current.lock().await.clone();
        if let Some(current) = current
            && current.check_config(run, planned).is_ok()
        {
            return Ok(current);
        }
        let latest = self.latest().await?;
        latest.check_config(run, planned)?;
        Ok(latest)
    }
}

async fn build(config: crate::config::Config) -> Result<Workflow, Error> {
    deployed_state(&config)?;
    let sdk = crate::wiring::sdk(&config).await;
    let state = crate::wiring::state(&config, &sdk);
    Ok(Workflow::with_sdk(config, state, sdk))
}

/// The deployed steps run in separate containers: the dump's plan, the exports' results and
/// finalize's checks must meet in one S3 state bucket, never in a container's `/tmp`.
fn deployed_state(config: &crate::config::Config) -> Result<(), Error> {
    let path = config.state.path.to_string_lossy();
    if path.starts_with("s3://") {
        return Ok(());
    }
    Err(crate::config::ConfigErrors::file(format!(
        "[state] path is {path:?}, a local folder: deployed, each step runs in its own Lambda container, so \
         finalize would never see the exports' results; set [state] path = \"s3://<StateBucketName>/\" (the \
         template's state bucket)"
    ))
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Start-up reads nothing: a config that cannot be read now is the first invocation's
    /// error (with its verdict), and the next invocation reads it again.
    #[tokio::test]
    async fn the_config_is_read_by_the_first_invocation_not_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("byob.toml");
        let workflows = Workflows::at(path.display().to_string());
        let e = workflows.latest().await.unwrap_err();
        assert!(e.to_string().contains("byob.toml"), "{e}");
        std::fs::write(
            &path,
            "[source]\ntype = \"parquet\"\npath = \"lake\"\n[[tables]]\nname = \"events\"\n\
             [[destinations]]\nid = \"acme\"\ntenant = \"acme\"\nfolder = \"out\"\n[state]\npath = \"s3://byob-state/\"\n",
        )
        .unwrap();
        let first = workflows.latest().await.unwrap();
        let run = "2024-01-01T00:00".parse().unwrap();
        let again = workflows.pinned(run, Some(first.config_sha256())).await.unwrap();
        assert!(Arc::ptr_eq(&first, &again), "a pinned step reuses the container's workflow");
    }

    #[test]
    fn a_deployed_config_must_keep_its_state_in_s3() {
        let mut config = crate::config::Config::from_toml_str(
            "[source]\ntype = \"parquet\"\npath = \"lake\"\n[[tables]]\nname = \"events\"\n[[destinations]]\nid = \"acme\"\ntenant = \"acme\"\nfolder = \"out\"\n",
            std::path::Path::new("/tmp"),
        )
        .unwrap();
        let e = deployed_state(&config).unwrap_err();
        assert!(!e.is_retryable());
        let message = e.to_string();
        assert!(message.contains("[state] path") && message.contains("s3://"), "{message}");
        config.state.path = "s3://byob-state/prod".into();
        deployed_state(&config).unwrap();
    }
}
