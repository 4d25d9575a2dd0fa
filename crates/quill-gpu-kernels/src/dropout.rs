//! Dropout whose mask is never stored: whether value `index` is kept is a hash of the index, a
//! seed drawn once per forward pass and a salt per use, recomputed where it is needed (as
//! quill-kernels does on the CPU). Attention's softmax applies it to the weights
//! ([`crate::softmax`]); here it is a residual branch's, `x + dropout(h)`, one kernel forward and
//! one backward.
//!
//! burn's `Dropout` draws a random tensor of the input's shape (one launch and a full write),
//! turns it into a mask that autodiff keeps for the backward pass, and multiplies; the residual
//! addition and, under mixed precision, the cast to f32 follow. At shakespeare-char's shapes
//! each of the model's 13 dropouts draws and keeps 6.3 million values per step. Here the forward
//! pass reads `x` and `h` and writes `x + keep · h / (1 − rate)` (in `x`'s dtype, computed in
//! f32); the backward pass is the same kernel without `x`, reading the sum's gradient and
//! writing `h`'s (`keep · dy / (1 − rate)`, in `h`'s dtype); `x`'s gradient is the sum's.

use burn::tensor::{DType, Shape};
use burn_cubecl::CubeRuntime;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use crate::launch::{elementwise_launch, empty, unit_index};

/// Dropout at one use: value `index` is dropped when its hash (of the index, the seed and the
/// salt) is below `threshold` (`rate · 2³²`), kept and scaled by `scale` (`1/(1 − rate)`)
/// otherwise. The seed is two uniform f32 values in a device tensor, drawn by burn's random
/// generator once per forward pass (quill seeds it per batch: a resumed run draws the same
/// masks, and the host reads nothing); each use of it in that pass has its own salt.
#[derive(Debug, Clone)]
pub struct Dropout<R: CubeRuntime> {
    pub seed: CubeTensor<R>,
    pub salt: u32,
    pub threshold: u32,
    pub scale: f32,
}

impl<R: CubeRuntime> Dropout<R> {
    /// Dropping with probability `rate` (in (0, 1)), from `seed`'s two values and `salt`.
    pub fn new(seed: CubeTensor<R>, salt: u32, rate: f64) -> Self {
        Self {
            seed,
            salt,
            threshold: threshold(rate),
            scale: (1.0 / (1.0 - rate)) as f32,
        }
    }
}

/// The hash below which a value is dropped: `rate · 2³²`, saturating at `u32::MAX`.
pub fn threshold(rate: f64) -> u32 {
    (rate.clamp(0.0, 1.0) * 4_294_967_296.0) as u32
}

/// The two seeds the kernels derive from the seed tensor's two values and a use's salt: the
/// values as 24-bit integers, the first mixed with the salt.
pub fn seeds_of(values: [f32; 2], salt: u32) -> [u32; 2] {
    let [a, b] = values.map(|value| (value * 16_777_216.0) as u32);
    [a ^ salt.wrapping_mul(SALT_MIX), b]
}

/// An odd constant that spreads consecutive salts over all 32 bits.
const SALT_MIX: u32 = 0x2C1B_3C6D;

/// [`seeds_of`] on the device, from the seed tensor.
#[cube]
pub(crate) fn device_seeds(seed: &Tensor<f32>, salt: u32) -> (u32, u32) {
    let a = u32::cast_from(seed[0] * f32::new(16_777_216.0));
    let b = u32::cast_from(seed[1] * f32::new(16_777_216.0));
    (a ^ (salt * SALT_MIX), b)
}

/// murmur3's finalizer over a value's index and the seeds: whether the value is kept.
#[cube]
pub(crate) fn kept(index: u32, seed_a: u32, seed_b: u32, threshold: u32) -> bool {
    let mut h = (index * 0x9E37_79B1u32) ^ seed_a;
    h ^= h >> 16u32;
    h = (h * 0x85EB_CA6Bu32) ^ seed_b;
    h ^= h >> 13u32;
    h *= 0xC2B2_AE35u32;
    h ^= h >> 16u32;
    h >= threshold
}

/// [`kept`] on the host, for tests that rebuild the mask.
pub fn kept_on_host(index: u32, seeds: [u32; 2], threshold: u32) -> bool {
    let mut h = index.wrapping_mul(0x9E37_79B1) ^ seeds[0];
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B) ^ seeds[1];
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^= h >> 16;
    h >= threshold
}

/// `out = x + keep · h · scale` (or, without `residual`, `keep · h · scale`; `x` is then not
/// read), computed in f32.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn forward_kernel<F: Float, G: Float>(
    x: &Tensor<F>,
    h: &Tensor<G>,
    seed: &Tensor<f32>,
    out: &mut Tensor<F>,
    values: u32,
    salt: u32,
    threshold: u32,
    scale: f32,
    #[comptime] residual: bool,
    #[define(F, G)] _dtypes: [StorageType; 2],
) {
    let index = unit_index();
    if index < values {
        let (seed_a, seed_b) = device_seeds(seed, salt);
        let mut y = f32::new(0.0);
        if kept(index, seed_a, seed_b, threshold) {
            y = f32::cast_from(h[index as usize]) * scale;
        }
        if residual {
            y += f32::cast_from(x[index as usize]);
        }
        out[index as usize] = F::cast_from(y);
    }
}

/// `x + dropout(h)` (`x` and `h` of one shape, `out_dtype` `x`'s), or `dropout(h)` without
/// `x`, in `out_dtype`. Dropout's backward pass is the same kernel: `dropout(dy)` with the
/// same mask is `h`'s gradient.
pub fn forward<R: CubeRuntime>(
    x: Option<CubeTensor<R>>,
    h: CubeTensor<R>,
    dropout: Dropout<R>,
    out_dtype: DType,
) -> CubeTensor<R> {
    let h = into_contiguous(h);
    let residual = x.is_some();
    let shape = h.meta.shape().clone();
    let out = empty(&h, shape.clone(), out_dtype);
    let x = match x {
        Some(x) => into_contiguous(x),
        // Not read without `residual`, but an argument all the same.
        None => empty(&h, Shape::new([1]), out_dtype),
    };
    debug_assert_eq!(x.dtype, out_dtype, "the sum is in x's dtype");
    let values = shape.num_elements();
    let seed = into_contiguous(dropout.seed);
    let (cube_count, cube_dim) = elementwise_launch(values);
    forward_kernel::launch::<R>(
        &h.client.clone(),
        cube_count,
        cube_dim,
        x.into_tensor_arg(),
        h.clone().into_tensor_arg(),
        seed.into_tensor_arg(),
        out.clone().into_tensor_arg(),
        values as u32,
        dropout.salt,
        dropout.threshold,
        dropout.scale,
        residual,
        [out_dtype.into(), h.dtype.into()],
    );
    out
}
