//! quill's own kernels for burn's GPU backends, written once in cubecl for CUDA and wgpu.
//!
//! [`causal_softmax`] is attention's `dropout(softmax(masked scores))` as one kernel forward
//! and one backward ([`softmax`], in burn's graphs through [`graph`]), where burn composes it
//! from about a dozen passes each way over the `[batch, head, seq, seq]` scores. Tensors of
//! other backends (and dtypes other than f32, bf16 and f16) come back as `Err`, so the model
//! stays backend-generic.
//!
//! [`adamw_step`] is one AdamW step of a parameter tensor (with gradient clipping's scale) as
//! one kernel ([`adamw`]), and [`sum_of_squares`] clipping's global norm over every gradient
//! in one launch ([`squares`]), where burn runs several kernels per parameter tensor.
//!
//! [`layer_norm`] is a layer norm as one kernel forward and two backward ([`mod@layer_norm`],
//! in burn's graphs through [`layer_norm_graph`]), where burn composes it from about a dozen.
//!
//! [`split_heads`] splits attention's queries, keys and values out of the QKV projection in one
//! kernel each way ([`heads`], in burn's graphs through [`heads_graph`]), where burn slices,
//! copies, and backward fills, writes and adds three full-size gradients.
//! [`merge_heads`] merges attention's output heads with a backward pass that copies their
//! gradient once, where burn's is copied by each of the two products that read it.
//!
//! Routes exist for the backends of the runners that turn them on: the `cuda` feature
//! (quill-cuda) and the `wgpu` feature (quill-wgpu). Each kernel has a [`Switch`]
//! ([`choose_all_from_env`] reads them): the model uses each kernel unless its variable
//! (`QUILL_SOFTMAX`, `QUILL_ADAMW`, `QUILL_LAYER_NORM` or `QUILL_SPLIT_HEADS`) is `burn`.

pub mod adamw;
pub mod graph;
pub mod heads;
pub mod heads_graph;
pub mod layer_norm;
pub mod layer_norm_graph;
pub mod softmax;
pub mod squares;
mod switches;

use burn::prelude::*;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, TensorPrimitive};
use burn_autodiff::Autodiff;
use burn_cubecl::{BoolElement, CubeRuntime};
use quill_gpu::route::{convert, is};

