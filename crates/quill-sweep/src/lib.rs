//! Sweeps: a sweep file names a base config and the values to try ([`plan`]); [`runner`]
//! trains each resulting run in `artifacts/NAME/RUN/`, skipping finished ones and recording
//! failures, then writes the report.

pub mod plan;
pub mod runner;

pub use plan::{PlannedRun, SweepError, SweepFile};
pub use runner::{SweepOptions, run_sweep};
