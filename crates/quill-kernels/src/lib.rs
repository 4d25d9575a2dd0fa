//! Fused CPU kernels for the two places where burn composes many small operations and the CPU
//! backend pays for each one: the exact GELU (burn-flex evaluates it with scalar `libm::erff`)
//! and causal self-attention (burn's autodiff runs it as about fifteen separate operations,
//! each with its own pass over a `[batch, head, seq, seq]` tensor, plus copies to split and
//! merge the heads).
//!
//! Each function here is written against burn's generic `Backend` and takes the fast path when
//! the backend is burn-flex (`quill-cpu`'s default), with or without autodiff; every other
//! backend (ndarray, wgpu, CUDA) gets the same operation composed from burn's own tensor ops,
//! so the model code stays backend-generic. The fast paths are checked against those
//! compositions, values and gradients, in this crate's tests.
//!
//! Read [`route`] (how a tensor is recognised as burn-flex's), [`gelu`], then [`attention`].

pub mod attention;
pub mod fast_math;
pub mod gelu;
pub mod route;

pub use attention::causal_attention;
pub use gelu::gelu;
