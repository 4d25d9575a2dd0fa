//! quill-gpu-kernels' residual dropout (`x + dropout(h)` in one kernel each way, its mask a
//! hash never stored) against the same computed on the host from the documented hash, forward
//! and backward, on a GPU backend: wgpu (lavapipe in CI) and CUDA.

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{DType, Distribution, FloatDType};
use quill_gpu_kernels::dropout::{kept_on_host, seeds_of, threshold};
use quill_gpu_kernels::{DropoutMask, residual_dropout};

/// Every check below, on `B`; each of `halves` adds a branch `h` in that dtype on an f32 stream
/// (mixed precision), for the backends that have it.
pub fn check_all<B: AutodiffBackend>(device: &B::Device, halves: &[FloatDType]) {
    // More values than one launch dimension's cubes hold on wgpu (65535 × 256).
    for (dims, rate, salt) in [
        ([2, 5, 7], 0.25, 0),
        ([3, 64, 48], 0.1, 7),
        ([1, 17_000_000, 1], 0.5, 2),
    ] {
        matches_its_mask::<B>(device, dims, rate, salt, None);
    }
    for &half in halves {
        matches_its_mask::<B>(device, [4, 33, 40], 0.2, 3, Some(half));
    }
    masks_differ_by_seed_and_salt::<B>(device);
    // Outside training (no autodiff) the model keeps burn's Dropout, the identity there.
    let x = Tensor::<B::InnerBackend, 3>::ones([1, 2, 3], device);
    let mask = DropoutMask {
        rate: 0.5,
        seed: Tensor::from_floats([0.1, 0.2], device),
        salt: 0,
    };
    assert!(
        residual_dropout(Some(x.clone()), x, mask).is_err(),
        "taken without autodiff"
    );
}

/// `x + dropout(h)` and `dropout(h)`, and their gradients, against the host's rebuild of the
/// mask: `keep · h / (1 − rate)` added to `x`; `x`'s gradient the output's, `h`'s
/// `keep · dy / (1 − rate)`; about `rate` of the values dropped. With `half`, `h` (and its
/// gradient) in that dtype and the sum in f32.
fn matches_its_mask<B: AutodiffBackend>(
    device: &B::Device,
    dims: [usize; 3],
    rate: f64,
    salt: u32,
    half: Option<FloatDType>,
) {
    let values = [0.4142_f32, 0.6083];
    let x = Tensor::<B, 3>::random(dims, Distribution::Normal(0.0, 1.0), device);
    let mut h = Tensor::<B, 3>::random(dims, Distribution::Normal(0.0, 1.0), device);
    if let Some(half) = half {
        h = h.cast(half);
    }
    let upstream = Tensor::<B, 3>::random(dims, Distribution::Normal(0.0, 1.0), device);
    let (keep, kept) = host_mask::<B>(dims, seeds_of(values, salt), threshold(rate), device);
    let scale = 1.0 / (1.0 - rate);
    let case = format!("{dims:?}, rate {rate}, salt {salt}, {half:?}");
    // Relative to each expected value: the kernel computes in f32 and rounds once to `half`,
    // and h's gradient is rounded twice (the cast's backward pass, then the kernel's output),
    // so three unit roundoffs of `half` bound it (bf16 2⁻⁸, f16 2⁻¹¹).
    let relative = match half {
        Some(FloatDType::BF16) => 3.0 * 2f32.powi(-8),
        Some(_) => 3.0 * 2f32.powi(-11),
        None => 0.0,
    };

    for residual in [true, false] {
        let (x, h) = (x.clone().require_grad(), h.clone().require_grad());
        let mask = DropoutMask {
            rate,
            seed: Tensor::from_floats(values, device),
            salt,
        };
        let out = match residual_dropout(residual.then(|| x.clone()), h.clone(), mask) {
            Ok(out) => out,
            Err(_) => panic!("{case}: not routed to the kernels"),
        };
        let expected_dtype = match (residual, half) {
            (false, Some(half)) => DType::from(half),
            _ => DType::F32,
        };
        assert_eq!(out.dtype(), expected_dtype, "{case}");
        let h32 = h.clone().inner().cast(FloatDType::F32);
        let mut expected = h32 * keep.clone() * scale;
        if residual {
            expected = expected + x.clone().inner();
        }
        let out32 = out.clone().cast(FloatDType::F32);
        assert!(
            beyond(out32.clone().inner(), expected, relative) < 1e-5,
            "{case}, residual {residual}: values"
        );
        let grads = (out32 * upstream.clone()).sum().backward();
        let grad_h = h.grad(&grads).expect("h's gradient");
        assert_eq!(grad_h.dtype(), h.dtype(), "{case}: h's gradient's dtype");
        let expected_h = upstream.clone().inner() * keep.clone() * scale;
        assert!(
            beyond(grad_h.cast(FloatDType::F32), expected_h, relative) < 1e-5,
            "{case}, residual {residual}: h's gradient"
        );
        match (residual, x.grad(&grads)) {
            (true, Some(grad_x)) => assert_eq!(
                largest(grad_x - upstream.clone().inner()),
                0.0,
                "{case}: x's gradient"
            ),
            (false, None) => {}
            (_, grad_x) => panic!("{case}, residual {residual}: x's gradient {grad_x:?}"),
        }
    }
    // Counted on the host: lavapipe cuts reductions over more than 65535 values short (see
    // docs/gpu.md, "wgpu without a GPU").
    let dropped = 1.0 - kept;
    if dims.iter().product::<usize>() > 10_000 {
        assert!((dropped - rate).abs() < 0.01, "{case}: dropped {dropped}");
    }
}

