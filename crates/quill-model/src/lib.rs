//! A GPT-style decoder-only Transformer, written once against burn's [`Backend`] trait.
//!
//! Read it top-down: [`gpt`] (embeddings, the stack of blocks, the head), [`block`] (pre-norm
//! residual block), [`attention`] (causal multi-head self-attention), [`mlp`] (the feed-forward
//! part), [`positional`] (learned or sinusoidal positions), [`query_key`] (rotary positions and
//! QK-norm on queries and keys), [`norm`] (layer and RMS norms), [`config`] (the `[model]` table),
//! [`noise`] (one forward pass's dropout seed for the GPU kernels), [`kv_cache`] (keys and
//! values kept between decoding steps), [`checked_load`] (weights that
//! must fit the config), [`compute`] (which kernels run the model's operations, linear layers
//! over all positions at once, and mixed precision), [`init`] (GPT-2's initialization of every
//! layer). Every operation quill computes its own way is a method of quill-backend's `Kernels`,
//! which the model carries in its [`Compute`].
//!
//! [`Backend`]: burn::tensor::backend::Backend

pub mod attention;
pub mod block;
pub mod checked_load;
pub mod compute;
pub mod config;
pub mod gpt;
pub mod init;
pub mod kv_cache;
pub mod mlp;
pub mod noise;
pub mod norm;
pub mod positional;
pub mod query_key;

pub use compute::Compute;
pub use config::{Activation, ModelConfig, Norm, Positional};
pub use gpt::Gpt;
pub use kv_cache::KvCache;
pub use quill_backend::{Kernels, Matmul};
