//! The layer norm kernels ([`crate::layer_norm`]) in burn's graphs: custom operations in
//! burn-fusion's queue, and a node of autodiff's graph whose backward pass is the backward
//! kernels plus burn's sum of the parameters' partial gradients; and [`layer_norm()`], the route
//! from the model's generic tensors to them.

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ops::{FloatTensor, FloatTensorOps};
use burn::tensor::{DType, TensorPrimitive};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_cubecl::{BoolElement, CubeRuntime};
use quill_route::{convert, is};

use crate::graph::{Fused, FusedTensor, Tracked, exactly, float_dtype, queue};
use crate::layer_norm::{self, Saved, chunking, rows_and_width};
use crate::routed;

/// `[y, mean, rstd]` of `x` (see [`layer_norm::forward`]), queued in burn-fusion's stream
/// after the operations that produce the inputs.
pub fn forward<R: CubeRuntime, BT: BoolElement>(
    x: FusedTensor<R, BT>,
    gamma: FusedTensor<R, BT>,
    beta: Option<FusedTensor<R, BT>>,
    epsilon: f32,
) -> [FusedTensor<R, BT>; 3] {
    let shape = x.shape.clone();
    let (rows, _) = rows_and_width(&shape);
    let outputs = [shape, Shape::new([rows]), Shape::new([rows])].map(|s| (s, DType::F32));
    let mut inputs = vec![x, gamma];
    inputs.extend(beta);
    let run = move |inputs: Vec<_>| {
        let mut inputs = inputs.into_iter();
        let (x, gamma) = (inputs.next().expect("x"), inputs.next().expect("γ"));
        Vec::from(layer_norm::forward(x, gamma, inputs.next(), epsilon))
    };
    exactly(queue::<R, BT, _>("quill_layer_norm", inputs, outputs, run))
}

/// `(dx, dγ, dβ)`: the gradients of a layer norm's input, gain and (when it has one) shift.
pub type LayerNormGradients<R, BT> = (
    FusedTensor<R, BT>,
    FusedTensor<R, BT>,
    Option<FusedTensor<R, BT>>,
);

/// `(dx, dγ, dβ)` (`dβ` when `shifted`) from the forward pass's input, gain and statistics
/// and the output's gradient `grad`; `dx` plus `pending` (f32) when there is one.
pub fn backward<R: CubeRuntime, BT: BoolElement>(
    saved: [FusedTensor<R, BT>; 4],
    grad: FusedTensor<R, BT>,
    pending: Option<FusedTensor<R, BT>>,
    shifted: bool,
) -> LayerNormGradients<R, BT> {
    let shape = saved[0].shape.clone();
    let (rows, width) = rows_and_width(&shape);
    let (_, chunks) = chunking(rows);
    let mut outputs = vec![
        (shape, DType::F32),
        (Shape::new([chunks, width]), DType::F32),
    ];
    if shifted {
        outputs.push((Shape::new([chunks, width]), DType::F32));
    }
    let mut inputs = saved.to_vec();
    inputs.push(grad);
    inputs.extend(pending);
    let run = move |inputs: Vec<_>| {
        let mut inputs = inputs.into_iter();
        let mut next = || inputs.next().expect("the backward pass's inputs");
        let saved = Saved {
            x: next(),
            gamma: next(),
            mean: next(),
            rstd: next(),
        };
        let grad = next();
        let pending = inputs.next();
        let (grad_x, gamma_parts, beta_parts) = layer_norm::backward(saved, grad, pending, shifted);
        [grad_x, gamma_parts]
            .into_iter()
            .chain(beta_parts)
            .collect()
    };
    let mut outputs =
        queue::<R, BT, _>("quill_layer_norm_backward", inputs, outputs, run).into_iter();
    let grad_x = outputs.next().expect("dx");
    // The chunks' partial sums, added up by burn: `[chunks, width]` to `[width]`.
    let total = |parts: FusedTensor<R, BT>| {
        let summed = <Fused<R, BT> as FloatTensorOps<_>>::float_sum_dim(parts, 0);
        <Fused<R, BT> as FloatTensorOps<_>>::float_reshape(summed, Shape::new([width]))
    };
    let grad_gamma = total(outputs.next().expect("dγ's parts"));
    (grad_x, grad_gamma, outputs.next().map(total))
}

/// [`forward`] recorded in autodiff's graph, with `beta` (`N = 3`) or without (`N = 2`).
pub fn forward_autodiff<R: CubeRuntime, BT: BoolElement>(
    x: Tracked<R, BT>,
    gamma: Tracked<R, BT>,
    beta: Option<Tracked<R, BT>>,
    epsilon: f32,
) -> Tracked<R, BT> {
    match beta {
        Some(beta) => record([x, gamma, beta], epsilon),
        None => record([x, gamma], epsilon),
    }
}

