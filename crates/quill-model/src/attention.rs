use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use crate::config::ModelConfig;
use crate::gpt::{normal_init, residual_init};
use crate::kv_cache::LayerCache;
use crate::tokenwise::tokenwise;
use quill_kernels::attention::{causal_attention, split_heads};

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

    /// Queries, keys and values of `x: [batch, seq, n_embd]`, each `[batch, head, seq, head_dim]`.
    fn project_qkv(&self, x: Tensor<B, 3>) -> [Tensor<B, 4>; 3] {
        split_heads(tokenwise(&self.qkv, x), self.n_head)
    }

    /// Merges the heads of `y: [batch, head, seq, head_dim]` into `[batch, seq, n_embd]`.
    fn merge_heads(&self, y: Tensor<B, 4>) -> Tensor<B, 3> {
        let [batch, _, seq, _] = y.dims();
        let n_embd = self.project.weight.dims()[1];
        y.swap_dims(1, 2).reshape([batch, seq, n_embd])
    }

    /// Projects the merged heads `y: [batch, seq, n_embd]` back into the residual stream.
    fn project_out(&self, y: Tensor<B, 3>) -> Tensor<B, 3> {
        self.resid_dropout.forward(tokenwise(&self.project, y))
    }

    /// `x: [batch, seq, n_embd]` to `[batch, seq, n_embd]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let y = if self.attn_dropout.prob > 0.0 && B::ad_enabled(&x.device()) {
            // Dropout on the attention weights needs them materialized; the fused kernel has none.
            let [_, seq, n_embd] = x.dims();
            let head_dim = n_embd / self.n_head;
            let [q, k, v] = self.project_qkv(x);
            let scores = q.matmul(k.swap_dims(2, 3)) / (head_dim as f64).sqrt();
            let future = Tensor::<B, 2, Bool>::tril_mask([seq, seq], 0, &scores.device());
            let scores = scores.mask_fill(future.unsqueeze::<4>(), f32::NEG_INFINITY);
            self.merge_heads(self.attn_dropout.forward(softmax(scores, 3)).matmul(v))
        } else {
            causal_attention(tokenwise(&self.qkv, x), self.n_head)
        };
        self.project_out(y)
    }

    /// Like [`forward`](Self::forward) for `x` holding the positions that follow those in
    /// `cache`: their keys and values are appended to the cache, and each new position attends
    /// to every cached position and to the new ones up to itself. Inference only (no dropout).
    pub fn forward_cached(&self, x: Tensor<B, 3>, cache: &mut LayerCache<B>) -> Tensor<B, 3> {
        let [q, k, v] = self.project_qkv(x);
        let past = cache.len();
        let (k, v) = cache.append(k, v);
        let [batch, heads, seq, _] = q.dims();
        let total = past + seq;
        // Query i sits at position past + i and may see keys j <= past + i.
        let future = Tensor::<B, 2, Bool>::tril_mask([seq, total], past as i64, &q.device())
            .unsqueeze::<4>()
            .expand([batch, heads, seq, total]);
        let options = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: false,
        };
        self.project_out(self.merge_heads(attention(q, k, v, Some(future), None, options)))
    }
}
