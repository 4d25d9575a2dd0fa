use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use quill_kernels::gelu;

use crate::config::ModelConfig;
use crate::gpt::{normal_init, residual_init};
use crate::tokenwise::tokenwise;

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

    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let hidden = gelu(tokenwise(&self.expand, x));
        self.dropout.forward(tokenwise(&self.project, hidden))
    }
}
