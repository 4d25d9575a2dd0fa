//! CUDA against burn-ndarray, on a machine with an NVIDIA GPU: `just gpu-check`, or
//! `cargo test --release -p quill-cuda --features cuda`. CI builds quill-cuda but has no GPU,
//! so without the `cuda` feature this file is empty.

#![cfg(feature = "cuda")]

#[path = "parity/mod.rs"]
mod parity;

use burn::backend::cuda::CudaDevice;
use burn::backend::{Autodiff, Cuda, NdArray};

#[test]
fn cuda_computes_what_ndarray_computes() {
    let parity = parity::compare::<Autodiff<NdArray>, Autodiff<Cuda>>(
        &Default::default(),
        &CudaDevice::new(0),
    );
    parity::assert_f32_parity(&parity);
}
