use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use crate::compute::Compute;
use crate::config::ModelConfig;
use crate::init::{normal_init, residual_init};
use crate::kv_cache::LayerCache;
use crate::noise::{ATTENTION_WEIGHTS, Noise};
use crate::query_key::QueryKey;

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
    /// Rotary positions and QK-norm, applied to the projections before anything else.
    #[module(skip)]
    query_key: QueryKey,
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
            query_key: QueryKey::new(config),
        }
    }

    /// Queries, keys and values of `x: [batch, seq, n_embd]`, the positions from `start` on,
    /// rotated and normalized as the config says: `[batch, seq, 3·n_embd]`.
    fn project_qkv(&self, x: Tensor<B, 3>, start: usize, compute: Compute) -> Tensor<B, 3> {
        self.query_key.apply(compute.linear(&self.qkv, x), start)
    }

    /// The dropout on the output, which the block applies with the residual addition.
    pub fn out_dropout(&self) -> &Dropout {
        &self.resid_dropout
    }

    /// `x: [batch, seq, n_embd]` to `[batch, seq, n_embd]`, in `compute`'s precision and
    /// before the output's dropout ([`out_dropout`](Self::out_dropout)); `noise` holds the
    /// attention weights' dropout seed.
    pub fn forward(&self, x: Tensor<B, 3>, compute: Compute, noise: &Noise<B>) -> Tensor<B, 3> {
        // Dropout only while training (autodiff on).
        let dropout = if B::ad_enabled(&x.device()) {
            self.attn_dropout.prob
        } else {
            0.0
        };
        let qkv = self.project_qkv(x, 0, compute);
        let k = &compute.kernels;
        let y = match self.attend_fused(qkv, dropout, compute) {
            Ok(merged) => merged,
            // Dropout on the attention weights, and mixed precision (products in half
            // precision, softmax in f32), need the weights materialized elsewhere.
            Err(qkv) => {
                let [q, key, v] = k.split_heads(qkv, self.n_head);
                k.merge_heads(self.attend(q, key, v, 0, compute, noise))
            }
        };
        compute.linear(&self.project, y)
    }

    /// Causal attention of `qkv: [batch, seq, 3·n_embd]` in one operation, where there is
    /// one: the fused kernel on burn-flex in f32 (with `dropout` on the weights), burn's
    /// attention op on other backends without dropout, mixed precision, cuBLAS's products or
    /// the fused softmax. Returns the merged heads, `[batch, seq, n_embd]`, or `qkv` back.
    fn attend_fused(
        &self,
        qkv: Tensor<B, 3>,
        dropout: f64,
        compute: Compute,
    ) -> Result<Tensor<B, 3>, Tensor<B, 3>> {
        let k = &compute.kernels;
        let qkv = match k.causal_attention(qkv, self.n_head, dropout) {
            Ok(merged) => return Ok(merged),
            Err(qkv) => qkv,
        };
        // With cuBLAS's products (quill-cuda), attention runs on them too, rather than on
        // burn's attention op: one kind of product for the whole model, which the GPU tests
        // check (burn's op was no faster than the products on an H200 in training). So it
        // does with the fused softmax kernels (unless QUILL_SOFTMAX=burn).
        if dropout > 0.0 || compute.is_on() || k.cublas() || k.softmax_on::<B>() {
            return Err(qkv);
        }
        let [q, key, v] = k.split_heads(qkv, self.n_head);
        let options = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: true,
        };
        Ok(k.merge_heads(attention(q, key, v, None, None, options)))
    }

    /// Like [`forward`](Self::forward) (in f32) for `x` holding the positions that follow those in
    /// `cache`: their keys and values are written to the cache, and each new position attends
    /// to every cached position and to the new ones up to itself. Inference only (no dropout).
    /// Every tensor spans the cache's whole `capacity`, so decoding one more character runs
    /// the same shapes as the last one.
    pub fn forward_cached(
        &self,
        x: Tensor<B, 3>,
        cache: &mut LayerCache<B>,
        capacity: usize,
        compute: Compute,
    ) -> Tensor<B, 3> {
        let past = cache.len();
        let [q, k, v] = compute
            .kernels
            .split_heads(self.project_qkv(x, past, compute), self.n_head);
        let (k, v) = cache.append(k, v, capacity);
        // Query i sits at position past + i and may see keys j <= past + i; the positions
        // after those written are masked as well.
        let y = self.attend(q, k, v, past, compute, &Noise::none());
        compute.linear(&self.project, compute.kernels.merge_heads(y))
    }

    /// `softmax(q·kᵀ/√head_dim)·v` of `[batch, head, seq, head_dim]` queries, keys and values
    /// (`seq_q` queries, `seq_k` keys and values), where query `i` sees keys `j <= i + past`;
    /// dropout on the attention weights in training. The softmax is computed in f32 under mixed
    /// precision.
    fn attend(
        &self,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        past: usize,
        compute: Compute,
        noise: &Noise<B>,
    ) -> Tensor<B, 4> {
        let [_, _, seq_q, head_dim] = q.dims();
        let seq_k = k.dims()[2];
        let scale = 1.0 / (head_dim as f64).sqrt();
        // The fused softmax scales the scores as it reads them. Otherwise the queries are
        // scaled rather than the scores: a tensor `seq / head_dim` times the size, so a pass
        // over `[batch, head, seq, seq]` less forward and backward. For a head_dim of 4^k (64
        // here) the scale is a power of two and the scores are the same either way.
        let kernels = &compute.kernels;
        let fused = kernels.softmax_on::<B>();
        let q = match fused {
            true => q,
            false => q * scale,
        };
        let device = q.device();
        let scores = kernels.matmul(q, k.swap_dims(2, 3));
        // Dropout only while training (autodiff on), as burn's Dropout decides.
        let rate = match B::ad_enabled(&device) {
            true => self.attn_dropout.prob,
            false => 0.0,
        };
        let weights = match fused_softmax(kernels, fused, scores, scale, past, rate, noise) {
            Ok(weights) => weights,
            Err(scores) => {
                // Unscaled when the fused kernels were on but did not take them.
                let scores = match fused {
                    true => scores * scale,
                    false => scores,
                };
                // The mask as an additive bias (0, or -inf where a key is in the future),
                // broadcast: the backward pass of an addition is the identity, where a masked
                // fill writes the scores' gradient once more.
                let future = Tensor::<B, 2, Bool>::tril_mask([seq_q, seq_k], past as i64, &device);
                let bias = Tensor::<B, 2>::zeros(future.dims(), &device)
                    .mask_fill(future, f32::NEG_INFINITY)
                    .unsqueeze::<4>();
                let scores = compute.up(scores) + bias;
                compute.down(self.attn_dropout.forward(softmax(scores, 3)))
            }
        };
        kernels.matmul(weights, v)
    }
}

/// `dropout(softmax(scale · scores))` with keys after `i + past` masked for query `i`, in one
/// kernel each way when `on` (`kernels.softmax_on`), its dropout mask hashed from `noise`'s
/// seed; `Err(scores)` otherwise (also with dropout and no seed).
fn fused_softmax<B: Backend>(
    kernels: &quill_backend::Kernels,
    on: bool,
    scores: Tensor<B, 4>,
    scale: f64,
    past: usize,
    rate: f64,
    noise: &Noise<B>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    if !on {
        return Err(scores);
    }
    let mask = noise.mask(rate, ATTENTION_WEIGHTS);
    if rate > 0.0 && mask.is_none() {
        return Err(scores);
    }
    let dtype = scores.dtype();
    kernels.causal_softmax(scores, scale, past, mask, dtype)
}
