//! The cuBLAS product as an operation of burn's graphs: a custom operation in burn-fusion's
//! queue (so it runs in order with the kernels fused around it), and a node of autodiff's
//! graph whose backward pass is two more such products.

use burn::backend::Cuda;
use burn::tensor::ops::{FloatTensor, FloatTensorOps};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_cubecl::CubeBackend;
use burn_cubecl::fusion::FusionCubeRuntime;
use burn_fusion::stream::{Operation, OperationStreams};
use burn_ir::{CustomOpIr, HandleContainer, OperationIr, TensorIr};
use cubecl_cuda::CudaRuntime;

use crate::gemm::gemm;
use crate::plan::output_dims;

/// burn-cuda's backend under its fusion layer, as `quill-cuda` runs it.
type Inner = CubeBackend<CudaRuntime, f32, i32, u8>;
type Runtime = FusionCubeRuntime<CudaRuntime>;
/// A tensor of `quill-cuda`'s backend without autodiff (evaluation, generation).
pub type FusedTensor = FloatTensor<Cuda>;
/// A tensor of `quill-cuda`'s training backend: the fused tensor and its autodiff node.
pub type AutodiffTensor = FloatTensor<Autodiff<Cuda>>;

/// `op(a)·op(b)` (see [`gemm`]) queued in burn-fusion's stream after the operations that
/// produce `a` and `b`.
pub fn product(
    a: FusedTensor,
    b: FusedTensor,
    transpose_a: bool,
    transpose_b: bool,
) -> FusedTensor {
    let dims = output_dims(&a.shape, transpose_a, &b.shape, transpose_b);
    let client = a.client.clone();
    let streams = OperationStreams::with_inputs([&a, &b]);
    let out = TensorIr::uninit(client.create_empty_handle(), dims.into(), a.dtype);
    let desc = CustomOpIr::new("quill_cublas_gemm", &[a.into_ir(), b.into_ir()], &[out]);
    let op = Product {
        desc: desc.clone(),
        transpose_a,
        transpose_b,
    };
    let mut outputs = client.register(streams, OperationIr::Custom(desc), op);
    outputs.remove(0)
}

#[derive(Debug, Clone)]
struct Product {
    desc: CustomOpIr,
    transpose_a: bool,
    transpose_b: bool,
}

impl Operation<Runtime> for Product {
    fn execute(
        &self,
        handles: &mut HandleContainer<<Runtime as burn_fusion::FusionRuntime>::FusionHandle>,
    ) {
        let ([a, b], [out]) = self.desc.as_fixed();
        let a = handles.get_float_tensor::<Inner>(a);
        let b = handles.get_float_tensor::<Inner>(b);
        // On burn-fusion's thread, with no way to hand an error back: `quill-cuda` checks
        // cuBLAS on the device before anything runs (`crate::check`), so this is a failure
        // mid-run (e.g. memory), and quill's panic hook prints it as the run's error.
        let result = gemm(a, b, self.transpose_a, self.transpose_b)
            .unwrap_or_else(|error| panic!("quill-cublas: {error}"));
        handles.register_float_tensor::<Inner>(&out.id, result);
    }
}

/// `a·b` recorded in autodiff's graph: `dA = dC·Bᵀ`, `dB = Aᵀ·dC`, each one cuBLAS product
/// reading the transposes in place.
pub fn product_autodiff(a: AutodiffTensor, b: AutodiffTensor) -> AutodiffTensor {
    let nodes = [a.node.clone(), b.node.clone()];
    match ProductBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            // Each gradient needs the other operand only.
            let needs = |tensor: &AutodiffTensor| !tensor.node.requirement.is_none();
            let state = (
                needs(&b).then(|| a.primitive.clone()),
                needs(&a).then(|| b.primitive.clone()),
            );
            prep.finish(state, product(a.primitive, b.primitive, false, false))
        }
        OpsKind::UnTracked(prep) => prep.finish(product(a.primitive, b.primitive, false, false)),
    }
}

#[derive(Debug)]
struct ProductBackward;

impl Backward<Cuda, 2> for ProductBackward {
    /// `a` when `b` needs a gradient, `b` when `a` does.
    type State = (Option<FusedTensor>, Option<FusedTensor>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let out_grad = grads.consume::<Cuda>(&ops.node);
        let (a, b) = ops.state;
        // The product's output had its operands' dtype; its gradient is cast to it in case a
        // later operation's backward pass gave another.
        let dtype = a.as_ref().or(b.as_ref()).map(|t| t.dtype);
        let out_grad = match dtype {
            Some(dtype) if dtype != out_grad.dtype => {
                <Cuda as FloatTensorOps<Cuda>>::float_cast(out_grad, dtype.into())
            }
            _ => out_grad,
        };
        let [node_a, node_b] = ops.parents;
        if let (Some(node), Some(b)) = (node_a, b) {
            grads.register::<Cuda>(node.id, product(out_grad.clone(), b, false, true));
        }
        if let (Some(node), Some(a)) = (node_b, a) {
            grads.register::<Cuda>(node.id, product(a, out_grad, true, false));
        }
    }
}
