//! Bad input gets one clear line on stderr, exit status 1, no panic, and nothing overwritten.

use crate::common::{Quill, fails_with, ok};

fn write(quill: &Quill, name: &str, contents: &[u8]) -> String {
    let path = quill.dir.path().join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn config_errors_name_the_file_key_and_value() {
    let quill = Quill::new();
    let malformed = write(
        &quill,
        "malformed.toml",
        b"[model]\nn_layer = 4\nn_head = = 2\n",
    );
    let unknown = write(
        &quill,
        "unknown.toml",
        b"[optimizer]\nlearning_rate = 1e-3\n",
    );
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--config", "nope.toml"],
            "nope.toml: cannot read config",
        ),
        (
            vec!["--config", &malformed],
            "malformed.toml: invalid TOML at line 3, column 10",
        ),
        (
            vec!["--config", &unknown],
            "unknown key `optimizer.learning_rate`",
        ),
        (
            vec!["--config", &unknown, "--set", "optimizer.lr=1e-3"],
            "unknown.toml",
        ),
    ];
    for (args, expected) in cases {
        let mut full = vec!["config", "show"];
        full.extend(args);
        fails_with(quill.run(&full), expected);
    }
    let tiny = Quill::config("tiny.toml");
    let tiny = tiny.to_str().unwrap();
    for (set, expected) in [
        ("optimizer.lr=0", "invalid value for `optimizer.lr`"),
        // Rotary positions rotate pairs: 2 heads of 33 cannot.
        (
            "model.positional=rotary --set model.n_embd=66",
            "invalid value for `model.positional`",
        ),
        ("model.dropout=1.5", "invalid value for `model.dropout`"),
        (
            "model.n_head=3",
            "model.n_embd`: 64 is not divisible by model.n_head = 3",
        ),
        ("train.batch_size=0", "invalid value for `train.batch_size`"),
        (
            "model.n_layer=two",
            "`model.n_layer` must be an integer, got string \"two\"",
        ),
        (
            "model.positional=alibi",
            "`model.positional`: unknown variant `alibi`",
        ),
        ("model.norm=batch", "`model.norm`: unknown variant `batch`"),
        (
            "model.qk_norm=rms",
            "`model.qk_norm` must be a boolean, got string \"rms\"",
        ),
        (
            "model.activation=tanh",
            "`model.activation`: unknown variant `tanh`",
        ),
        (
            "model.logit_softcap=-3",
            "invalid value for `model.logit_softcap`",
        ),
        (
            "optimizer.kind=sgd",
            "`optimizer.kind`: unknown variant `sgd`",
        ),
        (
            "optimizer.muon.ns_steps=0",
            "invalid value for `optimizer.muon.ns_steps`",
        ),
        (
            "optimizer.muon.momentum=1",
            "invalid value for `optimizer.muon.momentum`",
        ),
        ("optimizer.muon.lrr=1", "did you mean `optimizer.muon.lr`?"),
        (
            "schedule.cooldown_fraction=1.5",
            "invalid value for `schedule.cooldown_fraction`",
        ),
        (
            "schedule.kind=linear",
            "`schedule.kind`: unknown variant `linear`",
        ),
        ("optimizer.lrr=1", "did you mean `optimizer.lr`?"),
        ("optimizer.lr", "expected section.key=value"),
    ] {
        let mut args = vec!["config", "show", "--config", tiny];
        for assignment in set.split(" --set ") {
            args.extend(["--set", assignment]);
        }
        fails_with(quill.run(&args), expected);
    }
}

#[test]
fn corpus_errors_are_reported_before_training() {
    let quill = Quill::new();
    let empty = write(&quill, "empty.txt", b"");
    let binary = write(&quill, "binary.txt", b"abc\xff\xfe\x00");
    let short = write(
        &quill,
        "short.txt",
        "To be, or not to be.\n".repeat(10).as_bytes(),
    );
    for (path, expected) in [
        ("missing.txt".to_owned(), "missing.txt does not exist"),
        (empty, "empty.txt is empty"),
        (binary, "binary.txt is not valid UTF-8"),
        (
            short,
            "the val split has 21 tokens, but block_size 32 needs at least 33",
        ),
    ] {
        let set = format!("data.path={path}");
        fails_with(
            quill.train("tiny.toml", "bad-corpus", &["--set", &set]),
            expected,
        );
        // Nothing was left behind for a run that never started, not even its lock.
        assert!(!quill.artifacts().join("bad-corpus").exists());
    }
}

