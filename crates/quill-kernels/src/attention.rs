//! Causal multi-head self-attention from the fused `qkv` projection straight to merged heads.
//!
//! burn's autodiff runs attention as its generic composition (transpose, product, scale,
//! causal mask built anew, masked fill, max, subtract, exp, sum, divide, product) plus the
//! copies that split `qkv` into heads and merge them again, and the backward pass of each.
//! Here one task per (sequence, head) reads its queries, keys and values in place from the
//! `[batch, seq, 3·n_embd]` projection (strided matrix products with the `gemm` crate, no copies), computes the
//! causal softmax in one pass and writes its share of the merged `[batch, seq, n_embd]`
//! output. The backward pass is the same shape of work: `dP = dY·Vᵀ`, `dV = Pᵀ·dY`,
//! `dS = P ⊙ (dP − rowsum(P ⊙ dP))`, `dQ = dS·K`, `dK = dSᵀ·Q`, with `P` kept from the
//! forward pass (`[batch·head, seq, seq]`, what burn's composition keeps several of).

#![allow(unsafe_code)]

use burn::backend::flex::Flex;
use std::mem::MaybeUninit;

use burn::prelude::*;
use burn::tensor::Distribution;
use burn_flex::FlexTensor;
use multiversion::multiversion;
use rayon::prelude::*;

use crate::buffer::{assume_written, written};
use crate::fast_math::{dot, exp_non_positive, lanes};
use crate::fused::record;
use crate::matrix::{Matrix, product_into};
use crate::route::{FlexAutodiffTensor, Route, back, flex_tensor, route};

/// Causal self-attention of `qkv: [batch, seq, 3·n_embd]` (queries, keys, values side by side,
/// as nanoGPT's `c_attn` produces them) with `n_head` heads, when `qkv` is a burn-flex f32
/// tensor: the heads' outputs come back merged, `[batch, seq, n_embd]`, ready for the output
/// projection. Any other tensor is handed back (`Err`) for the caller's own attention.
///
/// `dropout` is the probability of dropping each attention weight in training (nanoGPT's
/// `attn_dropout`); it applies under autodiff only. The mask comes from a counter-based hash
/// of each weight's index and a seed drawn from burn-flex's random generator, which the data
/// loader seeds per batch: a resumed run draws the same masks. The backward pass hashes the
/// same indices again instead of keeping the mask.
pub fn fused_causal_attention<B: Backend>(
    qkv: Tensor<B, 3>,
    n_head: usize,
    dropout: f64,
) -> Result<Tensor<B, 3>, Tensor<B, 3>> {
    let [batch, seq, width] = qkv.dims();
    if width % 3 != 0 || n_head == 0 || (width / 3) % n_head != 0 {
        // Heads that do not split the width evenly: not the kernel's to compute.
        return Err(qkv);
    }
    let shape = AttentionShape {
        batch,
        seq,
        n_embd: width / 3,
        n_head,
    };
    match route(qkv) {
        Route::FlexAutodiff(qkv) => {
            let dropout = (dropout > 0.0).then(|| Dropout::draw(dropout as f32));
            Ok(back(attention_autodiff(qkv, shape, dropout)))
        }
        Route::Flex(qkv) => Ok(back(forward(&qkv, shape, None).0)),
        other => Err(other.into_tensor()),
    }
}

/// Dropout on the attention weights: weight `index` (its place in `[batch·head, seq, seq]`) is
/// kept when its hash is at least `threshold` (`p·2³²`), and scaled by `1/(1 − p)`.
#[derive(Debug, Clone, Copy)]
struct Dropout {
    seed: [u32; 2],
    threshold: u32,
    scale: f32,
}

