//! Where one forward pass's dropouts draw their masks.
//!
//! burn's `Dropout` draws a random tensor of its input's shape at each use and keeps the mask
//! for the backward pass. On the GPU runners (quill-gpu-kernels) a training pass instead draws
//! one seed on the device, and each use hashes its own mask from it and its salt inside the
//! kernel that applies it (attention's softmax, the residual additions), forward and backward:
//! no mask drawn, stored or read back. Elsewhere, and when the kernels are off, burn's
//! `Dropout` does the work as before.

use burn::nn::Dropout;
use burn::prelude::*;
use burn::tensor::Distribution;
use quill_backend::{DropoutMask, Kernels};

use crate::compute::Compute;

/// Salts per block: attention's weights, attention's residual, the MLP's residual.
const SALTS_PER_LAYER: u32 = 3;
/// The use of a block's salts: the attention weights' dropout.
pub const ATTENTION_WEIGHTS: u32 = 0;
/// The use of a block's salts: dropout on attention's output before the residual addition.
pub const ATTENTION_OUT: u32 = 1;
/// The use of a block's salts: dropout on the MLP's output before the residual addition.
pub const MLP_OUT: u32 = 2;

/// One forward pass's dropout seed (none outside training, at rate 0, or where burn's
/// `Dropout` does the work), and the first salt of the part of the model it is handed to.
#[derive(Debug, Clone)]
pub struct Noise<B: Backend> {
    seed: Option<Tensor<B, 1>>,
    base: u32,
}

impl<B: Backend> Noise<B> {
    /// No seed: every dropout is burn's (the identity outside training).
    pub fn none() -> Self {
        Self {
            seed: None,
            base: 0,
        }
    }

    /// The seed of a forward pass at dropout `rate` on `device`: drawn (two uniform values, one
    /// launch) when training with a rate above 0 on a backend whose `kernels` hash masks.
    pub fn draw(rate: f64, device: &B::Device, kernels: &Kernels) -> Self {
        if rate > 0.0 && B::ad_enabled(device) && kernels.seeded_dropout_on::<B>() {
            return Self {
                seed: Some(Tensor::random([2], Distribution::Default, device)),
                base: 0,
            };
        }
        Self::none()
    }

    /// The noise of block `layer`, whose salts follow the embedding's (0) and the blocks' before.
    pub fn layer(&self, layer: usize) -> Self {
        Self {
            seed: self.seed.clone(),
            base: 1 + layer as u32 * SALTS_PER_LAYER,
        }
    }

    /// The mask of `use_` ([`ATTENTION_WEIGHTS`], ...) at `rate`, when there is a seed.
    pub fn mask(&self, rate: f64, use_: u32) -> Option<DropoutMask<B>> {
        let seed = self.seed.clone().filter(|_| rate > 0.0)?;
        Some(DropoutMask {
            rate,
            seed,
            salt: self.base + use_,
        })
    }

    /// The residual addition `x + dropout(h)` of a branch `h` (in `compute`'s precision) to
    /// the stream `x` (f32 under mixed precision): one kernel each way with a seed, burn's
    /// `dropout`, cast and addition otherwise.
    pub fn residual(
        &self,
        x: Tensor<B, 3>,
        h: Tensor<B, 3>,
        dropout: &Dropout,
        use_: u32,
        compute: Compute,
    ) -> Tensor<B, 3> {
        match self.kernels(Some(x), h, dropout, use_, &compute.kernels) {
            Ok(sum) => sum,
            Err((x, h)) => x.expect("handed back") + compute.up(dropout.forward(h)),
        }
    }

    /// `dropout(h)`, with the kernels when there is a seed (salt `base + use_`).
    pub fn dropout(
        &self,
        h: Tensor<B, 3>,
        dropout: &Dropout,
        use_: u32,
        kernels: &Kernels,
    ) -> Tensor<B, 3> {
        match self.kernels(None, h, dropout, use_, kernels) {
            Ok(dropped) => dropped,
            Err((_, h)) => dropout.forward(h),
        }
    }

    /// `x + dropout(h)` (or `dropout(h)`) on quill-gpu-kernels' kernels when there is a seed
    /// and they take the tensors; `Err` with `x` and `h` otherwise.
    #[allow(clippy::type_complexity)]
    fn kernels(
        &self,
        x: Option<Tensor<B, 3>>,
        h: Tensor<B, 3>,
        dropout: &Dropout,
        use_: u32,
        kernels: &Kernels,
    ) -> Result<Tensor<B, 3>, (Option<Tensor<B, 3>>, Tensor<B, 3>)> {
        match self.mask(dropout.prob, use_) {
            Some(mask) => kernels.residual_dropout(x, h, mask),
            None => Err((x, h)),
        }
    }
}
