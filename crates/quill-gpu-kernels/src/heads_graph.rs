//! The head split ([`crate::heads`]) as operations of burn's graphs: custom operations in
//! burn-fusion's queue, and three nodes of autodiff's graph (one per output, as autodiff's
//! nodes have one output each) that meet in the backward pass: each leaves its gradient in a
//! shared slot, and the last to arrive writes all three into qkv's gradient in one kernel, so
//! qkv gets one gradient instead of three to add. And the heads' merge after attention, whose
//! backward pass writes the heads' gradient contiguous once.

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use burn::tensor::Shape;
use burn::tensor::ops::{FloatTensor, FloatTensorOps};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_cubecl::fusion::FusionCubeRuntime;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::{BoolElement, CubeRuntime};
use burn_fusion::stream::{Operation, OperationStreams};
use burn_ir::{CustomOpIr, HandleContainer, OperationIr, TensorIr};

use crate::graph::{Fused, FusedTensor, Handle, float_dtype, read_inputs, write_outputs};
use crate::heads::{self, Heads};

/// `[q, k, v]` of `qkv`, queued in burn-fusion's stream after the operation that produces it.
pub fn split<R: CubeRuntime, BT: BoolElement>(
    qkv: FusedTensor<R, BT>,
    heads: Heads,
) -> [FusedTensor<R, BT>; 3] {
    let client = qkv.client.clone();
    let dtype = qkv.dtype;
    let streams = OperationStreams::with_inputs([&qkv]);
    let outputs =
        [(); 3].map(|_| TensorIr::uninit(client.create_empty_handle(), heads.head_shape(), dtype));
    let desc = CustomOpIr::new("quill_split_heads", &[qkv.into_ir()], &outputs);
    let op = SplitOp::<R, BT> {
        desc: desc.clone(),
        heads,
        runtime: PhantomData,
    };
    client
        .register(streams, OperationIr::Custom(desc), op)
        .try_into()
        .unwrap_or_else(|_| unreachable!("three outputs"))
}

/// The `[batch, seq, 3·n_embd]` tensor whose [`split`] is `parts`.
pub fn merge<R: CubeRuntime, BT: BoolElement>(
    parts: [FusedTensor<R, BT>; 3],
    heads: Heads,
) -> FusedTensor<R, BT> {
    let client = parts[0].client.clone();
    let dtype = parts[0].dtype;
    let streams = OperationStreams::with_inputs(parts.iter());
    let out = TensorIr::uninit(client.create_empty_handle(), heads.qkv_shape(), dtype);
    let inputs = parts.map(|part| part.into_ir());
    let desc = CustomOpIr::new("quill_merge_heads", &inputs, &[out]);
    let op = MergeOp::<R, BT> {
        desc: desc.clone(),
        heads,
        runtime: PhantomData,
    };
    let mut outputs = client.register(streams, OperationIr::Custom(desc), op);
    outputs.remove(0)
}

struct SplitOp<R, BT> {
    desc: CustomOpIr,
    heads: Heads,
    runtime: PhantomData<fn() -> (R, BT)>,
}

impl<R: CubeRuntime, BT: BoolElement> Operation<FusionCubeRuntime<R>> for SplitOp<R, BT> {
    fn execute(&self, handles: &mut HandleContainer<Handle<R>>) {
        let qkv = read_inputs::<R, BT>(&self.desc, handles).remove(0);
        write_outputs::<R, BT>(&self.desc, handles, heads::split(qkv, self.heads));
    }
}

struct MergeOp<R, BT> {
    desc: CustomOpIr,
    heads: Heads,
    runtime: PhantomData<fn() -> (R, BT)>,
}

impl<R: CubeRuntime, BT: BoolElement> Operation<FusionCubeRuntime<R>> for MergeOp<R, BT> {
    fn execute(&self, handles: &mut HandleContainer<Handle<R>>) {
        let Ok(parts) = <[_; 3]>::try_from(read_inputs::<R, BT>(&self.desc, handles)) else {
            unreachable!("three inputs");
        };
        let qkv = heads::merge(parts, self.heads);
        write_outputs::<R, BT>(&self.desc, handles, [qkv]);
    }
}

// By hand: a derive would ask the runtime types for `Debug` too.
impl<R, BT> fmt::Debug for SplitOp<R, BT> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "split heads {:?}", self.heads)
    }
}

impl<R, BT> fmt::Debug for MergeOp<R, BT> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "merge heads {:?}", self.heads)
    }
}

type Tracked<R, BT> = FloatTensor<Autodiff<Fused<R, BT>>>;

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
    dtype: burn::tensor::DType,
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
    let client = tensor.client.clone();
    let streams = OperationStreams::with_inputs([&tensor]);
    let out = TensorIr::uninit(
        client.create_empty_handle(),
        tensor.shape.clone(),
        tensor.dtype,
    );
    let desc = CustomOpIr::new("quill_contiguous", &[tensor.into_ir()], &[out]);
    let op = ContiguousOp::<R, BT> {
        desc: desc.clone(),
        runtime: PhantomData,
    };
    client
        .register(streams, OperationIr::Custom(desc), op)
        .remove(0)
}

struct ContiguousOp<R, BT> {
    desc: CustomOpIr,
    runtime: PhantomData<fn() -> (R, BT)>,
}

impl<R: CubeRuntime, BT: BoolElement> Operation<FusionCubeRuntime<R>> for ContiguousOp<R, BT> {
    fn execute(&self, handles: &mut HandleContainer<Handle<R>>) {
        let tensor = read_inputs::<R, BT>(&self.desc, handles).remove(0);
        write_outputs::<R, BT>(&self.desc, handles, [into_contiguous(tensor)]);
    }
}

impl<R, BT> fmt::Debug for ContiguousOp<R, BT> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "contiguous")
    }
}
