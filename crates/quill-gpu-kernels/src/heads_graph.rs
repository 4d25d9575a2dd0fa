//! The head split ([`crate::heads`]) as operations of burn's graphs: custom operations in
//! burn-fusion's queue, and three nodes of autodiff's graph (one per output, as autodiff's
//! nodes have one output each) that meet in the backward pass: each leaves its gradient in a
//! shared slot, and the last to arrive writes all three into qkv's gradient in one kernel, so
//! qkv gets one gradient instead of three to add. And the heads' merge after attention, whose
//! backward pass writes the heads' gradient contiguous once. [`split_heads`] and
//! [`merge_heads`] route the model's generic tensors to them.

use std::fmt;
use std::sync::{Arc, Mutex};

use burn::prelude::*;
use burn::tensor::ops::{FloatTensor, FloatTensorOps};
use burn::tensor::{DType, TensorPrimitive};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::{BoolElement, CubeRuntime};
use quill_route::{convert, is};

use crate::graph::{Fused, FusedTensor, Tracked, exactly, float_dtype, queue};
use crate::heads::{self, Heads};
use crate::routed;

/// `[q, k, v]` of `qkv`, queued in burn-fusion's stream after the operation that produces it.
pub fn split<R: CubeRuntime, BT: BoolElement>(
    qkv: FusedTensor<R, BT>,
    heads: Heads,
) -> [FusedTensor<R, BT>; 3] {
    let outputs = [(); 3].map(|_| (heads.head_shape(), qkv.dtype));
    let run = move |inputs: Vec<_>| {
        let [qkv] = exactly(inputs);
        Vec::from(heads::split(qkv, heads))
    };
    exactly(queue::<R, BT, _>(
        "quill_split_heads",
        vec![qkv],
        outputs,
        run,
    ))
}

/// The `[batch, seq, 3·n_embd]` tensor whose [`split`] is `parts`.
pub fn merge<R: CubeRuntime, BT: BoolElement>(
    parts: [FusedTensor<R, BT>; 3],
    heads: Heads,
) -> FusedTensor<R, BT> {
    let output = (heads.qkv_shape(), parts[0].dtype);
    let run = move |inputs: Vec<_>| vec![heads::merge(exactly(inputs), heads)];
    let [qkv] = exactly(queue::<R, BT, _>(
        "quill_merge_heads",
        parts.into(),
        [output],
        run,
    ));
    qkv
}

/// [`split`] recorded in autodiff's graph: three nodes, one per output, whose backward passes
/// meet (see the module's documentation).
pub fn split_autodiff<R: CubeRuntime, BT: BoolElement>(
    qkv: Tracked<R, BT>,
    heads: Heads,
) -> [Tracked<R, BT>; 3] {
    let meeting = Meeting {
        slots: Arc::new(Mutex::new([None, None, None])),
        heads,
        dtype: qkv.primitive.dtype,
    };
    let [q, k, v] = split::<R, BT>(qkv.primitive.clone(), heads);
    [(0, q), (1, k), (2, v)].map(|(which, part)| {
        let node = HeadBackward { which };
        let prepared = <HeadBackward as Backward<Fused<R, BT>, 1>>::prepare::<NoCheckpointing>(
            node,
            [qkv.node.clone()],
        );
        match prepared.compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(meeting.clone(), part),
            OpsKind::UnTracked(prep) => prep.finish(part),
        }
    })
}

/// The gradients of q, k and v that have arrived.
type Slots<R, BT> = [Option<FusedTensor<R, BT>>; 3];

/// Where the three nodes leave their gradients until the last of them arrives.
struct Meeting<R: CubeRuntime, BT: BoolElement> {
    slots: Arc<Mutex<Slots<R, BT>>>,
    heads: Heads,
    dtype: DType,
}

// By hand: a derive would ask the runtime types for `Clone` and `Debug` too.
impl<R: CubeRuntime, BT: BoolElement> Clone for Meeting<R, BT> {
    fn clone(&self) -> Self {
        Self {
            slots: self.slots.clone(),
            heads: self.heads,
            dtype: self.dtype,
        }
    }
}

impl<R: CubeRuntime, BT: BoolElement> fmt::Debug for Meeting<R, BT> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "heads' gradients {:?}", self.heads)
    }
}

#[derive(Debug)]
struct HeadBackward {
    /// 0, 1 or 2: q, k or v.
    which: usize,
}

impl<R: CubeRuntime, BT: BoolElement> Backward<Fused<R, BT>, 1> for HeadBackward {
    type State = Meeting<R, BT>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Fused<R, BT>>(&ops.node);
        let meeting = ops.state;
        // In qkv's dtype: a later operation's backward pass may have given another.
        let grad = match grad.dtype == meeting.dtype {
            true => grad,
            false => {
                <Fused<R, BT> as FloatTensorOps<_>>::float_cast(grad, float_dtype(meeting.dtype))
            }
        };
        let all = {
            let mut slots = meeting.slots.lock().expect("no backward pass panicked");
            slots[self.which] = Some(grad);
            match slots.iter().all(Option::is_some) {
                true => Some(slots.each_mut().map(|slot| slot.take().expect("checked"))),
                false => None,
            }
        };
        if let (Some(parts), Some(parent)) = (all, &ops.parents[0]) {
            let grad_qkv = merge::<R, BT>(parts, meeting.heads);
            grads.register::<Fused<R, BT>>(parent.id, grad_qkv);
        }
    }
}

