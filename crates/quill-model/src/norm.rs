//! The norms of the model: the residual stream's (layer or RMS norm, with a gain) before each
//! branch and the head, and the parameter-free RMS norm of queries and keys (`qk_norm`).

use burn::nn::LayerNorm;
use burn::prelude::*;
use quill_backend::Kernels;

use crate::config::Norm;
use crate::init::LAYER_NORM_EPSILON;

/// `norm` of kind `kind` applied to `x` over its last dimension. Layer norm runs on `kernels`'
/// fused kernel where it has one for the tensors (burn-flex, the GPU runners' backends) and on
/// burn's `LayerNorm` elsewhere; RMS norm is `rms_norm(x) · gamma (+ beta)` in burn's
/// operations (no fused kernel: its cost is in docs/performance.md).
pub fn normalize<B: Backend, const D: usize>(
    kind: Norm,
    norm: &LayerNorm<B>,
    x: Tensor<B, D>,
    kernels: &Kernels,
) -> Tensor<B, D> {
    if kind == Norm::Rms {
        let y = rms_norm(x) * norm.gamma.val().unsqueeze();
        return match &norm.beta {
            Some(beta) => y + beta.val().unsqueeze(),
            None => y,
        };
    }
    let inputs = (
        x,
        norm.gamma.val(),
        norm.beta.as_ref().map(|beta| beta.val()),
    );
    match kernels.layer_norm(inputs, LAYER_NORM_EPSILON) {
        Ok(y) => y,
        Err((x, _, _)) => norm.forward(x),
    }
}

/// `x / sqrt(mean(x²) + ε)` over the last dimension, without gains (PyTorch's `F.rms_norm`
/// with ε = 1e-5, as the layer norms).
pub fn rms_norm<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let inverse = inverse_rms(&x);
    x * inverse
}

/// `1 / sqrt(mean(x²) + ε)` over the last dimension (kept, of size 1).
pub fn inverse_rms<B: Backend, const D: usize>(x: &Tensor<B, D>) -> Tensor<B, D> {
    let mean_square = x.clone().square().mean_dim(D - 1);
    mean_square.add_scalar(LAYER_NORM_EPSILON).sqrt().recip()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::nn::LayerNormConfig;

    type B = NdArray;

    #[test]
    fn rms_norm_divides_by_the_root_mean_square_and_keeps_the_mean() {
        let device = Default::default();
        let x = Tensor::<B, 2>::from_floats([[1.0, 2.0, 3.0, 6.0], [-2.0, 0.0, 2.0, 4.0]], &device);
        let y = rms_norm(x).into_data().to_vec::<f32>().unwrap();
        // Row 1: mean of squares (1 + 4 + 9 + 36) / 4 = 12.5.
        let r = (12.5f32 + 1e-5).sqrt();
        let expected_row_1 = [1.0 / r, 2.0 / r, 3.0 / r, 6.0 / r];
        for (got, want) in y[..4].iter().zip(expected_row_1) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        // Not centred: a layer norm would make row 2's mean zero, RMS norm keeps it positive.
        assert!(y[4..].iter().sum::<f32>() > 0.5);
    }

    #[test]
    fn the_norm_kind_chooses_layer_or_rms_norm_with_the_same_gain() {
        let device = Default::default();
        let mut norm: LayerNorm<B> = LayerNormConfig::new(4).init(&device);
        norm.gamma = burn::module::Param::from_tensor(Tensor::from_floats([2.0; 4], &device));
        let x = Tensor::<B, 2>::from_floats([[1.0, 2.0, 3.0, 6.0]], &device);
        let rms = normalize(Norm::Rms, &norm, x.clone(), &Kernels::BURN);
        let expected = rms_norm(x.clone()) * 2.0;
        rms.clone()
            .into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Default::default());
        let layer = normalize(Norm::Layer, &norm, x.clone(), &Kernels::BURN);
        layer
            .clone()
            .into_data()
            .assert_approx_eq::<f32>(&norm.forward(x).into_data(), Default::default());
        let differ = (layer - rms).abs().max().into_scalar();
        assert!(differ > 0.1);
    }
}
