//! The softmax kernels as operations of burn's graphs: custom operations in burn-fusion's
//! queue (so they run in order with the kernels fused around them), and a node of autodiff's
//! graph whose backward pass is the backward kernel. Generic over the cubecl runtime: the
//! same code serves quill-cuda's backend and quill-wgpu's.

use std::fmt;
use std::marker::PhantomData;

use burn::tensor::ops::{FloatTensor, FloatTensorOps};
use burn::tensor::{DType, Distribution, FloatDType, Shape};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_cubecl::fusion::FusionCubeRuntime;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime};
use burn_fusion::stream::{Operation, OperationStreams};
use burn_fusion::{Fusion, FusionRuntime};
use burn_ir::{CustomOpIr, HandleContainer, OperationIr, TensorIr};

use crate::softmax::{self, Dropout, Rows};

/// A cubecl backend as quill's GPU runners build it (f32 floats, i32 integers), without and
/// with burn-fusion.
pub type Inner<R, BT> = CubeBackend<R, f32, i32, BT>;
pub type Fused<R, BT> = Fusion<Inner<R, BT>>;
pub(crate) type Handle<R> = <FusionCubeRuntime<R> as FusionRuntime>::FusionHandle;
/// A float tensor of [`Fused`].
pub type FusedTensor<R, BT> = FloatTensor<Fused<R, BT>>;

/// The tensors a custom operation of quill's reads, in the order it was registered with.
pub(crate) fn read_inputs<R: CubeRuntime, BT: BoolElement>(
    desc: &CustomOpIr,
    handles: &mut HandleContainer<Handle<R>>,
) -> Vec<CubeTensor<R>> {
    desc.inputs
        .iter()
        .map(|ir| handles.get_float_tensor::<Inner<R, BT>>(ir))
        .collect()
}

/// A custom operation's `results`, handed to burn-fusion as its outputs, in order.
pub(crate) fn write_outputs<R: CubeRuntime, BT: BoolElement>(
    desc: &CustomOpIr,
    handles: &mut HandleContainer<Handle<R>>,
    results: impl IntoIterator<Item = CubeTensor<R>>,
) {
    for (out, result) in desc.outputs.iter().zip(results) {
        handles.register_float_tensor::<Inner<R, BT>>(&out.id, result);
    }
}

/// The weights of `scores` (see [`softmax`]) in `weights_dtype`, with dropout at `rate` (0 for
/// none) and, with `keep_probs`, the probabilities before dropout (f32), queued in
/// burn-fusion's stream after the operations that produce `scores`.
pub fn forward<R: CubeRuntime, BT: BoolElement>(
    scores: FloatTensor<Fused<R, BT>>,
    rows: Rows,
    rate: f64,
    weights_dtype: DType,
    keep_probs: bool,
) -> (FusedTensor<R, BT>, Option<FusedTensor<R, BT>>) {
    let client = scores.client.clone();
    let shape = scores.shape.clone();
    // Drawn on the device by burn's generator: no read on the host.
    let seed = (rate > 0.0).then(|| {
        let device = <Fused<R, BT> as FloatTensorOps<_>>::float_device(&scores);
        <Fused<R, BT> as FloatTensorOps<_>>::float_random(
            Shape::new([2]),
            Distribution::Default,
            &device,
            FloatDType::F32,
        )
    });
    let streams = match &seed {
        Some(seed) => OperationStreams::with_inputs([&scores, seed]),
        None => OperationStreams::with_inputs([&scores]),
    };
    let mut inputs = vec![scores.into_ir()];
    inputs.extend(seed.map(|seed| seed.into_ir()));
    let mut outputs = vec![TensorIr::uninit(
        client.create_empty_handle(),
        shape.clone(),
        weights_dtype,
    )];
    if keep_probs {
        outputs.push(TensorIr::uninit(
            client.create_empty_handle(),
            shape,
            DType::F32,
        ));
    }
    let desc = CustomOpIr::new("quill_causal_softmax", &inputs, &outputs);
    let op = ForwardOp::<R, BT> {
        desc: desc.clone(),
        rows,
        rate,
        weights_dtype,
        runtime: PhantomData,
    };
    let mut outputs = client
        .register(streams, OperationIr::Custom(desc), op)
        .into_iter();
    let weights = outputs.next().expect("the weights");
    (weights, outputs.next())
}

/// The scores' gradient (in `scores_dtype`) from the forward pass's weights and probabilities
/// and the weights' gradient.
pub fn backward<R: CubeRuntime, BT: BoolElement>(
    weights: FloatTensor<Fused<R, BT>>,
    probs: FloatTensor<Fused<R, BT>>,
    grad: FloatTensor<Fused<R, BT>>,
    rows: Rows,
    scores_dtype: DType,
) -> FloatTensor<Fused<R, BT>> {
    let client = weights.client.clone();
    let streams = OperationStreams::with_inputs([&weights, &probs, &grad]);
    let out = TensorIr::uninit(
        client.create_empty_handle(),
        weights.shape.clone(),
        scores_dtype,
    );
    let inputs = [weights.into_ir(), probs.into_ir(), grad.into_ir()];
    let desc = CustomOpIr::new("quill_causal_softmax_backward", &inputs, &[out]);
    let op = BackwardOp::<R, BT> {
        desc: desc.clone(),
        rows,
        scores_dtype,
        runtime: PhantomData,
    };
    let mut outputs = client.register(streams, OperationIr::Custom(desc), op);
    outputs.remove(0)
}