fn record<R: CubeRuntime, BT: BoolElement, const N: usize>(
    inputs: [Tracked<R, BT>; N],
    epsilon: f32,
) -> Tracked<R, BT> {
    let nodes = inputs.each_ref().map(|t| t.node.clone());
    let prepared = <LayerNormBackward as Backward<Fused<R, BT>, N>>::prepare::<NoCheckpointing>(
        LayerNormBackward,
        nodes,
    );
    let mut primitives = inputs.into_iter().map(|t| t.primitive);
    let x = primitives.next().expect("x");
    let gamma = primitives.next().expect("γ");
    let beta = primitives.next();
    match prepared.compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let [y, mean, rstd] = forward::<R, BT>(x.clone(), gamma.clone(), beta, epsilon);
            prep.finish([x, gamma, mean, rstd], y)
        }
        OpsKind::UnTracked(prep) => {
            let [y, _, _] = forward::<R, BT>(x, gamma, beta, epsilon);
            prep.finish(y)
        }
    }
}

#[derive(Debug)]
struct LayerNormBackward;

impl<R: CubeRuntime, BT: BoolElement, const N: usize> Backward<Fused<R, BT>, N>
    for LayerNormBackward
{
    /// The input, the gain, and each row's mean and `rstd`.
    type State = [FusedTensor<R, BT>; 4];

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Fused<R, BT>>(&ops.node);
        // The kernels read f32; a later operation's backward pass may have given another dtype.
        let f32s = |grad: FusedTensor<R, BT>| match grad.dtype {
            DType::F32 => grad,
            _ => <Fused<R, BT> as FloatTensorOps<_>>::float_cast(grad, float_dtype(DType::F32)),
        };
        // x's gradient from its other uses so far (a block's residual addition, whose backward
        // pass runs first): taken out and added by the kernel, where autodiff would add it to
        // dx in a kernel of its own.
        let pending = ops.parents[0].as_ref().and_then(|x| {
            // `Gradients` finds a gradient by its tensor's node: a tensor of x's values with
            // x's node is the key.
            let mut key =
                <Autodiff<Fused<R, BT>> as AutodiffBackend>::from_inner(ops.state[0].clone());
            key.node = x.clone();
            grads.remove::<Fused<R, BT>>(&key)
        });
        let (grad_x, grad_gamma, grad_beta) =
            backward::<R, BT>(ops.state, f32s(grad), pending.map(f32s), N == 3);
        let results = [Some(grad_x), Some(grad_gamma), grad_beta];
        for (parent, result) in ops.parents.iter().zip(results) {
            if let (Some(node), Some(result)) = (parent, result) {
                grads.register::<Fused<R, BT>>(node.id, result);
            }
        }
    }
}

/// A layer norm's input, gain and shift, as [`layer_norm`] takes them and hands them back.
pub type LayerNormInputs<B, const D: usize> = (Tensor<B, D>, Tensor<B, 1>, Option<Tensor<B, 1>>);

/// `(x − mean)/√(var + ε)·γ + β` over the last dimension of `x` (burn's `LayerNorm`), in one
/// kernel forward and two backward (with autodiff). `Err` with the inputs when no kernel here
/// takes them (another backend, a dtype other than f32, more values than a 32-bit index
/// reaches).
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
    if !fits || !f32s {
        return Err(inputs);
    }
    #[cfg(feature = "cuda")]
    let inputs = match route::<B, cubecl::cuda::CudaRuntime, u8, D>(inputs, epsilon) {
        Ok(y) => return Ok(y),
        Err(inputs) => inputs,
    };
    #[cfg(feature = "wgpu")]
    let inputs = match route::<B, cubecl::wgpu::WgpuRuntime, u32, D>(inputs, epsilon) {
        Ok(y) => return Ok(y),
        Err(inputs) => inputs,
    };
    let _ = epsilon;
    Err(inputs)
}

/// The layer norm's kernels on `Fusion<CubeBackend<R, f32, i32, BT>>`, with or without
/// autodiff, when that is `B`.
#[allow(dead_code)] // without a runtime feature, no route calls it
fn route<B: Backend, R: CubeRuntime, BT: BoolElement, const D: usize>(
    inputs: LayerNormInputs<B, D>,
    epsilon: f64,
) -> Result<Tensor<B, D>, LayerNormInputs<B, D>> {
    if !routed::<B, R, BT>() {
        return Err(inputs);
    }
    let autodiff = is::<FloatTensor<B>, Tracked<R, BT>>();
    fn take<B: Backend, T: 'static, const D: usize>(tensor: Tensor<B, D>) -> T {
        convert(tensor.into_primitive().tensor())
    }
    let (x, gamma, beta) = inputs;
    let epsilon = epsilon as f32;
    let y: FloatTensor<B> = match autodiff {
        true => convert(forward_autodiff::<R, BT>(
            take(x),
            take(gamma),
            beta.map(take),
            epsilon,
        )),
        false => {
            let [y, _, _] = forward::<R, BT>(take(x), take(gamma), beta.map(take), epsilon);
            convert(y)
        }
    };
    Ok(Tensor::from_primitive(TensorPrimitive::Float(y)))
}
