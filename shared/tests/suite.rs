//! Every integration test of the library in one binary: one link instead of one per file
//! (each test binary links the whole AWS SDK and arrow stack). `s3_throughput` stays a binary
//! of its own: it reads its process's peak RSS.

mod config_validation;
mod dump;
mod export;
mod faults;
mod format_roundtrip;
mod hostile_input;
mod hostile_load;
mod incremental;
mod lake_s3;
mod lake_source;
#[cfg(feature = "duckdb")]
mod load_duckdb;
mod load_postgres;
mod load_s3_events;
mod load_support;
mod many_destinations;
mod pgp_gpg;
mod postgres_dump;
mod postgres_secret;
mod postgres_slices;
mod postgres_tls;
mod postgres_types;
mod s3_chain;
mod s3_sink;
mod s3_state;
mod secrets_isolation;
