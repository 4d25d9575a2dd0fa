//! What burn-train's learner calls for each batch, readable top to bottom like nanoGPT's loop:
//! a training step (forward, loss, backward) and the optimizer step it triggers (sum across
//! nodes, divergence check, clip, AdamW), and a validation step (forward only). Run control
//! (interrupts, divergence, saves, nodes) lives beside it in `run_control.rs`.

use std::sync::Arc;

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::train::metric::{Adaptor, ItemLazy, LossInput};
use burn::train::{InferenceStep, TrainOutput, TrainStep};
use quill_data::TokenBatch;
use quill_model::Gpt;

use crate::metrics::{LossTensorInput, LossValueInput, TokensInput};
use crate::optimizer::step_clipped;
pub use crate::run_control::{CHECK_EVERY, RunControl, Stop};

/// The GPT as the learner trains it, with the settings its steps need. `L` is the backend of
/// the losses its run control keeps (the trained backend's inner one; [`Trained`]).
#[derive(Module, Debug)]
pub struct Trainee<B: Backend, L: Backend> {
    pub gpt: Gpt<B>,
    /// Global gradient-norm bound; 0 means no clipping.
    pub grad_clip: f64,
    /// Micro-batches per optimizer step: each micro-batch's loss is divided by it so the
    /// learner's summed gradients are the mean over the step's batches.
    pub grad_accum: usize,
    /// The run this trainee belongs to, when the steps should watch for a stop.
    #[module(skip)]
    pub control: Option<Arc<RunControl<L>>>,
}

/// The trainee of autodiff backend `B`, as the learner trains it.
pub type Trained<B> = Trainee<B, <B as AutodiffBackend>::InnerBackend>;

impl<B: Backend, L: Backend> Trainee<B, L> {
    /// A trainee outside any run (benchmarks, tests, loading weights).
    pub fn detached(gpt: Gpt<B>, grad_clip: f64, grad_accum: usize) -> Self {
        Self {
            gpt,
            grad_clip,
            grad_accum,
            control: None,
        }
    }
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

impl<B: Backend> Adaptor<LossTensorInput<B>> for BatchOutput<B> {
    fn adapt(&self) -> LossTensorInput<B> {
        LossTensorInput {
            loss: self.loss.clone(),
        }
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

impl<B: AutodiffBackend> TrainStep for Trained<B> {
    type Input = TokenBatch<B>;
    type Output = BatchOutput<B::InnerBackend>;

    fn step(&self, batch: TokenBatch<B>) -> TrainOutput<Self::Output> {
        if let Some(control) = &self.control {
            control.wait_for_saves();
        }
        let tokens = batch.num_tokens();
        let (loss, _) = self.gpt.forward_loss(batch.inputs, batch.targets);
        #[cfg(feature = "fault-injection")]
        if let Some(control) = &self.control {
            crate::failure::maybe_fail_allocation(control.steps_done() + 1);
        }
        let grads = (loss.clone() / self.grad_accum as f64).backward();
        if let Some(control) = &self.control {
            control.saw_loss(loss.clone().inner());
        }
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
        let control = self.control.clone();
        // Every node sums its gradients with the others first, so all of them check,
        // clip and step the same gradients.
        let grads = match &control {
            Some(control) => control.across_nodes::<B, Self>(&self, grads),
            None => grads,
        };
        if control.as_ref().is_some_and(|c| c.diverged(lr)) {
            // The run ends here; its newest checkpoint predates the non-finite loss.
            return self;
        }
        let grad_clip = self.grad_clip;
        let kernels = self.gpt.kernels();
        let stepped = step_clipped::<AB, Self, O>(optim, lr, self, grads, grad_clip, &kernels);
        if let Some(control) = control {
            control.stepped::<AB, Self, O>(&stepped, optim);
        }
        stepped
    }
}

impl<B: Backend, L: Backend> InferenceStep for Trainee<B, L> {
    type Input = TokenBatch<B>;
    type Output = BatchOutput<B>;

    fn step(&self, batch: TokenBatch<B>) -> BatchOutput<B> {
        let tokens = batch.num_tokens();
        let (loss, _) = self.gpt.forward_loss(batch.inputs, batch.targets);
        BatchOutput { loss, tokens }
    }
}
