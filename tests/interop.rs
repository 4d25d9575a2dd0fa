//! Fine-tuning from another run, and runs made by `import` (nanoGPT checkpoints, exported
//! safetensors files) used by every command: generate, eval, bench, train --init-from.

use crate::common::{Quill, fails_with, ok, repo_root};

fn fixture(name: &str) -> String {
    repo_root()
        .join("tests/fixtures/nanogpt")
        .join(name)
        .to_str()
        .unwrap()
        .to_owned()
}

/// The loss `eval` printed: `val loss 2.4657 nats/token, ...`.
fn eval_loss(out: &str) -> f64 {
    out.split_whitespace().nth(2).unwrap().parse().unwrap()
}

#[test]
fn init_from_starts_where_the_source_run_ended() {
    let quill = Quill::new();
    ok(quill.train("tiny.toml", "source", &[]));
    let source = quill.artifacts().join("source");
    let source_arg = source.to_str().unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(source.join("summary.json")).unwrap())
            .unwrap();
    let best = summary["best_val_loss"].as_f64().unwrap();
    // eval scores the same windows as the run's validation: the same number.
    let out = ok(quill.run(&["eval", "--run", source_arg]));
    assert!(
        out.starts_with("val loss ") && out.contains("bits/byte"),
        "{out}"
    );
    assert!((eval_loss(&out) - best).abs() < 1e-4, "{out} vs {best}");

    let short = [
        "--set",
        "train.max_steps=50",
        "--set",
        "train.eval_interval=50",
        "--set",
        "optimizer.lr=3e-4",
    ];
    let tuned = [
        &["--init-from", source_arg, "--weights", "best"],
        &short[..],
    ]
    .concat();
    ok(quill.train("tiny.toml", "tuned", &tuned));
    ok(quill.train("tiny.toml", "fresh", &short));
    let tuned_val = quill.metrics("tuned")[0][3];
    let fresh_val = quill.metrics("fresh")[0][3];
    assert!(
        (tuned_val - best).abs() < 0.05,
        "{tuned_val} vs source {best}"
    );
    assert!(fresh_val > best + 0.2, "fresh {fresh_val} vs source {best}");
    let config = std::fs::read_to_string(quill.artifacts().join("tuned/config.toml")).unwrap();
    assert!(
        config.contains(&format!(
            "[init]\nfrom = \"{source_arg}\"\nweights = \"best\""
        )),
        "{config}"
    );

    // A model of another shape, or a corpus with characters the source never saw.
    fails_with(
        quill.train(
            "tiny.toml",
            "wider",
            &["--init-from", source_arg, "--set", "model.n_layer=3"],
        ),
        "model.n_layer is 2 there but 3 here",
    );
    let odd = quill.dir.path().join("odd.txt");
    std::fs::write(&odd, "Ünïcode the source never saw. ".repeat(200)).unwrap();
    let data = format!("data.path={}", odd.display());
    fails_with(
        quill.train(
            "tiny.toml",
            "odd",
            &["--init-from", source_arg, "--set", &data],
        ),
        "has characters its vocabulary lacks: 'Ü', 'ï'",
    );
    fails_with(
        quill.train("tiny.toml", "none", &["--init-from", "/no/such/run"]),
        "--init-from /no/such/run: not a run directory",
    );
    let shipped = Quill::config("finetune-example.toml");
    let out = ok(quill.run(&["config", "show", "--config", shipped.to_str().unwrap()]));
    assert!(out.contains("from = \"artifacts/cpu-small\""), "{out}");
}

