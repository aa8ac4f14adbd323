//! The `byob` binary against a moto server with IAM enforcement on: `byob iam-policy`'s
//! policies are put in place exactly as printed, then `byob run` writes through the two-hop
//! chain (execution user -> writer role -> PutObject-only customer role) and must produce the
//! same layout and receipt as a local-folder run; the customer role must be unable to read,
//! list or write outside its prefix; and `byob check` reports each step.
//!
//! What moto 5.2 checks once enforcement is on: identity policies, signatures, and a role's
//! trust policy, but with the principal compared LITERALLY to the caller's session ARN
//! (`...:assumed-role/<role>/<session>`), where AWS lets a role principal match its sessions,
//! and with an `sts:ExternalId` condition that refuses a WRONG ExternalId but lets a MISSING
//! one through. So the customer trust policies here are exactly what `byob iam-policy` prints
//! except for the principal, widened to `*` for moto; and `byob check` on moto reports the
//! missing-ExternalId SECURITY problem even for a correct trust policy (on AWS that step
//! passes), and the bucket owner as unverifiable (moto ignores ExpectedBucketOwner). The test
//! asserts exactly those reports.
//! (shared/tests/s3_chain.rs asserts what is sent for ExternalId, sessions and durations.)

use byob_testkit::moto;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aws_sdk_s3::config::Credentials;
use byob::aws::{Hop, RoleChain};
use byob::receipt::Receipt;
use byob::sink::{ObjectSink, PutOptions, S3Sink, S3SinkOptions};
use bytes::Bytes;
use moto::Moto;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const RUN: &str = "2024-01-02T04:00";
const BUCKET: &str = "acme-exports";
const PREFIX: &str = "byob/dumps";
const EXTERNAL_ID: &str = "byob-acme-7f3e9c2a41d8";

fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::{}:role/{name}", moto::ACCOUNT)
}

fn byob(args: &[&str], cwd: &Path, credentials: Option<&Credentials>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_byob"));
    command.args(args).current_dir(cwd);
    for var in ["AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ENDPOINT_URL"] {
        command.env_remove(var);
    }
    // No profile files: only the variables below count.
    let empty = cwd.join(".aws-empty");
    std::fs::write(&empty, "").expect("empty aws config");
    command
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", &empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", &empty);
    if let Some(c) = credentials {
        command.env("AWS_ACCESS_KEY_ID", c.access_key_id()).env("AWS_SECRET_ACCESS_KEY", c.secret_access_key());
    } else {
        command.env_remove("AWS_ACCESS_KEY_ID").env_remove("AWS_SECRET_ACCESS_KEY");
    }
    command.output().expect("byob runs")
}

