//! Sampling from a trained run with the `quill-cpu` binary: samples, the key/value cache,
//! the interactive loop and the generation benchmark.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::{Quill, fails_with, ok};

const SEPARATOR: &str = "---------------";

fn trained() -> (Quill, String) {
    let quill = Quill::new();
    ok(quill.train(
        "tiny.toml",
        "run",
        &[
            "--set",
            "train.max_steps=100",
            "--set",
            "train.eval_interval=100",
        ],
    ));
    let run = quill.artifacts().join("run").to_str().unwrap().to_owned();
    (quill, run)
}

#[test]
fn samples_are_separated_reproducible_and_cache_free_text_matches() {
    let (quill, run) = trained();
    let generate = |extra: &[&str]| {
        let mut args = vec![
            "generate",
            "--run",
            &run,
            "--prompt",
            "O Romeo",
            "--max-new-tokens",
            "100",
        ];
        args.extend_from_slice(extra);
        ok(quill.run(&args))
    };
    let three = generate(&[
        "--num-samples",
        "3",
        "--seed",
        "10",
        "--top-k",
        "20",
        "--top-p",
        "0.95",
    ]);
    let samples: Vec<&str> = three.split(&format!("{SEPARATOR}\n")).collect();
    assert_eq!(samples.len(), 3, "{three}");
    assert!(samples.iter().all(|s| s.starts_with("O Romeo")));
    // Sample i is the single sample with seed + i.
    let second = generate(&["--seed", "11", "--top-k", "20", "--top-p", "0.95"]);
    assert_eq!(second, samples[1]);
    assert_ne!(samples[0], samples[1]);

    // 100 new characters pass tiny's block_size (32): the window slides, and the cache gives
    // the same text as re-running the whole window.
    for seed in ["1", "2"] {
        assert_eq!(
            generate(&["--seed", seed]),
            generate(&["--seed", seed, "--no-cache"])
        );
    }
    // top-k 1 is greedy.
    assert_eq!(
        generate(&["--top-k", "1", "--seed", "3"]),
        generate(&["--temperature", "0"])
    );

    fails_with(
        quill.run(&["generate", "--run", &run, "--top-p", "1.5"]),
        "--top-p 1.5 must be in (0, 1]",
    );
    fails_with(
        quill.run(&["generate", "--run", &run, "--temperature=-1"]),
        "must be 0 (greedy) or positive",
    );
    // A negative number is a value, not a flag: our range check answers, not clap.
    fails_with(
        quill.run(&["generate", "--run", &run, "--temperature", "-1"]),
        "--temperature -1 must be 0 (greedy) or positive",
    );
    fails_with(
        quill.run(&["generate", "--run", &run, "--top-k", "0"]),
        "--top-k 0",
    );
}

#[test]
fn interactive_mode_continues_each_line_until_end_of_input() {
    // The scratch directory must outlive the child process.
    let (_quill, run) = trained();
    let mut child = Command::new(env!("CARGO_BIN_EXE_quill-cpu"))
        .args([
            "generate",
            "--run",
            &run,
            "--interactive",
            "--max-new-tokens",
            "30",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all("JULIET:\nROMEO€\nO Romeo\n".as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let out = String::from_utf8(output.stdout).unwrap();
    let turns: Vec<&str> = out.split("> ").filter(|t| !t.trim().is_empty()).collect();
    assert_eq!(turns.len(), 3, "{out:?}");
    assert!(
        turns[0].starts_with("JULIET:") && turns[0].trim_end().chars().count() == 37,
        "{out:?}"
    );
    assert!(
        turns[1].starts_with("error: characters not in the vocabulary: '€'"),
        "{out:?}"
    );
    assert!(turns[2].starts_with("O Romeo"), "{out:?}");
}

#[test]
fn bench_reports_training_and_sampling_speed() {
    let quill = Quill::new();
    let config = Quill::config("tiny.toml");
    let data = format!("data.path={}", quill.corpus.display());
    let bench = |extra: &[&str]| {
        let mut args = vec![
            "bench",
            "--config",
            config.to_str().unwrap(),
            "--set",
            &data,
            "--generate-tokens",
            "60",
        ];
        args.extend_from_slice(extra);
        let out = ok(quill.run(&args));
        assert_eq!(out.lines().count(), 1, "{out}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    let full = bench(&[
        "--steps",
        "3",
        "--warmup",
        "1",
        "--threads",
        "2",
        "--peak-flops",
        "1e12",
    ]);
    for key in [
        "ms_per_step",
        "tokens_per_s",
        "flops_per_token",
        "flops_per_s",
        "mfu",
        "peak_rss_mb",
        "generate_tokens_per_s",
        "generate_tokens_per_s_uncached",
        "first_step_s",
        "warmup_s",
        "startup_s",
    ] {
        assert!(full[key].as_f64().unwrap() > 0.0, "{key} in {full}");
    }
    assert_eq!(full["threads"], 2);
    let tokens_per_step = 16.0 * 32.0;
    let implied = tokens_per_step / (full["ms_per_step"].as_f64().unwrap() / 1e3);
    assert!((implied - full["tokens_per_s"].as_f64().unwrap()).abs() < 1e-6 * implied);

    let only = bench(&["--generate-only"]);
    assert!(only.get("ms_per_step").is_none(), "{only}");
    assert!(only["generate_tokens_per_s"].as_f64().unwrap() > 0.0);
}
