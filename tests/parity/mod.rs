//! The same model on two backends computes the same thing: weights saved from one and loaded
//! into the other, one batch, logits and loss, then ten identical AdamW steps.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::record::DefaultRecorder;
use burn::tensor::backend::AutodiffBackend;
use burn::train::TrainStep;
use quill_data::TokenBatch;
use quill_model::{Gpt, Kernels, ModelConfig};
use quill_train::config::OptimizerConfig;
use quill_train::optimizer::MatrixDecayAdamW;
use quill_train::step::{Trained, Trainee};

/// What the comparison measured.
#[derive(Debug)]
pub struct Parity {
    /// max |a - b| / max |a| over the logits.
    pub logits_relative: f64,
    pub loss_before: (f64, f64),
    pub loss_after_10_steps: (f64, f64),
}

const VOCAB: usize = 24;

fn config() -> ModelConfig {
    ModelConfig {
        n_layer: 2,
        n_head: 2,
        n_embd: 32,
        block_size: 16,
        dropout: 0.0,
        bias: true,
        ..Default::default()
    }
}

fn batch<B: Backend>(device: &B::Device) -> TokenBatch<B> {
    let text: Vec<i32> = (0..4 * 17)
        .map(|i| ((i * 7 + i / 3) % VOCAB) as i32)
        .collect();
    let rows = |shift: usize| -> Vec<i32> {
        (0..4)
            .flat_map(|b| text[b * 17 + shift..b * 17 + shift + 16].to_vec())
            .collect()
    };
    TokenBatch {
        inputs: Tensor::from_data(TensorData::new(rows(0), [4, 16]), device),
        targets: Tensor::from_data(TensorData::new(rows(1), [4, 16]), device),
    }
}

fn loss<B: Backend>(gpt: &Gpt<B>, device: &B::Device) -> f64 {
    let batch = batch::<B>(device);
    gpt.forward_loss(batch.inputs, batch.targets)
        .0
        .into_scalar()
        .elem::<f64>()
}

fn train_10_steps<B: AutodiffBackend>(gpt: Gpt<B>, device: &B::Device) -> f64 {
    let optimizer_config = OptimizerConfig::default();
    let mut optimizer = MatrixDecayAdamW::init::<B, Trained<B>>(&optimizer_config, gpt.kernels());
    let mut trainee = Trainee::detached(gpt, 1.0, 1);
    for _ in 0..10 {
        let output = TrainStep::step(&trainee, batch::<B>(device));
        let grads: GradientsParams = output.grads;
        trainee = trainee.optimize(&mut optimizer, 1e-3, grads);
    }
    loss(&trainee.gpt, device)
}

/// Runs the comparison of backend `D` against the reference backend `R`, each model (and its
/// optimizer) on quill's kernels where its backend has them.
pub fn compare<R: AutodiffBackend, D: AutodiffBackend>(
    reference_device: &R::Device,
    device: &D::Device,
) -> Parity {
    compare_kernels::<R, D>(reference_device, Kernels::QUILL, device, Kernels::QUILL)
}

/// [`compare`] with the reference model on `reference_kernels` and the other on `kernels`
/// (two models of one backend with different kernels, side by side in one process).
pub fn compare_kernels<R: AutodiffBackend, D: AutodiffBackend>(
    reference_device: &R::Device,
    reference_kernels: Kernels,
    device: &D::Device,
    kernels: Kernels,
) -> Parity {
    R::seed(reference_device, 7);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("weights");
    Gpt::<R>::new(&config(), VOCAB, reference_device)
        .save_file(&file, &DefaultRecorder::new())
        .unwrap();
    // Both sides load the file: burn initializes parameters lazily, and a clone of a model
    // whose parameters were never read would draw its own.
    let reference = Gpt::<R>::new(&config(), VOCAB, reference_device)
        .load_file(&file, &DefaultRecorder::new(), reference_device)
        .unwrap()
        .with_kernels(reference_kernels);
    let other = Gpt::<D>::new(&config(), VOCAB, device)
        .load_file(&file, &DefaultRecorder::new(), device)
        .unwrap()
        .with_kernels(kernels);

    let logits =
        |values: Tensor<_, 3>| values.into_data().convert::<f32>().to_vec::<f32>().unwrap();
    let a = logits(reference.forward(batch::<R>(reference_device).inputs));
    let b = {
        let values = other.forward(batch::<D>(device).inputs);
        values.into_data().convert::<f32>().to_vec::<f32>().unwrap()
    };
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
    let worst = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs())) as f64;
    Parity {
        logits_relative: worst / scale,
        loss_before: (loss(&reference, reference_device), loss(&other, device)),
        loss_after_10_steps: (
            train_10_steps(reference, reference_device),
            train_10_steps(other, device),
        ),
    }
}

/// The tolerances of issue 3 for f32.
pub fn assert_f32_parity(parity: &Parity) {
    assert_parity(parity, 1e-4, 1e-5, 1e-3);
}

/// `parity` within a relative `logits` difference and absolute loss differences `before` and
/// `after` ten steps, and the steps trained.
pub fn assert_parity(parity: &Parity, logits: f64, before: f64, after: f64) {
    eprintln!("{parity:?}");
    assert!(parity.logits_relative <= logits, "{parity:?}");
    let (a, b) = parity.loss_before;
    assert!((a - b).abs() <= before, "{parity:?}");
    let (a, b) = parity.loss_after_10_steps;
    assert!((a - b).abs() <= after, "{parity:?}");
    // The steps did train (the same batch ten times): the comparison is not of two no-ops.
    assert!(
        parity.loss_after_10_steps.0 < parity.loss_before.0 - 0.05,
        "{parity:?}"
    );
}
