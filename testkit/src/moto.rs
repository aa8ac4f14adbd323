//! A moto server of the test's own: the local stand-in for S3, STS, IAM and Secrets Manager.
//!
//! [`Moto::start`] runs `moto_server -H 127.0.0.1 -p <free port>` (from `$BYOB_MOTO_SERVER`,
//! the tools venv `scripts/setup-moto` fills, or `PATH`), waits until it answers, and kills it
//! when dropped, so every test has a server, state and request recording of its own. When no
//! moto can be found or started, it prints a LOUD message and returns `None` (the test then
//! skips); with `BYOB_REQUIRE_MOTO=1` (scripts/test sets it) it panics instead.
//!
//! What moto does NOT check (TOOLING.md): trust policies, ExternalId, session duration,
//! credential expiry, ExpectedBucketOwner, KMS permissions. Tests assert what we SEND for those,
//! from moto's request recording ([`Moto::recorded`]) or an SDK interceptor. Identity policies
//! ARE enforced after [`Moto::enforce_iam`]; set up users, roles and policies before it, with
//! [`Moto::iam`], which speaks IAM's query API directly (no IAM SDK crate needed).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};

/// moto's default account: every user, role and bucket lives here.
pub const ACCOUNT: &str = "123456789012";

/// A running moto server, stopped on drop.
pub struct Moto {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

/// One request moto received (from its recorder).
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub url: String,
    pub headers: serde_json::Map<String, serde_json::Value>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// A header's value, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.as_str())
    }

    /// The body as text (form-encoded STS and IAM calls).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A form field of a query-API call (`Action`, `RoleArn`, `ExternalId`, ...), decoded.
    pub fn form(&self, field: &str) -> Option<String> {
        self.text().split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == field).then(|| byob::load::event::url_decode(v))
        })
    }

    /// The access key id in the request's SigV4 Authorization header.
    pub fn access_key(&self) -> Option<String> {
        let auth = self.header("Authorization")?;
        let credential = auth.split("Credential=").nth(1)?;
        credential.split('/').next().map(str::to_owned)
    }
}

/// `s` percent-encoded as AWS query strings and form bodies want it (RFC 3986 unreserved kept).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Where moto_server is: `$BYOB_MOTO_SERVER`, the tools venv, or `PATH`.
pub fn moto_server_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BYOB_MOTO_SERVER") {
        let p = PathBuf::from(p);
        return p.exists().then_some(p);
    }
    let tools = std::env::var_os("BYOB_TOOLS")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/byob-tools")));
    if let Some(venv) = tools.map(|t| t.join("venv/bin/moto_server"))
        && venv.exists()
    {
        return Some(venv);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("moto_server")).find(|p| p.exists())
}

fn skip(reason: &str) -> Option<Moto> {
    let message = format!(
        "\n\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !!! SKIPPING a moto test: {reason}\n\
         !!! install it with scripts/setup-moto (or set BYOB_MOTO_SERVER)\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    if std::env::var_os("BYOB_REQUIRE_MOTO").is_some_and(|v| v != "0" && !v.is_empty()) {
        panic!("{message}(BYOB_REQUIRE_MOTO is set, so this is a failure)");
    }
    eprintln!("{message}");
    None
}

impl Moto {
    /// Starts a moto server of this test's own; `None` (after a loud message) when moto is not
    /// installed or does not start.
    pub fn start() -> Option<Moto> {
        let Some(binary) = moto_server_binary() else {
            return skip("moto_server was not found");
        };
        let mut dir = tempfile::tempdir().unwrap();
        for _attempt in 0..3 {
            let port = free_port();
            let log = std::fs::File::create(dir.path().join("moto.log")).unwrap();
            let child = Command::new(&binary)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("MOTO_RECORDER_FILEPATH", dir.path().join("recording.jsonl"))
                .env("PYTHONUNBUFFERED", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().unwrap()))
                .stderr(Stdio::from(log))
                .spawn();
            let child = match child {
                Ok(c) => c,
                Err(e) => return skip(&format!("{} could not be started: {e}", binary.display())),
            };
            let mut moto = Moto { endpoint: format!("http://127.0.0.1:{port}"), port, child, dir };
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = moto.child.try_wait() {
                    break;
                }
                if moto.request("GET", "/moto-api/", &[], b"").is_ok_and(|(status, _)| status == 200) {
                    return Some(moto);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let log = std::fs::read_to_string(moto.dir.path().join("moto.log")).unwrap_or_default();
            eprintln!("moto_server on port {port} did not come up; its log:\n{log}");
            let _ = moto.child.kill();
            let _ = moto.child.wait();
            dir = std::mem::replace(&mut moto.dir, tempfile::tempdir().unwrap());
        }
        skip(&format!("{} did not answer on 127.0.0.1 (tried 3 ports)", binary.display()))
    }

