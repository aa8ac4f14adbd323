//! S3 notifications -> the receipts they announce, parsed leniently: S3 delivers at least
//! once and in any order, moto (and some S3-compatible stores) leave out `userIdentity` and
//! `requestParameters`, keys arrive url-encoded (`%2F`, and `+` for a space), the first
//! message of a new notification is an `s3:TestEvent`, and a notification routed through SQS
//! arrives as an SQS event whose bodies are S3 events.
//!
//! Only `ObjectCreated` records of keys ending in `receipt.json` are receipts; anything else
//! is reported as ignored, never as an error, so a noisy bucket cannot make the loader retry.

use aws_lambda_events::event::s3::S3Event;
use serde_json::Value;

use super::{LoadError, ReceiptLocation};
use crate::layout::RECEIPT_FILE;

/// One thing a notification said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notification {
    /// A receipt was written.
    Receipt(ReceiptLocation),
    /// Not a receipt (with why).
    Ignored(String),
}

/// Every receipt (and every ignored record) of an S3 event, an `s3:TestEvent`, or an SQS
/// event carrying either, in delivery order.
pub fn receipts(event: &Value) -> Result<Vec<Notification>, LoadError> {
    if event.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(vec![Notification::Ignored("s3:TestEvent".into())]);
    }
    let Some(records) = event.get("Records").and_then(Value::as_array) else {
        return Err(LoadError::Event("neither an S3 event nor an SQS event (no Records)".into()));
    };
    let mut out = Vec::new();
    for record in records {
        if record.get("s3").is_some() {
            out.extend(s3_records(record)?);
        } else if let Some(body) = record.get("body").and_then(Value::as_str) {
            // SQS (possibly carrying an SNS envelope whose Message is the S3 event).
            let inner: Value = serde_json::from_str(body)
                .map_err(|e| LoadError::Event(format!("an SQS message body is not JSON: {e}")))?;
            let inner = match inner.get("Message").and_then(Value::as_str) {
                Some(message) if inner.get("Type").and_then(Value::as_str) == Some("Notification") => {
                    serde_json::from_str(message)
                        .map_err(|e| LoadError::Event(format!("an SNS message is not JSON: {e}")))?
                }
                _ => inner,
            };
            out.extend(receipts(&inner)?);
        } else {
            out.push(Notification::Ignored("a record that is neither S3 nor SQS".into()));
        }
    }
    Ok(out)
}

fn s3_records(record: &Value) -> Result<Vec<Notification>, LoadError> {
    let mut record = record.clone();
    if let Some(fields) = record.as_object_mut() {
        for field in ["userIdentity", "requestParameters"] {
            fields.entry(field).or_insert_with(|| Value::Object(Default::default()));
        }
        fields.entry("eventTime").or_insert_with(|| Value::String("1970-01-01T00:00:00Z".into()));
    }
    let event: S3Event = serde_json::from_value(serde_json::json!({ "Records": [record] }))
        .map_err(|e| LoadError::Event(format!("not an S3 event record: {e}")))?;
    Ok(event
        .records
        .into_iter()
        .map(|r| {
            let name = r.event_name.unwrap_or_default();
            let bucket = r.s3.bucket.name.unwrap_or_default();
            let key = url_decode(&r.s3.object.key.unwrap_or_default());
            if !name.starts_with("ObjectCreated") && !name.starts_with("s3:ObjectCreated") {
                Notification::Ignored(format!("{name} of s3://{bucket}/{key}"))
            } else if bucket.is_empty() || !(key == RECEIPT_FILE || key.ends_with(&format!("/{RECEIPT_FILE}"))) {
                Notification::Ignored(format!("s3://{bucket}/{key} is not a {RECEIPT_FILE}"))
            } else {
                Notification::Receipt(ReceiptLocation::S3 { bucket, key })
            }
        })
        .collect())
}

/// An S3 event key as stored: `+` is a space, `%XX` a byte (form encoding, as S3 sends).
pub fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn s3(bucket: &str, key: &str) -> Notification {
        Notification::Receipt(ReceiptLocation::S3 { bucket: bucket.into(), key: key.into() })
    }

    #[test]
    fn the_fixture_names_one_receipt() {
        assert_eq!(
            receipts(&fixture("s3-receipt.json")).unwrap(),
            vec![s3("acme-data", "byob/2023-03-14T04:03/receipt.json")]
        );
        assert_eq!(
            receipts(&fixture("s3-test-event.json")).unwrap(),
            vec![Notification::Ignored("s3:TestEvent".into())]
        );
    }

    #[test]
    fn moto_records_without_identity_and_encoded_keys() {
        // GIVEN what moto sends: no userIdentity/requestParameters, %2F and + in the key
        let event = serde_json::json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2023-03-14T04:03:08.000Z", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "acme"}, "object": {"key": "my+exports%2F2023-03-14T04%3A03%2Freceipt.json", "size": 10}}
        }, {
            "eventTime": "2023-03-14T04:03:08.000Z", "eventName": "ObjectCreated:CompleteMultipartUpload",
            "s3": {"bucket": {"name": "acme"}, "object": {"key": "p/2023-03-14T04%3A03/t/t_000000000000.parquet.gz"}}
        }, {
            "eventTime": "2023-03-14T04:03:08.000Z", "eventName": "ObjectRemoved:Delete",
            "s3": {"bucket": {"name": "acme"}, "object": {"key": "p/receipt.json"}}
        }]});
        let got = receipts(&event).unwrap();
        assert_eq!(got[0], s3("acme", "my exports/2023-03-14T04:03/receipt.json"));
        assert!(matches!(&got[1], Notification::Ignored(r) if r.contains("not a receipt.json")));
        assert!(matches!(&got[2], Notification::Ignored(r) if r.contains("ObjectRemoved")));
        // an SQS event carrying it
        let sqs = serde_json::json!({"Records": [
            {"messageId": "1", "body": serde_json::json!({"Event": "s3:TestEvent", "Service": "Amazon S3"}).to_string()},
            {"messageId": "2", "body": event.to_string()}
        ]});
        let got = receipts(&sqs).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[1], s3("acme", "my exports/2023-03-14T04:03/receipt.json"));
        assert!(receipts(&serde_json::json!({"hello": 1})).is_err());
        assert_eq!(url_decode("a%2Fb+c%3A%zz"), "a/b c:%zz");
    }
}
