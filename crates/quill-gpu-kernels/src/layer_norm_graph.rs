//! The layer norm kernels ([`crate::layer_norm`]) as operations of burn's graphs: custom
//! operations in burn-fusion's queue, and a node of autodiff's graph whose backward pass is
//! the backward kernels plus burn's sum of the parameters' partial gradients.

use std::fmt;
use std::marker::PhantomData;

use burn::tensor::ops::FloatTensorOps;
use burn::tensor::{DType, Shape};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_cubecl::fusion::FusionCubeRuntime;
use burn_cubecl::{BoolElement, CubeRuntime};
use burn_fusion::stream::{Operation, OperationStreams};
use burn_ir::{CustomOpIr, HandleContainer, OperationIr, TensorIr};

use crate::graph::{Fused, FusedTensor, Handle, float_dtype, read_inputs, write_outputs};
use crate::layer_norm::{self, Saved, chunking, rows_and_width};

/// `[y, mean, rstd]` of `x` (see [`layer_norm::forward`]), queued in burn-fusion's stream
/// after the operations that produce the inputs.
pub fn forward<R: CubeRuntime, BT: BoolElement>(
    x: FusedTensor<R, BT>,
    gamma: FusedTensor<R, BT>,
    beta: Option<FusedTensor<R, BT>>,
    epsilon: f32,
) -> [FusedTensor<R, BT>; 3] {
    let client = x.client.clone();
    let shape = x.shape.clone();
    let (rows, _) = rows_and_width(&shape);
    let mut inputs = vec![x, gamma];
    inputs.extend(beta);
    let streams = OperationStreams::with_inputs(inputs.iter());
    let inputs: Vec<TensorIr> = inputs.into_iter().map(|t| t.into_ir()).collect();
    let outputs = [shape, Shape::new([rows]), Shape::new([rows])]
        .map(|shape| TensorIr::uninit(client.create_empty_handle(), shape, DType::F32));
    let desc = CustomOpIr::new("quill_layer_norm", &inputs, &outputs);
    let op = ForwardOp::<R, BT> {
        desc: desc.clone(),
        epsilon,
        runtime: PhantomData,
    };
    let outputs = client.register(streams, OperationIr::Custom(desc), op);
    outputs
        .try_into()
        .unwrap_or_else(|_| unreachable!("three outputs"))
}

/// `(dx, dγ, dβ)`: the gradients of a layer norm's input, gain and (when it has one) shift.
pub type LayerNormGradients<R, BT> = (
    FusedTensor<R, BT>,
    FusedTensor<R, BT>,
    Option<FusedTensor<R, BT>>,
);

/// `(dx, dγ, dβ)` (`dβ` when `shifted`) from the forward pass's input, gain and statistics
/// and the output's gradient `grad`.
pub fn backward<R: CubeRuntime, BT: BoolElement>(
    saved: [FusedTensor<R, BT>; 4],
    grad: FusedTensor<R, BT>,
    shifted: bool,
) -> LayerNormGradients<R, BT> {
    let [x, ..] = &saved;
    let client = x.client.clone();
    let shape = x.shape.clone();
    let (rows, width) = rows_and_width(&shape);
    let (_, chunks) = chunking(rows);
    let mut inputs = saved.to_vec();
    inputs.push(grad);
    let streams = OperationStreams::with_inputs(inputs.iter());
    let inputs: Vec<TensorIr> = inputs.into_iter().map(|t| t.into_ir()).collect();
    let mut shapes = vec![shape, Shape::new([chunks, width])];
    if shifted {
        shapes.push(Shape::new([chunks, width]));
    }
    let outputs: Vec<TensorIr> = shapes
        .into_iter()
        .map(|shape| TensorIr::uninit(client.create_empty_handle(), shape, DType::F32))
        .collect();
    let desc = CustomOpIr::new("quill_layer_norm_backward", &inputs, &outputs);
    let op = BackwardOp::<R, BT> {
        desc: desc.clone(),
        runtime: PhantomData,
    };
    let mut outputs = client
        .register(streams, OperationIr::Custom(desc), op)
        .into_iter();
    let grad_x = outputs.next().expect("dx");
    // The chunks' partial sums, added up by burn: `[chunks, width]` to `[width]`.
    let total = |parts: FusedTensor<R, BT>| {
        let summed = <Fused<R, BT> as FloatTensorOps<_>>::float_sum_dim(parts, 0);
        <Fused<R, BT> as FloatTensorOps<_>>::float_reshape(summed, Shape::new([width]))
    };
    let grad_gamma = total(outputs.next().expect("dγ's parts"));
    (grad_x, grad_gamma, outputs.next().map(total))
}

struct ForwardOp<R, BT> {
    desc: CustomOpIr,
    epsilon: f32,
    runtime: PhantomData<fn() -> (R, BT)>,
}

impl<R: CubeRuntime, BT: BoolElement> Operation<FusionCubeRuntime<R>> for ForwardOp<R, BT> {
    fn execute(&self, handles: &mut HandleContainer<Handle<R>>) {
        let mut inputs = read_inputs::<R, BT>(&self.desc, handles).into_iter();
        let (x, gamma) = (inputs.next().expect("x"), inputs.next().expect("γ"));
        let results = layer_norm::forward(x, gamma, inputs.next(), self.epsilon);
        write_outputs::<R, BT>(&self.desc, handles, results);
    }
}

struct BackwardOp<R, BT> {
    desc: CustomOpIr,
    runtime: PhantomData<fn() -> (R, BT)>,
}

impl<R: CubeRuntime, BT: BoolElement> Operation<FusionCubeRuntime<R>> for BackwardOp<R, BT> {
    fn execute(&self, handles: &mut HandleContainer<Handle<R>>) {
        let Ok([x, gamma, mean, rstd, grad]) =
            <[_; 5]>::try_from(read_inputs::<R, BT>(&self.desc, handles))
        else {
            unreachable!("five inputs");
        };
        let saved = Saved {
            x,
            gamma,
            mean,
            rstd,
        };
        let shifted = self.desc.outputs.len() > 2;
        let (grad_x, gamma_parts, beta_parts) = layer_norm::backward(saved, grad, shifted);
        let results = [grad_x, gamma_parts].into_iter().chain(beta_parts);
        write_outputs::<R, BT>(&self.desc, handles, results);
    }
}

// By hand: a derive would ask the runtime types for `Debug` too.
impl<R, BT> fmt::Debug for ForwardOp<R, BT> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "layer norm, epsilon {}", self.epsilon)
    }
}

impl<R, BT> fmt::Debug for BackwardOp<R, BT> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "layer norm backward")
    }
}

/// A float tensor of `Autodiff<Fused>`.
type Tracked<R, BT> = burn::tensor::ops::FloatTensor<Autodiff<Fused<R, BT>>>;

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
        let grad = match grad.dtype {
            DType::F32 => grad,
            _ => <Fused<R, BT> as FloatTensorOps<_>>::float_cast(grad, float_dtype(DType::F32)),
        };
        let (grad_x, grad_gamma, grad_beta) = backward::<R, BT>(ops.state, grad, N == 3);
        let results = [Some(grad_x), Some(grad_gamma), grad_beta];
        for (parent, result) in ops.parents.iter().zip(results) {
            if let (Some(node), Some(result)) = (parent, result) {
                grads.register::<Fused<R, BT>>(node.id, result);
            }
        }
    }
}
