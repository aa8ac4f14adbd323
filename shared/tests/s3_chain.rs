//! The role chain and Secrets Manager against a moto server of each test's own.
//!
//! moto does not enforce trust policies, ExternalId, session duration or credential expiry,
//! so these tests assert what byob SENDS, from moto's own recording of the requests it
//! received: each hop's RoleArn, ExternalId, RoleSessionName and DurationSeconds, and which
//! credentials signed each request (each hop signs with the previous hop's credentials).

use byob_testkit::moto;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use byob::aws::{self, Hop, RoleChain, S3Endpoint, secrets};
use byob::config::Config;
use byob::sink::{ObjectSink, PutOptions, S3Sink, S3SinkOptions};
use bytes::Bytes;
use moto::Moto;
use serde_json::json;

const EXTERNAL_ID: &str = "byob-acme-7f3e9c2a41d8";

/// Our writer role and the customer's role, as IAM roles in moto (which does not evaluate
/// their trust policies; the policies are still the real shape).
fn roles(moto: &Moto) -> (String, String) {
    let anyone = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]});
    let all = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
    let writer = moto.role("byob-destination-writer", &anyone, &all);
    let trust = byob::aws::policy::trust_policy(&writer, EXTERNAL_ID);
    let customer = moto.role("acme-byob", &trust, &all);
    (writer, customer)
}

fn config(moto: &Moto, writer: &str, customer: &str) -> Config {
    let text = format!(
        r#"
[source]
type = "parquet"
path = "lake"

[[tables]]
name = "companies"

[[destinations]]
id = "acme"
tenant = "acme"
bucket = "acme-exports"
prefix = "byob"
role_arn = "{customer}"
external_id = "{EXTERNAL_ID}"

[aws]
writer_role_arn = "{writer}"
region = "us-east-1"
endpoint_url = "{}"
"#,
        moto.endpoint
    );
    Config::from_toml_str(&text, std::path::Path::new("")).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hop_is_assumed_with_the_previous_hops_credentials_and_the_configured_parameters() {
    let Some(moto) = Moto::start() else { return };
    let (writer, customer) = roles(&moto);
    moto.s3(&moto.admin_config()).create_bucket().bucket("acme-exports").send().await.expect("bucket");
    let config = config(&moto, &writer, &customer);
    moto.start_recording();

    // WHEN the destination's sink writes two objects
    let sink = S3Sink::for_destination_with(&moto.admin_config(), &config, &config.destinations[0], "2023-03-14T04:03")
        .await
        .expect("sink");
    assert_eq!(sink.options().expected_bucket_owner.as_deref(), Some(moto::ACCOUNT), "the owner comes from role_arn");
    sink.put("byob/a.json", Bytes::from_static(b"a"), &PutOptions::default()).await.expect("put a");
    sink.put("byob/b.json", Bytes::from_static(b"b"), &PutOptions::default()).await.expect("put b");

    // THEN the chain was assumed once: the writer role with our base credentials ...
    let calls = moto.assume_role_calls();
    assert_eq!(calls.len(), 2, "one AssumeRole per hop, cached for the second write");
    let (hop1, hop2) = (&calls[0], &calls[1]);
    assert_eq!(hop1.form("RoleArn").as_deref(), Some(writer.as_str()));
    assert_eq!(hop1.form("ExternalId"), None, "our own writer role takes no ExternalId");
    assert_eq!(hop1.access_key().as_deref(), Some("testing"), "hop 1 signs with the base credentials");
    // ... then the customer's role with their ExternalId, signed by hop 1's credentials ...
    assert_eq!(hop2.form("RoleArn").as_deref(), Some(customer.as_str()));
    assert_eq!(hop2.form("ExternalId").as_deref(), Some(EXTERNAL_ID));
    let hop1_key = hop2.access_key().expect("signed");
    assert_ne!(hop1_key, "testing", "hop 2 signs with hop 1's credentials");
    // ... each asking for at most an hour, under a session name with destination and run ...
    for call in [hop1, hop2] {
        assert_eq!(call.form("DurationSeconds").as_deref(), Some("3600"));
        assert_eq!(call.form("RoleSessionName").as_deref(), Some("byob-acme-2023-03-14T04-03"));
    }
    // ... and every write was signed by the customer role's session.
    let puts: Vec<_> = moto.recorded().into_iter().filter(|r| r.method == "PUT").collect();
    assert_eq!(puts.len(), 2);
    for put in puts {
        let key = put.access_key().expect("signed");
        assert!(key != "testing" && key != hop1_key, "a write signed by {key}, not the last hop");
        assert_eq!(put.header("x-amz-expected-bucket-owner"), Some(moto::ACCOUNT));
    }
}

/// A clock that can be moved forward, standing in for time passing during a long export.
#[derive(Clone, Debug, Default)]
struct Clock(Arc<AtomicU64>);

impl Clock {
    fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_secs(), Ordering::SeqCst);
    }
}

