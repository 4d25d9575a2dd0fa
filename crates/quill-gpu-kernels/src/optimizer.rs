//! The optimizer's kernels in burn-fusion's queue (the AdamW step, [`crate::adamw`], and the
//! gradients' sum of squares for clipping, [`crate::squares`]), and [`adamw_step`] and
//! [`sum_of_squares`], the routes from the optimizer's generic tensors to them. Neither is
//! differentiated: the optimizer works outside autodiff's graph.

use burn::prelude::*;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, TensorPrimitive};
use burn_cubecl::{BoolElement, CubeRuntime};
use quill_route::{convert, is};

use crate::adamw::{self, StepRequest, step};
use crate::graph::{Fused, FusedTensor, exactly, queue};
use crate::squares::total;

/// [`step`] queued in burn-fusion's stream after the operations that produce its inputs.
pub fn step_fused<R: CubeRuntime, BT: BoolElement>(
    request: StepRequest,
    param: FusedTensor<R, BT>,
    grad: FusedTensor<R, BT>,
    moments: Option<(FusedTensor<R, BT>, FusedTensor<R, BT>)>,
    scale: Option<FusedTensor<R, BT>>,
) -> [FusedTensor<R, BT>; 3] {
    let outputs = [(); 3].map(|_| (param.shape.clone(), DType::F32));
    let (has_moments, scaled) = (moments.is_some(), scale.is_some());
    let mut inputs = vec![param, grad];
    if let Some((m, v)) = moments {
        inputs.extend([m, v]);
    }
    inputs.extend(scale);
    let run = move |inputs: Vec<_>| {
        let mut inputs = inputs.into_iter();
        let mut next = || inputs.next().expect("the step's inputs");
        let (param, grad) = (next(), next());
        let moments = has_moments.then(|| (next(), next()));
        let scale = scaled.then(&mut next);
        Vec::from(step(request, param, grad, moments, scale))
    };
    exactly(queue::<R, BT, _>("quill_adamw", inputs, outputs, run))
}

/// A parameter, its gradient, its moments (none before the first step) and the gradient's
/// scale (`[1]`, from clipping), as [`adamw_step`] takes them and hands them back.
pub type AdamWInputs<B, const D: usize> = (
    Tensor<B, D>,
    Tensor<B, D>,
    Option<(Tensor<B, D>, Tensor<B, D>)>,
    Option<Tensor<B, 1>>,
);

/// `[parameter, first moment, second moment]` after one AdamW step of `param` with gradient
/// `grad · scale` (`scale: [1]`; 1 without it), as burn's `AdamW::step` computes them, in one
/// kernel. `Err` with the inputs when no kernel here takes them (another backend, a dtype other
/// than f32).
pub fn adamw_step<B: Backend, const D: usize>(
    request: StepRequest,
    inputs: AdamWInputs<B, D>,
) -> Result<[Tensor<B, D>; 3], AdamWInputs<B, D>> {
    let (param, grad, moments, scale) = &inputs;
    let f32s = [param.dtype(), grad.dtype()]
        .into_iter()
        .chain(moments.iter().flat_map(|(m, v)| [m.dtype(), v.dtype()]))
        .chain(scale.iter().map(|s| s.dtype()))
        .all(|dtype| dtype == DType::F32);
    if !f32s {
        return Err(inputs);
    }
    #[cfg(feature = "cuda")]
    let inputs = match route_adamw::<B, cubecl::cuda::CudaRuntime, u8, D>(request, inputs) {
        Ok(stepped) => return Ok(stepped),
        Err(inputs) => inputs,
    };
    #[cfg(feature = "wgpu")]
    let inputs = match route_adamw::<B, cubecl::wgpu::WgpuRuntime, u32, D>(request, inputs) {
        Ok(stepped) => return Ok(stepped),
        Err(inputs) => inputs,
    };
    let _ = request;
    Err(inputs)
}

