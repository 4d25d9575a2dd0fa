//! Trains real (tiny) models with the `quill-cpu` binary and checks what a user gets.

use crate::common::{Quill, ok};
use serde_json::Value;

fn summary(quill: &Quill, run: &str) -> Value {
    let text = std::fs::read_to_string(quill.artifacts().join(run).join("summary.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn tiny_config_trains_learns_and_generates() {
    let quill = Quill::new();
    let out = ok(quill.train("tiny.toml", "tiny", &[]));
    assert!(out.contains("done: best val loss"), "{out}");
    // Piped output gets progress lines with the numbers, not a dashboard.
    assert!(out.contains("epoch 4/4 step 200/200 | loss"), "{out}");

    let run = quill.artifacts().join("tiny");
    for file in [
        "config.toml",
        "vocab.json",
        "metrics.csv",
        "summary.json",
        "best.mpk",
        "final.mpk",
    ] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    for part in ["model", "optim", "scheduler"] {
        assert!(run.join(format!("checkpoint/{part}-4.mpk")).is_file());
    }

    let summary = summary(&quill, "tiny");
    let best = summary["best_val_loss"].as_f64().unwrap();
    assert!(best < 3.0, "val loss {best}");
    assert_eq!(summary["steps"], 200);
    assert!(summary["params"].as_u64().unwrap() > 50_000);
    assert!(summary["tokens_per_s"].as_f64().unwrap() > 0.0);

    let rows = quill.metrics("tiny");
    assert_eq!(rows.len(), 4);
    assert_eq!(
        rows.iter().map(|r| r[0]).collect::<Vec<_>>(),
        [50.0, 100.0, 150.0, 200.0]
    );
    assert!(rows[3][3] < rows[0][3], "val loss did not fall: {rows:?}");

    let vocab: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("vocab.json")).unwrap()).unwrap();
    let chars: Vec<char> = vocab["chars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().chars().next().unwrap())
        .collect();
    let run_arg = run.to_str().unwrap();
    let generate = |seed: &str, temperature: &str| {
        ok(quill.run(&[
            "generate",
            "--run",
            run_arg,
            "--prompt",
            "O Romeo",
            "--max-new-tokens",
            "80",
            "--seed",
            seed,
            "--temperature",
            temperature,
        ]))
    };
    let text = generate("7", "0.8");
    let continuation = text
        .strip_prefix("O Romeo")
        .expect("the prompt comes first");
    assert_eq!(continuation.trim_end_matches('\n').chars().count(), 80);
    assert!(continuation.chars().all(|c| chars.contains(&c)), "{text:?}");
    // Determinism for a seed; greedy decoding ignores the seed.
    assert_eq!(generate("7", "0.8"), text);
    assert_ne!(generate("8", "0.8"), text);
    assert_eq!(generate("1", "0"), generate("2", "0"));
    assert!(
        ok(quill.run(&[
            "generate",
            "--run",
            run_arg,
            "--weights",
            "final",
            "--max-new-tokens",
            "5"
        ]))
        .len()
            >= 5
    );
}

#[test]
fn resumed_run_matches_an_uninterrupted_one() {
    let quill = Quill::new();
    // The schedule must not depend on max_steps for the two runs to be the same run.
    let fixed = [
        "--set",
        "schedule.decay_steps=200",
        "--set",
        "train.max_steps=200",
    ];
    ok(quill.train("tiny.toml", "straight", &fixed));
    ok(quill.train(
        "tiny.toml",
        "halves",
        &[
            "--set",
            "schedule.decay_steps=200",
            "--set",
            "train.max_steps=100",
        ],
    ));
    assert_eq!(quill.metrics("halves").len(), 2);
    let out = ok(quill.train(
        "tiny.toml",
        "halves",
        &["--resume", "--set", "train.max_steps=200"],
    ));
    assert!(out.contains("resuming"), "{out}");

    let straight = quill.metrics("straight");
    let halves = quill.metrics("halves");
    assert_eq!(straight.len(), 4);
    assert_eq!(halves.len(), 4);
    for (a, b) in straight.iter().zip(&halves) {
        // step, epoch, train loss, val loss and lr agree; timings may not.
        for column in 0..5 {
            assert!(
                (a[column] - b[column]).abs() <= 1e-6 * a[column].abs().max(1.0),
                "{a:?} vs {b:?}"
            );
        }
    }
    assert_eq!(summary(&quill, "halves")["steps"], 200);
}

#[test]
fn data_fetch_copies_and_verifies_a_local_file() {
    let quill = Quill::new();
    let out = quill.dir.path().join("data/tinyshakespeare.txt");
    let shared = crate::common::repo_root().join("../shared/data/tinyshakespeare.txt");
    if shared.exists() {
        let msg = ok(quill.run(&[
            "data",
            "fetch",
            "--from",
            shared.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]));
        assert!(msg.contains("verified"), "{msg}");
        assert_eq!(
            std::fs::read(&out).unwrap(),
            std::fs::read(&shared).unwrap()
        );
        let again = ok(quill.run(&["data", "fetch", "--out", out.to_str().unwrap()]));
        assert!(again.contains("present and verified"), "{again}");
    }
    let bad = quill.dir.path().join("bad.txt");
    std::fs::write(&bad, "not Shakespeare").unwrap();
    let other = quill.dir.path().join("other.txt");
    crate::common::fails_with(
        quill.run(&[
            "data",
            "fetch",
            "--from",
            bad.to_str().unwrap(),
            "--out",
            other.to_str().unwrap(),
        ]),
        "failed verification",
    );
    assert!(!other.exists());
}

#[test]
fn config_show_prints_the_resolved_config() {
    let quill = Quill::new();
    let config = Quill::config("cpu-small.toml");
    let out = ok(quill.run(&[
        "config",
        "show",
        "--config",
        config.to_str().unwrap(),
        "--set",
        "optimizer.lr=3e-4",
    ]));
    assert!(out.contains("lr = 0.0003"), "{out}");
    assert!(out.contains("n_layer = 4"), "{out}");
    assert!(out.contains("[checkpoint]"), "{out}");
}

#[test]
fn bf16_mixed_precision_trains_as_well_as_f32() {
    // f32 weights and optimizer, bf16 matrix products (burn-flex computes bf16 on the CPU).
    let quill = Quill::new();
    ok(quill.train("tiny.toml", "f32", &[]));
    let out = ok(quill.train(
        "tiny.toml",
        "mixed",
        &["--set", "train.precision=bf16-mixed"],
    ));
    assert!(out.contains("done: best val loss"), "{out}");
    let config = std::fs::read_to_string(quill.artifacts().join("mixed/config.toml")).unwrap();
    assert!(config.contains("precision = \"bf16-mixed\""), "{config}");
    let best = |run: &str| summary(&quill, run)["best_val_loss"].as_f64().unwrap();
    let (f32_best, mixed_best) = (best("f32"), best("mixed"));
    assert!(
        (mixed_best - f32_best).abs() <= 0.03,
        "bf16-mixed {mixed_best} vs f32 {f32_best}"
    );
    // bf16 products do change the numbers: this is not the f32 run again.
    assert_ne!(mixed_best, f32_best);
}

#[test]
fn a_directory_of_text_files_trains_as_their_concatenation() {
    // The corpus cut at line ends into three files (named so that path order is text order),
    // one of them in a subdirectory, and a hidden file that must not be read.
    let quill = Quill::new();
    let text = std::fs::read_to_string(&quill.corpus).unwrap();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let third = lines.len() / 3;
    let dir = quill.dir.path().join("books");
    std::fs::create_dir_all(dir.join("2-more")).unwrap();
    std::fs::write(dir.join("1.txt"), lines[..third].concat()).unwrap();
    std::fs::write(dir.join("2-more/a.txt"), lines[third..2 * third].concat()).unwrap();
    std::fs::write(dir.join("3.txt"), lines[2 * third..].concat()).unwrap();
    std::fs::write(dir.join(".notes"), "not part of the corpus").unwrap();

    let fast = crate::common::QUICK;
    ok(quill.train("tiny.toml", "file", &fast));
    let from_dir = format!("data.path={}", dir.display());
    ok(quill.train(
        "tiny.toml",
        "dir",
        &[&fast[..], &["--set", &from_dir]].concat(),
    ));
    // Same text, same windows: the same losses (time and speed columns aside).
    let losses = |run: &str| -> Vec<(f64, f64)> {
        quill
            .metrics(run)
            .iter()
            .map(|row| (row[2], row[3]))
            .collect()
    };
    assert_eq!(losses("dir"), losses("file"));
    let config = std::fs::read_to_string(quill.artifacts().join("dir/config.toml")).unwrap();
    assert!(config.contains("books"), "{config}");
}
