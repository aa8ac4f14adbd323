//! `byob iam-policy`: prints the IAM policies one destination needs, as JSON.
//!
//! Without `--only`, one JSON object holds every policy (each a complete IAM policy
//! document) and the role ARNs; `--only trust|permissions|writer|execution` prints that policy
//! alone, ready for `aws iam create-role --assume-role-policy-document file://...` or
//! `aws iam put-role-policy --policy-document file://...`. What each policy grants, and why, is
//! documented in `byob::aws::policy` and the README's "Customer onboarding" section.
//!
//! This module must never print anything but the policies on stdout (they are piped to files).

use std::process::ExitCode;

use byob::aws::policy;
use byob::config::Config;

/// One of the policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Only {
    /// The customer role's trust policy (our writer role, their ExternalId).
    Trust,
    /// The customer role's permission policy (PutObject on the prefix, ...).
    Permissions,
    /// Our writer role's policy (sts:AssumeRole on the customers' roles).
    Writer,
    /// Our execution roles' policy (sts:AssumeRole on the writer role).
    Execution,
}

/// Prints the policies of destination `id`.
pub(crate) fn print(config: &Config, id: &str, only: Option<Only>) -> anyhow::Result<ExitCode> {
    let policies = policy::for_destination(config, id)?;
    let value = match only {
        None => policies.to_json(),
        Some(Only::Trust) => policies.customer_trust_policy,
        Some(Only::Permissions) => policies.customer_permission_policy,
        Some(Only::Writer) => policies.writer_role_policy,
        Some(Only::Execution) => policies.execution_role_policy,
    };
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(ExitCode::SUCCESS)
}
