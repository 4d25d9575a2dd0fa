//! A whole run in this process, where its reads of the device can be counted.

use quill_model::ModelConfig;

use super::*;
use crate::metrics::host_reads;
use crate::metrics_csv;
use burn::backend::{Autodiff, NdArray};

/// A short run on a small made-up corpus, in this process, so its reads can be counted.
fn small_run(dir: &std::path::Path, steps: usize) -> TrainOptions {
    let corpus = dir.join("corpus.txt");
    let text: String = (0..4000)
        .map(|i| ["to be ", "or not ", "that is ", "the question\n"][i % 4])
        .collect();
    std::fs::write(&corpus, text).unwrap();
    let mut config = RunConfig::default();
    config.model = ModelConfig {
        n_layer: 1,
        n_head: 2,
        n_embd: 16,
        block_size: 8,
        dropout: 0.0,
        ..config.model
    };
    config.data.path = corpus;
    config.train.max_steps = steps;
    config.train.eval_interval = steps / 2;
    config.train.eval_batches = 2;
    config.train.batch_size = 4;
    config.schedule.warmup_steps = 5;
    config.schedule.decay_steps = steps;
    TrainOptions {
        run: RunDir::new(dir.join("run")),
        config,
        resume: false,
        dashboard: false,
        progress_to_stderr: false,
        cluster: None,
        sweep_trial: false,
        kernels: Kernels::QUILL,
    }
}

#[test]
fn training_reads_the_device_a_few_times_per_epoch_not_every_step() {
    // Before: three reads per step (the divergence check, burn-train's LossMetric and the
    // perplexity of the training loss). Now: the training loss at the epoch's first and
    // last batch (and every 5 s), and the divergence check every CHECK_EVERY steps.
    let dir = tempfile::tempdir().unwrap();
    let steps = 200;
    let before = host_reads();
    let summary = train::<Autodiff<NdArray>>(small_run(dir.path(), steps), Default::default())
        .expect("the run trains");
    let reads = host_reads() - before;
    println!(
        "{reads} host reads in {steps} steps (before: {})",
        3 * steps
    );
    assert_eq!(summary.steps, steps);
    let epochs = 2;
    let checks = steps / crate::step::CHECK_EVERY;
    assert!(reads >= epochs, "{reads} reads");
    // A slow machine may add a read per 5 s; allow a few.
    assert!(
        reads <= 2 * epochs + checks + 4,
        "{reads} reads in {steps} steps"
    );

    // The epoch's training loss still reaches metrics.csv.
    let rows = metrics_csv::read_rows(&dir.path().join("run/metrics.csv")).unwrap();
    assert_eq!(rows.len(), epochs);
    assert!(
        rows.iter()
            .all(|r| r.train_loss.is_finite() && r.train_loss > 0.0)
    );
}
