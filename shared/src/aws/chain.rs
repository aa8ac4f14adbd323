//! The role chain into a customer's account (DESIGN.md section 4).
//!
//! Hop 0 is whatever the default provider chain finds (the Lambda execution role). Every
//! further hop is an `AssumeRoleProvider` built on the previous hop's provider (Vector's
//! `src/aws/auth.rs` pattern): hop 1 is our stable writer role (`aws.writer_role_arn`,
//! optional), the last hop is the customer's role with the ExternalId we generated for them.
//! Any number of hops is allowed, each with its own ExternalId, session name and duration.
//!
//! AWS caps a chained session at one hour, so every hop asks for at most 3600 s; the client
//! that uses the chain caches the final credentials and fetches them again shortly before they
//! expire ([`super::identity_cache`]), which re-assumes every hop. An export of any length keeps
//! writing.
//!
//! This module must never log or put into an error an access key, a secret key or a session
//! token; it names roles, hops and destinations only. It must never assume a customer's role
//! without their ExternalId, except in [`RoleChain::without_external_id`], which exists so
//! `byob check` can prove the customer's trust policy refuses exactly that.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_sts::operation::assume_role::AssumeRoleError;

use super::AwsError;
use super::retry::{HopFailed, describe, is_retriable};
use crate::config::{AwsConfig, DestinationConfig, RoleArn, check_external_id};
use crate::names::{check_session_name, session_name};

/// The longest session a chained AssumeRole may ask for: AWS refuses more than one hour when
/// the caller's own credentials come from an assumed role.
pub const MAX_CHAINED_SESSION: Duration = Duration::from_secs(3600);

/// The shortest session STS grants.
pub const MIN_SESSION: Duration = Duration::from_secs(900);

/// One AssumeRole step of a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    /// The role to assume, e.g. `arn:aws:iam::123456789012:role/byob-writer`.
    pub role_arn: String,
    /// Sent as `ExternalId` when set; the customer's trust policy requires it. Not a secret.
    pub external_id: Option<String>,
    /// `RoleSessionName`: shows in the role owner's CloudTrail. 2-64 characters of
    /// `[A-Za-z0-9_+=,.@-]` (see [`session_name`]).
    pub session_name: String,
    /// `DurationSeconds`: 900-3600 s.
    pub duration: Duration,
}

impl Hop {
    /// A hop assuming `role_arn` for [`MAX_CHAINED_SESSION`], without ExternalId.
    pub fn new(role_arn: impl Into<String>, session_name: impl Into<String>) -> Hop {
        Hop {
            role_arn: role_arn.into(),
            external_id: None,
            session_name: session_name.into(),
            duration: MAX_CHAINED_SESSION,
        }
    }

    /// The same hop, sending `external_id`.
    pub fn with_external_id(mut self, external_id: impl Into<String>) -> Hop {
        self.external_id = Some(external_id.into());
        self
    }

    /// The same hop, asking for sessions of `duration`.
    pub fn with_duration(mut self, duration: Duration) -> Hop {
        self.duration = duration;
        self
    }

    fn validate(&self, position: usize) -> Result<(), AwsError> {
        let invalid = |reason: String| AwsError::InvalidHop { hop: position, role_arn: self.role_arn.clone(), reason };
        RoleArn::parse(&self.role_arn).map_err(invalid)?;
        if let Some(external_id) = &self.external_id {
            check_external_id(external_id).map_err(invalid)?;
        }
        check_session_name(&self.session_name).map_err(invalid)?;
        if self.duration < MIN_SESSION || self.duration > MAX_CHAINED_SESSION {
            return Err(invalid(format!(
                "a session lasts {}-{} s (STS's minimum, and AWS's cap on chained sessions); {} s was asked for",
                MIN_SESSION.as_secs(),
                MAX_CHAINED_SESSION.as_secs(),
                self.duration.as_secs()
            )));
        }
        Ok(())
    }
}

/// Roles assumed one after the other, each with the previous one's credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleChain {
    hops: Vec<Hop>,
}

impl RoleChain {
    /// A chain of `hops`, in order; each hop is checked (ARN, ExternalId, session name,
    /// duration). An empty chain uses the base credentials as they are.
    pub fn new(hops: Vec<Hop>) -> Result<RoleChain, AwsError> {
        for (i, hop) in hops.iter().enumerate() {
            hop.validate(i + 1)?;
        }
        Ok(RoleChain { hops })
    }

