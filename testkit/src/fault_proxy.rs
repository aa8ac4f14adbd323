//! A fault-injecting HTTP/1.1 proxy between the AWS SDK and a moto server, for the fault tests.
//!
//! [`FaultProxy::start`] listens on `127.0.0.1:<free port>` and forwards every request to the
//! upstream server (moto): point a client's `endpoint_url` at [`FaultProxy::endpoint`]. Each
//! request is classified as an AWS operation ([`Op`], from method, path, query, `X-Amz-Target`
//! and the form's `Action`), recorded ([`FaultProxy::requests`]: method, path, query, headers
//! including `x-amz-expected-bucket-owner`, the SigV4 access key id, the form of query-API
//! calls), and checked against the [`Rule`]s in order; the first rule that fires injects its
//! [`Fault`]:
//!
//! - [`Fault::InternalError`]: HTTP 500 with the service's error body (S3 `InternalError`, STS
//!   `InternalFailure`, Secrets Manager `InternalServiceError`); nothing reaches moto.
//! - [`Fault::SlowDown`]: HTTP 503 (S3 `SlowDown`, `ServiceUnavailable` elsewhere).
//! - [`Fault::Throttle`]: the service's own throttling answer: S3 503 `SlowDown`, STS 400
//!   `Throttling` (query-API XML), Secrets Manager 400 `ThrottlingException` (JSON).
//! - [`Fault::Reset`]: the request is read, then the connection is reset (RST); nothing
//!   reaches moto.
//! - [`Fault::Stall`]: the request is read and never answered; the connection stays open until
//!   the client gives up (its timeout) or the proxy stops.
//! - [`Fault::DropResponse`]: the request IS forwarded and moto applies it, then the connection
//!   is reset before any byte of the answer: the client cannot know it succeeded.
//!
//! A rule fires with a probability, decided by a seeded hash of the request (method, path and
//! query without the random `uploadId`, and how often the same request was seen), so a run
//! injects the same faults whatever order concurrent requests arrive in; or on the Nth request
//! it matches; or always. It may be limited to requests signed with one access key, to
//! AssumeRole calls for one role, to a number of faults per request (so the SDK's retries get
//! through) or in total.
//!
//! [`FaultProxy::expire_sessions`] makes sessions of one role short-lived: the `Expiration` of
//! each AssumeRole answer for it is rewritten to the request's signing time plus a duration,
//! and every later request signed with that session's access key at or after that moment (by
//! its `X-Amz-Date`) gets S3's 400 `ExpiredToken`, as AWS answers.
//!
//! A hand-written forwarder (tokio TCP only): hyper 1 is in the dependency tree, but only with
//! its client features; enabling its server would rebuild the whole AWS SDK stack for every
//! test build. Every request goes to moto on a fresh connection with `Connection: close`;
//! client connections are kept alive. Bodies are held in memory (test sizes).

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The AWS operation of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    CreateMultipartUpload,
    UploadPart,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListMultipartUploads,
    PutObject,
    GetObject,
    HeadObject,
    ListObjects,
    CreateBucket,
    OtherS3,
    AssumeRole,
    GetCallerIdentity,
    /// Another query-API call (STS, IAM).
    OtherQuery,
    GetSecretValue,
    /// Another JSON-protocol call (`X-Amz-Target`).
    OtherJson,
    /// moto's own `/moto-api/`.
    MotoApi,
}

impl Op {
    /// The S3 operations that write a dump.
    pub const S3_WRITES: [Op; 5] = [
        Op::PutObject,
        Op::CreateMultipartUpload,
        Op::UploadPart,
        Op::CompleteMultipartUpload,
        Op::AbortMultipartUpload,
    ];

