//! One AdamW step of a parameter tensor as a single pass over its values, moments and gradient.
//!
//! burn's `AdamW` runs it as about a dozen tensor operations (scale and add each moment, square
//! the gradient, two bias corrections, a square root, an addition, a division, the decay and
//! the update), each a pass with its own output; on cpu-small's small tensors those were a
//! tenth of a training step. This computes the same floating-point operations in the same
//! order per element, so the weights and moments are identical to burn's, and keeps burn's
//! state type (`AdaptiveMomentumState`), so checkpoints are interchangeable.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;

use burn::optim::AdaptiveMomentumState;
use burn::prelude::*;
use burn_flex::FlexTensor;
use multiversion::multiversion;
use rayon::prelude::*;

use crate::buffer::written;
use crate::route::{Route, back, flex_tensor, route};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// AdamW's constants (burn's `AdamWConfig` without AMSGrad or cautious decay).
#[derive(Debug, Clone, Copy)]
pub struct AdamWConstants {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub weight_decay: f32,
}

/// A parameter, its gradient and its moments.
pub type AdamWInputs<B, const D: usize> = (
    Tensor<B, D>,
    Tensor<B, D>,
    Option<AdaptiveMomentumState<B, D>>,
);

/// `tensor` after one AdamW step with learning rate `lr` and gradient `grad`, and the moments
/// after it, as burn's `AdamW::step` computes them, when `tensor`, `grad` and the moments are
/// burn-flex f32 tensors; anything else is handed back (`Err`) for burn's own step.
#[allow(clippy::type_complexity)]
pub fn fused_adamw_step<B: Backend, const D: usize>(
    constants: AdamWConstants,
    lr: f64,
    tensor: Tensor<B, D>,
    grad: Tensor<B, D>,
    state: Option<AdaptiveMomentumState<B, D>>,
) -> Result<(Tensor<B, D>, AdaptiveMomentumState<B, D>), AdamWInputs<B, D>> {
    if state.as_ref().is_some_and(|s| s.max_moment_2.is_some()) {
        return Err((tensor, grad, state));
    }
    let (time, moments) = match state {
        Some(s) => (s.time, Some((route(s.moment_1), route(s.moment_2)))),
        None => (0, None),
    };
    let time_after = time + 1;
    match (route(tensor), route(grad), moments) {
        (Route::Flex(p), Route::Flex(g), None) => {
            let [p, m, v] = step(constants, lr, time_after, &p, &g, None);
            Ok(finish(p, m, v, time_after))
        }
        (Route::Flex(p), Route::Flex(g), Some((Route::Flex(m), Route::Flex(v)))) => {
            let [p, m, v] = step(constants, lr, time_after, &p, &g, Some((&m, &v)));
            Ok(finish(p, m, v, time_after))
        }
        (tensor, grad, moments) => Err((
            tensor.into_tensor(),
            grad.into_tensor(),
            moments.map(|(m, v)| AdaptiveMomentumState {
                time,
                moment_1: m.into_tensor(),
                moment_2: v.into_tensor(),
                max_moment_2: None,
            }),
        )),
    }
}

fn finish<B: Backend, const D: usize>(
    p: FlexTensor,
    m: FlexTensor,
    v: FlexTensor,
    time: usize,
) -> (Tensor<B, D>, AdaptiveMomentumState<B, D>) {
    let state = AdaptiveMomentumState {
        time,
        moment_1: back(m),
        moment_2: back(v),
        max_moment_2: None,
    };
    (back(p), state)
}

/// `[parameter, first moment, second moment]` after step number `time` (from 1).
fn step(
    c: AdamWConstants,
    lr: f64,
    time: usize,
    tensor: &FlexTensor,
    grad: &FlexTensor,
    moments: Option<(&FlexTensor, &FlexTensor)>,
) -> [FlexTensor; 3] {
    let shape = tensor.layout().shape().clone();
    let (tensor, grad) = (tensor.to_contiguous(), grad.to_contiguous());
    let moments = moments.map(|(m, v)| (m.to_contiguous(), v.to_contiguous()));
    let (p_in, g_in) = (tensor.storage::<f32>(), grad.storage::<f32>());
    let n = p_in.len();
    assert!(
        g_in.len() == n
            && moments
                .as_ref()
                .is_none_or(|(m, _)| m.storage::<f32>().len() == n)
    );
    // burn's scalars, rounded as burn rounds them.
    let (factor_1, factor_2) = (1.0 - c.beta_1, 1.0 - c.beta_2);
    let time = time as i32;
    let correction_1 = 1f32 - c.beta_1.powi(time);
    let correction_2 = 1f32 - c.beta_2.powi(time);
    let decay_rate = lr * c.weight_decay as f64;
    let keep = (1.0 - decay_rate) as f32;
    let lr = lr as f32;
    let old = moments
        .as_ref()
        .map(|(m, v)| (m.storage::<f32>(), v.storage::<f32>()));
    let scalars = [factor_1, factor_2, correction_1, correction_2, keep, lr];
    let (mut m, mut v) = (Vec::new(), Vec::new());
    // SAFETY: `update` writes every element of its chunks of `p`, `m` and `v`, and the chunks
    // cover the three buffers.
    let p = unsafe {
        written(n, |p| {
            m = written(n, |m| {
                v = written(n, |v| {
                    p.par_chunks_mut(CHUNK)
                        .zip(m.par_chunks_mut(CHUNK))
                        .zip(v.par_chunks_mut(CHUNK))
                        .enumerate()
                        .for_each(|(chunk, ((p, m), v))| {
                            let range = chunk * CHUNK..(chunk * CHUNK + p.len());
                            let (p_in, g) = (&p_in[range.clone()], &g_in[range.clone()]);
                            let old = old.map(|(m, v)| (&m[range.clone()], &v[range.clone()]));
                            update(c, scalars, p, m, v, p_in, g, old);
                        })
                })
            })
        })
    };
    [p, m, v].map(|values| flex_tensor(values, shape.clone()))
}

