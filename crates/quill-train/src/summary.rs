use serde::{Deserialize, Serialize};

use crate::metrics_csv::MetricsRow;

/// `summary.json`: the outcome of a finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub best_val_loss: f64,
    pub best_epoch: usize,
    pub final_val_loss: f64,
    /// Optimizer steps taken.
    pub steps: usize,
    /// Wall time of the whole run, over all resumed sessions.
    pub wall_s: f64,
    /// Mean training throughput over the run's epochs.
    pub tokens_per_s: f64,
    /// Trainable parameters.
    pub params: usize,
}

impl RunSummary {
    /// Summarizes the rows of `metrics.csv`; `None` before the first evaluation.
    pub fn from_rows(rows: &[MetricsRow], params: usize) -> Option<Self> {
        let last = rows.last()?;
        let best = rows
            .iter()
            .min_by(|a, b| a.val_loss.total_cmp(&b.val_loss))?;
        Some(Self {
            best_val_loss: best.val_loss,
            best_epoch: best.epoch,
            final_val_loss: last.val_loss,
            steps: last.step,
            wall_s: last.elapsed_s,
            tokens_per_s: rows.iter().map(|r| r.tokens_per_s).sum::<f64>() / rows.len() as f64,
            params,
        })
    }
}
