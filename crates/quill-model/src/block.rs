use burn::nn::LayerNorm;
use burn::prelude::*;

use crate::attention::CausalSelfAttention;
use crate::compute::Compute;
use crate::config::{ModelConfig, Norm};
use crate::init::layer_norm;
use crate::kv_cache::LayerCache;
use crate::mlp::Mlp;
use crate::noise::{ATTENTION_OUT, MLP_OUT, Noise};
use crate::norm::normalize;

/// One pre-norm Transformer block: `x + attn(ln(x))`, then `x + mlp(ln(x))`.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    ln_attn: LayerNorm<B>,
    attn: CausalSelfAttention<B>,
    ln_mlp: LayerNorm<B>,
    mlp: Mlp<B>,
    /// Whether the two norms are layer or RMS norms.
    #[module(skip)]
    norm: Norm,
}

impl<B: Backend> Block<B> {
    pub fn new(config: &ModelConfig, device: &B::Device) -> Self {
        Self {
            ln_attn: layer_norm(config, device),
            attn: CausalSelfAttention::new(config, device),
            ln_mlp: layer_norm(config, device),
            mlp: Mlp::new(config, device),
            norm: config.norm,
        }
    }

    /// The block with its feed-forward part's nonlinearity replaced (tests compare them).
    #[cfg(test)]
    pub(crate) fn set_activation(&mut self, activation: crate::config::Activation) {
        self.mlp.set_activation(activation);
    }

    /// The residual stream `x` stays f32 under mixed precision; the branches compute in
    /// `compute`'s precision, and each is dropped out and added to the stream in one step
    /// ([`Noise::residual`]).
    pub fn forward(&self, x: Tensor<B, 3>, compute: Compute, noise: &Noise<B>) -> Tensor<B, 3> {
        let h = self.attn.forward(
            normalize(self.norm, &self.ln_attn, x.clone(), &compute.kernels),
            compute,
            noise,
        );
        let x = noise.residual(x, h, self.attn.out_dropout(), ATTENTION_OUT, compute);
        let h = self.mlp.forward(
            normalize(self.norm, &self.ln_mlp, x.clone(), &compute.kernels),
            compute,
        );
        noise.residual(x, h, self.mlp.out_dropout(), MLP_OUT, compute)
    }

    /// [`forward`](Self::forward) for new positions after those held in `cache`.
    pub fn forward_cached(
        &self,
        x: Tensor<B, 3>,
        cache: &mut LayerCache<B>,
        capacity: usize,
        compute: Compute,
    ) -> Tensor<B, 3> {
        let k = &compute.kernels;
        let x = x.clone()
            + self.attn.forward_cached(
                normalize(self.norm, &self.ln_attn, x, k),
                cache,
                capacity,
                compute,
            );
        x.clone()
            + self
                .mlp
                .forward(normalize(self.norm, &self.ln_mlp, x, k), compute)
    }
}
