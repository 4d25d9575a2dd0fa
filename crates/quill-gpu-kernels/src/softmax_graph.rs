//! The softmax kernels ([`crate::softmax`]) in burn's graphs: custom operations in
//! burn-fusion's queue, and a node of autodiff's graph whose backward pass is the backward
//! kernel; and [`causal_softmax`], the route from the model's generic tensors to them.

use burn::prelude::*;
use burn::tensor::ops::{FloatTensor, FloatTensorOps};
use burn::tensor::{DType, TensorPrimitive};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_cubecl::{BoolElement, CubeRuntime};
use quill_route::{convert, is};

use crate::dropout::Dropout;
use crate::dropout_graph::Masking;
use crate::graph::{Fused, FusedTensor, Tracked, exactly, float_dtype, queue};
use crate::softmax::{self, Rows};
use crate::{DropoutMask, routed};

/// `dropout(softmax(scale · scores))` over the last dimension of `scores: [.., seq_q, seq_k]`,
/// where query `i` sees keys `0 ..= i + past` (the others get weight 0), with `dropout` on
/// the weights (none for `None`: the kept ones scaled by `1/(1 − rate)`); the weights come
/// back in `weights_dtype`. Computed in f32 whatever the dtypes. `Err` with `scores` when no
/// kernel here takes it (another backend, an unsupported dtype or shape, a scale that is not
/// positive, a rate outside `[0, 1)`). Whether to use it is the
/// caller's choice (quill-backend's `Kernels`).
pub fn causal_softmax<B: Backend, const D: usize>(
    scores: Tensor<B, D>,
    scale: f64,
    past: usize,
    dropout: Option<DropoutMask<B>>,
    weights_dtype: DType,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    let supported = |dtype: DType| matches!(dtype, DType::F32 | DType::BF16 | DType::F16);
    let rows = Rows::of(&scores.dims(), past, scale);
    // A rate of 1 drops everything (burn's Dropout gives NaN there); the model never asks it.
    let rate_ok = dropout
        .as_ref()
        .is_none_or(|d| (0.0..1.0).contains(&d.rate));
    let (Some(rows), true, true, true) = (
        rows,
        supported(scores.dtype()),
        supported(weights_dtype),
        rate_ok,
    ) else {
        return Err(scores);
    };
    let dropout = dropout.filter(|d| d.rate > 0.0);
    #[cfg(feature = "cuda")]
    let (scores, dropout) =
        match route::<B, cubecl::cuda::CudaRuntime, u8, D>(scores, rows, dropout, weights_dtype) {
            Ok(weights) => return Ok(weights),
            Err(unrouted) => unrouted,
        };
    #[cfg(feature = "wgpu")]
    let (scores, dropout) =
        match route::<B, cubecl::wgpu::WgpuRuntime, u32, D>(scores, rows, dropout, weights_dtype) {
            Ok(weights) => return Ok(weights),
            Err(unrouted) => unrouted,
        };
    let _ = (rows, dropout);
    Err(scores)
}

/// Whether [`causal_softmax`] has kernels for `B`'s tensors (the backend of quill-cuda or
/// quill-wgpu, with or without autodiff). The model asks before it leaves the scores' scale to
/// the kernels; a workspace build turns this crate on for the CPU runner's backends too, where
/// the answer is no.
pub fn softmax_runs_on<B: Backend>() -> bool {
    crate::runs_on::<B>()
}

type Unrouted<B, const D: usize> = (Tensor<B, D>, Option<DropoutMask<B>>);

