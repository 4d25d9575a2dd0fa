//! Fused CPU kernels for burn-flex, where burn composes many small operations and the CPU
//! backend pays for each one (an output allocated, a pass over memory, an autodiff node):
//! the linear layers (products called directly, split over the threads), layer norm, the exact
//! GELU (burn-flex evaluates it with scalar `libm::erff`), causal self-attention with dropout
//! (burn's autodiff runs it as about fifteen separate operations over a `[batch, head, seq,
//! seq]` tensor, plus copies to split and merge the heads) and AdamW's step.
//!
//! Each function here is written against burn's generic `Backend` and takes the fast path when
//! the backend is burn-flex (`quill-cpu`'s default), with or without autodiff; for every other
//! backend [`gelu`] is burn's own, and the others hand their inputs back (`Err`) for burn's
//! operations, so the model code stays backend-generic. The fast paths are checked against
//! burn's own operations, values and gradients, in this crate's tests. quill-model and
//! quill-train use this crate only with their `cpu-kernels` feature (quill-cpu's): the GPU
//! runners do not compile burn-flex.
//!
//! Read [`route`] (how a tensor is recognised as burn-flex's), [`fast_math`] (vectorized math
//! and per-CPU compilation), [`buffer`], [`matrix`] and [`fused`] (outputs, products, and
//! operations in autodiff's graph), then the
//! kernels: [`gelu`], [`layer_norm`], [`linear`], [`attention`] and [`adamw`].

pub mod adamw;
pub mod attention;
pub mod buffer;
pub mod fast_math;
pub mod fused;
pub mod gelu;
pub mod layer_norm;
pub mod linear;
pub mod matrix;
pub mod route;
#[cfg(test)]
mod test_support;

pub use attention::fused_causal_attention;
pub use gelu::gelu;
pub use layer_norm::fused_layer_norm;
pub use linear::fused_linear;
