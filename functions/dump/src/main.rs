//! The dump function: EventBridge Scheduler's event (or a manual run) in, the run's plan out.

use byob::lambda::{HandlerError, Workflows};
use byob::plan::Plan;
use byob::workflow::{DumpInput, Workflow};
use lambda_runtime::{LambdaEvent, service_fn};

fn main() -> Result<(), lambda_runtime::Error> {
    byob::lambda::start(async {
        let workflows = Workflows::from_env()?;
        lambda_runtime::run(service_fn(|event: LambdaEvent<DumpInput>| {
            let workflows = &workflows;
            async move {
                let workflow = workflows.latest().await?;
                handler(&workflow, event).await
            }
        }))
        .await
    })
}

/// Plans the run the event names.
async fn handler(workflow: &Workflow, event: LambdaEvent<DumpInput>) -> Result<Plan, HandlerError> {
    Ok(workflow.dump(&event.payload).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> LambdaEvent<DumpInput> {
        let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
        let payload = serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("parses as DumpInput");
        LambdaEvent::new(payload, lambda_runtime::Context::default())
    }

    #[tokio::test]
    async fn scheduled_event_plans_the_scheduled_minute() {
        let (_dir, workflow) = byob::workflow::testing::workflow();
        let plan = handler(&workflow, fixture("dump-scheduled.json")).await.expect("plan");
        assert_eq!(plan.run.to_string(), "2023-03-14T04:00");
        assert_eq!(plan.destinations.len(), 2);
        assert!(plan.destinations.iter().all(|d| d.tasks.len() >= 6));
    }

    #[tokio::test]
    async fn manual_event_plans_only_what_it_names() {
        let (_dir, workflow) = byob::workflow::testing::workflow();
        let plan = handler(&workflow, fixture("dump-manual.json")).await.expect("plan");
        assert_eq!(plan.destinations.len(), 1);
        let tables: std::collections::BTreeSet<&str> =
            plan.destinations[0].tasks.iter().map(|t| t.table.as_str()).collect();
        assert_eq!(tables.into_iter().collect::<Vec<_>>(), ["companies", "events"]);
    }

    #[tokio::test]
    async fn an_event_without_a_run_is_not_retryable() {
        let (_dir, workflow) = byob::workflow::testing::workflow();
        let err = handler(&workflow, LambdaEvent::new(DumpInput::default(), lambda_runtime::Context::default()))
            .await
            .expect_err("no run id");
        let diagnostic = lambda_runtime::Diagnostic::from(err);
        assert_eq!(diagnostic.error_type, byob::lambda::NON_RETRYABLE);
        assert!(diagnostic.error_message.contains("scheduled_time"), "{}", diagnostic.error_message);
    }
}