/// The kernels on `Fusion<CubeBackend<R, f32, i32, BT>>`, with or without autodiff, when
/// that is `B`.
#[allow(dead_code)] // without a runtime feature, no route calls it
fn route<B: Backend, R: CubeRuntime, BT: BoolElement, const D: usize>(
    scores: Tensor<B, D>,
    rows: Rows,
    dropout: Option<DropoutMask<B>>,
    weights_dtype: DType,
) -> Result<Tensor<B, D>, Unrouted<B, D>> {
    if !routed::<B, R, BT>() {
        return Err((scores, dropout));
    }
    let autodiff = is::<FloatTensor<B>, Tracked<R, BT>>();
    let dropout = dropout.map(Masking::of::<B>);
    let scores = scores.into_primitive().tensor();
    let weights: FloatTensor<B> = match autodiff {
        true => convert(forward_autodiff::<R, BT>(
            convert(scores),
            rows,
            dropout,
            weights_dtype,
        )),
        false => convert(forward::<R, BT>(convert(scores), rows, dropout, weights_dtype, false).0),
    };
    Ok(Tensor::from_primitive(TensorPrimitive::Float(weights)))
}

/// The weights of `scores` (see [`softmax`]) in `weights_dtype`, with `dropout` and, with
/// `keep_probs`, the probabilities before dropout (f32), queued in burn-fusion's stream after
/// the operations that produce `scores`.
pub fn forward<R: CubeRuntime, BT: BoolElement>(
    scores: FusedTensor<R, BT>,
    rows: Rows,
    dropout: Option<Masking<R, BT>>,
    weights_dtype: DType,
    keep_probs: bool,
) -> (FusedTensor<R, BT>, Option<FusedTensor<R, BT>>) {
    let shape = scores.shape.clone();
    let mut outputs = vec![(shape.clone(), weights_dtype)];
    if keep_probs {
        outputs.push((shape, DType::F32));
    }
    let (salt, rate) = dropout.as_ref().map_or((0, 0.0), |d| (d.salt, d.rate));
    let mut inputs = vec![scores];
    inputs.extend(dropout.map(|d| d.seed));
    let run = move |inputs: Vec<_>| {
        let mut inputs = inputs.into_iter();
        let scores = inputs.next().expect("the scores");
        let dropout = inputs.next().map(|seed| Dropout::new(seed, salt, rate));
        let (weights, probs) = softmax::forward(scores, rows, dropout, weights_dtype, keep_probs);
        [weights].into_iter().chain(probs).collect()
    };
    let mut outputs = queue::<R, BT, _>("quill_causal_softmax", inputs, outputs, run).into_iter();
    let weights = outputs.next().expect("the weights");
    (weights, outputs.next())
}

/// The scores' gradient (in `scores_dtype`) from the forward pass's weights and probabilities
/// and the weights' gradient.
pub fn backward<R: CubeRuntime, BT: BoolElement>(
    weights: FusedTensor<R, BT>,
    probs: FusedTensor<R, BT>,
    grad: FusedTensor<R, BT>,
    rows: Rows,
    scores_dtype: DType,
) -> FusedTensor<R, BT> {
    let output = (weights.shape.clone(), scores_dtype);
    let run = move |inputs: Vec<_>| {
        let [weights, probs, grad] = exactly(inputs);
        vec![softmax::backward(weights, probs, grad, rows, scores_dtype)]
    };
    let inputs = vec![weights, probs, grad];
    let [grad_scores] = exactly(queue::<R, BT, _>(
        "quill_causal_softmax_backward",
        inputs,
        [output],
        run,
    ));
    grad_scores
}

/// [`forward`] recorded in autodiff's graph: the backward pass is one more kernel, reading the
/// weights and (when they differ from them) the probabilities before dropout.
pub fn forward_autodiff<R: CubeRuntime, BT: BoolElement>(
    scores: Tracked<R, BT>,
    rows: Rows,
    dropout: Option<Masking<R, BT>>,
    weights_dtype: DType,
) -> Tracked<R, BT> {
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
            let keep_probs = dropout.is_some() || weights_dtype != DType::F32;
            let (weights, probs) =
                forward::<R, BT>(scores.primitive, rows, dropout, weights_dtype, keep_probs);
            let probs = probs.unwrap_or_else(|| weights.clone());
            prep.finish((weights.clone(), probs), weights)
        }
        OpsKind::UnTracked(prep) => {
            prep.finish(forward::<R, BT>(scores.primitive, rows, dropout, weights_dtype, false).0)
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
    type State = (FusedTensor<R, BT>, FusedTensor<R, BT>);

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
