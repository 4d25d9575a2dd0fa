//! The residual dropout kernel ([`crate::dropout`]) in burn's graphs: a custom operation in
//! burn-fusion's queue, and a node of autodiff's graph whose backward pass is the same kernel
//! on the output's gradient (for `h`) and the output's gradient itself (for `x`); and
//! [`residual_dropout`], the route from the model's generic tensors to them.

use burn::prelude::*;
use burn::tensor::ops::{FloatTensor, FloatTensorOps};
use burn::tensor::{DType, TensorPrimitive};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_cubecl::{BoolElement, CubeRuntime};
use quill_route::{convert, is};

use crate::dropout::{self, Dropout};
use crate::graph::{Fused, FusedTensor, Tracked, exactly, float_dtype, queue};
use crate::{DropoutMask, untracked};

/// `x + dropout(h)` (a residual branch `h` added to the stream `x`, both of one shape) in
/// `x`'s dtype, or `dropout(h)` in `h`'s without `x`, in one kernel each way; the mask is
/// `dropout`'s hash, never stored. Training only: `Err` with the inputs without autodiff,
/// on a backend the kernels do not take, for dtypes other than f32, bf16 and f16, shapes that
/// differ or exceed a 32-bit index, or a rate outside `(0, 1)`.
pub fn residual_dropout<B: Backend, const D: usize>(
    x: Option<Tensor<B, D>>,
    h: Tensor<B, D>,
    dropout: DropoutMask<B>,
) -> Result<Tensor<B, D>, ResidualInputs<B, D>> {
    let supported = |dtype: DType| matches!(dtype, DType::F32 | DType::BF16 | DType::F16);
    let fits = u32::try_from(h.shape().num_elements()).is_ok()
        && x.as_ref()
            .is_none_or(|x| x.dims() == h.dims() && supported(x.dtype()));
    let rate_ok = dropout.rate > 0.0 && dropout.rate < 1.0;
    if !(fits && rate_ok && supported(h.dtype())) {
        return Err((x, h, dropout));
    }
    #[cfg(feature = "cuda")]
    let (x, h, dropout) = match route::<B, cubecl::cuda::CudaRuntime, u8, D>(x, h, dropout) {
        Ok(out) => return Ok(out),
        Err(inputs) => inputs,
    };
    #[cfg(feature = "wgpu")]
    let (x, h, dropout) = match route::<B, cubecl::wgpu::WgpuRuntime, u32, D>(x, h, dropout) {
        Ok(out) => return Ok(out),
        Err(inputs) => inputs,
    };
    Err((x, h, dropout))
}

/// What [`residual_dropout`] takes, and hands back when no kernel here does.
pub type ResidualInputs<B, const D: usize> = (Option<Tensor<B, D>>, Tensor<B, D>, DropoutMask<B>);

/// Whether [`residual_dropout`] has kernels for `B`'s tensors.
pub fn dropout_runs_on<B: Backend>() -> bool {
    crate::runs_on::<B>()
}

/// The kernels on `Autodiff<Fusion<CubeBackend<R, f32, i32, BT>>>`, when that is `B`.
#[allow(dead_code)] // without a runtime feature, no route calls it
fn route<B: Backend, R: CubeRuntime, BT: BoolElement, const D: usize>(
    x: Option<Tensor<B, D>>,
    h: Tensor<B, D>,
    dropout: DropoutMask<B>,
) -> Result<Tensor<B, D>, ResidualInputs<B, D>> {
    if !is::<FloatTensor<B>, Tracked<R, BT>>() {
        return Err((x, h, dropout));
    }
    let masking = Masking::of::<B>(dropout);
    let take =
        |tensor: Tensor<B, D>| convert::<_, Tracked<R, BT>>(tensor.into_primitive().tensor());
    let out = forward_autodiff::<R, BT>(x.map(take), take(h), masking);
    Ok(Tensor::from_primitive(TensorPrimitive::Float(convert(out))))
}

/// A [`DropoutMask`] on the kernels' backend.
pub struct Masking<R: CubeRuntime, BT: BoolElement> {
    pub seed: FusedTensor<R, BT>,
    pub salt: u32,
    pub rate: f64,
}

