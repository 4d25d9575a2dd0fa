//! How a training run ends when it does not finish: each case a one-line message.

use std::path::PathBuf;

use quill_data::DataError;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DataError),
    /// A setting that cannot work with what the runner found (e.g. the devices).
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error(
        "--resume: {dir} has no complete checkpoint to resume from (start it again without --resume, or with --force)"
    )]
    NoCheckpoint { dir: PathBuf },
    #[error(
        "{dir} already finished its {steps} steps; to train further, raise train.max_steps (e.g. --resume --set train.max_steps={more})"
    )]
    AlreadyComplete {
        dir: PathBuf,
        steps: usize,
        more: usize,
    },
    #[error(
        "train.precision = \"{wanted}\" is not in effect on this device (its tensors are {actual:?}); the runner sets it before any tensor exists"
    )]
    Precision {
        wanted: &'static str,
        actual: burn::tensor::DType,
    },
    #[error("--init-from {dir}: {message}")]
    InitFrom { dir: PathBuf, message: String },
    #[error("--resume: cannot use checkpoint {file}: {reason}")]
    BadCheckpoint { file: PathBuf, reason: String },
    /// burn-train stopped the run (e.g. a checkpoint could not be written).
    #[error("training stopped: {reason}")]
    Failed { dir: PathBuf, reason: String },
    /// A sweep's pruner stopped the trial after an evaluation; its checkpoint is saved.
    #[error("stopped by the sweep after step {step}; its checkpoint is saved")]
    StoppedBySweep { dir: PathBuf, step: usize },
    /// Ctrl-C (or the dashboard's stop).
    #[error("interrupted {}", match (saved, resume_step) {
        (true, _) => format!("after step {step}; its checkpoint is saved"),
        (false, Some(from)) => format!("at step {step}; the run resumes from its newest checkpoint, step {from}"),
        (false, None) => format!("at step {step}, before its first checkpoint"),
    })]
    Interrupted {
        dir: PathBuf,
        step: usize,
        saved: bool,
        resume_step: Option<usize>,
    },
    #[error(
        "the loss became {loss} at step {step} (learning rate {lr:.3e}); training stopped without saving weights from that step on{}",
        match checkpoint_step {
            Some(s) => format!(" and kept the checkpoint of step {s}"),
            None => " (there is no checkpoint yet)".into(),
        }
    )]
    Diverged {
        dir: PathBuf,
        step: usize,
        lr: f64,
        loss: f64,
        /// The step of the newest checkpoint, which a resumed run starts from.
        checkpoint_step: Option<usize>,
    },
}

pub(super) fn file_error(path: impl Into<PathBuf>, message: impl ToString) -> TrainError {
    TrainError::File {
        path: path.into(),
        message: message.to_string(),
    }
}
