//! Running a sweep: trials as child processes of the same runner (`train --sweep-trial` with
//! the trial's config), one per worker slot, so an out-of-memory, a panic or a kill of one
//! trial fails that trial alone. The loop claims work under the study's lock (a trial left
//! unfinished, then a promotion, then a new point), answers each evaluation with the
//! pruner's decision, and records every change in the study.
//!
//! Ctrl-C reaches the trials too (the terminal signals the whole process group; a signal sent
//! to the sweep alone is passed on): each saves its step and stops, and the sweep ends with
//! every trial resumable. A killed sweep's trials get SIGTERM from the kernel (see
//! `trial_link::follow_parent`) and stop the same way.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use quill_train::run_lock::FolderLock;
use quill_train::{RunDir, interrupt};

use crate::file::SweepFile;
use crate::planner::Planner;
use crate::progress::Progress;
use crate::pruner::{Decision, Pruner};
use crate::study::{Event, Locked, SWEEP_LOCK, State, Status, Study, now};
use trial_process::{Message, Running, finish, spawn, write_answer};

mod trial_process;

/// How a sweep runs, beyond its file.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// The sweep directory, `artifacts/NAME`.
    pub dir: PathBuf,
    /// `--set` assignments from the command line, after the sweep file's `[set]`.
    pub overrides: Vec<String>,
    pub log_y: bool,
    /// `--workers`, over `resources.workers`.
    pub workers: Option<usize>,
    /// `--devices`, over `resources.devices`.
    pub devices: Option<Vec<usize>>,
    /// The runner binary that trains the trials (the sweep's own).
    pub runner: PathBuf,
}

/// How the sweep ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub finished: usize,
    pub pruned: usize,
    pub failed: usize,
    /// The budget that ended the sweep, if one did.
    pub budget: Option<String>,
    pub interrupted: bool,
}

/// Where one trial at a time runs: a GPU (or none), with some CPU threads.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub device: Option<usize>,
    pub threads: Option<usize>,
}

/// The worker slots of `sweep` with the command line's overrides.
pub fn slots(sweep: &SweepFile, options: &SweepOptions) -> Vec<Slot> {
    let r = &sweep.resources;
    match options.devices.clone().or_else(|| r.devices.clone()) {
        Some(devices) => devices
            .iter()
            .flat_map(|&d| {
                std::iter::repeat_n(
                    Slot {
                        device: Some(d),
                        threads: r.threads,
                    },
                    r.per_device,
                )
            })
            .collect(),
        None => {
            let workers = options.workers.unwrap_or(r.workers);
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let threads = r.threads.unwrap_or((cores / workers).max(1));
            vec![
                Slot {
                    device: None,
                    threads: Some(threads),
                };
                workers
            ]
        }
    }
}

/// Who this process is in the study: host and process id.
fn owner() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "host".into());
    format!("{}:{}", host.trim(), std::process::id())
}

/// Checks that `dir`'s study, if there is one, belongs to `sweep`'s file.
pub fn check_study(dir: &Path, sweep: &SweepFile) -> Result<(), String> {
    let study = Study::new(dir);
    let events = study.read()?;
    let ours = identity(sweep);
    match State::replay(&events).sweep {
        Some(theirs) if theirs != ours => Err(format!(
            "{} belongs to sweep file {theirs}, not {ours}; give this sweep its own folder with --name",
            study.file().display()
        )),
        _ => Ok(()),
    }
}

fn identity(sweep: &SweepFile) -> String {
    std::path::absolute(&sweep.path)
        .unwrap_or_else(|_| sweep.path.clone())
        .display()
        .to_string()
}

/// The budget `state` has used up, if any.
fn spent(sweep: &SweepFile, state: &State) -> Option<String> {
    let b = &sweep.budget;
    if let Some(target) = b.target
        && let Some(best) = state
            .trials
            .iter()
            .filter_map(|t| t.best())
            .reduce(f64::min)
        && best <= target
    {
        return Some(format!("target {target} reached (best val loss {best:.4})"));
    }
    if let Some(max) = b.max_wall {
        // Every session's wall time, this one's up to its newest event.
        if state.wall_s >= max.as_secs_f64() {
            return Some(format!("max_wall {}s used", max.as_secs()));
        }
    }
    if let Some(max) = b.max_total_steps
        && state.total_steps() >= max
    {
        return Some(format!("max_total_steps {max} trained"));
    }
    None
}