/// The step over one chunk: new moments into `m` and `v`, the new parameter into `p`, every
/// element written (compiled for each SIMD instruction set, see [`crate::fast_math`]).
#[multiversion(targets = "simd")]
#[allow(clippy::too_many_arguments)]
fn update(
    c: AdamWConstants,
    [factor_1, factor_2, correction_1, correction_2, keep, lr]: [f32; 6],
    p: &mut [MaybeUninit<f32>],
    m: &mut [MaybeUninit<f32>],
    v: &mut [MaybeUninit<f32>],
    p_in: &[f32],
    g: &[f32],
    old: Option<(&[f32], &[f32])>,
) {
    let n = p.len();
    assert!(m.len() == n && v.len() == n && p_in.len() == n && g.len() == n);
    let decay = c.weight_decay != 0.0;
    // The new parameter from the new moments, all three written.
    let write = |(((p, m), v), &p_in): (Outputs, &f32), m_new: f32, v_new: f32| {
        let delta = (m_new / correction_1) / ((v_new / correction_2).sqrt() + c.epsilon);
        let decayed = if decay { p_in * keep } else { p_in };
        p.write(decayed - delta * lr);
        m.write(m_new);
        v.write(v_new);
    };
    // Zipped slices (no bounds checks), so that the loops vectorize.
    let outputs = p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(p_in);
    match old {
        Some((m_old, v_old)) => {
            assert!(m_old.len() == n && v_old.len() == n);
            for ((out, &g), (&m_old, &v_old)) in outputs.zip(g).zip(m_old.iter().zip(v_old)) {
                let (m_new, v_new) = (
                    m_old * c.beta_1 + g * factor_1,
                    v_old * c.beta_2 + g * g * factor_2,
                );
                write(out, m_new, v_new);
            }
        }
        None => {
            for (out, &g) in outputs.zip(g) {
                write(out, g * factor_1, g * g * factor_2);
            }
        }
    }
}

/// One element's `((p, m), v)` outputs.
type Outputs<'a> = (
    (&'a mut MaybeUninit<f32>, &'a mut MaybeUninit<f32>),
    &'a mut MaybeUninit<f32>,
);

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::optim::{AdamWConfig, AdamWState, SimpleOptimizer};
    use burn::tensor::Distribution;

    /// Three steps from no state, with and without decay, against burn's AdamW: the same
    /// bits for the parameter and both moments.
    #[test]
    fn three_steps_equal_burns_adamw_exactly() {
        let device = Default::default();
        for weight_decay in [0.1f32, 0.0] {
            let constants = AdamWConstants {
                beta_1: 0.9,
                beta_2: 0.99,
                epsilon: 1e-8,
                weight_decay,
            };
            let burns = AdamWConfig::new()
                .with_beta_1(0.9)
                .with_beta_2(0.99)
                .with_epsilon(1e-8)
                .with_weight_decay(weight_decay)
                .build();
            let start = Tensor::<Flex, 2>::random([70, 300], Distribution::Default, &device);
            let (mut ours, mut theirs) = (start.clone(), start);
            let (mut our_state, mut their_state) = (None, None);
            for step in 0..3 {
                let grad = Tensor::<Flex, 2>::random([70, 300], Distribution::Default, &device);
                let lr = 1e-3 * (step + 1) as f64;
                let Ok((p, s)) = fused_adamw_step(constants, lr, ours, grad.clone(), our_state)
                else {
                    panic!("burn-flex tensors take the fused path");
                };
                (ours, our_state) = (p, Some(s));
                let (p, s): (_, Option<AdamWState<Flex, 2>>) =
                    SimpleOptimizer::<Flex>::step(&burns, lr, theirs, grad, their_state);
                (theirs, their_state) = (p, s);
                let (mine, burn) = (
                    our_state.as_ref().unwrap(),
                    &their_state.as_ref().unwrap().momentum,
                );
                assert_eq!(mine.time, burn.time);
                assert_eq!(mine.moment_1.to_data(), burn.moment_1.to_data());
                assert_eq!(mine.moment_2.to_data(), burn.moment_2.to_data());
                assert_eq!(ours.to_data(), theirs.to_data(), "step {step}");
            }
        }
    }
}
