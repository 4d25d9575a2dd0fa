//! AdamW that decays weight matrices only, and global gradient-norm clipping.
//!
//! nanoGPT decays every parameter with two or more dimensions (linear weights, embeddings) and
//! leaves biases and layer-norm gains alone. burn 0.21's AdamW decays every parameter it steps,
//! so [`MatrixDecayAdamW`] dispatches each tensor to a decaying or a non-decaying AdamW by rank.
//! burn's `GradientClippingConfig::Norm` clips each tensor by its own norm; PyTorch's
//! `clip_grad_norm_` (and nanoGPT) scales all gradients by one global norm, which
//! [`clip_global_norm`] does, or [`step_clipped`], which hands the scale to the optimizer's
//! step instead, so that the GPU runners' AdamW kernel applies it while it reads the
//! gradient (quill-gpu-kernels: one kernel per tensor for clipping's scale and the step,
//! where burn runs six).

use std::any::Any;
use std::cell::{Cell, RefCell};

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, AdamWState, GradientsParams, Optimizer, SimpleOptimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use quill_backend::{AdamWConstants, Kernels};

use crate::config::OptimizerConfig;

#[derive(Clone)]
pub struct MatrixDecayAdamW {
    decayed: AdamW,
    not_decayed: AdamW,
    /// `(beta1, beta2, weight_decay)`, for the fused steps.
    constants: (f32, f32, f32),
    /// Whose step runs: quill's kernels or burn's (quill-backend).
    kernels: Kernels,
}

/// AdamW's ε: PyTorch's default (burn's is 1e-5).
const EPSILON: f32 = 1e-8;

impl MatrixDecayAdamW {
    pub fn new(config: &OptimizerConfig, kernels: Kernels) -> Self {
        let adamw = AdamWConfig::new()
            .with_beta_1(config.beta1 as f32)
            .with_beta_2(config.beta2 as f32)
            .with_epsilon(EPSILON);
        Self {
            decayed: adamw
                .clone()
                .with_weight_decay(config.weight_decay as f32)
                .build(),
            not_decayed: adamw.with_weight_decay(0.0).build(),
            constants: (
                config.beta1 as f32,
                config.beta2 as f32,
                config.weight_decay as f32,
            ),
            kernels,
        }
    }

    /// The optimizer for module `M`, in burn's adaptor (records, devices, checkpoints).
    pub fn init<B: AutodiffBackend, M: AutodiffModule<B>>(
        config: &OptimizerConfig,
        kernels: Kernels,
    ) -> OptimizerAdaptor<Self, M, B> {
        OptimizerAdaptor::from(Self::new(config, kernels))
    }
}

impl<B: Backend> SimpleOptimizer<B> for MatrixDecayAdamW {
    type State<const D: usize> = AdamWState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let scale = GradientScale::get::<B>();
        let (beta_1, beta_2, weight_decay) = self.constants;
        let constants = AdamWConstants {
            beta_1,
            beta_2,
            epsilon: EPSILON,
            weight_decay: if D >= 2 { weight_decay } else { 0.0 },
        };
        let momentum = state.map(|s| s.momentum);
        let inputs = (tensor, grad, momentum, scale);
        let (tensor, grad, state) = match self.kernels.adamw_step(constants, lr, inputs) {
            Ok((tensor, momentum)) => return (tensor, Some(AdamWState { momentum })),
            Err((tensor, grad, momentum, scale)) => {
                let grad = match scale {
                    Some(scale) => grad * scale.reshape([1; D]),
                    None => grad,
                };
                (
                    tensor,
                    grad,
                    momentum.map(|momentum| AdamWState { momentum }),
                )
            }
        };
        let adamw = if D >= 2 {
            &self.decayed
        } else {
            &self.not_decayed
        };
        SimpleOptimizer::<B>::step(adamw, lr, tensor, grad, state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        <AdamW as SimpleOptimizer<B>>::to_device(state, device)
    }
}

