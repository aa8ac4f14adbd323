//! # byob: the library every function and the CLI call
//!
//! One code path for every way a dump runs: the Lambda functions, the CLI's local runner
//! and the tests all call the functions here, so what is tested is what is deployed.
//!
//! # Layout
//!
//! - [`config`]: the one configuration schema (TOML or JSON), documented field by field, the
//!   validation that rejects bad input before anything is written, and per-destination schedules.
//! - [`layout`]: run ids, key templates and the bucket layout (Dreamdata's, by default).
//! - [`format`]: file formats (Parquet, CSV with its options, JSON lines, Avro), codecs, the
//!   encoders that turn Arrow record batches into file bytes (reporting rows, bytes and sha256),
//!   and OpenPGP encryption of those bytes to a customer's key ([`format::pgp`]).
//! - [`source`]: where rows come from: a stream of Arrow record batches for one tenant.
//! - [`sink`]: where files go: the multipart object sink interface, the local folder sink and
//!   the S3 sink (streaming multipart uploads into a customer's bucket).
//! - [`receipt`]: `receipt.json` version 1, the contract with every loader (and AEP's manifest).
//! - [`schema`]: the portable column type names written into the receipt.
//! - [`export`]: one export task: source -> encoder -> sink, rolling files over at size limits,
//!   split by date partition when a destination asks.
//! - [`plan`]: destinations x tables x slices -> export tasks, and their results.
//! - [`increment`]: incremental dumps: watermarks, each run's range, full or incremental.
//! - [`finalize`]: verify every task of a destination, then write its receipts, last.
//! - [`wiring`]: from a config to the parts every runner uses (source, sinks, state store,
//!   export settings, one shared SDK config); nothing else builds them.
//! - [`run`]: the in-process runner: plan -> bounded-parallel exports -> finalize (the export
//!   loop `byob export` shares).
//! - [`state`]: our own record of finished runs (for `previous_run`), never the customer's bucket.
//! - [`workflow`]: the deployed workflow's steps (dump, export, finalize, failure, summary) over
//!   the JSON Step Functions passes; it never imports [`run`]; [`lambda`] (feature `lambda`) is
//!   the Lambda glue; [`metrics`]: the CloudWatch Embedded Metric Format lines the steps write.
//! - [`load`]: the customer-side loader: verify a receipt and its files, then load them into a
//!   warehouse (PostgreSQL) exactly once, staged and swapped atomically; S3 notifications.
//! - [`aws`]: our AWS side: the role chain into a customer's account, SDK configuration,
//!   retry classification, Secrets Manager secrets and the IAM policies `byob iam-policy` prints.
//! - [`names`], [`redact`], [`pg`]: leaves every layer shares: AWS name rules (STS session
//!   names), secret redaction for error text, PostgreSQL error text and retry verdicts.
//! - [`error`]: the library's error type.
//!
//! No test code lives here: the generator, the in-memory source, the sink conformance suite
//! and the local servers' harnesses are the dev-only `byob-testkit` crate (`testkit/`).
//! - [`malloc`]: glibc malloc settings every binary applies first thing (flat peak RSS).

// The PostgreSQL source's `async_trait` futures nest deeper than rustc's default query depth
// once rpgp (format::pgp) is in the crate graph ("queries overflow the depth limit" computing
// their layout).
#![recursion_limit = "256"]

pub mod aws;
pub mod config;
pub mod error;
pub mod export;
pub mod finalize;
pub mod format;
pub mod increment;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod layout;
pub mod load;
pub mod malloc;
pub mod metrics;
pub mod names;
pub mod pg;
pub mod plan;
pub mod receipt;
pub mod redact;
pub mod run;
pub mod schema;
pub mod sink;
pub mod source;
pub mod state;
pub mod wiring;
pub mod workflow;

pub use error::{Error, Result};
