//! The finalize function's integration tests in one binary (one link, not one per file).

mod budget;
mod state_machine;
