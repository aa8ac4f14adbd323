//! Our own record of finished runs, per destination.
//!
//! The customer grants PutObject only, so we can never read back their `receipt.json` to learn
//! which run came before. We keep that knowledge on our side instead: the local runner in a
//! folder, the deployed functions in our state bucket. It must never be written to, or read
//! from, a customer's bucket.

use std::path::PathBuf;

use crate::layout::RunId;
use crate::receipt::Receipt;
use crate::{Error, Result};

/// Where finished runs are recorded.
#[async_trait::async_trait]
pub trait StateStore: Send + Sync + std::fmt::Debug {
    /// Every run recorded as finished for `destination`, in no particular order.
    async fn finished_runs(&self, destination: &str) -> Result<Vec<RunId>>;
    /// Records that `destination` finished `receipt.run`.
    async fn record(&self, destination: &str, receipt: &Receipt) -> Result<()>;
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
            if let Some(stem) = name.strip_suffix(".json") {
                if let Ok(run) = stem.replace('_', ":").parse::<RunId>() {
                    runs.push(run);
                }
            }
        }
        Ok(runs)
    }

    async fn record(&self, destination: &str, receipt: &Receipt) -> Result<()> {
        let dir = self.root.join(destination);
        tokio::fs::create_dir_all(&dir).await.map_err(|e| Error::io(&dir, e))?;
        let name = format!("{}.json", receipt.run.to_string().replace(':', "_"));
        let tmp = dir.join(format!(".{name}.tmp"));
        tokio::fs::write(&tmp, receipt.to_json()).await.map_err(|e| Error::io(&tmp, e))?;
        let path = dir.join(name);
        tokio::fs::rename(&tmp, &path).await.map_err(|e| Error::io(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &str) -> RunId {
        s.parse().expect("valid run id")
    }

    #[test]
    fn previous_is_the_latest_strictly_older_run() {
        let finished = [run("2023-03-13T04:00"), run("2023-03-13T15:00"), run("2023-03-14T04:00")];
        assert_eq!(previous_run(&finished, run("2023-03-14T04:00")), Some(run("2023-03-13T15:00")));
        assert_eq!(previous_run(&finished, run("2023-03-15T04:00")), Some(run("2023-03-14T04:00")));
        assert_eq!(previous_run(&finished, run("2023-03-13T04:00")), None);
        assert!(newer_run_exists(&finished, run("2023-03-13T15:00")));
        assert!(!newer_run_exists(&finished, run("2023-03-14T04:00")));
    }

    #[tokio::test]
    async fn local_state_records_and_lists_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = LocalState::new(dir.path());
        assert!(state.finished_runs("acme").await.expect("empty").is_empty());
        let receipt = Receipt::new(
            run("2023-03-14T04:03"),
            None,
            crate::format::Format::default(),
            Default::default(),
            chrono::Utc::now(),
        );
        state.record("acme", &receipt).await.expect("record");
        state.record("acme", &receipt).await.expect("record twice is fine");
        assert_eq!(state.finished_runs("acme").await.expect("list"), vec![run("2023-03-14T04:03")]);
        assert!(state.finished_runs("globex").await.expect("other").is_empty());
    }
}
