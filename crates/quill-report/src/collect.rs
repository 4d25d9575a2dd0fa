use std::path::{Path, PathBuf};

use quill_train::metrics_csv::{MetricsRow, read_rows};
use quill_train::{RunDir, RunSummary};
use serde::{Deserialize, Serialize};

use crate::ReportError;

/// Written by a sweep in its directory: which runs it planned and with which values.
pub const SWEEP_FILE: &str = "sweep.json";
/// Written in a run's directory when the run failed, with the error.
pub const FAILED_FILE: &str = "failed.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepIndex {
    /// The swept keys, in the sweep file's order.
    pub keys: Vec<String>,
    pub runs: Vec<SweepEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepEntry {
    pub name: String,
    /// The swept values as TOML literals, in the order of `keys` (empty where a parameter was
    /// inactive for this run).
    pub values: Vec<String>,
    /// `"pruned"` for a trial a sweep's pruner stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RunStatus {
    Finished,
    Failed(String),
    /// Started but neither finished nor failed (interrupted, or running).
    Incomplete,
    /// Stopped early by a sweep's pruner.
    Pruned,
    NotStarted,
}

impl RunStatus {
    pub fn label(&self) -> &str {
        match self {
            RunStatus::Finished => "finished",
            RunStatus::Failed(_) => "failed",
            RunStatus::Incomplete => "incomplete",
            RunStatus::Pruned => "pruned",
            RunStatus::NotStarted => "not started",
        }
    }
}

/// One run as the report sees it.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub name: String,
    pub dir: PathBuf,
    /// `(key, value)` of each swept key; empty for a single run.
    pub values: Vec<(String, String)>,
    pub status: RunStatus,
    pub summary: Option<RunSummary>,
    pub rows: Vec<MetricsRow>,
}

impl RunRecord {
    fn read(name: String, dir: PathBuf, values: Vec<(String, String)>) -> Self {
        let run = RunDir::new(&dir);
        let rows = read_rows(&run.metrics()).unwrap_or_default();
        let summary = std::fs::read_to_string(run.summary())
            .ok()
            .and_then(|json| serde_json::from_str::<RunSummary>(&json).ok());
        let failure = std::fs::read_to_string(dir.join(FAILED_FILE))
            .ok()
            .and_then(|json| serde_json::from_str::<Failure>(&json).ok());
        let status = match (&summary, failure) {
            (Some(_), _) => RunStatus::Finished,
            (None, Some(f)) => RunStatus::Failed(f.error),
            (None, None) if dir.exists() => RunStatus::Incomplete,
            (None, None) => RunStatus::NotStarted,
        };
        Self {
            name,
            dir,
            values,
            status,
            summary,
            rows,
        }
    }

    /// Label for legends: the swept values, or the run's name.
    pub fn label(&self) -> String {
        if self.values.is_empty() {
            self.name.clone()
        } else {
            self.values
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    pub fn best_val_loss(&self) -> Option<f64> {
        self.summary.as_ref().map(|s| s.best_val_loss)
    }
}

#[derive(Serialize, Deserialize)]
struct Failure {
    error: String,
}

/// Records that the run in `dir` failed with `error`.
pub fn write_failure(dir: &Path, error: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(&Failure {
        error: error.to_owned(),
    })
    .expect("a failure serializes");
    std::fs::write(dir.join(FAILED_FILE), json)
}

/// The runs of a sweep directory (from its `sweep.json`, or every run directory in it) or the
/// single run `dir` is; sorted best val loss first, then unfinished runs by name.
pub fn collect(dir: &Path) -> Result<Vec<RunRecord>, ReportError> {
    let mut runs = if dir.join(SWEEP_FILE).exists() {
        let path = dir.join(SWEEP_FILE);
        let index: SweepIndex = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|json| serde_json::from_str(&json).map_err(|e| e.to_string()))
            .map_err(|message| ReportError::File {
                path: path.clone(),
                message,
            })?;
        index
            .runs
            .iter()
            .map(|entry| {
                let values = index
                    .keys
                    .iter()
                    .cloned()
                    .zip(entry.values.iter().cloned())
                    .collect();
                let mut run = RunRecord::read(entry.name.clone(), dir.join(&entry.name), values);
                if entry.status.as_deref() == Some("pruned") && run.summary.is_none() {
                    run.status = RunStatus::Pruned;
                }
                run
            })
            .collect()
    } else if dir.join("config.toml").exists() {
        let name = dir
            .file_name()
            .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
        vec![RunRecord::read(name, dir.to_owned(), Vec::new())]
    } else {
        let entries =
            std::fs::read_dir(dir).map_err(|_| ReportError::NotARunOrSweep(dir.to_owned()))?;
        let mut runs: Vec<RunRecord> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("config.toml").exists() || p.join(FAILED_FILE).exists())
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                RunRecord::read(name, p, Vec::new())
            })
            .collect();
        if runs.is_empty() {
            return Err(ReportError::NotARunOrSweep(dir.to_owned()));
        }
        runs.sort_by(|a, b| a.name.cmp(&b.name));
        runs
    };
    runs.sort_by(|a, b| match (a.best_val_loss(), b.best_val_loss()) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    Ok(runs)
}
