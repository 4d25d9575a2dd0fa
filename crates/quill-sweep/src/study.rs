//! The study: `artifacts/NAME/study.jsonl`, append-only, one event a line, the whole memory of
//! a sweep. Every process that works on the sweep reads it, decides, and appends, under one
//! exclusive lock (`study.lock`, std's `File::lock`), so two sweep processes on one folder (on
//! one machine, or on several that share it) never claim the same trial. A line cut short by a
//! kill is skipped on reading.
//!
//! Which trial is running where is not trusted to the log: a process that runs a trial holds
//! the trial folder's [`SWEEP_LOCK`] (and the trial's `train` its run lock), both released by
//! the operating system however the process ends. A trial the log calls running whose locks
//! are free was left by a killed sweep, and is resumed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub use quill_train::run_lock::SWEEP_LOCK;
use quill_train::run_lock::{FolderLock, RUN_LOCK};
use serde::{Deserialize, Serialize};

pub const STUDY_FILE: &str = "study.jsonl";
const STUDY_LOCK: &str = "study.lock";

/// One line of the study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The first line: which sweep file the study belongs to.
    Study { sweep: String },
    /// A sweep process began working on the study.
    Session { owner: String, time: f64 },
    Planned {
        trial: String,
        number: usize,
        name: String,
        group: String,
        values: Vec<(String, String)>,
        /// Each parameter's coordinate (see `Param::to_internal`), `None` where inactive.
        point: Vec<Option<f64>>,
        /// Which quasi-random draw it came from (Sobol and random samplers).
        draw: Option<usize>,
        time: f64,
    },
    Started {
        trial: String,
        owner: String,
        resume: bool,
        time: f64,
    },
    Evaluated {
        trial: String,
        step: usize,
        val_loss: f64,
        time: f64,
    },
    /// Stopped by the pruner after `step`; `fin` means it is never resumed (median pruner),
    /// else ASHA may promote it later.
    Pruned {
        trial: String,
        step: usize,
        fin: bool,
        time: f64,
    },
    /// Promoted by ASHA: it resumes from its checkpoint.
    Promoted {
        trial: String,
        step: usize,
        time: f64,
    },
    /// Ended by Ctrl-C or the wall-time budget; resumable.
    Stopped { trial: String, time: f64 },
    Finished {
        trial: String,
        best_val_loss: f64,
        final_val_loss: f64,
        steps: usize,
        wall_s: f64,
        time: f64,
    },
    Failed {
        trial: String,
        error: String,
        time: f64,
    },
}

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Where a trial stands, as the events tell.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Planned,
    Running {
        owner: String,
    },
    /// Stopped by the pruner after `step`; `fin`: never resumed.
    Pruned {
        step: usize,
        fin: bool,
    },
    Stopped,
    Finished {
        best_val_loss: f64,
        steps: usize,
    },
    Failed(String),
}

impl Status {
    pub fn label(&self) -> &'static str {
        match self {
            Status::Planned => "planned",
            Status::Running { .. } => "running",
            Status::Pruned { .. } => "pruned",
            Status::Stopped => "stopped",
            Status::Finished { .. } => "finished",
            Status::Failed(_) => "failed",
        }
    }
}

/// One trial of the study.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialState {
    pub id: String,
    pub number: usize,
    pub name: String,
    pub group: String,
    pub values: Vec<(String, String)>,
    pub point: Vec<Option<f64>>,
    pub draw: Option<usize>,
    pub status: Status,
    /// `(step, val loss)` of each evaluation, in order (a resumed trial repeats none).
    pub evals: Vec<(usize, f64)>,
    /// Times a trial was started or resumed.
    pub starts: usize,
}

impl TrialState {
    /// The lowest validation loss so far.
    pub fn best(&self) -> Option<f64> {
        match self.status {
            Status::Finished { best_val_loss, .. } => Some(best_val_loss),
            _ => self
                .evals
                .iter()
                .map(|(_, l)| *l)
                .filter(|l| l.is_finite())
                .reduce(f64::min),
        }
    }

    /// The validation loss at `step`, when the trial was evaluated there.
    pub fn at(&self, step: usize) -> Option<f64> {
        self.evals.iter().find(|(s, _)| *s == step).map(|(_, l)| *l)
    }

    pub fn last_step(&self) -> usize {
        self.evals.last().map_or(0, |(s, _)| *s)
    }

    pub fn is_done(&self) -> bool {
        matches!(
            self.status,
            Status::Finished { .. } | Status::Failed(_) | Status::Pruned { fin: true, .. }
        )
    }
}

/// The study as its events leave it.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub sweep: Option<String>,
    /// Trials in the order they were planned.
    pub trials: Vec<TrialState>,
    /// Wall time of every session, in seconds.
    pub wall_s: f64,
}

fn trial_mut<'a>(
    state: &'a mut State,
    index: &BTreeMap<String, usize>,
    id: &str,
) -> Option<&'a mut TrialState> {
    index.get(id).map(|&i| &mut state.trials[i])
}

