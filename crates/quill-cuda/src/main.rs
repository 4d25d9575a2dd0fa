//! `quill-cuda`: quill on an NVIDIA GPU through CUDA, on device 0.

use std::process::ExitCode;

use burn::backend::cuda::CudaDevice;
use burn::backend::{Autodiff, Cuda};
use quill_cli::Runner;

fn main() -> ExitCode {
    let runner = Runner {
        name: "quill-cuda",
        backend: "cuda".into(),
    };
    quill_cli::main::<Autodiff<Cuda>>(runner, CudaDevice::new(0))
}
