//! Layer normalization over the last dimension, `(x − mean)/√(var + ε)·γ + β`, as one pass per
//! row forward and one backward.
//!
//! burn composes it from eight operations (two means, a subtraction, a square, a square root,
//! a division, a product and a sum), each a pass over the whole tensor with its own output, and
//! autodiff keeps their intermediates and runs a backward operation for each: a tenth of a
//! cpu-small training step. Here the forward pass keeps only each row's mean and reciprocal
//! standard deviation; the backward pass is the usual closed form
//! `dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))` with `dx̂ = dy·γ`, and `dγ = Σ dy·x̂`,
//! `dβ = Σ dy` over the rows.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;

use burn::prelude::*;
use burn_flex::FlexTensor;
use multiversion::multiversion;
use rayon::prelude::*;

use crate::buffer::written;
use crate::fast_math::{dot, lanes};
use crate::fused::record;
use crate::route::{FlexAutodiffTensor, Route, back, flex_tensor, route};

/// Rows per parallel task.
const ROWS: usize = 128;

/// Layer norm of `x: [..., d]` with scale `gamma: [d]`, shift `beta: [d]` and `epsilon`, when
/// all are burn-flex f32 tensors; any other tensors are handed back (`Err`).
#[allow(clippy::type_complexity)]
pub fn fused_layer_norm<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    beta: Option<Tensor<B, 1>>,
    epsilon: f64,
) -> Result<Tensor<B, D>, (Tensor<B, D>, Tensor<B, 1>, Option<Tensor<B, 1>>)> {
    let eps = epsilon as f32;
    match (route(x), route(gamma), beta.map(route)) {
        (Route::FlexAutodiff(x), Route::FlexAutodiff(gamma), None) => {
            Ok(back(layer_norm_autodiff(x, gamma, None, eps)))
        }
        (Route::FlexAutodiff(x), Route::FlexAutodiff(gamma), Some(Route::FlexAutodiff(b))) => {
            Ok(back(layer_norm_autodiff(x, gamma, Some(b), eps)))
        }
        (Route::Flex(x), Route::Flex(gamma), None) => Ok(back(forward(&x, &gamma, None, eps).0)),
        (Route::Flex(x), Route::Flex(gamma), Some(Route::Flex(b))) => {
            Ok(back(forward(&x, &gamma, Some(&b), eps).0))
        }
        (x, gamma, beta) => Err((
            x.into_tensor(),
            gamma.into_tensor(),
            beta.map(Route::into_tensor),
        )),
    }
}

/// The output, and each row's `(mean, rstd)` for the backward pass.
fn forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: Option<&FlexTensor>,
    eps: f32,
) -> (FlexTensor, Vec<[f32; 2]>) {
    let x = x.to_contiguous();
    let (gamma, beta) = (gamma.to_contiguous(), beta.map(FlexTensor::to_contiguous));
    let (input, g) = (x.storage::<f32>(), gamma.storage::<f32>());
    let b = beta.as_ref().map(|b| b.storage::<f32>());
    let d = g.len();
    let rows = input.len() / d;
    let mut stats = vec![[0.0f32; 2]; rows];
    // SAFETY: `normalize_rows` writes every element of each block of rows.
    let output = unsafe {
        written(input.len(), |output| {
            output
                .par_chunks_mut(ROWS * d)
                .zip(input.par_chunks(ROWS * d))
                .zip(stats.par_chunks_mut(ROWS))
                .for_each(|((out, inp), stats)| normalize_rows(out, inp, stats, g, b, eps))
        })
    };
    (flex_tensor(output, x.layout().shape().clone()), stats)
}

