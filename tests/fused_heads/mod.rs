//! quill-gpu-kernels' head split against burn's slices and views (what the model does without
//! it), forward and backward, on a GPU backend: wgpu (lavapipe in CI) and CUDA. Moving values
//! rounds nothing, so both must agree exactly.

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, FloatDType};
use quill_gpu_kernels::{merge_heads, split_heads};

/// Every check below, on `B`, in f32 and in each of `halves`.
pub fn check_all<B: AutodiffBackend>(device: &B::Device, halves: &[FloatDType]) {
    // Heads of one value; several heads of a model's width; one head.
    for (dims, heads) in [([2, 5, 6], 2), ([3, 7, 3 * 4 * 16], 4), ([1, 2, 3 * 40], 1)] {
        matches_burn::<B>(device, dims, heads, FloatDType::F32);
        for &half in halves {
            matches_burn::<B>(device, dims, heads, half);
        }
    }
    // Without autodiff (evaluation, sampling with the KV cache).
    let qkv = Tensor::<B::InnerBackend, 3>::random([2, 3, 24], Distribution::Default, device);
    let Ok(parts) = split_heads(qkv.clone(), 4) else {
        panic!("the kernel takes this backend's f32 tensors without autodiff");
    };
    for (part, expected) in parts.into_iter().zip(burns(qkv, 4)) {
        assert_eq!(values(part), values(expected), "without autodiff");
    }
    merge_matches_burn::<B>(device);
    // A width that is no multiple of three heads is handed back.
    let odd = Tensor::<B, 3>::zeros([1, 2, 10], device);
    assert!(
        split_heads(odd, 2).is_err(),
        "width 10 in 2 heads of q, k and v"
    );
}

/// burn's split, as the model does it without the kernels.
fn burns<B: Backend>(qkv: Tensor<B, 3>, heads: usize) -> [Tensor<B, 4>; 3] {
    let [batch, seq, width] = qkv.dims();
    let parts: [Tensor<B, 3>; 3] = qkv.chunk(3, 2).try_into().expect("three chunks");
    parts.map(|t| {
        t.reshape([batch, seq, heads, width / 3 / heads])
            .swap_dims(1, 2)
    })
}

/// q, k and v, and qkv's gradient for a loss `Σ q⊙a + kᵀ⊙bᵀ + v⊙c`, both ways: k enters
/// transposed, as it does attention's scores, so its gradient arrives as a transposed view
/// (which the merge kernel reads through its strides).
fn matches_burn<B: AutodiffBackend>(
    device: &B::Device,
    dims: [usize; 3],
    heads: usize,
    dtype: FloatDType,
) {
    let what = format!("{dims:?} in {heads} heads, {dtype:?}");
    let qkv = Tensor::<B, 3>::random(dims, Distribution::Default, device).cast(dtype);
    let weights = burns(qkv.clone().detach(), heads)
        .map(|part| Tensor::<B, 4>::random(part.dims(), Distribution::Default, device).cast(dtype));
    let run = |parts: [Tensor<B, 4>; 3], qkv: &Tensor<B, 3>| {
        let outputs = parts.clone().map(values);
        let loss = parts
            .into_iter()
            .zip(weights.clone())
            .enumerate()
            .map(|(which, (part, w))| match which {
                1 => (part.swap_dims(2, 3) * w.swap_dims(2, 3)).sum(),
                _ => (part * w).sum(),
            })
            .reduce(|a, b| a + b)
            .expect("three parts");
        let grads = loss.backward();
        (outputs, values(qkv.grad(&grads).expect("a gradient")))
    };
    let fused_qkv = qkv.clone().detach().require_grad();
    let Ok(parts) = split_heads(fused_qkv.clone(), heads) else {
        panic!("the kernels take this backend's tensors ({what})");
    };
    let fused = run(parts, &fused_qkv);
    let burn_qkv = qkv.detach().require_grad();
    let burn = run(burns(burn_qkv.clone(), heads), &burn_qkv);
    assert_eq!(fused.0, burn.0, "q, k, v: {what}");
    assert_eq!(fused.1, burn.1, "qkv's gradient: {what}");
}

fn values<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor
        .cast(FloatDType::F32)
        .into_data()
        .to_vec::<f32>()
        .expect("f32 values")
}

/// The heads' merge after attention: the values of burn's `swap_dims` + `reshape`, and the same
/// gradient (which comes back contiguous); without autodiff, handed back.
fn merge_matches_burn<B: AutodiffBackend>(device: &B::Device) {
    let dims = [2, 3, 5, 4];
    let y = Tensor::<B, 4>::random(dims, Distribution::Default, device);
    let w = Tensor::<B, 3>::random([2, 5, 12], Distribution::Default, device);
    let run = |kernels: bool| {
        let y = y.clone().detach().require_grad();
        let merged = match kernels {
            true => match merge_heads(y.clone()) {
                Ok(merged) => merged,
                Err(_) => panic!("the merge takes this backend's tensors with autodiff"),
            },
            false => y.clone().swap_dims(1, 2).reshape([2, 5, 12]),
        };
        let grads = (merged.clone() * w.clone()).sum().backward();
        (values(merged), values(y.grad(&grads).expect("a gradient")))
    };
    assert_eq!(run(true), run(false), "the heads' merge");
    let inner = Tensor::<B::InnerBackend, 4>::zeros(dims, device);
    assert!(merge_heads(inner).is_err(), "without autodiff");
}
