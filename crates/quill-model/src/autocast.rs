//! Mixed precision as PyTorch's `torch.autocast(dtype=torch.bfloat16)` does it, and as nanoGPT
//! trains on GPUs: the weights (and so the optimizer state) stay f32; matrix products read and
//! write a half type (tensor cores); layer norm, softmax, the residual stream and the loss stay
//! in f32. burn 0.21 has no autocast, so the model casts at those boundaries itself: a product's
//! inputs go down, its output comes back up where an f32 operation reads it. Gradients flow
//! through the casts back to the f32 weights.

use std::sync::atomic::{AtomicUsize, Ordering};

use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::FloatDType;
use burn::tensor::module::linear;

/// The environment variable that overrides the runner's [`weight_grad_split`] (benchmarks).
pub const WEIGHT_GRAD_SPLIT_ENV: &str = "QUILL_WEIGHT_GRAD_SPLIT";

static WEIGHT_GRAD_SPLIT: AtomicUsize = AtomicUsize::new(1);

/// Sets how many partial products each linear layer's weight gradient is computed as in
/// training (split-K); 1 (the default) computes it as one product. Called once by a runner's
/// `main`, before any model exists.
///
/// A weight gradient `xᵀ·dy` of `[d_in, d_out]` sums over all `batch·seq` positions: on a GPU
/// that is one long product with few output tiles (384×384 is 9 tiles of 128×128 for the 132
/// multiprocessors of an H200), and burn 0.21's matrix-product kernels do not split the sum
/// themselves as cuBLAS does. Running the layer over `[parts, batch·seq/parts, d_in]` instead
/// makes burn's backward pass compute `parts` partial gradients side by side and sum them
/// (the forward pass is the same products, batched). Values change only by rounding.
pub fn set_weight_grad_split(parts: usize) {
    WEIGHT_GRAD_SPLIT.store(parts.max(1), Ordering::Relaxed);
}

/// The split set by [`set_weight_grad_split`].
pub fn weight_grad_split() -> usize {
    WEIGHT_GRAD_SPLIT.load(Ordering::Relaxed)
}

/// The float type matrix products run in: the weights' own (`None`, plain f32 training) or a
/// half type under f32 weights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Autocast {
    half: Option<FloatDType>,
    /// Partial products per weight gradient in training (see [`set_weight_grad_split`]); 0 and
    /// 1 both mean one product.
    weight_grad_parts: usize,
}

impl Autocast {
    /// Products in the weights' own type: no casts anywhere.
    pub const OFF: Self = Self {
        half: None,
        weight_grad_parts: 1,
    };

    /// Products in `half` (bf16 or f16) under f32 weights.
    pub fn to(half: FloatDType) -> Self {
        Self {
            half: Some(half),
            weight_grad_parts: 1,
        }
    }

    /// The same products, with each weight gradient computed as `parts` partial products in
    /// training (see [`set_weight_grad_split`]).
    pub fn with_weight_grad_split(self, parts: usize) -> Self {
        Self {
            weight_grad_parts: parts,
            ..self
        }
    }

    /// How many parts a layer's input of `batch` sequences is cut into: whole sequences per
    /// part, so a part count that does not divide the batch falls to the largest that does.
    fn parts(self, batch: usize) -> usize {
        gcd(batch, self.weight_grad_parts.max(1))
    }

    pub fn is_on(self) -> bool {
        self.half.is_some()
    }

