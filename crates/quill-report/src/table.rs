//! `summary.md` and `summary.csv`: one row per run, best val loss first.

use std::fmt::Write;
use std::path::Path;

use crate::{ReportError, RunRecord};

const COLUMNS: [&str; 6] = [
    "best_val_loss",
    "final_val_loss",
    "steps",
    "wall_s",
    "tokens_per_s",
    "status",
];

fn cells(run: &RunRecord) -> Vec<String> {
    let mut cells = vec![run.name.clone()];
    cells.extend(run.values.iter().map(|(_, v)| v.clone()));
    match &run.summary {
        Some(s) => cells.extend([
            format!("{:.4}", s.best_val_loss),
            format!("{:.4}", s.final_val_loss),
            s.steps.to_string(),
            format!("{:.1}", s.wall_s),
            format!("{:.0}", s.tokens_per_s),
        ]),
        None => cells.extend(std::iter::repeat_n(String::new(), 5)),
    }
    cells.push(match &run.status {
        crate::RunStatus::Failed(error) => format!("failed: {error}"),
        other => other.label().to_owned(),
    });
    cells
}

fn header(runs: &[RunRecord]) -> Vec<String> {
    let mut header = vec!["run".to_owned()];
    if let Some(first) = runs.first() {
        header.extend(first.values.iter().map(|(k, _)| k.clone()));
    }
    header.extend(COLUMNS.iter().map(|c| c.to_string()));
    header
}

pub fn markdown(runs: &[RunRecord]) -> String {
    let header = header(runs);
    let mut out = format!("| {} |\n", header.join(" | "));
    let _ = writeln!(out, "|{}", " --- |".repeat(header.len()));
    for run in runs {
        let row: Vec<String> = cells(run).iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out
}

pub fn csv(runs: &[RunRecord]) -> String {
    let quote = |c: &str| {
        if c.contains([',', '"', '\n']) {
            format!("\"{}\"", c.replace('"', "\"\""))
        } else {
            c.to_owned()
        }
    };
    let mut out = header(runs).join(",") + "\n";
    for run in runs {
        let row: Vec<String> = cells(run).iter().map(|c| quote(c)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

pub fn write_summaries(dir: &Path, runs: &[RunRecord]) -> Result<(), ReportError> {
    for (name, text) in [("summary.md", markdown(runs)), ("summary.csv", csv(runs))] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| ReportError::File {
            path,
            message: e.to_string(),
        })?;
    }
    Ok(())
}
