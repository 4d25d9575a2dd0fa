//! What attention does to queries and keys before their product: rotary positions
//! (`model.positional = "rotary"`) and RMS norm per head (`model.qk_norm`).
//!
//! Both work on the projections `qkv: [batch, seq, 3·n_embd]` as the `qkv` layer gives them,
//! before the heads are split, so the fused attention kernels (burn-flex's causal attention,
//! which reads `qkv` as is) keep running with them on; and both are element-wise products
//! with small tables over that whole tensor, plus one `[head_dim, head_dim]` product for the
//! rotation's partner, rather than slices and concatenations of its parts (which cost 40 ms
//! a step on cpu-small, more than the rest of attention).
//!
//! The rotation is written here rather than taken from burn's `nn::RotaryEncoding`: burn's
//! rotates adjacent pairs `(2i, 2i+1)` through a `[2, 4]` matrix product per pair and a tensor
//! twice the input's size; rotating the two halves of each head `(i, i + head_dim/2)` (GPT-NeoX,
//! Llama, modded-nanogpt) is the same model up to a fixed permutation of each head's
//! dimensions, which the test below checks against burn's.

use burn::prelude::*;

use crate::config::{ModelConfig, Positional};
use crate::norm::inverse_rms;

/// The transformation of queries and keys a model's config asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueryKey {
    /// The rotary embeddings' base, when positions are rotary.
    rotary_theta: Option<f64>,
    /// RMS norm of each head's queries and keys.
    norm: bool,
    n_head: usize,
}

impl QueryKey {
    pub fn new(config: &ModelConfig) -> Self {
        Self {
            rotary_theta: (config.positional == Positional::Rotary).then_some(config.rope_theta),
            norm: config.qk_norm,
            n_head: config.n_head,
        }
    }

    /// `qkv` of the positions `start..start + seq` with the queries and keys normalized and
    /// rotated (in that order, as modded-nanogpt does); `qkv` itself when neither is on.
    pub fn apply<B: Backend>(&self, qkv: Tensor<B, 3>, start: usize) -> Tensor<B, 3> {
        let qkv = match self.norm {
            true => self.normalize(qkv),
            false => qkv,
        };
        match self.rotary_theta {
            Some(theta) => self.rotate(qkv, start, theta),
            None => qkv,
        }
    }

    /// Each query and key head divided by its root mean square; values unchanged.
    fn normalize<B: Backend>(&self, qkv: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, seq, width] = qkv.dims();
        let heads = 3 * self.n_head;
        let heads_of = qkv.reshape([batch, seq, heads, width / heads]);
        let inverse_rms = inverse_rms(&heads_of);
        // 1 on the query and key heads, 0 on the value heads: their factor is 1.
        let is_qk: Vec<f32> = (0..heads).map(|h| f32::from(h < 2 * self.n_head)).collect();
        let is_qk = Tensor::<B, 1>::from_data(TensorData::new(is_qk, [heads]), &heads_of.device())
            .cast(heads_of.dtype())
            .reshape([1, 1, heads, 1]);
        let factor = inverse_rms * is_qk.clone() - is_qk + 1.0;
        (heads_of * factor).reshape([batch, seq, width])
    }

    /// Rotates the halves `(x1, x2)` of each query and key head by the angle
    /// `(start + t) · theta^(-2i / head_dim)` for position `t` and frequency `i`:
    /// `(x1·cos − x2·sin, x2·cos + x1·sin)`, as `x·cos + partner(x)·sin` with
    /// `partner(x) = (−x2, x1)`; values get cos = 1, sin = 0.
    fn rotate<B: Backend>(&self, qkv: Tensor<B, 3>, start: usize, theta: f64) -> Tensor<B, 3> {
        let [batch, seq, width] = qkv.dims();
        let head_dim = width / 3 / self.n_head;
        let (device, dtype) = (qkv.device(), qkv.dtype());
        let (cos, sin) = self.rotary_tables(start, seq, width, theta);
        let table = |values| {
            Tensor::<B, 2>::from_data(TensorData::new(values, [seq, width]), &device)
                .cast(dtype)
                .unsqueeze::<3>()
        };
        let partner = qkv
            .clone()
            .reshape([batch * seq * width / head_dim, head_dim])
            .matmul(partner_matrix::<B>(head_dim, &device).cast(dtype))
            .reshape([batch, seq, width]);
        qkv * table(cos) + partner * table(sin)
    }

    /// `cos` and `sin` of every column of `qkv` at positions `start..start + seq`, each
    /// `[seq, width]` row-major, computed in f64 on the host (a few kilobytes a layer).
    fn rotary_tables(
        &self,
        start: usize,
        seq: usize,
        width: usize,
        theta: f64,
    ) -> (Vec<f32>, Vec<f32>) {
        let n_embd = width / 3;
        let head_dim = n_embd / self.n_head;
        let half = head_dim / 2;
        let mut cos = Vec::with_capacity(seq * width);
        let mut sin = Vec::with_capacity(seq * width);
        for position in start..start + seq {
            let angles: Vec<(f32, f32)> = (0..half)
                .map(|i| {
                    let angle = position as f64 * theta.powf(-(i as f64) / half as f64);
                    (angle.cos() as f32, angle.sin() as f32)
                })
                .collect();
            for column in 0..width {
                let (c, s) = match column < 2 * n_embd {
                    true => angles[column % head_dim % half],
                    false => (1.0, 0.0),
                };
                cos.push(c);
                sin.push(s);
            }
        }
        (cos, sin)
    }
}

