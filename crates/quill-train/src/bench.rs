//! Timing training steps outside the learner, for `bench`: the same step (forward, backward,
//! global clipping, AdamW) the learner runs, with a device sync after each so that timings of
//! asynchronous GPU backends are real.

use std::sync::Arc;
use std::time::Instant;

use burn::data::dataloader::DataLoader;
use burn::optim::GradientsAccumulator;
use burn::tensor::backend::AutodiffBackend;
use burn::train::TrainStep;
use quill_data::{TrainingPosition, WindowLoader};
use quill_model::Gpt;

use crate::config::RunConfig;
use crate::optimizer::MatrixDecayAdamW;
use crate::step::Trainee;

/// Milliseconds of each timed optimizer step, after `warmup` untimed ones.
pub fn time_train_steps<B: AutodiffBackend>(
    config: &RunConfig,
    train_tokens: Arc<[u32]>,
    vocab_size: usize,
    warmup: usize,
    steps: usize,
    device: &B::Device,
) -> Vec<f64> {
    let t = &config.train;
    B::seed(device, t.seed);
    let mut trainee = Trainee::detached(
        Gpt::<B>::new(&config.model, vocab_size, device),
        config.optimizer.grad_clip,
        t.grad_accum,
    );
    let mut optimizer = MatrixDecayAdamW::init::<B, Trainee<B>>(&config.optimizer);
    let loader = WindowLoader::<B>::training(
        train_tokens,
        config.model.block_size,
        t.batch_size,
        (warmup + steps) * t.grad_accum,
        t.seed,
        TrainingPosition::default(),
        device.clone(),
    );
    let mut batches = loader.iter();
    let mut times = Vec::with_capacity(steps);
    for step in 0..warmup + steps {
        let started = Instant::now();
        let mut accumulator = GradientsAccumulator::new();
        for _ in 0..t.grad_accum {
            let batch = batches
                .next()
                .expect("the loader holds every step's batches");
            let output = TrainStep::step(&trainee, batch);
            accumulator.accumulate(&trainee, output.grads);
        }
        trainee = trainee.optimize(&mut optimizer, config.optimizer.lr, accumulator.grads());
        B::sync(device).expect("the device finishes its work");
        if step >= warmup {
            times.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    times
}

/// nanoGPT's estimate of training FLOPs per token: `6N + 12·L·H·Q·T`, where N counts the
/// parameters without the learned position table (as nanoGPT's `get_num_params`).
pub fn flops_per_token(config: &RunConfig, params: usize) -> f64 {
    let m = &config.model;
    let positions = match m.positional {
        quill_model::Positional::Learned => m.block_size * m.n_embd,
        quill_model::Positional::Sinusoidal => 0,
    };
    let n = (params - positions) as f64;
    6.0 * n + 12.0 * (m.n_layer * m.n_head * m.head_dim() * m.block_size) as f64
}

/// The median of `values` (which it sorts).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};

    fn tiny(n_embd: usize, grad_accum: usize) -> RunConfig {
        let mut config = RunConfig::default();
        config.model = quill_model::ModelConfig {
            n_layer: 1,
            n_head: 2,
            n_embd,
            block_size: 8,
            ..config.model
        };
        config.train.batch_size = 2;
        config.train.grad_accum = grad_accum;
        config
    }

    #[test]
    fn medians_and_flops() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        let config = tiny(4, 1);
        // 100 parameters of which 32 are the position table: 6 * 68 + 12 * 1 * 2 * 2 * 8.
        assert_eq!(flops_per_token(&config, 100), 6.0 * 68.0 + 384.0);
    }

    #[test]
    fn times_the_requested_steps() {
        let config = tiny(8, 2);
        let tokens: Arc<[u32]> = (0..200u32).map(|i| i % 7).collect::<Vec<_>>().into();
        let times =
            time_train_steps::<Autodiff<NdArray>>(&config, tokens, 7, 1, 3, &Default::default());
        assert_eq!(times.len(), 3);
        assert!(times.iter().all(|&t| t > 0.0));
    }
}
