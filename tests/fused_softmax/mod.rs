//! quill-gpu-kernels' causal softmax against burn's composition of the same (mask, softmax,
//! dropout), forward and backward, on a GPU backend: wgpu (lavapipe in CI) and CUDA.

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{DType, Distribution, FloatDType, activation::softmax};
use quill_gpu_kernels::dropout::{kept_on_host, seeds_of, threshold};
use quill_gpu_kernels::{DropoutMask, causal_softmax};

/// Every check below, on `B`; each of `halves` adds the weights in that dtype (from scores in
/// it, as a product under mixed precision gives them), for the backends that have it.
pub fn check_all<B: AutodiffBackend>(device: &B::Device, halves: &[FloatDType]) {
    // Square (training), a KV cache's wider rows, rows longer than a row's 32 units, and more
    // cubes than one launch dimension holds (540000 rows, 8 per cube, over 65535 cubes: wgpu's
    // limit); scores scaled by 1, attention's 1/√64, and a scale that is not a power of two.
    for (dims, past, scale) in [
        ([2, 3, 9, 9], 0, 1.0),
        ([2, 3, 5, 12], 4, 0.3),
        ([1, 2, 300, 300], 0, 0.125),
        ([3, 1, 180_000, 2], 0, 1.0),
    ] {
        matches_burn::<B>(device, dims, past, scale);
    }
    // Without autodiff (evaluation, sampling with the KV cache).
    let scores =
        Tensor::<B::InnerBackend, 4>::random([2, 3, 4, 11], Distribution::Normal(0.0, 2.0), device);
    let expected = composed(scores.clone(), 0.5, 7, None);
    assert!(
        relative(fused(scores, 0.5, 7, None), expected) < 1e-5,
        "without autodiff"
    );
    dropout_matches_its_mask::<B>(device);
    for &half in halves {
        half_weights_match_burn::<B>(device, half);
    }
}

/// burn's composition: `dropout(softmax(scale · scores + bias))` with `keep` the mask (times
/// `1/(1 − rate)`), or none.
fn composed<B: Backend>(
    scores: Tensor<B, 4>,
    scale: f64,
    past: usize,
    keep: Option<Tensor<B, 4>>,
) -> Tensor<B, 4> {
    let [_, _, seq_q, seq_k] = scores.dims();
    let device = scores.device();
    let future = Tensor::<B, 2, Bool>::tril_mask([seq_q, seq_k], past as i64, &device);
    let bias = Tensor::<B, 2>::zeros([seq_q, seq_k], &device)
        .mask_fill(future, f32::NEG_INFINITY)
        .unsqueeze::<4>();
    let weights = softmax(scores * scale + bias, 3);
    match keep {
        Some(keep) => weights * keep,
        None => weights,
    }
}

fn fused<B: Backend>(
    scores: Tensor<B, 4>,
    scale: f64,
    past: usize,
    dropout: Option<DropoutMask<B>>,
) -> Tensor<B, 4> {
    let dtype = scores.dtype();
    match causal_softmax(scores, scale, past, dropout, dtype) {
        Ok(weights) => weights,
        Err(_) => panic!("not routed to the fused kernels"),
    }
}

/// The largest difference between `a` and `b`, relative to `b`'s largest value.
fn relative<B: Backend>(a: Tensor<B, 4>, b: Tensor<B, 4>) -> f32 {
    let (a, b) = (a.cast(FloatDType::F32), b.cast(FloatDType::F32));
    let scale = b.clone().abs().max().into_scalar().elem::<f32>().max(1e-30);
    (a - b).abs().max().into_scalar().elem::<f32>() / scale
}

/// Weights and the scores' gradient (for a random upstream gradient) of both, without dropout.
fn matches_burn<B: AutodiffBackend>(device: &B::Device, dims: [usize; 4], past: usize, scale: f64) {
    let scores = Tensor::<B, 4>::random(dims, Distribution::Normal(0.0, 2.0), device);
    let upstream = Tensor::<B, 4>::random(dims, Distribution::Normal(0.0, 1.0), device);
    let run = |fused_kernels: bool| {
        let scores = scores.clone().require_grad();
        let weights = match fused_kernels {
            true => fused(scores.clone(), scale, past, None),
            false => composed(scores.clone(), scale, past, None),
        };
        let grads = (weights.clone() * upstream.clone()).sum().backward();
        (weights, scores.grad(&grads).expect("a gradient"))
    };
    let ((weights, grad), (expected, expected_grad)) = (run(true), run(false));
    let case = format!("{dims:?}, past {past}, scale {scale}");
    assert!(relative(weights, expected) < 1e-5, "{case}: weights");
    assert!(relative(grad, expected_grad) < 1e-5, "{case}: gradient");
}

