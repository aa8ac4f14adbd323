//! `byob check`: the onboarding preflight of one destination.
//!
//! Runs every step the real export depends on, in order, and prints each with PASS or FAIL,
//! what was seen, and the fix:
//!
//! 1. our own credentials (the default provider chain);
//! 2. every hop of the role chain, one at a time (our writer role, then the customer's role
//!    with its ExternalId);
//! 3. the customer's role WITHOUT the ExternalId: if STS grants that, the customer's trust
//!    policy lacks the `sts:ExternalId` condition, a SECURITY problem (confused deputy);
//! 4. a probe object `<prefix>/.byob-probe/<UTC time>` written exactly as exports are written
//!    (ExpectedBucketOwner, encryption, ACL, tags), proving `s3:PutObject` (and KMS) rights;
//! 5. the bucket owner: a second probe naming ANOTHER account as ExpectedBucketOwner must be
//!    refused; if it is accepted, the endpoint does not check the owner and it cannot be
//!    verified.
//!
//! The probes stay in the bucket (byob may not delete): they are small JSON documents, and
//! the README's lifecycle advice expires `.byob-probe/`. Exit code 0 only when every step
//! passed. This module must never print a credential, and never write outside the prefix.

use std::process::ExitCode;

use anyhow::bail;
use byob::aws::{self, AwsError, RoleChain, chain::caller_arn};
use byob::config::{Config, DestinationConfig};
use byob::layout;
use byob::sink::{ObjectSink, PutOptions, S3Error, S3Sink, S3SinkOptions};
use bytes::Bytes;
use chrono::Utc;

/// The folder under the prefix that receives probe objects.
pub(crate) const PROBE_FOLDER: &str = ".byob-probe";

/// Counts and prints steps.
#[derive(Default)]
struct Report {
    passed: usize,
    failed: usize,
}

impl Report {
    fn pass(&mut self, title: &str, detail: &str) {
        self.passed += 1;
        println!("PASS  {title}");
        if !detail.is_empty() {
            println!("      {detail}");
        }
    }

    fn fail(&mut self, title: &str, why: &str, fix: &str) {
        self.failed += 1;
        println!("FAIL  {title}");
        println!("      {why}");
        println!("      fix: {fix}");
    }

    fn skip(&mut self, title: &str, why: &str) {
        self.failed += 1;
        println!("SKIP  {title}");
        println!("      {why}");
    }
}

/// The customer's OpenPGP key: parsed, usable now (algorithm, size, expiry, revocation), and
/// how long it stays so.
fn check_pgp_key(text: &str, report: &mut Report) {
    let title = "the OpenPGP key files are encrypted to";
    let fix =
        "ask the customer for a current RSA (2048+ bits) or Curve25519 encryption key and paste it as pgp_public_key";
    let checked =
        byob::format::pgp::RecipientKey::parse(text.as_bytes()).and_then(|key| key.check(std::time::SystemTime::now()));
    match checked {
        Ok(info) => {
            let bits = info.bits.map(|b| format!(" {b} bits")).unwrap_or_default();
            let expires = match info.expires {
                Some(at) => format!("expires {}", chrono::DateTime::<Utc>::from(at).format("%Y-%m-%d")),
                None => "does not expire".to_owned(),
            };
            let detail = format!(
                "{} ({}{bits}), encryption key {}, {expires}, {}",
                info.fingerprint,
                info.algorithm,
                info.encryption_fingerprint,
                info.user_ids.join("; ")
            );
            report.pass(title, &detail);
        }
        Err(e) => report.fail(title, &e.to_string(), fix),
    }
}

