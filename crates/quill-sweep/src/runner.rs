//! Running a sweep: one training per planned run, in order, never stopping for one run's
//! failure, skipping what an earlier invocation finished and resuming what it left half done.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use burn::tensor::backend::AutodiffBackend;
use quill_report::collect::SweepEntry;
use quill_report::{SWEEP_FILE, SweepIndex, write_failure};
use quill_train::checkpoint::MidEpoch;
use quill_train::training::TrainOptions;
use quill_train::{RunConfig, RunDir, interrupt, train};

use crate::plan::{PlannedRun, SweepFile};

#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// The sweep directory, `artifacts/NAME`.
    pub dir: PathBuf,
    /// `--set` assignments from the command line, after the sweep file's `[set]`.
    pub overrides: Vec<String>,
    pub log_y: bool,
}

/// What happened to one run in this invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Trained,
    Skipped,
    Failed(String),
}

/// The resolved config of `run`: base file, `[set]`, command-line `--set`, then its values.
pub fn resolve(
    sweep: &SweepFile,
    options: &SweepOptions,
    run: &PlannedRun,
) -> Result<RunConfig, String> {
    let overrides: Vec<String> = sweep
        .set
        .iter()
        .chain(&options.overrides)
        .cloned()
        .chain(run.overrides())
        .collect();
    RunConfig::load(&sweep.base, &overrides).map_err(|e| e.to_string())
}

/// Trains every run of `sweep` on `device`, then writes the report. `log` receives one line
/// per event (starting, skipping, failing a run).
pub fn run_sweep<B: AutodiffBackend>(
    sweep: &SweepFile,
    options: &SweepOptions,
    device: B::Device,
    mut log: impl FnMut(&str),
) -> Result<Vec<(PlannedRun, Outcome)>, String> {
    let runs = sweep.runs();
    std::fs::create_dir_all(&options.dir).map_err(|e| format!("{}: {e}", options.dir.display()))?;
    write_index(&options.dir, sweep, &runs)?;
    let total = runs.len();
    let mut outcomes = Vec::with_capacity(total);
    for (i, run) in runs.into_iter().enumerate() {
        let dir = RunDir::new(options.dir.join(&run.name));
        let tag = format!("[{}/{total}] {}", i + 1, run.name);
        let outcome = if dir.summary().exists() {
            log(&format!("{tag}: finished earlier, skipped"));
            Outcome::Skipped
        } else {
            match train_one::<B>(sweep, options, &run, &dir, &device, &tag, &mut log) {
                Ok(()) => Outcome::Trained,
                Err(error) if interrupt::requested() => {
                    return Err(format!("{tag}: {error}; run the sweep again to resume it"));
                }
                Err(error) => {
                    log(&format!("{tag}: failed: {error}"));
                    write_failure(&dir.path, &error)
                        .map_err(|e| format!("{}: {e}", dir.path.display()))?;
                    Outcome::Failed(error)
                }
            }
        };
        outcomes.push((run, outcome));
    }
    quill_report::report(&options.dir, options.log_y).map_err(|e| e.to_string())?;
    Ok(outcomes)
}

fn train_one<B: AutodiffBackend>(
    sweep: &SweepFile,
    options: &SweepOptions,
    run: &PlannedRun,
    dir: &RunDir,
    device: &B::Device,
    tag: &str,
    log: &mut impl FnMut(&str),
) -> Result<(), String> {
    let config = resolve(sweep, options, run)?;
    let resume = dir.latest_checkpoint().is_some() || MidEpoch::latest(dir).is_some();
    if !resume && dir.path.exists() {
        // A run that failed or died before its first checkpoint starts over.
        std::fs::remove_dir_all(&dir.path).map_err(|e| format!("{}: {e}", dir.path.display()))?;
    }
    let _ = std::fs::remove_file(dir.path.join(quill_report::FAILED_FILE));
    log(&format!(
        "{tag}: {}",
        if resume { "resuming" } else { "training" }
    ));
    let train_options = TrainOptions {
        run: dir.clone(),
        config,
        resume,
        dashboard: false,
        progress_to_stderr: false,
        cluster: None,
    };
    let device = device.clone();
    let summary = catch_unwind(AssertUnwindSafe(|| train::<B>(train_options, device)))
        .map_err(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown".into());
            format!("training panicked: {message}")
        })?
        .map_err(|e| e.to_string())?;
    if !summary.best_val_loss.is_finite() {
        return Err(format!("diverged: val loss {}", summary.final_val_loss));
    }
    Ok(())
}

fn write_index(dir: &Path, sweep: &SweepFile, runs: &[PlannedRun]) -> Result<(), String> {
    let index = SweepIndex {
        keys: sweep.keys().to_vec(),
        runs: runs
            .iter()
            .map(|r| SweepEntry {
                name: r.name.clone(),
                values: r.values.iter().map(|(_, v)| v.clone()).collect(),
            })
            .collect(),
    };
    let path = dir.join(SWEEP_FILE);
    let json = serde_json::to_string_pretty(&index).expect("the index serializes");
    std::fs::write(&path, json).map_err(|e| format!("{}: {e}", path.display()))
}
