//! The modern recipe's options (rotary positions, SwiGLU, RMS norm, QK-norm, zero-initialized
//! projections, soft-capped logits, Muon, WSD) through every command: a run trains, resumes
//! exactly, exports and imports, generates; a resume with the other optimizer kind is refused.

use crate::common::{Quill, assert_close, fails_with, ok};

/// Every new key on, on configs/tiny.toml (two heads of 32).
const MODERN: [&str; 22] = [
    "--set",
    "model.positional=rotary",
    "--set",
    "model.activation=swiglu",
    "--set",
    "model.norm=rms",
    "--set",
    "model.qk_norm=true",
    "--set",
    "model.zero_init_proj=true",
    "--set",
    "model.logit_softcap=15",
    "--set",
    "optimizer.kind=muon",
    "--set",
    "optimizer.muon.lr=0.02",
    "--set",
    "schedule.kind=wsd",
    "--set",
    "schedule.decay_steps=40",
    "--set",
    "train.eval_interval=20",
];

fn modern(steps: &str) -> Vec<&str> {
    let mut args = MODERN.to_vec();
    args.extend(["--set", steps]);
    args
}

#[test]
fn a_modern_run_trains_resumes_exactly_exports_and_generates() {
    let quill = Quill::new();
    ok(quill.train("tiny.toml", "full", &modern("train.max_steps=40")));
    let full = quill.val_losses("full");
    assert_eq!(full.len(), 2, "{full:?}");
    // It learns: chance is ln 65 = 4.17.
    assert!(full[1] < 3.3 && full[1] < full[0], "{full:?}");
    let config = std::fs::read_to_string(quill.artifacts().join("full/config.toml")).unwrap();
    for key in [
        "positional = \"rotary\"",
        "activation = \"swiglu\"",
        "norm = \"rms\"",
        "qk_norm = true",
        "kind = \"muon\"",
        "[optimizer.muon]",
        "kind = \"wsd\"",
    ] {
        assert!(config.contains(key), "{key} missing from {config}");
    }

    // Half, then the rest: the same losses as one go (Muon's momentum is in the checkpoint).
    ok(quill.train("tiny.toml", "halves", &modern("train.max_steps=20")));
    let resumed = ok(quill.train(
        "tiny.toml",
        "halves",
        &["--resume", "--set", "train.max_steps=40"],
    ));
    assert!(resumed.contains("resuming"), "{resumed}");
    assert_close(&quill.val_losses("halves"), &full, 1e-5);

    // Resumed with the other optimizer: one line naming the key, the run untouched.
    let run = quill.artifacts().join("halves");
    let before = std::fs::read_to_string(run.join("config.toml")).unwrap();
    fails_with(
        quill.train(
            "tiny.toml",
            "halves",
            &[
                "--resume",
                "--set",
                "train.max_steps=60",
                "--set",
                "optimizer.kind=adamw",
            ],
        ),
        "it holds the state of `optimizer.kind = \"muon\"`, and the config says \"adamw\"",
    );
    assert_eq!(
        std::fs::read_to_string(run.join("config.toml")).unwrap(),
        before
    );
    assert_eq!(quill.val_losses("halves").len(), 2);

    // Export and import carry the keys: the same model, sampling the same text.
    let full_run = quill.artifacts().join("full");
    let full_arg = full_run.to_str().unwrap();
    // Generation: cached decoding with rotary positions past the prompt.
    let sample = |run: &str| {
        ok(quill.run(&[
            "generate",
            "--run",
            run,
            "--prompt",
            "ROMEO:",
            "--max-new-tokens",
            "40",
            "--seed",
            "7",
        ]))
    };
    let text = sample(full_arg);
    assert!(text.starts_with("ROMEO:"), "{text}");
    assert!(text.trim_end().chars().count() >= 40, "{text}");
    let file = quill.dir.path().join("modern.safetensors");
    let file_arg = file.to_str().unwrap();
    ok(quill.run(&["export", "--run", full_arg, "--out", file_arg]));
    let back = quill.artifacts().join("back");
    let back_arg = back.to_str().unwrap();
    let data = quill.corpus.to_str().unwrap();
    ok(quill.run(&[
        "import",
        "--safetensors",
        file_arg,
        "--data",
        data,
        "--out",
        back_arg,
    ]));
    assert_eq!(sample(back_arg), text);
    let config = std::fs::read_to_string(back.join("config.toml")).unwrap();
    assert!(config.contains("activation = \"swiglu\""), "{config}");

    // Fine-tuning from it keeps the architecture.
    ok(quill.train(
        "tiny.toml",
        "tuned",
        &[
            &modern("train.max_steps=10")[..],
            &["--init-from", full_arg, "--set", "train.eval_interval=10"],
        ]
        .concat(),
    ));
}