    /// `x` in the products' type (the operand of a matrix product).
    pub fn down<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self.half {
            Some(half) => x.cast(half),
            None => x,
        }
    }

    /// `x` back in f32, for an operation that must not run in half precision.
    pub fn up<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self.half {
            Some(_) => x.cast(FloatDType::F32),
            None => x,
        }
    }

    /// Applies `layer` to every position of `x: [batch, seq, d_in]` as one
    /// `[batch·seq, d_in] × [d_in, d_out]` product, as PyTorch's `F.linear` does; the result is
    /// in the products' type.
    ///
    /// burn's `Linear` on a rank-3 input runs a batched product, one small GEMM per sequence,
    /// and its weight gradient is `batch` products summed afterwards. One flat product is a
    /// single large GEMM both ways, which the CPU backends split across cores (see the
    /// CPU figures in docs/performance.md for the measured difference).
    pub fn linear<B: Backend>(self, layer: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let bias = layer.bias.as_ref().map(|b| self.down(b.val()));
        self.linear_weight(layer.weight.val(), bias, x)
    }

    /// [`linear`](Self::linear) for a bare weight `[d_in, d_out]` (the tied head).
    pub fn linear_weight<B: Backend>(
        self,
        weight: Tensor<B, 2>,
        bias: Option<Tensor<B, 1>>,
        x: Tensor<B, 3>,
    ) -> Tensor<B, 3> {
        let [batch, seq, d_in] = x.dims();
        let d_out = weight.dims()[1];
        let x = self.down(x);
        let parts = match B::ad_enabled(&x.device()) {
            true => self.parts(batch),
            false => 1,
        };
        if parts > 1 {
            let x = x.reshape([parts, batch / parts * seq, d_in]);
            return linear(x, self.down(weight), bias).reshape([batch, seq, d_out]);
        }
        let (x, weight) = (x.flatten::<2>(0, 1), self.down(weight));
        // cuBLAS's product on quill-cuda with QUILL_MATMUL=cublas.
        let (x, weight, bias) = match crate::products::linear(x, weight, bias) {
            Ok(y) => return y.reshape([batch, seq, d_out]),
            Err(inputs) => inputs,
        };
        // burn-flex in f32: the products called directly, both backward ones side by side.
        #[cfg(feature = "cpu-kernels")]
        let (x, weight, bias) = match quill_kernels::fused_linear(x, weight, bias) {
            Ok(y) => return y.reshape([batch, seq, d_out]),
            Err(inputs) => inputs,
        };
        linear(x, weight, bias).reshape([batch, seq, d_out])
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::nn::LinearConfig;
    use burn::tensor::{DType, Distribution};

    type A = Autodiff<Flex>;

    #[test]
    fn products_run_in_bf16_and_gradients_reach_the_f32_weights() {
        let device = Default::default();
        let layer: Linear<A> = LinearConfig::new(8, 5).init(&device);
        let x = Tensor::<A, 3>::random([2, 3, 8], Distribution::Default, &device);
        let half = Autocast::to(FloatDType::BF16);
        let y = half.linear(&layer, x.clone());
        assert_eq!(y.dtype(), DType::BF16);
        let exact = Autocast::OFF.linear(&layer, x);
        assert_eq!(exact.dtype(), DType::F32);
        // bf16 keeps 8 bits of mantissa: the products agree to about 1%.
        let diff = (half.up(y.clone()) - exact.clone())
            .abs()
            .max()
            .into_scalar();
        let scale = exact.clone().abs().max().into_scalar();
        assert!(diff <= 0.02 * scale && diff > 0.0, "{diff} vs {scale}");

        let grads = half.up(y).sum().backward();
        let grad = layer.weight.grad(&grads).unwrap();
        assert_eq!(grad.dtype(), DType::F32);
        let exact_grad = layer.weight.grad(&exact.sum().backward()).unwrap();
        let diff = (grad - exact_grad.clone()).abs().max().into_scalar();
        assert!(
            diff <= 0.02 * exact_grad.abs().max().into_scalar(),
            "{diff}"
        );
    }

    #[test]
    fn a_split_weight_gradient_equals_the_whole_one() {
        let device = Default::default();
        let layer: Linear<A> = LinearConfig::new(8, 5).init(&device);
        let x = Tensor::<A, 3>::random([6, 3, 8], Distribution::Default, &device);
        let run = |parts| {
            let y = Autocast::OFF
                .with_weight_grad_split(parts)
                .linear(&layer, x.clone());
            let grads = (y.clone() * y.clone()).sum().backward();
            let weight = layer.weight.grad(&grads).unwrap();
            let bias = layer.bias.as_ref().unwrap().grad(&grads).unwrap();
            (y.inner(), weight, bias)
        };
        let (y, weight, bias) = run(1);
        // 4 does not divide the batch of 6: two parts of three sequences.
        for parts in [2, 3, 4, 6] {
            let (y_split, weight_split, bias_split) = run(parts);
            y_split
                .into_data()
                .assert_approx_eq::<f32>(&y.clone().into_data(), Default::default());
            let diff = (weight_split - weight.clone()).abs().max().into_scalar();
            assert!(
                diff < 1e-5 * weight.clone().abs().max().into_scalar().max(1.0),
                "{diff}"
            );
            bias_split
                .into_data()
                .assert_approx_eq::<f32>(&bias.clone().into_data(), Default::default());
        }
        assert_eq!(Autocast::OFF.with_weight_grad_split(4).parts(6), 2);
        assert_eq!(Autocast::OFF.with_weight_grad_split(8).parts(64), 8);
        assert_eq!(Autocast::OFF.with_weight_grad_split(0).parts(64), 1);
    }
}
