//! `metrics.csv`: one row per epoch (evaluation), written as each validation pass ends.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::train::logger::MetricLogger;
use burn::train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};
use serde::{Deserialize, Serialize};

pub const HEADER: &str = "step,epoch,train_loss,val_loss,lr,tokens_per_s,elapsed_s";

/// One evaluation of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    pub step: usize,
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (in training mode, dropout on).
    pub train_loss: f64,
    /// Mean loss over the fixed validation windows.
    pub val_loss: f64,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    pub tokens_per_s: f64,
    /// Wall time since the run began, summed over resumed sessions.
    pub elapsed_s: f64,
}

/// Reads the rows of a `metrics.csv`.
pub fn read_rows(path: &Path) -> Result<Vec<MetricsRow>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| parse_row(line).ok_or_else(|| format!("{}: bad row `{line}`", path.display())))
        .collect()
}

fn parse_row(line: &str) -> Option<MetricsRow> {
    let f: Vec<&str> = line.split(',').collect();
    if f.len() != 7 {
        return None;
    }
    Some(MetricsRow {
        step: f[0].parse().ok()?,
        epoch: f[1].parse().ok()?,
        train_loss: f[2].parse().ok()?,
        val_loss: f[3].parse().ok()?,
        lr: f[4].parse().ok()?,
        tokens_per_s: f[5].parse().ok()?,
        elapsed_s: f[6].parse().ok()?,
    })
}

/// Rewrites `path` with only the rows of epochs `<= epoch` (a resumed run repeats the rest).
pub fn truncate_after(path: &Path, epoch: usize) -> Result<Vec<MetricsRow>, String> {
    let rows: Vec<MetricsRow> = if path.exists() {
        read_rows(path)?
            .into_iter()
            .filter(|r| r.epoch <= epoch)
            .collect()
    } else {
        Vec::new()
    };
    let mut text = format!("{HEADER}\n");
    for row in &rows {
        text.push_str(&format_row(row));
    }
    crate::checkpoint::write_atomic(path, text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(rows)
}

fn format_row(r: &MetricsRow) -> String {
    format!(
        "{},{},{:.6},{:.6},{:.6e},{:.1},{:.2}\n",
        r.step, r.epoch, r.train_loss, r.val_loss, r.lr, r.tokens_per_s, r.elapsed_s
    )
}

/// A burn-train metric logger that keeps each epoch's aggregates and adds a row when the
/// epoch's validation ends. The file is rewritten whole each time (a temporary file and a
/// rename), so a full disk or a kill never leaves a truncated row: it has a row per epoch or
/// the rows it had.
pub struct CsvMetricLogger {
    path: PathBuf,
    text: String,
    names: HashMap<MetricId, String>,
    steps_per_epoch: usize,
    started: Instant,
    elapsed_before: f64,
    current: HashMap<(bool, String), f64>,
}

impl CsvMetricLogger {
    /// Appends to `path` (created with its header if missing). `elapsed_before` is the wall
    /// time of earlier sessions of a resumed run.
    pub fn new(path: &Path, steps_per_epoch: usize, elapsed_before: f64) -> std::io::Result<Self> {
        let text = match path.exists() {
            true => std::fs::read_to_string(path)?,
            false => {
                let text = format!("{HEADER}\n");
                crate::checkpoint::write_atomic(path, text.as_bytes())?;
                text
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            text,
            names: HashMap::new(),
            steps_per_epoch,
            started: Instant::now(),
            elapsed_before,
            current: HashMap::new(),
        })
    }

    fn get(&self, valid: bool, name: &str) -> f64 {
        self.current
            .get(&(valid, name.to_owned()))
            .copied()
            .unwrap_or(f64::NAN)
    }
}

impl MetricLogger for CsvMetricLogger {
    fn log(&mut self, update: MetricsUpdate, _epoch: usize, split: &Split) {
        let valid = matches!(split, Split::Valid);
        for numeric in update.entries_numeric {
            if let Some(name) = self.names.get(&numeric.entry.metric_id) {
                let value = match name.as_str() {
                    // Running (epoch mean so far) for losses, latest for the rest.
                    "Loss" => numeric.running_entry.current(),
                    _ => numeric.numeric_entry.current(),
                };
                self.current.insert((valid, name.clone()), value);
            }
        }
    }

    fn read_numeric(&mut self, _: &str, _: usize, _: &Split) -> Result<Vec<NumericEntry>, String> {
        Err("metrics.csv keeps epoch aggregates only".into())
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        self.names.insert(definition.metric_id, definition.name);
    }

    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        if !matches!(summary.split, Split::Valid) {
            return;
        }
        let row = MetricsRow {
            step: summary.epoch_number * self.steps_per_epoch,
            epoch: summary.epoch_number,
            train_loss: self.get(false, "Loss"),
            val_loss: self.get(true, "Loss"),
            lr: self.get(false, "Learning Rate"),
            tokens_per_s: self.get(false, "Tokens per second"),
            elapsed_s: self.elapsed_before + self.started.elapsed().as_secs_f64(),
        };
        // A failed write must not stop training: the checkpoints still hold the run, and the
        // row is written with the next one.
        self.text.push_str(&format_row(&row));
        let _ = crate::checkpoint::write_atomic(&self.path, self.text.as_bytes());
        self.current.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        let rows: Vec<MetricsRow> = (1..=3)
            .map(|epoch| MetricsRow {
                step: epoch * 10,
                epoch,
                train_loss: 2.5 / epoch as f64,
                val_loss: 2.6 / epoch as f64,
                lr: 1e-3,
                tokens_per_s: 1234.5,
                elapsed_s: epoch as f64,
            })
            .collect();
        let mut text = format!("{HEADER}\n");
        rows.iter().for_each(|r| text.push_str(&format_row(r)));
        std::fs::write(&path, text).unwrap();
        let read = read_rows(&path).unwrap();
        assert_eq!(read.len(), 3);
        assert!((read[1].val_loss - 1.3).abs() < 1e-6);
        let kept = truncate_after(&path, 2).unwrap();
        assert_eq!(kept.len(), 2);
        assert_eq!(read_rows(&path).unwrap().len(), 2);
    }
}
