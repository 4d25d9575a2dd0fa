use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use crate::config::ModelConfig;
use crate::gpt::{normal_init, residual_init};

/// Multi-head self-attention where position `t` only sees positions `<= t`.
///
/// Causality is what makes next-character prediction honest: without it, the model could read
/// the very character it must predict.
#[derive(Module, Debug)]
pub struct CausalSelfAttention<B: Backend> {
    /// Query, key and value projections fused in one matrix, as nanoGPT's `c_attn`.
    qkv: Linear<B>,
    project: Linear<B>,
    attn_dropout: Dropout,
    resid_dropout: Dropout,
    n_head: usize,
}

impl<B: Backend> CausalSelfAttention<B> {
    pub fn new(config: &ModelConfig, device: &B::Device) -> Self {
        Self {
            qkv: normal_init(
                LinearConfig::new(config.n_embd, 3 * config.n_embd),
                config,
                device,
            ),
            project: residual_init(
                LinearConfig::new(config.n_embd, config.n_embd),
                config,
                device,
            ),
            attn_dropout: DropoutConfig::new(config.dropout).init(),
            resid_dropout: DropoutConfig::new(config.dropout).init(),
            n_head: config.n_head,
        }
    }

    /// `x: [batch, seq, n_embd]` to `[batch, seq, n_embd]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, seq, n_embd] = x.dims();
        let head_dim = n_embd / self.n_head;
        let heads = |t: Tensor<B, 3>| {
            t.reshape([batch, seq, self.n_head, head_dim])
                .swap_dims(1, 2)
        };
        let qkv = self.qkv.forward(x).chunk(3, 2);
        let [q, k, v]: [Tensor<B, 3>; 3] = qkv.try_into().expect("three chunks");
        let (q, k, v) = (heads(q), heads(k), heads(v));

        let y = if self.attn_dropout.prob > 0.0 && B::ad_enabled(&q.device()) {
            // Dropout on the attention weights needs them materialized; burn's fused op has none.
            let scores = q.matmul(k.swap_dims(2, 3)) / (head_dim as f64).sqrt();
            let future = Tensor::<B, 2, Bool>::tril_mask([seq, seq], 0, &scores.device());
            let scores = scores.mask_fill(future.unsqueeze::<4>(), f32::NEG_INFINITY);
            self.attn_dropout.forward(softmax(scores, 3)).matmul(v)
        } else {
            let options = AttentionModuleOptions {
                scale: None,
                softcap: None,
                is_causal: true,
            };
            attention(q, k, v, None, None, options)
        };

        let y = y.swap_dims(1, 2).reshape([batch, seq, n_embd]);
        self.resid_dropout.forward(self.project.forward(y))
    }
}
