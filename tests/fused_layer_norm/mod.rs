//! quill-gpu-kernels' layer norm, forward and backward, against the closed form in f64 on the
//! host and against burn's `LayerNorm` on the same GPU backend: wgpu (lavapipe in CI) and CUDA.

use burn::module::AutodiffModule;
use burn::nn::LayerNormConfig;
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::backend::AutodiffBackend;
use quill_gpu_kernels::layer_norm;

const EPSILON: f64 = 1e-5;

/// Every check below, on `B`.
pub fn check_all<B: AutodiffBackend>(device: &B::Device) {
    // A model's rows; a width that is no multiple of a row's 32 units, and one below it; and
    // more rows than one launch dimension holds (530000 rows, 8 per cube, over 65535 cubes).
    for (rows, width, shifted) in [
        (40, 96, false),
        (40, 96, true),
        (7, 37, true),
        (9, 5, false),
        (530_000, 2, true),
    ] {
        matches_host::<B>(device, rows, width, shifted);
    }
    matches_burn::<B>(device);
}

/// The output and the three gradients against the host's, for a loss `Σ y ⊙ w`.
fn matches_host<B: AutodiffBackend>(device: &B::Device, rows: usize, width: usize, shifted: bool) {
    let what = format!("[{rows}, {width}], shift {shifted}");
    let normal = Distribution::Normal(0.5, 2.0);
    let x = Tensor::<B, 2>::random([rows, width], normal, device).require_grad();
    let gamma = Tensor::<B, 1>::random([width], normal, device).require_grad();
    let beta = shifted.then(|| Tensor::<B, 1>::random([width], normal, device).require_grad());
    let w = Tensor::<B, 2>::random([rows, width], normal, device);
    let Ok(y) = layer_norm((x.clone(), gamma.clone(), beta.clone()), EPSILON) else {
        panic!("the kernels take this backend's f32 tensors ({what})");
    };
    let grads = (y.clone() * w.clone()).sum().backward();
    let expected = host_reference(
        &values(x.clone()),
        &values(gamma.clone()),
        beta.clone().map(values).as_deref(),
        &values(w),
        width,
    );
    close(&values(y), &expected.y, &format!("y, {what}"));
    let grad = |t: Tensor<B, 2>| values(t.grad(&grads).expect("a gradient"));
    let grad_1 = |t: Tensor<B, 1>| values(t.grad(&grads).expect("a gradient"));
    close(&grad(x), &expected.dx, &format!("dx, {what}"));
    close(&grad_1(gamma), &expected.dgamma, &format!("dγ, {what}"));
    if let Some(beta) = beta {
        close(&grad_1(beta), &expected.dbeta, &format!("dβ, {what}"));
    }
}

/// The same numbers as burn's `LayerNorm` (its variance, its ε), forward and backward, for a
/// model-shaped `[batch, seq, width]` input, and without autodiff.
fn matches_burn<B: AutodiffBackend>(device: &B::Device) {
    let norm = LayerNormConfig::new(48).init::<B>(device);
    let normal = Distribution::Normal(0.0, 1.0);
    let x = Tensor::<B, 3>::random([3, 5, 48], normal, device).require_grad();
    let w = Tensor::<B, 3>::random([3, 5, 48], normal, device);
    let v = Tensor::<B, 3>::random([3, 5, 48], normal, device);
    let beta = norm.beta.as_ref().map(|beta| beta.val());
    let Ok(fused) = layer_norm((x.clone(), norm.gamma.val(), beta.clone()), EPSILON) else {
        panic!("the kernels take this backend's f32 tensors");
    };
    let grad_of = |y: Tensor<B, 3>| {
        let grads = (y * w.clone()).sum().backward();
        values(x.grad(&grads).expect("a gradient"))
    };
    let burn = norm.forward(x.clone());
    close(
        &values(fused.clone()),
        &values(burn.clone()),
        "y against burn",
    );
    close(&grad_of(fused), &grad_of(burn), "dx against burn");
    // As in a block, x also feeds a residual addition after the layer norm, whose backward
    // pass gives x a gradient first: the kernel adds it to its own (and autodiff does not).
    let Ok(fused) = layer_norm((x.clone(), norm.gamma.val(), beta.clone()), EPSILON) else {
        panic!("the kernels take this backend's f32 tensors");
    };
    let residual = |y: Tensor<B, 3>| x.clone() + y * v.clone();
    close(
        &grad_of(residual(fused)),
        &grad_of(residual(norm.forward(x.clone()))),
        "dx with a residual use of x against burn",
    );

    let inner = norm.valid();
    let x = x.inner();
    let Ok(y) = layer_norm((x.clone(), inner.gamma.val(), None), EPSILON) else {
        panic!("the kernel takes this backend's f32 tensors without autodiff");
    };
    close(&values(y), &values(inner.forward(x)), "without autodiff");
}

fn values<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor.into_data().to_vec::<f32>().expect("f32 values")
}

/// `got` within 1e-4 of `expected`, relative to `expected`'s largest magnitude.
fn close(got: &[f32], expected: &[f32], what: &str) {
    assert_eq!(got.len(), expected.len(), "{what}: lengths");
    let scale = expected.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
    let error = got
        .iter()
        .zip(expected)
        .fold(0f32, |m, (g, e)| m.max((g - e).abs()));
    assert!(
        error <= 1e-4 * scale,
        "{what}: off by {error} (largest value {scale})"
    );
}

struct Expected {
    y: Vec<f32>,
    dx: Vec<f32>,
    dgamma: Vec<f32>,
    dbeta: Vec<f32>,
}

/// The layer norm and its gradients in f64, for the output gradient `dy`.
fn host_reference(
    x: &[f32],
    gamma: &[f32],
    beta: Option<&[f32]>,
    dy: &[f32],
    width: usize,
) -> Expected {
    let n = width as f64;
    let mut y = vec![0f32; x.len()];
    let mut dx = vec![0f32; x.len()];
    let mut dgamma = vec![0f64; width];
    let mut dbeta = vec![0f64; width];
    for (start, row) in (0..x.len()).step_by(width).zip(x.chunks(width)) {
        let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = row
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        let rstd = 1.0 / (var + EPSILON).sqrt();
        let normalized: Vec<f64> = row.iter().map(|&v| (f64::from(v) - mean) * rstd).collect();
        let g: Vec<f64> = (0..width)
            .map(|j| f64::from(dy[start + j]) * f64::from(gamma[j]))
            .collect();
        let mean_g = g.iter().sum::<f64>() / n;
        let mean_gx = g.iter().zip(&normalized).map(|(a, b)| a * b).sum::<f64>() / n;
        for j in 0..width {
            let shift = beta.map_or(0.0, |beta| f64::from(beta[j]));
            y[start + j] = (normalized[j] * f64::from(gamma[j]) + shift) as f32;
            dx[start + j] = (rstd * (g[j] - mean_g - normalized[j] * mean_gx)) as f32;
            dgamma[j] += f64::from(dy[start + j]) * normalized[j];
            dbeta[j] += f64::from(dy[start + j]);
        }
    }
    let narrow = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
    Expected {
        y,
        dx,
        dgamma: narrow(dgamma),
        dbeta: narrow(dbeta),
    }
}