/// Scales every gradient of `module` by `min(1, max_norm / (‖g‖ + 1e-6))`, where `‖g‖` is the
/// L2 norm of all gradients together. Stays on the device: no value is read back.
pub fn clip_global_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: GradientsParams,
    max_norm: f64,
    kernels: &Kernels,
) -> GradientsParams {
    let Some(coef) = clip_scale::<B, M>(module, &grads, max_norm, kernels) else {
        return grads;
    };
    let mut scale = Scale::<B> { grads, coef };
    module.visit(&mut scale);
    scale.grads
}

/// `optim.step(lr, module, grads)` with `grads` clipped to a global norm of `max_norm` (none
/// when it is 0), as [`clip_global_norm`] clips them, the scale applied by the step itself:
/// [`MatrixDecayAdamW`] multiplies each gradient by it, on the GPU runners inside its kernel.
/// `kernels` sums the gradients' squares (the model's, which the optimizer's match).
pub fn step_clipped<B, M, O>(
    optim: &mut O,
    lr: f64,
    module: M,
    grads: GradientsParams,
    max_norm: f64,
    kernels: &Kernels,
) -> M
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B>,
{
    let scale = match max_norm > 0.0 {
        true => clip_scale::<B, M>(&module, &grads, max_norm, kernels),
        false => None,
    };
    let Some(scale) = scale else {
        return optim.step(lr, module, grads);
    };
    let guard = GradientScale::set(scale);
    let stepped = optim.step(lr, module, grads);
    assert!(
        guard.was_read(),
        "the optimizer ignored the gradient-clipping scale (MatrixDecayAdamW and KellerMuon apply it)"
    );
    stepped
}

/// `min(1, max_norm / (‖g‖ + 1e-6))` for the gradients of `module`, `[1]` on the device; `None`
/// without gradients.
fn clip_scale<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &GradientsParams,
    max_norm: f64,
    kernels: &Kernels,
) -> Option<Tensor<B::InnerBackend, 1>> {
    let mut squares = SumOfSquares::<B> {
        grads,
        total: None,
        flattened: Vec::new(),
        one_launch: kernels.sums_squares_of::<B::InnerBackend>(),
        kernels,
    };
    module.visit(&mut squares);
    let total = squares.total()?;
    Some((total.sqrt().add_scalar(1e-6).recip() * max_norm).clamp_max(1.0))
}

thread_local! {
    /// The gradients' scale for the optimizer step running on this thread (a `[1]` tensor of
    /// the optimizer's backend), and whether the step read it. The optimizer's per-tensor
    /// step has no other way in: burn's adaptor calls it with a tensor and its gradient only.
    static GRADIENT_SCALE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    static GRADIENT_SCALE_READ: Cell<bool> = const { Cell::new(false) };
}

/// The gradients' scale, set for the length of one optimizer step ([`step_clipped`]).
pub(crate) struct GradientScale;

impl GradientScale {
    fn set<B: Backend>(scale: Tensor<B, 1>) -> Self {
        GRADIENT_SCALE.with(|slot| *slot.borrow_mut() = Some(Box::new(scale)));
        GRADIENT_SCALE_READ.with(|read| read.set(false));
        Self
    }

    /// The scale of the step running on this thread, if any.
    pub(crate) fn get<B: Backend>() -> Option<Tensor<B, 1>> {
        GRADIENT_SCALE.with(|slot| {
            let slot = slot.borrow();
            let scale = slot
                .as_ref()?
                .downcast_ref::<Tensor<B, 1>>()
                .expect("the gradient scale is a tensor of the optimizer's backend");
            GRADIENT_SCALE_READ.with(|read| read.set(true));
            Some(scale.clone())
        })
    }

    fn was_read(&self) -> bool {
        GRADIENT_SCALE_READ.with(Cell::get)
    }
}

impl Drop for GradientScale {
    fn drop(&mut self) {
        GRADIENT_SCALE.with(|slot| slot.borrow_mut().take());
    }
}