impl Dropout {
    /// A mask for dropping with probability `p`, its seed from burn-flex's generator.
    fn draw(p: f32) -> Self {
        let random = Tensor::<Flex, 1>::random([2], Distribution::Default, &Default::default());
        let random: Vec<f32> = random.into_data().to_vec().expect("f32 values");
        Self {
            seed: [random[0].to_bits(), random[1].to_bits()],
            // The cast saturates: p = 1 gives u32::MAX.
            threshold: (p.clamp(0.0, 1.0) as f64 * 4_294_967_296.0) as u32,
            scale: 1.0 / (1.0 - p),
        }
    }

    /// `1/(1 − p)` where weight `index` is kept, 0 where it is dropped (murmur3's finalizer
    /// over the index and the seed: integer operations that vectorize).
    #[inline(always)]
    fn factor(&self, index: u32) -> f32 {
        let mut h = index.wrapping_mul(0x9E37_79B1) ^ self.seed[0];
        h ^= h >> 16;
        h = h.wrapping_mul(0x85EB_CA6B) ^ self.seed[1];
        h ^= h >> 13;
        h = h.wrapping_mul(0xC2B2_AE35);
        h ^= h >> 16;
        if h >= self.threshold { self.scale } else { 0.0 }
    }
}

/// `out = p ⊙ mask` for the `[t, t]` weights of unit `unit` (compiled for each SIMD
/// instruction set, see [`crate::fast_math`]).
#[multiversion(targets = "simd")]
fn dropped(out: &mut [MaybeUninit<f32>], p: &[f32], dropout: Dropout, unit: usize) {
    assert_eq!(out.len(), p.len());
    let base = (unit * p.len()) as u32;
    for (i, (o, &w)) in out.iter_mut().zip(p).enumerate() {
        o.write(w * dropout.factor(base.wrapping_add(i as u32)));
    }
}

/// For the backward pass, one hash per weight: `kept = p ⊙ mask` and `ds ⊙= mask` in place.
#[multiversion(targets = "simd")]
fn dropped_and_masked(
    kept: &mut [MaybeUninit<f32>],
    ds: &mut [f32],
    p: &[f32],
    dropout: Dropout,
    unit: usize,
) {
    assert!(kept.len() == p.len() && ds.len() == p.len());
    let base = (unit * p.len()) as u32;
    for (i, ((k, d), &w)) in kept.iter_mut().zip(ds.iter_mut()).zip(p).enumerate() {
        let factor = dropout.factor(base.wrapping_add(i as u32));
        k.write(w * factor);
        *d *= factor;
    }
}

/// The attention problem's sizes: `batch` sequences of `seq` positions, `n_embd` wide in
/// `n_head` heads.
#[derive(Debug, Clone, Copy)]
struct AttentionShape {
    batch: usize,
    seq: usize,
    n_embd: usize,
    n_head: usize,
}

impl AttentionShape {
    fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    fn scale(&self) -> f32 {
        1.0 / (self.head_dim() as f32).sqrt()
    }

    /// Offset of head `head`'s `part` (0 queries, 1 keys, 2 values) in sequence `seq_index`'s
    /// rows of the `qkv` buffer.
    fn qkv_offset(&self, seq_index: usize, head: usize, part: usize) -> usize {
        seq_index * self.seq * 3 * self.n_embd + part * self.n_embd + head * self.head_dim()
    }
}

