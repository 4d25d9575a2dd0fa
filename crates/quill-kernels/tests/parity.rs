//! The fused burn-flex kernels against burn's own composition of the same operation, on the
//! same backend: values and gradients.

use burn::backend::Autodiff;
use burn::backend::flex::Flex;
use burn::prelude::*;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use quill_kernels::{fused_causal_attention, gelu};

type Train = Autodiff<Flex>;

/// Deterministic values in about [-scale, scale].
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn tensor<B: Backend, const D: usize>(shape: [usize; D], seed: u64, scale: f32) -> Tensor<B, D> {
    let n = shape.iter().product();
    Tensor::from_data(
        TensorData::new(values(n, seed, scale), shape),
        &Default::default(),
    )
}

fn max_abs_diff<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f32 {
    let a: Vec<f32> = a.into_data().to_vec().unwrap();
    let b: Vec<f32> = b.into_data().to_vec().unwrap();
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The fused kernel, which takes every burn-flex tensor.
fn causal_attention<B: Backend>(qkv: Tensor<B, 3>, n_head: usize) -> Tensor<B, 3> {
    fused_causal_attention(qkv, n_head, 0.0).expect("a burn-flex tensor")
}

/// The reference: burn's attention op on the heads split out of `qkv`, merged again.
fn composed<B: Backend>(qkv: Tensor<B, 3>, n_head: usize) -> Tensor<B, 3> {
    let [batch, seq, width] = qkv.dims();
    let head_dim = width / 3 / n_head;
    let [q, k, v]: [Tensor<B, 3>; 3] = qkv.chunk(3, 2).try_into().unwrap();
    let [q, k, v] = [q, k, v].map(|t| t.reshape([batch, seq, n_head, head_dim]).swap_dims(1, 2));
    let options = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: true,
    };
    attention(q, k, v, None, None, options)
        .swap_dims(1, 2)
        .reshape([batch, seq, width / 3])
}

/// Output and input gradient of `op` for `input`, with a fixed random upstream gradient.
fn value_and_grad<const D: usize>(
    op: impl Fn(Tensor<Train, D>) -> Tensor<Train, D>,
    input: Tensor<Train, D>,
    upstream_seed: u64,
) -> (Tensor<Flex, D>, Tensor<Flex, D>) {
    let input = input.require_grad();
    let output = op(input.clone());
    let upstream = tensor::<Train, D>(output.dims(), upstream_seed, 1.0);
    let grads = (output.clone() * upstream).sum().backward();
    (output.inner(), input.grad(&grads).expect("input gradient"))
}

#[test]
fn gelu_matches_burns_exact_gelu() {
    let input = || tensor::<Train, 3>([3, 5, 1000], 1, 6.0);
    let (fused, fused_grad) = value_and_grad(gelu, input(), 2);
    let (reference, reference_grad) = value_and_grad(burn::tensor::activation::gelu, input(), 2);
    let (value_diff, grad_diff) = (
        max_abs_diff(fused, reference),
        max_abs_diff(fused_grad, reference_grad),
    );
    assert!(value_diff < 2e-6, "values differ by {value_diff}");
    assert!(grad_diff < 2e-6, "gradients differ by {grad_diff}");

    // Without autodiff (evaluation, generation) the same kernel runs.
    let plain = tensor::<Flex, 3>([3, 5, 1000], 1, 6.0);
    let diff = max_abs_diff(gelu(plain.clone()), burn::tensor::activation::gelu(plain));
    assert!(diff < 2e-6, "values differ by {diff}");
}

fn check_attention(batch: usize, seq: usize, n_embd: usize, n_head: usize) {
    let input = || tensor::<Train, 3>([batch, seq, 3 * n_embd], 3, 2.0);
    let (fused, fused_grad) = value_and_grad(|x| causal_attention(x, n_head), input(), 4);
    let (reference, reference_grad) = value_and_grad(|x| composed(x, n_head), input(), 4);
    assert_eq!(fused.dims(), [batch, seq, n_embd]);
    let (value_diff, grad_diff) = (
        max_abs_diff(fused, reference),
        max_abs_diff(fused_grad, reference_grad),
    );
    assert!(
        value_diff < 1e-5,
        "{batch}x{seq}x{n_embd}/{n_head}: values differ by {value_diff}"
    );
    assert!(
        grad_diff < 1e-5,
        "{batch}x{seq}x{n_embd}/{n_head}: gradients differ by {grad_diff}"
    );

    // No gradient asked for (the autodiff backend's untracked path) and no autodiff at all.
    let untracked = causal_attention(input(), n_head);
    let plain = tensor::<Flex, 3>([batch, seq, 3 * n_embd], 3, 2.0);
    let reference = composed(plain.clone(), n_head);
    assert!(max_abs_diff(untracked.inner(), reference.clone()) < 1e-5);
    assert!(max_abs_diff(causal_attention(plain, n_head), reference) < 1e-5);
}

#[test]
fn causal_attention_matches_burns_composition() {
    check_attention(2, 7, 12, 3);
    check_attention(3, 16, 32, 4);
    check_attention(1, 1, 8, 2);
}

