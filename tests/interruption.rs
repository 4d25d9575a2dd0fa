//! Runs stopped by Ctrl-C, killed, or crashed halfway through writing a checkpoint resume and
//! end exactly where an uninterrupted run of the same seed ends; a diverging run stops at its
//! first non-finite loss and keeps its last good checkpoint.

#![cfg(unix)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::{Quill, assert_close, fails_with, interrupted_step, ok};

/// Val losses of an uninterrupted tiny run (4 epochs of 50 steps), computed once.
fn reference() -> &'static [f64] {
    static VAL_LOSSES: OnceLock<Vec<f64>> = OnceLock::new();
    VAL_LOSSES.get_or_init(|| {
        let quill = Quill::new();
        ok(quill.train("tiny.toml", "straight", &[]));
        quill.val_losses("straight")
    })
}

fn assert_matches_reference(quill: &Quill, run: &str) {
    assert_close(&quill.val_losses(run), reference(), 1e-5);
    let summary =
        std::fs::read_to_string(quill.artifacts().join(run).join("summary.json")).unwrap();
    assert!(summary.contains("\"steps\": 200"), "{summary}");
    let leftovers: Vec<_> = std::fs::read_dir(quill.artifacts().join(run).join("checkpoint"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("step-") || name.starts_with("partial-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A training process, started and watched until it printed its evaluation of `epoch`.
struct Running {
    child: Child,
    /// How long the last epoch took (the first one's includes the start-up).
    epoch_time: Duration,
}

impl Running {
    fn start(mut command: Command, epoch: usize) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let marker = format!("epoch {epoch}/");
        let mut last = Instant::now();
        let mut epoch_time = Duration::ZERO;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if line.starts_with("epoch ") {
                epoch_time = last.elapsed();
                last = Instant::now();
            }
            if line.starts_with(&marker) {
                break;
            }
        }
        // Keep draining, so the run never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, epoch_time }
    }

    /// Waits a quarter of an epoch, so that a signal sent next lands in the middle of the
    /// epoch after the one `start` waited for, however fast this machine trains.
    fn wait_into_the_next_epoch(&self) {
        std::thread::sleep(self.epoch_time / 4);
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the exit; returns the status and stderr.
    fn finish(mut self) -> (ExitStatus, String) {
        let status = self.child.wait().unwrap();
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (status, err)
    }
}

#[test]
fn ctrl_c_saves_the_step_and_the_printed_command_resumes_it() {
    let quill = Quill::new();
    let run = Running::start(quill.train_command("tiny.toml", "stopped", &[]), 1);
    run.wait_into_the_next_epoch();
    run.signal("-INT");
    let (status, err) = run.finish();
    assert_eq!(status.code(), Some(130), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let step = interrupted_step(&err);
    assert!(step > 50 && step < 200, "{err}");
    let checkpoints = quill.artifacts().join("stopped/checkpoint");
    if !step.is_multiple_of(50) {
        assert!(
            checkpoints
                .join(format!("step-{step}/position.json"))
                .is_file()
        );
    }

    let command = err.split("resume with: quill-cpu ").nth(1).expect(&err);
    let args: Vec<&str> = command.split_whitespace().collect();
    let out = ok(quill.run(&args));
    assert!(out.contains("resuming"), "{out}");
    assert_matches_reference(&quill, "stopped");
}

#[test]
fn two_signals_back_to_back_are_one_request_and_still_save_the_step() {
    // GNU timeout signals the child and then its process group: two SIGINTs microseconds
    // apart. They are one request (a second one only counts a second later).
    let quill = Quill::new();
    let run = Running::start(quill.train_command("tiny.toml", "twice", &[]), 1);
    run.wait_into_the_next_epoch();
    run.signal("-INT");
    run.signal("-INT");
    let (status, err) = run.finish();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.starts_with("error: interrupted after step "), "{err}");
    assert!(err.contains("resume with: quill-cpu "), "{err}");

    ok(quill.train("tiny.toml", "twice", &["--resume"]));
    assert_matches_reference(&quill, "twice");
}

#[test]
fn kills_and_crashes_mid_write_resume_from_the_last_complete_checkpoint() {
    let quill = Quill::new();
    let resume = || quill.train_command("tiny.toml", "killed", &["--resume"]);

    // SIGKILL in the middle of epoch 2.
    let run = Running::start(quill.train_command("tiny.toml", "killed", &[]), 1);
    run.wait_into_the_next_epoch();
    run.signal("-KILL");
    let (status, _) = run.finish();
    assert!(!status.success());

    // Killed while writing the optimizer state of epoch 3: that file never appears whole.
    let crashed = resume()
        .env("QUILL_CRASH_WRITING", "optim-3")
        .output()
        .unwrap();
    assert!(!crashed.status.success());
    let checkpoints = quill.artifacts().join("killed/checkpoint");
    assert!(!checkpoints.join("optim-3.mpk").exists());
    assert!(checkpoints.join("partial-optim-3.mpk").exists());

    // Ctrl-C in epoch 4, killed while writing that step's checkpoint: it is never used.
    let mut command = resume();
    command.env("QUILL_CRASH_WRITING", "model");
    let run = Running::start(command, 3);
    run.wait_into_the_next_epoch();
    run.signal("-INT");
    let (status, _) = run.finish();
    assert!(!status.success());
    let unfinished: Vec<_> = std::fs::read_dir(&checkpoints)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("step-")
        })
        .collect();
    assert_eq!(unfinished.len(), 1, "{unfinished:?}");
    assert!(!unfinished[0].join("position.json").exists());

    let out = ok(resume().output().unwrap());
    assert!(out.contains("resuming"), "{out}");
    assert_matches_reference(&quill, "killed");
}

/// A run that ended with `failure` on stderr: one line, exit status 1, the checkpoint of
/// step 100 intact, no half-written file left, `metrics.csv` whole; the printed command
/// finishes it as if nothing had happened.
fn assert_reported_and_resumable(
    quill: &Quill,
    run: &str,
    out: std::process::Output,
    failure: &str,
) {
    let err = crate::common::stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("error: {failure} while training ")),
        "{err}"
    );
    assert!(
        err.contains("the checkpoint of step 100 is intact"),
        "{err}"
    );
    let dir = quill.artifacts().join(run);
    let partial: Vec<_> = std::fs::read_dir(dir.join("checkpoint"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("partial-"))
        .collect();
    assert!(partial.is_empty(), "{partial:?}");
    let rows = quill.metrics(run);
    assert!(
        rows.len() >= 2 && rows.iter().all(|row| row.len() == 7),
        "{rows:?}"
    );

    let command = err.split("resume with: quill-cpu ").nth(1).expect(&err);
    let args: Vec<&str> = command.split_whitespace().collect();
    let resumed = ok(quill.run(&args));
    assert!(resumed.contains("resuming"), "{resumed}");
    assert_matches_reference(quill, run);
}

