//! Progress lines for pipes and CI, where burn-train's terminal dashboard cannot draw and its
//! plain renderer prints no metric values.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use burn::train::LearnerSummary;
use burn::train::metric::{MetricDefinition, MetricId};
use burn::train::renderer::{
    EvaluationName, EvaluationProgress, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining, ProgressType, TrainingProgress,
};

/// How often a training line is printed at most (validation lines are always printed).
pub const LINE_INTERVAL: Duration = Duration::from_secs(5);

/// Prints `step 250/2000 | loss 2.0512 | val 2.0833 | lr 9.98e-4 | 21.3k tok/s | ETA 1m30s`.
pub struct ProgressLines {
    names: HashMap<MetricId, String>,
    steps_per_epoch: usize,
    total_steps: usize,
    first_step: usize,
    started: Instant,
    last_line: Option<Instant>,
    train_loss: f64,
    val_loss: Mean,
    lr: f64,
    tokens_per_s: f64,
    stderr: bool,
}

#[derive(Default)]
struct Mean {
    sum: f64,
    count: usize,
}

impl Mean {
    fn add(&mut self, value: f64) {
        self.sum += value;
        self.count += 1;
    }

    fn get(&self) -> f64 {
        self.sum / self.count.max(1) as f64
    }
}

impl ProgressLines {
    /// `first_step` is where this session starts (non-zero on resume), for the ETA.
    pub fn new(steps_per_epoch: usize, total_steps: usize, first_step: usize) -> Self {
        Self {
            names: HashMap::new(),
            steps_per_epoch,
            total_steps,
            first_step,
            started: Instant::now(),
            last_line: None,
            train_loss: f64::NAN,
            val_loss: Mean::default(),
            lr: f64::NAN,
            tokens_per_s: 0.0,
            stderr: false,
        }
    }

    /// Prints on stderr instead of stdout when `stderr` is set.
    pub fn on_stderr(self, stderr: bool) -> Self {
        Self { stderr, ..self }
    }

    fn value(&self, state: &MetricState) -> Option<(&str, f64)> {
        match state {
            MetricState::Numeric(entry, value) => self
                .names
                .get(&entry.metric_id)
                .map(|name| (name.as_str(), value.current())),
            MetricState::Generic(_) => None,
        }
    }

    fn step(&self, progress: &TrainingProgress) -> usize {
        let epoch = progress.global_progress.items_processed;
        // From the windows drawn this epoch, which count those a mid-epoch resume skipped.
        let in_epoch = progress.progress.as_ref().map_or(0, |p| {
            p.items_processed * self.steps_per_epoch / p.items_total.max(1)
        });
        epoch.saturating_sub(1) * self.steps_per_epoch + in_epoch
    }

    fn eta(&self, step: usize) -> String {
        let done = step.saturating_sub(self.first_step);
        if done == 0 {
            return "?".into();
        }
        let per_step = self.started.elapsed().as_secs_f64() / done as f64;
        duration(per_step * self.total_steps.saturating_sub(step) as f64)
    }

    fn print(&mut self, line: String) {
        match self.stderr {
            true => eprintln!("{line}"),
            false => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        }
        self.last_line = Some(Instant::now());
    }
}

/// `95s` as `1m35s`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

fn rate(tokens_per_s: f64) -> String {
    if tokens_per_s >= 1000.0 {
        format!("{:.1}k tok/s", tokens_per_s / 1000.0)
    } else {
        format!("{tokens_per_s:.0} tok/s")
    }
}

impl MetricsRendererTraining for ProgressLines {
    fn update_train(&mut self, state: MetricState) {
        match self.value(&state) {
            // The epoch's mean so far (see `TrainLoss`), not one batch's loss.
            Some(("Loss", v)) => self.train_loss = v,
            Some(("Learning Rate", v)) => self.lr = v,
            Some(("Tokens per second", v)) => self.tokens_per_s = v,
            _ => {}
        }
    }

    fn update_valid(&mut self, state: MetricState) {
        if let Some(("Loss", v)) = self.value(&state) {
            self.val_loss.add(v);
        }
    }

    fn render_train(&mut self, progress: TrainingProgress, _: Vec<ProgressType>) {
        let due = self.last_line.is_none_or(|t| t.elapsed() >= LINE_INTERVAL);
        if !due {
            return;
        }
        let step = self.step(&progress);
        let line = format!(
            "step {step}/{} | loss {:.4} | lr {:.2e} | {} | ETA {}",
            self.total_steps,
            self.train_loss,
            self.lr,
            rate(self.tokens_per_s),
            self.eta(step)
        );
        self.print(line);
    }

    fn render_valid(&mut self, progress: TrainingProgress, _: Vec<ProgressType>) {
        let Some(items) = progress.progress else {
            return;
        };
        if items.items_processed < items.items_total {
            return;
        }
        let epoch = progress.global_progress.items_processed;
        let step = epoch * self.steps_per_epoch;
        let line = format!(
            "epoch {epoch}/{} step {step}/{} | loss {:.4} | val {:.4} | lr {:.2e} | {} | elapsed {} | ETA {}",
            progress.global_progress.items_total,
            self.total_steps,
            self.train_loss,
            self.val_loss.get(),
            self.lr,
            rate(self.tokens_per_s),
            duration(self.started.elapsed().as_secs_f64()),
            self.eta(step)
        );
        self.print(line);
        self.val_loss = Mean::default();
        self.train_loss = f64::NAN;
    }

    fn on_train_end(
        &mut self,
        _: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn core::error::Error>> {
        Ok(())
    }
}

impl MetricsRendererEvaluation for ProgressLines {
    fn update_test(&mut self, _: EvaluationName, _: MetricState) {}

    fn render_test(&mut self, _: EvaluationProgress, _: Vec<ProgressType>) {}
}

impl MetricsRenderer for ProgressLines {
    fn manual_close(&mut self) {}

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.names.insert(definition.metric_id, definition.name);
    }
}

#[cfg(test)]
mod tests {
    use super::duration;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(42.4), "42s");
        assert_eq!(duration(95.0), "1m35s");
        assert_eq!(duration(7260.0), "2h01m");
    }
}
