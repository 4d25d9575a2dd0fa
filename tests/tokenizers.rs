//! Sub-word tokenizers end to end: a trained BPE run goes through every command, prepared token
//! files are used and refreshed, and bad tokenizer settings get one line.

use crate::common::{QUICK, Quill, fails_with, ok, stderr};

#[test]
fn a_bpe_run_trains_generates_evaluates_exports_and_imports() {
    let quill = Quill::new();
    let bpe = [
        "--set",
        "data.tokenizer=bpe",
        "--set",
        "data.vocab_size=300",
    ];
    ok(quill.train("tiny.toml", "bpe", &[&QUICK[..], &bpe[..]].concat()));
    let run = quill.artifacts().join("bpe");
    let run_arg = run.to_str().unwrap();
    // The standard tokenizer.json beside the weights, named by vocab.json.
    let vocab = std::fs::read_to_string(run.join("vocab.json")).unwrap();
    assert!(vocab.contains("\"bpe\""), "{vocab}");
    assert!(run.join("tokenizer.json").exists());
    let rows = quill.metrics("bpe");
    // Learned something: below the loss of a uniform guess over 300 tokens (5.70 nats).
    assert!(rows[0][3] < (300f64).ln() - 0.5, "{rows:?}");

    let text = ok(quill.run(&[
        "generate",
        "--run",
        run_arg,
        "--prompt",
        "ROMEO:",
        "--max-new-tokens",
        "40",
    ]));
    assert!(text.starts_with("ROMEO:") && text.len() > 20, "{text:?}");
    assert!(!text.contains('\u{FFFD}'), "{text:?}");

    let eval = ok(quill.run(&["eval", "--run", run_arg, "--batches", "2"]));
    assert!(
        eval.contains("bits/byte") && eval.contains("tokenizer bpe (300 tokens)"),
        "{eval}"
    );
    let loss = |out: &str| -> f64 { out.split_whitespace().nth(2).unwrap().parse().unwrap() };

    let file = quill.dir.path().join("bpe.safetensors");
    let file_arg = file.to_str().unwrap();
    ok(quill.run(&["export", "--run", run_arg, "--out", file_arg]));
    let imported = quill.dir.path().join("imported");
    let imported_arg = imported.to_str().unwrap();
    let corpus = quill.corpus.to_str().unwrap();
    ok(quill.run(&[
        "import",
        "--safetensors",
        file_arg,
        "--data",
        corpus,
        "--out",
        imported_arg,
    ]));
    // The imported run encodes the corpus with the same tokenizer: the same loss.
    let toml = std::fs::read_to_string(imported.join("config.toml")).unwrap();
    assert!(toml.contains("tokenizer = \"bpe\""), "{toml}");
    // The imported config has the default batch of 64 windows: 2 of them are the same 128
    // windows as 8 batches of tiny's 16.
    let eval = ok(quill.run(&["eval", "--run", run_arg, "--batches", "8"]));
    let again = ok(quill.run(&["eval", "--run", imported_arg, "--batches", "2"]));
    assert!(
        (loss(&again) - loss(&eval)).abs() < 1e-4,
        "{again} vs {eval}"
    );

    // Fine-tuning keeps the tokenizer.
    let init = format!("init.from={run_arg}");
    fails_with(
        quill.train(
            "tiny.toml",
            "chars",
            &[&QUICK[..], &["--set", &init]].concat(),
        ),
        "must keep its tokenizer",
    );
}