/// The forward pass over a block of rows (compiled for each SIMD instruction set, see
/// [`crate::fast_math`]).
#[multiversion(targets = "simd")]
fn normalize_rows(
    out: &mut [MaybeUninit<f32>],
    input: &[f32],
    stats: &mut [[f32; 2]],
    g: &[f32],
    b: Option<&[f32]>,
    eps: f32,
) {
    let d = g.len();
    assert!(out.len() == input.len() && out.len() == stats.len() * d);
    for ((y, x), stat) in out.chunks_mut(d).zip(input.chunks(d)).zip(stats) {
        let mean = lanes(x, 0.0, |a, b| a + b) / d as f32;
        let var = squared_deviation(x, mean) / d as f32;
        let rstd = 1.0 / (var + eps).sqrt();
        *stat = [mean, rstd];
        match b {
            Some(b) => {
                for (((y, &v), &g), &b) in y.iter_mut().zip(x).zip(g).zip(b) {
                    y.write((v - mean) * rstd * g + b);
                }
            }
            None => {
                for ((y, &v), &g) in y.iter_mut().zip(x).zip(g) {
                    y.write((v - mean) * rstd * g);
                }
            }
        }
    }
}

/// `Σ (xᵢ − mean)²` in 16 lanes (see [`lanes`]).
#[inline(always)]
fn squared_deviation(x: &[f32], mean: f32) -> f32 {
    let mut acc = [0.0f32; 16];
    let chunks = x.chunks_exact(16);
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum();
    for chunk in chunks {
        for lane in 0..16 {
            let c = chunk[lane] - mean;
            acc[lane] += c * c;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `(dx, dgamma, dbeta)` from the output's gradient `dy`.
fn backward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    stats: &[[f32; 2]],
    dy: &FlexTensor,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let (x, gamma, dy) = (x.to_contiguous(), gamma.to_contiguous(), dy.to_contiguous());
    let (input, g, grad) = (
        x.storage::<f32>(),
        gamma.storage::<f32>(),
        dy.storage::<f32>(),
    );
    let d = g.len();
    assert_eq!(input.len(), grad.len());
    // Per task: its rows' sums of dy·x̂ and dy, added up after.
    let mut partial: Vec<(Vec<f32>, Vec<f32>)> = Vec::new();
    // SAFETY: `backward_rows` writes every element of each block of rows.
    let dx = unsafe {
        written(input.len(), |dx| {
            partial = dx
                .par_chunks_mut(ROWS * d)
                .zip(input.par_chunks(ROWS * d))
                .zip(grad.par_chunks(ROWS * d))
                .zip(stats.par_chunks(ROWS))
                .map(|(((dx, x), dy), stats)| backward_rows(dx, x, dy, stats, g))
                .collect()
        })
    };
    let (mut dgamma, mut dbeta) = (vec![0.0f32; d], vec![0.0f32; d]);
    for (pg, pb) in partial {
        dgamma.iter_mut().zip(pg).for_each(|(s, v)| *s += v);
        dbeta.iter_mut().zip(pb).for_each(|(s, v)| *s += v);
    }
    (
        flex_tensor(dx, x.layout().shape().clone()),
        flex_tensor(dgamma, Shape::new([d])),
        flex_tensor(dbeta, Shape::new([d])),
    )
}

/// The backward pass over a block of rows: `dx` written, the rows' `(Σ dy·x̂, Σ dy)` returned
/// (compiled for each SIMD instruction set).
#[multiversion(targets = "simd")]
fn backward_rows(
    dx: &mut [MaybeUninit<f32>],
    x: &[f32],
    dy: &[f32],
    stats: &[[f32; 2]],
    g: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let d = g.len();
    assert!(dx.len() == x.len() && dx.len() == dy.len() && dx.len() == stats.len() * d);
    let (mut dgamma, mut dbeta) = (vec![0.0f32; d], vec![0.0f32; d]);
    let (mut xhat, mut dxhat) = (vec![0.0f32; d], vec![0.0f32; d]);
    for (((dx, x), dy), &[mean, rstd]) in dx
        .chunks_mut(d)
        .zip(x.chunks(d))
        .zip(dy.chunks(d))
        .zip(stats)
    {
        for (((((xh, dxh), dg), db), (&x, &dy)), &g) in xhat
            .iter_mut()
            .zip(dxhat.iter_mut())
            .zip(dgamma.iter_mut())
            .zip(dbeta.iter_mut())
            .zip(x.iter().zip(dy))
            .zip(g)
        {
            *xh = (x - mean) * rstd;
            *dxh = dy * g;
            *dg += dy * *xh;
            *db += dy;
        }
        let mean_dxhat = lanes(&dxhat, 0.0, |a, b| a + b) / d as f32;
        let mean_dxhat_xhat = dot(&dxhat, &xhat) / d as f32;
        for ((dx, &dxh), &xh) in dx.iter_mut().zip(&dxhat).zip(&xhat) {
            dx.write(rstd * (dxh - mean_dxhat - xh * mean_dxhat_xhat));
        }
    }
    (dgamma, dbeta)
}

fn layer_norm_autodiff(
    x: FlexAutodiffTensor,
    gamma: FlexAutodiffTensor,
    beta: Option<FlexAutodiffTensor>,
    eps: f32,
) -> FlexAutodiffTensor {
    let forward = || {
        let beta = beta.as_ref().map(|b| &b.primitive);
        let (output, stats) = forward(&x.primitive, &gamma.primitive, beta, eps);
        (
            output,
            (x.primitive.clone(), gamma.primitive.clone(), stats),
        )
    };
    match &beta {
        None => record([&x, &gamma], forward, |(x, gamma, stats): State, dy, _| {
            let (dx, dgamma, _) = backward(&x, &gamma, &stats, dy);
            [Some(dx), Some(dgamma)]
        }),
        Some(beta) => record(
            [&x, &gamma, beta],
            forward,
            |(x, gamma, stats): State, dy, _| {
                let (dx, dgamma, dbeta) = backward(&x, &gamma, &stats, dy);
                [Some(dx), Some(dgamma), Some(dbeta)]
            },
        ),
    }
}

/// `x`, `γ` and each row's `(mean, rstd)`.
type State = (FlexTensor, FlexTensor, Vec<[f32; 2]>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{A, R, same};
    use burn::backend::Flex;
    use burn::module::Param;
    use burn::nn::LayerNormConfig;
    use burn::tensor::Distribution;

    /// Values and the gradients of x, γ and β against burn's LayerNorm on burn-ndarray, with
    /// and without β, and with more rows than one task takes.
    #[test]
    fn matches_burns_layer_norm_values_and_gradients() {
        let device = Default::default();
        for (rows, d, with_beta) in [(300, 48, true), (7, 20, false)] {
            let norm = LayerNormConfig::new(d).with_bias(with_beta);
            let reference = norm.init::<R>(&Default::default());
            let x =
                Tensor::<Flex, 3>::random([2, rows, d], Distribution::Default, &device) * 3.0 + 1.0;
            let dy = Tensor::<Flex, 3>::random([2, rows, d], Distribution::Default, &device);
            // A γ and β that are not 1 and 0, the same on both sides.
            let gamma = Tensor::<Flex, 1>::random([d], Distribution::Default, &device);
            let beta = Tensor::<Flex, 1>::random([d], Distribution::Default, &device);

            let xa = Tensor::<A, 3>::from_inner(x.clone()).require_grad();
            let ga = Tensor::<A, 1>::from_inner(gamma.clone()).require_grad();
            let ba = Tensor::<A, 1>::from_inner(beta.clone()).require_grad();
            let y =
                match fused_layer_norm(xa.clone(), ga.clone(), with_beta.then(|| ba.clone()), 1e-5)
                {
                    Ok(y) => y,
                    Err(_) => panic!("burn-flex tensors take the fused path"),
                };
            let grads = (y.clone() * Tensor::from_inner(dy.clone()))
                .sum()
                .backward();

            let mut reference = reference;
            reference.gamma = Param::from_data(gamma.into_data(), &Default::default());
            reference.beta =
                with_beta.then(|| Param::from_data(beta.into_data(), &Default::default()));
            let xr = Tensor::<R, 3>::from_data(x.into_data(), &Default::default()).require_grad();
            let want = reference.forward(xr.clone());
            let dy = Tensor::<R, 3>::from_data(dy.into_data(), &Default::default());
            let want_grads = (want.clone() * dy).sum().backward();

            same(y.inner(), want.inner());
            same(xa.grad(&grads).unwrap(), xr.grad(&want_grads).unwrap());
            same(
                ga.grad(&grads).unwrap(),
                reference.gamma.grad(&want_grads).unwrap(),
            );
            if with_beta {
                same(
                    ba.grad(&grads).unwrap(),
                    reference.beta.as_ref().unwrap().grad(&want_grads).unwrap(),
                );
            }
        }
    }
}
