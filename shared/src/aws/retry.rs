//! Which AWS errors a retry can fix.
//!
//! Retrying itself is the SDK's job: every client byob builds uses the standard retry mode
//! ([`super::retry_config`]: [`super::MAX_ATTEMPTS`] attempts, exponential backoff with
//! jitter, a retry token bucket), which retries throttling, 5xx, timeouts and connection
//! errors, and rewinds the in-memory part bodies we send. [`is_retriable`] is the same judgement
//! as one plain function (Vector's `is_retriable_error`), applied to the error left once the
//! SDK has given up: it decides whether the task as a whole is worth retrying (a Step
//! Functions retry, a re-run), and it is how errors are labelled in messages.
//!
//! This module must never turn a permission or configuration error (403, 400, 404) into a
//! retry: retrying those only delays the message that tells the customer what to fix.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// Error codes that mean "slow down" or "try again" whatever the status code.
const RETRYABLE_CODES: &[&str] = &[
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "PriorRequestNotComplete",
    "IDPCommunicationError",
    "EC2ThrottledException",
];

/// Whether trying the same request again may succeed: timeouts, connection failures,
/// truncated responses, HTTP 5xx and 429, and the throttling and transient error codes.
/// Never for 4xx errors such as AccessDenied, NoSuchBucket or InvalidRequest, nor for a
/// request that could not be built.
pub fn is_retriable<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    match error {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::DispatchFailure(failure) => failure.is_io() || failure.is_timeout() || failure.is_other(),
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            status >= 500 || status == 429 || service.err().code().is_some_and(|code| RETRYABLE_CODES.contains(&code))
        }
        _ => false,
    }
}

/// A one-line description of `error` for messages: `Code: message (HTTP status)` for an answer
/// from the service (the code and message are read from the body when the SDK could not
/// parse them), the role-chain hop that failed when credentials could not be had, or the
/// SDK's own description (timeouts, connection failures). Never contains credentials.
pub fn describe<E: ProvideErrorMetadata + std::error::Error + 'static>(error: &SdkError<E, HttpResponse>) -> String {
    if let SdkError::ServiceError(service) = error {
        let raw = service.raw();
        let body = raw.body().bytes().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
        let code = service.err().code().map(str::to_owned).or_else(|| xml_text(&body, "Code"));
        let message = service.err().message().map(str::to_owned).or_else(|| xml_text(&body, "Message"));
        return format!(
            "{}: {} (HTTP {})",
            code.as_deref().unwrap_or("error"),
            message.as_deref().unwrap_or("no message"),
            raw.status().as_u16()
        );
    }
    if let Some(hop) = hop_failure(error) {
        return format!("no credentials: {hop}");
    }
    aws_sdk_s3::error::DisplayErrorContext(error).to_string()
}

fn xml_text(xml: &str, element: &str) -> Option<String> {
    let start = xml.find(&format!("<{element}>"))? + element.len() + 2;
    let end = xml[start..].find(&format!("</{element}>"))? + start;
    Some(xml[start..end].to_owned())
}

/// The AWS error code of `error` (`AccessDenied`, `NoSuchBucket`), when the service sent one.
pub fn error_code<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> Option<String> {
    match error {
        SdkError::ServiceError(service) => service
            .err()
            .code()
            .map(str::to_owned)
            .or_else(|| service.raw().body().bytes().and_then(|b| xml_text(&String::from_utf8_lossy(b), "Code"))),
        _ => None,
    }
}

/// The HTTP status of `error`'s response, when there was one.
pub fn http_status<E>(error: &SdkError<E, HttpResponse>) -> Option<u16> {
    error.raw_response().map(|r| r.status().as_u16())
}

/// Why one hop failed: STS's answer, without credentials.
#[derive(Clone, Debug, thiserror::Error)]
#[error("assuming {role_arn} (hop {hop} of {hops}) failed: {message}")]
pub(crate) struct HopFailed {
    pub(crate) hop: usize,
    pub(crate) hops: usize,
    pub(crate) role_arn: String,
    pub(crate) message: String,
    pub(crate) retryable: bool,
}

/// The first role-chain failure among `error`'s causes, e.g. `assuming arn:... (hop 2 of 2)
/// failed: AccessDenied: ...`: why a request could not get credentials.
pub(crate) fn hop_failure(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(hop) = e.downcast_ref::<HopFailed>() {
            return Some(hop.to_string());
        }
        cause = e.source();
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use aws_sdk_s3::operation::upload_part::UploadPartError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    fn service(status: u16, code: &str) -> SdkError<UploadPartError, HttpResponse> {
        let err = UploadPartError::generic(ErrorMetadata::builder().code(code).message("m").build());
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(err, raw)
    }

    #[test]
    fn server_errors_throttling_and_network_failures_are_retriable() {
        for (status, code) in [
            (500, "InternalError"),
            (503, "SlowDown"),
            (503, "ServiceUnavailable"),
            (502, "BadGateway"),
            (429, "TooManyRequests"),
            (400, "RequestTimeout"),
            (400, "Throttling"),
        ] {
            assert!(is_retriable(&service(status, code)), "{status} {code}");
        }
        let timeout: SdkError<UploadPartError, HttpResponse> = SdkError::timeout_error("slow");
        assert!(is_retriable(&timeout));
        let io: SdkError<UploadPartError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io(Box::new(std::io::Error::other("reset"))));
        assert!(is_retriable(&io));
        let connect_timeout: SdkError<UploadPartError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::timeout("connect".into()));
        assert!(is_retriable(&connect_timeout));
    }

    #[test]
    fn permission_and_request_errors_are_not() {
        for (status, code) in [
            (403, "AccessDenied"),
            (404, "NoSuchBucket"),
            (404, "NoSuchUpload"),
            (400, "InvalidRequest"),
            (400, "EntityTooSmall"),
            (400, "BadDigest"),
            (301, "PermanentRedirect"),
        ] {
            let e = service(status, code);
            assert!(!is_retriable(&e), "{status} {code}");
            assert_eq!(error_code(&e).as_deref(), Some(code));
            assert_eq!(http_status(&e), Some(status));
        }
        let user: SdkError<UploadPartError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::user("bad request".into()));
        assert!(!is_retriable(&user));
        let build: SdkError<UploadPartError, HttpResponse> = SdkError::construction_failure("missing bucket");
        assert!(!is_retriable(&build));
    }
}
