//! CloudWatch metrics of the deployed steps, as Embedded Metric Format lines: one JSON object per
//! line on stdout, which Lambda sends to CloudWatch Logs and CloudWatch turns into metrics
//! without an API call (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>).
//!
//! Namespace `byob`. Dimensions are kept few so 10,000 destinations cost a handful of metrics:
//! `Table` for exports, `Error` for failures, none for a run; the destination id and run are
//! properties of each line (searchable in Logs Insights), never dimensions.
//!
//! Lines are written only inside Lambda (`AWS_LAMBDA_FUNCTION_NAME` set): the CLI's output stays
//! what it prints.

use serde_json::{Map, Value, json};

/// The namespace of every metric.
pub const NAMESPACE: &str = "byob";

/// One export task's figures: Rows, Bytes, Files, Seconds, dimension `Table`.
pub fn export(result: &crate::plan::TaskResult) {
    let line = line(
        &[("Table", result.task.table.as_str())],
        &[
            ("Rows", "Count", json!(result.rows)),
            ("Bytes", "Bytes", json!(result.bytes)),
            ("Files", "Count", json!(result.files.len())),
            ("Seconds", "Seconds", json!(result.seconds)),
        ],
        &[("destination", json!(result.task.destination)), ("slice", json!(result.task.slice.index))],
    );
    emit(&line);
}

/// A destination that got no receipt: `DestinationFailures` = 1, dimension `Error` (and the
/// total without it), so an alarm can watch each kind.
pub fn destination_failed(destination: &str, error: &str) {
    let line = line(
        &[("Error", error)],
        &[("DestinationFailures", "Count", json!(1))],
        &[("destination", json!(destination))],
    );
    emit(&line);
}

/// A run's summary: destinations ok and failed, rows delivered.
pub fn run(run: &crate::layout::RunId, ok: usize, failed: usize, rows: u64) {
    let line = line(
        &[],
        &[
            ("DestinationsOk", "Count", json!(ok)),
            ("DestinationsFailed", "Count", json!(failed)),
            ("RowsDelivered", "Count", json!(rows)),
        ],
        &[("run", json!(run.to_string()))],
    );
    emit(&line);
}

/// A step that returned an error to Step Functions: `StepErrors` = 1, dimensions `Step` and
/// `Verdict` (`Retryable` or `NonRetryable`).
pub fn step_error(step: &str, verdict: &str) {
    emit(&line(&[("Step", step), ("Verdict", verdict)], &[("StepErrors", "Count", json!(1))], &[]));
}

/// An EMF object: `dimensions` (name, value) as one dimension set (plus the set without any,
/// for totals), `metrics` (name, unit, value), and plain `properties`.
fn line(dimensions: &[(&str, &str)], metrics: &[(&str, &str, Value)], properties: &[(&str, Value)]) -> Value {
    let timestamp = chrono::Utc::now().timestamp_millis();
    let names: Vec<&str> = dimensions.iter().map(|(name, _)| *name).collect();
    let sets: Vec<Vec<&str>> = if names.is_empty() { vec![vec![]] } else { vec![names, vec![]] };
    let mut object = Map::new();
    object.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": sets,
                "Metrics": metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }],
        }),
    );
    for (name, value) in dimensions {
        object.insert((*name).into(), json!(value));
    }
    for (name, _, value) in metrics {
        object.insert((*name).into(), value.clone());
    }
    for (name, value) in properties {
        object.insert((*name).into(), value.clone());
    }
    Value::Object(object)
}

fn emit(line: &Value) {
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        println!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_embedded_metric_format() {
        let line = line(
            &[("Table", "events")],
            &[("Rows", "Count", json!(12)), ("Seconds", "Seconds", json!(1.5))],
            &[("destination", json!("acme"))],
        );
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "byob");
        assert_eq!(directive["Dimensions"], json!([["Table"], []]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "Rows", "Unit": "Count"}, {"Name": "Seconds", "Unit": "Seconds"}])
        );
        assert!(line["_aws"]["Timestamp"].as_i64().is_some_and(|t| t > 1_600_000_000_000));
        // Every dimension and metric named in the directive is a top-level member.
        assert_eq!(
            (line["Table"].as_str(), line["Rows"].as_i64(), line["destination"].as_str()),
            (Some("events"), Some(12), Some("acme"))
        );
        // A run's line has one empty dimension set (no dimension at all).
        let run = super::line(&[], &[("DestinationsOk", "Count", json!(3))], &[]);
        assert_eq!(run["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
    }
}
