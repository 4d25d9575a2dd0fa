//! What burn-train's learner calls for each batch: a training step (forward, backward) with the
//! optimizer step it triggers, and a validation step (forward only).

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::train::metric::{Adaptor, ItemLazy, LossInput};
use burn::train::{InferenceStep, TrainOutput, TrainStep};
use quill_data::TokenBatch;
use quill_model::Gpt;

use crate::metrics::{LossValueInput, TokensInput};
use crate::optimizer::clip_global_norm;

/// The GPT as the learner trains it, with the two settings its steps need.
#[derive(Module, Debug)]
pub struct Trainee<B: Backend> {
    pub gpt: Gpt<B>,
    /// Global gradient-norm bound; 0 means no clipping.
    pub grad_clip: f64,
    /// Micro-batches per optimizer step: each micro-batch's loss is divided by it so the
    /// learner's summed gradients are the mean over the step's batches.
    pub grad_accum: usize,
}

/// What one batch reports to the metrics: its mean loss and how many tokens it held.
pub struct BatchOutput<B: Backend> {
    pub loss: Tensor<B, 1>,
    pub tokens: usize,
}

impl<B: Backend> ItemLazy for BatchOutput<B> {
    type ItemSync = Self;

    fn sync(self) -> Self {
        self
    }
}

impl<B: Backend> Adaptor<LossInput<B>> for BatchOutput<B> {
    fn adapt(&self) -> LossInput<B> {
        LossInput::new(self.loss.clone())
    }
}

impl<B: Backend> Adaptor<LossValueInput> for BatchOutput<B> {
    fn adapt(&self) -> LossValueInput {
        LossValueInput {
            loss: self.loss.clone().into_scalar().elem::<f64>(),
        }
    }
}

impl<B: Backend> Adaptor<TokensInput> for BatchOutput<B> {
    fn adapt(&self) -> TokensInput {
        TokensInput {
            tokens: self.tokens,
        }
    }
}

impl<B: AutodiffBackend> TrainStep for Trainee<B> {
    type Input = TokenBatch<B>;
    type Output = BatchOutput<B::InnerBackend>;

    fn step(&self, batch: TokenBatch<B>) -> TrainOutput<Self::Output> {
        let tokens = batch.num_tokens();
        let (loss, _) = self.gpt.forward_loss(batch.inputs, batch.targets);
        let grads = (loss.clone() / self.grad_accum as f64).backward();
        TrainOutput::new(
            self,
            grads,
            BatchOutput {
                loss: loss.inner(),
                tokens,
            },
        )
    }

    fn optimize<AB, O>(self, optim: &mut O, lr: f64, grads: GradientsParams) -> Self
    where
        AB: AutodiffBackend,
        O: Optimizer<Self, AB>,
        Self: AutodiffModule<AB>,
    {
        let grads = if self.grad_clip > 0.0 {
            clip_global_norm::<AB, Self>(&self, grads, self.grad_clip)
        } else {
            grads
        };
        optim.step(lr, self, grads)
    }
}

impl<B: Backend> InferenceStep for Trainee<B> {
    type Input = TokenBatch<B>;
    type Output = BatchOutput<B>;

    fn step(&self, batch: TokenBatch<B>) -> BatchOutput<B> {
        let tokens = batch.num_tokens();
        let (loss, _) = self.gpt.forward_loss(batch.inputs, batch.targets);
        BatchOutput { loss, tokens }
    }
}