/// Another seed, or another salt (another use in the same pass), drops other values.
fn masks_differ_by_seed_and_salt<B: AutodiffBackend>(device: &B::Device) {
    let h = Tensor::<B, 3>::ones([2, 64, 64], device);
    let dropped = |values: [f32; 2], salt: u32| {
        let seed = Tensor::from_floats(values, device);
        let mask = DropoutMask {
            rate: 0.5,
            seed,
            salt,
        };
        match residual_dropout(None, h.clone(), mask) {
            Ok(out) => out.inner(),
            Err(_) => panic!("not routed to the kernels"),
        }
    };
    let base = dropped([0.25, 0.5], 1);
    assert_eq!(
        largest(dropped([0.25, 0.5], 1) - base.clone()),
        0.0,
        "the same mask again"
    );
    for (other, what) in [
        (dropped([0.26, 0.5], 1), "seed"),
        (dropped([0.25, 0.5], 2), "salt"),
    ] {
        // Two independent masks at 0.5 disagree on about half of the values.
        let disagree = (other - base.clone())
            .abs()
            .greater_elem(0.5)
            .float()
            .mean();
        let disagree = disagree.into_scalar().elem::<f32>();
        assert!(
            (disagree - 0.5).abs() < 0.05,
            "another {what}: {disagree} differ"
        );
    }
}

/// `1` where the documented hash keeps value `index` of a contiguous `dims` tensor, `0` where it
/// drops it; and the share kept.
fn host_mask<B: AutodiffBackend>(
    dims: [usize; 3],
    seeds: [u32; 2],
    threshold: u32,
    device: &B::Device,
) -> (Tensor<B::InnerBackend, 3>, f64) {
    let count = dims.iter().product::<usize>();
    let keep: Vec<f32> = (0..count as u32)
        .map(|index| f32::from(u8::from(kept_on_host(index, seeds, threshold))))
        .collect();
    let kept = keep.iter().map(|&k| f64::from(k)).sum::<f64>() / count as f64;
    let mask = Tensor::<B::InnerBackend, 1>::from_floats(keep.as_slice(), device).reshape(dims);
    (mask, kept)
}

/// The largest absolute value of `t`, found on the host (see `dropped` above).
fn largest<B: Backend>(t: Tensor<B, 3>) -> f32 {
    host_values(t)
        .iter()
        .fold(0.0, |most, v| most.max(finite_or_inf(v.abs())))
}

/// How far `actual` strays beyond `relative` of `expected`, at worst: the largest
/// `|actual − expected| − relative · |expected|` (0 or less where every value is within it),
/// on the host.
fn beyond<B: Backend>(actual: Tensor<B, 3>, expected: Tensor<B, 3>, relative: f32) -> f32 {
    let (actual, expected) = (host_values(actual), host_values(expected));
    actual
        .iter()
        .zip(&expected)
        .map(|(a, e)| finite_or_inf((a - e).abs() - relative * e.abs()))
        .fold(f32::MIN, f32::max)
}

/// `x`, or infinity where it is NaN: `f32::max` skips NaN, and a NaN must fail the checks.
fn finite_or_inf(x: f32) -> f32 {
    if x.is_nan() { f32::INFINITY } else { x }
}

fn host_values<B: Backend>(t: Tensor<B, 3>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().expect("f32 values")
}
