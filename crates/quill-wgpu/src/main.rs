//! `quill-wgpu`: quill on a GPU through wgpu: Vulkan on Linux and Windows, Metal on macOS.
//! `--device N` picks an adapter: discrete GPUs first, then integrated, virtual and software
//! (CPU, e.g. Mesa's lavapipe) adapters; without it, wgpu's default (high-performance) adapter.

use std::process::ExitCode;

use burn::backend::wgpu::WgpuDevice;
use burn::backend::{Autodiff, Wgpu};
use burn::tensor::backend::Backend;
use quill_backend::{Kernels, Runtime};
use quill_cli::{PickError, Runner};

fn main() -> ExitCode {
    // Before any device exists: kernels compiled and tuned by earlier runs are reused.
    quill_gpu_kernels::init_caches(quill_gpu::Runtime::Wgpu);
    // Measured on CUDA only (the same cubek kernels): no weight-gradient split until measured
    // through Vulkan.
    let kernels = match Kernels::QUILL.from_env(Runtime::Gpu) {
        Ok(kernels) => kernels,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let runner = Runner {
        name: "quill-wgpu",
        // Named in the first line of training and in `bench`'s JSON.
        backend: format!("wgpu{}", kernels.suffix(Runtime::Gpu)),
        kernels_compiled: Some(quill_gpu::kernels_compiled),
        // wgpu reports no free memory, only the largest buffer it allows.
        free_memory: |_| None,
        kernels,
    };
    quill_cli::main::<Autodiff<Wgpu>>(runner, pick_device)
}

/// Adapter kinds in `--device` order, with the `device_count` type id burn's wgpu runtime uses.
const KINDS: [(u16, &str); 4] = [
    (0, "discrete"),
    (1, "integrated"),
    (2, "virtual"),
    (3, "cpu"),
];

fn pick_device(index: Option<usize>) -> Result<WgpuDevice, PickError> {
    let counts = quill_cli::quietly(|| KINDS.map(|(id, _)| <Wgpu as Backend>::device_count(id)))
        .ok_or_else(|| {
            PickError::Missing(
                "no wgpu adapter found: install a Vulkan driver (Linux: your GPU's, or Mesa's \
                 software one, package mesa-vulkan-drivers); on macOS Metal is built in"
                    .into(),
            )
        })?;
    let Some(index) = index else {
        return Ok(WgpuDevice::DefaultDevice);
    };
    let mut rank = index;
    for ((_, kind), count) in KINDS.iter().zip(counts) {
        if rank < count {
            return Ok(match *kind {
                "discrete" => WgpuDevice::DiscreteGpu(rank),
                "integrated" => WgpuDevice::IntegratedGpu(rank),
                "virtual" => WgpuDevice::VirtualGpu(rank),
                _ => WgpuDevice::Cpu,
            });
        }
        rank -= count;
    }
    let listed: Vec<String> = KINDS
        .iter()
        .zip(counts)
        .map(|((_, kind), count)| format!("{count} {kind}"))
        .collect();
    Err(PickError::Missing(format!(
        "{index}: wgpu has {} adapters ({}), numbered from 0",
        counts.iter().sum::<usize>(),
        listed.join(", ")
    )))
}
