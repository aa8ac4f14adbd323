//! End to end on moto: dumps land in a bucket whose notification sends `receipt.json` events
//! to an SQS queue; the loader is driven by exactly the messages polled from that queue
//! (the s3:TestEvent first, the one receipt event of every dump, delivered twice, out of order),
//! and PostgreSQL ends with exactly the exported rows, by count and by checksum.

#![allow(clippy::unwrap_used)]

use crate::load_support;
use byob_testkit::moto;
use byob_testkit::postgres as postgres_harness;

use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter, QueueConfiguration,
    S3KeyFilter,
};
use byob::load::{self, LoadOutcome, Loader, PostgresTarget};
use load_support::*;
use moto::Moto;

const BUCKET: &str = "acme-data";
const PREFIX: &str = "byob exports/acme";

/// A bucket notifying a fresh queue of every `*receipt.json` created; returns the queue URL.
async fn notifying_bucket(moto: &Moto, s3: &aws_sdk_s3::Client, sqs: &aws_sdk_sqs::Client) -> String {
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let queue = sqs.create_queue().queue_name("receipts").send().await.unwrap().queue_url.unwrap();
    let arn = format!("arn:aws:sqs:us-east-1:{}:receipts", moto::ACCOUNT);
    let filter = NotificationConfigurationFilter::builder()
        .key(
            S3KeyFilter::builder()
                .filter_rules(FilterRule::builder().name(FilterRuleName::Suffix).value("receipt.json").build())
                .build(),
        )
        .build();
    let config = NotificationConfiguration::builder()
        .queue_configurations(
            QueueConfiguration::builder()
                .queue_arn(arn)
                .events(Event::from("s3:ObjectCreated:*"))
                .filter(filter)
                .build()
                .unwrap(),
        )
        .build();
    s3.put_bucket_notification_configuration().bucket(BUCKET).notification_configuration(config).send().await.unwrap();
    let _ = moto;
    queue
}

