//! How quill's kernels enter burn's graphs: each is a custom operation in burn-fusion's queue
//! ([`queue`]), so that it runs in order with the kernels fused around it, and the modules
//! named `*_graph` record them in autodiff's graph with their backward kernels. Generic over
//! the cubecl runtime: the same code serves quill-cuda's backend and quill-wgpu's.

use std::fmt;
use std::marker::PhantomData;

use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, FloatDType, Shape};
use burn_autodiff::Autodiff;
use burn_cubecl::fusion::FusionCubeRuntime;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime};
use burn_fusion::stream::{Operation, OperationStreams};
use burn_fusion::{Fusion, FusionRuntime};
use burn_ir::{CustomOpIr, HandleContainer, OperationIr, TensorIr};

/// A cubecl backend as quill's GPU runners build it (f32 floats, i32 integers), without and
/// with burn-fusion.
pub type Inner<R, BT> = CubeBackend<R, f32, i32, BT>;
pub type Fused<R, BT> = Fusion<Inner<R, BT>>;
pub(crate) type Handle<R> = <FusionCubeRuntime<R> as FusionRuntime>::FusionHandle;
/// A float tensor of [`Fused`].
pub type FusedTensor<R, BT> = FloatTensor<Fused<R, BT>>;
/// A float tensor of `Autodiff<Fused>`.
pub type Tracked<R, BT> = FloatTensor<Autodiff<Fused<R, BT>>>;

/// `run` queued in burn-fusion's stream after the operations that produce `inputs`: when the
/// stream executes it, `run` gets the inputs as burn-cubecl tensors, in order, and returns the
/// `outputs` (shape and dtype each), in order. `name` names the operation in burn's IR.
pub(crate) fn queue<R, BT, F>(
    name: &'static str,
    inputs: Vec<FusedTensor<R, BT>>,
    outputs: impl IntoIterator<Item = (Shape, DType)>,
    run: F,
) -> Vec<FusedTensor<R, BT>>
where
    R: CubeRuntime,
    BT: BoolElement,
    F: Fn(Vec<CubeTensor<R>>) -> Vec<CubeTensor<R>> + Send + Sync + 'static,
{
    let client = inputs.first().expect("an operation's input").client.clone();
    let streams = OperationStreams::with_inputs(inputs.iter());
    let outputs: Vec<TensorIr> = outputs
        .into_iter()
        .map(|(shape, dtype)| TensorIr::uninit(client.create_empty_handle(), shape, dtype))
        .collect();
    let inputs: Vec<TensorIr> = inputs.into_iter().map(|t| t.into_ir()).collect();
    let desc = CustomOpIr::new(name, &inputs, &outputs);
    let op = KernelOp::<R, BT, F> {
        desc: desc.clone(),
        run,
        runtime: PhantomData,
    };
    client.register(streams, OperationIr::Custom(desc), op)
}

/// One of [`queue`]'s operations.
struct KernelOp<R, BT, F> {
    desc: CustomOpIr,
    run: F,
    runtime: PhantomData<fn() -> (R, BT)>,
}

impl<R, BT, F> Operation<FusionCubeRuntime<R>> for KernelOp<R, BT, F>
where
    R: CubeRuntime,
    BT: BoolElement,
    F: Fn(Vec<CubeTensor<R>>) -> Vec<CubeTensor<R>> + Send + Sync + 'static,
{
    fn execute(&self, handles: &mut HandleContainer<Handle<R>>) {
        let inputs = self
            .desc
            .inputs
            .iter()
            .map(|ir| handles.get_float_tensor::<Inner<R, BT>>(ir))
            .collect();
        let results = (self.run)(inputs);
        debug_assert_eq!(results.len(), self.desc.outputs.len(), "{}", self.desc.id);
        for (out, result) in self.desc.outputs.iter().zip(results) {
            handles.register_float_tensor::<Inner<R, BT>>(&out.id, result);
        }
    }
}

// By hand: a derive would ask the runtime types and the closure for `Debug` too.
impl<R, BT, F> fmt::Debug for KernelOp<R, BT, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.desc.id)
    }
}

/// `N` tensors out of a [`queue`]d operation that returns `N`.
pub(crate) fn exactly<T, const N: usize>(tensors: Vec<T>) -> [T; N] {
    let count = tensors.len();
    tensors
        .try_into()
        .unwrap_or_else(|_| unreachable!("{N} tensors expected, {count} given"))
}

/// `dtype` as burn's float dtypes (the kernels take f32, bf16 and f16 only).
pub fn float_dtype(dtype: DType) -> FloatDType {
    match dtype {
        DType::BF16 => FloatDType::BF16,
        DType::F16 => FloatDType::F16,
        _ => FloatDType::F32,
    }
}