/// Trains the sweep's trials until the space, the budget or the user says stop, then writes
/// the report.
pub fn run_sweep(
    sweep: &SweepFile,
    planner: &Planner,
    pruner: &Pruner,
    options: &SweepOptions,
    progress: &mut Progress,
) -> Result<Outcome, String> {
    let study = Study::new(&options.dir);
    let configs = options.dir.join(".trials");
    std::fs::create_dir_all(&configs).map_err(|e| format!("{}: {e}", configs.display()))?;
    let me = owner();
    {
        let mut locked = study.lock()?;
        if locked.state().sweep.is_none() {
            locked.append(Event::Study {
                sweep: identity(sweep),
            })?;
        }
        locked.append(Event::Session {
            owner: me.clone(),
            time: now(),
        })?;
    }
    let slots = slots(sweep, options);
    let mut running: Vec<Option<Running>> = (0..slots.len()).map(|_| None).collect();
    let (tx, rx) = mpsc::channel::<Message>();
    let mut budget: Option<String> = None;
    let mut forwarded = false;
    loop {
        let stopping = interrupt::requested();
        if stopping && !forwarded {
            forwarded = true;
            for r in running.iter().flatten() {
                let _ = rustix::process::kill_process(
                    rustix::process::Pid::from_child(&r.child),
                    rustix::process::Signal::INT,
                );
            }
        }
        // Fill the free slots.
        let mut idle = false;
        while !stopping && budget.is_none() {
            let Some(slot) = running.iter().position(Option::is_none) else {
                break;
            };
            let mut locked = study.lock()?;
            let state = locked.state();
            if let Some(spent) = spent(sweep, &state) {
                budget = Some(spent);
                break;
            }
            match claim(sweep, planner, pruner, &study, &mut locked, &state, &me)? {
                Some((id, name, resume, lock)) => {
                    let r = spawn(
                        &options.runner,
                        &configs,
                        &study,
                        &slots[slot],
                        &id,
                        &name,
                        resume,
                        lock,
                        slot,
                        &tx,
                    )?;
                    drop(locked);
                    let values = state
                        .trial(&id)
                        .map(|t| t.values.clone())
                        .unwrap_or_default();
                    progress.started(slot, &name, &values, resume);
                    running[slot] = Some(r);
                }
                None => {
                    idle = true;
                    break;
                }
            }
        }
        if running.iter().all(Option::is_none) {
            let others = (!stopping && budget.is_none() && idle) && {
                let state = State::replay(&study.read()?);
                state
                    .trials
                    .iter()
                    .any(|t| !t.is_done() && study.is_running(&t.name))
            };
            if !others {
                break;
            }
            // Trials of another process (or of a killed sweep) are still training: their
            // results may promote a trial or end the study.
            std::thread::sleep(Duration::from_millis(500));
            continue;
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Message::Eval { slot, step, loss }) => {
                let Some(r) = running[slot].as_mut() else {
                    continue;
                };
                let mut locked = study.lock()?;
                locked.append(Event::Evaluated {
                    trial: r.id.clone(),
                    step,
                    val_loss: loss,
                    time: now(),
                })?;
                let state = locked.state();
                let trial = state.trial(&r.id).expect("a running trial is planned");
                let mut decision = pruner.decide(&state, trial, step);
                let spent = spent(sweep, &state);
                if decision == Decision::Continue && (interrupt::requested() || spent.is_some()) {
                    // Stopped where its checkpoint is: resumable.
                    decision = Decision::Pause;
                    r.stopped_by = None;
                    budget = budget.or(spent);
                    write_answer(r, false);
                } else {
                    match decision {
                        Decision::Continue => write_answer(r, true),
                        Decision::Pause | Decision::Prune => {
                            locked.append(Event::Pruned {
                                trial: r.id.clone(),
                                step,
                                fin: decision == Decision::Prune,
                                time: now(),
                            })?;
                            r.stopped_by = Some(decision);
                            write_answer(r, false);
                        }
                    }
                }
                drop(locked);
                progress.evaluated(slot, &r.name, step, loss, decision);
            }
            Ok(Message::Closed { slot }) => {
                if let Some(r) = running[slot].as_mut() {
                    r.closed = true;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => unreachable!("the loop holds a sender"),
        }
        for (slot, entry) in running.iter_mut().enumerate() {
            let Some(r) = entry.as_mut() else { continue };
            let Ok(Some(status)) = r.child.try_wait() else {
                continue;
            };
            if !r.closed {
                // Its last lines may still be on their way.
                continue;
            }
            let r = entry.take().expect("checked");
            finish(&study, &configs, r, status, slot, progress)?;
        }
    }
    let state = State::replay(&study.read()?);
    let count = |label: &str| {
        state
            .trials
            .iter()
            .filter(|t| t.status.label() == label)
            .count()
    };
    Ok(Outcome {
        finished: count("finished"),
        pruned: count("pruned"),
        failed: count("failed"),
        budget,
        interrupted: interrupt::requested(),
    })
}

/// The next job of this process, claimed in the study: `(trial id, name, resume, its lock)`.
fn claim(
    sweep: &SweepFile,
    planner: &Planner,
    pruner: &Pruner,
    study: &Study,
    locked: &mut Locked,
    state: &State,
    me: &str,
) -> Result<Option<(String, String, bool, FolderLock)>, String> {
    let take = |name: &str| FolderLock::try_take(&study.trial_dir(name), SWEEP_LOCK).ok();
    // A trial left unfinished: planned, stopped, or running under a process that is gone.
    for trial in &state.trials {
        let open = matches!(
            trial.status,
            Status::Planned | Status::Stopped | Status::Running { .. }
        );
        if !open || study.is_running(&trial.name) {
            continue;
        }
        if let Some(lock) = take(&trial.name) {
            let resume = has_checkpoint(&study.trial_dir(&trial.name));
            locked.append(Event::Started {
                trial: trial.id.clone(),
                owner: me.to_owned(),
                resume,
                time: now(),
            })?;
            return Ok(Some((trial.id.clone(), trial.name.clone(), resume, lock)));
        }
    }
    if let Some(trial) = pruner.promotable(state, &|t| study.is_running(&t.name))
        && let Some(lock) = take(&trial.name)
    {
        let step = trial.last_step();
        locked.append(Event::Promoted {
            trial: trial.id.clone(),
            step,
            time: now(),
        })?;
        locked.append(Event::Started {
            trial: trial.id.clone(),
            owner: me.to_owned(),
            resume: true,
            time: now(),
        })?;
        return Ok(Some((trial.id.clone(), trial.name.clone(), true, lock)));
    }
    if sweep
        .budget
        .max_trials
        .is_some_and(|max| state.trials.len() >= max)
    {
        return Ok(None);
    }
    let Some(trials) = planner.next(state)? else {
        return Ok(None);
    };
    let room = sweep
        .budget
        .max_trials
        .map_or(usize::MAX, |m| m - state.trials.len());
    let configs = study.dir.join(".trials");
    for (i, planned) in trials.iter().take(room).enumerate() {
        let path = configs.join(format!("{}.toml", planned.trial.name));
        quill_train::checkpoint::write_atomic(&path, planned.trial.config.to_toml().as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        locked.append(Event::Planned {
            trial: planned.trial.id.clone(),
            number: state.trials.len() + i,
            name: planned.trial.name.clone(),
            group: planned.trial.group.clone(),
            values: planned.trial.values.clone(),
            point: planned.point.clone(),
            draw: planned.draw,
            time: now(),
        })?;
    }
    let first = &trials[0].trial;
    let Some(lock) = take(&first.name) else {
        return Ok(None);
    };
    locked.append(Event::Started {
        trial: first.id.clone(),
        owner: me.to_owned(),
        resume: false,
        time: now(),
    })?;
    Ok(Some((first.id.clone(), first.name.clone(), false, lock)))
}

fn has_checkpoint(dir: &Path) -> bool {
    let run = RunDir::new(dir);
    run.config().exists()
        && (run.latest_checkpoint().is_some()
            || quill_train::checkpoint::MidEpoch::latest(&run).is_some())
}