/// `(output [batch, seq, n_embd], P [batch·head, seq, seq])`.
fn forward(
    qkv: &FlexTensor,
    s: AttentionShape,
    dropout: Option<Dropout>,
) -> (FlexTensor, FlexTensor) {
    let qkv = qkv.to_contiguous();
    let data = qkv.storage::<f32>();
    let (t, d, width) = (s.seq, s.head_dim(), 3 * s.n_embd);
    let units = s.batch * s.n_head;
    let mut heads = Vec::new();
    // SAFETY: each task writes its whole `[t, t]` block of `probs` (the scores' product, then
    // the softmax in place) and its whole `[t, d]` block of `heads` (a product).
    let probs = unsafe {
        written(units * t * t, |probs| {
            heads = written(units * t * d, |heads| {
                probs
                    .par_chunks_mut(t * t)
                    .zip(heads.par_chunks_mut(t * d))
                    .enumerate()
                    .for_each(|(unit, (p, y))| {
                        let (b, h) = (unit / s.n_head, unit % s.n_head);
                        let q = Matrix::new(data, s.qkv_offset(b, h, 0), t, d, width);
                        let k = Matrix::new(data, s.qkv_offset(b, h, 1), t, d, width);
                        let v = Matrix::new(data, s.qkv_offset(b, h, 2), t, d, width);
                        product_into(p, q, k.t(), s.scale());
                        let p = assume_written(p);
                        causal_softmax_rows(p, t);
                        match dropout {
                            Some(dropout) => {
                                let kept = written(t * t, |kept| dropped(kept, p, dropout, unit));
                                product_into(y, Matrix::new(&kept, 0, t, t, t), v, 1.0);
                            }
                            None => product_into(y, Matrix::new(p, 0, t, t, t), v, 1.0),
                        }
                    })
            })
        })
    };
    let output = interleave_heads(&heads, 1, s);
    (
        flex_tensor(output, Shape::new([s.batch, t, s.n_embd])),
        flex_tensor(probs, Shape::new([units, t, t])),
    )
}

/// Row `i` of the `[t, t]` scores `p` becomes the softmax of its first `i + 1` entries
/// (compiled for each SIMD instruction set, see [`crate::fast_math`]).
#[multiversion(targets = "simd")]
fn causal_softmax_rows(p: &mut [f32], t: usize) {
    for (i, row) in p.chunks_mut(t).enumerate() {
        causal_softmax(row, i);
    }
}

/// The scores' gradient of every row of a `[t, t]` causal softmax `p`, in place in `ds`.
#[multiversion(targets = "simd")]
fn softmax_backward_rows(ds: &mut [f32], p: &[f32], t: usize, scale: f32) {
    for (i, (ds_row, p_row)) in ds.chunks_mut(t).zip(p.chunks(t)).enumerate() {
        softmax_backward_row(ds_row, &p_row[..=i], scale);
    }
}

/// Softmax of `row[..=last]` in place; the future positions (after `last`) become 0.
#[inline(always)]
fn causal_softmax(row: &mut [f32], last: usize) {
    let (seen, future) = row.split_at_mut(last + 1);
    future.fill(0.0);
    let max = lanes(seen, f32::NEG_INFINITY, f32::max);
    for x in seen.iter_mut() {
        *x = exp_non_positive(*x - max);
    }
    let inv = 1.0 / lanes(seen, 0.0, |a, b| a + b);
    seen.iter_mut().for_each(|x| *x *= inv);
}

/// The scores' gradient of one causal softmax row in place: `dP` in, `scale·P ⊙ (dP −
/// rowsum(P ⊙ dP))` out over the positions `p` covers, 0 after them.
#[inline(always)]
fn softmax_backward_row(ds: &mut [f32], p: &[f32], scale: f32) {
    let (seen, future) = ds.split_at_mut(p.len());
    let dot = dot(seen, p);
    for (g, &pr) in seen.iter_mut().zip(p) {
        *g = scale * pr * (*g - dot);
    }
    future.fill(0.0);
}

/// Interleaves per-(sequence, head) blocks of `parts` `[seq, head_dim]` matrices (head-major,
/// as the tasks wrote them) into rows of `parts·n_embd`: part `p` of head `h` lands at columns
/// `p·n_embd + h·head_dim`. One part merges the heads' outputs (`[batch, seq, n_embd]`); three
/// lay out the gradients of queries, keys and values like `qkv`.
fn interleave_heads(blocks: &[f32], parts: usize, s: AttentionShape) -> Vec<f32> {
    let (t, d, width) = (s.seq, s.head_dim(), parts * s.n_embd);
    // SAFETY: for each sequence, every (row, part, head) writes its `d` columns: all
    // `parts·n_head·d = width` columns of all `t` rows.
    unsafe {
        written(s.batch * t * width, |output| {
            output
                .par_chunks_mut(t * width)
                .enumerate()
                .for_each(|(b, out)| {
                    for h in 0..s.n_head {
                        let unit = &blocks[(b * s.n_head + h) * parts * t * d..][..parts * t * d];
                        for (part, matrix) in unit.chunks(t * d).enumerate() {
                            for (i, row) in matrix.chunks(d).enumerate() {
                                let dst = &mut out[i * width + part * s.n_embd + h * d..][..d];
                                for (o, &v) in dst.iter_mut().zip(row) {
                                    o.write(v);
                                }
                            }
                        }
                    }
                })
        })
    }
}

