use burn::nn::LayerNorm;
use burn::prelude::*;

use crate::attention::CausalSelfAttention;
use crate::autocast::Autocast;
use crate::config::ModelConfig;
use crate::init::{layer_norm, normalize};
use crate::kv_cache::LayerCache;
use crate::mlp::Mlp;

/// One pre-norm Transformer block: `x + attn(ln(x))`, then `x + mlp(ln(x))`.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    ln_attn: LayerNorm<B>,
    attn: CausalSelfAttention<B>,
    ln_mlp: LayerNorm<B>,
    mlp: Mlp<B>,
}

impl<B: Backend> Block<B> {
    pub fn new(config: &ModelConfig, device: &B::Device) -> Self {
        Self {
            ln_attn: layer_norm(config, device),
            attn: CausalSelfAttention::new(config, device),
            ln_mlp: layer_norm(config, device),
            mlp: Mlp::new(config, device),
        }
    }

    /// The residual stream `x` stays f32 under mixed precision; the branches cast inside.
    pub fn forward(&self, x: Tensor<B, 3>, autocast: Autocast) -> Tensor<B, 3> {
        let x = x.clone() + self.attn.forward(normalize(&self.ln_attn, x), autocast);
        x.clone() + self.mlp.forward(normalize(&self.ln_mlp, x), autocast)
    }

    /// [`forward`](Self::forward) for new positions after those held in `cache`.
    pub fn forward_cached(
        &self,
        x: Tensor<B, 3>,
        cache: &mut LayerCache<B>,
        capacity: usize,
    ) -> Tensor<B, 3> {
        let x = x.clone()
            + self
                .attn
                .forward_cached(normalize(&self.ln_attn, x), cache, capacity);
        x.clone() + self.mlp.forward(normalize(&self.ln_mlp, x), Autocast::OFF)
    }
}
