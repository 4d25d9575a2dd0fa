//! The choice of kernels is a value the model and its optimizer carry (quill-backend's
//! `Kernels`), not a switch of the process: two models of one backend, one on quill's CPU
//! kernels and one on burn's operations, side by side in this test process.

use burn::backend::{Autodiff, Flex, NdArray};
use quill_model::Kernels;

use crate::common::{Quill, ok, stderr};
use crate::parity;

#[test]
fn quills_cpu_kernels_and_burns_operations_train_alike_side_by_side() {
    let device = Default::default();
    // The same weights and batch, then ten AdamW steps each (quill-kernels' fused step
    // against burn's).
    let side_by_side = parity::compare_kernels::<Autodiff<Flex>, Autodiff<Flex>>(
        &device,
        Kernels::BURN,
        &device,
        Kernels::QUILL,
    );
    parity::assert_f32_parity(&side_by_side);
    // Not one code path twice: quill's kernels round differently from burn's operations.
    assert!(
        side_by_side.logits_relative > 0.0,
        "the two models computed bit-identical logits: {side_by_side:?}"
    );

    // And burn-flex on quill's kernels against the reference backend.
    let against_ndarray =
        parity::compare::<Autodiff<NdArray>, Autodiff<Flex>>(&Default::default(), &device);
    parity::assert_f32_parity(&against_ndarray);
}

#[test]
fn the_cpu_runner_reads_its_kernels_from_the_environment_once() {
    let quill = Quill::new();
    // burn's operations: named in the first line, and training works as before.
    let out = quill
        .train_command("tiny.toml", "burn-ops", &["--set", "train.max_steps=50"])
        .env("QUILL_CPU_KERNELS", "burn")
        .output()
        .unwrap();
    let printed = ok(out);
    assert!(
        printed.contains("training on flex+burn-kernels:"),
        "{printed}"
    );

    // A value that is neither is one line, exit 2, before anything is written.
    let out = quill
        .train_command("tiny.toml", "apex", &[])
        .env("QUILL_CPU_KERNELS", "apex")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(
        err.trim(),
        "error: QUILL_CPU_KERNELS=apex is not one of: fused, burn"
    );
    assert!(!quill.artifacts().join("apex").exists());
}
