//! quill's own kernels for burn's GPU backends, written once in cubecl for CUDA and wgpu.
//!
//! [`causal_softmax`] is attention's `dropout(softmax(masked scores))` as one kernel forward
//! and one backward ([`softmax`], in burn's graphs through [`softmax_graph`]), where burn
//! composes it from about a dozen passes each way over the `[batch, head, seq, seq]` scores.
//!
//! [`residual_dropout`] is a residual branch's `x + dropout(h)` as one kernel each way
//! ([`mod@dropout`], through [`dropout_graph`]), its mask a hash recomputed where needed (as
//! the softmax's is), where burn draws, keeps and multiplies by a full-size random mask.
//!
//! [`adamw_step`] is one AdamW step of a parameter tensor (with gradient clipping's scale) as
//! one kernel ([`adamw`]), and [`sum_of_squares`] clipping's global norm over every gradient
//! in one launch ([`squares`]), where burn runs several kernels per parameter tensor (both in
//! burn-fusion's queue through [`optimizer`]).
//!
//! [`layer_norm`] is a layer norm as one kernel forward and two backward ([`mod@layer_norm`],
//! through [`layer_norm_graph`]), where burn composes it from about a dozen.
//!
//! [`split_heads`] splits attention's queries, keys and values out of the QKV projection in one
//! kernel each way ([`heads`], through [`heads_graph`]), where burn slices, copies, and
//! backward fills, writes and adds three full-size gradients. [`merge_heads`] merges
//! attention's output heads with a backward pass that copies their gradient once, where
//! burn's is copied by each of the two products that read it.
//!
//! Each takes the model's backend-generic tensors and hands them back as `Err` where no kernel
//! here takes them (another backend, another dtype), so the model stays backend-generic.
//! Routes exist for the backends of the runners that turn them on: the `cuda` feature
//! (quill-cuda) and the `wgpu` feature (quill-wgpu). Whether each runs is not this crate's
//! choice: quill-backend's `Kernels` value, carried by the model and the optimizer, decides.

pub mod adamw;
pub mod dropout;
pub mod dropout_graph;
pub mod graph;
pub mod heads;
pub mod heads_graph;
mod launch;
pub mod layer_norm;
pub mod layer_norm_graph;
pub mod optimizer;
pub mod softmax;
pub mod softmax_graph;
pub mod source_hash;
pub mod squares;

use burn::prelude::*;
use burn::tensor::ops::FloatTensor;
use burn_cubecl::{BoolElement, CubeRuntime};
use quill_route::{convert, is};

pub use adamw::{AdamWConstants, StepRequest};
pub use dropout_graph::{ResidualInputs, dropout_runs_on, residual_dropout};
use graph::{FusedTensor, Tracked};
pub use heads_graph::{merge_heads, split_heads};
pub use layer_norm_graph::{LayerNormInputs, layer_norm};
pub use optimizer::{AdamWInputs, adamw_step, sum_of_squares, sums_squares_of};
pub use softmax::Rows;
pub use softmax_graph::{causal_softmax, softmax_runs_on};

/// A hash of this crate's sources (its kernels among them), from `build.rs`: the GPU runners
/// keep compiled kernels per value ([`source_hash`] says why).
pub const SOURCE_HASH: &str = env!("QUILL_KERNELS_SOURCE_HASH");

/// Turns on cubecl's persistent caches in quill's cache folder ([`quill_gpu::cache_dir`]),
/// compiled kernels kept per [`SOURCE_HASH`] ([`quill_gpu::init`] says why and when to call).
pub fn init_caches(runtime: quill_gpu::Runtime) -> bool {
    quill_gpu::init(&quill_gpu::cache_dir(), SOURCE_HASH, runtime)
}

/// Dropout at `rate` for one use in a forward pass: what it keeps is a hash of each value's
/// index, `seed` (`[2]` uniform values, drawn on the device once per forward pass, e.g. by
/// `Tensor::random([2], Distribution::Default, device)`) and `salt` (each use in that pass has
/// its own). [`dropout::kept_on_host`] and [`dropout::seeds_of`] rebuild the mask on the host.
#[derive(Debug, Clone)]
pub struct DropoutMask<B: Backend> {
    pub rate: f64,
    pub seed: Tensor<B, 1>,
    pub salt: u32,
}

/// Whether the kernels have routes for `B`'s tensors: the backend of quill-cuda or quill-wgpu,
/// with or without autodiff. A workspace build turns this crate on for the CPU runner's
/// backends too, where the answer is no.
pub fn runs_on<B: Backend>() -> bool {
    #[cfg(feature = "cuda")]
    if routed::<B, cubecl::cuda::CudaRuntime, u8>() {
        return true;
    }
    #[cfg(feature = "wgpu")]
    if routed::<B, cubecl::wgpu::WgpuRuntime, u32>() {
        return true;
    }
    false
}

/// Whether `B` is `Fusion<CubeBackend<R, f32, i32, BT>>`, with or without autodiff: the backends
/// the kernels' routes take.
fn routed<B: Backend, R: CubeRuntime, BT: BoolElement>() -> bool {
    // Autodiff's tensor type is the same for every checkpointing strategy; quill's runners use
    // the default (none), which the nodes are prepared with.
    is::<FloatTensor<B>, Tracked<R, BT>>() || is::<FloatTensor<B>, FusedTensor<R, BT>>()
}

/// `tensor`'s values on `Fused<R, BT>`, outside autodiff's graph (a seed, which has no
/// gradient), when `B` is that backend with or without autodiff ([`routed`]).
#[allow(dead_code)] // without a runtime feature, no route calls it
fn untracked<B: Backend, R: CubeRuntime, BT: BoolElement, const D: usize>(
    tensor: Tensor<B, D>,
) -> FusedTensor<R, BT> {
    let primitive = tensor.into_primitive().tensor();
    match is::<FloatTensor<B>, Tracked<R, BT>>() {
        true => convert::<_, Tracked<R, BT>>(primitive).primitive,
        false => convert(primitive),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_source_hash_is_that_of_the_sources_built_and_changes_with_them() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        assert_eq!(source_hash::of_folder(&src).unwrap(), SOURCE_HASH);
        let copy = tempfile::tempdir().unwrap();
        let kernel = copy.path().join("softmax.rs");
        std::fs::write(&kernel, "fn kernel() { let x = 1; }").unwrap();
        let before = source_hash::of_folder(copy.path()).unwrap();
        std::fs::write(&kernel, "fn kernel() { let x = 2; }").unwrap();
        let after = source_hash::of_folder(copy.path()).unwrap();
        assert_ne!(before, after);
        assert_eq!(after.len(), 16);
        // Files other than Rust sources do not count.
        std::fs::write(copy.path().join("notes.txt"), "anything").unwrap();
        assert_eq!(source_hash::of_folder(copy.path()).unwrap(), after);
        // Sources in subfolders do, by their path.
        std::fs::create_dir(copy.path().join("kernels")).unwrap();
        std::fs::write(copy.path().join("kernels/a.rs"), "fn a() {}").unwrap();
        let nested = source_hash::of_folder(copy.path()).unwrap();
        assert_ne!(nested, after);
        std::fs::rename(copy.path().join("kernels"), copy.path().join("other")).unwrap();
        assert_ne!(source_hash::of_folder(copy.path()).unwrap(), nested);
    }
}
