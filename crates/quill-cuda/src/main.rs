//! `quill-cuda`: quill on an NVIDIA GPU through CUDA; `--device N` picks the GPU.

use std::process::ExitCode;

use burn::backend::cuda::CudaDevice;
use burn::backend::{Autodiff, Cuda};
use burn::tensor::backend::Backend;
use quill_backend::{Kernels, Matmul, Runtime};
use quill_cli::{PickError, Runner};

fn main() -> ExitCode {
    // Before any device exists: kernels compiled and tuned by earlier runs are reused.
    quill_gpu_kernels::init_caches(quill_gpu::Runtime::Cuda);
    let kernels = use_cublas().and_then(|cublas| {
        Kernels {
            matmul: if cublas { Matmul::Cublas } else { Matmul::Burn },
            // burn's products (cubek) tile only the output: a weight gradient needs the sum
            // split. cuBLAS splits it itself.
            weight_grad_split: if cublas { 1 } else { 8 },
            ..Kernels::QUILL
        }
        .from_env(Runtime::Gpu)
    });
    let kernels = match kernels {
        Ok(kernels) => kernels,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let cublas = kernels.matmul == Matmul::Cublas;
    let backend = format!(
        "cuda{}{}",
        if cublas { "+cublas" } else { "" },
        kernels.suffix(Runtime::Gpu)
    );
    let runner = Runner {
        name: "quill-cuda",
        // Named in the first line of training and in `bench`'s JSON.
        backend,
        kernels_compiled: Some(quill_gpu::kernels_compiled),
        free_memory,
        kernels,
    };
    quill_cli::main::<Autodiff<Cuda>>(runner, move |index| pick_device(index, cublas))
}

/// Chooses the model's matrix products from `QUILL_MATMUL`: `burn` (the default: burn's own
/// CUDA products) or `cublas` (NVIDIA's cuBLAS, through quill-cublas); `true` for cuBLAS.
fn use_cublas() -> Result<bool, String> {
    let value = std::env::var(MATMUL_ENV).unwrap_or_default();
    match value.trim() {
        "" | "burn" => Ok(false),
        "cublas" if quill_cublas::available() => Ok(true),
        "cublas" => Err(format!(
            "{MATMUL_ENV}=cublas: the cuBLAS library (libcublas, part of the CUDA toolkit) was \
             not found; add its folder (e.g. /usr/local/cuda/lib64) to LD_LIBRARY_PATH"
        )),
        _ => Err(format!("{MATMUL_ENV}={value} is not one of: burn, cublas")),
    }
}

/// The environment variable that picks the matrix products.
const MATMUL_ENV: &str = "QUILL_MATMUL";

/// The free memory of the GPU, from the driver (the primary context cubecl uses too).
fn free_memory(index: Option<usize>) -> Option<(u64, String)> {
    let ordinal = index.unwrap_or(0);
    let (free, _total) = quill_cli::quietly(|| {
        cudarc::driver::CudaContext::new(ordinal).and_then(|context| context.mem_get_info())
    })?
    .ok()?;
    Some((free as u64, format!("CUDA device {ordinal}")))
}

/// CUDA device `index` (0 without it); with `cublas`, checked to run cuBLAS's products.
fn pick_device(index: Option<usize>, cublas: bool) -> Result<CudaDevice, PickError> {
    let index = index.unwrap_or(0);
    // cudarc loads libcuda at run time; without a driver or a GPU the count is unknown.
    let count = quill_cli::quietly(|| <Cuda as Backend>::device_count(0)).unwrap_or(0);
    if count == 0 {
        return Err(PickError::Missing(
            "no CUDA device found: quill-cuda needs an NVIDIA GPU, its driver (libcuda) and \
             CUDA's NVRTC and headers (see docs/gpu.md)"
                .into(),
        ));
    }
    if index >= count {
        return Err(PickError::Missing(format!(
            "{index}: there are {count} CUDA devices, numbered from 0"
        )));
    }
    let device = CudaDevice::new(index);
    if cublas && let Err(error) = quill_cublas::check(&device) {
        // Unusable, not missing: `train.devices = "all"` fails here rather than training on
        // the devices before this one.
        return Err(PickError::Unusable(format!(
            "{MATMUL_ENV}=cublas: cuBLAS does not run on CUDA device {index}: {error}"
        )));
    }
    Ok(device)
}
