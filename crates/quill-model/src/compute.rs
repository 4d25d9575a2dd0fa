//! How the model computes: which kernels run its operations (quill-backend's `Kernels`,
//! carried as a value) and in which float type its matrix products run.
//!
//! Mixed precision as PyTorch's `torch.autocast(dtype=torch.bfloat16)` does it, and as nanoGPT
//! trains on GPUs: the weights (and so the optimizer state) stay f32; matrix products read and
//! write a half type (tensor cores); layer norm, softmax, the residual stream and the loss stay
//! in f32. burn 0.21 has no autocast, so the model casts at those boundaries itself: a product's
//! inputs go down, its output comes back up where an f32 operation reads it. Gradients flow
//! through the casts back to the f32 weights.

use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::FloatDType;
use burn::tensor::module::linear;
use quill_backend::Kernels;

/// The kernels of the model's operations and the float type its matrix products run in: the
/// weights' own (`half: None`, plain f32 training) or a half type under f32 weights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compute {
    half: Option<FloatDType>,
    pub kernels: Kernels,
}

impl Compute {
    /// Products in the weights' own type (no casts anywhere), quill's kernels.
    pub const OFF: Self = Self {
        half: None,
        kernels: Kernels::QUILL,
    };

    /// Products in `half` (bf16 or f16) under f32 weights.
    pub fn to(half: FloatDType) -> Self {
        Self {
            half: Some(half),
            ..Self::OFF
        }
    }

    /// The same products, computed by `kernels`.
    pub fn with_kernels(self, kernels: Kernels) -> Self {
        Self { kernels, ..self }
    }

    /// Products in the weights' own type, with the same kernels (generation).
    pub fn full_precision(self) -> Self {
        Self { half: None, ..self }
    }

    /// How many parts a layer's input of `batch` sequences is cut into for its weight gradient
    /// (`kernels.weight_grad_split`): whole sequences per part, so a part count that does not
    /// divide the batch falls to the largest that does.
    ///
    /// A weight gradient `xᵀ·dy` of `[d_in, d_out]` sums over all `batch·seq` positions: on a
    /// GPU that is one long product with few output tiles (384×384 is 9 tiles of 128×128 for
    /// the 132 multiprocessors of an H200), and burn 0.21's matrix-product kernels do not split
    /// the sum themselves as cuBLAS does. Running the layer over `[parts, batch·seq/parts,
    /// d_in]` instead makes burn's backward pass compute `parts` partial gradients side by side
    /// and sum them (the forward pass is the same products, batched). Values change only by
    /// rounding.
    fn parts(self, batch: usize) -> usize {
        gcd(batch, self.kernels.weight_grad_split.max(1))
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
        self.kernels
            .linear(x, weight, bias)
            .reshape([batch, seq, d_out])
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
        let half = Compute::to(FloatDType::BF16);
        let y = half.linear(&layer, x.clone());
        assert_eq!(y.dtype(), DType::BF16);
        let exact = Compute::OFF.linear(&layer, x);
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
            let y = Compute::OFF
                .with_kernels(Kernels {
                    weight_grad_split: parts,
                    ..Kernels::QUILL
                })
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
        let split = |parts| {
            Compute::OFF.with_kernels(Kernels {
                weight_grad_split: parts,
                ..Kernels::QUILL
            })
        };
        assert_eq!(split(4).parts(6), 2);
        assert_eq!(split(8).parts(64), 8);
        assert_eq!(split(0).parts(64), 1);
    }
}
