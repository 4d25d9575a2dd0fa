//! Run control beside the training step: the learner's interrupter, the optimizer-step
//! count, the losses awaiting their divergence check, the sum with the other nodes, the
//! mid-epoch save on Ctrl-C, and why the run stopped early. The step itself is in `step.rs`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::record::Recorder;
use burn::tensor::backend::AutodiffBackend;
use burn::train::Interrupter;

use crate::interrupt;
use crate::metrics::read_values;
use crate::nodes::NodeLink;
use crate::run_dir::RunDir;
use quill_run::checkpoint::{AtomicRecorder, MidEpoch, SavesInFlight};

/// Why a run stopped before its last step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// The user pressed Ctrl-C after `step` steps; `saved` tells whether the mid-epoch
    /// checkpoint of that step is on disk (else the newest epoch checkpoint is the one to use).
    Interrupted { step: usize, saved: bool },
    /// Optimizer step `step` (1-based) saw a non-finite loss; no checkpoint holds weights
    /// from that step or after it.
    Diverged { step: usize, lr: f64, loss: f64 },
}

/// What the steps of one run share with [`crate::train`]: the learner's interrupter, the step
/// count, and why the run stopped early, if it did. `B` is the backend the losses are on (the
/// trained backend's inner one).
pub struct RunControl<B: Backend> {
    interrupter: Interrupter,
    run: RunDir,
    steps_per_epoch: usize,
    grad_accum: usize,
    steps_done: AtomicUsize,
    /// The epoch checkpoint burn-train may still be writing; a step waits for it.
    saves: SavesInFlight,
    /// Micro-batch losses not yet checked for being finite, still on the device.
    unchecked: Mutex<Unchecked<B>>,
    stop: Mutex<Option<Stop>>,
    /// Training across machines: the link whose all-reduce sums each step's gradients.
    nodes: Option<NodeLink>,
    /// Training across machines: whether any node's user asked to stop, as of this step's
    /// all-reduce (so that every node stops after the same step).
    nodes_stop: AtomicBool,
}

/// Optimizer steps between checks of the training losses, besides the epoch's last step and a
/// requested stop: reading a loss waits for the device, so it is not done every step.
pub const CHECK_EVERY: usize = 50;

/// Losses and learning rates of the steps since the last check.
struct Unchecked<B: Backend> {
    /// (step, a micro-batch's loss on the device).
    losses: Vec<(usize, Tensor<B, 1>)>,
    lrs: Vec<(usize, f64)>,
}

impl<B: Backend> Default for Unchecked<B> {
    fn default() -> Self {
        Self {
            losses: Vec::new(),
            lrs: Vec::new(),
        }
    }
}