pub use adamw::{AdamWConstants, StepRequest};
use graph::Fused;
pub use softmax::Rows;
pub use switches::*;

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
/// than f32, or `QUILL_ADAMW=burn`).
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
    if !f32s || !ADAMW.fused() {
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

/// [`adamw::step_fused`] when `B` is `Fusion<CubeBackend<R, f32, i32, BT>>`.
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
    let stepped = adamw::step_fused::<R, BT>(
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

/// Whether [`sum_of_squares`] takes tensors of `B`: f32 tensors of a runner's backend
/// (without autodiff), unless `QUILL_ADAMW=burn`.
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
    routed && ADAMW.fused()
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

/// [`squares::sum_of_squares_fused`] when `B` is `Fusion<CubeBackend<R, f32, i32, BT>>`.
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
    let total = squares::sum_of_squares_fused::<R, BT>(tensors);
    Ok(Tensor::from_primitive(TensorPrimitive::Float(convert(
        total,
    ))))
}

/// `dropout(softmax(scale · scores))` over the last dimension of `scores: [.., seq_q, seq_k]`,
/// where query `i` sees keys `0 ..= i + past` (the others get weight 0), each weight dropped
/// with probability `dropout` (0 for none) and the kept ones scaled by `1/(1 − dropout)`; the
/// weights come back in `weights_dtype`. Computed in f32 whatever the dtypes. `Err` with
/// `scores` when no kernel here takes it (another backend, an unsupported dtype or shape, a
/// scale that is not positive).
pub fn causal_softmax<B: Backend, const D: usize>(
    scores: Tensor<B, D>,
    scale: f64,
    past: usize,
    dropout: f64,
    weights_dtype: DType,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    let supported = |dtype: DType| matches!(dtype, DType::F32 | DType::BF16 | DType::F16);
    let rows = Rows::of(&scores.dims(), past, scale);
    // A rate of 1 drops everything (burn's Dropout gives NaN there); the model never asks it.
    let (Some(rows), true, true, true) = (
        rows,
        supported(scores.dtype()),
        supported(weights_dtype),
        (0.0..1.0).contains(&dropout),
    ) else {
        return Err(scores);
    };
    let request = Request {
        rows,
        rate: dropout,
        weights_dtype,
    };
    #[cfg(feature = "cuda")]
    let scores = match request.route::<B, cubecl::cuda::CudaRuntime, u8, D>(scores) {
        Ok(weights) => return Ok(weights),
        Err(scores) => scores,
    };
    #[cfg(feature = "wgpu")]
    let scores = match request.route::<B, cubecl::wgpu::WgpuRuntime, u32, D>(scores) {
        Ok(weights) => return Ok(weights),
        Err(scores) => scores,
    };
    let _ = request;
    Err(scores)
}

/// Whether [`causal_softmax`] is on ([`SOFTMAX`]) and has kernels for `B`'s tensors (the
/// backend of quill-cuda or quill-wgpu, with or without autodiff). The model asks before it
/// leaves the scores' scale to the kernels; a workspace build turns this crate on for the CPU
/// runner's backends too, where the answer is no.
pub fn softmax_runs_on<B: Backend>() -> bool {
    #[cfg(feature = "cuda")]
    if routed::<B, cubecl::cuda::CudaRuntime, u8>() {
        return SOFTMAX.fused();
    }
    #[cfg(feature = "wgpu")]
    if routed::<B, cubecl::wgpu::WgpuRuntime, u32>() {
        return SOFTMAX.fused();
    }
    false
}

/// Whether `B` is `Fusion<CubeBackend<R, f32, i32, BT>>`, with or without autodiff: the backends
/// the kernels' routes take.
fn routed<B: Backend, R: CubeRuntime, BT: BoolElement>() -> bool {
    // Autodiff's tensor type is the same for every checkpointing strategy; quill's runners use
    // the default (none), which the nodes are prepared with.
    is::<FloatTensor<B>, FloatTensor<Autodiff<Fused<R, BT>>>>()
        || is::<FloatTensor<B>, FloatTensor<Fused<R, BT>>>()
}

#[derive(Debug, Clone, Copy)]
struct Request {
    rows: Rows,
    rate: f64,
    weights_dtype: DType,
}

impl Request {
    /// The kernels on `Fusion<CubeBackend<R, f32, i32, BT>>`, with or without autodiff, when
    /// that is `B`.
    #[allow(dead_code)] // without a runtime feature, no route calls it
    fn route<B: Backend, R: CubeRuntime, BT: BoolElement, const D: usize>(
        self,
        scores: Tensor<B, D>,
    ) -> Result<Tensor<B, D>, Tensor<B, D>> {
        let Self {
            rows,
            rate,
            weights_dtype,
        } = self;
        if !routed::<B, R, BT>() {
            return Err(scores);
        }
        let autodiff = is::<FloatTensor<B>, FloatTensor<Autodiff<Fused<R, BT>>>>();
        let scores = scores.into_primitive().tensor();
        let weights: FloatTensor<B> = match autodiff {
            true => convert(graph::forward_autodiff::<R, BT>(
                convert(scores),
                rows,
                rate,
                weights_dtype,
            )),
            false => convert(
                graph::forward::<R, BT>(convert(scores), rows, rate, weights_dtype, false).0,
            ),
        };
        Ok(Tensor::from_primitive(TensorPrimitive::Float(weights)))
    }
}

/// A layer norm's input, gain and shift, as [`layer_norm`] takes them and hands them back.
pub type LayerNormInputs<B, const D: usize> = (Tensor<B, D>, Tensor<B, 1>, Option<Tensor<B, 1>>);

/// `(x − mean)/√(var + ε)·γ + β` over the last dimension of `x` (burn's `LayerNorm`), in one
/// kernel forward and two backward (with autodiff). `Err` with the inputs when no kernel here
/// takes them (another backend, a dtype other than f32, more values than a 32-bit index
/// reaches, or `QUILL_LAYER_NORM=burn`).
pub fn layer_norm<B: Backend, const D: usize>(
    inputs: LayerNormInputs<B, D>,
    epsilon: f64,
) -> Result<Tensor<B, D>, LayerNormInputs<B, D>> {
    let (x, gamma, beta) = &inputs;
    let width = x.dims()[D - 1];
    let fits = width > 0
        && gamma.dims() == [width]
        && beta.as_ref().is_none_or(|beta| beta.dims() == [width])
        && u32::try_from(x.shape().num_elements()).is_ok();
    let f32s = [x.dtype(), gamma.dtype()]
        .into_iter()
        .chain(beta.iter().map(|b| b.dtype()))
        .all(|dtype| dtype == DType::F32);
    if !fits || !f32s || !LAYER_NORM.fused() {
        return Err(inputs);
    }
    #[cfg(feature = "cuda")]
    let inputs = match route_layer_norm::<B, cubecl::cuda::CudaRuntime, u8, D>(inputs, epsilon) {
        Ok(y) => return Ok(y),
        Err(inputs) => inputs,
    };
    #[cfg(feature = "wgpu")]
    let inputs = match route_layer_norm::<B, cubecl::wgpu::WgpuRuntime, u32, D>(inputs, epsilon) {
        Ok(y) => return Ok(y),
        Err(inputs) => inputs,
    };
    let _ = epsilon;
    Err(inputs)
}

/// The layer norm's kernels on `Fusion<CubeBackend<R, f32, i32, BT>>`, with or without
/// autodiff, when that is `B`.
#[allow(dead_code)] // without a runtime feature, no route calls it
fn route_layer_norm<B: Backend, R: CubeRuntime, BT: BoolElement, const D: usize>(
    inputs: LayerNormInputs<B, D>,
    epsilon: f64,
) -> Result<Tensor<B, D>, LayerNormInputs<B, D>> {
    if !routed::<B, R, BT>() {
        return Err(inputs);
    }
    let autodiff = is::<FloatTensor<B>, FloatTensor<Autodiff<Fused<R, BT>>>>();
    fn take<B: Backend, T: 'static, const D: usize>(tensor: Tensor<B, D>) -> T {
        convert(tensor.into_primitive().tensor())
    }
    let (x, gamma, beta) = inputs;
    let epsilon = epsilon as f32;
    let y: FloatTensor<B> = match autodiff {
        true => convert(layer_norm_graph::forward_autodiff::<R, BT>(
            take(x),
            take(gamma),
            beta.map(take),
            epsilon,
        )),
        false => {
            let [y, _, _] =
                layer_norm_graph::forward::<R, BT>(take(x), take(gamma), beta.map(take), epsilon);
            convert(y)
        }
    };
    Ok(Tensor::from_primitive(TensorPrimitive::Float(y)))
}

