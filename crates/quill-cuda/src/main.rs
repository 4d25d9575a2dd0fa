//! `quill-cuda`: quill on an NVIDIA GPU through CUDA; `--device N` picks the GPU.

use std::process::ExitCode;

use burn::backend::cuda::CudaDevice;
use burn::backend::{Autodiff, Cuda};
use burn::tensor::backend::Backend;
use quill_cli::Runner;

fn main() -> ExitCode {
    // Before any device exists: kernels compiled and tuned by earlier runs are reused.
    quill_gpu::init(&quill_gpu::cache_dir(), quill_gpu::Runtime::Cuda);
    let runner = Runner {
        name: "quill-cuda",
        backend: "cuda".into(),
        kernels_compiled: Some(quill_gpu::kernels_compiled),
        free_memory,
        // cubek's products tile only the output: a weight gradient needs the sum split.
        weight_grad_split: 8,
    };
    quill_cli::main::<Autodiff<Cuda>>(runner, pick_device)
}

/// The free memory of the GPU, from the driver (the primary context cubecl uses too).
fn free_memory(index: Option<usize>) -> Option<(u64, String)> {
    let ordinal = index.unwrap_or(0);
    let (free, _total) = quill_cli::quietly(|| {
        cudarc::driver::CudaContext::new(ordinal).and_then(|context| context.mem_get_info())
    })?
    .ok()?;
    Some((free as u64, format!("CUDA device {ordinal}")))
}

fn pick_device(index: Option<usize>) -> Result<CudaDevice, String> {
    let index = index.unwrap_or(0);
    // cudarc loads libcuda at run time; without a driver or a GPU the count is unknown.
    let count = quill_cli::quietly(|| <Cuda as Backend>::device_count(0)).unwrap_or(0);
    if count == 0 {
        return Err(
            "no CUDA device found: quill-cuda needs an NVIDIA GPU, its driver (libcuda) and \
             CUDA's NVRTC and headers (see the README's Backends section)"
                .into(),
        );
    }
    if index >= count {
        return Err(format!(
            "{index}: there are {count} CUDA devices, numbered from 0"
        ));
    }
    Ok(CudaDevice::new(index))
}
