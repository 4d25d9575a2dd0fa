//! The optimizer's operations: burn's AdamW step and clipping's sum of squares, or quill's
//! kernels where [`Kernels`] chooses them and the tensors' backend has them.

use burn::optim::AdaptiveMomentumState;
use burn::prelude::*;

use crate::Kernels;

/// AdamW's constants (burn's `AdamWConfig` without AMSGrad or cautious decay).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConstants {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    /// 0 for tensors that are not decayed.
    pub weight_decay: f32,
}

/// A parameter, its gradient, its moments (none before the first step) and the gradients'
/// scale (`[1]`; clipping's, when there is one).
pub type AdamWInputs<B, const D: usize> = (
    Tensor<B, D>,
    Tensor<B, D>,
    Option<AdaptiveMomentumState<B, D>>,
    Option<Tensor<B, 1>>,
);

impl Kernels {
    /// The parameter and its moments after one AdamW step at `lr` of `param` with gradient
    /// `grad · scale`, as burn's `AdamW::step` computes them: one kernel on the GPU runners
    /// (the scale applied inside it), one pass per tensor on burn-flex (identical values).
    /// `Err` with the inputs for burn's own step (another backend, a dtype other than f32,
    /// AMSGrad's moments), the gradient then already scaled (the scale `None`) unless the
    /// moments were AMSGrad's.
    #[allow(clippy::type_complexity)]
    pub fn adamw_step<B: Backend, const D: usize>(
        &self,
        constants: AdamWConstants,
        lr: f64,
        inputs: AdamWInputs<B, D>,
    ) -> Result<(Tensor<B, D>, AdaptiveMomentumState<B, D>), AdamWInputs<B, D>> {
        let (param, grad, state, scale) = inputs;
        if state.as_ref().is_some_and(|s| s.max_moment_2.is_some()) {
            return Err((param, grad, state, scale));
        }
        let time = state.as_ref().map_or(0, |s| s.time) + 1;
        #[cfg(feature = "gpu")]
        let (param, grad, state, scale) = match self.adamw {
            true => {
                let request = quill_gpu_kernels::StepRequest {
                    constants: quill_gpu_kernels::AdamWConstants {
                        beta_1: constants.beta_1,
                        beta_2: constants.beta_2,
                        epsilon: constants.epsilon,
                        weight_decay: constants.weight_decay,
                    },
                    lr,
                    time,
                };
                let moments = state.map(|s| (s.moment_1, s.moment_2));
                match quill_gpu_kernels::adamw_step(request, (param, grad, moments, scale)) {
                    Ok([param, moment_1, moment_2]) => {
                        let state = moments_after(time, moment_1, moment_2);
                        return Ok((param, state));
                    }
                    Err((param, grad, moments, scale)) => {
                        let state = moments.map(|(m_1, m_2)| moments_after(time - 1, m_1, m_2));
                        (param, grad, state, scale)
                    }
                }
            }
            false => (param, grad, state, scale),
        };
        // The scale goes into the gradient now: burn's step and quill-kernels' take it so.
        let grad = match scale {
            Some(scale) => grad * scale.reshape([1; D]),
            None => grad,
        };
        #[cfg(feature = "cpu")]
        let (param, grad, state) = match self.cpu {
            true => {
                let cpu = quill_kernels::adamw::AdamWConstants {
                    beta_1: constants.beta_1,
                    beta_2: constants.beta_2,
                    epsilon: constants.epsilon,
                    weight_decay: constants.weight_decay,
                };
                match quill_kernels::adamw::fused_adamw_step(cpu, lr, param, grad, state) {
                    Ok(stepped) => return Ok(stepped),
                    Err(inputs) => inputs,
                }
            }
            false => (param, grad, state),
        };
        let _ = (constants, lr, time);
        Err((param, grad, state, None))
    }

    /// Whether [`sum_of_squares`](Self::sum_of_squares) sums every gradient of `B` in one
    /// launch (GPU), so the caller flattens them for it.
    #[cfg_attr(not(feature = "gpu"), allow(clippy::extra_unused_type_parameters))]
    pub fn sums_squares_of<B: Backend>(&self) -> bool {
        #[cfg(feature = "gpu")]
        return self.adamw && quill_gpu_kernels::sums_squares_of::<B>();
        #[cfg(not(feature = "gpu"))]
        false
    }

    /// `Σ x²` over every value of `tensors` (each flattened), `[1]`: one launch for all of them
    /// on the GPU runners; burn's `square().sum()` added up otherwise.
    pub fn sum_of_squares<B: Backend>(&self, tensors: Vec<Tensor<B, 1>>) -> Option<Tensor<B, 1>> {
        #[cfg(feature = "gpu")]
        let tensors = match self.adamw && !tensors.is_empty() {
            true => match quill_gpu_kernels::sum_of_squares(tensors) {
                Ok(total) => return Some(total),
                Err(tensors) => tensors,
            },
            false => tensors,
        };
        tensors
            .into_iter()
            .map(|t| t.square().sum())
            .reduce(|a, b| a + b)
    }
}

#[cfg(feature = "gpu")]
fn moments_after<B: Backend, const D: usize>(
    time: usize,
    moment_1: Tensor<B, D>,
    moment_2: Tensor<B, D>,
) -> AdaptiveMomentumState<B, D> {
    AdaptiveMomentumState {
        time,
        moment_1,
        moment_2,
        max_moment_2: None,
    }
}