    /// A raw HTTP/1.1 request to the server; returns status and body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<(u16, Vec<u8>)> {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.port,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        let split =
            raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| std::io::Error::other("no header end"))?;
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other("no status"))?;
        let mut body = raw[split + 4..].to_vec();
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            body = dechunk(&body);
        }
        Ok((status, body))
    }

    fn post(&self, path: &str, body: &[u8]) {
        let (status, answer) = self.request("POST", path, &[], body).unwrap();
        assert!(status < 300, "POST {path}: {status} {}", String::from_utf8_lossy(&answer));
    }

    /// Wipes every service's state (POST /moto-api/reset).
    pub fn reset(&self) {
        self.post("/moto-api/reset", b"");
    }

    /// Turns identity-policy checks and SigV4 verification on, from the next request on
    /// (POST /moto-api/reset-auth with body 0). Create users, roles and policies first.
    pub fn enforce_iam(&self) {
        self.post("/moto-api/reset-auth", b"0");
    }

    /// Starts recording every request moto receives (and clears earlier recordings).
    pub fn start_recording(&self) {
        self.post("/moto-api/recorder/reset-recording", b"");
        self.post("/moto-api/recorder/start-recording", b"");
    }

    /// The requests received since [`Moto::start_recording`].
    pub fn recorded(&self) -> Vec<Recorded> {
        let text = std::fs::read_to_string(self.dir.path().join("recording.jsonl")).unwrap_or_default();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let body = v["body"].as_str().unwrap_or("");
                let body = if v["body_encoded"].as_bool() == Some(true) {
                    aws_smithy_types::base64::decode(body).unwrap_or_default()
                } else {
                    body.as_bytes().to_vec()
                };
                Recorded {
                    method: v["method"].as_str().unwrap_or("").to_owned(),
                    url: v["url"].as_str().unwrap_or("").to_owned(),
                    headers: v["headers"].as_object().cloned().unwrap_or_default(),
                    body,
                }
            })
            .collect()
    }

    /// The STS AssumeRole calls among the recorded requests, in order.
    pub fn assume_role_calls(&self) -> Vec<Recorded> {
        self.recorded().into_iter().filter(|r| r.form("Action").as_deref() == Some("AssumeRole")).collect()
    }

    /// Calls IAM's query API (form-encoded POST) and returns the response XML. Works only before
    /// [`Moto::enforce_iam`] (the request is not signed; moto routes it by the credential scope).
    pub fn iam(&self, action: &str, params: &[(&str, &str)]) -> String {
        let mut body = format!("Action={action}&Version=2010-05-08");
        for (k, v) in params {
            body.push_str(&format!("&{k}={}", url_encode(v)));
        }
        let auth = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0";
        let (status, answer) = self
            .request(
                "POST",
                "/",
                &[("Content-Type", "application/x-www-form-urlencoded"), ("Authorization", auth)],
                body.as_bytes(),
            )
            .unwrap();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        assert!(status < 300, "IAM {action}: {status} {answer}");
        answer
    }

    /// Creates an IAM user with an inline policy and an access key; returns its credentials.
    pub fn user(&self, name: &str, policy: &serde_json::Value) -> Credentials {
        self.iam("CreateUser", &[("UserName", name)]);
        self.iam(
            "PutUserPolicy",
            &[("UserName", name), ("PolicyName", "inline"), ("PolicyDocument", &policy.to_string())],
        );
        let xml = self.iam("CreateAccessKey", &[("UserName", name)]);
        let id = xml_field(&xml, "AccessKeyId");
        let secret = xml_field(&xml, "SecretAccessKey");
        Credentials::new(id, secret, None, None, "moto-user")
    }

    /// Creates an IAM role with a trust policy and an inline permission policy; returns its ARN.
    pub fn role(&self, name: &str, trust: &serde_json::Value, policy: &serde_json::Value) -> String {
        let xml = self.iam("CreateRole", &[("RoleName", name), ("AssumeRolePolicyDocument", &trust.to_string())]);
        self.iam(
            "PutRolePolicy",
            &[("RoleName", name), ("PolicyName", "inline"), ("PolicyDocument", &policy.to_string())],
        );
        xml_field(&xml, "Arn")
    }

    /// An SDK config pointing every service at this server, with `credentials`.
    pub fn sdk_config(&self, credentials: Credentials) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::from_static("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .retry_config(byob::aws::retry_config())
            .time_source(aws_smithy_async::time::SystemTimeSource::new())
            .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
            .build()
    }

    /// An SDK config with moto's anything-goes credentials (valid until [`Moto::enforce_iam`]).
    pub fn admin_config(&self) -> SdkConfig {
        self.sdk_config(Credentials::new("testing", "testing", None, None, "moto"))
    }

    /// An S3 client on `config` with path-style addressing.
    pub fn s3(&self, config: &SdkConfig) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(true).build())
    }

    /// The server's process id (for its memory figures).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The folder of this server's files (log, recording).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).map(|a| a.port()).unwrap()
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap_or("0").trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&body[start..(start + size).min(body.len())]);
        body = &body[(start + size + 2).min(body.len())..];
    }
    out
}

/// The first `<name>...</name>` of an XML answer.
pub fn xml_field(xml: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open).map(|i| i + open.len()).unwrap_or_else(|| panic!("no <{name}> in {xml}"));
    let end = xml[start..].find(&close).map(|i| i + start).unwrap();
    xml[start..end].to_owned()
}

/// Blocks on `future` from synchronous code inside a multi-threaded tokio test (the
/// conformance suite's `read` callback is synchronous).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}

/// Reads an object with `client` (an admin's), `None` when it does not exist.
pub async fn get(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Option<Vec<u8>> {
    match client.get_object().bucket(bucket).key(key).send().await {
        Ok(o) => Some(o.body.collect().await.unwrap().into_bytes().to_vec()),
        Err(e) => {
            let code =
                e.as_service_error().map(|s| aws_sdk_s3::error::ProvideErrorMetadata::code(s).unwrap_or("").to_owned());
            assert_eq!(
                code.as_deref(),
                Some("NoSuchKey"),
                "GetObject {key}: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            );
            None
        }
    }
}

/// The keys of every multipart upload still open in `bucket`.
pub async fn open_uploads(client: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let out = client.list_multipart_uploads().bucket(bucket).send().await.unwrap();
    out.uploads().iter().filter_map(|u| u.key().map(str::to_owned)).collect()
}
