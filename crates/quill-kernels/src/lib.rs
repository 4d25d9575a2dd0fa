//! Fused CPU kernels for the two places where burn composes many small operations and the CPU
//! backend pays for each one: the exact GELU (burn-flex evaluates it with scalar `libm::erff`)
//! and causal self-attention (burn's autodiff runs it as about fifteen separate operations,
//! each with its own pass over a `[batch, head, seq, seq]` tensor, plus copies to split and
//! merge the heads).
//!
//! Each function here is written against burn's generic `Backend` and takes the fast path when
//! the backend is burn-flex (`quill-cpu`'s default), with or without autodiff; for every other
//! backend [`gelu`] is burn's own, and [`fused_causal_attention`] hands the tensor back for the
//! model's attention (quill-model), so the model code stays backend-generic. The fast paths are
//! checked against burn's compositions of the same operations, values and gradients, in this
//! crate's tests. quill-model uses this crate only with its `cpu-kernels` feature (quill-cpu's):
//! the GPU runners do not compile burn-flex.
//!
//! Read [`route`] (how a tensor is recognised as burn-flex's), [`gelu`], [`layer_norm`],
//! [`linear`], [`attention`], then [`adamw`] (the optimizer's step).

pub mod adamw;
pub mod attention;
pub mod buffer;
pub mod fast_math;
pub mod gelu;
pub mod layer_norm;
pub mod linear;
pub mod matrix;
pub mod route;

pub use attention::fused_causal_attention;
pub use gelu::gelu;
pub use layer_norm::fused_layer_norm;
pub use linear::fused_linear;