impl<B: Backend> std::fmt::Debug for RunControl<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunControl")
            .field("run", &self.run)
            .field("steps_done", &self.steps_done)
            .field("stop", &self.stop)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> RunControl<B> {
    /// Control of `run`, whose first `steps_done` optimizer steps are already trained.
    pub fn new(
        interrupter: Interrupter,
        run: RunDir,
        steps_per_epoch: usize,
        grad_accum: usize,
        steps_done: usize,
        saves: SavesInFlight,
    ) -> Self {
        Self {
            interrupter,
            run,
            steps_per_epoch,
            grad_accum,
            steps_done: AtomicUsize::new(steps_done),
            saves,
            unchecked: Mutex::new(Unchecked::default()),
            stop: Mutex::new(None),
            nodes: None,
            nodes_stop: AtomicBool::new(false),
        }
    }

    /// The same control, summing each step's gradients with the other nodes through `link`.
    pub fn with_nodes(self, link: Option<NodeLink>) -> Self {
        Self {
            nodes: link,
            ..self
        }
    }

    /// Optimizer steps done, counting those of earlier sessions.
    pub fn steps_done(&self) -> usize {
        self.steps_done.load(Ordering::SeqCst)
    }

    pub fn stop(&self) -> Option<Stop> {
        *self.stop.lock().expect("stop lock")
    }

    /// Why the run stopped when it was neither quill's doing nor the user's: a checkpoint
    /// that could not be written (burn-train then stops its learner).
    pub fn failure(&self) -> Option<String> {
        match self.stop() {
            Some(_) => None,
            None => self.saves.failure(),
        }
    }

    /// Waits for the epoch checkpoint burn-train may still be writing ([`SavesInFlight`]): no
    /// new work on the weights while they are being saved.
    pub(crate) fn wait_for_saves(&self) {
        self.saves.wait();
    }

    /// Keeps a micro-batch's loss of the step in progress, for a later check.
    pub(crate) fn saw_loss(&self, loss: Tensor<B, 1>) {
        let step = self.steps_done() + 1;
        let mut unchecked = self.unchecked.lock().expect("loss lock");
        unchecked.losses.push((step, loss));
    }

    /// This node's training losses of the step in progress, summed on the first one's device.
    fn step_loss(&self) -> Tensor<B, 1> {
        let step = self.steps_done() + 1;
        let unchecked = self.unchecked.lock().expect("loss lock");
        let mut losses = unchecked
            .losses
            .iter()
            .filter(|(s, _)| *s == step)
            .map(|(_, loss)| loss.clone());
        let first = losses.next().expect("every micro-batch keeps its loss");
        let device = first.device();
        losses.fold(first, |sum, loss| sum + loss.to_device(&device))
    }

    /// Whether the user asked to stop; across machines, a user of any node, as every node
    /// learned from the same all-reduce.
    fn stop_requested(&self) -> bool {
        match self.nodes {
            Some(_) => self.nodes_stop.load(Ordering::SeqCst),
            None => interrupt::requested(),
        }
    }

    /// Sums the step's gradients with the other nodes when training across machines, with
    /// two more numbers: the losses, kept for the divergence check (a non-finite loss on any
    /// node stops every node at the same step), and the stop requests.
    pub(crate) fn across_nodes<AB, M>(&self, module: &M, grads: GradientsParams) -> GradientsParams
    where
        AB: AutodiffBackend<InnerBackend = B>,
        M: AutodiffModule<AB>,
    {
        let Some(link) = &self.nodes else {
            return grads;
        };
        let loss = self.step_loss();
        let stop = f32::from(interrupt::requested());
        let stop = Tensor::<B, 1>::from_floats([stop], &loss.device());
        let (grads, extra) = link.sum::<AB, M>(module, grads, Tensor::cat(vec![loss, stop], 0));
        let [loss, stop] = extra.split(1, 0).try_into().expect("two numbers");
        self.saw_loss(loss);
        // The all-reduce went through the host already: this read waits for little.
        if stop.into_scalar().elem::<f64>() > 0.0 {
            self.nodes_stop.store(true, Ordering::SeqCst);
        }
        grads
    }

    /// Before the update of the step in progress (learning rate `lr`): whether a loss since
    /// the last check was not finite, in which case the run ends here. Checks when this step
    /// ends an epoch (its checkpoint follows), when a stop is requested (a checkpoint of this
    /// step follows), and every [`CHECK_EVERY`] steps; so no checkpoint ever holds weights
    /// updated from a non-finite loss, and the device is waited for seldom.
    pub(crate) fn diverged(&self, lr: f64) -> bool {
        let step = self.steps_done() + 1;
        let mut unchecked = self.unchecked.lock().expect("loss lock");
        unchecked.lrs.push((step, lr));
        let due = step.is_multiple_of(self.steps_per_epoch)
            || step.is_multiple_of(CHECK_EVERY)
            || self.stop_requested();
        if !due {
            return false;
        }
        let Unchecked { losses, lrs } = std::mem::take(&mut *unchecked);
        drop(unchecked);
        let (steps, tensors): (Vec<usize>, Vec<Tensor<B, 1>>) = losses.into_iter().unzip();
        let values = read_values(tensors);
        let Some((step, loss)) = steps
            .into_iter()
            .zip(values)
            .find(|(_, loss)| !loss.is_finite())
        else {
            return false;
        };
        let lr = lrs
            .iter()
            .find(|(s, _)| *s == step)
            .map_or(lr, |(_, lr)| *lr);
        self.end(Stop::Diverged { step, lr, loss });
        true
    }

    /// Counts a finished step; on Ctrl-C saves it as a mid-epoch checkpoint and ends the run.
    /// At an epoch's last step the stop waits one step, so the epoch's validation and its full
    /// checkpoint happen first.
    pub(crate) fn stepped<AB, M, O>(&self, trainee: &M, optim: &O)
    where
        AB: AutodiffBackend,
        M: AutodiffModule<AB>,
        O: Optimizer<M, AB>,
    {
        let step = self.steps_done.fetch_add(1, Ordering::SeqCst) + 1;
        if !self.stop_requested() || step.is_multiple_of(self.steps_per_epoch) {
            return;
        }
        let saved = self.save_mid_epoch::<AB, M, O>(step, trainee, optim);
        if let Err(error) = &saved {
            eprintln!("warning: {error}");
        }
        self.end(Stop::Interrupted {
            step,
            saved: saved.is_ok(),
        });
    }

    fn save_mid_epoch<AB, M, O>(&self, step: usize, trainee: &M, optim: &O) -> Result<(), String>
    where
        AB: AutodiffBackend,
        M: AutodiffModule<AB>,
        O: Optimizer<M, AB>,
    {
        let dir = MidEpoch::dir(&self.run, step);
        let recorder = AtomicRecorder::new();
        let save = |what: &str, result: Result<(), burn::record::RecorderError>| {
            result.map_err(|e| format!("cannot save {}: {e}", dir.join(what).display()))
        };
        save(
            "model",
            Recorder::<AB>::record(&recorder, trainee.clone().into_record(), dir.join("model")),
        )?;
        save(
            "optim",
            Recorder::<AB>::record(&recorder, optim.to_record(), dir.join("optim")),
        )?;
        // The scheduler's state is the micro-batch count (see `schedule`).
        save(
            "scheduler",
            Recorder::<AB>::record(&recorder, step * self.grad_accum, dir.join("scheduler")),
        )?;
        MidEpoch { step }
            .commit(&self.run)
            .map_err(|e| format!("cannot save {}: {e}", dir.display()))
    }

    fn end(&self, stop: Stop) {
        *self.stop.lock().expect("stop lock") = Some(stop);
        self.interrupter.stop(Some(match stop {
            Stop::Interrupted { .. } => "interrupted",
            Stop::Diverged { .. } => "non-finite loss",
        }));
    }
}