/// With dropout: about `rate` of the visible weights dropped, the others scaled by
/// `1/(1 − rate)`; the same seed and salt give the same mask (a resumed run), another seed or
/// another salt (another use in the same pass) another; the gradient is that of burn's
/// composition with the same mask; and the mask is the hash the kernels document (rebuilt here
/// on the host).
fn dropout_matches_its_mask<B: AutodiffBackend>(device: &B::Device) {
    let (dims, rate) = ([4, 4, 64, 64], 0.25);
    B::seed(device, 11);
    let scores = Tensor::<B, 4>::random(dims, Distribution::Normal(0.0, 2.0), device);
    let upstream = Tensor::<B, 4>::random(dims, Distribution::Normal(0.0, 1.0), device);
    let seed_values = [0.2961_f32, 0.727];
    let draw = |values: [f32; 2], salt: u32| {
        let seed = Tensor::<B, 1>::from_floats(values, device);
        let scores = scores.clone().require_grad();
        let mask = DropoutMask { rate, seed, salt };
        let weights = fused(scores.clone(), 1.0, 0, Some(mask));
        let grads = (weights.clone() * upstream.clone()).sum().backward();
        (weights, scores.grad(&grads).expect("a gradient"))
    };
    let (weights, grad) = draw(seed_values, 4);
    let (again, _) = draw(seed_values, 4);
    let (other_seed, _) = draw([0.2961, 0.726], 4);
    let (other_salt, _) = draw(seed_values, 5);
    assert_eq!(
        relative(again, weights.clone()),
        0.0,
        "the same seed, another mask"
    );
    for (other, what) in [(other_seed, "seed"), (other_salt, "salt")] {
        assert!(
            relative(other, weights.clone()) > 0.1,
            "another {what}, the same mask"
        );
    }

    let probs = composed(scores.clone(), 1.0, 0, None);
    let visible = probs.clone().greater_elem(0.0).float();
    let kept = weights.clone().greater_elem(0.0).float();
    let dropped = (visible.clone() - kept.clone())
        .sum()
        .into_scalar()
        .elem::<f32>();
    let share = dropped / visible.sum().into_scalar().elem::<f32>();
    assert!(
        (share - 0.25).abs() < 0.015,
        "dropped {share} of the weights"
    );

    let keep = kept * (1.0 / (1.0 - rate));
    assert!(
        relative(weights.clone(), probs * keep.clone()) < 1e-5,
        "kept weights"
    );
    let tracked = scores.clone().require_grad();
    let expected = composed(tracked.clone(), 1.0, 0, Some(keep.clone()));
    let grads = (expected * upstream).sum().backward();
    let expected_grad = tracked.grad(&grads).expect("a gradient");
    assert!(
        relative(grad, expected_grad) < 1e-5,
        "the gradient with dropout"
    );

    // The mask is the documented hash of each weight's index, the seed values and the salt.
    let (seeds, threshold) = (seeds_of(seed_values, 4), threshold(rate));
    let kept: Vec<f32> = keep
        .into_data()
        .convert::<f32>()
        .to_vec()
        .expect("f32 values");
    let probs: Vec<f32> = composed(scores.clone().inner(), 1.0, 0, None)
        .into_data()
        .to_vec()
        .expect("f32 values");
    let mismatches = kept
        .iter()
        .zip(&probs)
        .enumerate()
        .filter(|&(index, (&keep, &p))| {
            p > 0.0 && (keep > 0.0) != kept_on_host(index as u32, seeds, threshold)
        })
        .count();
    assert_eq!(
        mismatches, 0,
        "weights whose mask is not the documented hash"
    );
}

/// Weights in a half type from scores in it (mixed precision), against burn's composition in
/// f32 (as the model's fallback computes it) rounded to the half type.
fn half_weights_match_burn<B: AutodiffBackend>(device: &B::Device, half: FloatDType) {
    let dims = [2, 3, 33, 33];
    let scores = Tensor::<B, 4>::random(dims, Distribution::Normal(0.0, 2.0), device).cast(half);
    let upstream = Tensor::<B, 4>::random(dims, Distribution::Normal(0.0, 1.0), device);
    let run = |fused_kernels: bool| {
        let scores = scores.clone().require_grad();
        let weights = match fused_kernels {
            true => fused(scores.clone(), 0.125, 0, None),
            false => composed(scores.clone().cast(FloatDType::F32), 0.125, 0, None).cast(half),
        };
        assert_eq!(weights.dtype(), DType::from(half));
        let grads = (weights.clone().cast(FloatDType::F32) * upstream.clone())
            .sum()
            .backward();
        (weights, scores.grad(&grads).expect("a gradient"))
    };
    let ((weights, grad), (expected, expected_grad)) = (run(true), run(false));
    assert!(relative(weights, expected) < 1e-2, "{half:?} weights");
    assert!(relative(grad, expected_grad) < 2e-2, "{half:?} gradient");
}
