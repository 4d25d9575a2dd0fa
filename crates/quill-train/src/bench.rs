//! Timing training steps outside the learner, for `bench`: the same step (forward, backward,
//! global clipping, AdamW) the learner runs. GPU backends queue work asynchronously, so the
//! timed steps run back to back, as in training, and the device is waited for only at the end
//! of each group of steps: a sync after every step would leave the GPU idle while the host
//! queues the next one, which training does not do.

use std::time::Instant;

use burn::data::dataloader::DataLoader;
use burn::optim::GradientsAccumulator;
use burn::tensor::backend::AutodiffBackend;
use burn::train::TrainStep;
use quill_data::{Tokens, TrainingPosition, WindowLoader, Windows};
use quill_model::{Gpt, Kernels};

use crate::config::RunConfig;
use crate::muon::ModelOptimizer;
use crate::step::{Trained, Trainee};

/// Timed groups of steps, for a median that resists a noisy machine.
const GROUPS: usize = 5;

/// What [`time_train_steps`] measured.
#[derive(Debug, Clone)]
pub struct StepTimes {
    /// Seconds of the first step, device work included: on a GPU mostly kernel compilation
    /// and autotuning (none when the kernel cache is warm).
    pub first_step_s: f64,
    /// Seconds of all untimed steps, the first included.
    pub warmup_s: f64,
    /// Milliseconds per step of each timed group of steps.
    pub ms_per_step: Vec<f64>,
}

/// Runs `warmup` untimed optimizer steps, then `steps` timed ones in up to five groups.
pub fn time_train_steps<B: AutodiffBackend>(
    config: &RunConfig,
    train_tokens: Tokens,
    vocab_size: usize,
    warmup: usize,
    steps: usize,
    kernels: Kernels,
    device: &B::Device,
) -> StepTimes {
    let t = &config.train;
    B::seed(device, t.seed);
    let mut trainee = Trainee::detached(
        Gpt::<B>::new(&config.model, vocab_size, device)
            .with_compute(config.train.precision.compute(kernels)),
        config.optimizer.grad_clip,
        t.grad_accum,
    );
    let mut optimizer = ModelOptimizer::<Trained<B>, B>::init(&config.optimizer, kernels);
    let windows = Windows {
        tokens: train_tokens,
        block_size: config.model.block_size,
        batch_size: t.batch_size,
        batches: (warmup + steps) * t.grad_accum,
        seed: t.seed,
    };
    let loader = WindowLoader::<B>::training(windows, TrainingPosition::default(), device.clone());
    let mut batches = loader.iter();
    let mut step = |trainee: Trained<B>| {
        let mut accumulator = GradientsAccumulator::new();
        for _ in 0..t.grad_accum {
            let batch = batches
                .next()
                .expect("the loader holds every step's batches");
            let output = TrainStep::step(&trainee, batch);
            accumulator.accumulate(&trainee, output.grads);
        }
        trainee.optimize(&mut optimizer, config.optimizer.lr, accumulator.grads())
    };
    let sync = || B::sync(device).expect("the device finishes its work");

    let started = Instant::now();
    let mut first_step_s = 0.0;
    for i in 0..warmup {
        trainee = step(trainee);
        if i == 0 {
            sync();
            first_step_s = started.elapsed().as_secs_f64();
        }
    }
    sync();
    let warmup_s = started.elapsed().as_secs_f64();

    let groups = GROUPS.min(steps).max(1);
    let mut ms_per_step = Vec::with_capacity(groups);
    for group in 0..groups {
        let size = steps / groups + usize::from(group < steps % groups);
        let started = Instant::now();
        for _ in 0..size {
            trainee = step(trainee);
        }
        sync();
        ms_per_step.push(started.elapsed().as_secs_f64() * 1e3 / size.max(1) as f64);
    }
    StepTimes {
        first_step_s,
        warmup_s,
        ms_per_step,
    }
}

/// nanoGPT's estimate of training FLOPs per token: `6N + 12·L·H·Q·T`, where N counts the
/// parameters without the learned position table (as nanoGPT's `get_num_params`).
pub fn flops_per_token(config: &RunConfig, params: usize) -> f64 {
    let m = &config.model;
    let positions = match m.positional {
        quill_model::Positional::Learned => m.block_size * m.n_embd,
        quill_model::Positional::Sinusoidal | quill_model::Positional::Rotary => 0,
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
        let tokens: Tokens = (0..200u32).map(|i| i % 7).collect::<Vec<_>>().into();
        let times = time_train_steps::<Autodiff<NdArray>>(
            &config,
            tokens,
            7,
            1,
            3,
            Kernels::QUILL,
            &Default::default(),
        );
        assert_eq!(times.ms_per_step.len(), 3);
        assert!(times.ms_per_step.iter().all(|&t| t > 0.0));
        assert!(times.first_step_s > 0.0 && times.warmup_s >= times.first_step_s);
    }
}
