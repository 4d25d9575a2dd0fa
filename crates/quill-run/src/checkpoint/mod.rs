//! Checkpoints that survive a kill at any instant.
//!
//! burn-train writes epoch checkpoints (`checkpoint/{model,optim,scheduler}-E.mpk`) through a
//! recorder on background threads and deletes old ones as its strategy says. Two pieces here make
//! that safe: [`AtomicRecorder`] writes each file to a temporary name, syncs it and renames it,
//! so a file is either complete or absent; [`SafeRetention`] delays every deletion until a newer
//! complete set is on disk, so the previous complete checkpoint is never removed too early.
//!
//! A run stopped mid-epoch (Ctrl-C) leaves a [`MidEpoch`] checkpoint in `checkpoint/step-S/`,
//! with its `position.json` written last. burn-train only resumes at epoch boundaries, so on
//! resume the recorder serves that state as "the checkpoint of the last complete epoch"
//! ([`StandIn`]) while the data loader skips the batches already trained.

//!
//! One job per file: [`recorder`] (atomic checkpoint files, stand-ins), [`saves`] (waiting
//! for burn-train's writer threads), [`retention`] (no deletion before a newer checkpoint is
//! complete), [`mid_epoch`] (Ctrl-C checkpoints), [`files`] (atomic writes of any file).

mod files;
mod mid_epoch;
mod recorder;
mod retention;
mod saves;

use std::path::PathBuf;

use crate::run_dir::RunDir;

pub use files::{remove_partial_files, write_atomic};
pub use mid_epoch::MidEpoch;
pub use recorder::AtomicRecorder;
pub use retention::SafeRetention;
pub use saves::SavesInFlight;

/// The step a resumed run would start from (its newest complete checkpoint's, an epoch's or
/// a mid-epoch one), if it has a checkpoint at all.
pub fn newest_step(run: &RunDir, steps_per_epoch: usize) -> Option<usize> {
    let epoch_step = run.latest_checkpoint().map(|e| e * steps_per_epoch);
    let mid_step = MidEpoch::latest(run).map(|m| m.step);
    epoch_step.max(mid_step)
}

/// The three parts of a checkpoint, as burn-train names them.
pub const PARTS: [&str; 3] = ["model", "optim", "scheduler"];

/// Serves a mid-epoch checkpoint's files when burn-train asks for epoch `epoch`'s.
#[derive(Debug, Clone)]
pub struct StandIn {
    pub epoch: usize,
    pub dir: PathBuf,
}
