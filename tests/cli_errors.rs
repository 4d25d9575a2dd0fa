//! Bad input gets one clear line on stderr, exit status 1, no panic, and nothing overwritten.

mod common;

use common::{Quill, fails_with, ok};

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
        ("model.positional=rotary", "unknown variant `rotary`"),
        ("optimizer.lrr=1", "did you mean `optimizer.lr`?"),
        ("optimizer.lr", "expected section.key=value"),
    ] {
        fails_with(
            quill.run(&["config", "show", "--config", tiny, "--set", set]),
            expected,
        );
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
            "the val split has 21 characters, but block_size 32 needs at least 33",
        ),
    ] {
        let set = format!("data.path={path}");
        fails_with(
            quill.train("tiny.toml", "bad-corpus", &["--set", &set]),
            expected,
        );
        // Nothing was left behind for a run that never started.
        assert!(!quill.artifacts().join("bad-corpus/metrics.csv").exists());
    }
}

#[test]
fn existing_runs_are_never_overwritten_by_accident() {
    let quill = Quill::new();
    let fast = common::QUICK;
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

    // --force starts over.
    ok(quill.train("tiny.toml", "mine", &[&fast[..], &["--force"]].concat()));
}

#[test]
fn generate_errors_name_the_problem() {
    let quill = Quill::new();
    let fast = common::QUICK;
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