/// The gradients' sum of squares: tensor by tensor as burn's operations, or all of them
/// flattened for one launch where `kernels` sums them so.
struct SumOfSquares<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    total: Option<Tensor<B::InnerBackend, 1>>,
    flattened: Vec<Tensor<B::InnerBackend, 1>>,
    /// Whether `kernels` sums them in one launch (asked once, not per gradient).
    one_launch: bool,
    kernels: &'a Kernels,
}

impl<B: AutodiffBackend> SumOfSquares<'_, B> {
    fn total(self) -> Option<Tensor<B::InnerBackend, 1>> {
        if self.flattened.is_empty() {
            return self.total;
        }
        self.kernels.sum_of_squares(self.flattened)
    }
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SumOfSquares<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = self.grads.get::<B::InnerBackend, D>(param.id) {
            if self.one_launch {
                let values = grad.shape().num_elements();
                self.flattened.push(grad.reshape([values]));
                return;
            }
            let sum = grad.square().sum();
            self.total = Some(match self.total.take() {
                Some(total) => total + sum,
                None => sum,
            });
        }
    }
}

struct Scale<B: AutodiffBackend> {
    grads: GradientsParams,
    coef: Tensor<B::InnerBackend, 1>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            let coef = self.coef.clone().reshape([1; D]);
            self.grads.register(param.id, grad * coef);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::Optimizer;

    type A = Autodiff<NdArray>;

    fn grads_of(layer: &Linear<A>, scale: f32) -> GradientsParams {
        let x = Tensor::<A, 2>::ones([2, 3], &Default::default()) * scale;
        GradientsParams::from_grads(layer.forward(x).sum().backward(), layer)
    }

    fn global_norm(layer: &Linear<A>, grads: &GradientsParams) -> f32 {
        let w = grads.get::<NdArray, 2>(layer.weight.id).unwrap();
        let b = grads
            .get::<NdArray, 1>(layer.bias.as_ref().unwrap().id)
            .unwrap();
        (w.square().sum() + b.square().sum()).sqrt().into_scalar()
    }

    fn batch_of(layer: &Linear<A>, rows: usize) -> GradientsParams {
        let x = Tensor::<A, 2>::ones([rows, 3], &Default::default()) * 0.001;
        GradientsParams::from_grads(layer.forward(x).sum().backward(), layer)
    }

    #[test]
    fn clipping_scales_all_gradients_by_one_global_norm() {
        let layer: Linear<A> = LinearConfig::new(3, 4).init(&Default::default());
        let grads = grads_of(&layer, 10.0);
        let before = global_norm(&layer, &grads);
        let w_before = grads.get::<NdArray, 2>(layer.weight.id).unwrap();
        assert!(before > 1.0);
        let clipped = clip_global_norm(&layer, grads, 1.0, &Kernels::QUILL);
        assert!((global_norm(&layer, &clipped) - 1.0).abs() < 1e-4);
        // Direction is kept: one factor for every tensor.
        let w_after = clipped.get::<NdArray, 2>(layer.weight.id).unwrap();
        let ratio = (w_after / w_before).into_data().to_vec::<f32>().unwrap();
        assert!(ratio.iter().all(|r| (r - ratio[0]).abs() < 1e-6));

        // The bias gradient is the row count, so one row gives a norm of 2 (4 biases) and
        // a fraction of a row is needed to stay below 1: use a single row and scale its loss.
        let small = {
            let g = batch_of(&layer, 1);
            let mut scaled = GradientsParams::new();
            let w = layer.weight.id;
            let b = layer.bias.as_ref().unwrap().id;
            scaled.register::<NdArray, 2>(w, g.get::<NdArray, 2>(w).unwrap() * 0.1);
            scaled.register::<NdArray, 1>(b, g.get::<NdArray, 1>(b).unwrap() * 0.1);
            scaled
        };
        let n = global_norm(&layer, &small);
        assert!(n < 1.0);
        assert!(
            (global_norm(
                &layer,
                &clip_global_norm(&layer, small, 1.0, &Kernels::QUILL)
            ) - n)
                .abs()
                < 1e-6
        );
    }