    fn service(self) -> Service {
        match self {
            Op::AssumeRole | Op::GetCallerIdentity | Op::OtherQuery => Service::Query,
            Op::GetSecretValue | Op::OtherJson => Service::Json,
            _ => Service::S3,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Service {
    S3,
    Query,
    Json,
}

/// What the proxy does to a request instead of (or after) forwarding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    InternalError,
    SlowDown,
    Throttle,
    Reset,
    Stall,
    DropResponse,
}

/// When a rule fires.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Trigger {
    /// With this probability, decided by the seeded hash of the request.
    Probability(f64),
    /// On the Nth request the rule matches (1-based), once.
    Nth(usize),
    /// On every request it matches.
    Always,
}

/// Which requests get which fault.
#[derive(Clone, Debug)]
pub struct Rule {
    ops: Vec<Op>,
    faults: Vec<Fault>,
    trigger: Trigger,
    access_key: Option<String>,
    role_arn: Option<String>,
    per_request: Option<usize>,
    limit: Option<usize>,
}

impl Rule {
    /// A rule for requests of `ops`, injecting `fault` on every one of them until told otherwise.
    pub fn on(ops: &[Op], fault: Fault) -> Rule {
        Rule {
            ops: ops.to_vec(),
            faults: vec![fault],
            trigger: Trigger::Always,
            access_key: None,
            role_arn: None,
            per_request: None,
            limit: None,
        }
    }

    /// Injects one of `faults`, chosen by the request's hash.
    pub fn faults(mut self, faults: &[Fault]) -> Rule {
        self.faults = faults.to_vec();
        self
    }

    /// Fires with probability `p`.
    pub fn probability(mut self, p: f64) -> Rule {
        self.trigger = Trigger::Probability(p);
        self
    }

    /// Fires on the `n`th matching request (1-based) only.
    pub fn nth(mut self, n: usize) -> Rule {
        self.trigger = Trigger::Nth(n);
        self
    }

    /// Only requests signed with `access_key`.
    pub fn signed_by(mut self, access_key: &str) -> Rule {
        self.access_key = Some(access_key.to_owned());
        self
    }

    /// Only AssumeRole calls for `role_arn`.
    pub fn role(mut self, role_arn: &str) -> Rule {
        self.role_arn = Some(role_arn.to_owned());
        self
    }

    /// At most `n` faults to one request (the same method, path and query, retried).
    pub fn per_request(mut self, n: usize) -> Rule {
        self.per_request = Some(n);
        self
    }

