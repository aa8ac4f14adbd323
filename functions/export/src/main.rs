//! The export function: one task of the plan in, a pointer to its stored result out.

use byob::lambda::{HandlerError, Workflows};
use byob::workflow::{ExportInput, ExportOutput, Workflow};
use lambda_runtime::{LambdaEvent, service_fn};

fn main() -> Result<(), lambda_runtime::Error> {
    byob::lambda::start(async {
        let workflows = Workflows::from_env()?;
        lambda_runtime::run(service_fn(|event: LambdaEvent<ExportInput>| {
            let workflows = &workflows;
            async move {
                let workflow = workflows.pinned(event.payload.run, event.payload.config.as_deref()).await?;
                handler(&workflow, event).await
            }
        }))
        .await
    })
}

/// Exports one slice of one table to one destination.
async fn handler(workflow: &Workflow, event: LambdaEvent<ExportInput>) -> Result<ExportOutput, HandlerError> {
    Ok(workflow.export(&event.payload).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exports_the_fixture_task_into_the_local_bucket() {
        let path = format!("{}/../../events/export.json", env!("CARGO_MANIFEST_DIR"));
        let input: ExportInput = serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("parses");
        let (dir, workflow) = byob_testkit::workflow::workflow();
        let out =
            handler(&workflow, LambdaEvent::new(input, lambda_runtime::Context::default())).await.expect("export");
        assert_eq!(out.task.table, "companies");
        assert!(out.rows > 0 && out.files == 1);
        assert_eq!(out.result, "results/2023-03-14T04_00/acme/companies/0-of-1.json");
        let file = dir.path().join("buckets/acme/dump/2023-03-14T04:00/companies/companies_000000000000.parquet.gz");
        assert_eq!(std::fs::metadata(file).expect("file written").len(), out.bytes);
    }

    #[tokio::test]
    async fn an_unknown_destination_is_not_retryable() {
        let (_dir, workflow) = byob_testkit::workflow::workflow();
        let input: ExportInput = serde_json::from_value(serde_json::json!({
            "run": "2023-03-14T04:00",
            "task": {"destination": "nobody", "table": "companies", "slice": {"index": 0, "count": 1}}
        }))
        .expect("valid shape");
        let err =
            handler(&workflow, LambdaEvent::new(input, lambda_runtime::Context::default())).await.expect_err("unknown");
        assert_eq!(lambda_runtime::Diagnostic::from(err).error_type, byob::lambda::NON_RETRYABLE);
    }
}