    /// The chain that writes to `destination`: our writer role (`aws.writer_role_arn`, when
    /// set), then the customer's role with the destination's ExternalId. `label` names what
    /// the sessions are for (the run id, or `check-<time>`) and goes into every session name
    /// with the destination id, so both CloudTrails show who wrote what.
    ///
    /// A destination without `role_arn` or without `external_id` is an error: byob never
    /// assumes a customer's role without the ExternalId that guards it.
    pub fn for_destination(
        aws: &AwsConfig,
        destination: &DestinationConfig,
        label: &str,
    ) -> Result<RoleChain, AwsError> {
        let missing = |what: &str| AwsError::Destination {
            destination: destination.id.clone(),
            reason: format!("{what} is required to write to a bucket through the customer's role"),
        };
        let role_arn = destination.role_arn.as_deref().ok_or_else(|| missing("role_arn"))?;
        let external_id = destination.external_id.as_deref().ok_or_else(|| {
            missing("external_id (the ExternalId we generated for this customer, which their trust policy requires)")
        })?;
        let name = session_name(&destination.id, label);
        let mut hops = Vec::new();
        if let Some(writer) = &aws.writer_role_arn {
            hops.push(Hop::new(writer.clone(), name.clone()));
        }
        hops.push(Hop::new(role_arn, name).with_external_id(external_id));
        RoleChain::new(hops)
    }

    /// The hops, in the order they are assumed.
    pub fn hops(&self) -> &[Hop] {
        &self.hops
    }

    /// The first `n` hops (for `byob check`, which assumes one hop at a time).
    pub fn first(&self, n: usize) -> RoleChain {
        RoleChain { hops: self.hops.iter().take(n).cloned().collect() }
    }

    /// The same chain with no ExternalId on its last hop. Only `byob check` uses it, to prove
    /// the customer's trust policy refuses an AssumeRole without the ExternalId.
    pub fn without_external_id(&self) -> RoleChain {
        let mut hops = self.hops.clone();
        if let Some(last) = hops.last_mut() {
            last.external_id = None;
        }
        RoleChain { hops }
    }

    /// The credentials provider of the whole chain, starting from `base`'s provider (the
    /// default chain). Nothing is requested until the provider is used; wrap it in an
    /// identity cache (every client built by [`super::s3_config`] has one) so the chain is
    /// assumed once per session, not once per request.
    pub async fn provider(&self, base: &SdkConfig) -> Result<SharedCredentialsProvider, AwsError> {
        let mut current = base.credentials_provider().ok_or_else(|| AwsError::NoCredentials {
            reason: "the SDK config has no credentials provider (environment, profile, web identity, ECS, IMDS)"
                .to_owned(),
        })?;
        let hops = self.hops.len();
        for (i, hop) in self.hops.iter().enumerate() {
            let mut builder = AssumeRoleProvider::builder(hop.role_arn.clone())
                .configure(base)
                .session_name(hop.session_name.clone())
                .session_length(hop.duration);
            if let Some(external_id) = &hop.external_id {
                builder = builder.external_id(external_id.clone());
            }
            let inner = builder.build_from_provider(current).await;
            current =
                SharedCredentialsProvider::new(NamedHop { inner, hop: i + 1, hops, role_arn: hop.role_arn.clone() });
        }
        Ok(current)
    }

    /// Assumes every hop now and returns the last hop's credentials, or an error naming the
    /// first hop that failed.
    pub async fn assume(&self, base: &SdkConfig) -> Result<Credentials, AwsError> {
        let provider = self.provider(base).await?;
        provider.provide_credentials().await.map_err(|e| self.assume_error(&e))
    }

    /// Turns a failure of this chain's provider into an error naming the hop that failed.
    pub fn assume_error(&self, error: &CredentialsError) -> AwsError {
        // The innermost failed hop is the cause; NamedHop put its position into the chain.
        let mut failed: Option<&HopFailed> = None;
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = cause {
            if let Some(hop) = e.downcast_ref::<HopFailed>() {
                failed = Some(hop);
            }
            cause = e.source();
        }
        match failed {
            Some(hop) => AwsError::AssumeRole {
                role_arn: hop.role_arn.clone(),
                hop: hop.hop,
                hops: hop.hops,
                message: hop.message.clone(),
                retryable: hop.retryable,
            },
            None => AwsError::NoCredentials { reason: DisplayErrorContext(error).to_string() },
        }
    }
}

/// Who `credentials` are, as STS GetCallerIdentity says (`arn:aws:sts::...:assumed-role/...`);
/// `None` when STS does not answer (the call needs no permission on AWS, but S3-compatible
/// stand-ins may refuse it).
pub async fn caller_arn(base: &SdkConfig, credentials: Credentials) -> Option<String> {
    let config = aws_sdk_sts::config::Builder::from(base)
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build();
    let output = aws_sdk_sts::Client::from_conf(config).get_caller_identity().send().await.ok()?;
    output.arn().map(str::to_owned)
}