    /// The scale handed to the step gives the weights that clipping the gradients first gives,
    /// bit for bit, over steps with and without clipping at work; an optimizer that ignores it
    /// is caught.
    #[test]
    fn a_step_with_clippings_scale_equals_a_step_on_clipped_gradients() {
        let config = OptimizerConfig::default();
        let mut clipped_first = MatrixDecayAdamW::init::<A, Linear<A>>(&config, Kernels::QUILL);
        let mut scaled_in_step = MatrixDecayAdamW::init::<A, Linear<A>>(&config, Kernels::QUILL);
        let mut a: Linear<A> = LinearConfig::new(3, 4).init(&Default::default());
        // Parameters are initialized on first use; a clone before that would draw its own.
        let _ = (a.weight.val(), a.bias.as_ref().map(|b| b.val()));
        let mut b = a.clone();
        for (i, (input_scale, max_norm)) in [(10.0, 1.0), (0.001, 1.0), (10.0, 0.0)]
            .into_iter()
            .enumerate()
        {
            let grads = grads_of(&a, input_scale);
            let grads = match max_norm > 0.0 {
                true => clip_global_norm(&a, grads, max_norm, &Kernels::QUILL),
                false => grads,
            };
            a = clipped_first.step(1e-2, a, grads);
            let grads = grads_of(&b, input_scale);
            b = step_clipped(
                &mut scaled_in_step,
                1e-2,
                b,
                grads,
                max_norm,
                &Kernels::QUILL,
            );
            assert_eq!(
                a.weight.val().inner().into_data(),
                b.weight.val().inner().into_data(),
                "step {i}"
            );
            assert_eq!(
                a.bias.as_ref().unwrap().val().inner().into_data(),
                b.bias.as_ref().unwrap().val().inner().into_data(),
                "step {i}"
            );
        }

        let mut plain = burn::optim::AdamWConfig::new().init::<A, Linear<A>>();
        let ignored = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            step_clipped(
                &mut plain,
                1e-2,
                b.clone(),
                grads_of(&b, 10.0),
                1.0,
                &Kernels::QUILL,
            )
        }));
        assert!(ignored.is_err(), "burn's AdamW does not read the scale");
    }

    #[test]
    fn weight_decay_touches_matrices_only() {
        // With zero gradients Adam's update is zero, so any change is weight decay.
        let layer: Linear<A> = LinearConfig::new(3, 4).init(&Default::default());
        let config = OptimizerConfig {
            weight_decay: 0.5,
            ..Default::default()
        };
        let mut optim = MatrixDecayAdamW::init::<A, Linear<A>>(&config, Kernels::QUILL);
        let zero = Tensor::<A, 2>::zeros([2, 3], &Default::default());
        let grads = GradientsParams::from_grads(layer.forward(zero).sum().backward(), &layer);
        let mut grads_zero = GradientsParams::new();
        grads_zero.register::<NdArray, 2>(
            layer.weight.id,
            grads.get::<NdArray, 2>(layer.weight.id).unwrap() * 0.0,
        );
        let bias_id = layer.bias.as_ref().unwrap().id;
        grads_zero.register::<NdArray, 1>(bias_id, grads.get::<NdArray, 1>(bias_id).unwrap() * 0.0);
        let w0 = layer.weight.val().inner();
        let b0 = layer.bias.as_ref().unwrap().val().inner();
        let stepped = optim.step(0.1, layer, grads_zero);
        let w1 = stepped.weight.val().inner();
        let b1 = stepped.bias.as_ref().unwrap().val().inner();
        (w0 * (1.0 - 0.1 * 0.5))
            .into_data()
            .assert_approx_eq::<f32>(&w1.into_data(), Default::default());
        b0.into_data()
            .assert_approx_eq::<f32>(&b1.into_data(), Default::default());
    }
}
