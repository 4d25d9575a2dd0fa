//! Matrix products through cuBLAS for `quill-cuda`, in place of burn 0.21's own CUDA products.
//!
//! Why: on an H200 burn's products (cubek 0.2) reach ~92 TFLOP/s in TF32 and ~160 in bf16 at
//! shakespeare-char's shapes, and weight gradients (an inner dimension of 16384) far less; they
//! were most of the gap to PyTorch (docs/performance.md, "Where the step's time goes"). cuBLAS
//! is NVIDIA's own library, shipped with the CUDA toolkit beside NVRTC, which burn-cuda already
//! needs.
//!
//! How: [`matmul`] takes a tensor of `quill-cuda`'s backend (with or without autodiff) and
//! returns the product computed by one `cublasGemmStridedBatchedEx` call, queued in
//! burn-fusion's stream as a custom operation ([`graph`]) and enqueued on the CUDA stream of
//! burn's kernels ([`gemm`], with its arguments worked out and tested in [`plan`]); transposed
//! operands (`swap_dims` views) and padded rows are read in place. The backward pass is two
//! more such products. Other backends, dtypes or shapes get their inputs back (`Err`), so the
//! model stays backend-generic (as with quill-kernels on the CPU).
//!
//! Whether products go here is the caller's choice: quill-backend's `Kernels` (`quill-cuda` chooses
//! cuBLAS with `QUILL_MATMUL=cublas`).

#![allow(unsafe_code)] // cuBLAS and the CUDA driver are C libraries: gemm.rs calls them.

pub mod gemm;
pub mod graph;
pub mod plan;

use burn::backend::cuda::CudaDevice;
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::ops::FloatTensor;
use burn_cubecl::CubeBackend;
use cubecl_cuda::CudaRuntime;
use quill_route::{convert, is};

use graph::{AutodiffTensor, FusedTensor};

/// Whether cuBLAS can be loaded here (`quill-cuda` asks with `QUILL_MATMUL=cublas`, before it
/// chooses cuBLAS's products in its `Kernels`).
pub fn available() -> bool {
    gemm::library_present()
}

/// Two small products through cuBLAS on `device` (the second reading an operand transposed)
/// against the host's. `quill-cuda` runs this first with `QUILL_MATMUL=cublas`, so that a cuBLAS
/// that cannot run here (a handle it cannot create, a GPU it has no kernels for, a library
/// that does not match the driver) is a one-line error at the start, not a panic mid-run.
pub fn check(device: &CudaDevice) -> Result<(), String> {
    // burn-cuda without its fusion layer: `gemm` runs at once and its error comes back here.
    type Plain = CubeBackend<CudaRuntime, f32, i32, u8>;
    let a = Tensor::<Plain, 2>::from_floats([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], device);
    let b = Tensor::<Plain, 2>::from_floats([[7.0, 8.0], [9.0, 10.0], [11.0, 12.0]], device);
    let primitive = |t: &Tensor<Plain, 2>| t.clone().into_primitive().tensor();
    // Small integers: exact in TF32 too.
    for (transpose_b, second, expected) in [
        (false, &b, [58.0, 64.0, 139.0, 154.0]),
        (true, &a, [14.0, 32.0, 32.0, 77.0]),
    ] {
        let product = gemm::gemm(primitive(&a), primitive(second), false, transpose_b)?;
        let values = Tensor::<Plain, 2>::from_primitive(TensorPrimitive::Float(product))
            .try_into_data()
            .map_err(|error| format!("reading a product: {error:?}"))?
            .to_vec::<f32>()
            .map_err(|error| format!("reading a product: {error:?}"))?;
        if values != expected {
            return Err(format!("a product came out {values:?}, not {expected:?}"));
        }
    }
    Ok(())
}

/// `a·b` over the last two dimensions (`[..batch, m, k]·[..batch, k, n]`, the same batch) by
/// cuBLAS, when both are f32, bf16 or f16 tensors of `quill-cuda`'s backend;
/// otherwise `Err` with the inputs, for burn's own product.
pub fn matmul<B: Backend, const D: usize>(
    a: Tensor<B, D>,
    b: Tensor<B, D>,
) -> Result<Tensor<B, D>, [Tensor<B, D>; 2]> {
    let (a_dims, b_dims) = (a.dims(), b.dims());
    let autodiff = is::<FloatTensor<B>, AutodiffTensor>();
    let fits = (autodiff || is::<FloatTensor<B>, FusedTensor>())
        && D >= 2
        && a_dims[..D - 2] == b_dims[..D - 2]
        && a_dims[D - 1] == b_dims[D - 2]
        // Empty operands (a product of zeros, or nothing) stay with burn, and so do their
        // backward products.
        && a_dims.iter().chain(&b_dims).all(|&dim| dim > 0)
        && a.dtype() == b.dtype()
        && gemm::supports(a.dtype());
    if !fits {
        return Err([a, b]);
    }
    let (a, b) = (a.into_primitive().tensor(), b.into_primitive().tensor());
    let out: FloatTensor<B> = match autodiff {
        true => convert(graph::product_autodiff(convert(a), convert(b))),
        false => convert(graph::product(convert(a), convert(b), false, false)),
    };
    Ok(Tensor::from_primitive(TensorPrimitive::Float(out)))
}