#[test]
fn a_full_disk_mid_run_is_one_line_and_the_run_resumes() {
    // The optimizer state of epoch 3 meets a full disk halfway through.
    let quill = Quill::new();
    let out = quill
        .train_command("tiny.toml", "full", &[])
        .env("QUILL_DISK_FULL_WRITING", "optim-3")
        .output()
        .unwrap();
    assert_reported_and_resumable(&quill, "full", out, "no space left on device");
}

#[test]
fn a_full_disk_at_the_final_weights_resumes_into_the_wrap_up() {
    let quill = Quill::new();
    let fast = crate::common::QUICK;
    let out = quill
        .train_command("tiny.toml", "end", &fast)
        .env("QUILL_DISK_FULL_WRITING", "final")
        .output()
        .unwrap();
    let err = crate::common::stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no space left on device")
            && err.contains("the checkpoint of step 50 is intact"),
        "{err}"
    );
    let run = quill.artifacts().join("end");
    assert!(!run.join("final.mpk").exists() && !run.join("summary.json").exists());

    let command = err.split("resume with: quill-cpu ").nth(1).expect(&err);
    let args: Vec<&str> = command.split_whitespace().collect();
    let out = ok(quill.run(&args));
    assert!(out.contains("done: best val loss"), "{out}");
    assert!(run.join("final.mpk").is_file() && run.join("summary.json").is_file());
    // Finished now: a further --resume says so.
    crate::common::fails_with(quill.run(&args), "already finished its 50 steps");
}

#[test]
fn an_allocation_failure_mid_run_is_one_line_and_the_run_resumes() {
    // Step 120's backward pass asks for memory the machine does not have.
    let quill = Quill::new();
    let out = quill
        .train_command("tiny.toml", "oom", &[])
        .env("QUILL_FAIL_ALLOCATION_AT_STEP", "120")
        .output()
        .unwrap();
    assert_reported_and_resumable(&quill, "oom", out, "out of memory");
}

#[test]
fn a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let quill = Quill::new();
    ok(quill.train("tiny.toml", "nan", &["--set", "train.max_steps=100"]));
    let checkpoint = quill.artifacts().join("nan/checkpoint/model-2.mpk");
    let good = std::fs::read(&checkpoint).unwrap();
    let blow_up = [
        "--resume",
        "--set",
        "train.max_steps=200",
        "--set",
        "optimizer.lr=1e30",
        "--set",
        "optimizer.grad_clip=0",
    ];
    let out = quill.train("tiny.toml", "nan", &blow_up);
    fails_with(out.clone(), "the loss became");
    let err = crate::common::stderr(&out);
    assert!(err.contains("at step 10"), "{err}");
    assert!(err.contains("kept the checkpoint of step 100"), "{err}");
    assert!(
        err.contains("resume from it with a lower learning rate: quill-cpu train")
            && err.contains("--resume --set optimizer.lr="),
        "{err}"
    );
    assert_eq!(std::fs::read(&checkpoint).unwrap(), good);
    assert!(!checkpoint.with_file_name("model-3.mpk").exists());

    // From the start, with no checkpoint yet: start over, with a lower rate.
    let fresh = quill.train("tiny.toml", "nan-fresh", &blow_up[3..]);
    fails_with(fresh.clone(), "(there is no checkpoint yet)");
    assert!(crate::common::stderr(&fresh).contains("--force --set optimizer.lr="));

    ok(quill.train(
        "tiny.toml",
        "nan",
        &[
            "--resume",
            "--set",
            "optimizer.lr=3e-3",
            "--set",
            "optimizer.grad_clip=1",
        ],
    ));
    assert_eq!(quill.metrics("nan").len(), 4);
}

#[test]
fn a_second_training_of_a_busy_run_folder_is_refused_and_the_first_finishes_untouched() {
    let quill = Quill::new();
    let run = Running::start(quill.train_command("tiny.toml", "busy", &[]), 1);
    let holder = format!("is in use by process {}", run.child.id());
    for extra in [&[][..], &["--force"], &["--resume"]] {
        let started = Instant::now();
        fails_with(quill.train("tiny.toml", "busy", extra), &holder);
        // Refused at once, not after loading data or waiting for the holder.
        assert!(started.elapsed() < Duration::from_secs(10), "{extra:?}");
    }
    let (status, err) = run.finish();
    assert!(status.success(), "{err}");
    assert_matches_reference(&quill, "busy");
}
