//! nanoGPT's (GPT-2's) initialization of the model's layers, in one place for every module.

use burn::module::{Initializer, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use quill_backend::Kernels;

use crate::config::ModelConfig;

/// Standard deviation of nanoGPT's (GPT-2's) normal initialization.
pub const INIT_STD: f64 = 0.02;

pub fn normal(std: f64) -> Initializer {
    Initializer::Normal { mean: 0.0, std }
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
    let std = INIT_STD / ((2 * config.n_layer) as f64).sqrt();
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

/// A layer norm over the residual stream: gain 1, bias 0 (or none).
pub fn layer_norm<B: Backend>(config: &ModelConfig, device: &B::Device) -> LayerNorm<B> {
    LayerNormConfig::new(config.n_embd)
        .with_bias(config.bias)
        .with_epsilon(LAYER_NORM_EPSILON)
        .init(device)
}

/// The ε of every layer norm (PyTorch's and burn's default).
pub const LAYER_NORM_EPSILON: f64 = 1e-5;

/// `norm` applied to `x`: `kernels`' layer norm where it has one for the tensors (burn-flex,
/// the GPU runners' backends), burn's own layer norm elsewhere.
pub fn normalize<B: Backend, const D: usize>(
    norm: &LayerNorm<B>,
    x: Tensor<B, D>,
    kernels: &Kernels,
) -> Tensor<B, D> {
    let inputs = (
        x,
        norm.gamma.val(),
        norm.beta.as_ref().map(|beta| beta.val()),
    );
    match kernels.layer_norm(inputs, LAYER_NORM_EPSILON) {
        Ok(y) => y,
        Err((x, _, _)) => norm.forward(x),
    }
}
