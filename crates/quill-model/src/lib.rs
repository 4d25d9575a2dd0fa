//! A GPT-style decoder-only Transformer, written once against burn's [`Backend`] trait.
//!
//! Read it top-down: [`gpt`] (embeddings, the stack of blocks, the head), [`block`] (pre-norm
//! residual block), [`attention`] (causal multi-head self-attention), [`mlp`] (the feed-forward
//! part), [`positional`] (learned or sinusoidal positions), [`config`] (the `[model]` table),
//! [`noise`] (one forward pass's dropout seed for the GPU kernels), [`kv_cache`] (keys and
//! values kept between decoding steps), [`checked_load`] (weights that
//! must fit the config), [`autocast`] (linear layers over all positions at once, and mixed
//! precision), [`products`] (matrix products: cuBLAS on `quill-cuda` with `QUILL_MATMUL=cublas`,
//! burn's elsewhere), [`init`] (GPT-2's initialization of every layer).
//!
//! [`Backend`]: burn::tensor::backend::Backend

pub mod attention;
pub mod autocast;
pub mod block;
pub mod checked_load;
pub mod config;
pub mod gpt;
pub mod init;
pub mod kv_cache;
pub mod mlp;
pub mod noise;
pub mod positional;
pub mod products;

pub use autocast::Autocast;
pub use config::{ModelConfig, Positional};
pub use gpt::Gpt;
pub use kv_cache::KvCache;
