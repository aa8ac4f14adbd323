//! # byob's test kit (dev-only, never in a Lambda package)
//!
//! What the tests, the benchmarks and `byob demo`/`byob generate` build on, kept out of the
//! product library so that it carries no test code and no panicking public items. Helpers
//! here panic on a broken fixture (a test's setup failing is that test's failure).
//!
//! - [`generate`]: the synthetic data platform (the `events`-style tables and `web_events`) that
//!   feeds the demo, the tests and the benchmarks.
//! - [`memory`]: an in-memory source applying the same tenant and slicing rules as the others.
//! - [`conformance`]: the suite every object sink passes (local folder, S3).
//! - [`workflow`]: the deployed steps over a tiny generated lake (the handlers' tests);
//!   [`spec`]: the export settings tests start from.
//! - Local servers: [`moto`] (S3, STS, IAM, Secrets Manager), [`postgres`] (a throwaway
//!   cluster), [`fault_proxy`] (an HTTP proxy that drops, delays and fails requests), [`wire`]
//!   (an SDK interceptor recording and faulting requests), [`files`] (what a folder holds),
//!   [`gpg`] (a throwaway GnuPG home: keys, `gpg --encrypt`/`--decrypt`).
#![allow(clippy::unwrap_used)]

pub mod conformance;
pub mod fault_proxy;
pub mod files;
pub mod generate;
pub mod gpg;
pub mod memory;
pub mod moto;
pub mod postgres;
pub mod spec;
pub mod wire;
pub mod workflow;