fn text(o: &Output) -> String {
    format!("--- stdout\n{}\n--- stderr\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A config with the S3 destination `acme` (and `globex`, whose role may write only elsewhere).
fn write_config(dir: &Path, moto: &Moto) -> PathBuf {
    let text = format!(
        r#"
tables = ["companies", "contacts", "events"]

[source]
type = "parquet"
path = "lake"

[[destinations]]
id = "acme"
tenant = "acme"
bucket = "{BUCKET}"
prefix = "{PREFIX}"
role_arn = "{acme}"
external_id = "{EXTERNAL_ID}"
max_file_rows = 700

[[destinations]]
id = "globex"
tenant = "globex"
bucket = "{BUCKET}"
prefix = "globex"
role_arn = "{globex}"
external_id = "byob-globex-0a1b2c3d"

[export]
parallelism = 3
part_size = "5MiB"
target_rows_per_slice = 2000

[aws]
writer_role_arn = "{writer}"
region = "us-east-1"
endpoint_url = "{endpoint}"

[state]
path = "state-s3"
"#,
        acme = role_arn("acme-byob"),
        globex = role_arn("globex-byob"),
        writer = role_arn("byob-destination-writer"),
        endpoint = moto.endpoint,
    );
    let path = dir.join("s3.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Our side and the customers' side of IAM, from `byob iam-policy`'s output; then IAM
/// enforcement on. Returns (execution user, admin user) credentials.
fn iam_world(moto: &Moto, dir: &Path, config: &Path) -> (Credentials, Credentials, Value) {
    let out = byob(&["iam-policy", "--config", config.to_str().expect("utf-8"), "--destination", "acme"], dir, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let policies: Value = serde_json::from_slice(&out.stdout).expect("iam-policy prints JSON");

    let admin = moto.user(
        "admin",
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
    );
    let execution = moto.user("byob-lambda", &policies["execution_role_policy"]);
    let trust_us = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{}:user/byob-lambda", moto::ACCOUNT)}, "Action": "sts:AssumeRole"}]});
    let writer = moto.role("byob-destination-writer", &trust_us, &policies["writer_role_policy"]);
    assert_eq!(writer, policies["writer_role_arn"]);
    // The generated trust policy, principal widened for moto (see the module documentation).
    let mut trust = policies["customer_trust_policy"].clone();
    assert_eq!(trust["Statement"][0]["Principal"]["AWS"], writer.as_str());
    trust["Statement"][0]["Principal"]["AWS"] = json!("*");
    assert_eq!(trust["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"], EXTERNAL_ID);
    let acme = moto.role("acme-byob", &trust, &policies["customer_permission_policy"]);
    assert_eq!(acme, policies["customer_role_arn"]);
    // globex's role is set up carelessly: its trust policy has no ExternalId condition, and it
    // may write only into another bucket.
    let careless = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]});
    let elsewhere = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::other-bucket/*"}]});
    moto.role("globex-byob", &careless, &elsewhere);

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async { moto.s3(&moto.admin_config()).create_bucket().bucket(BUCKET).send().await.expect("bucket") });
    moto.enforce_iam();
    (execution, admin, policies)
}

fn files_under(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let p = entry.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let key = p.strip_prefix(root).expect("under root").to_string_lossy().replace('\\', "/");
                out.insert(key, std::fs::read(&p).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

async fn objects_under(s3: &aws_sdk_s3::Client, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    let listed = s3.list_objects_v2().bucket(BUCKET).prefix(format!("{prefix}/")).send().await.expect("admin list");
    let mut out = BTreeMap::new();
    for object in listed.contents() {
        let key = object.key().expect("key");
        let body = moto::get(s3, BUCKET, key).await.expect("listed object");
        out.insert(key.trim_start_matches(&format!("{prefix}/")).to_owned(), body);
    }
    out
}

#[test]
fn a_whole_run_through_a_two_hop_chain_into_a_put_only_role_matches_the_local_run() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let generated = byob(&["generate", "--out", "lake", "--scale", "0.01", "--seed", "3"], dir.path(), None);
    assert!(generated.status.success(), "{}", text(&generated));
    let s3_config = write_config(dir.path(), &moto);
    // The same data to a local folder: the same config, with `folder` instead of the bucket.
    let local = std::fs::read_to_string(&s3_config)
        .expect("config")
        .replacen(&format!("bucket = \"{BUCKET}\"\nprefix = \"{PREFIX}\"\n"), "folder = \"local/acme\"\n", 1)
        .replace("path = \"state-s3\"", "path = \"state-local\"");
    std::fs::write(dir.path().join("local.toml"), local).expect("local config");

    // GIVEN the policies `byob iam-policy` printed, in place, and IAM enforcement on
    let (execution, admin, _) = iam_world(&moto, dir.path(), &s3_config);

    // WHEN `byob run` runs as the execution user, and the same dump runs to a local folder
    let out =
        byob(&["run", "--config", "s3.toml", "--run", RUN, "--destination", "acme"], dir.path(), Some(&execution));
    assert_eq!(out.status.code(), Some(0), "the S3 run failed:\n{}", text(&out));
    let out = byob(&["run", "--config", "local.toml", "--run", RUN, "--destination", "acme"], dir.path(), None);
    assert_eq!(out.status.code(), Some(0), "the local run failed:\n{}", text(&out));

    // THEN the bucket holds exactly the local folder's files, byte for byte ...
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let admin_s3 = moto.s3(&moto.sdk_config(admin));
    let in_bucket = rt.block_on(objects_under(&admin_s3, PREFIX));
    let in_folder = files_under(&dir.path().join("local/acme"));
    let data_keys = |m: &BTreeMap<String, Vec<u8>>| {
        m.keys()
            .filter(|k| !k.ends_with("receipt.json") && !k.ends_with("receipt.run.json"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(data_keys(&in_bucket), data_keys(&in_folder), "the same layout");
    assert!(data_keys(&in_bucket).len() > 3, "several files: {:?}", data_keys(&in_bucket));
    for key in data_keys(&in_folder) {
        assert!(in_bucket[&key] == in_folder[&key], "{key} differs");
    }
    // ... and the receipts agree on every table, file, row count and sha256.
    let s3_receipt = Receipt::from_json(&in_bucket["receipt.json"]).expect("receipt in the bucket");
    let local_receipt = Receipt::from_json(&in_folder["receipt.json"]).expect("local receipt");
    assert_eq!(s3_receipt.tables, local_receipt.tables);
    assert_eq!(in_bucket[&format!("{RUN}/receipt.run.json")], in_bucket["receipt.json"]);
    for table in s3_receipt.tables.values() {
        for file in &table.files {
            assert_eq!(hex::encode(Sha256::digest(&in_bucket[&file.key])), file.sha256, "{}", file.key);
        }
    }
    assert!(rt.block_on(moto::open_uploads(&admin_s3, BUCKET)).is_empty());
}

/// `byob run` keeps its state where the config says: with `s3://` it is the same state bucket
/// the deployed steps use, not a local folder named `s3:`.
#[test]
fn byob_run_keeps_its_state_in_the_configured_bucket() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let generated = byob(&["generate", "--out", "lake", "--scale", "0.002", "--seed", "3"], dir.path(), None);
    assert!(generated.status.success(), "{}", text(&generated));
    let config = format!(
        "tables = [\"companies\"]\n\n[source]\ntype = \"parquet\"\npath = \"lake\"\n\n\
         [[destinations]]\nid = \"acme\"\ntenant = \"acme\"\nfolder = \"local/acme\"\n\n\
         [aws]\nregion = \"us-east-1\"\nendpoint_url = \"{}\"\n\n[state]\npath = \"s3://byob-state/prod\"\n",
        moto.endpoint
    );
    std::fs::write(dir.path().join("byob.toml"), config).expect("config");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let admin = moto.s3(&moto.admin_config());
    rt.block_on(admin.create_bucket().bucket("byob-state").send()).expect("state bucket");

    // WHEN a whole run finishes
    let credentials = Credentials::new("testing", "testing", None, None, "moto");
    let out = byob(&["run", "--config", "byob.toml", "--run", RUN], dir.path(), Some(&credentials));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // THEN the state bucket records the run, and no local folder stands in for the bucket
    let listed = rt.block_on(admin.list_objects_v2().bucket("byob-state").prefix("prod/").send()).expect("list");
    let recorded: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(recorded, [format!("prod/runs/acme/{}.json", RUN.replace(':', "_"))], "{recorded:?}");
    assert!(dir.path().join("local/acme/receipt.json").exists());
    assert!(!dir.path().join("s3:").exists());
}

#[test]
fn the_generated_permission_policy_allows_multipart_and_abort_and_denies_reads_lists_and_other_keys() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &moto);
    let (execution, admin, _) = iam_world(&moto, dir.path(), &config);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    rt.block_on(async {
        // The customer role's own session, reached the way byob reaches it.
        let base = moto.sdk_config(execution);
        let chain = RoleChain::new(vec![
            Hop::new(role_arn("byob-destination-writer"), "byob-acme-test"),
            Hop::new(role_arn("acme-byob"), "byob-acme-test").with_external_id(EXTERNAL_ID),
        ])
        .expect("chain");
        let session = chain.assume(&base).await.expect("assume the chain");
        let customer = moto.s3(&moto.sdk_config(session));
        let admin = moto.s3(&moto.sdk_config(admin));
        admin
            .put_object()
            .bucket(BUCKET)
            .key(format!("{PREFIX}/existing"))
            .body(b"x".to_vec().into())
            .send()
            .await
            .expect("admin put");

        // Multipart uploads and their abort work with exactly the generated permissions.
        let mut options = S3SinkOptions::new(BUCKET);
        options.expected_bucket_owner = Some(moto::ACCOUNT.into());
        options.part_size = 5 << 20;
        let sink = S3Sink::new(customer.clone(), options);
        let mut upload = sink.start(&format!("{PREFIX}/{RUN}/big.bin"), &PutOptions::default()).await.expect("start");
        upload.put_part(Bytes::from(vec![7u8; 11 << 20])).await.expect("UploadPart is allowed");
        upload.complete().await.expect("a 3-part upload completes with the generated policy");
        let mut upload =
            sink.start(&format!("{PREFIX}/{RUN}/aborted.bin"), &PutOptions::default()).await.expect("start");
        upload.put_part(Bytes::from(vec![7u8; 11 << 20])).await.expect("UploadPart is allowed");
        upload.abort().await.expect("AbortMultipartUpload is granted");
        assert!(moto::open_uploads(&admin, BUCKET).await.is_empty());
        assert_eq!(
            moto::get(&admin, BUCKET, &format!("{PREFIX}/{RUN}/big.bin")).await.map(|b| b.len()),
            Some(11 << 20)
        );

        let put = |key: String| customer.put_object().bucket(BUCKET).key(key).body(b"y".to_vec().into()).send();
        put(format!("{PREFIX}/{RUN}/ok.txt")).await.expect("PutObject under the prefix is allowed");
        let denied =
            |what: &str, e: Option<String>| assert_eq!(e.as_deref(), Some("AccessDenied"), "{what} must be denied");
        let code = |e: &dyn aws_sdk_s3::error::ProvideErrorMetadata| e.code().map(str::to_owned);
        denied(
            "PutObject outside the prefix",
            put("elsewhere/x".into()).await.err().and_then(|e| e.as_service_error().and_then(|s| code(s))),
        );
        denied(
            "PutObject beside the prefix",
            put("byob/other".into()).await.err().and_then(|e| e.as_service_error().and_then(|s| code(s))),
        );
        let get = customer.get_object().bucket(BUCKET).key(format!("{PREFIX}/existing")).send().await;
        denied("GetObject", get.err().and_then(|e| e.as_service_error().and_then(|s| code(s))));
        let list = customer.list_objects_v2().bucket(BUCKET).prefix(PREFIX).send().await;
        denied("ListObjectsV2", list.err().and_then(|e| e.as_service_error().and_then(|s| code(s))));
        let head = customer.head_object().bucket(BUCKET).key(format!("{PREFIX}/existing")).send().await;
        assert!(head.is_err(), "HeadObject must be denied");
        let delete = customer.delete_object().bucket(BUCKET).key(format!("{PREFIX}/existing")).send().await;
        denied("DeleteObject", delete.err().and_then(|e| e.as_service_error().and_then(|s| code(s))));
    });
}

#[test]
fn byob_check_reports_each_step_and_the_missing_external_id_guard() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &moto);
    let (execution, admin, _) = iam_world(&moto, dir.path(), &config);

    // WHEN the preflight runs for acme, whose role has the generated policies
    let out = byob(&["check", "--config", "s3.toml", "--destination", "acme"], dir.path(), Some(&execution));
    let report = String::from_utf8_lossy(&out.stdout).into_owned();

    // THEN our credentials, every hop and the probe pass ...
    for line in [
        "PASS  our AWS credentials\n      arn:aws:iam::123456789012:user/byob-lambda",
        &format!("PASS  assume hop 1 of 2: {}", role_arn("byob-destination-writer")),
        &format!("PASS  assume hop 2 of 2: {}", role_arn("acme-byob")),
        &format!("PASS  write a probe object\n      s3://{BUCKET}/{PREFIX}/.byob-probe/"),
    ] {
        assert!(report.contains(line), "missing {line:?} in\n{}", text(&out));
    }
    // ... moto grants the customer's role to a request without ExternalId (it lets a missing
    // ExternalId through its condition check), which is exactly what check must flag ...
    assert!(
        report.contains("FAIL  SECURITY: the customer's role can be assumed WITHOUT the ExternalId"),
        "{}",
        text(&out)
    );
    assert!(
        report.contains("\"sts:ExternalId\": \"byob-acme-7f3e9c2a41d8\""),
        "the fix shows the condition:\n{report}"
    );
    // ... and the bucket owner cannot be verified: moto ignores ExpectedBucketOwner.
    assert!(
        report.contains("FAIL  bucket owner") && report.contains("does not check the bucket owner"),
        "{}",
        text(&out)
    );
    assert!(report.contains("4 passed, 2 failed"), "{report}");
    assert_eq!(out.status.code(), Some(1), "exit 0 only when all pass:\n{}", text(&out));

    // The probe is there, under the prefix, and nothing else was written.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let objects = rt.block_on(objects_under(&moto.s3(&moto.sdk_config(admin.clone())), PREFIX));
    assert!(!objects.is_empty() && objects.keys().all(|k| k.starts_with(".byob-probe/")), "{:?}", objects.keys());

    // WHEN the preflight runs for globex, whose role trusts without the ExternalId and may not
    // write under its prefix
    let out = byob(&["check", "--config", "s3.toml", "--destination", "globex"], dir.path(), Some(&execution));
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    // THEN the SECURITY problem (as above) and the refused probe are reported, with fixes.
    assert!(report.contains(&format!("PASS  assume hop 2 of 2: {}", role_arn("globex-byob"))), "{}", text(&out));
    assert!(
        report.contains("FAIL  SECURITY: the customer's role can be assumed WITHOUT the ExternalId"),
        "{}",
        text(&out)
    );
    assert!(report.contains("\"sts:ExternalId\": \"byob-globex-0a1b2c3d\""), "the fix shows the condition:\n{report}");
    assert!(report.contains("FAIL  write a probe object") && report.contains("AccessDenied"), "{}", text(&out));
    assert!(report.contains("fix: the customer's role needs the permission policy of `byob iam-policy --destination globex --only permissions`"), "{report}");
    assert!(report.contains("SKIP  bucket owner"), "{report}");
    assert_eq!(out.status.code(), Some(1));

    // Without our own credentials, the first step fails and says how to provide them.
    let out = byob(&["check", "--config", "s3.toml", "--destination", "acme"], dir.path(), None);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(report.contains("FAIL  our AWS credentials") && report.contains("AWS_ACCESS_KEY_ID"), "{}", text(&out));
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn iam_policy_prints_valid_iam_json() {
    // No moto needed: the policies come from the config alone.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = r#"
tables = ["events"]
[source]
type = "parquet"
path = "lake"

[[destinations]]
id = "acme"
tenant = "acme"
bucket = "acme-exports"
prefix = "exports/byob"
role_arn = "arn:aws:iam::222233334444:role/acme-byob"
external_id = "byob-acme-7f3e9c2a41d8"
bucket_owner_full_control = true
encryption = { type = "sse-kms", kms_key_id = "arn:aws:kms:eu-west-1:222233334444:key/1234abcd-12ab-34cd-56ef-1234567890ab" }

[[destinations]]
id = "globex"
tenant = "globex"
bucket = "globex-dumps"
role_arn = "arn:aws:iam::555566667777:role/byob"
external_id = "byob-globex-0a1b2c3d"

[[destinations]]
id = "laptop"
tenant = "acme"
folder = "out"

[aws]
writer_role_arn = "arn:aws:iam::111122223333:role/byob-destination-writer"
"#;
    std::fs::write(dir.path().join("byob.toml"), config).expect("config");
    let out = byob(&["iam-policy", "--config", "byob.toml", "--destination", "acme"], dir.path(), None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let all: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    for key in ["customer_trust_policy", "customer_permission_policy", "writer_role_policy", "execution_role_policy"] {
        let policy = &all[key];
        assert_eq!(policy["Version"], "2012-10-17", "{key}");
        let statements = policy["Statement"].as_array().unwrap_or_else(|| panic!("{key} has statements"));
        for s in statements {
            assert_eq!(s["Effect"], "Allow", "{key}");
            assert!(s["Action"].is_string() || s["Action"].is_array(), "{key}");
            assert!(s["Resource"].is_string() || s["Resource"].is_array() || s["Principal"].is_object(), "{key}");
        }
    }
    let trust = &all["customer_trust_policy"]["Statement"][0];
    assert_eq!(trust["Principal"]["AWS"], "arn:aws:iam::111122223333:role/byob-destination-writer");
    assert_eq!(trust["Condition"]["StringEquals"]["sts:ExternalId"], "byob-acme-7f3e9c2a41d8");
    let permissions = &all["customer_permission_policy"]["Statement"];
    assert_eq!(permissions[0]["Action"], json!(["s3:PutObject", "s3:AbortMultipartUpload", "s3:PutObjectAcl"]));
    assert_eq!(permissions[0]["Resource"], "arn:aws:s3:::acme-exports/exports/byob/*");
    assert_eq!(permissions[1]["Action"], json!(["kms:GenerateDataKey", "kms:Decrypt"]));
    assert_eq!(
        all["writer_role_policy"]["Statement"][0]["Resource"],
        json!(["arn:aws:iam::222233334444:role/acme-byob", "arn:aws:iam::555566667777:role/byob"])
    );
    assert_eq!(
        all["execution_role_policy"]["Statement"][0]["Resource"],
        json!(["arn:aws:iam::111122223333:role/byob-destination-writer"])
    );

    // --only prints one bare policy document.
    let out =
        byob(&["iam-policy", "--config", "byob.toml", "--destination", "acme", "--only", "trust"], dir.path(), None);
    let trust_only: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(trust_only, all["customer_trust_policy"]);

    // A local destination has no policies; an unknown one is named.
    let out = byob(&["iam-policy", "--config", "byob.toml", "--destination", "laptop"], dir.path(), None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = byob(&["iam-policy", "--config", "byob.toml", "--destination", "nope"], dir.path(), None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"), "{}", text(&out));
}
