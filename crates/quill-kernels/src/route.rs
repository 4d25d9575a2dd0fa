//! Recognising burn-flex tensors inside backend-generic code, with quill-route's type test
//! (quill-route says why a type test rather than a trait bound).

use burn::backend::flex::Flex;
use burn::prelude::*;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, TensorMetadata, TensorPrimitive};
use burn_autodiff::Autodiff;
use burn_flex::FlexTensor;
use quill_route::cast;

/// burn-flex under autodiff, as `quill-cpu` trains.
pub type FlexAutodiff = Autodiff<Flex>;
/// A tensor of [`FlexAutodiff`]: the burn-flex tensor plus its node in the autodiff graph.
pub type FlexAutodiffTensor = FloatTensor<FlexAutodiff>;

/// Where a float tensor of backend `B` can be computed.
pub enum Route<B: Backend> {
    /// burn-flex under autodiff: a fused kernel with its own backward pass.
    FlexAutodiff(FlexAutodiffTensor),
    /// burn-flex without autodiff (evaluation, generation).
    Flex(FlexTensor),
    /// Any other backend, or a dtype the kernels do not handle (f16, bf16).
    Other(FloatTensor<B>),
}

impl<B: Backend> Route<B> {
    /// The tensor again, whichever route it took.
    pub fn into_tensor<const D: usize>(self) -> Tensor<B, D> {
        match self {
            Route::FlexAutodiff(tensor) => back(tensor),
            Route::Flex(tensor) => back(tensor),
            Route::Other(primitive) => Tensor::from_primitive(TensorPrimitive::Float(primitive)),
        }
    }
}

/// Routes `tensor` to the kernels that can compute it.
pub fn route<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Route<B> {
    let primitive = tensor.into_primitive().tensor();
    if primitive.dtype() != DType::F32 {
        return Route::Other(primitive);
    }
    let primitive = match cast::<_, FlexAutodiffTensor>(primitive) {
        Ok(tensor) => return Route::FlexAutodiff(tensor),
        Err(primitive) => primitive,
    };
    match cast::<_, FlexTensor>(primitive) {
        Ok(tensor) => Route::Flex(tensor),
        Err(primitive) => Route::Other(primitive),
    }
}

/// The tensor of backend `B` that `primitive` (computed on the route `tensor` took) is.
pub fn back<B: Backend, P: 'static, const D: usize>(primitive: P) -> Tensor<B, D> {
    match cast::<P, FloatTensor<B>>(primitive) {
        Ok(primitive) => Tensor::from_primitive(TensorPrimitive::Float(primitive)),
        Err(_) => unreachable!("a kernel's output has its input's backend"),
    }
}

/// A burn-flex f32 tensor of `shape` holding `values`.
pub fn flex_tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}