/// [`step_fused`] when `B` is `Fusion<CubeBackend<R, f32, i32, BT>>`.
#[allow(dead_code)] // without a runtime feature, no route calls it
fn route_adamw<B: Backend, R: CubeRuntime, BT: BoolElement, const D: usize>(
    request: StepRequest,
    inputs: AdamWInputs<B, D>,
) -> Result<[Tensor<B, D>; 3], AdamWInputs<B, D>> {
    if !is::<FloatTensor<B>, FloatTensor<Fused<R, BT>>>() {
        return Err(inputs);
    }
    // A device that binds fewer buffers to one kernel than the step reads and writes (the
    // least Vulkan promises is 4) keeps burn's step.
    let device: R::Device = convert(inputs.0.device());
    if R::client(&device).properties().hardware.max_bindings < adamw::BINDINGS {
        return Err(inputs);
    }
    fn take<B: Backend, R: CubeRuntime, BT: BoolElement, const D: usize>(
        tensor: Tensor<B, D>,
    ) -> FloatTensor<Fused<R, BT>> {
        convert(tensor.into_primitive().tensor())
    }
    let (param, grad, moments, scale) = inputs;
    let stepped = step_fused::<R, BT>(
        request,
        take::<B, R, BT, D>(param),
        take::<B, R, BT, D>(grad),
        moments.map(|(m, v)| (take::<B, R, BT, D>(m), take::<B, R, BT, D>(v))),
        scale.map(take::<B, R, BT, 1>),
    );
    Ok(stepped.map(|tensor| {
        Tensor::from_primitive(TensorPrimitive::Float(convert::<_, FloatTensor<B>>(tensor)))
    }))
}

/// [`total`] queued in burn-fusion's stream after the operations that produce
/// `tensors`.
pub fn sum_of_squares_fused<R: CubeRuntime, BT: BoolElement>(
    tensors: Vec<FusedTensor<R, BT>>,
) -> FusedTensor<R, BT> {
    let output = (Shape::new([1]), DType::F32);
    let run = |tensors: Vec<_>| vec![total(tensors)];
    let [sum] = exactly(queue::<R, BT, _>(
        "quill_sum_of_squares",
        tensors,
        [output],
        run,
    ));
    sum
}

/// Whether [`sum_of_squares`] takes tensors of `B`: f32 tensors of a runner's backend
/// (without autodiff).
pub fn sums_squares_of<B: Backend>() -> bool {
    #[allow(unused_mut)]
    let mut routed = false;
    #[cfg(feature = "cuda")]
    {
        routed |= is::<FloatTensor<B>, FloatTensor<Fused<cubecl::cuda::CudaRuntime, u8>>>();
    }
    #[cfg(feature = "wgpu")]
    {
        routed |= is::<FloatTensor<B>, FloatTensor<Fused<cubecl::wgpu::WgpuRuntime, u32>>>();
    }
    routed
}

/// `Σ x²` over every value of `tensors`, `[1]`, in one launch for all of them (more where the
/// device binds fewer buffers per kernel) and one for the partial sums. `Err` with `tensors`
/// when [`sums_squares_of`] says no, a tensor is not f32, or there are none.
pub fn sum_of_squares<B: Backend>(
    tensors: Vec<Tensor<B, 1>>,
) -> Result<Tensor<B, 1>, Vec<Tensor<B, 1>>> {
    let f32s = tensors.iter().all(|t| t.dtype() == DType::F32);
    if !f32s || tensors.is_empty() || !sums_squares_of::<B>() {
        return Err(tensors);
    }
    #[cfg(feature = "cuda")]
    let tensors = match route_squares::<B, cubecl::cuda::CudaRuntime, u8>(tensors) {
        Ok(total) => return Ok(total),
        Err(tensors) => tensors,
    };
    #[cfg(feature = "wgpu")]
    let tensors = match route_squares::<B, cubecl::wgpu::WgpuRuntime, u32>(tensors) {
        Ok(total) => return Ok(total),
        Err(tensors) => tensors,
    };
    Err(tensors)
}

/// [`sum_of_squares_fused`] when `B` is `Fusion<CubeBackend<R, f32, i32, BT>>`.
#[allow(dead_code)] // without a runtime feature, no route calls it
fn route_squares<B: Backend, R: CubeRuntime, BT: BoolElement>(
    tensors: Vec<Tensor<B, 1>>,
) -> Result<Tensor<B, 1>, Vec<Tensor<B, 1>>> {
    if !is::<FloatTensor<B>, FloatTensor<Fused<R, BT>>>() {
        return Err(tensors);
    }
    let tensors = tensors
        .into_iter()
        .map(|t| convert(t.into_primitive().tensor()))
        .collect();
    let total = sum_of_squares_fused::<R, BT>(tensors);
    Ok(Tensor::from_primitive(TensorPrimitive::Float(convert(
        total,
    ))))
}
