//! What a finished run or sweep looks like: [`collect`] gathers the runs under a directory,
//! [`table`] writes `summary.md` and `summary.csv`, [`plot`] draws loss curves as PNG and SVG,
//! [`study_plots`] a sweep's parameters against its metric, [`importance`] ranks the parameters.

pub mod collect;
pub mod importance;
pub mod plot;
pub mod study_plots;
pub mod table;

use std::path::Path;

pub use collect::{
    FAILED_FILE, RunRecord, RunStatus, SWEEP_FILE, SweepEntry, SweepIndex, collect, write_failure,
};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0} is neither a run directory nor a sweep directory")]
    NotARunOrSweep(std::path::PathBuf),
    #[error("{path}: {message}")]
    File {
        path: std::path::PathBuf,
        message: String,
    },
}

/// Writes the summary files and plots for `dir`, a sweep directory or a single run.
/// Returns the runs, best first.
pub fn report(dir: &Path, log_y: bool) -> Result<Vec<RunRecord>, ReportError> {
    let runs = collect(dir)?;
    for run in &runs {
        if !run.rows.is_empty() {
            plot::run_curves(&run.dir, &run.name, &run.rows, log_y)?;
        }
    }
    table::write_summaries(dir, &runs)?;
    let plotted: Vec<&RunRecord> = runs.iter().filter(|r| !r.rows.is_empty()).collect();
    if plotted.len() > 1 || !dir.join("config.toml").exists() {
        plot::sweep_curves(dir, &plotted, log_y)?;
    }
    Ok(runs)
}