#[test]
fn causal_attention_is_causal() {
    // Changing the last position's queries, keys and values leaves the earlier outputs alone.
    let (batch, seq, n_embd) = (2, 9, 16);
    let qkv = tensor::<Flex, 3>([batch, seq, 3 * n_embd], 5, 2.0);
    let changed = qkv.clone().slice_assign(
        [0..batch, seq - 1..seq, 0..3 * n_embd],
        tensor::<Flex, 3>([batch, 1, 3 * n_embd], 6, 2.0),
    );
    let before = causal_attention(qkv, 4).slice([0..batch, 0..seq - 1, 0..n_embd]);
    let after = causal_attention(changed, 4).slice([0..batch, 0..seq - 1, 0..n_embd]);
    assert_eq!(max_abs_diff(before, after), 0.0);
}

#[test]
fn flex_tensors_take_the_fused_path_and_others_burns() {
    use quill_kernels::route::{Route, route};
    let shape = [2, 3];
    assert!(matches!(
        route(tensor::<Train, 2>(shape, 1, 1.0)),
        Route::FlexAutodiff(_)
    ));
    assert!(matches!(
        route(tensor::<Flex, 2>(shape, 1, 1.0)),
        Route::Flex(_)
    ));
    assert!(matches!(
        route(tensor::<burn::backend::NdArray, 2>(shape, 1, 1.0)),
        Route::Other(_)
    ));
    // Half precision is left to burn.
    let half = tensor::<Flex, 2>(shape, 1, 1.0).cast(burn::tensor::DType::BF16);
    assert!(matches!(route(half), Route::Other(_)));
}

/// The kernel with attention dropout `p` on burn-flex's generator seeded with `seed`.
fn dropped_attention(qkv: Tensor<Train, 3>, n_head: usize, p: f64, seed: u64) -> Tensor<Train, 3> {
    <Flex as Backend>::seed(&Default::default(), seed);
    fused_causal_attention(qkv, n_head, p).expect("a burn-flex tensor")
}

#[test]
fn attention_dropout_is_seeded_unbiased_and_differentiated_exactly() {
    let (batch, seq, n_embd, n_head) = (8, 64, 16, 2);
    // Values of 1: each output is the sum of its row's kept weights, scaled by 1/(1 - p),
    // which is 1 on average and 0 or 2 for the first position (one key) at p = 0.5.
    let ones_v = || {
        let qk = tensor::<Train, 3>([batch, seq, 2 * n_embd], 7, 1.0);
        Tensor::cat(
            vec![qk, Tensor::ones([batch, seq, n_embd], &Default::default())],
            2,
        )
    };
    let out: Vec<f32> = dropped_attention(ones_v(), n_head, 0.5, 1)
        .into_data()
        .to_vec()
        .unwrap();
    let mean = out.iter().sum::<f32>() / out.len() as f32;
    assert!(
        (mean - 1.0).abs() < 0.05,
        "mean output {mean}, want about 1"
    );
    let first: Vec<f32> = out
        .chunks(seq * n_embd)
        .map(|sequence| sequence[0])
        .collect();
    assert!(
        first.iter().all(|&y| y == 0.0 || (y - 2.0).abs() < 1e-6),
        "{first:?}"
    );
    assert!(
        first.contains(&0.0) && first.iter().any(|&y| y > 0.0),
        "{first:?}"
    );

    // The same seed gives the same mask; another seed another one.
    let input = || tensor::<Train, 3>([2, 9, 24], 8, 1.0);
    let a = dropped_attention(input(), 2, 0.3, 5);
    let b = dropped_attention(input(), 2, 0.3, 5);
    let c = dropped_attention(input(), 2, 0.3, 6);
    assert_eq!(max_abs_diff(a.clone(), b), 0.0);
    assert!(max_abs_diff(a, c) > 1e-3);

    // The gradient is that of the forward pass with the same mask: central differences.
    let upstream = tensor::<Train, 3>([2, 9, 8], 9, 1.0);
    let loss = |x: Tensor<Train, 3>| (dropped_attention(x, 2, 0.3, 5) * upstream.clone()).sum();
    let x = input().require_grad();
    let grad: Vec<f32> = x
        .grad(&loss(x.clone()).backward())
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap();
    let base: Vec<f32> = input().into_data().to_vec().unwrap();
    for index in (0..base.len()).step_by(7) {
        let at = |delta: f32| {
            let mut values = base.clone();
            values[index] += delta;
            let x = Tensor::<Train, 3>::from_data(
                TensorData::new(values, [2, 9, 24]),
                &Default::default(),
            );
            loss(x).into_scalar()
        };
        let numeric = (at(1e-2) - at(-1e-2)) / 2e-2;
        assert!(
            (numeric - grad[index]).abs() < 2e-3 + 1e-2 * numeric.abs(),
            "d/dx[{index}]: {} analytic, {numeric} numeric",
            grad[index]
        );
    }
}
