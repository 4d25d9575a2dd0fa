//! After the learner returns: why it stopped early, or the final and best weights and the
//! run's summary written.

use burn::prelude::*;
use burn::record::DefaultRecorder;
use quill_model::Gpt;

use super::{TrainError, file_error};
use crate::checkpoint::{MidEpoch, newest_step, write_atomic};
use crate::metrics_csv;
use crate::run_dir::{RunDir, Weights};
use crate::step::{Stop, Trainee};
use crate::summary::RunSummary;

/// Writes the final weights, the best ones and `summary.json` of a run that did all its steps.
pub(super) fn finish<B: Backend>(
    trained: Gpt<B>,
    run: &RunDir,
    params: usize,
    device: &B::Device,
) -> Result<RunSummary, TrainError> {
    save_weights(&trained, run, Weights::Final)?;
    MidEpoch::remove_older_than(run, usize::MAX);
    let rows = metrics_csv::read_rows(&run.metrics()).map_err(|e| file_error(run.metrics(), e))?;
    let summary = RunSummary::from_rows(&rows, params)
        .ok_or_else(|| file_error(run.metrics(), "no evaluation was recorded"))?;
    save_best_weights(trained, run, &summary, &rows, device)?;
    let json = serde_json::to_string_pretty(&summary).expect("a summary serializes");
    write_atomic(&run.summary(), json.as_bytes()).map_err(|e| file_error(run.summary(), e))?;
    Ok(summary)
}

/// The error of a run that stopped before its last step.
pub(super) fn stopped_early(stop: Stop, run: &RunDir, per_epoch: usize) -> TrainError {
    match stop {
        Stop::Interrupted { step, saved } => TrainError::Interrupted {
            dir: run.path.clone(),
            step,
            saved,
            resume_step: newest_step(run, per_epoch),
        },
        Stop::Diverged { step, lr, loss } => TrainError::Diverged {
            dir: run.path.clone(),
            step,
            lr,
            loss,
            checkpoint_step: newest_step(run, per_epoch),
        },
    }
}

fn save_weights<B: Backend>(
    gpt: &Gpt<B>,
    run: &RunDir,
    weights: Weights,
) -> Result<(), TrainError> {
    run.save_weights(gpt, weights)
        .map_err(|message| file_error(run.weights_file(weights), message))
}

/// `best.mpk` holds the weights of the epoch with the lowest val loss: the final weights when
/// that is the last epoch, else that epoch's checkpoint (burn-train keeps it).
fn save_best_weights<B: Backend>(
    final_gpt: Gpt<B>,
    run: &RunDir,
    summary: &RunSummary,
    rows: &[metrics_csv::MetricsRow],
    device: &B::Device,
) -> Result<(), TrainError> {
    let last_epoch = rows.last().map_or(0, |r| r.epoch);
    if summary.best_epoch == last_epoch {
        return save_weights(&final_gpt, run, Weights::Best);
    }
    let checkpoint = run.checkpoint_file("model", summary.best_epoch);
    if !checkpoint.exists() {
        // An earlier session already wrote best.mpk for an epoch whose checkpoint is gone.
        return Ok(());
    }
    let trainee = Trainee::<B, B>::detached(final_gpt, 0.0, 1)
        .load_file(
            checkpoint.with_extension(""),
            &DefaultRecorder::new(),
            device,
        )
        .map_err(|e| file_error(&checkpoint, e))?;
    save_weights(&trainee.gpt, run, Weights::Best)
}
