//! An SDK interceptor that records every request an S3 client sends and can turn chosen
//! responses into failures: what a sink puts on the wire, seen from the client side (moto
//! checks neither ExpectedBucketOwner nor permissions on KMS keys, so the only proof for those
//! is what we send).

use std::sync::{Arc, Mutex};

use aws_sdk_s3::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::primitives::SdkBody;
use aws_smithy_types::config_bag::{Storable, StoreReplace};

/// Which operation (and which request of it) an attempt is: stored in the attempt's config
/// bag before transmit, read back before deserialization (the request itself is gone by then).
#[derive(Clone, Debug)]
struct Attempt {
    operation: &'static str,
    nth: usize,
}

impl Storable for Attempt {
    type Storer = StoreReplace<Self>;
}

/// One request as sent.
#[derive(Clone, Debug)]
pub struct Sent {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
}

impl Sent {
    /// A header's value, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The S3 operation this request is, from its method and query.
    pub fn operation(&self) -> &'static str {
        operation(&self.method, &self.uri)
    }
}

/// The S3 operation of a request, from its method and query string.
pub fn operation(method: &str, uri: &str) -> &'static str {
    let query = uri.split_once('?').map(|(_, q)| q).unwrap_or("");
    let has = |p: &str| query.split('&').any(|kv| kv == p || kv.starts_with(&format!("{p}=")));
    match method {
        "PUT" if has("partNumber") => "UploadPart",
        "PUT" => "PutObject",
        "POST" if has("uploads") => "CreateMultipartUpload",
        "POST" if has("uploadId") => "CompleteMultipartUpload",
        "DELETE" if has("uploadId") => "AbortMultipartUpload",
        "DELETE" => "DeleteObject",
        "GET" if has("uploads") => "ListMultipartUploads",
        "GET" => "GetObject-or-List",
        "HEAD" => "HeadObject",
        _ => "other",
    }
}

/// A response to fake for the `nth` (1-based) request of `operation`.
#[derive(Clone, Debug)]
pub struct Fault {
    pub operation: &'static str,
    pub nth: usize,
    pub status: u16,
    pub code: &'static str,
    /// Fault every request of the operation from the nth on, not just the nth.
    pub sticky: bool,
    /// Fail before the request is sent (the server never sees it), instead of replacing the
    /// server's answer (the server did the work, the client is told it failed).
    pub before_send: bool,
}

impl Fault {
    /// The server's answer to the nth request of `operation` becomes `status` + `code`.
    pub fn answer(operation: &'static str, nth: usize, status: u16, code: &'static str) -> Fault {
        Fault { operation, nth, status, code, sticky: false, before_send: false }
    }

    /// The nth request of `operation` (and every later one) never reaches the server.
    pub fn unsent(operation: &'static str, nth: usize) -> Fault {
        Fault { operation, nth, status: 0, code: "", sticky: true, before_send: true }
    }
}

/// Records requests; injects [`Fault`]s.
#[derive(Clone, Debug, Default)]
pub struct Wire {
    sent: Arc<Mutex<Vec<Sent>>>,
    faults: Arc<Mutex<Vec<Fault>>>,
    seen: Arc<Mutex<Vec<&'static str>>>,
}

impl Wire {
    /// Requests sent so far (every attempt, retries included).
    pub fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }

    /// Operations sent so far, in order.
    pub fn operations(&self) -> Vec<&'static str> {
        self.sent().iter().map(Sent::operation).collect()
    }

    /// Adds a fault.
    pub fn fail(&self, fault: Fault) {
        self.faults.lock().unwrap().push(fault);
    }

    /// Forgets everything recorded, and every fault.
    pub fn clear(&self) {
        self.faults.lock().unwrap().clear();
        self.sent.lock().unwrap().clear();
        self.seen.lock().unwrap().clear();
    }
}

impl Intercept for Wire {
    fn name(&self) -> &'static str {
        "byob-test-wire"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let headers = request.headers().iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        let sent = Sent { method: request.method().to_owned(), uri: request.uri().to_owned(), headers };
        let op = sent.operation();
        self.sent.lock().unwrap().push(sent);
        let nth = {
            let mut seen = self.seen.lock().unwrap();
            seen.push(op);
            seen.iter().filter(|o| **o == op).count()
        };
        cfg.interceptor_state().store_put(Attempt { operation: op, nth });
        let unsent = self.faults.lock().unwrap().iter().any(|f| f.before_send && f.operation == op && nth >= f.nth);
        if unsent {
            return Err(format!("{op} #{nth} was never sent: injected by the test").into());
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Attempt { operation: op, nth }) = cfg.load::<Attempt>().cloned() else { return Ok(()) };
        let fault = self
            .faults
            .lock()
            .unwrap()
            .iter()
            .find(|f| !f.before_send && f.operation == op && (f.nth == nth || (f.sticky && nth >= f.nth)))
            .cloned();
        if let Some(fault) = fault {
            let response = context.response_mut();
            *response.status_mut() = fault.status.try_into()?;
            *response.body_mut() = SdkBody::from(format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{}</Code><Message>injected by the test</Message><RequestId>test</RequestId></Error>",
                fault.code
            ));
        }
        Ok(())
    }
}