/// Attention's output heads `y: [batch, head, seq, head_dim]` merged into `[batch, seq,
/// n_embd]` (burn's `swap_dims` and `reshape`, one copy), recorded in autodiff's graph with a
/// backward pass that writes the gradient's heads contiguous once ([`contiguous`]). burn's own
/// backward pass hands on a transposed view, which each of attention's two products with it
/// (the weights' and the values' gradients) copies again.
pub fn merge_heads_autodiff<R: CubeRuntime, BT: BoolElement>(y: Tracked<R, BT>) -> Tracked<R, BT> {
    let dims = y.primitive.shape.dims::<4>();
    let [batch, heads, seq, head_dim] = dims;
    let prepared = <HeadsMergeBackward as Backward<Fused<R, BT>, 1>>::prepare::<NoCheckpointing>(
        HeadsMergeBackward { dims },
        [y.node.clone()],
    );
    let swapped = <Fused<R, BT> as FloatTensorOps<_>>::float_swap_dims(y.primitive, 1, 2);
    let merged = <Fused<R, BT> as FloatTensorOps<_>>::float_reshape(
        swapped,
        Shape::new([batch, seq, heads * head_dim]),
    );
    prepared.compute_bound().stateless(merged)
}

#[derive(Debug)]
struct HeadsMergeBackward {
    /// `[batch, head, seq, head_dim]` of the heads.
    dims: [usize; 4],
}

impl<R: CubeRuntime, BT: BoolElement> Backward<Fused<R, BT>, 1> for HeadsMergeBackward {
    type State = ();

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Fused<R, BT>>(&ops.node);
        let [batch, heads, seq, head_dim] = self.dims;
        if let Some(node) = &ops.parents[0] {
            let grad = <Fused<R, BT> as FloatTensorOps<_>>::float_reshape(
                grad,
                Shape::new([batch, seq, heads, head_dim]),
            );
            let grad = <Fused<R, BT> as FloatTensorOps<_>>::float_swap_dims(grad, 1, 2);
            grads.register::<Fused<R, BT>>(node.id, contiguous::<R, BT>(grad));
        }
    }
}

/// `tensor` in row-major order (burn-cubecl's copy kernel, when it is a view), queued in
/// burn-fusion's stream.
pub fn contiguous<R: CubeRuntime, BT: BoolElement>(
    tensor: FusedTensor<R, BT>,
) -> FusedTensor<R, BT> {
    let output = (tensor.shape.clone(), tensor.dtype);
    let run = |inputs: Vec<_>| {
        let [tensor] = exactly(inputs);
        vec![into_contiguous(tensor)]
    };
    let [out] = exactly(queue::<R, BT, _>(
        "quill_contiguous",
        vec![tensor],
        [output],
        run,
    ));
    out
}

/// Attention's `[q, k, v]` of `qkv: [batch, seq, 3·n_embd]`, each `[batch, head, seq,
/// head_dim]` and contiguous, in one kernel forward and one backward (with autodiff). `Err`
/// with `qkv` when no kernel here takes it (another backend, a dtype other than f32, bf16 and
/// f16, or a width that is no multiple of `3·n_head`).
pub fn split_heads<B: Backend>(
    qkv: Tensor<B, 3>,
    n_head: usize,
) -> Result<[Tensor<B, 4>; 3], Tensor<B, 3>> {
    let supported = matches!(qkv.dtype(), DType::F32 | DType::BF16 | DType::F16);
    let heads = heads::Heads::of(&qkv.dims(), n_head);
    let (Some(heads), true) = (heads, supported) else {
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
    let autodiff = is::<FloatTensor<B>, Tracked<R, BT>>();
    let qkv = qkv.into_primitive().tensor();
    let parts: [FloatTensor<B>; 3] = match autodiff {
        true => split_autodiff::<R, BT>(convert(qkv), heads).map(convert),
        false => split::<R, BT>(convert(qkv), heads).map(convert),
    };
    Ok(parts.map(|part| Tensor::from_primitive(TensorPrimitive::Float(part))))
}

/// Attention's output heads `y: [batch, head, seq, head_dim]` merged into `[batch, seq,
/// n_embd]`, as burn's `swap_dims(1, 2)` and `reshape` do, but with a backward pass that writes
/// the heads' gradient contiguous once (burn's hands on a view that each of attention's two
/// products copies). Training only (autodiff on quill-cuda's or quill-wgpu's backend); `Err`
/// with `y` otherwise.
pub fn merge_heads<B: Backend>(y: Tensor<B, 4>) -> Result<Tensor<B, 3>, Tensor<B, 4>> {
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
    if !is::<FloatTensor<B>, Tracked<R, BT>>() {
        return Err(y);
    }
    let merged: FloatTensor<B> = convert(merge_heads_autodiff::<R, BT>(convert(
        y.into_primitive().tensor(),
    )));
    Ok(Tensor::from_primitive(TensorPrimitive::Float(merged)))
}