/// Every message body now in the queue (deleted once read).
async fn drain(sqs: &aws_sdk_sqs::Client, queue: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    loop {
        let got = sqs.receive_message().queue_url(queue).max_number_of_messages(10).send().await.unwrap();
        let messages = got.messages.unwrap_or_default();
        if messages.is_empty() {
            return out;
        }
        for m in messages {
            out.push(serde_json::from_str(m.body().unwrap()).unwrap());
            sqs.delete_message().queue_url(queue).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn receipts_announced_through_sqs_load_exactly_the_exported_rows() {
    let Some(moto) = Moto::start() else { return };
    let Some(pg) = postgres_harness::shared() else { return };
    let db = pg.database("load_e2e").await;
    let url = pg.url(&db);
    let config = moto.admin_config();
    let s3 = moto.s3(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue = notifying_bucket(&moto, &s3, &sqs).await;
    let loader = Loader::with_s3(s3.clone());
    let target = PostgresTarget::from_url(&url).unwrap().with_schema("warehouse");

    // GIVEN the notification's s3:TestEvent, then run 1 (files, run receipt copy, root receipt)
    let run1 =
        Dump::new(RUN1, None).table("companies", companies(0, 5000, false), 4).table("contacts", contacts(77), 1);
    run1.write_s3(&s3, BUCKET, PREFIX).await;
    let events = drain(&sqs, &queue).await;
    assert_eq!(
        events.len(),
        2,
        "TestEvent + one receipt event per dump (files and the run's receipt.run.json are filtered out): {events:#?}"
    );
    assert_eq!(events[0]["Event"], "s3:TestEvent");

    // WHEN the loader handles every polled message, twice (at-least-once delivery)
    let mut outcomes = Vec::new();
    for event in events.iter().chain(events.iter()) {
        outcomes.extend(load::handle_event(&loader, &target, event).await.unwrap());
    }
    // THEN exactly one load happened; the rest were the test event or duplicates
    let loaded: Vec<_> = outcomes.iter().filter(|o| matches!(o, LoadOutcome::Loaded(_))).collect();
    assert_eq!(loaded.len(), 1, "{outcomes:#?}");
    assert_eq!(outcomes.iter().filter(|o| matches!(o, LoadOutcome::Ignored { .. })).count(), 2);
    assert_eq!(outcomes.iter().filter(|o| matches!(o, LoadOutcome::Duplicate { .. })).count(), 1);
    let client = postgres_harness::client(&url).await;
    client.batch_execute("SET search_path = warehouse").await.unwrap();
    assert_eq!(checksum(&client, "companies", false).await, expected(&companies(0, 5000, false), false));
    assert_eq!(count(&client, "contacts").await, 77);

    // GIVEN runs 2 and 3 written, but their events delivered newest first
    let run2 = Dump::new(RUN2, Some(RUN1)).table("companies", companies(100, 4200, true), 3).table(
        "contacts",
        contacts(80),
        1,
    );
    run2.write_s3(&s3, BUCKET, PREFIX).await;
    let events2 = drain(&sqs, &queue).await;
    let run3 =
        Dump::new(RUN3, Some(RUN2)).table("companies", companies(7, 3333, true), 2).table("contacts", contacts(90), 1);
    run3.write_s3(&s3, BUCKET, PREFIX).await;
    let events3 = drain(&sqs, &queue).await;
    assert_eq!((events2.len(), events3.len()), (1, 1), "one receipt event per dump");
    let mut outcomes = Vec::new();
    for event in events3.iter().chain(events2.iter()) {
        outcomes.extend(load::handle_event(&loader, &target, event).await.unwrap());
    }
    // THEN run 3 is loaded (with its new column), and run 2's late event reads the root
    // receipt, now run 3's: a duplicate, so nothing moves backwards
    assert!(matches!(&outcomes[0], LoadOutcome::Loaded(r) if r.run == RUN3), "{outcomes:#?}");
    assert!(matches!(&outcomes[1], LoadOutcome::Duplicate { .. }), "{outcomes:#?}");
    assert_eq!(outcomes.len(), 2, "{outcomes:#?}");
    assert_eq!(checksum(&client, "companies", true).await, expected(&companies(7, 3333, true), true));
    assert_eq!(count(&client, "contacts").await, 90);
    let runs: Vec<String> = client
        .query("SELECT run FROM byob_load_history ORDER BY loaded_at", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(runs, vec![RUN1, RUN3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_object_in_the_bucket_loads_nothing() {
    let Some(moto) = Moto::start() else { return };
    let Some(pg) = postgres_harness::shared() else { return };
    let db = pg.database("load_e2e_tampered").await;
    let url = pg.url(&db);
    let config = moto.admin_config();
    let s3 = moto.s3(&config);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let dump = Dump::new(RUN1, None).table("companies", companies(0, 100, false), 2);
    dump.write_s3(&s3, BUCKET, PREFIX).await;
    // GIVEN someone replaced the second file
    let key = format!("{PREFIX}/{}", dump.files[1].0);
    s3.put_object().bucket(BUCKET).key(&key).body(b"not parquet".to_vec().into()).send().await.unwrap();
    let location = load::ReceiptLocation::S3 { bucket: BUCKET.into(), key: format!("{PREFIX}/receipt.json") };
    let err = Loader::with_s3(s3.clone())
        .load(&location, &PostgresTarget::from_url(&url).unwrap().with_schema("public"))
        .await
        .unwrap_err();
    assert!(matches!(err, load::LoadError::Tampered { .. }), "{err}");
    assert!(err.to_string().contains(&dump.files[1].0) && err.to_string().contains("s3://acme-data/"), "{err}");
    let client = postgres_harness::client(&url).await;
    assert!(!exists(&client, "companies").await);
}

/// The deployed loader reads only its own bucket and prefix, and only from a bucket its own
/// account owns: a notification naming another bucket or prefix is refused before any request,
/// and every read carries ExpectedBucketOwner (moto does not check it: the test checks what is
/// sent).
#[tokio::test(flavor = "multi_thread")]
async fn a_scoped_loader_reads_only_its_bucket_and_prefix_and_names_the_owner() {
    let Some(moto) = Moto::start() else { return };
    let Some(pg) = postgres_harness::shared() else { return };
    let db = pg.database("load_scoped").await;
    let url = pg.url(&db);
    let s3 = moto.s3(&moto.admin_config());
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    s3.create_bucket().bucket("someone-else").send().await.unwrap();
    let dump = Dump::new(RUN1, None).table("companies", companies(0, 100, false), 2);
    dump.write_s3(&s3, BUCKET, PREFIX).await;
    dump.write_s3(&s3, BUCKET, "elsewhere").await;
    dump.write_s3(&s3, "someone-else", PREFIX).await;
    let scope =
        load::Scope { bucket: BUCKET.into(), prefix: format!("{PREFIX}/"), expected_owner: Some(moto::ACCOUNT.into()) };
    let loader = Loader::with_s3(s3.clone()).within(scope);
    let target = PostgresTarget::from_url(&url).unwrap().with_schema("public");

    // WHEN notifications name another bucket, and another prefix of the same bucket
    moto.start_recording();
    for (bucket, key) in [("someone-else", format!("{PREFIX}/receipt.json")), (BUCKET, "elsewhere/receipt.json".into())]
    {
        let location = load::ReceiptLocation::S3 { bucket: bucket.into(), key: key.clone() };
        let err = loader.load(&location, &target).await.unwrap_err();
        // THEN each is refused, naming it and the loader's scope, with no request sent
        assert!(matches!(err, load::LoadError::Event(_)), "{err}");
        assert!(err.to_string().contains(&format!("s3://{bucket}/{key}")) && err.to_string().contains(BUCKET), "{err}");
        assert!(!err.is_retryable());
    }
    let sent = |moto: &Moto| moto.recorded().into_iter().filter(|r| !r.url.contains("/moto-api/")).collect::<Vec<_>>();
    assert!(sent(&moto).is_empty(), "nothing read: {:?}", sent(&moto).iter().map(|r| &r.url).collect::<Vec<_>>());

    // AND its own receipt loads, every read naming the expected owner
    let location = load::ReceiptLocation::S3 { bucket: BUCKET.into(), key: format!("{PREFIX}/receipt.json") };
    assert!(matches!(loader.load(&location, &target).await.unwrap(), LoadOutcome::Loaded(_)));
    let reads = sent(&moto);
    assert_eq!(reads.len(), 1 + dump.files.len(), "the receipt and each file");
    for read in &reads {
        assert_eq!(read.header("x-amz-expected-bucket-owner"), Some(moto::ACCOUNT), "{}", read.url);
    }
    let client = postgres_harness::client(&url).await;
    assert_eq!(count(&client, "companies").await, 100);
}

/// A receipt whose files would not fit where the loader downloads them (a Lambda's ephemeral
/// storage) is refused after reading the receipt alone, not after filling the disk.
#[tokio::test(flavor = "multi_thread")]
async fn a_dump_larger_than_the_loaders_space_is_refused_before_any_file_is_read() {
    let Some(moto) = Moto::start() else { return };
    let s3 = moto.s3(&moto.admin_config());
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let dump = Dump::new(RUN1, None).table("companies", companies(0, 100, false), 2);
    dump.write_s3(&s3, BUCKET, PREFIX).await;
    let total: u64 = dump.receipt().tables.values().map(|t| t.byte_count).sum();
    let loader = Loader::with_s3(s3.clone()).with_space(total - 1);
    let target = PostgresTarget::from_url("postgresql://byob@127.0.0.1:1/none?sslmode=disable").unwrap();
    moto.start_recording();
    let location = load::ReceiptLocation::S3 { bucket: BUCKET.into(), key: format!("{PREFIX}/receipt.json") };
    let err = loader.load(&location, &target).await.unwrap_err();
    assert!(matches!(err, load::LoadError::Receipt { .. }), "{err}");
    assert!(err.to_string().contains(&total.to_string()) && err.to_string().contains("BYOB_LOAD_SPACE_BYTES"), "{err}");
    let reads: Vec<String> =
        moto.recorded().into_iter().filter(|r| !r.url.contains("/moto-api/")).map(|r| r.url).collect();
    assert_eq!(reads.len(), 1, "only the receipt: {reads:?}");
    assert!(reads[0].contains("/receipt.json"), "{reads:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multipart_receipt_emits_two_events_and_loads_once() {
    let Some(moto) = Moto::start() else { return };
    let Some(pg) = postgres_harness::shared() else { return };
    let db = pg.database("load_e2e_multipart").await;
    let url = pg.url(&db);
    let config = moto.admin_config();
    let s3 = moto.s3(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue = notifying_bucket(&moto, &s3, &sqs).await;
    let _test_event = drain(&sqs, &queue).await;
    // GIVEN the files, then only the root receipt, written as a multipart upload (as the S3
    // sink writes large objects)
    let dump = Dump::new(RUN1, None).table("companies", companies(0, 1000, false), 2);
    for (key, bytes) in &dump.files {
        s3.put_object().bucket(BUCKET).key(format!("{PREFIX}/{key}")).body(bytes.clone().into()).send().await.unwrap();
    }
    let key = format!("{PREFIX}/receipt.json");
    let upload = s3.create_multipart_upload().bucket(BUCKET).key(&key).send().await.unwrap();
    let id = upload.upload_id().unwrap();
    let part = s3
        .upload_part()
        .bucket(BUCKET)
        .key(&key)
        .upload_id(id)
        .part_number(1)
        .body(dump.receipt().to_json().into())
        .send()
        .await
        .unwrap();
    let parts = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(aws_sdk_s3::types::CompletedPart::builder().part_number(1).e_tag(part.e_tag().unwrap()).build())
        .build();
    s3.complete_multipart_upload().bucket(BUCKET).key(&key).upload_id(id).multipart_upload(parts).send().await.unwrap();
    let events = drain(&sqs, &queue).await;
    assert!(!events.is_empty());
    // WHEN every event is handled THEN the receipt loads once
    let loader = Loader::with_s3(s3.clone());
    let target = PostgresTarget::from_url(&url).unwrap().with_schema("public");
    let mut outcomes = Vec::new();
    for event in &events {
        outcomes.extend(load::handle_event(&loader, &target, event).await.unwrap());
    }
    assert_eq!(outcomes.iter().filter(|o| matches!(o, LoadOutcome::Loaded(_))).count(), 1, "{outcomes:#?}");
    assert!(
        outcomes.iter().all(|o| matches!(o, LoadOutcome::Loaded(_) | LoadOutcome::Duplicate { .. })),
        "{outcomes:#?}"
    );
    let client = postgres_harness::client(&url).await;
    assert_eq!(checksum(&client, "companies", false).await, expected(&companies(0, 1000, false), false));
    eprintln!("multipart receipt: {} event(s) delivered", events.len());
}
