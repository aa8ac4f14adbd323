//! The encoders' worker threads: one small, fixed pool per process, shared by every encoder.
//!
//! Parquet column chunks and gzip blocks are CPU work that runs here, so an export uses every
//! core the Lambda has while at most [`threads`] jobs run at once, however many files are
//! being encoded. Jobs own what they work on (`'static`) and hand it back through a
//! [`Pending`], so no encoder state is shared between threads. A job never waits for another
//! job, so the pool cannot deadlock.
//!
//! The threads are started on first use and live as long as the process (a Lambda reuses
//! them across invocations).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

use super::FormatError;

type Job = Box<dyn FnOnce() + Send + 'static>;

struct Pool {
    jobs: Mutex<Sender<Job>>,
    threads: usize,
}

static POOL: OnceLock<Pool> = OnceLock::new();

/// How many worker threads the pool has: the available parallelism (vCPUs), at least 1.
pub(crate) fn threads() -> usize {
    pool().threads
}

fn pool() -> &'static Pool {
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 0;
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new().name(format!("byob-encode-{i}")).spawn(move || worker(&rx));
            started += usize::from(spawned.is_ok());
        }
        Pool { jobs: Mutex::new(tx), threads: started }
    })
}

fn worker(jobs: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while taking a job, never while running one.
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

/// The result of a job handed to the pool.
pub(crate) struct Pending<T> {
    rx: Receiver<Result<T, FormatError>>,
}

impl<T> Pending<T> {
    /// Waits for the job and returns its result.
    pub(crate) fn wait(self) -> Result<T, FormatError> {
        self.rx.recv().unwrap_or_else(|_| Err(lost()))
    }

    /// The result if the job has finished, `None` while it runs.
    pub(crate) fn try_take(&mut self) -> Option<Result<T, FormatError>> {
        match self.rx.try_recv() {
            Ok(result) => Some(result),
            Err(mpsc::TryRecvError::Empty) => None,
            Err(mpsc::TryRecvError::Disconnected) => Some(Err(lost())),
        }
    }
}

fn lost() -> FormatError {
    FormatError::Worker("an encoder thread stopped before finishing its job".into())
}

/// Runs `job` on the pool (on the calling thread if no worker could be started).
///
/// Where panics unwind (debug builds, tests, a library user's own profile), a job that panics
/// becomes a [`FormatError::Worker`] and the worker thread lives on. byob's release profile
/// (Lambda and the CLI) has `panic = "abort"`: there a panic ends the process, which a Lambda
/// reports as `Runtime.ExitError` and Step Functions retries; nothing here can catch it.
pub(crate) fn spawn<T: Send + 'static>(job: impl FnOnce() -> Result<T, FormatError> + Send + 'static) -> Pending<T> {
    let (tx, rx) = mpsc::channel();
    let run = move || {
        let result = catch_unwind(AssertUnwindSafe(job)).unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(FormatError::Worker(format!("an encoder job panicked: {message}")))
        });
        // The waiter may have given up (its encoder failed or was dropped): nothing to do.
        let _ = tx.send(result);
    };
    let pool = pool();
    let job: Job = Box::new(run);
    let leftover = match pool.jobs.lock() {
        Ok(jobs) if pool.threads > 0 => jobs.send(job).err().map(|unsent| unsent.0),
        _ => Some(job),
    };
    // No worker to take it (none could be started): the job runs on this thread.
    if let Some(job) = leftover {
        job();
    }
    Pending { rx }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_and_hand_back_what_they_own() {
        let pending: Vec<_> = (0..32u64).map(|i| spawn(move || Ok(vec![i; 1000]))).collect();
        for (i, p) in pending.into_iter().enumerate() {
            assert_eq!(p.wait().unwrap(), vec![i as u64; 1000]);
        }
        assert!(threads() >= 1);
    }

    #[test]
    fn a_panicking_job_is_an_error_and_the_pool_lives_on() {
        let failed = spawn::<()>(|| panic!("boom")).wait();
        assert!(matches!(failed, Err(FormatError::Worker(m)) if m.contains("boom")));
        assert_eq!(spawn(|| Ok(7)).wait().unwrap(), 7);
    }
}
