//! Every test of the `byob` binary in one test binary (one link, not one per file).

mod check;
mod cli;
mod export;
mod faults_kill;