/// Attention's `[q, k, v]` of `qkv: [batch, seq, 3·n_embd]`, each `[batch, head, seq,
/// head_dim]` and contiguous, in one kernel forward and one backward (with autodiff). `Err`
/// with `qkv` when no kernel here takes it (another backend, a dtype other than f32, bf16 and
/// f16, a width that is no multiple of `3·n_head`, or `QUILL_SPLIT_HEADS=burn`).
pub fn split_heads<B: Backend>(
    qkv: Tensor<B, 3>,
    n_head: usize,
) -> Result<[Tensor<B, 4>; 3], Tensor<B, 3>> {
    let supported = matches!(qkv.dtype(), DType::F32 | DType::BF16 | DType::F16);
    let heads = heads::Heads::of(&qkv.dims(), n_head);
    let (Some(heads), true, true) = (heads, supported, SPLIT_HEADS.fused()) else {
        return Err(qkv);
    };
    #[cfg(feature = "cuda")]
    let qkv = match route_split_heads::<B, cubecl::cuda::CudaRuntime, u8>(qkv, heads) {
        Ok(parts) => return Ok(parts),
        Err(qkv) => qkv,
    };
    #[cfg(feature = "wgpu")]
    let qkv = match route_split_heads::<B, cubecl::wgpu::WgpuRuntime, u32>(qkv, heads) {
        Ok(parts) => return Ok(parts),
        Err(qkv) => qkv,
    };
    let _ = heads;
    Err(qkv)
}

/// The head split's kernels on `Fusion<CubeBackend<R, f32, i32, BT>>`, with or without
/// autodiff, when that is `B`.
#[allow(dead_code)] // without a runtime feature, no route calls it
fn route_split_heads<B: Backend, R: CubeRuntime, BT: BoolElement>(
    qkv: Tensor<B, 3>,
    heads: heads::Heads,
) -> Result<[Tensor<B, 4>; 3], Tensor<B, 3>> {
    if !routed::<B, R, BT>() {
        return Err(qkv);
    }
    let autodiff = is::<FloatTensor<B>, FloatTensor<Autodiff<Fused<R, BT>>>>();
    let qkv = qkv.into_primitive().tensor();
    let parts: [FloatTensor<B>; 3] = match autodiff {
        true => heads_graph::split_autodiff::<R, BT>(convert(qkv), heads).map(convert),
        false => heads_graph::split::<R, BT>(convert(qkv), heads).map(convert),
    };
    Ok(parts.map(|part| Tensor::from_primitive(TensorPrimitive::Float(part))))
}

/// Attention's output heads `y: [batch, head, seq, head_dim]` merged into `[batch, seq,
/// n_embd]`, as burn's `swap_dims(1, 2)` and `reshape` do, but with a backward pass that writes
/// the heads' gradient contiguous once (burn's hands on a view that each of attention's two
/// products copies). Training only (autodiff on quill-cuda's or quill-wgpu's backend); `Err`
/// with `y` otherwise, or with `QUILL_SPLIT_HEADS=burn`.
pub fn merge_heads<B: Backend>(y: Tensor<B, 4>) -> Result<Tensor<B, 3>, Tensor<B, 4>> {
    if !SPLIT_HEADS.fused() {
        return Err(y);
    }
    #[cfg(feature = "cuda")]
    let y = match route_merge_heads::<B, cubecl::cuda::CudaRuntime, u8>(y) {
        Ok(merged) => return Ok(merged),
        Err(y) => y,
    };
    #[cfg(feature = "wgpu")]
    let y = match route_merge_heads::<B, cubecl::wgpu::WgpuRuntime, u32>(y) {
        Ok(merged) => return Ok(merged),
        Err(y) => y,
    };
    Err(y)
}

#[allow(dead_code)] // without a runtime feature, no route calls it
fn route_merge_heads<B: Backend, R: CubeRuntime, BT: BoolElement>(
    y: Tensor<B, 4>,
) -> Result<Tensor<B, 3>, Tensor<B, 4>> {
    if !is::<FloatTensor<B>, FloatTensor<Autodiff<Fused<R, BT>>>>() {
        return Err(y);
    }
    let merged: FloatTensor<B> = convert(heads_graph::merge_heads_autodiff::<R, BT>(convert(
        y.into_primitive().tensor(),
    )));
    Ok(Tensor::from_primitive(TensorPrimitive::Float(merged)))
}