/// The gradient with respect to `qkv` of the forward pass that gave `probs` (the weights
/// before dropout), given the output's gradient `grad`.
fn backward(
    qkv: &FlexTensor,
    probs: &FlexTensor,
    grad: &FlexTensor,
    s: AttentionShape,
    dropout: Option<Dropout>,
) -> FlexTensor {
    let qkv = qkv.to_contiguous();
    let probs = probs.to_contiguous();
    let grad = grad.to_contiguous();
    let (data, p_all, dy) = (
        qkv.storage::<f32>(),
        probs.storage::<f32>(),
        grad.storage::<f32>(),
    );
    let (t, d, width, scale) = (s.seq, s.head_dim(), 3 * s.n_embd, s.scale());
    // Per (sequence, head): dQ, dK, dV, each [seq, head_dim].
    // SAFETY: each task writes its dQ, dK and dV in full (three products).
    let parts = unsafe {
        written(s.batch * s.n_head * 3 * t * d, |parts| {
            parts
                .par_chunks_mut(3 * t * d)
                .enumerate()
                .for_each(|(unit, out)| {
                    let (b, h) = (unit / s.n_head, unit % s.n_head);
                    let q = Matrix::new(data, s.qkv_offset(b, h, 0), t, d, width);
                    let k = Matrix::new(data, s.qkv_offset(b, h, 1), t, d, width);
                    let v = Matrix::new(data, s.qkv_offset(b, h, 2), t, d, width);
                    let p_unit = &p_all[unit * t * t..][..t * t];
                    let p = Matrix::new(p_unit, 0, t, t, t);
                    let dy = Matrix::new(dy, b * t * s.n_embd + h * d, t, d, s.n_embd);
                    let (dq, rest) = out.split_at_mut(t * d);
                    let (dk, dv) = rest.split_at_mut(t * d);

                    let mut ds = written(t * t, |ds| product_into(ds, dy, v.t(), 1.0));
                    match dropout {
                        Some(dropout) => {
                            // Y = (P ⊙ M)·V: dV = (P ⊙ M)ᵀ·dY, dP = (dY·Vᵀ) ⊙ M.
                            let kept = written(t * t, |kept| {
                                dropped_and_masked(kept, &mut ds, p_unit, dropout, unit)
                            });
                            product_into(dv, Matrix::new(&kept, 0, t, t, t).t(), dy, 1.0);
                        }
                        None => product_into(dv, p.t(), dy, 1.0),
                    }
                    softmax_backward_rows(&mut ds, p_unit, t, scale);
                    let ds = Matrix::new(&ds, 0, t, t, t);
                    product_into(dq, ds, k, 1.0);
                    product_into(dk, ds.t(), q, 1.0);
                })
        })
    };
    flex_tensor(
        interleave_heads(&parts, 3, s),
        Shape::new([s.batch, t, width]),
    )
}

fn attention_autodiff(
    qkv: FlexAutodiffTensor,
    s: AttentionShape,
    dropout: Option<Dropout>,
) -> FlexAutodiffTensor {
    record(
        [&qkv],
        || {
            let (output, probs) = forward(&qkv.primitive, s, dropout);
            (output, (qkv.primitive.clone(), probs, s, dropout))
        },
        |(qkv, probs, s, dropout), dy, [wanted]| {
            [wanted.then(|| backward(&qkv, &probs, dy, s, dropout))]
        },
    )
}