    /// At most `n` faults in all.
    pub fn limit(mut self, n: usize) -> Rule {
        self.limit = Some(n);
        self
    }
}

/// One request the proxy received.
#[derive(Clone, Debug)]
pub struct Request {
    /// Arrival order, from 0.
    pub seq: usize,
    pub op: Op,
    pub method: String,
    /// The path, percent-encoded as sent.
    pub path: String,
    /// The query string, without `?`.
    pub query: String,
    pub headers: Vec<(String, String)>,
    /// The access key id of the SigV4 `Authorization` header.
    pub access_key: Option<String>,
    /// The decoded form of a query-API call (`Action`, `RoleArn`, ...).
    pub form: Vec<(String, String)>,
    pub body_len: usize,
    /// The fault injected, if any.
    pub fault: Option<Fault>,
    /// The status the client received (`None`: no answer: reset, stalled or dropped).
    pub status: Option<u16>,
    /// The status moto answered with, when the request was forwarded.
    pub upstream_status: Option<u16>,
}

impl Request {
    /// A header's value, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// A form field of a query-API call.
    pub fn form(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// `bucket` and `key` of a path-style S3 request (`key` empty for a bucket request).
    pub fn bucket_key(&self) -> (String, String) {
        let path = self.path.trim_start_matches('/');
        let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
        (byob::load::event::url_decode(bucket), byob::load::event::url_decode(key))
    }
}

type Hook = Arc<dyn Fn(&Request) + Send + Sync>;

struct State {
    seed: u64,
    rules: Vec<(Rule, usize, usize)>,
    requests: Vec<Request>,
    /// Requests seen per identity (method, path, query without uploadId).
    seen: HashMap<String, usize>,
    /// Faults per (rule, identity).
    faulted: HashMap<(usize, String), usize>,
    expiring: Option<(String, Duration)>,
    /// Access key -> the moment its session expires.
    expiry: HashMap<String, SystemTime>,
    hook: Option<Hook>,
}

/// A running proxy; stops (and drops every connection) when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy forwarding to `upstream` (`http://127.0.0.1:<port>`), with `seed` for
    /// probabilistic rules. Runs on a thread and runtime of its own, so it serves synchronous
    /// tests and subprocesses as well as async tests.
    pub fn start(upstream: &str, seed: u64) -> FaultProxy {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let state = Arc::new(Mutex::new(State {
            seed,
            rules: Vec::new(),
            requests: Vec::new(),
            seen: HashMap::new(),
            faulted: HashMap::new(),
            expiring: None,
            expiry: HashMap::new(),
            hook: None,
        }));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                port_tx.send(listener.local_addr().unwrap().port()).unwrap();
                let accept = async {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else { continue };
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(serve(stream, shared.clone(), upstream.clone()));
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stop_rx => {}
                }
            });
            runtime.shutdown_background();
        });
        let port = port_rx.recv().unwrap();
        FaultProxy { endpoint: format!("http://127.0.0.1:{port}"), state, stop: Some(stop_tx), thread: Some(thread) }
    }

    /// Adds a rule after the existing ones.
    pub fn add(&self, rule: Rule) {
        self.state.lock().unwrap().rules.push((rule, 0, 0));
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    /// Makes every session of `role_arn` expire `valid_for` after its AssumeRole was signed
    /// (see the module documentation).
    pub fn expire_sessions(&self, role_arn: &str, valid_for: Duration) {
        self.state.lock().unwrap().expiring = Some((role_arn.to_owned(), valid_for));
    }

    /// Calls `hook` with every request as it arrives, before any fault is decided.
    pub fn on_request(&self, hook: impl Fn(&Request) + Send + Sync + 'static) {
        self.state.lock().unwrap().hook = Some(Arc::new(hook));
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The requests that got a fault.
    pub fn faults(&self) -> Vec<Request> {
        self.requests().into_iter().filter(|r| r.fault.is_some()).collect()
    }

    /// Forgets the requests recorded so far (rules and counters stay).
    pub fn forget(&self) {
        self.state.lock().unwrap().requests.clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A message head: the start line and the headers, as sent.
struct Head {
    start: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.header(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }
}

async fn read_head<R: AsyncBufRead + Unpin>(r: &mut R) -> io::Result<Option<Head>> {
    let mut start = String::new();
    let mut headers = Vec::new();
    let mut total = 0;
    loop {
        let mut line = Vec::new();
        let n = r.read_until(b'\n', &mut line).await?;
        if n == 0 {
            return if start.is_empty() && headers.is_empty() {
                Ok(None)
            } else {
                Err(io::Error::new(io::ErrorKind::UnexpectedEof, "head cut short"))
            };
        }
        total += n;
        if total > 256 * 1024 {
            return Err(io::Error::other("head too large"));
        }
        let line = String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_owned();
        if start.is_empty() {
            if line.is_empty() {
                continue; // stray CRLF between messages
            }
            start = line;
        } else if line.is_empty() {
            return Ok(Some(Head { start, headers }));
        } else if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
}

/// Reads a body framed by Content-Length or chunked encoding; a response without either is
/// read to the end of the stream (`to_eof`).
async fn read_body<R: AsyncBufRead + Unpin>(r: &mut R, head: &Head, to_eof: bool) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if head.has_token("transfer-encoding", "chunked") {
        loop {
            let mut line = Vec::new();
            r.read_until(b'\n', &mut line).await?;
            let text = String::from_utf8_lossy(&line);
            let size = usize::from_str_radix(text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| io::Error::other(format!("bad chunk size {text:?}")))?;
            if size == 0 {
                loop {
                    let mut trailer = Vec::new();
                    let n = r.read_until(b'\n', &mut trailer).await?;
                    if n == 0 || trailer == b"\r\n" || trailer == b"\n" {
                        break;
                    }
                }
                return Ok(body);
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..]).await?;
            let mut crlf = Vec::new();
            r.read_until(b'\n', &mut crlf).await?;
        }
    }
    if let Some(length) = head.header("content-length") {
        let length: usize = length.parse().map_err(|_| io::Error::other("bad content-length"))?;
        body.resize(length, 0);
        r.read_exact(&mut body).await?;
    } else if to_eof {
        r.read_to_end(&mut body).await?;
    }
    Ok(body)
}

/// Serves one client connection: request after request, until it closes.
async fn serve(stream: TcpStream, state: Arc<Mutex<State>>, upstream: String) {
    let mut conn = BufReader::new(stream);
    loop {
        let head = match read_head(&mut conn).await {
            Ok(Some(head)) => head,
            _ => return,
        };
        if head.has_token("expect", "100-continue")
            && conn.get_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err()
        {
            return;
        }
        let Ok(body) = read_body(&mut conn, &head, false).await else { return };
        let close = head.has_token("connection", "close");
        let mut parts = head.start.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let target = parts.next().unwrap_or("/").to_owned();
        let (path, query) =
            target.split_once('?').map_or((target.clone(), String::new()), |(p, q)| (p.to_owned(), q.to_owned()));
        let form = if head.header("content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")) {
            parse_form(&String::from_utf8_lossy(&body))
        } else {
            Vec::new()
        };
        let op = classify(&method, &path, &query, &head, &form);
        let access_key = head.header("authorization").and_then(|a| {
            let credential = a.split("Credential=").nth(1)?;
            credential.split('/').next().map(str::to_owned)
        });
        let mut request = Request {
            seq: 0,
            op,
            method: method.clone(),
            path,
            query,
            headers: head.headers.clone(),
            access_key,
            form,
            body_len: body.len(),
            fault: None,
            status: None,
            upstream_status: None,
        };
        let signed_at = head.header("x-amz-date").and_then(parse_amz_date);
        let (seq, decision) = decide(&state, &mut request, signed_at);

        let answer: Option<(u16, Vec<u8>)> = match decision {
            Decision::Expired => {
                Some(error_response(Op::PutObject, 400, "ExpiredToken", "The provided token has expired."))
            }
            Decision::Fault(Fault::InternalError) => Some(match op.service() {
                Service::S3 => {
                    error_response(op, 500, "InternalError", "We encountered an internal error. Please try again.")
                }
                Service::Query => error_response(op, 500, "InternalFailure", "An internal error occurred."),
                Service::Json => error_response(op, 500, "InternalServiceError", "An internal error occurred."),
            }),
            Decision::Fault(Fault::SlowDown) => Some(match op.service() {
                Service::S3 => error_response(op, 503, "SlowDown", "Please reduce your request rate."),
                _ => error_response(op, 503, "ServiceUnavailable", "The service is unavailable. Please try again."),
            }),
            Decision::Fault(Fault::Throttle) => Some(match op.service() {
                Service::S3 => error_response(op, 503, "SlowDown", "Please reduce your request rate."),
                Service::Query => error_response(op, 400, "Throttling", "Rate exceeded"),
                Service::Json => error_response(op, 400, "ThrottlingException", "Rate exceeded"),
            }),
            Decision::Fault(Fault::Reset) => {
                reset(conn);
                return;
            }
            Decision::Fault(Fault::Stall) => {
                // Never answer: wait until the client gives up (or the proxy stops).
                let mut sink = [0u8; 4096];
                while matches!(conn.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
            Decision::Fault(Fault::DropResponse) => {
                if let Ok((status, _, _)) = forward(&upstream, &method, &target, &head, &body).await {
                    set(&state, seq, |r| r.upstream_status = Some(status));
                }
                reset(conn);
                return;
            }
            Decision::Forward => None,
        };
        let written = match answer {
            Some((status, bytes)) => {
                set(&state, seq, |r| r.status = Some(status));
                conn.get_mut().write_all(&bytes).await
            }
            None => match forward(&upstream, &method, &target, &head, &body).await {
                Ok((status, mut response_head, mut response_body)) => {
                    if op == Op::AssumeRole && status == 200 {
                        rewrite_expiration(&state, &request, signed_at, &mut response_body);
                        response_head.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-length"));
                        response_head.headers.push(("Content-Length".into(), response_body.len().to_string()));
                    }
                    set(&state, seq, |r| {
                        r.status = Some(status);
                        r.upstream_status = Some(status);
                    });
                    let mut out = format!("{}\r\n", response_head.start).into_bytes();
                    for (k, v) in &response_head.headers {
                        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
                    }
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(&response_body);
                    conn.get_mut().write_all(&out).await
                }
                Err(_) => {
                    reset(conn);
                    return;
                }
            },
        };
        if written.is_err() || close {
            return;
        }
    }
}

/// Resets the client's connection (RST, not FIN), as a dying load balancer does.
fn reset(conn: BufReader<TcpStream>) {
    let stream = conn.into_inner();
    let _ = stream.set_zero_linger();
    drop(stream);
}

fn set(state: &Mutex<State>, seq: usize, f: impl FnOnce(&mut Request)) {
    if let Some(r) = state.lock().unwrap().requests.get_mut(seq) {
        f(r);
    }
}

enum Decision {
    Forward,
    Fault(Fault),
    Expired,
}

/// Records `request` and decides what happens to it.
fn decide(state: &Mutex<State>, request: &mut Request, signed_at: Option<SystemTime>) -> (usize, Decision) {
    let hook = state.lock().unwrap().hook.clone();
    if let Some(hook) = hook {
        hook(request);
    }
    let mut s = state.lock().unwrap();
    let seq = s.requests.len();
    request.seq = seq;
    let identity = identity(request);
    let seen = {
        let n = s.seen.entry(identity.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let expired = request.access_key.as_ref().and_then(|k| s.expiry.get(k)).is_some_and(|expiry| {
        // Judged by the signing time: a request signed before the session ended is valid.
        signed_at.is_some_and(|t| t >= *expiry)
    });
    let mut decision = if expired { Decision::Expired } else { Decision::Forward };
    if !expired {
        let seed = s.seed;
        let mut chosen = None;
        for (index, (rule, matched, fired)) in s.rules.iter_mut().enumerate() {
            if !rule.ops.contains(&request.op)
                || rule.access_key.as_ref().is_some_and(|k| request.access_key.as_ref() != Some(k))
                || rule.role_arn.as_deref().is_some_and(|arn| request.form("RoleArn") != Some(arn))
                || rule.limit.is_some_and(|l| *fired >= l)
            {
                continue;
            }
            *matched += 1;
            let hash = splitmix(seed ^ fnv(&format!("{index}|{identity}|{seen}")));
            let fires = match rule.trigger {
                Trigger::Always => true,
                Trigger::Nth(n) => *matched == n,
                Trigger::Probability(p) => ((hash >> 11) as f64 / (1u64 << 53) as f64) < p,
            };
            if fires {
                let fault = rule.faults[(splitmix(hash) % rule.faults.len() as u64) as usize];
                chosen = Some((index, fault, rule.per_request));
                break;
            }
        }
        if let Some((index, fault, per_request)) = chosen {
            let key = (index, identity);
            let count = s.faulted.get(&key).copied().unwrap_or(0);
            if per_request.is_none_or(|n| count < n) {
                s.faulted.insert(key, count + 1);
                s.rules[index].2 += 1;
                request.fault = Some(fault);
                decision = Decision::Fault(fault);
            }
        }
    }
    s.requests.push(request.clone());
    (seq, decision)
}

/// What makes two requests "the same request retried": method, path and query without the
/// random upload id.
fn identity(r: &Request) -> String {
    let query: Vec<&str> = r.query.split('&').filter(|p| !p.starts_with("uploadId=")).collect();
    let role = r.form("RoleArn").unwrap_or("");
    format!("{} {}?{} {role}", r.method, r.path, query.join("&"))
}

fn classify(method: &str, path: &str, query: &str, head: &Head, form: &[(String, String)]) -> Op {
    if path.starts_with("/moto-api") {
        return Op::MotoApi;
    }
    if let Some(target) = head.header("x-amz-target") {
        return if target.ends_with(".GetSecretValue") { Op::GetSecretValue } else { Op::OtherJson };
    }
    if let Some((_, action)) = form.iter().find(|(k, _)| k == "Action") {
        return match action.as_str() {
            "AssumeRole" => Op::AssumeRole,
            "GetCallerIdentity" => Op::GetCallerIdentity,
            _ => Op::OtherQuery,
        };
    }
    let params: Vec<&str> = query.split('&').map(|p| p.split('=').next().unwrap_or("")).collect();
    let has = |name: &str| params.contains(&name);
    let trimmed = path.trim_start_matches('/');
    let has_key = trimmed.split_once('/').is_some_and(|(_, k)| !k.is_empty());
    match method {
        "PUT" if has("uploadId") => Op::UploadPart,
        "POST" if has("uploadId") => Op::CompleteMultipartUpload,
        "DELETE" if has("uploadId") => Op::AbortMultipartUpload,
        "POST" if has("uploads") => Op::CreateMultipartUpload,
        "GET" if has("uploads") => Op::ListMultipartUploads,
        "PUT" if has_key => Op::PutObject,
        "PUT" if !trimmed.is_empty() && query.is_empty() => Op::CreateBucket,
        "GET" if has_key => Op::GetObject,
        "HEAD" if has_key => Op::HeadObject,
        "GET" if !trimmed.is_empty() => Op::ListObjects,
        _ => Op::OtherS3,
    }
}

fn parse_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((byob::load::event::url_decode(k), byob::load::event::url_decode(v)))
        })
        .collect()
}

/// `20240102T040000Z` -> that moment.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let t = chrono::NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%SZ").ok()?;
    Some(SystemTime::from(t.and_utc()))
}

/// For an AssumeRole of the expiring role: the answer's Expiration becomes the signing time
/// plus the configured duration, and the new access key expires then.
fn rewrite_expiration(state: &Mutex<State>, request: &Request, signed_at: Option<SystemTime>, body: &mut Vec<u8>) {
    let mut s = state.lock().unwrap();
    let Some((role, valid_for)) = s.expiring.clone() else { return };
    if request.form("RoleArn") != Some(role.as_str()) {
        return;
    }
    let text = String::from_utf8_lossy(body).into_owned();
    let (Some(key), Some(signed_at)) = (xml_text(&text, "AccessKeyId"), signed_at) else { return };
    let expires = signed_at + valid_for;
    let stamp = chrono::DateTime::<chrono::Utc>::from(expires).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let Some(old) = xml_text(&text, "Expiration") else { return };
    *body = text
        .replace(&format!("<Expiration>{old}</Expiration>"), &format!("<Expiration>{stamp}</Expiration>"))
        .into_bytes();
    s.expiry.insert(key, expires);
}

fn xml_text(xml: &str, element: &str) -> Option<String> {
    let start = xml.find(&format!("<{element}>"))? + element.len() + 2;
    let end = xml[start..].find(&format!("</{element}>"))? + start;
    Some(xml[start..end].to_owned())
}

/// A whole HTTP response carrying the service's error shape.
fn error_response(op: Op, status: u16, code: &str, message: &str) -> (u16, Vec<u8>) {
    let reason = match status {
        400 => "Bad Request",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let (content_type, extra, body) = match op.service() {
        Service::S3 => (
            "application/xml",
            String::new(),
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>FAULTPROXY</RequestId><HostId>faultproxy</HostId></Error>"
            ),
        ),
        Service::Query => (
            "text/xml",
            String::new(),
            format!(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>{}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>faultproxy</RequestId></ErrorResponse>",
                if status >= 500 { "Receiver" } else { "Sender" }
            ),
        ),
        Service::Json => (
            "application/x-amz-json-1.1",
            format!("x-amzn-ErrorType: {code}\r\n"),
            format!("{{\"__type\":\"{code}\",\"message\":\"{message}\"}}"),
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nx-amzn-RequestId: faultproxy\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    (status, out)
}

/// Sends the request to moto on a fresh connection; returns status, head (hop-by-hop headers
/// removed, Content-Length set) and body.
async fn forward(
    upstream: &str,
    method: &str,
    target: &str,
    head: &Head,
    body: &[u8],
) -> io::Result<(u16, Head, Vec<u8>)> {
    let mut stream = TcpStream::connect(upstream).await?;
    let mut out = format!("{method} {target} HTTP/1.1\r\n").into_bytes();
    for (k, v) in &head.headers {
        if ["connection", "expect", "transfer-encoding", "content-length", "keep-alive"]
            .iter()
            .any(|h| k.eq_ignore_ascii_case(h))
        {
            continue;
        }
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    stream.write_all(&out).await?;
    let mut reader = BufReader::new(stream);
    let mut response = loop {
        let head = read_head(&mut reader).await?.ok_or_else(|| io::Error::other("no response"))?;
        let status: u16 = head.start.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        if !(100..200).contains(&status) {
            break head;
        }
    };
    let status: u16 = response.start.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let bodiless = method == "HEAD" || status == 204 || status == 304;
    let response_body = if bodiless { Vec::new() } else { read_body(&mut reader, &response, true).await? };
    let length = response.header("content-length").map(str::to_owned);
    response.headers.retain(|(k, _)| {
        !["connection", "transfer-encoding", "content-length", "keep-alive"].iter().any(|h| k.eq_ignore_ascii_case(h))
    });
    let length = if method == "HEAD" { length.unwrap_or_else(|| "0".into()) } else { response_body.len().to_string() };
    response.headers.push(("Content-Length".into(), length));
    Ok((status, response, response_body))
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Whether `stop` was set; a helper for hooks that act once.
pub fn once(flag: &AtomicBool) -> bool {
    !flag.swap(true, Ordering::SeqCst)
}