#[test]
fn existing_runs_are_never_overwritten_by_accident() {
    let quill = Quill::new();
    let fast = crate::common::QUICK;
    ok(quill.train("tiny.toml", "mine", &fast));
    let summary = quill.artifacts().join("mine/summary.json");
    let before = std::fs::read(&summary).unwrap();

    fails_with(
        quill.train("tiny.toml", "mine", &fast),
        "already exists; use --resume",
    );
    assert_eq!(std::fs::read(&summary).unwrap(), before);

    fails_with(
        quill.train("tiny.toml", "mine", &["--resume"]),
        "already finished its 50 steps",
    );
    fails_with(
        quill.train("tiny.toml", "nothing-here", &["--resume"]),
        "is not a run directory",
    );

    // A run directory without checkpoints (e.g. killed before its first epoch ended).
    let empty_run = quill.artifacts().join("no-checkpoint");
    std::fs::create_dir_all(&empty_run).unwrap();
    std::fs::copy(
        quill.artifacts().join("mine/config.toml"),
        empty_run.join("config.toml"),
    )
    .unwrap();
    fails_with(
        quill.train("tiny.toml", "no-checkpoint", &["--resume"]),
        "has no complete checkpoint",
    );

    // A run that cannot fit in memory is refused before anything changes: `--force` does not
    // remove the old run. One zero too many: terabytes of activations, or of weights.
    fails_with(
        quill.train(
            "tiny.toml",
            "mine",
            &["--force", "--set", "train.batch_size=100000000"],
        ),
        "lower train.batch_size (and raise train.grad_accum to keep the tokens per step)",
    );
    fails_with(
        quill.train("tiny.toml", "deep", &["--set", "model.n_layer=10000000"]),
        "make the model smaller (model.n_layer, model.n_embd)",
    );
    assert_eq!(std::fs::read(&summary).unwrap(), before);
    assert!(!quill.artifacts().join("deep").exists());
    // `config show` states the estimate, as a comment that keeps the output a config.
    let tiny = Quill::config("tiny.toml");
    let shown = quill.run(&["config", "show", "--config", tiny.to_str().unwrap()]);
    let text = crate::common::stdout(&shown);
    assert!(text.contains("\n# memory to train: about "), "{text}");

    // --force starts over.
    ok(quill.train("tiny.toml", "mine", &[&fast[..], &["--force"]].concat()));
}

#[test]
fn a_disk_without_room_for_the_run_s_checkpoints_is_refused_before_anything_is_written() {
    let quill = Quill::new();
    let fast = crate::common::QUICK;
    let nearly_full = |name: &str, free: &str, extra: &[&str]| {
        quill
            .train_command("tiny.toml", name, &[&fast[..], extra].concat())
            .env("QUILL_FREE_DISK_BYTES", free)
            .output()
            .unwrap()
    };
    fails_with(
        nearly_full("full", "5000000", &[]),
        "has 4.8 MiB free, and this run needs",
    );
    assert!(!quill.artifacts().join("full").exists());
    // What `--force` deletes counts as free: the run it replaces makes the room.
    ok(quill.train("tiny.toml", "again", &fast));
    ok(nearly_full("again", "5000000", &["--force"]));
}

#[test]
fn negative_and_malformed_numbers_in_flags_are_one_line() {
    let quill = Quill::new();
    let flags: [(&[&str], &str); 10] = [
        (&["--device"], "--device <N>"),
        (&["generate", "--max-new-tokens"], "--max-new-tokens"),
        (&["generate", "--top-k"], "--top-k"),
        (&["generate", "--seed"], "--seed"),
        (&["generate", "--num-samples"], "--num-samples"),
        (&["bench", "--steps"], "--steps"),
        (&["bench", "--warmup"], "--warmup"),
        (&["bench", "--threads"], "--threads"),
        (&["bench", "--generate-tokens"], "--generate-tokens"),
        (&["eval", "--batches"], "--batches"),
    ];
    for (args, flag) in flags {
        for (value, expected) in [
            ("-1", "must be 0 or more"),
            ("2.5", "must be a whole number"),
        ] {
            let mut args = args.to_vec();
            args.push(value);
            let out = quill.run(&args);
            let err = crate::common::stderr(&out);
            // Exit status 2, as for any command-line mistake (clap's convention).
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
            assert!(
                err.starts_with(&format!("error: invalid value '{value}' for '{flag}"))
                    && err.trim_end().ends_with(expected),
                "{args:?}: {err}"
            );
        }
    }
    let typo = quill.run(&["train", "--confg", "x.toml"]);
    let err = crate::common::stderr(&typo);
    assert_eq!(
        err.trim_end(),
        "error: unexpected argument '--confg' found; tip: a similar argument exists: '--config'"
    );
}

#[test]
fn generate_errors_name_the_problem() {
    let quill = Quill::new();
    let fast = crate::common::QUICK;
    ok(quill.train("tiny.toml", "run", &fast));
    let run = quill.artifacts().join("run");
    let run_arg = run.to_str().unwrap();

    fails_with(
        quill.run(&["generate", "--run", run_arg, "--prompt", "O Romeo€§"]),
        "characters not in the vocabulary: '§', '€'",
    );
    fails_with(
        quill.run(&["generate", "--run", "/nonexistent/run"]),
        "is not a run directory",
    );
    std::fs::remove_file(run.join("best.mpk")).unwrap();
    fails_with(
        quill.run(&["generate", "--run", run_arg]),
        "has no best weights",
    );
    std::fs::write(run.join("final.mpk"), b"definitely not weights").unwrap();
    fails_with(
        quill.run(&["generate", "--run", run_arg, "--weights", "final"]),
        "cannot load weights",
    );
}

