//! Sweeps: a sweep file ([`file`]) names a base config, a search [`space`] and how to search
//! it. The [`planner`] turns points into trials ([`trial`]: resolved and validated configs,
//! ids hashed from them) with a grid, random, Sobol or [`tpe`] sampler; the [`scheduler`] runs
//! them as child processes on worker slots, answers each evaluation with the [`pruner`]'s
//! decision and records everything in the append-only [`study`], which any number of sweep
//! processes share; [`report`] writes the summaries, plots and `best.toml`.

pub mod expr;
pub mod file;
pub mod planner;
pub mod progress;
pub mod pruner;
pub mod report;
pub mod scheduler;
pub mod space;
pub mod study;
pub mod tpe;
pub mod trial;

pub use file::{SweepError, SweepFile};
pub use scheduler::{Outcome, SweepOptions, run_sweep};
