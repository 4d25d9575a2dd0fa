//! Data-parallel training on several devices: here two replicas of the CPU device
//! (`--devices 0,0`), which run burn-train's multi-device strategy as two GPUs would. Adding
//! devices changes speed, not results: the same val losses as one device with the same tokens
//! per step, and a run resumes on another device count.

use crate::common::{Quill, assert_close, fails_with, ok};

/// 100 steps of the tiny config with two micro-batches per step.
const TWO_MICRO_BATCHES: [&str; 4] = [
    "--set",
    "train.grad_accum=2",
    "--set",
    "train.max_steps=100",
];

#[test]
fn two_replicas_give_one_device_s_losses_and_resume_on_either_count() {
    let quill = Quill::new();
    let two = |name: &str, extra: &[&str]| {
        let args = [&TWO_MICRO_BATCHES[..], &["--devices", "0,0"], extra].concat();
        quill.train("tiny.toml", name, &args)
    };
    ok(quill.train("tiny.toml", "one", &TWO_MICRO_BATCHES));
    let out = ok(two("two", &[]));
    assert!(out.contains("training on 2 flex devices"), "{out}");
    let one = quill.val_losses("one");
    assert_eq!(one.len(), 2);
    assert_close(&quill.val_losses("two"), &one, 1e-4);

    // Stopped at step 100's checkpoint write, resumed on two devices and on one.
    for (name, resume_on) in [("again-two", "0,0"), ("again-one", "0")] {
        let stopped = quill
            .train_command(
                "tiny.toml",
                name,
                &[&TWO_MICRO_BATCHES[..], &["--devices", "0,0"]].concat(),
            )
            .env("QUILL_DISK_FULL_WRITING", "optim-2")
            .output()
            .unwrap();
        assert_eq!(stopped.status.code(), Some(1));
        let resumed = ok(quill.train("tiny.toml", name, &["--resume", "--devices", resume_on]));
        assert!(resumed.contains("resuming"), "{resumed}");
        assert_close(&quill.val_losses(name), &one, 1e-4);
    }
}

#[test]
fn micro_batches_that_do_not_share_out_are_refused() {
    let quill = Quill::new();
    fails_with(
        quill.train("tiny.toml", "odd", &["--devices", "0,0"]),
        "invalid value for `train.grad_accum`: 1 micro-batches per step cannot be shared out among 2 devices",
    );
    assert!(!quill.artifacts().join("odd").exists());
    fails_with(
        quill.train("tiny.toml", "bad", &["--devices", "0,x"]),
        "invalid value for `train.devices`",
    );
    fails_with(
        quill.train(
            "tiny.toml",
            "missing",
            &[&TWO_MICRO_BATCHES[..], &["--devices", "0,1"]].concat(),
        ),
        "the CPU backends have one device, 0",
    );
}

#[test]
fn bench_reports_the_throughput_of_each_device_count() {
    let quill = Quill::new();
    let extra = [
        "--set",
        "train.grad_accum=2",
        "--steps",
        "4",
        "--warmup",
        "1",
        "--generate-tokens",
        "10",
        "--devices",
        "0,0",
    ];
    let out = ok(quill.on_corpus(&["bench"], "tiny.toml", &extra));
    // The training's progress goes to stderr: stdout is the one JSON line.
    assert_eq!(out.lines().count(), 1, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let scaling = report["scaling"].as_array().expect("a scaling array");
    let counts: Vec<u64> = scaling
        .iter()
        .map(|r| r["devices"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [1, 2]);
    assert!(
        scaling
            .iter()
            .all(|r| r["tokens_per_s"].as_f64().unwrap() > 0.0),
        "{report}"
    );
    assert_eq!(scaling[0]["speedup"].as_f64(), Some(1.0));
}