#[test]
fn checkpoints_and_weights_that_do_not_fit_are_named() {
    let quill = Quill::new();
    ok(quill.train("tiny.toml", "run", &crate::common::QUICK));
    let run = quill.artifacts().join("run");
    let config_before = std::fs::read(run.join("config.toml")).unwrap();
    let metrics_before = std::fs::read(run.join("metrics.csv")).unwrap();
    let resume = |extra: &[&str]| {
        let mut args = vec!["--resume", "--set", "train.max_steps=100"];
        args.extend_from_slice(extra);
        quill.train("tiny.toml", "run", &args)
    };

    // A model of another shape than the checkpoint's.
    fails_with(
        resume(&["--set", "model.n_layer=3"]),
        "model-1.mpk: the weights have 2 layers, the config has model.n_layer = 3",
    );
    fails_with(
        resume(&["--set", "model.n_embd=32"]),
        "`token_embedding.weight` is",
    );

    // Truncated or corrupted checkpoint files.
    let optim = run.join("checkpoint/optim-1.mpk");
    let bytes = std::fs::read(&optim).unwrap();
    std::fs::write(&optim, &bytes[..bytes.len() / 2]).unwrap();
    fails_with(resume(&[]), "optim-1.mpk: it is truncated or corrupted");
    std::fs::write(run.join("checkpoint/model-1.mpk"), b"\x93garbage").unwrap();
    fails_with(resume(&[]), "model-1.mpk: it is truncated or corrupted");

    // None of those attempts changed the run.
    assert_eq!(
        std::fs::read(run.join("config.toml")).unwrap(),
        config_before
    );
    assert_eq!(
        std::fs::read(run.join("metrics.csv")).unwrap(),
        metrics_before
    );

    // Weights that do not match the run's vocabulary, and truncated weights.
    let run_arg = run.to_str().unwrap();
    let vocab_file = run.join("vocab.json");
    let vocab: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&vocab_file).unwrap()).unwrap();
    let mut chars = vocab["chars"].as_array().unwrap().clone();
    chars.pop();
    std::fs::write(
        &vocab_file,
        serde_json::json!({ "chars": chars }).to_string(),
    )
    .unwrap();
    fails_with(
        quill.run(&["generate", "--run", run_arg, "--prompt", "O"]),
        "`token_embedding.weight` is",
    );
    std::fs::write(&vocab_file, vocab.to_string()).unwrap();
    let best = run.join("best.mpk");
    let bytes = std::fs::read(&best).unwrap();
    std::fs::write(&best, &bytes[..bytes.len() - 100]).unwrap();
    fails_with(
        quill.run(&["generate", "--run", run_arg, "--prompt", "O"]),
        "best.mpk: it is truncated or corrupted",
    );
}

#[test]
fn a_name_is_a_folder_name_and_numbers_are_finite() {
    let quill = Quill::new();
    let outside = quill.dir.path().join("outside");
    let escape = format!("../{}", outside.file_name().unwrap().to_str().unwrap());
    let absolute = outside.to_str().unwrap().to_owned();
    let depth = crate::common::repo_root().join("configs/sweeps/depth.toml");
    for (command, name, expected) in [
        ("train", escape.as_str(), "it starts with `.`"),
        ("train", absolute.as_str(), "it holds `/`"),
        ("train", "..", "it starts with `.`"),
        ("train", "a:b", "it holds `:`"),
        ("sweep", "x/../../y", "it holds `/`"),
        ("train", "NUL", "`NUL` is a device name on Windows"),
    ] {
        let out = match command {
            "train" => quill.train("tiny.toml", name, &[]),
            _ => quill.run(&[
                "sweep",
                "--config",
                depth.to_str().unwrap(),
                "--name",
                name,
                "--dry-run",
            ]),
        };
        let err = crate::common::stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(
            err.starts_with(&format!(
                "error: invalid value '{name}' for '--name <NAME>'"
            )) && err.contains(expected)
                && err.contains("one folder name under --artifacts"),
            "{name}: {err}"
        );
    }
    assert!(!outside.exists());
    assert!(!quill.artifacts().exists());
    for set in [
        "optimizer.lr=inf",
        "schedule.min_lr=nan",
        "optimizer.grad_clip=-inf",
    ] {
        let key = set.split('=').next().unwrap();
        fails_with(
            quill.train("tiny.toml", "finite", &["--set", set]),
            &format!("invalid value for `{key}`: "),
        );
    }
    assert!(!quill.artifacts().join("finite").exists());
}
