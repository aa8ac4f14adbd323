//! Progress on stderr while a dump runs, and the summary table at the end.
//!
//! With a terminal attached, one bar per (destination, table) shows rows and throughput;
//! without one (CI, logs), one line per finished task.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use byob::plan::{ExportTask, Plan, TaskResult};
use byob::run::{DestinationReport, Observer, RunReport};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub(crate) struct Progress {
    multi: MultiProgress,
    bars: Mutex<HashMap<(String, String), ProgressBar>>,
    terminal: bool,
}

impl Progress {
    pub(crate) fn new() -> Self {
        let terminal = std::io::stderr().is_terminal();
        let target = if terminal { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        Progress { multi: MultiProgress::with_draw_target(target), bars: Mutex::new(HashMap::new()), terminal }
    }

    pub(crate) fn clear(&self) {
        let _ = self.multi.clear();
    }

    fn bar(&self, task: &ExportTask) -> Option<ProgressBar> {
        let bars = self.bars.lock().ok()?;
        bars.get(&(task.destination.clone(), task.table.clone())).cloned()
    }
}

impl Observer for Progress {
    fn planned(&self, plan: &Plan) {
        let tasks: usize = plan.destinations.iter().map(|d| d.tasks.len()).sum();
        eprintln!("run {}: {} destination(s), {tasks} export task(s)", plan.run, plan.destinations.len());
        if !self.terminal {
            return;
        }
        let style = ProgressStyle::with_template(
            "{prefix:<32} {spinner} {human_pos:>12} rows  {per_sec:>14}  {elapsed:>4} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let Ok(mut bars) = self.bars.lock() else { return };
        for d in &plan.destinations {
            for t in &d.tasks {
                bars.entry((d.destination.clone(), t.table.clone())).or_insert_with(|| {
                    let bar = self.multi.add(ProgressBar::no_length());
                    bar.set_style(style.clone());
                    bar.set_prefix(format!("{}/{}", d.destination, t.table));
                    bar
                });
            }
        }
    }

    fn task_started(&self, task: &ExportTask) {
        if let Some(bar) = self.bar(task) {
            bar.enable_steady_tick(Duration::from_millis(200));
        }
    }

    fn rows(&self, task: &ExportTask, rows: u64) {
        if let Some(bar) = self.bar(task) {
            bar.inc(rows);
        }
    }

    fn task_finished(&self, task: &ExportTask, result: &byob::Result<TaskResult>) {
        if let Some(bar) = self.bar(task) {
            match result {
                Ok(_) => bar.finish_with_message("done"),
                Err(_) => bar.abandon_with_message("FAILED"),
            }
        } else if let Ok(r) = result {
            eprintln!(
                "  {}/{} slice {}/{}: {} rows, {} files, {} in {:.1}s",
                task.destination,
                task.table,
                task.slice.index + 1,
                task.slice.count,
                r.rows,
                r.files.len(),
                human_bytes(r.bytes),
                r.seconds
            );
        }
    }

    fn destination_finished(&self, report: &DestinationReport) {
        let line = match &report.outcome {
            Ok(receipt) => {
                format!("destination {}: receipt.json written ({} rows)", report.destination, receipt.row_count())
            }
            Err(e) => format!("destination {}: FAILED, no receipt written: {e}", report.destination),
        };
        let _ = self.multi.println(&line);
        if !self.terminal {
            eprintln!("{line}");
        }
    }
}

pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

/// The table printed at the end of a run: one line per (destination, table).
pub(crate) fn print_summary(report: &RunReport) {
    #[derive(Default)]
    struct Row {
        mode: &'static str,
        rows: u64,
        files: usize,
        bytes: u64,
        seconds: f64,
    }
    println!();
    println!(
        "{:<20} {:<22} {:<11} {:>12} {:>6} {:>11} {:>8}",
        "destination", "table", "mode", "rows", "files", "bytes", "seconds"
    );
    let mut total = Row::default();
    for d in &report.destinations {
        let mut tables: BTreeMap<&str, Row> = BTreeMap::new();
        for t in &d.tasks {
            let row = tables.entry(&t.task.table).or_default();
            row.mode = t.task.increment.as_ref().map_or("full", |i| i.mode.as_str());
            row.rows += t.rows;
            row.files += t.files.len();
            row.bytes += t.bytes;
            row.seconds = row.seconds.max(t.seconds);
        }
        for (table, r) in &tables {
            println!(
                "{:<20} {:<22} {:<11} {:>12} {:>6} {:>11} {:>8.1}",
                d.destination,
                table,
                r.mode,
                r.rows,
                r.files,
                human_bytes(r.bytes),
                r.seconds
            );
            total.rows += r.rows;
            total.files += r.files;
            total.bytes += r.bytes;
        }
        if let Err(e) = &d.outcome {
            println!("{:<20} FAILED: {e}", d.destination);
        }
    }
    let secs = report.seconds.max(1e-9);
    println!(
        "{:<20} {:<22} {:<11} {:>12} {:>6} {:>11} {:>8.1}   ({:.0} rows/s)",
        "total",
        "",
        "",
        total.rows,
        total.files,
        human_bytes(total.bytes),
        report.seconds,
        total.rows as f64 / secs
    );
    if let Some(bytes) = report.source_bytes_read {
        println!("read {} from the source", human_bytes(bytes));
    }
}
