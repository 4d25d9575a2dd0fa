//! Training a [`quill_model::Gpt`] on burn-train's learner, generic over `AutodiffBackend`.
//!
//! [`config`] is the whole run configuration; [`training::train`] runs it: data loaders from
//! quill-data, the [`step`]s the learner calls, the [`optimizer`] (AdamW with decay on
//! matrices, global-norm clipping), the [`schedule`] (warmup then cosine), [`metrics`], the
//! [`metrics_csv`] log and [`progress`] lines, all written into a [`run_dir`]. [`checkpoint`]s
//! survive kills, and [`interrupt`] turns Ctrl-C into a clean stop that can be resumed.
//! [`memory`] estimates what a run needs before it starts; [`failure`] turns a full disk or
//! an exhausted memory mid-run into one line and the command that resumes.
//!
//! # One optimizer step, in order
//!
//! 1. **Data**: the next `[batch, block]` windows and their shifted targets, drawn without
//!    repetition within an epoch (`quill_data::WindowLoader`, `loader.rs`).
//! 2. **Forward and loss**: `Gpt::forward_loss` (quill-model), called by
//!    [`step::Trainee`]'s `TrainStep::step`.
//! 3. **Loss guard**: the step hands its loss, still on the device, to
//!    [`run_control::RunControl`], which checks the pending losses every [`run_control::CHECK_EVERY`]
//!    steps and before any checkpoint.
//! 4. **Backward**: in the same `TrainStep::step`, of the loss divided by `grad_accum`.
//! 5. **Accumulation**: burn-train sums the micro-batches' gradients
//!    (`SupervisedTraining::grads_accumulation`, set in [`training`]).
//! 6. **Clipping**: [`optimizer::step_clipped`], from `TrainStep::optimize`.
//! 7. **AdamW**: [`optimizer::MatrixDecayAdamW`] (decay on matrices only), or Muon on the
//!    blocks' matrices ([`muon::ModelOptimizer`]).
//! 8. **Learning rate**: [`schedule::LrSchedule`] (cosine or WSD), stepped once per micro-batch.
//! 9. **Checkpoint**: at each epoch's end burn-train saves model, optimizer and schedule
//!    through [`checkpoint::AtomicRecorder`] and prunes with [`checkpoint::SafeRetention`];
//!    on Ctrl-C, [`run_control::RunControl`] saves the step as a [`checkpoint::MidEpoch`].
//!
//! # Resume, in order
//!
//! 1. `training/setup.rs` finds the newest complete checkpoint, an epoch's or a mid-epoch
//!    one (`Start::resume`), after removing half-written files
//!    ([`checkpoint::remove_partial_files`]), and loads it once to refuse a damaged one.
//! 2. burn-train only resumes at epoch boundaries: a mid-epoch checkpoint is served to it as
//!    the last complete epoch's ([`checkpoint::StandIn`], through the recorder).
//! 3. The loader skips the batches that the checkpoint's steps already trained on
//!    (`quill_data::TrainingPosition`), so the windows continue where they stopped.
//! 4. The schedule's record is its micro-batch count, so the learning rate continues too.
//! 5. `metrics.csv` drops the rows after the checkpoint ([`metrics_csv::truncate_after`]).

pub mod bench;
pub mod collective_wait;
pub mod config;
pub mod disk;
pub mod evaluate;
pub mod failure;
pub mod interrupt;
pub mod memory;
pub mod metrics;
pub mod metrics_csv;
pub mod muon;
pub mod nodes;
pub mod optimizer;
pub mod progress;
pub mod run_control;
pub mod schedule;
pub mod step;
pub mod summary;
pub mod training;
pub mod trial_link;

pub use config::RunConfig;
pub use quill_run::{RunDir, Weights, checkpoint, run_dir, run_lock};
pub use summary::RunSummary;
pub use training::{TrainError, train, train_on};
