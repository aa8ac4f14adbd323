//! The load function: an S3 notification of a `receipt.json` (directly, or through SQS) in,
//! what was loaded, skipped or ignored out. Runs in the customer's account, with their role.

use byob::lambda::HandlerError;
use byob::load::{self, LoadOutcome, Loader, PostgresTarget};
use lambda_runtime::{LambdaEvent, service_fn};

fn main() -> Result<(), lambda_runtime::Error> {
    byob::lambda::start(async {
        let loader = tokio::sync::OnceCell::new();
        // The target (and its secret) and the loader's OpenPGP key are read by the first
        // invocation, so a transient failure there is that invocation's Retryable error, not
        // a failed start-up.
        let target = tokio::sync::OnceCell::new();
        lambda_runtime::run(service_fn(|event| {
            let (loader, target) = (&loader, &target);
            async move {
                let loader = loader
                    .get_or_try_init(|| async { Loader::from_env().await.with_pgp_from_env().await })
                    .await
                    .map_err(byob::Error::from)?;
                let target = target.get_or_try_init(load::target_from_env).await.map_err(byob::Error::from)?;
                handler(loader, target, event).await
            }
        }))
        .await
    })
}

/// Loads every receipt the notification names, exactly once.
async fn handler(
    loader: &Loader,
    target: &PostgresTarget,
    event: LambdaEvent<serde_json::Value>,
) -> Result<Vec<LoadOutcome>, HandlerError> {
    Ok(load::handle_event(loader, target, &event.payload).await.map_err(byob::Error::from)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> LambdaEvent<serde_json::Value> {
        let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
        let payload = serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("JSON");
        LambdaEvent::new(payload, lambda_runtime::Context::default())
    }

    fn target() -> PostgresTarget {
        // Never reached by these tests: nothing is loaded without a receipt to read.
        PostgresTarget::from_url("postgresql://byob@127.0.0.1:1/none?sslmode=disable&connect_timeout=1").expect("URL")
    }

    #[tokio::test]
    async fn the_test_event_is_ignored() {
        let out = handler(&Loader::local(), &target(), fixture("s3-test-event.json")).await.expect("ignored");
        assert!(matches!(out.as_slice(), [LoadOutcome::Ignored { .. }]), "{out:?}");
    }

    #[tokio::test]
    async fn a_receipt_that_cannot_be_read_is_not_retryable_without_s3() {
        // The fixture names s3://acme-data/byob/2023-03-14T04:03/receipt.json; this loader has
        // no S3 client, which no retry fixes.
        let err = handler(&Loader::local(), &target(), fixture("s3-receipt.json")).await.expect_err("no S3");
        let diagnostic = lambda_runtime::Diagnostic::from(err);
        assert_eq!(diagnostic.error_type, byob::lambda::NON_RETRYABLE);
        assert!(diagnostic.error_message.contains("s3://acme-data/byob/2023-03-14T04:03/receipt.json"));
    }
}