#[test]
fn imported_runs_work_with_every_command_and_round_trip() {
    let quill = Quill::new();
    let imported = quill.artifacts().join("nanogpt");
    let imported_arg = imported.to_str().unwrap();
    let corpus = fixture("corpus.txt");
    let out = ok(quill.run(&[
        "import",
        "--nanogpt",
        &fixture("tiny_bias_compiled.pt"),
        "--data",
        &corpus,
        "--out",
        imported_arg,
    ]));
    assert!(
        out.contains("2 layers, 2 heads, 16 wide, block 16, tokenizer char (52 tokens)"),
        "{out}"
    );
    fails_with(
        quill.run(&[
            "import",
            "--nanogpt",
            &fixture("tiny_nobias.pt"),
            "--data",
            &corpus,
            "--out",
            imported_arg,
        ]),
        "already exists",
    );

    let text = ok(quill.run(&[
        "generate",
        "--run",
        imported_arg,
        "--prompt",
        "First",
        "--max-new-tokens",
        "30",
    ]));
    assert!(
        text.starts_with("First") && text.trim_end().chars().count() >= 30,
        "{text}"
    );
    let scored = ok(quill.run(&["eval", "--run", imported_arg, "--batches", "5"]));
    // Trained for 30 steps in PyTorch: well below chance (ln 52 = 3.95), far from good.
    let loss = eval_loss(&scored);
    assert!(loss > 2.0 && loss < 3.9, "{scored}");
    let config = imported.join("config.toml");
    let bench = ok(quill.run(&[
        "bench",
        "--config",
        config.to_str().unwrap(),
        "--steps",
        "2",
        "--warmup",
        "0",
        "--generate-tokens",
        "10",
    ]));
    assert!(bench.contains("\"tokens_per_s\""), "{bench}");
    ok(quill.run(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--init-from",
        imported_arg,
        "--name",
        "tuned",
        "--artifacts",
        quill.artifacts().to_str().unwrap(),
        "--set",
        "train.max_steps=10",
        "--set",
        "train.eval_interval=10",
        "--set",
        "train.batch_size=4",
        "--set",
        "train.eval_batches=2",
    ]));

    // Export, then import the file: the same model, scored the same.
    let file = quill.dir.path().join("model.safetensors");
    let file_arg = file.to_str().unwrap();
    ok(quill.run(&[
        "export",
        "--run",
        imported_arg,
        "--format",
        "safetensors",
        "--out",
        file_arg,
    ]));
    fails_with(
        quill.run(&["export", "--run", imported_arg, "--out", file_arg]),
        "model.safetensors: already exists",
    );
    let back = quill.artifacts().join("back");
    let back_arg = back.to_str().unwrap();
    ok(quill.run(&[
        "import",
        "--safetensors",
        file_arg,
        "--data",
        &corpus,
        "--out",
        back_arg,
    ]));
    assert_eq!(
        ok(quill.run(&["eval", "--run", back_arg, "--batches", "5"])),
        scored
    );
    std::fs::write(
        quill.dir.path().join("plain.safetensors"),
        b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ",
    )
    .unwrap();
    fails_with(
        quill.run(&[
            "import",
            "--safetensors",
            quill.dir.path().join("plain.safetensors").to_str().unwrap(),
            "--out",
            quill.artifacts().join("plain").to_str().unwrap(),
        ]),
        "has no `quill.model` metadata",
    );
}

#[test]
fn imported_runs_keep_a_relative_corpus_path_and_can_be_moved() {
    // The run directory records --data as given, so the run and its corpus move together.
    let quill = Quill::new();
    let data_dir = quill.dir.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::copy(fixture("corpus.txt"), data_dir.join("corpus.txt")).unwrap();
    ok(quill.run(&[
        "import",
        "--nanogpt",
        &fixture("tiny_nobias.pt"),
        "--data",
        "data/corpus.txt",
        "--out",
        "imported",
    ]));
    let config = std::fs::read_to_string(quill.dir.path().join("imported/config.toml")).unwrap();
    assert!(config.contains("path = \"data/corpus.txt\""), "{config}");
    fails_with(
        quill.run(&[
            "import",
            "--nanogpt",
            &fixture("tiny_nobias.pt"),
            "--data",
            "data/missing.txt",
            "--out",
            "other",
        ]),
        "--data data/missing.txt",
    );

    // Moved elsewhere with its corpus beside it, the run still evaluates.
    let moved = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(moved.path().join("data")).unwrap();
    std::fs::copy(
        data_dir.join("corpus.txt"),
        moved.path().join("data/corpus.txt"),
    )
    .unwrap();
    // Both scratch directories lie in the same temporary folder, so a rename moves it.
    std::fs::rename(
        quill.dir.path().join("imported"),
        moved.path().join("imported"),
    )
    .unwrap();
    let out = quill
        .command(&["eval", "--run", "imported", "--batches", "2"])
        .current_dir(moved.path())
        .output()
        .unwrap();
    assert!(ok(out).contains("nats/token"));
}

#[test]
fn a_gpt2_bpe_nanogpt_checkpoint_imports_with_gpt2_s_tokenizer() {
    // nanoGPT's GPT-2 runs pad the vocabulary to 50304; the run keeps GPT-2's 50257 tokens.
    let quill = Quill::new();
    let out = ok(quill.run(&[
        "import",
        "--nanogpt",
        &fixture("tiny_gpt2.pt"),
        "--data",
        quill.corpus.to_str().unwrap(),
        "--out",
        "gpt2",
    ]));
    assert!(
        out.contains("1 layers, 2 heads, 4 wide, block 8, tokenizer gpt2 (50257 tokens)"),
        "{out}"
    );
    let config = std::fs::read_to_string(quill.dir.path().join("gpt2/config.toml")).unwrap();
    assert!(config.contains("tokenizer = \"gpt2\""), "{config}");
    let text = ok(quill.run(&[
        "generate",
        "--run",
        "gpt2",
        "--prompt",
        "Hello world",
        "--max-new-tokens",
        "5",
    ]));
    assert!(text.starts_with("Hello world"), "{text}");
    // Untrained: about chance over GPT-2's vocabulary (ln 50257 = 10.8).
    let scored = ok(quill.run(&["eval", "--run", "gpt2", "--batches", "2"]));
    let loss = eval_loss(&scored);
    assert!((loss - 10.8).abs() < 0.5, "{scored}");
    assert!(scored.contains("tokenizer gpt2"), "{scored}");

    // A character-level checkpoint still needs the text that gives its characters.
    fails_with(
        quill.run(&[
            "import",
            "--nanogpt",
            &fixture("tiny_nobias.pt"),
            "--out",
            "chars",
        ]),
        "a character-level checkpoint (52 tokens) needs --data",
    );
}