impl State {
    pub fn replay(events: &[Event]) -> Self {
        let mut state = State::default();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        let mut session: Option<(f64, f64)> = None;
        let close = |session: &mut Option<(f64, f64)>, wall: &mut f64| {
            if let Some((start, last)) = session.take() {
                *wall += (last - start).max(0.0);
            }
        };
        for event in events {
            let time = event_time(event);
            if let (Some(t), Some((_, last))) = (time, session.as_mut()) {
                *last = last.max(t);
            }
            match event {
                Event::Study { sweep } => state.sweep = Some(sweep.clone()),
                Event::Session { time, .. } => {
                    close(&mut session, &mut state.wall_s);
                    session = Some((*time, *time));
                }
                Event::Planned {
                    trial,
                    number,
                    name,
                    group,
                    values,
                    point,
                    draw,
                    ..
                } => {
                    index.insert(trial.clone(), state.trials.len());
                    state.trials.push(TrialState {
                        id: trial.clone(),
                        number: *number,
                        name: name.clone(),
                        group: group.clone(),
                        values: values.clone(),
                        point: point.clone(),
                        draw: *draw,
                        status: Status::Planned,
                        evals: Vec::new(),
                        starts: 0,
                    });
                }
                Event::Started {
                    trial: id, owner, ..
                } => {
                    if let Some(t) = trial_mut(&mut state, &index, id) {
                        t.status = Status::Running {
                            owner: owner.clone(),
                        };
                        t.starts += 1;
                    }
                }
                Event::Evaluated {
                    trial: id,
                    step,
                    val_loss,
                    ..
                } => {
                    if let Some(t) = trial_mut(&mut state, &index, id) {
                        t.evals.retain(|(s, _)| s < step);
                        t.evals.push((*step, *val_loss));
                    }
                }
                Event::Pruned {
                    trial: id,
                    step,
                    fin,
                    ..
                } => {
                    if let Some(t) = trial_mut(&mut state, &index, id) {
                        t.status = Status::Pruned {
                            step: *step,
                            fin: *fin,
                        };
                    }
                }
                Event::Promoted { trial: id, .. } | Event::Stopped { trial: id, .. } => {
                    if let Some(t) = trial_mut(&mut state, &index, id) {
                        t.status = Status::Stopped;
                    }
                }
                Event::Finished {
                    trial: id,
                    best_val_loss,
                    steps,
                    ..
                } => {
                    if let Some(t) = trial_mut(&mut state, &index, id) {
                        t.status = Status::Finished {
                            best_val_loss: *best_val_loss,
                            steps: *steps,
                        };
                    }
                }
                Event::Failed {
                    trial: id, error, ..
                } => {
                    if let Some(t) = trial_mut(&mut state, &index, id) {
                        t.status = Status::Failed(error.clone());
                    }
                }
            }
        }
        close(&mut session, &mut state.wall_s);
        state
    }

    pub fn trial(&self, id: &str) -> Option<&TrialState> {
        self.trials.iter().find(|t| t.id == id)
    }

    /// Optimizer steps trained by every trial together.
    pub fn total_steps(&self) -> usize {
        self.trials.iter().map(TrialState::last_step).sum()
    }
}

fn event_time(event: &Event) -> Option<f64> {
    match event {
        Event::Study { .. } => None,
        Event::Session { time, .. }
        | Event::Planned { time, .. }
        | Event::Started { time, .. }
        | Event::Evaluated { time, .. }
        | Event::Pruned { time, .. }
        | Event::Promoted { time, .. }
        | Event::Stopped { time, .. }
        | Event::Finished { time, .. }
        | Event::Failed { time, .. } => Some(*time),
    }
}

/// The study's files in a sweep folder.
#[derive(Debug, Clone)]
pub struct Study {
    pub dir: PathBuf,
}

/// The study while this process holds its lock: read, decide, append, let go.
#[derive(Debug)]
pub struct Locked<'a> {
    study: &'a Study,
    _lock: FolderLock,
    pub events: Vec<Event>,
}

impl Study {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    pub fn file(&self) -> PathBuf {
        self.dir.join(STUDY_FILE)
    }

    /// Reads the events without the lock (`sweep --status`, while another process runs it).
    pub fn read(&self) -> Result<Vec<Event>, String> {
        let path = self.file();
        if !path.exists() {
            return Ok(Vec::new());
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        // A line cut short by a kill (the only way one is written partly) is skipped: the
        // appends after it start on a line of their own.
        Ok(text
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect())
    }

    /// Waits for the study's lock, then reads it.
    pub fn lock(&self) -> Result<Locked<'_>, String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let lock = FolderLock::wait_for(&self.dir.join(STUDY_LOCK)).map_err(|e| e.to_string())?;
        let events = self.read()?;
        Ok(Locked {
            study: self,
            _lock: lock,
            events,
        })
    }

    /// The folder of trial `name`.
    pub fn trial_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Whether some process runs trial `name` now: its sweep or its `train` holds a lock.
    pub fn is_running(&self, name: &str) -> bool {
        let dir = self.trial_dir(name);
        FolderLock::is_held(&dir, SWEEP_LOCK) || FolderLock::is_held(&dir, RUN_LOCK)
    }
}

impl Locked<'_> {
    pub fn state(&self) -> State {
        State::replay(&self.events)
    }

    /// Appends `event` to the file (one write of one line, after a newline if a kill left the
    /// last line without one).
    pub fn append(&mut self, event: Event) -> Result<(), String> {
        let path = self.study.file();
        let mut line = serde_json::to_string(&event).expect("events serialize");
        line.push('\n');
        let ends_cleanly =
            std::fs::read(&path).map_or(true, |b| b.is_empty() || b.ends_with(b"\n"));
        if !ends_cleanly {
            line.insert(0, '\n');
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        file.write_all(line.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        self.events.push(event);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
