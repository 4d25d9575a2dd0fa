use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::module::linear;

/// Applies `layer` to every position of `x: [batch, seq, d_in]` as one
/// `[batch·seq, d_in] × [d_in, d_out]` product, as PyTorch's `F.linear` does.
///
/// burn's `Linear` on a rank-3 input runs a batched product, one small GEMM per sequence, and
/// its weight gradient is `batch` products summed afterwards. One flat product is a single
/// large GEMM both ways, which the CPU backends split across cores (see the README's speed
/// section for the measured difference).
pub fn tokenwise<B: Backend>(layer: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [batch, seq, _] = x.dims();
    let y = layer.forward(x.flatten::<2>(0, 1));
    let d_out = y.dims()[1];
    y.reshape([batch, seq, d_out])
}

/// [`tokenwise`] for a bare weight `[d_in, d_out]` without bias (the tied head).
pub fn tokenwise_weight<B: Backend>(weight: Tensor<B, 2>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [batch, seq, _] = x.dims();
    let d_out = weight.dims()[1];
    linear(x.flatten::<2>(0, 1), weight, None).reshape([batch, seq, d_out])
}
