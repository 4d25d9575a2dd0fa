use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu_approximate, relu, silu};

use crate::compute::Compute;
use crate::config::{Activation, ModelConfig};
use crate::init::{normal_init, residual_init};

/// The position-wise feed-forward part of a block: expand, a nonlinearity (exact GELU unless
/// `model.activation` says otherwise), project back.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    expand: Linear<B>,
    /// SwiGLU's gate, `silu(gate(x))` multiplying `expand(x)`; `None` for the other activations
    /// (and in every checkpoint written before SwiGLU existed).
    gate: Option<Linear<B>>,
    project: Linear<B>,
    dropout: Dropout,
    #[module(skip)]
    activation: Activation,
}

impl<B: Backend> Mlp<B> {
    pub fn new(config: &ModelConfig, device: &B::Device) -> Self {
        let hidden = config.ff_hidden();
        Self {
            expand: normal_init(LinearConfig::new(config.n_embd, hidden), config, device),
            gate: (config.activation == Activation::Swiglu)
                .then(|| normal_init(LinearConfig::new(config.n_embd, hidden), config, device)),
            project: residual_init(LinearConfig::new(hidden, config.n_embd), config, device),
            dropout: DropoutConfig::new(config.dropout).init(),
            activation: config.activation,
        }
    }

    /// `x: [batch, seq, n_embd]` (f32) to `[batch, seq, n_embd]` in `compute`'s precision,
    /// before the output's dropout ([`out_dropout`](Self::out_dropout)).
    pub fn forward(&self, x: Tensor<B, 3>, compute: Compute) -> Tensor<B, 3> {
        let gate = self
            .gate
            .as_ref()
            .map(|gate| compute.linear(gate, x.clone()));
        let expanded = compute.linear(&self.expand, x);
        let hidden = match (self.activation, gate) {
            (Activation::Swiglu, Some(gate)) => silu(gate) * expanded,
            (Activation::GeluTanh, _) => gelu_approximate(expanded),
            (Activation::Relu2, _) => relu(expanded).square(),
            _ => compute.kernels.gelu(expanded),
        };
        compute.linear(&self.project, hidden)
    }

    #[cfg(test)]
    pub(crate) fn set_activation(&mut self, activation: Activation) {
        self.activation = activation;
    }

    /// The dropout on the output, which the block applies with the residual addition.
    pub fn out_dropout(&self) -> &Dropout {
        &self.dropout
    }
}