impl<R: CubeRuntime, BT: BoolElement> Masking<R, BT> {
    /// `mask`, whose seed is a tensor of `Fused<R, BT>` with or without autodiff.
    pub(crate) fn of<B: Backend>(mask: DropoutMask<B>) -> Self {
        Self {
            seed: untracked::<B, R, BT, 1>(mask.seed),
            salt: mask.salt,
            rate: mask.rate,
        }
    }
}

/// `x + dropout(h)` (`dtype` `x`'s), or `dropout(h)` without `x`, in `dtype`, queued in
/// burn-fusion's stream after the operations that produce the inputs.
pub fn forward<R: CubeRuntime, BT: BoolElement>(
    x: Option<FusedTensor<R, BT>>,
    h: FusedTensor<R, BT>,
    masking: Masking<R, BT>,
    dtype: DType,
) -> FusedTensor<R, BT> {
    let output = (h.shape.clone(), dtype);
    let residual = x.is_some();
    let Masking { seed, salt, rate } = masking;
    let inputs: Vec<_> = x.into_iter().chain([h, seed]).collect();
    let run = move |inputs: Vec<_>| {
        let mut inputs = inputs.into_iter();
        let x = residual.then(|| inputs.next().expect("x"));
        let h = inputs.next().expect("h");
        let seed = inputs.next().expect("the seed");
        vec![dropout::forward(
            x,
            h,
            Dropout::new(seed, salt, rate),
            dtype,
        )]
    };
    let [out] = exactly(queue::<R, BT, _>(
        "quill_residual_dropout",
        inputs,
        [output],
        run,
    ));
    out
}

/// [`forward`] recorded in autodiff's graph.
pub fn forward_autodiff<R: CubeRuntime, BT: BoolElement>(
    x: Option<Tracked<R, BT>>,
    h: Tracked<R, BT>,
    masking: Masking<R, BT>,
) -> Tracked<R, BT> {
    match x {
        Some(x) => record([h, x], masking),
        None => record([h], masking),
    }
}

/// The node over `[h]` or `[h, x]`.
fn record<R: CubeRuntime, BT: BoolElement, const N: usize>(
    inputs: [Tracked<R, BT>; N],
    masking: Masking<R, BT>,
) -> Tracked<R, BT> {
    let nodes = inputs.each_ref().map(|t| t.node.clone());
    let node = DropoutBackward {
        h_dtype: inputs[0].primitive.dtype,
        x_dtype: inputs.get(1).map(|x| x.primitive.dtype),
    };
    let prepared =
        <DropoutBackward as Backward<Fused<R, BT>, N>>::prepare::<NoCheckpointing>(node, nodes);
    let mut primitives = inputs.into_iter().map(|t| t.primitive);
    let h = primitives.next().expect("h");
    let x = primitives.next();
    let dtype = x.as_ref().map_or(h.dtype, |x| x.dtype);
    match prepared.compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let state = (masking.seed.clone(), masking.salt, masking.rate);
            prep.finish(state, forward::<R, BT>(x, h, masking, dtype))
        }
        OpsKind::UnTracked(prep) => prep.finish(forward::<R, BT>(x, h, masking, dtype)),
    }
}

#[derive(Debug)]
struct DropoutBackward {
    h_dtype: DType,
    /// With a residual `x`.
    x_dtype: Option<DType>,
}

impl<R: CubeRuntime, BT: BoolElement, const N: usize> Backward<Fused<R, BT>, N>
    for DropoutBackward
{
    /// The seed, the salt and the rate.
    type State = (FusedTensor<R, BT>, u32, f64);

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Fused<R, BT>>(&ops.node);
        let (seed, salt, rate) = ops.state;
        let cast = |grad: FusedTensor<R, BT>, dtype: DType| match grad.dtype == dtype {
            true => grad,
            false => <Fused<R, BT> as FloatTensorOps<_>>::float_cast(grad, float_dtype(dtype)),
        };
        if let (Some(Some(node)), Some(x_dtype)) = (ops.parents.get(1), self.x_dtype) {
            // The sum's gradient is x's.
            grads.register::<Fused<R, BT>>(node.id, cast(grad.clone(), x_dtype));
        }
        if let Some(node) = &ops.parents[0] {
            // Dropout's gradient is the output's, dropped with the same mask.
            let masking = Masking { seed, salt, rate };
            let grad_h = forward::<R, BT>(None, grad, masking, self.h_dtype);
            grads.register::<Fused<R, BT>>(node.id, grad_h);
        }
    }
}
