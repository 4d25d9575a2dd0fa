//! What the kernels' unit tests share: burn's operations on burn-ndarray are the reference.

use burn::backend::{Autodiff, Flex, NdArray};
use burn::prelude::*;

/// The kernels' side: burn-flex under autodiff.
pub type A = Autodiff<Flex>;
/// The reference's side: burn-ndarray under autodiff.
pub type R = Autodiff<NdArray>;

/// `got` (burn-flex) equals `want` (burn-ndarray) to f32 tolerance.
pub fn same<const D: usize>(got: Tensor<Flex, D>, want: Tensor<NdArray, D>) {
    got.into_data()
        .assert_approx_eq::<f32>(&want.into_data(), Default::default());
}
