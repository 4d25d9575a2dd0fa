//! One AdamW step of a parameter tensor as one kernel, and as an operation of burn-fusion's
//! queue.
//!
//! burn's `AdamW` is about a dozen tensor operations per parameter (scale and add each moment,
//! square the gradient, two bias corrections, a square root, a division, the decay, the
//! update), which burn-fusion runs as one to five kernels per tensor; gradient clipping's
//! scale adds one more. A GPT has dozens of parameter tensors, many of them small (layer
//! norms' gains), so with clipping's sums this was about 215 of a training step's ~800 kernel
//! launches (counted on wgpu at shakespeare-char's model). Here each tensor is one launch
//! that reads the parameter, its gradient, its two moments and (for clipping) the gradients'
//! scale, and writes the new parameter and moments. The arithmetic is burn's, operation for
//! operation and in the same order (as quill-kernels' CPU step), and burn's state type is
//! kept, so checkpoints are interchangeable with burn's own step.

use burn::tensor::DType;
use burn_cubecl::CubeRuntime;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use crate::launch::{elementwise_launch, empty, unit_index};

/// The buffers one step binds: parameter, gradient, two moments and the scale in; the
/// parameter and two moments out.
pub const BINDINGS: u32 = 8;

/// AdamW's constants (burn's `AdamWConfig` without AMSGrad or cautious decay).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConstants {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    /// 0 for tensors that are not decayed.
    pub weight_decay: f32,
}

/// The scalars of step number `time` (from 1) at learning rate `lr`, rounded as burn rounds
/// them: `[factor_1, factor_2, correction_1, correction_2, keep, lr]`.
pub fn step_scalars(constants: AdamWConstants, lr: f64, time: usize) -> [f32; 6] {
    let time = time as i32;
    [
        1.0 - constants.beta_1,
        1.0 - constants.beta_2,
        1f32 - constants.beta_1.powi(time),
        1f32 - constants.beta_2.powi(time),
        (1.0 - lr * constants.weight_decay as f64) as f32,
        lr as f32,
    ]
}

/// The new parameter and moments of one element, burn's operations in burn's order.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn adamw_kernel(
    param: &Tensor<f32>,
    grad: &Tensor<f32>,
    moment_1: &Tensor<f32>,
    moment_2: &Tensor<f32>,
    scale: &Tensor<f32>,
    param_out: &mut Tensor<f32>,
    moment_1_out: &mut Tensor<f32>,
    moment_2_out: &mut Tensor<f32>,
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    factor_1: f32,
    factor_2: f32,
    correction_1: f32,
    correction_2: f32,
    keep: f32,
    lr: f32,
    #[comptime] moments: bool,
    #[comptime] scaled: bool,
    #[comptime] decay: bool,
) {
    let index = unit_index() as usize;
    if index < param_out.len() {
        let mut g = grad[index];
        if scaled {
            g *= scale[0];
        }
        let mut m = g * factor_1;
        let mut v = g * g * factor_2;
        if moments {
            m = moment_1[index] * beta_1 + g * factor_1;
            v = moment_2[index] * beta_2 + g * g * factor_2;
        }
        let delta = (m / correction_1) / ((v / correction_2).sqrt() + epsilon);
        let mut p = param[index];
        if decay {
            p *= keep;
        }
        param_out[index] = p - delta * lr;
        moment_1_out[index] = m;
        moment_2_out[index] = v;
    }
}

/// What one step reads besides the parameter and its gradient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepRequest {
    pub constants: AdamWConstants,
    pub lr: f64,
    /// The step's number, from 1.
    pub time: usize,
}

/// `[parameter, first moment, second moment]` after one step of `param` with gradient `grad`
/// (times `scale[0]` when there is one) and the moments before it (none before the first).
pub fn step<R: CubeRuntime>(
    request: StepRequest,
    param: CubeTensor<R>,
    grad: CubeTensor<R>,
    moments: Option<(CubeTensor<R>, CubeTensor<R>)>,
    scale: Option<CubeTensor<R>>,
) -> [CubeTensor<R>; 3] {
    let (param, grad) = (into_contiguous(param), into_contiguous(grad));
    let client = param.client.clone();
    let shape = param.meta.shape().clone();
    let outputs = [(); 3].map(|_| empty(&param, shape.clone(), DType::F32));
    let has_moments = moments.is_some();
    let (moment_1, moment_2) = match moments {
        Some((m, v)) => (into_contiguous(m), into_contiguous(v)),
        // Unread without moments, but arguments all the same.
        None => (grad.clone(), grad.clone()),
    };
    let scaled = scale.is_some();
    let scale = scale.map_or_else(|| grad.clone(), into_contiguous);
    let StepRequest {
        constants,
        lr,
        time,
    } = request;
    let [factor_1, factor_2, correction_1, correction_2, keep, lr] =
        step_scalars(constants, lr, time);
    let (cube_count, cube_dim) = elementwise_launch(shape.num_elements());
    adamw_kernel::launch::<R>(
        &client,
        cube_count,
        cube_dim,
        param.into_tensor_arg(),
        grad.into_tensor_arg(),
        moment_1.into_tensor_arg(),
        moment_2.into_tensor_arg(),
        scale.into_tensor_arg(),
        outputs[0].clone().into_tensor_arg(),
        outputs[1].clone().into_tensor_arg(),
        outputs[2].clone().into_tensor_arg(),
        constants.beta_1,
        constants.beta_2,
        constants.epsilon,
        factor_1,
        factor_2,
        correction_1,
        correction_2,
        keep,
        lr,
        has_moments,
        scaled,
        constants.weight_decay != 0.0,
    );
    outputs
}