/// `P` with `x·P = (−x2, x1)` for a head `x = (x1, x2)` of `head_dim` values.
fn partner_matrix<B: Backend>(head_dim: usize, device: &B::Device) -> Tensor<B, 2> {
    let half = head_dim / 2;
    let mut p = vec![0f32; head_dim * head_dim];
    for j in 0..half {
        p[(j + half) * head_dim + j] = -1.0;
        p[j * head_dim + j + half] = 1.0;
    }
    Tensor::from_data(TensorData::new(p, [head_dim, head_dim]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::nn::RotaryEncodingConfig;

    type B = NdArray;

    fn rotary(n_head: usize, qk_norm: bool) -> QueryKey {
        QueryKey {
            rotary_theta: Some(10_000.0),
            norm: qk_norm,
            n_head,
        }
    }

    fn random(dims: [usize; 3]) -> Tensor<B, 3> {
        let device = Default::default();
        Tensor::random(dims, burn::tensor::Distribution::Normal(0.0, 1.0), &device)
    }

    #[test]
    fn rotation_equals_burns_rotary_encoding_up_to_the_order_of_dimensions() {
        // burn rotates pairs (2i, 2i+1); quill rotates (i, i + half). Reordering each head's
        // dimensions as [evens, odds] maps one onto the other.
        let (batch, seq, heads, head_dim) = (2, 7, 2, 8);
        let width = heads * head_dim;
        let qkv = random([batch, seq, 3 * width]);
        let start = 3;
        let ours = rotary(heads, false).apply(qkv.clone(), start);
        let burns = RotaryEncodingConfig::new(start + seq, head_dim).init::<B>(&Default::default());
        let to_heads = |t: Tensor<B, 3>, part: usize| {
            t.slice([0..batch, 0..seq, part * width..(part + 1) * width])
                .reshape([batch, seq, heads, head_dim])
                .swap_dims(1, 2)
        };
        let order: Vec<i64> = (0..head_dim as i64)
            .step_by(2)
            .chain((1..head_dim as i64).step_by(2))
            .collect();
        let order = Tensor::<B, 1, Int>::from_ints(order.as_slice(), &Default::default());
        for part in 0..2 {
            let expected = burns
                .apply(to_heads(qkv.clone(), part), start)
                .select(3, order.clone());
            let reordered_input = to_heads(qkv.clone(), part).select(3, order.clone());
            // Our rotation of the reordered input equals burn's rotation, reordered.
            let reordered = reordered_input.swap_dims(1, 2).reshape([batch, seq, width]);
            let columns = [0..batch, 0..seq, part * width..(part + 1) * width];
            let ordered = qkv.clone().slice_assign(columns, reordered);
            let got = to_heads(rotary(heads, false).apply(ordered, start), part);
            got.into_data()
                .assert_approx_eq::<f32>(&expected.into_data(), Default::default());
        }
        // Values are left alone; queries and keys are not.
        let v = |t: Tensor<B, 3>| t.slice([0..batch, 0..seq, 2 * width..3 * width]);
        assert_eq!(v(ours.clone()).into_data(), v(qkv.clone()).into_data());
        assert!((ours - qkv).abs().max().into_scalar() > 0.1);
    }

    #[test]
    fn rotated_scores_depend_on_relative_positions_only() {
        // q·k of positions (s, t) equals that of (s + shift, t + shift): the property that
        // lets the KV cache pass an offset instead of recomputing.
        let (heads, head_dim) = (1, 8);
        let width = heads * head_dim;
        let one = random([1, 1, 3 * width]);
        let two = Tensor::cat(vec![one.clone(), one.clone()], 1);
        let score = |start: usize| {
            let rotated = rotary(heads, false).apply(two.clone(), start);
            let q = rotated.clone().slice([0..1, 1..2, 0..width]);
            let k = rotated.slice([0..1, 0..1, width..2 * width]);
            (q * k).sum().into_scalar()
        };
        let (at_0, at_40) = (score(0), score(40));
        assert!((at_0 - at_40).abs() < 1e-4, "{at_0} vs {at_40}");
    }

    #[test]
    fn qk_norm_gives_each_head_a_unit_root_mean_square() {
        let (batch, seq, heads, head_dim) = (1, 3, 2, 4);
        let width = heads * head_dim;
        let qkv = random([batch, seq, 3 * width]) * 5.0;
        let normed = QueryKey {
            rotary_theta: None,
            norm: true,
            n_head: heads,
        }
        .apply(qkv.clone(), 0);
        let heads_of = |t: Tensor<B, 3>| t.reshape([batch, seq, 3, heads, head_dim]);
        let mean_square = heads_of(normed.clone())
            .slice([0..batch, 0..seq, 0..2, 0..heads, 0..head_dim])
            .square()
            .mean_dim(4);
        let ones = mean_square.ones_like();
        mean_square
            .into_data()
            .assert_approx_eq::<f32>(&ones.into_data(), Default::default());
        // Rotation keeps the norm.
        let both = rotary(heads, true).apply(qkv, 5);
        let rotated_square = heads_of(both)
            .slice([0..batch, 0..seq, 0..2, 0..heads, 0..head_dim])
            .square()
            .mean_dim(4);
        rotated_square
            .into_data()
            .assert_approx_eq::<f32>(&ones_of(batch, seq, heads).into_data(), Default::default());
    }

    fn ones_of(batch: usize, seq: usize, heads: usize) -> Tensor<B, 5> {
        Tensor::ones([batch, seq, 2, heads, 1], &Default::default())
    }
}
