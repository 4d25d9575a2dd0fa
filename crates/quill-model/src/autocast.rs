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

/// The float type matrix products run in: the weights' own (`None`, plain f32 training) or a
/// half type under f32 weights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Autocast {
    half: Option<FloatDType>,
}

impl Autocast {
    /// Products in the weights' own type: no casts anywhere.
    pub const OFF: Self = Self { half: None };

    /// Products in `half` (bf16 or f16) under f32 weights.
    pub fn to(half: FloatDType) -> Self {
        Self { half: Some(half) }
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
    /// README's speed section for the measured difference).
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
        let [batch, seq, _] = x.dims();
        let d_out = weight.dims()[1];
        let x = self.down(x.flatten::<2>(0, 1));
        linear(x, self.down(weight), bias).reshape([batch, seq, d_out])
    }
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
}
