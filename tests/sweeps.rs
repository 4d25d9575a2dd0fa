//! Sweeps with the `quill-cpu` binary: trials as child processes, the study that resumes
//! anywhere (a kill, a second process on the same folder), pruning, samplers, reports and
//! `best.toml`, and bad sweep files refused before anything trains.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{Quill, fails_with, ok, stdout};

mod robustness;

/// A sweep file over configs/tiny.toml on this test's corpus: 20-step trials evaluated every
/// 10 steps, with `body` after the `[set]` table's settings.
fn sweep_file(quill: &Quill, top: &str, body: &str) -> String {
    let base = Quill::config("tiny.toml");
    // The body's own `[set]` lines (those before its first table) replace these defaults.
    let own: Vec<&str> = body
        .lines()
        .take_while(|l| !l.starts_with('['))
        .filter_map(|l| l.split_once(" = ").map(|(k, _)| k))
        .collect();
    let defaults: String = [
        ("\"train.max_steps\"", "20"),
        ("\"train.eval_interval\"", "10"),
        ("\"train.eval_batches\"", "2"),
        ("\"schedule.warmup_steps\"", "2"),
    ]
    .iter()
    .filter(|(k, _)| !own.contains(k))
    .map(|(k, v)| format!("{k} = {v}\n"))
    .collect();
    let text = format!(
        "base = {:?}\n{top}\n[set]\n\"data.path\" = {:?}\n{defaults}{body}",
        base.to_str().unwrap(),
        quill.corpus.to_str().unwrap()
    );
    let path = quill.dir.path().join("tiny-sweep.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn sweep(quill: &Quill, file: &str, name: &str, extra: &[&str]) -> Output {
    let artifacts = quill.artifacts();
    let args = [
        &[
            "sweep",
            "--config",
            file,
            "--name",
            name,
            "--artifacts",
            artifacts.to_str().unwrap(),
        ],
        extra,
    ]
    .concat();
    quill.run(&args)
}

fn assert_plot(stem: &Path) {
    let png = std::fs::read(stem.with_extension("png")).unwrap();
    assert_eq!(&png[1..4], b"PNG", "{stem:?}");
    assert!(png.len() > 10_000, "{} bytes", png.len());
    let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
    assert!(svg.contains("<svg"), "{stem:?}");
}

/// The study's events, as JSON values.
fn events(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("study.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn count(events: &[serde_json::Value], kind: &str) -> usize {
    events.iter().filter(|e| e["event"] == kind).count()
}

/// The trial folders of a sweep directory (those with a config.toml), sorted.
fn trials(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("config.toml").exists())
        .collect();
    found.sort();
    found
}

fn best_val_loss(run: &Path) -> f64 {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    json["best_val_loss"].as_f64().unwrap()
}

#[test]
fn a_grid_sweep_trains_reports_and_reruns_nothing_and_best_toml_reproduces_the_best() {
    let quill = Quill::new();
    let file = sweep_file(
        &quill,
        "",
        "[sweep]\n\"optimizer.lr\" = [3e-3, 1e-3]\n\"model.dropout\" = [0.0, 0.1]\n",
    );
    let dry = ok(sweep(&quill, &file, "grid", &["--dry-run"]));
    assert!(
        dry.contains("4 trials") && dry.contains("lr=0.003_dropout=0.1-"),
        "{dry}"
    );
    assert!(
        !quill.artifacts().join("grid").exists(),
        "a dry run writes nothing"
    );

    let out = ok(sweep(&quill, &file, "grid", &[]));
    let dir = quill.artifacts().join("grid");
    let runs = trials(&dir);
    assert_eq!(runs.len(), 4, "{out}");
    for run in &runs {
        for f in ["config.toml", "summary.json", "metrics.csv", "best.mpk"] {
            assert!(run.join(f).is_file(), "{run:?}/{f} missing\n{out}");
        }
    }
    for plot in ["val_loss", "parallel", "params"] {
        assert_plot(&dir.join(plot));
    }
    let csv = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "run,optimizer.lr,model.dropout,best_val_loss,final_val_loss,steps,wall_s,tokens_per_s,status"
        )
    );
    let losses: Vec<f64> = lines
        .map(|l| l.split(',').nth(3).unwrap().parse().unwrap())
        .collect();
    assert_eq!(losses.len(), 4);
    assert!(
        losses.windows(2).all(|w| w[0] <= w[1]),
        "not sorted: {losses:?}"
    );
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(
        md.contains("Parameter importance") && md.contains("best.toml"),
        "{md}"
    );
    let e = events(&dir);
    assert_eq!(
        (
            count(&e, "planned"),
            count(&e, "started"),
            count(&e, "finished")
        ),
        (4, 4, 4)
    );

    // A second invocation trains nothing and touches no trial.
    let stamp = |run: &Path| {
        std::fs::metadata(run.join("summary.json"))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before: Vec<_> = runs.iter().map(|r| stamp(r)).collect();
    ok(sweep(&quill, &file, "grid", &[]));
    assert_eq!(runs.iter().map(|r| stamp(r)).collect::<Vec<_>>(), before);
    assert_eq!(count(&events(&dir), "started"), 4);

    // --status prints the study's table.
    let status = ok(quill.run(&["sweep", "--status", dir.to_str().unwrap()]));
    assert!(
        status.contains("4 trials (4 finished)") && status.contains("best: "),
        "{status}"
    );

    // best.toml trains the best trial again, to the same loss.
    let best = dir.join("best.toml");
    let header = std::fs::read_to_string(&best).unwrap();
    let best_name = header
        .split(": ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let artifacts = quill.artifacts();
    ok(quill.run(&[
        "train",
        "--config",
        best.to_str().unwrap(),
        "--name",
        "again",
        "--artifacts",
        artifacts.to_str().unwrap(),
    ]));
    assert_eq!(
        best_val_loss(&artifacts.join("again")),
        best_val_loss(&dir.join(&best_name))
    );
    // summary.csv keeps 4 decimals.
    assert!((best_val_loss(&dir.join(&best_name)) - losses[0]).abs() < 1e-4);

    // Another --set is another trial (a new id), not the old result.
    ok(sweep(
        &quill,
        &file,
        "grid",
        &["--set", "train.batch_size=8"],
    ));
    assert_eq!(trials(&dir).len(), 8);
}

#[test]
fn dropped_points_are_listed_with_their_reasons_and_never_trained() {
    let quill = Quill::new();
    let file = sweep_file(
        &quill,
        "constraints = [\"model.n_embd / model.n_head >= 32\"]",
        "[sweep]\n\"model.n_head\" = [2, 4]\n\"model.dropout\" = [0.0, 1.5]\n",
    );
    let dry = ok(sweep(&quill, &file, "dropped", &["--dry-run"]));
    assert!(dry.contains("1 trials"), "{dry}");
    assert!(dry.contains("3 points dropped"), "{dry}");
    assert!(dry.contains("model.n_head=4 model.dropout=0.0: constraint `model.n_embd / model.n_head >= 32` fails (model.n_embd=64, model.n_head=4)"), "{dry}");
    assert!(
        dry.contains("model.n_head=2 model.dropout=1.5: ") && dry.contains("dropout"),
        "{dry}"
    );
    ok(sweep(&quill, &file, "dropped", &[]));
    assert_eq!(trials(&quill.artifacts().join("dropped")).len(), 1);
}

#[test]
fn bad_sweep_input_is_one_line_and_changes_nothing() {
    let quill = Quill::new();
    for (top, body, extra, expected) in [
        (
            "",
            "[space]\n\"optimizer.lrr\" = [1e-3]\n",
            &[][..],
            "unknown key `optimizer.lrr` (did you mean `optimizer.lr`?)",
        ),
        (
            "constraints = [\"model.n_embed > 1\"]",
            "[space]\n\"optimizer.lr\" = [1e-3]\n",
            &[],
            "unknown key `model.n_embed`",
        ),
        (
            "constraints = [\"model.n_embd >\"]",
            "[space]\n\"optimizer.lr\" = [1e-3]\n",
            &[],
            "constraints:",
        ),
        (
            "constraints = [\"model.n_embd < 0\"]",
            "[space]\n\"optimizer.lr\" = [1e-3]\n",
            &[],
            "every one of the grid's 1 points is dropped",
        ),
        (
            "pruner = { kind = \"asha\", eta = 1 }",
            "[space]\n\"optimizer.lr\" = [1e-3]\n",
            &[],
            "pruner.eta must be an integer >= 2, got 1",
        ),
        (
            "resources = { workers = 0 }",
            "[space]\n\"optimizer.lr\" = [1e-3]\n",
            &[],
            "resources.workers must be an integer >= 1, got 0",
        ),
        (
            "",
            "[space]\n\"optimizer.lr\" = [1e-3]\n",
            &["--devices", "0,7"],
            "device 7",
        ),
        (
            "",
            "[space]\n\"optimizer.lr\" = [1e-3]\n",
            &["--workers", "0"],
            "--workers: 0",
        ),
        (
            "",
            "[space]\n\"optimizer.lr\" = { uniform = [1e-3, inf] }\n",
            &[],
            "finite numbers",
        ),
    ] {
        let file = sweep_file(&quill, top, body);
        fails_with(sweep(&quill, &file, "bad", extra), expected);
        assert!(
            !quill.artifacts().exists(),
            "{expected}: artifacts/ was written"
        );
    }
    // A study belongs to its sweep file.
    let file = sweep_file(&quill, "", "[space]\n\"optimizer.lr\" = [1e-3]\n");
    ok(sweep(&quill, &file, "mine", &[]));
    let other = quill.dir.path().join("other.toml");
    std::fs::copy(&file, &other).unwrap();
    let study = quill.artifacts().join("mine/study.jsonl");
    let before = std::fs::read(&study).unwrap();
    fails_with(
        sweep(&quill, other.to_str().unwrap(), "mine", &[]),
        "belongs to sweep file",
    );
    assert_eq!(std::fs::read(&study).unwrap(), before);
}

#[test]
fn parallel_trials_train_what_each_would_alone() {
    let quill = Quill::new();
    let file = sweep_file(
        &quill,
        "resources = { workers = 2, threads = 1 }",
        "[sweep]\n\"optimizer.lr\" = [3e-3, 1e-3]\n",
    );
    ok(sweep(&quill, &file, "parallel", &[]));
    let dir = quill.artifacts().join("parallel");
    let runs = trials(&dir);
    assert_eq!(runs.len(), 2);
    let e = events(&dir);
    // Both ran at once: the second started before the first finished.
    let at = |kind: &str, n: usize| {
        e.iter().filter(|x| x["event"] == kind).nth(n).unwrap()["time"]
            .as_f64()
            .unwrap()
    };
    assert!(at("started", 1) < at("finished", 0), "{e:?}");
    // Each trial's losses are those of its config trained alone (one thread, as in the sweep).
    for run in &runs {
        let name = run.file_name().unwrap().to_str().unwrap();
        let config = dir.join(".trials").join(format!("{name}.toml"));
        let artifacts = quill.artifacts();
        let alone = format!("alone-{name}");
        let out = quill
            .command(&[
                "train",
                "--config",
                config.to_str().unwrap(),
                "--name",
                &alone,
                "--artifacts",
                artifacts.to_str().unwrap(),
            ])
            .env("RAYON_NUM_THREADS", "1")
            .output()
            .unwrap();
        ok(out);
        let csv = |p: &Path| -> Vec<String> {
            std::fs::read_to_string(p.join("metrics.csv"))
                .unwrap()
                .lines()
                .map(|l| l.split(',').take(4).collect::<Vec<_>>().join(","))
                .collect()
        };
        assert_eq!(csv(run), csv(&artifacts.join(&alone)), "{name}");
    }
}

#[test]
fn asha_pauses_and_promotes_and_trains_fewer_steps_than_the_grid() {
    let quill = Quill::new();
    let file = sweep_file(
        &quill,
        "pruner = { kind = \"asha\", eta = 3, min_steps = 10 }",
        "\"train.max_steps\" = 90\n[sweep]\n\"optimizer.lr\" = [1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6]\n[derive]\n\"schedule.min_lr\" = \"optimizer.lr / 10\"\n",
    );
    let out = ok(sweep(&quill, &file, "asha", &[]));
    let dir = quill.artifacts().join("asha");
    let e = events(&dir);
    let steps: usize = trials(&dir)
        .iter()
        .map(|r| {
            std::fs::read_to_string(r.join("metrics.csv"))
                .unwrap()
                .lines()
                .count()
                - 1
        })
        .sum::<usize>()
        * 10;
    assert!(count(&e, "pruned") >= 4, "{out}");
    assert!(count(&e, "promoted") >= 1, "{e:#?}");
    assert!(count(&e, "finished") >= 1);
    // The grid would train 9 × 90 steps.
    assert!(
        steps <= 9 * 90 * 6 / 10,
        "{steps} steps of the grid's {}",
        9 * 90
    );
    let csv = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
    assert!(csv.lines().any(|l| l.ends_with(",pruned")), "{csv}");
    let status = ok(quill.run(&["sweep", "--status", dir.to_str().unwrap()]));
    assert!(status.contains("pruned"), "{status}");
}

#[test]
fn tpe_and_sobol_samplers_with_repeats_and_a_budget() {
    let quill = Quill::new();
    let file = sweep_file(
        &quill,
        "sampler = { kind = \"tpe\", seed = 1, n_startup = 2 }\nbudget = { max_trials = 3 }\nrepeats = 2",
        "[space]\n\"optimizer.lr\" = { log_uniform = [1e-4, 1e-2] }\n\"model.n_layer\" = { int = [1, 2] }\n[derive]\n\"schedule.min_lr\" = \"optimizer.lr / 10\"\n",
    );
    let dry = ok(sweep(&quill, &file, "tpe", &["--dry-run"]));
    assert!(dry.contains("then 0 trials proposed by TPE"), "{dry}");
    let out = ok(sweep(&quill, &file, "tpe", &[]));
    let dir = quill.artifacts().join("tpe");
    // Budget of 3 trials: a point with its 2 seeds, then one more.
    assert_eq!(trials(&dir).len(), 3, "{out}");
    for run in trials(&dir) {
        let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
        let lr: f64 = config.lines().find(|l| l.starts_with("lr = ")).unwrap()[5..]
            .parse()
            .unwrap();
        let min_lr: f64 = config.lines().find(|l| l.starts_with("min_lr = ")).unwrap()[9..]
            .parse()
            .unwrap();
        assert!((min_lr - lr / 10.0).abs() < 1e-12, "{config}");
    }
    // A larger budget continues the same study.
    let more = std::fs::read_to_string(&file)
        .unwrap()
        .replace("max_trials = 3", "max_trials = 6");
    std::fs::write(&file, more).unwrap();
    ok(sweep(&quill, &file, "tpe", &[]));
    assert_eq!(trials(&dir).len(), 6);
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(md.contains("mean ± sd") && md.contains("| best |"), "{md}");
}