/// A hop's provider that names the hop in its errors, so a failure deep in a chain says which
/// role refused.
#[derive(Debug)]
struct NamedHop {
    inner: AssumeRoleProvider,
    hop: usize,
    hops: usize,
    role_arn: String,
}

impl ProvideCredentials for NamedHop {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.inner.provide_credentials().await.map_err(|e| {
                // An earlier hop's failure is passed on as it is: that hop is the cause.
                let failed = earlier_hop(&e).unwrap_or_else(|| {
                    let (message, retryable) = sts_failure(&e);
                    HopFailed { hop: self.hop, hops: self.hops, role_arn: self.role_arn.clone(), message, retryable }
                });
                tracing::debug!(error = %failed, "role chain hop failed");
                CredentialsError::provider_error(failed)
            })
        })
    }
}

/// The failure of an earlier hop among `error`'s causes.
fn earlier_hop(error: &CredentialsError) -> Option<HopFailed> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(hop) = e.downcast_ref::<HopFailed>() {
            return Some(hop.clone());
        }
        cause = e.source();
    }
    None
}

/// Why this hop's AssumeRole failed, and whether a retry may help: STS's code and message.
fn sts_failure(error: &CredentialsError) -> (String, bool) {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(sts) = e.downcast_ref::<SdkError<AssumeRoleError, HttpResponse>>() {
            return (describe(sts), is_retriable(sts));
        }
        cause = e.source();
    }
    (DisplayErrorContext(error).to_string(), matches!(error, CredentialsError::ProviderTimedOut(_)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::DestinationConfig;

    fn destination() -> DestinationConfig {
        let mut d = DestinationConfig::local("acme-eu", "acme", "unused");
        d.folder = None;
        d.bucket = Some("acme-data".into());
        d.role_arn = Some("arn:aws:iam::222233334444:role/byob-writer".into());
        d.external_id = Some("byob-acme-7f3e9c2a41d8".into());
        d
    }

    #[test]
    fn destination_chain_is_writer_then_customer_with_external_id() {
        let aws = AwsConfig {
            writer_role_arn: Some("arn:aws:iam::111122223333:role/byob-destination-writer".into()),
            ..AwsConfig::default()
        };
        let chain = RoleChain::for_destination(&aws, &destination(), "2023-03-14T04:03").unwrap();
        let hops = chain.hops();
        assert_eq!(hops.len(), 2);
        assert_eq!(hops[0].role_arn, "arn:aws:iam::111122223333:role/byob-destination-writer");
        assert_eq!(hops[0].external_id, None);
        assert_eq!(hops[1].role_arn, "arn:aws:iam::222233334444:role/byob-writer");
        assert_eq!(hops[1].external_id.as_deref(), Some("byob-acme-7f3e9c2a41d8"));
        assert!(hops.iter().all(|h| h.duration == MAX_CHAINED_SESSION));
        assert!(hops.iter().all(|h| h.session_name == "byob-acme-eu-2023-03-14T04-03"));
        assert_eq!(chain.without_external_id().hops()[1].external_id, None);
        assert_eq!(chain.first(1).hops().len(), 1);

        // Without a writer role the customer's role is the only hop.
        let direct = RoleChain::for_destination(&AwsConfig::default(), &destination(), "r1").unwrap();
        assert_eq!(direct.hops().len(), 1);
    }

    #[test]
    fn a_customer_hop_without_external_id_is_an_error() {
        let mut d = destination();
        d.external_id = None;
        let e = RoleChain::for_destination(&AwsConfig::default(), &d, "r1").unwrap_err();
        assert!(e.to_string().contains("external_id") && e.to_string().contains("acme-eu"), "{e}");
        let mut d = destination();
        d.role_arn = None;
        assert!(
            RoleChain::for_destination(&AwsConfig::default(), &d, "r1").unwrap_err().to_string().contains("role_arn")
        );
    }

    #[test]
    fn hops_are_validated() {
        let ok = Hop::new("arn:aws:iam::123456789012:role/a", "byob-x");
        RoleChain::new(vec![ok.clone()]).unwrap();
        for (bad, why) in [
            (ok.clone().with_duration(Duration::from_secs(3601)), "3600"),
            (ok.clone().with_duration(Duration::from_secs(899)), "900"),
            (Hop::new("arn:aws:iam::123:role/a", "byob-x"), "12-digit"),
            (Hop::new("arn:aws:iam::123456789012:role/a", "bad name"), "session name"),
            (ok.clone().with_external_id("x"), "ExternalId"),
        ] {
            let e = RoleChain::new(vec![ok.clone(), bad]).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("hop 2"), "{e}");
        }
    }
}
