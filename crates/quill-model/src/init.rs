//! nanoGPT's (GPT-2's) initialization of the model's layers, in one place for every module.

use burn::module::{Initializer, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;

use crate::config::ModelConfig;

/// Standard deviation of nanoGPT's (GPT-2's) normal initialization.
pub const INIT_STD: f64 = 0.02;

/// N(0, std²); all zeros for `std = 0`.
pub fn normal(std: f64) -> Initializer {
    match std == 0.0 {
        true => Initializer::Zeros,
        false => Initializer::Normal { mean: 0.0, std },
    }
}

/// A linear layer with nanoGPT's init: weights N(0, 0.02), biases zero (or none).
pub fn normal_init<B: Backend>(
    linear: LinearConfig,
    config: &ModelConfig,
    device: &B::Device,
) -> Linear<B> {
    with_std(linear, INIT_STD, config, device)
}

/// A linear layer that writes into the residual stream: GPT-2 scales its init by
/// `1/sqrt(2 * n_layer)` so the stream's variance does not grow with depth.
pub fn residual_init<B: Backend>(
    linear: LinearConfig,
    config: &ModelConfig,
    device: &B::Device,
) -> Linear<B> {
    let std = match config.zero_init_proj {
        // modded-nanogpt: every block starts as the identity, and learns its way out.
        true => 0.0,
        false => INIT_STD / ((2 * config.n_layer) as f64).sqrt(),
    };
    with_std(linear, std, config, device)
}

fn with_std<B: Backend>(
    linear: LinearConfig,
    std: f64,
    config: &ModelConfig,
    device: &B::Device,
) -> Linear<B> {
    let d_output = linear.d_output;
    let mut layer = linear
        .with_bias(config.bias)
        .with_initializer(normal(std))
        .init(device);
    // burn would draw the bias from the weight's initializer; GPT-2 starts biases at zero.
    if layer.bias.is_some() {
        layer.bias = Some(Param::from_tensor(Tensor::zeros([d_output], device)));
    }
    layer
}

/// A norm over the residual stream: gain 1, bias 0 (or none). RMS norms are held in the same
/// module (their gain is `gamma`), so both kinds have the same parameters and names.
pub fn layer_norm<B: Backend>(config: &ModelConfig, device: &B::Device) -> LayerNorm<B> {
    LayerNormConfig::new(config.n_embd)
        .with_bias(config.bias)
        .with_epsilon(LAYER_NORM_EPSILON)
        .init(device)
}

/// The ε of every layer norm (PyTorch's and burn's default).
pub const LAYER_NORM_EPSILON: f64 = 1e-5;
