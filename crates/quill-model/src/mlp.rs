use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;

use crate::compute::Compute;
use crate::config::ModelConfig;
use crate::init::{normal_init, residual_init};

/// The position-wise feed-forward part of a block: expand, exact (erf) GELU, project back.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    expand: Linear<B>,
    project: Linear<B>,
    dropout: Dropout,
}

impl<B: Backend> Mlp<B> {
    pub fn new(config: &ModelConfig, device: &B::Device) -> Self {
        let hidden = config.ff_hidden();
        Self {
            expand: normal_init(LinearConfig::new(config.n_embd, hidden), config, device),
            project: residual_init(LinearConfig::new(hidden, config.n_embd), config, device),
            dropout: DropoutConfig::new(config.dropout).init(),
        }
    }

    /// `x: [batch, seq, n_embd]` (f32) to `[batch, seq, n_embd]` in `compute`'s precision,
    /// before the output's dropout ([`out_dropout`](Self::out_dropout)).
    pub fn forward(&self, x: Tensor<B, 3>, compute: Compute) -> Tensor<B, 3> {
        let hidden = compute.kernels.gelu(compute.linear(&self.expand, x));
        compute.linear(&self.project, hidden)
    }

    /// The dropout on the output, which the block applies with the residual addition.
    pub fn out_dropout(&self) -> &Dropout {
        &self.dropout
    }
}