impl aws_smithy_async::time::TimeSource for Clock {
    fn now(&self) -> SystemTime {
        SystemTime::now() + Duration::from_secs(self.0.load(Ordering::SeqCst))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_fetched_again_before_a_short_session_expires() {
    let Some(moto) = Moto::start() else { return };
    let (writer, customer) = roles(&moto);
    moto.s3(&moto.admin_config()).create_bucket().bucket("refresh").send().await.expect("bucket");
    let clock = Clock::default();
    let base = moto.admin_config().into_builder().time_source(clock.clone()).build();

    // GIVEN a two-hop chain of STS's shortest sessions (900 s), behind the client's identity
    // cache as every sink has it (refresh 60-120 s before expiry)
    let short = Duration::from_secs(900);
    let chain = RoleChain::new(vec![
        Hop::new(writer, "byob-refresh-test").with_duration(short),
        Hop::new(customer, "byob-refresh-test").with_external_id(EXTERNAL_ID).with_duration(short),
    ])
    .expect("chain");
    let credentials = chain.provider(&base).await.expect("provider");
    let client = aws_sdk_s3::Client::from_conf(aws::s3_config(&base, credentials, &S3Endpoint::default()).build());
    let sink = S3Sink::new(client, S3SinkOptions::new("refresh"));
    moto.start_recording();
    let put = |n: u32| {
        let sink = sink.clone();
        async move { sink.put(&format!("r/{n}"), Bytes::from_static(b"x"), &PutOptions::default()).await.expect("put") }
    };

    // WHEN writes happen at 0 s, 700 s (200 s left) and 870 s (30 s left) into the session
    put(1).await;
    let first = moto.assume_role_calls();
    clock.advance(Duration::from_secs(700));
    put(2).await;
    let cached = moto.assume_role_calls();
    clock.advance(Duration::from_secs(170));
    put(3).await;
    let refreshed = moto.assume_role_calls();

    // THEN the chain asked for 900 s sessions, kept them while they had time left, and assumed
    // every hop again before they expired: a long export never writes with expired credentials.
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|c| c.form("DurationSeconds").as_deref() == Some("900")));
    assert_eq!(cached.len(), 2, "credentials with 200 s left are reused");
    assert_eq!(refreshed.len(), 4, "credentials with 30 s left are fetched again, through every hop");
    let keys: Vec<_> =
        moto.recorded().into_iter().filter(|r| r.method == "PUT").filter_map(|r| r.access_key()).collect();
    assert_eq!(keys.len(), 3);
    assert_eq!(keys[0], keys[1]);
    assert_ne!(keys[1], keys[2], "the third write is signed with the new session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_hop_is_named_in_the_error() {
    let Some(moto) = Moto::start() else { return };
    // GIVEN IAM enforcement and a caller that may not assume anything
    let nothing = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "sts:AssumeRole", "Resource": "*"}]});
    let caller = moto.user("no-rights", &nothing);
    let (writer, customer) = roles(&moto);
    moto.enforce_iam();
    let base = moto.sdk_config(caller);
    let chain = RoleChain::new(vec![
        Hop::new(writer.clone(), "byob-x"),
        Hop::new(customer, "byob-x").with_external_id(EXTERNAL_ID),
    ])
    .expect("chain");
    let e = chain.assume(&base).await.expect_err("refused");
    let message = e.to_string();
    assert!(message.starts_with(&format!("assuming role {writer} (hop 1 of 2): AccessDenied:")), "{message}");
    assert!(!e.is_retryable(), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rds_secrets_are_read_by_name_and_arn_and_never_shown() {
    let Some(moto) = Moto::start() else { return };
    let config = moto.admin_config();
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let value = json!({"engine": "postgres", "host": "db.internal", "port": 5432, "username": "byob", "password": "pa55-hunter2", "dbname": "platform"});
    let created =
        client.create_secret().name("prod/byob/source").secret_string(value.to_string()).send().await.expect("create");
    let arn = created.arn().expect("arn").to_owned();

    for id in ["prod/byob/source", arn.as_str()] {
        let secret = secrets::read(&client, id).await.expect("read");
        assert_eq!((secret.username.as_str(), secret.host.as_str(), secret.port), ("byob", "db.internal", Some(5432)));
        assert_eq!(secret.password.expose(), "pa55-hunter2");
        assert!(!format!("{secret:?} {secret}").contains("hunter2"));
    }
    assert_eq!(
        secrets::read_with(&config, "prod/byob/source").await.expect("read").dbname.as_deref(),
        Some("platform")
    );

    let missing = secrets::read(&client, "prod/nope").await.expect_err("missing");
    assert!(missing.to_string().contains("prod/nope") && missing.to_string().contains("ResourceNotFound"), "{missing}");
    assert!(!missing.is_retryable());

    client
        .create_secret()
        .name("broken")
        .secret_string(r#"{"host":"h","username":"u","password":123456789}"#)
        .send()
        .await
        .expect("create");
    let broken = secrets::read(&client, "broken").await.expect_err("not the RDS format");
    assert!(broken.to_string().contains("password") && !broken.to_string().contains("123456789"), "{broken}");
}
