//! `quill-cpu`: quill on the CPU. burn-flex by default; `QUILL_CPU_BACKEND=ndarray` picks
//! burn-ndarray (see the README for how the two compare).

use std::process::ExitCode;

use burn::backend::{Autodiff, Flex, NdArray};
use quill_cli::Runner;

fn main() -> ExitCode {
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

fn runner(backend: &str) -> Runner {
    Runner {
        name: "quill-cpu",
        backend: backend.into(),
        kernels_compiled: None,
        free_memory: quill_cli::host_free_memory,
        // burn-flex's products already spread one large product over the cores.
        weight_grad_split: 1,
    }
}

/// The CPU is one device; its threads are set with `bench --threads` or RAYON_NUM_THREADS.
fn one_device<D: Default>(index: Option<usize>) -> Result<D, String> {
    match index {
        None | Some(0) => Ok(D::default()),
        Some(n) => Err(format!("{n}: the CPU backends have one device, 0")),
    }
}
