//! The finalize function: one destination's tasks in, its receipts written; and, once every
//! destination ended, the run's summary.

use byob::lambda::{HandlerError, Workflows};
use byob::workflow::{FailureInput, FinalizeInput, FinalizeOutput, Outcome, RunSummary, SummarizeInput, Workflow};
use lambda_runtime::{LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};

/// The three steps this function serves.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Step {
    /// The state machine's `Summarize` state.
    Summarize(SummarizeInput),
    /// A destination's `RecordFailure` state.
    Failure(FailureInput),
    /// A destination's `Finalize` state.
    Finalize(FinalizeInput),
}

/// What each step returns.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Done {
    Summarize(RunSummary),
    Failure(Outcome),
    Finalize(FinalizeOutput),
}

fn main() -> Result<(), lambda_runtime::Error> {
    byob::lambda::start(async {
        let workflows = Workflows::from_env()?;
        lambda_runtime::run(service_fn(|event: LambdaEvent<Step>| {
            let workflows = &workflows;
            async move {
                let (run, config) = match &event.payload {
                    Step::Finalize(input) => (input.run, input.config.as_deref()),
                    Step::Summarize(input) => (input.run, None),
                    Step::Failure(input) => (input.run, None),
                };
                let workflow = workflows.pinned(run, config).await?;
                match event.payload {
                    Step::Finalize(input) => {
                        Ok(Done::Finalize(handler(&workflow, LambdaEvent::new(input, event.context)).await?))
                    }
                    Step::Summarize(input) => Ok::<_, HandlerError>(Done::Summarize(workflow.summarize(&input).await?)),
                    Step::Failure(input) => Ok(Done::Failure(workflow.record_failure(&input).await?)),
                }
            }
        }))
        .await
    })
}

/// Verifies every task of the destination, then writes receipt.json (run copy, then root).
async fn handler(workflow: &Workflow, event: LambdaEvent<FinalizeInput>) -> Result<FinalizeOutput, HandlerError> {
    Ok(workflow.finalize(&event.payload).await?)
}

#[cfg(test)]
mod tests {
    use byob::plan::ExportTask;
    use byob::workflow::{ExportInput, Tasks};

    use super::*;

    fn listed(input: &FinalizeInput) -> Vec<ExportTask> {
        match &input.tasks {
            Tasks::Listed(tasks) => tasks.clone(),
            Tasks::Stored(key) => panic!("the fixture lists its tasks, not {key}"),
        }
    }

    fn fixture() -> FinalizeInput {
        let path = format!("{}/../../events/finalize.json", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("parses")
    }

    #[tokio::test]
    async fn writes_the_receipts_once_the_task_result_is_stored() {
        let (dir, workflow) = byob_testkit::workflow::workflow();
        let mut input = fixture();
        // GIVEN the export the fixture points at has run
        let task = listed(&input)[0].clone();
        let out = workflow.export(&ExportInput { run: input.run, config: None, task }).await.expect("export");
        let results = input.results.as_mut().expect("the fixture has results");
        assert_eq!(out.result, results[0].result, "the fixture's pointer is where export stores results");
        results[0] = out;
        // WHEN finalize runs
        let done =
            handler(&workflow, LambdaEvent::new(input, lambda_runtime::Context::default())).await.expect("finalize");
        // THEN both receipts exist
        assert_eq!(done.root_receipt.as_deref(), Some("dump/receipt.json"));
        assert!(dir.path().join("buckets/acme/dump/receipt.json").exists());
        assert!(dir.path().join("buckets/acme/dump/2023-03-14T04:00/receipt.run.json").exists());
    }

    #[tokio::test]
    async fn a_missing_result_writes_nothing_and_is_not_retryable() {
        let (dir, workflow) = byob_testkit::workflow::workflow();
        let mut input = fixture();
        // The plan has a task whose result never came back.
        let mut tasks = listed(&input);
        tasks.push(ExportTask { table: "events".into(), ..tasks[0].clone() });
        input.tasks = Tasks::Listed(tasks.clone());
        let task = tasks[0].clone();
        input.results.as_mut().expect("results")[0] =
            workflow.export(&ExportInput { run: input.run, config: None, task }).await.expect("export");
        let err = handler(&workflow, LambdaEvent::new(input, lambda_runtime::Context::default()))
            .await
            .expect_err("incomplete");
        let d = lambda_runtime::Diagnostic::from(err);
        assert_eq!(d.error_type, byob::lambda::NON_RETRYABLE);
        assert!(d.error_message.contains("\"events\""), "{}", d.error_message);
        assert!(!dir.path().join("buckets/acme/dump/receipt.json").exists());
    }

    #[tokio::test]
    async fn a_result_that_does_not_match_its_output_is_refused() {
        let (_dir, workflow) = byob_testkit::workflow::workflow();
        let mut input = fixture();
        let task = listed(&input)[0].clone();
        let mut out = workflow.export(&ExportInput { run: input.run, config: None, task }).await.expect("export");
        out.rows += 1;
        input.results.as_mut().expect("results")[0] = out;
        let err = handler(&workflow, LambdaEvent::new(input, lambda_runtime::Context::default()))
            .await
            .expect_err("mismatch");
        assert!(err.0.to_string().contains("does not match"), "{}", err.0);
    }
}
