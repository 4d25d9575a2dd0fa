//! `quill-wgpu`: quill on the GPU through wgpu (Vulkan, Metal, DirectX), on wgpu's default
//! adapter.

use std::process::ExitCode;

use burn::backend::wgpu::WgpuDevice;
use burn::backend::{Autodiff, Wgpu};
use quill_cli::Runner;

fn main() -> ExitCode {
    let runner = Runner {
        name: "quill-wgpu",
        backend: "wgpu".into(),
    };
    quill_cli::main::<Autodiff<Wgpu>>(runner, WgpuDevice::DefaultDevice)
}
