//! Sweeps with the `quill-cpu` binary: run directories, summaries, plots, skipping finished
//! runs, and a failing run that does not stop the others.

use crate::common::{Quill, ok, stderr, stdout};

fn sweep_file(quill: &Quill, sweep: &str) -> String {
    let base = Quill::config("tiny.toml");
    let text = format!(
        "base = {:?}\n[set]\n\"data.path\" = {:?}\n\"train.max_steps\" = 20\n\"train.eval_interval\" = 10\n\"train.eval_batches\" = 2\n[sweep]\n{sweep}",
        base.to_str().unwrap(),
        quill.corpus.to_str().unwrap()
    );
    let path = quill.dir.path().join("tiny-sweep.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn assert_plot(stem: &std::path::Path) {
    let png = std::fs::read(stem.with_extension("png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(png.len() > 10_000, "{} bytes", png.len());
    let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
    assert!(
        svg.contains("<svg") && (svg.contains("polyline") || svg.contains("<path")),
        "{stem:?}"
    );
}

#[test]
fn a_grid_sweep_trains_reports_plots_and_skips_finished_runs() {
    let quill = Quill::new();
    let file = sweep_file(
        &quill,
        "\"optimizer.lr\" = [3e-3, 1e-3]\n\"model.dropout\" = [0.0, 0.1]\n",
    );
    let artifacts = quill.artifacts();
    let args = [
        "sweep",
        "--config",
        &file,
        "--name",
        "grid",
        "--artifacts",
        artifacts.to_str().unwrap(),
    ];

    let dry = ok(quill.run(&[&args[..], &["--dry-run"]].concat()));
    assert!(
        dry.contains("4 runs") && dry.contains("lr=0.003_dropout=0.1"),
        "{dry}"
    );
    assert!(!artifacts.join("grid").exists());

    let out = ok(quill.run(&args));
    let dir = artifacts.join("grid");
    let names = [
        "lr=0.003_dropout=0.0",
        "lr=0.003_dropout=0.1",
        "lr=0.001_dropout=0.0",
        "lr=0.001_dropout=0.1",
    ];
    for name in names {
        let run = dir.join(name);
        for file in ["config.toml", "summary.json", "metrics.csv", "best.mpk"] {
            assert!(run.join(file).is_file(), "{name}/{file} missing\n{out}");
        }
        assert_plot(&run.join("loss"));
        let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
        assert!(config.contains("max_steps = 20"), "{config}");
    }
    assert_plot(&dir.join("val_loss"));

    let csv = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "run,optimizer.lr,model.dropout,best_val_loss,final_val_loss,steps,wall_s,tokens_per_s,status"
        )
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 4);
    let losses: Vec<f64> = rows.iter().map(|r| r[3].parse().unwrap()).collect();
    assert!(
        losses.windows(2).all(|w| w[0] <= w[1]),
        "not sorted: {losses:?}"
    );
    assert!(rows.iter().all(|r| r[5] == "20" && r[8] == "finished"));
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert_eq!(md.lines().count(), 6, "{md}");

    // A second invocation trains nothing.
    let summary = dir.join(names[0]).join("summary.json");
    let before = std::fs::metadata(&summary).unwrap().modified().unwrap();
    let again = ok(quill.run(&args));
    assert_eq!(
        again.matches("finished earlier, skipped").count(),
        4,
        "{again}"
    );
    assert_eq!(
        std::fs::metadata(&summary).unwrap().modified().unwrap(),
        before
    );

    // A run interrupted after its first epoch (no summary, no second checkpoint) resumes.
    let interrupted = dir.join(names[2]);
    std::fs::remove_file(interrupted.join("summary.json")).unwrap();
    for part in ["model", "optim", "scheduler"] {
        std::fs::remove_file(interrupted.join(format!("checkpoint/{part}-2.mpk"))).unwrap();
    }
    let resumed = ok(quill.run(&args));
    assert!(
        resumed.contains(&format!("[3/4] {}: resuming", names[2])),
        "{resumed}"
    );
    assert_eq!(
        resumed.matches("finished earlier, skipped").count(),
        3,
        "{resumed}"
    );
    assert!(interrupted.join("summary.json").is_file());

    // `report` rebuilds the same files on demand, also for one run.
    std::fs::remove_file(dir.join("summary.md")).unwrap();
    ok(quill.run(&["report", dir.to_str().unwrap(), "--log-y"]));
    assert!(dir.join("summary.md").is_file());
    let one = dir.join(names[1]);
    ok(quill.run(&["report", one.to_str().unwrap()]));
    assert!(one.join("summary.csv").is_file());
}

#[test]
fn an_invalid_value_fails_its_run_only() {
    let quill = Quill::new();
    let file = sweep_file(&quill, "\"model.dropout\" = [1.5, 0.0]\n");
    let artifacts = quill.artifacts();
    let output = quill.run(&[
        "sweep",
        "--config",
        &file,
        "--name",
        "bad",
        "--artifacts",
        artifacts.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output).trim(),
        "error: 1 of 2 runs failed (see summary.md)"
    );
    let out = stdout(&output);
    assert!(out.contains("[1/2] dropout=1.5: failed: "), "{out}");
    assert!(out.contains("invalid value for `model.dropout`"), "{out}");

    let dir = artifacts.join("bad");
    assert!(
        dir.join("dropout=0.0/summary.json").is_file(),
        "the second run still trained"
    );
    assert!(dir.join("dropout=1.5/failed.json").is_file());
    let csv = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert!(
        rows[0].starts_with("dropout=0.0,0.0,") && rows[0].ends_with(",finished"),
        "{csv}"
    );
    assert!(
        rows[1].starts_with("dropout=1.5,1.5,") && rows[1].contains("failed: "),
        "{csv}"
    );
}
