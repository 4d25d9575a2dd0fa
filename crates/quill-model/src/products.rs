//! Matrix products of the model: through cuBLAS on `quill-cuda` with `QUILL_MATMUL=cublas`
//! (quill-cublas, through the `cuda-kernels` feature), through burn's own product elsewhere.

use burn::prelude::*;

/// `a·b` over the last two dimensions, both with the same batch dimensions.
pub fn matmul<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> Tensor<B, D> {
    #[cfg(feature = "cuda-kernels")]
    let [a, b] = match quill_cublas::matmul(a, b) {
        Ok(product) => return product,
        Err(inputs) => inputs,
    };
    a.matmul(b)
}

/// Whether the products go to cuBLAS (then every product of the model should: see
/// `attention.rs`).
pub fn cublas() -> bool {
    #[cfg(feature = "cuda-kernels")]
    return quill_cublas::enabled();
    #[cfg(not(feature = "cuda-kernels"))]
    false
}

/// A linear layer's input, weight and bias: `[rows, d_in]`, `[d_in, d_out]`, `[d_out]`.
pub type LinearInputs<B> = (Tensor<B, 2>, Tensor<B, 2>, Option<Tensor<B, 1>>);

/// `x·weight + bias`, or `Err` with the inputs when no product here takes them (burn's
/// `linear` does then).
pub fn linear<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Result<Tensor<B, 2>, LinearInputs<B>> {
    #[cfg(feature = "cuda-kernels")]
    let (x, weight) = match quill_cublas::matmul(x, weight) {
        Ok(y) => {
            return Ok(match bias {
                Some(bias) => y + bias.unsqueeze(),
                None => y,
            });
        }
        Err([x, weight]) => (x, weight),
    };
    Err((x, weight, bias))
}
