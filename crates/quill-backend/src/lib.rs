//! What quill adds to burn, in one place.
//!
//! The model (quill-model) and the optimizer (quill-train) are written against burn's
//! `Backend` alone. Each operation that quill computes its own way goes through a method of
//! [`Kernels`], a plain value the runner reads once at start-up ([`Kernels::from_env`]) and the
//! model and the optimizer carry: the method runs quill's kernel when the value chooses it and
//! the tensors are of a backend that kernel has, and burn's own operations otherwise.
//!
//! | operation | burn-flex (`cpu`) | CUDA, WGPU (`gpu`) | chosen by |
//! |---|---|---|---|
//! | [`matmul`](Kernels::matmul), [`linear`](Kernels::linear) | quill-kernels (linear) | cuBLAS on CUDA (quill-cublas) | `cpu`, `matmul` |
//! | [`layer_norm`](Kernels::layer_norm) | quill-kernels | quill-gpu-kernels | `cpu`, `layer_norm` |
//! | [`gelu`](Kernels::gelu) | quill-kernels | burn's | `cpu` |
//! | [`causal_attention`](Kernels::causal_attention) (fused, with dropout) | quill-kernels | — | `cpu` |
//! | [`causal_softmax`](Kernels::causal_softmax) (scale, mask, dropout) | — | quill-gpu-kernels | `softmax` |
//! | [`split_heads`](Kernels::split_heads), [`merge_heads`](Kernels::merge_heads) | burn's | quill-gpu-kernels | `split_heads` |
//! | [`residual_dropout`](Kernels::residual_dropout) (hashed masks) | burn's | quill-gpu-kernels | `dropout` |
//! | [`adamw_step`](Kernels::adamw_step), [`sum_of_squares`](Kernels::sum_of_squares) | quill-kernels (step) | quill-gpu-kernels | `cpu`, `adamw` |
//!
//! Every kernel has its own backward pass (an `Autodiff` backward node in its crate), and a
//! kernel crate hands back (`Err`) any tensor it has no kernel for: another backend, another
//! dtype, a shape it does not take. The kernel crates are reached through this crate's cargo
//! features (`cpu`, `cuda`, `wgpu`), which each runner turns on for its own backend.
//!
//! Why a value and not burn's backend-extension trait (`examples/custom-cubecl-kernel`): that
//! trait's bound would spread to every generic signature of the model, trainer, generator and
//! command line, and it chooses by type, so one process could not hold two choices for one
//! backend; the value lets a test build two models with different kernels side by side and
//! compare them (tests/cpu.rs, tests/wgpu.rs). How a generic tensor reaches its backend's
//! kernel is quill-route's type test, resolved per monomorphization.

mod choice;
mod model_ops;
mod optimizer_ops;

pub use choice::{Kernels, Matmul, Runtime};
pub use model_ops::DropoutMask;
pub use optimizer_ops::{AdamWConstants, AdamWInputs};