struct ForwardOp<R, BT> {
    desc: CustomOpIr,
    rows: Rows,
    rate: f64,
    weights_dtype: DType,
    runtime: PhantomData<fn() -> (R, BT)>,
}

impl<R: CubeRuntime, BT: BoolElement> Operation<FusionCubeRuntime<R>> for ForwardOp<R, BT> {
    fn execute(&self, handles: &mut HandleContainer<Handle<R>>) {
        let mut inputs = read_inputs::<R, BT>(&self.desc, handles).into_iter();
        let scores = inputs.next().expect("the scores");
        let dropout = inputs.next().map(|seed| Dropout::new(seed, self.rate));
        let keep_probs = self.desc.outputs.len() > 1;
        let (weights, probs) =
            softmax::forward(scores, self.rows, dropout, self.weights_dtype, keep_probs);
        write_outputs::<R, BT>(&self.desc, handles, [weights].into_iter().chain(probs));
    }
}

struct BackwardOp<R, BT> {
    desc: CustomOpIr,
    rows: Rows,
    scores_dtype: DType,
    runtime: PhantomData<fn() -> (R, BT)>,
}

impl<R: CubeRuntime, BT: BoolElement> Operation<FusionCubeRuntime<R>> for BackwardOp<R, BT> {
    fn execute(&self, handles: &mut HandleContainer<Handle<R>>) {
        let Ok([weights, probs, grad]) =
            <[_; 3]>::try_from(read_inputs::<R, BT>(&self.desc, handles))
        else {
            unreachable!("three inputs");
        };
        let result = softmax::backward(weights, probs, grad, self.rows, self.scores_dtype);
        write_outputs::<R, BT>(&self.desc, handles, [result]);
    }
}

// By hand: a derive would ask the runtime types for `Debug` too.
impl<R, BT> fmt::Debug for ForwardOp<R, BT> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "causal softmax {:?}, dropout {}", self.rows, self.rate)
    }
}

impl<R, BT> fmt::Debug for BackwardOp<R, BT> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "causal softmax backward {:?}", self.rows)
    }
}

/// [`forward`] recorded in autodiff's graph: the backward pass is one more kernel, reading the
/// weights and (when they differ from them) the probabilities before dropout.
pub fn forward_autodiff<R: CubeRuntime, BT: BoolElement>(
    scores: FloatTensor<Autodiff<Fused<R, BT>>>,
    rows: Rows,
    rate: f64,
    weights_dtype: DType,
) -> FloatTensor<Autodiff<Fused<R, BT>>> {
    let node = SoftmaxBackward {
        rows,
        scores_dtype: scores.primitive.dtype,
    };
    let prepared = <SoftmaxBackward as Backward<Fused<R, BT>, 1>>::prepare::<NoCheckpointing>(
        node,
        [scores.node.clone()],
    );
    match prepared.compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            // The weights are the probabilities when nothing is dropped and they are f32.
            let keep_probs = rate > 0.0 || weights_dtype != DType::F32;
            let (weights, probs) =
                forward::<R, BT>(scores.primitive, rows, rate, weights_dtype, keep_probs);
            let probs = probs.unwrap_or_else(|| weights.clone());
            prep.finish((weights.clone(), probs), weights)
        }
        OpsKind::UnTracked(prep) => {
            prep.finish(forward::<R, BT>(scores.primitive, rows, rate, weights_dtype, false).0)
        }
    }
}

#[derive(Debug)]
struct SoftmaxBackward {
    rows: Rows,
    scores_dtype: DType,
}

impl<R: CubeRuntime, BT: BoolElement> Backward<Fused<R, BT>, 1> for SoftmaxBackward {
    /// The weights and the probabilities before dropout.
    type State = (FloatTensor<Fused<R, BT>>, FloatTensor<Fused<R, BT>>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Fused<R, BT>>(&ops.node);
        let (weights, probs) = ops.state;
        // The kernel reads the gradient in the weights' dtype; a later operation's backward
        // pass may have given another.
        let grad = match grad.dtype == weights.dtype {
            true => grad,
            false => {
                <Fused<R, BT> as FloatTensorOps<_>>::float_cast(grad, float_dtype(weights.dtype))
            }
        };
        if let Some(node) = &ops.parents[0] {
            let grad_scores = backward::<R, BT>(weights, probs, grad, self.rows, self.scores_dtype);
            grads.register::<Fused<R, BT>>(node.id, grad_scores);
        }
    }
}

/// `dtype` as burn's float dtypes (the kernels take f32, bf16 and f16 only).
pub fn float_dtype(dtype: DType) -> FloatDType {
    match dtype {
        DType::BF16 => FloatDType::BF16,
        DType::F16 => FloatDType::F16,
        _ => FloatDType::F32,
    }
}
