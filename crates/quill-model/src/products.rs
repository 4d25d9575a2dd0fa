//! Matrix products of the model: through cuBLAS on `quill-cuda` (quill-cublas, with the
//! `cuda-kernels` feature, when it is enabled), through burn's own product everywhere else.

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

/// `x·weight + bias` for `x: [rows, d_in]`, `weight: [d_in, d_out]`, `bias: [d_out]`, or
/// `Err` with the inputs when no product here takes them (burn's `linear` does then).
#[allow(clippy::type_complexity)]
pub fn linear<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Result<Tensor<B, 2>, (Tensor<B, 2>, Tensor<B, 2>, Option<Tensor<B, 1>>)> {
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
