//! The dump function: EventBridge Scheduler's event (or a manual run) in, the run's plan out.

use byob::lambda::{HandlerError, Workflows};
use byob::workflow::{DumpEvent, StoredPlan, Workflow};
use lambda_runtime::{LambdaEvent, service_fn};

fn main() -> Result<(), lambda_runtime::Error> {
    byob::lambda::start(async {
        let workflows = Workflows::from_env()?;
        lambda_runtime::run(service_fn(|event: LambdaEvent<DumpEvent>| {
            let workflows = &workflows;
            async move {
                let workflow = workflows.latest().await?;
                handler(&workflow, event).await
            }
        }))
        .await
    })
}

/// Plans the run the event names and stores the plan in our state; returns where it is.
async fn handler(workflow: &Workflow, event: LambdaEvent<DumpEvent>) -> Result<StoredPlan, HandlerError> {
    Ok(workflow.dump_stored(&event.payload.into_step()).await?)
}

#[cfg(test)]
mod tests {
    use byob::plan::ExportTask;
    use byob::workflow::{DestinationItem, DumpInput};

    use super::*;

    fn fixture(name: &str) -> LambdaEvent<DumpEvent> {
        let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
        let payload = serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("parses as DumpEvent");
        LambdaEvent::new(payload, lambda_runtime::Context::default())
    }

    /// The stored destinations and each one's tasks, read back from the state folder.
    fn stored(dir: &std::path::Path, plan: &StoredPlan) -> Vec<(DestinationItem, Vec<ExportTask>)> {
        let read = |key: &str| std::fs::read(dir.join("state").join(key)).expect("stored document");
        let items: Vec<DestinationItem> = serde_json::from_slice(&read(&plan.destinations)).expect("destinations");
        items
            .into_iter()
            .map(|item| {
                let tasks: Vec<ExportTask> = serde_json::from_slice(&read(&item.tasks)).expect("tasks");
                (item, tasks)
            })
            .collect()
    }

    #[tokio::test]
    async fn the_state_machines_event_plans_the_scheduled_minute_into_our_state() {
        let (dir, workflow) = byob_testkit::workflow::workflow();
        let plan = handler(&workflow, fixture("dump-step.json")).await.expect("plan");
        assert_eq!(plan.run.to_string(), "2023-03-14T04:00");
        assert_eq!(plan.destinations, "plans/2023-03-14T04_00/exec-2023-03-14-0400/destinations.json");
        let stored = stored(dir.path(), &plan);
        assert_eq!(stored.len(), 2);
        assert_eq!(plan.destination_count, 2);
        assert_eq!(plan.task_count, stored.iter().map(|(_, t)| t.len()).sum::<usize>());
        assert!(stored.iter().all(|(item, tasks)| tasks.len() >= 6 && item.task_count == tasks.len()));
        assert!(stored.iter().all(|(item, tasks)| tasks.iter().all(|t| t.destination == item.destination)));
        assert!(serde_json::to_vec(&plan).expect("JSON").len() < 1024, "the step's output does not grow with the plan");
    }

    #[tokio::test]
    async fn the_schedulers_event_invoked_directly_plans_the_scheduled_minute() {
        let (dir, workflow) = byob_testkit::workflow::workflow();
        let event = fixture("dump-scheduled.json");
        assert!(matches!(event.payload, DumpEvent::Direct(_)));
        let plan = handler(&workflow, event).await.expect("plan");
        assert_eq!(plan.run.to_string(), "2023-03-14T04:00");
        assert_eq!(stored(dir.path(), &plan).len(), 2);
    }

    #[tokio::test]
    async fn a_manual_event_plans_only_what_it_names() {
        let (dir, workflow) = byob_testkit::workflow::workflow();
        let plan = handler(&workflow, fixture("dump-manual.json")).await.expect("plan");
        let stored = stored(dir.path(), &plan);
        assert_eq!(stored.len(), 1);
        let tables: std::collections::BTreeSet<&str> = stored[0].1.iter().map(|t| t.table.as_str()).collect();
        assert_eq!(tables.into_iter().collect::<Vec<_>>(), ["companies", "events"]);
        assert!(plan.destinations.starts_with("plans/2023-03-14T04_00/direct/"), "{}", plan.destinations);
    }

    #[tokio::test]
    async fn an_event_without_a_run_is_not_retryable() {
        let (_dir, workflow) = byob_testkit::workflow::workflow();
        let event = DumpEvent::Direct(DumpInput::default());
        let err = handler(&workflow, LambdaEvent::new(event, lambda_runtime::Context::default()))
            .await
            .expect_err("no run id");
        let diagnostic = lambda_runtime::Diagnostic::from(err);
        assert_eq!(diagnostic.error_type, byob::lambda::NON_RETRYABLE);
        assert!(diagnostic.error_message.contains("scheduled_time"), "{}", diagnostic.error_message);
    }
}
