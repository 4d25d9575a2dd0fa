//! A trial's child process: started with its config, answered at each evaluation, and
//! recorded in the study when it ends.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;

use quill_report::write_failure;
use quill_train::run_lock::FolderLock;
use quill_train::trial_link::{CONTINUE, parse_eval};
use quill_train::{RunDir, RunSummary, interrupt};

use super::Slot;
use crate::progress::Progress;
use crate::pruner::Decision;
use crate::study::{Event, Status, Study, now};

pub(super) enum Message {
    Eval { slot: usize, step: usize, loss: f64 },
    Closed { slot: usize },
}

pub(super) struct Running {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) child: Child,
    pub(super) stdin: ChildStdin,
    pub(super) _lock: FolderLock,
    /// What the pruner answered at the last evaluation (a stop ends the trial).
    pub(super) stopped_by: Option<Decision>,
    pub(super) closed: bool,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn spawn(
    runner: &Path,
    configs: &Path,
    study: &Study,
    slot_spec: &Slot,
    id: &str,
    name: &str,
    resume: bool,
    lock: FolderLock,
    slot: usize,
    tx: &mpsc::Sender<Message>,
) -> Result<Running, String> {
    let log_path = configs.join(format!("{name}.log"));
    let log = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let config = configs.join(format!("{name}.toml"));
    let mut command = Command::new(runner);
    command
        .arg("train")
        .arg("--config")
        .arg(&config)
        .arg("--artifacts")
        .arg(&study.dir)
        .args(["--name", name, "--sweep-trial"])
        .arg(if resume { "--resume" } else { "--force" })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log.try_clone().map_err(|e| e.to_string())?);
    if let Some(device) = slot_spec.device {
        command.args(["--device", &device.to_string()]);
    }
    if let Some(threads) = slot_spec.threads {
        command.env("RAYON_NUM_THREADS", threads.to_string());
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", runner.display()))?;
    let stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let tx = tx.clone();
    let mut log = log;
    std::thread::Builder::new()
        .name(format!("trial-{slot}"))
        .spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match parse_eval(&line) {
                    Some((step, loss)) => {
                        let _ = tx.send(Message::Eval { slot, step, loss });
                    }
                    None => {
                        let _ = writeln!(log, "{line}");
                    }
                }
            }
            let _ = tx.send(Message::Closed { slot });
        })
        .map_err(|e| e.to_string())?;
    Ok(Running {
        id: id.to_owned(),
        name: name.to_owned(),
        child,
        stdin,
        _lock: lock,
        stopped_by: None,
        closed: false,
    })
}

pub(super) fn write_answer(r: &mut Running, go_on: bool) {
    let answer = if go_on { CONTINUE } else { "stop" };
    // A trial that died before reading it is handled when its exit is seen.
    let _ = writeln!(r.stdin, "{answer}").and_then(|()| r.stdin.flush());
}

/// Records how a trial's process ended.
pub(super) fn finish(
    study: &Study,
    configs: &Path,
    r: Running,
    status: std::process::ExitStatus,
    slot: usize,
    progress: &mut Progress,
) -> Result<(), String> {
    let dir = study.trial_dir(&r.name);
    let run = RunDir::new(&dir);
    let summary = std::fs::read_to_string(run.summary())
        .ok()
        .and_then(|json| serde_json::from_str::<RunSummary>(&json).ok());
    let mut locked = study.lock()?;
    let state = locked.state();
    let paused = matches!(
        state.trial(&r.id).map(|t| &t.status),
        Some(Status::Pruned { .. })
    );
    let event = match (status.success(), summary) {
        (true, Some(s)) if s.best_val_loss.is_finite() => Event::Finished {
            trial: r.id.clone(),
            best_val_loss: s.best_val_loss,
            final_val_loss: s.final_val_loss,
            steps: s.steps,
            wall_s: s.wall_s,
            time: now(),
        },
        (true, _) if paused && r.stopped_by.is_some() => {
            progress.ended(slot, &r.name, "pruned");
            return Ok(());
        }
        (true, None) => Event::Stopped {
            trial: r.id.clone(),
            time: now(),
        },
        _ if status.code() == Some(i32::from(interrupt::EXIT_INTERRUPTED)) => Event::Stopped {
            trial: r.id.clone(),
            time: now(),
        },
        (_, summary) => {
            let error = match summary {
                Some(s) => format!("diverged: val loss {}", s.final_val_loss),
                None => last_error(&configs.join(format!("{}.log", r.name)))
                    .unwrap_or_else(|| format!("the trial exited with {status}")),
            };
            let _ = write_failure(&dir, &error);
            Event::Failed {
                trial: r.id.clone(),
                error,
                time: now(),
            }
        }
    };
    let label = match &event {
        Event::Finished { .. } => "finished".to_string(),
        Event::Stopped { .. } => "stopped (resumable)".to_string(),
        Event::Failed { error, .. } => format!("failed: {error}"),
        _ => String::new(),
    };
    locked.append(event)?;
    drop(locked);
    progress.ended(slot, &r.name, &label);
    Ok(())
}

/// The last `error:` line of a trial's log (or its last line).
pub(super) fn last_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("error: "))
        .or(lines.last().copied())
        .map(str::to_owned)
}
