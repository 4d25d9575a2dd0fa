//! `quill-cpu`: quill on the CPU. burn-flex by default; `QUILL_CPU_BACKEND=ndarray` picks
//! burn-ndarray (see docs/performance.md for how the two compare).

use std::process::ExitCode;

use burn::backend::{Autodiff, Flex, NdArray};
use quill_backend::{Kernels, Runtime};
use quill_cli::{PickError, Runner};

fn main() -> ExitCode {
    keep_freed_memory();
    // quill-kernels on burn-flex unless QUILL_CPU_KERNELS=burn; burn-flex's products already
    // spread one large product over the cores (no weight-gradient split).
    let kernels = match Kernels::QUILL.from_env(Runtime::Cpu) {
        Ok(kernels) => kernels,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let runner = |backend| runner(backend, kernels);
    match std::env::var("QUILL_CPU_BACKEND").as_deref() {
        Ok("ndarray") => quill_cli::main::<Autodiff<NdArray>>(runner("ndarray"), one_device),
        Ok("flex") | Err(_) => quill_cli::main::<Autodiff<Flex>>(runner("flex"), one_device),
        Ok(other) => {
            eprintln!(
                "error: QUILL_CPU_BACKEND={other} is not a CPU backend (use flex or ndarray)"
            );
            ExitCode::FAILURE
        }
    }
}

/// Lets glibc's malloc reuse freed tensor buffers instead of handing them back to the kernel.
///
/// burn-flex allocates every operation's output afresh (a training step of cpu-small makes
/// hundreds of 0.1–2 MB tensors). glibc serves blocks above its mmap threshold (128 KiB at
/// first, raised as blocks are freed, up to 32 MiB) with fresh `mmap`s and trims the heap's top
/// beyond 128 KiB: each step then page-faults its buffers in again and the kernel zeroes every
/// page. Serving blocks up to 32 MiB (glibc's maximum threshold) from the heap and never
/// trimming it keeps the step's working set mapped: 46 ms per cpu-small step instead of 56 on
/// the dev VM of docs/performance.md, the same peak memory (the step's working set is its peak).
#[allow(unsafe_code)]
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets malloc parameters; it is called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

fn runner(backend: &str, kernels: Kernels) -> Runner {
    Runner {
        name: "quill-cpu",
        backend: format!("{backend}{}", kernels.suffix(Runtime::Cpu)),
        kernels_compiled: None,
        free_memory: quill_cli::host_free_memory,
        kernels,
    }
}

/// The CPU is one device; its threads are set with `bench --threads` or RAYON_NUM_THREADS.
fn one_device<D: Default>(index: Option<usize>) -> Result<D, PickError> {
    match index {
        None | Some(0) => Ok(D::default()),
        Some(n) => Err(PickError::Missing(format!(
            "{n}: the CPU backends have one device, 0"
        ))),
    }
}
