//! Training a [`quill_model::Gpt`] on burn-train's learner, generic over `AutodiffBackend`.
//!
//! [`config`] is the whole run configuration; [`training::train`] runs it: data loaders from
//! quill-data, the [`step`]s the learner calls, the [`optimizer`] (AdamW with decay on
//! matrices, global-norm clipping), the [`schedule`] (warmup then cosine), [`metrics`], the
//! [`metrics_csv`] log and [`progress`] lines, all written into a [`run_dir`]. [`checkpoint`]s
//! survive kills, and [`interrupt`] turns Ctrl-C into a clean stop that can be resumed.

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod evaluate;
pub mod interrupt;
pub mod metrics;
pub mod metrics_csv;
pub mod optimizer;
pub mod progress;
pub mod run_dir;
pub mod schedule;
pub mod step;
pub mod summary;
pub mod training;

pub use config::RunConfig;
pub use run_dir::{RunDir, Weights};
pub use summary::RunSummary;
pub use training::{TrainError, train};
