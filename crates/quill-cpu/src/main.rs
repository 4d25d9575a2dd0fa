//! `quill-cpu`: quill on the CPU. burn-flex by default; `QUILL_CPU_BACKEND=ndarray` picks
//! burn-ndarray (see the README for how the two compare).

use std::process::ExitCode;

use burn::backend::{Autodiff, Flex, NdArray};
use quill_cli::Runner;

fn main() -> ExitCode {
    match std::env::var("QUILL_CPU_BACKEND").as_deref() {
        Ok("ndarray") => {
            quill_cli::main::<Autodiff<NdArray>>(runner("ndarray"), Default::default())
        }
        Ok("flex") | Err(_) => {
            quill_cli::main::<Autodiff<Flex>>(runner("flex"), Default::default())
        }
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
    }
}
