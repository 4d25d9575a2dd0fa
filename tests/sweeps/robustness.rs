//! Sweeps that survive what happens to processes: a kill, a second process on the same
//! folder, a trial out of memory.

use std::time::{Duration, Instant};

use super::*;

#[test]
fn a_killed_sweep_resumes_and_leaves_finished_trials_untouched() {
    let quill = Quill::new();
    let file = sweep_file(
        &quill,
        "",
        "\"train.max_steps\" = 40\n[sweep]\n\"optimizer.lr\" = [3e-3, 2e-3, 1e-3, 7e-4, 5e-4, 3e-4]\n",
    );
    let artifacts = quill.artifacts();
    let dir = artifacts.join("killed");
    let mut child = quill
        .command(&[
            "sweep",
            "--config",
            &file,
            "--name",
            "killed",
            "--artifacts",
            artifacts.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the third trial has been evaluated once.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let e = events(&dir);
        let third = e
            .iter()
            .filter(|x| x["event"] == "planned")
            .nth(2)
            .map(|x| x["trial"].clone());
        if third.is_some_and(|t| {
            e.iter()
                .any(|x| x["event"] == "evaluated" && x["trial"] == t)
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "the sweep never reached trial 3");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done: Vec<PathBuf> = trials(&dir)
        .into_iter()
        .filter(|r| r.join("summary.json").exists())
        .collect();
    assert_eq!(done.len(), 2, "{done:?}");
    let stamps = |runs: &[PathBuf]| -> Vec<_> {
        runs.iter()
            .flat_map(|r| {
                ["summary.json", "metrics.csv", "best.mpk"]
                    .map(|f| std::fs::metadata(r.join(f)).unwrap().modified().unwrap())
            })
            .collect()
    };
    let before = stamps(&done);
    ok(sweep(&quill, &file, "killed", &[]));
    let all = trials(&dir);
    assert_eq!(all.len(), 6);
    assert!(all.iter().all(|r| r.join("summary.json").exists()));
    assert_eq!(stamps(&done), before, "the finished trials were touched");
    let e = events(&dir);
    assert_eq!(count(&e, "finished"), 6);
    assert_eq!(count(&e, "planned"), 6);
}

#[test]
fn two_sweep_processes_on_one_folder_train_each_trial_once() {
    let quill = Quill::new();
    let file = sweep_file(
        &quill,
        "",
        "[sweep]\n\"optimizer.lr\" = [3e-3, 2e-3, 1e-3, 7e-4]\n\"model.dropout\" = [0.0, 0.1]\n",
    );
    let artifacts = quill.artifacts();
    let spawn = || {
        quill
            .command(&[
                "sweep",
                "--config",
                &file,
                "--name",
                "shared",
                "--artifacts",
                artifacts.to_str().unwrap(),
            ])
            .env("RAYON_NUM_THREADS", "1")
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for mut child in [a, b] {
        assert!(child.wait().unwrap().success());
    }
    let dir = artifacts.join("shared");
    let e = events(&dir);
    assert_eq!(count(&e, "planned"), 8);
    assert_eq!(count(&e, "started"), 8, "a trial was trained twice: {e:#?}");
    assert_eq!(count(&e, "finished"), 8);
    let owners: std::collections::HashSet<String> = e
        .iter()
        .filter(|x| x["event"] == "started")
        .map(|x| x["owner"].to_string())
        .collect();
    assert_eq!(owners.len(), 2, "both processes trained: {owners:?}");
}

#[test]
fn an_out_of_memory_fails_that_trial_only() {
    let quill = Quill::new();
    // Only the 30-step trial reaches step 25.
    let file = sweep_file(&quill, "", "[sweep]\n\"train.max_steps\" = [20, 30]\n");
    let artifacts = quill.artifacts();
    let output = quill
        .command(&[
            "sweep",
            "--config",
            &file,
            "--name",
            "oom",
            "--artifacts",
            artifacts.to_str().unwrap(),
        ])
        .env("QUILL_FAIL_ALLOCATION_AT_STEP", "25")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let dir = artifacts.join("oom");
    let e = events(&dir);
    assert_eq!(
        (count(&e, "finished"), count(&e, "failed")),
        (1, 1),
        "{e:#?}"
    );
    let failed = e.iter().find(|x| x["event"] == "failed").unwrap();
    assert!(
        failed["error"].as_str().unwrap().contains("memory"),
        "{failed}"
    );
}