/// Runs the preflight of destination `id`; exit code 0 only when every step passed.
pub(crate) async fn check(config: &Config, id: &str) -> anyhow::Result<ExitCode> {
    let Some(destination) = config.destination(id) else {
        let ids: Vec<&str> = config.destinations.iter().map(|d| d.id.as_str()).collect();
        bail!("no destination {id:?} in the config; the configured ones are: {}", ids.join(", "));
    };
    let Some(bucket) = destination.bucket.as_deref() else {
        bail!("destination {id:?} writes to a local folder; `byob check` checks S3 destinations");
    };
    let now = Utc::now();
    let label = format!("check-{}", now.format("%Y%m%dT%H%M%SZ"));
    println!("byob check: destination {id:?} -> s3://{bucket}/{}", destination.prefix);
    println!();

    let mut report = Report::default();
    if let Some(text) = &destination.pgp_public_key {
        check_pgp_key(text, &mut report);
    }
    run_steps(config, destination, &label, now, &mut report).await;

    println!();
    println!("{} passed, {} failed", report.passed, report.failed);
    Ok(if report.failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn run_steps(
    config: &Config,
    destination: &DestinationConfig,
    label: &str,
    now: chrono::DateTime<Utc>,
    report: &mut Report,
) {
    let base = aws::sdk_config(&config.aws).await;
    let later = |report: &mut Report, why: &str| {
        for step in ["the ExternalId guard", "write a probe object", "bucket owner"] {
            report.skip(step, why);
        }
    };

    let chain = match RoleChain::for_destination(&config.aws, destination, label) {
        Ok(chain) => chain,
        Err(e) => {
            report.fail(
                "the role chain",
                &e.to_string(),
                "set the destination's role_arn and external_id (byob config validate lists what is missing)",
            );
            return later(report, "needs a role chain");
        }
    };

    // 1. Our own credentials (the chain's hop 0).
    let own_fix = "run where the execution role's credentials are (Lambda), or set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY";
    match chain.first(0).assume(&base).await {
        Ok(credentials) => {
            let who =
                caller_arn(&base, credentials).await.unwrap_or_else(|| "(GetCallerIdentity did not answer)".into());
            report.pass("our AWS credentials", &who);
        }
        Err(e) => {
            report.fail("our AWS credentials", &e.to_string(), own_fix);
            return later(report, "needs our credentials");
        }
    }

    // 2. Each hop of the chain.
    let hops = chain.hops().len();
    for n in 1..=hops {
        let hop = &chain.hops()[n - 1];
        let title = format!("assume hop {n} of {hops}: {}", hop.role_arn);
        match chain.first(n).assume(&base).await {
            Ok(credentials) => {
                let who = caller_arn(&base, credentials).await.unwrap_or_default();
                let with = hop.external_id.as_ref().map(|e| format!(" with ExternalId {e}")).unwrap_or_default();
                report.pass(&title, &format!("session {}{with} {who}", hop.session_name));
            }
            Err(e) => {
                let previous =
                    if n == 1 { "our execution role".to_owned() } else { chain.hops()[n - 2].role_arn.clone() };
                let fix = if n == hops {
                    format!(
                        "the customer's role must trust {previous} with the condition sts:ExternalId = {:?} (see `byob iam-policy ... --only trust`), and {previous} needs sts:AssumeRole on {} (`--only writer`)",
                        hop.external_id.as_deref().unwrap_or(""),
                        hop.role_arn
                    )
                } else {
                    format!(
                        "{previous} needs sts:AssumeRole on {} (`byob iam-policy ... --only execution`), and that role's trust policy must trust {previous}",
                        hop.role_arn
                    )
                };
                report.fail(&title, &assume_message(&e), &fix);
                for m in n + 1..=hops {
                    report.skip(
                        &format!("assume hop {m} of {hops}: {}", chain.hops()[m - 1].role_arn),
                        "needs the hop before it",
                    );
                }
                return later(report, "needs every hop of the chain");
            }
        }
    }

    // 3. The ExternalId guard.
    let customer = &chain.hops()[hops - 1];
    match chain.without_external_id().assume(&base).await {
        Ok(_) => report.fail(
            "SECURITY: the customer's role can be assumed WITHOUT the ExternalId",
            &format!("STS granted {} to a request that sent no ExternalId: anyone our writer role works for could be tricked into writing here (the confused deputy)", customer.role_arn),
            &format!(
                "add to the role's trust policy: \"Condition\": {{\"StringEquals\": {{\"sts:ExternalId\": {:?}}}}} (see `byob iam-policy ... --only trust`)",
                customer.external_id.as_deref().unwrap_or("")
            ),
        ),
        Err(_) => report.pass(
            "the ExternalId guard",
            &format!("STS refused {} without the ExternalId, as it must", customer.role_arn),
        ),
    }

    // 4. The probe object.
    let sink = match S3Sink::for_destination_with(&base, config, destination, label).await {
        Ok(sink) => sink,
        Err(e) => {
            report.fail("write a probe object", &e.to_string(), "fix the destination's bucket settings");
            return report.skip("bucket owner", "needs the probe");
        }
    };
    let prefix = layout::normalize_prefix(&destination.prefix).unwrap_or_default();
    let stamp = now.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let key = layout::join(&prefix, &format!("{PROBE_FOLDER}/{stamp}"));
    let owner = sink.options().expected_bucket_owner.clone().unwrap_or_default();
    let body = serde_json::json!({"byob": "probe", "destination": destination.id, "time": stamp, "note": "written by `byob check`; safe to delete"});
    let options = PutOptions { content_type: "application/json".into(), ..PutOptions::default() };
    let location = format!("s3://{}/{key}", sink.options().bucket);
    match sink.put(&key, Bytes::from(format!("{body}\n")), &options).await {
        Ok(()) => report.pass(
            "write a probe object",
            &format!("{location} (ExpectedBucketOwner {owner}{})", settings(sink.options())),
        ),
        Err(e) => {
            report.fail("write a probe object", &e.to_string(), &probe_fix(&e, destination, &owner));
            return report.skip("bucket owner", "needs the probe");
        }
    }

    // 5. The bucket owner: a write naming another account must be refused.
    let other = if owner == "000000000000" { "111111111111" } else { "000000000000" };
    let mut wrong = sink.options().clone();
    wrong.expected_bucket_owner = Some(other.to_owned());
    let wrong = S3Sink::new(sink.client().clone(), wrong);
    let wrong_key = format!("{key}-owner-check");
    match wrong.put(&wrong_key, Bytes::from(format!("{body}\n")), &options).await {
        Err(e) if s3_status(&e) == Some(403) => report.pass(
            "bucket owner",
            &format!("account {owner} owns {}: S3 accepted our write naming it, and refused one naming account {other}", sink.options().bucket),
        ),
        Err(e) => report.fail(
            "bucket owner",
            &format!("a write naming account {other} as the owner failed, but not with 403, so the owner is not verified: {e}"),
            "run byob check again; if it persists, check the bucket's region and endpoint",
        ),
        Ok(()) => report.fail(
            "bucket owner",
            &format!(
                "{} accepted a write naming account {other} as ExpectedBucketOwner: this endpoint does not check the bucket owner, so account {owner} cannot be verified (AWS S3 always checks it)",
                sink.location()
            ),
            "point the destination at AWS S3; S3-compatible servers (moto, MinIO) ignore ExpectedBucketOwner",
        ),
    }
}

fn settings(o: &S3SinkOptions) -> String {
    let mut s = String::new();
    if let Some(e) = &o.encryption {
        s.push_str(&format!(", encryption {e:?}"));
    }
    if o.bucket_owner_full_control {
        s.push_str(", ACL bucket-owner-full-control");
    }
    if !o.tags.is_empty() {
        s.push_str(&format!(", {} tags", o.tags.len()));
    }
    s
}

fn assume_message(e: &AwsError) -> String {
    match e {
        AwsError::AssumeRole { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn s3_error(e: &byob::Error) -> Option<&S3Error> {
    match e {
        byob::Error::Sink { source, .. } => source.downcast_ref::<S3Error>(),
        _ => None,
    }
}

fn s3_status(e: &byob::Error) -> Option<u16> {
    s3_error(e).and_then(|s| s.status)
}

fn probe_fix(e: &byob::Error, destination: &DestinationConfig, owner: &str) -> String {
    let code = s3_error(e).and_then(|s| s.code.clone()).unwrap_or_default();
    match code.as_str() {
        "NoSuchBucket" => "check the bucket name (the name, not the ARN) and the destination's region".into(),
        "AccessDenied" | "" if s3_status(e) == Some(403) || code == "AccessDenied" => format!(
            "the customer's role needs the permission policy of `byob iam-policy --destination {} --only permissions` (s3:PutObject on the prefix{}), and the bucket must be owned by account {owner}",
            destination.id,
            if destination.encryption.is_some() { ", kms:GenerateDataKey and kms:Decrypt on the key" } else { "" }
        ),
        "KMS.NotFoundException" | "KMS.DisabledException" | "KMSNotFound" => {
            "check encryption.kms_key_id: the key must exist, be enabled and be in the bucket's region".into()
        }
        _ => "see the message above; run with BYOB_LOG=debug for the full exchange".into(),
    }
}