#[test]
fn gpt2_tokens_train_and_the_corpus_is_prepared_once() {
    let quill = Quill::new();
    let gpt2 = ["--set", "data.tokenizer=gpt2"];
    let out = quill.train("tiny.toml", "gpt2", &[&QUICK[..], &gpt2[..]].concat());
    ok(out);
    let prepared = {
        let mut dir = quill.corpus.clone().into_os_string();
        dir.push(".prepared");
        std::path::PathBuf::from(dir).join("gpt2-val0.1")
    };
    let meta = std::fs::read_to_string(prepared.join("meta.json")).unwrap();
    assert!(meta.contains("\"vocab_size\": 50257"), "{meta}");
    // GPT-2's 50257 ids fit u16, as in nanoGPT's train.bin.
    assert!(meta.contains("\"bytes_per_token\": 2"), "{meta}");
    let before = std::fs::metadata(prepared.join("train.bin"))
        .unwrap()
        .modified()
        .unwrap();
    let prepare = |quill: &Quill| {
        let gpt2 = ["--set", "data.tokenizer=gpt2"];
        ok(quill.on_corpus(&["data", "prepare"], "tiny.toml", &gpt2))
    };
    assert!(prepare(&quill).starts_with("up to date:"));
    let after = std::fs::metadata(prepared.join("train.bin"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
    // An edited corpus is prepared again.
    let mut text = std::fs::read_to_string(&quill.corpus).unwrap();
    text.push_str("A new line.\n");
    std::fs::write(&quill.corpus, text).unwrap();
    assert!(prepare(&quill).starts_with("prepared "));
}

#[test]
fn tokenizer_settings_and_corpus_folders_are_checked() {
    let quill = Quill::new();
    let tiny = Quill::config("tiny.toml");
    let tiny = tiny.to_str().unwrap();
    for (sets, expected) in [
        (
            vec!["data.tokenizer=sentencepiece"],
            "unknown variant `sentencepiece`",
        ),
        (vec!["data.tokenizer=bpe"], "needs `data.vocab_size`"),
        (
            vec!["data.tokenizer=bpe", "data.vocab_size=100"],
            "`data.vocab_size`: 100 is outside 257..=1048576",
        ),
        (
            vec!["data.tokenizer=bpe", "data.vocab_size=2000000"],
            "`data.vocab_size`: 2000000 is outside",
        ),
        (
            vec!["data.vocab_size=300"],
            "only for `data.tokenizer = \"bpe\"`",
        ),
    ] {
        let mut args = vec!["config", "show", "--config", tiny];
        for set in &sets {
            args.extend(["--set", set]);
        }
        fails_with(quill.run(&args), expected);
    }

    let books = quill.dir.path().join("books");
    std::fs::create_dir_all(books.join(".git")).unwrap();
    std::fs::write(books.join(".git/HEAD"), "ref").unwrap();
    let data = format!("data.path={}", books.display());
    let prepare = |quill: &Quill| quill.run(&["data", "prepare", "--config", tiny, "--set", &data]);
    fails_with(prepare(&quill), "is empty");
    std::fs::write(books.join("a.txt"), "Some text.\n".repeat(100)).unwrap();
    std::fs::write(books.join("cover.png"), b"\x89PNG\r\n\x1a\n\x00\x00\xff").unwrap();
    fails_with(prepare(&quill), "cover.png is not valid UTF-8");
    std::fs::remove_file(books.join("cover.png")).unwrap();
    let out = prepare(&quill);
    assert!(
        stderr(&out).is_empty(),
        "a small corpus is prepared quietly"
    );
    assert!(ok(out).starts_with("prepared "));
}

#[test]
fn sweeps_and_bench_take_any_tokenizer() {
    let quill = Quill::new();
    // A sweep over the size of a trained BPE: each run trains its own.
    let sweep = format!(
        "base = {:?}\n[set]\n\"data.path\" = {:?}\n\"data.tokenizer\" = \"bpe\"\n\"train.max_steps\" = 10\n\"train.eval_interval\" = 10\n\"train.eval_batches\" = 2\n[sweep]\n\"data.vocab_size\" = [260, 300]\n",
        Quill::config("tiny.toml").to_str().unwrap(),
        quill.corpus.to_str().unwrap()
    );
    let file = quill.dir.path().join("bpe-sweep.toml");
    std::fs::write(&file, sweep).unwrap();
    let artifacts = quill.artifacts();
    ok(quill.run(&[
        "sweep",
        "--config",
        file.to_str().unwrap(),
        "--name",
        "sizes",
        "--artifacts",
        artifacts.to_str().unwrap(),
    ]));
    let summary = std::fs::read_to_string(artifacts.join("sizes/summary.csv")).unwrap();
    assert_eq!(summary.matches(",finished").count(), 2, "{summary}");
    for size in [260, 300] {
        // Trial folders are named by their values and an id.
        let prefix = format!("vocab_size={size}-");
        let run = std::fs::read_dir(artifacts.join("sizes"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&prefix)
            })
            .unwrap();
        let eval = ok(quill.run(&["eval", "--run", run.to_str().unwrap(), "--batches", "1"]));
        assert!(
            eval.contains(&format!("tokenizer bpe ({size} tokens)")),
            "{eval}"
        );
    }

    // bench on GPT-2's tokens: training and generation.
    let extra = [
        "--set",
        "data.tokenizer=gpt2",
        "--steps",
        "2",
        "--warmup",
        "0",
        "--generate-tokens",
        "5",
    ];
    let out = ok(quill.on_corpus(&["bench"], "tiny.toml", &extra));
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(report["tokens_per_s"].as_f64().unwrap() > 0.0, "{report}");
    assert!(
        report["generate_tokens_per_s"].as_f64().unwrap() > 0.0,
        "{report}"
    );
}
