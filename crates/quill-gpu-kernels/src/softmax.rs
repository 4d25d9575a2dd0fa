//! Attention's causal softmax with dropout, forward and backward, each one kernel over the
//! `[.., seq_q, seq_k]` scores. A row is [`TREE_LANES`] units' work, a cube holds several rows;
//! a row's maximum and sum come from a tree in shared memory on every device, so the code CI
//! runs on lavapipe is the code a GPU runs. (Warp operations would save the tree's few
//! barriers, a small part next to the passes over the scores, and could only be tested on a
//! GPU: Vulkan does not promise that a workgroup's subgroups are consecutive units.)
//!
//! burn composes the same in about a dozen passes over the `[batch, head, seq, seq]` tensor
//! forward and as many backward (mask, max, subtract, exp, sum, divide, a random tensor for
//! dropout, two multiplications, and each one's backward pass); at shakespeare-char's shapes
//! that tensor is 100 MB per layer. Here the forward pass reads the scores once (a row is
//! re-read from cache) and writes the weights, and the probabilities before dropout when the
//! backward pass needs them; the backward pass reads those and the weights' gradient once and
//! writes the scores' gradient. The dropout mask is never stored: it is a hash of each
//! weight's index and a seed, recomputed where needed (as quill-kernels does on the CPU).
//!
//! The forward pass, for query `i` of a row (keys `j ≤ i + past` visible) and the scores'
//! scale `c` ([`Rows::scale`]): `p = softmax(c · s)` over the visible keys, 0 elsewhere;
//! `y = p · keep / (1 − rate)`. The backward pass: `ds = c · (y ⊙ dy − p · Σ(y ⊙ dy))` (the
//! softmax's `p ⊙ (dp − Σ p ⊙ dp)` with `dp = dy ⊙ keep / (1 − rate)`, since
//! `p ⊙ dp = y ⊙ dy`).

use burn::tensor::{DType, Shape};
use burn_cubecl::CubeRuntime;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

/// Units per row where rows are reduced in shared memory (a power of two).
pub(crate) const TREE_LANES: u32 = 32;
/// Units per cube: `256 / lanes` rows each (8 with 32 units per row).
pub(crate) const UNITS_PER_CUBE: u32 = 256;
/// The most cubes along one dimension of a launch that every backend takes (wgpu's limit).
const MAX_CUBES_X: u32 = 65535;

/// Where in a `[.., seq_q, seq_k]` tensor the softmax runs: the row length `seq_k`, the
/// queries per matrix `seq_q`, and `past`, the keys before the first query (a KV cache): query
/// `i` sees keys `0 ..= i + past`; and `scale`, the factor on the scores as they are read
/// (attention's `1/√head_dim`: a multiplication in the kernel rather than a pass over the
/// queries and one over their gradient).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rows {
    pub seq_q: usize,
    pub seq_k: usize,
    pub past: usize,
    pub scale: f32,
}

impl Rows {
    /// The rows of `shape`'s last two dimensions, or `None` when they cannot be a causal
    /// softmax's (a query with no visible key, more keys than a 32-bit index reaches, or a
    /// scale that is not positive and finite).
    pub fn of(shape: &[usize], past: usize, scale: f64) -> Option<Self> {
        let [.., seq_q, seq_k] = *shape else {
            return None;
        };
        let elements: usize = shape.iter().product();
        let scale_ok = scale > 0.0 && scale.is_finite();
        (seq_q > 0 && seq_k > past && u32::try_from(elements).is_ok() && scale_ok).then_some(Self {
            seq_q,
            seq_k,
            past,
            scale: scale as f32,
        })
    }
}

/// Dropout on the attention weights: weight `index` is dropped when its hash is below
/// `threshold` (`rate · 2³²`), kept and scaled by `scale` (`1/(1 − rate)`) otherwise. The seed
/// is two uniform f32 values in a device tensor (drawn by burn's random generator, which quill
/// seeds per batch: a resumed run draws the same masks, and the host reads nothing).
#[derive(Debug, Clone)]
pub struct Dropout<R: CubeRuntime> {
    pub seed: CubeTensor<R>,
    pub threshold: u32,
    pub scale: f32,
}

impl<R: CubeRuntime> Dropout<R> {
    /// Dropping with probability `rate` (in (0, 1)), from `seed`'s two values.
    pub fn new(seed: CubeTensor<R>, rate: f64) -> Self {
        Self {
            seed,
            threshold: threshold(rate),
            scale: (1.0 / (1.0 - rate)) as f32,
        }
    }
}

/// The hash below which a weight is dropped: `rate · 2³²`, saturating at `u32::MAX`.
pub fn threshold(rate: f64) -> u32 {
    (rate.clamp(0.0, 1.0) * 4_294_967_296.0) as u32
}

/// The two 24-bit seeds the kernels derive from the seed tensor's two values.
pub fn seeds_of(values: [f32; 2]) -> [u32; 2] {
    values.map(|value| (value * 16_777_216.0) as u32)
}

/// murmur3's finalizer over a weight's index and the seeds: whether the weight is kept.
#[cube]
fn kept(index: u32, seed_a: u32, seed_b: u32, threshold: u32) -> bool {
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

/// Where this unit's row starts, how many keys its query sees and how far its units write.
/// Rows are one per `CUBE_DIM_Y`, the cubes over two launch dimensions; units past the last
/// row get 0 and 0 and stay to the end, idle, since the tree's barriers need every unit of
/// the cube.
#[cube]
fn row_span(rows: u32, seq_q: u32, seq_k: usize, past: u32) -> (usize, usize, usize) {
    let row = (CUBE_POS_Y * CUBE_COUNT_X + CUBE_POS_X) * CUBE_DIM_Y + UNIT_POS_Y;
    let mut visible = 0;
    let mut end = 0;
    if row < rows {
        visible = min((row as usize % seq_q as usize) + past as usize + 1, seq_k);
        end = seq_k;
    }
    (row as usize * seq_k, visible, end)
}

/// The maximum (`is_max`) or sum of the row's values, halving in shared memory.
#[cube]
pub(crate) fn tree(value: f32, shared: &mut SharedMemory<f32>, #[comptime] is_max: bool) -> f32 {
    let lane = UNIT_POS_X as usize;
    let base = (UNIT_POS_Y * CUBE_DIM_X) as usize;
    shared[base + lane] = value;
    sync_cube();
    let mut stride = CUBE_DIM_X as usize / 2;
    while stride > 0 {
        if lane < stride {
            let a = shared[base + lane];
            let b = shared[base + lane + stride];
            if is_max {
                shared[base + lane] = max(a, b);
            } else {
                shared[base + lane] = a + b;
            }
        }
        sync_cube();
        stride /= 2;
    }
    let result = shared[base];
    // Before the memory is written again.
    sync_cube();
    result
}

/// `weights` (and `probs`, with `keep_probs`) of `scores`: see the module's documentation.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn forward_kernel<F: Float, G: Float>(
    scores: &Tensor<F>,
    seed: &Tensor<f32>,
    weights: &mut Tensor<G>,
    probs: &mut Tensor<f32>,
    rows: u32,
    seq_q: u32,
    seq_k: u32,
    past: u32,
    scores_scale: f32,
    threshold: u32,
    scale: f32,
    #[comptime] dropout: bool,
    #[comptime] keep_probs: bool,
    #[define(F, G)] _dtypes: [StorageType; 2],
) {
    let (lanes, seq_k) = (CUBE_DIM_X as usize, seq_k as usize);
    let (start, visible, end) = row_span(rows, seq_q, seq_k, past);
    let mut shared = SharedMemory::<f32>::new(UNITS_PER_CUBE as usize);

    let mut local_max = f32::new(-3.0e38);
    let mut j = UNIT_POS_X as usize;
    while j < visible {
        local_max = max(local_max, f32::cast_from(scores[start + j]));
        j += lanes;
    }
    // The scale is positive: the scaled row's largest value is the largest value's.
    let highest = tree(local_max, &mut shared, true);

    let mut local_sum = f32::new(0.0);
    let mut j = UNIT_POS_X as usize;
    while j < visible {
        local_sum += ((f32::cast_from(scores[start + j]) - highest) * scores_scale).exp();
        j += lanes;
    }
    let inverse = f32::new(1.0) / tree(local_sum, &mut shared, false);

    let mut seed_a = 0u32;
    let mut seed_b = 0u32;
    if dropout {
        seed_a = u32::cast_from(seed[0] * f32::new(16_777_216.0));
        seed_b = u32::cast_from(seed[1] * f32::new(16_777_216.0));
    }
    let mut j = UNIT_POS_X as usize;
    while j < end {
        let mut p = f32::new(0.0);
        if j < visible {
            p = ((f32::cast_from(scores[start + j]) - highest) * scores_scale).exp() * inverse;
        }
        if keep_probs {
            probs[start + j] = p;
        }
        let mut y = p;
        if dropout {
            if kept(u32::cast_from(start + j), seed_a, seed_b, threshold) {
                y = p * scale;
            } else {
                y = f32::new(0.0);
            }
        }
        weights[start + j] = G::cast_from(y);
        j += lanes;
    }
}

/// `grad_scores = scale · (weights ⊙ grad − probs · Σ(weights ⊙ grad))` over each row's
/// visible keys.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn backward_kernel<F: Float, G: Float>(
    weights: &Tensor<G>,
    probs: &Tensor<f32>,
    grad: &Tensor<G>,
    grad_scores: &mut Tensor<F>,
    rows: u32,
    seq_q: u32,
    seq_k: u32,
    past: u32,
    scores_scale: f32,
    #[define(F, G)] _dtypes: [StorageType; 2],
) {
    let (lanes, seq_k) = (CUBE_DIM_X as usize, seq_k as usize);
    let (start, visible, end) = row_span(rows, seq_q, seq_k, past);
    let mut shared = SharedMemory::<f32>::new(UNITS_PER_CUBE as usize);

    let mut local = f32::new(0.0);
    let mut j = UNIT_POS_X as usize;
    while j < visible {
        local += f32::cast_from(weights[start + j]) * f32::cast_from(grad[start + j]);
        j += lanes;
    }
    let total = tree(local, &mut shared, false);

    let mut j = UNIT_POS_X as usize;
    while j < end {
        let mut ds = f32::new(0.0);
        if j < visible {
            let y = f32::cast_from(weights[start + j]);
            let dy = f32::cast_from(grad[start + j]);
            ds = (y * dy - probs[start + j] * total) * scores_scale;
        }
        grad_scores[start + j] = F::cast_from(ds);
        j += lanes;
    }
}

/// A new row-major tensor (no padded rows: the softmax kernels index rows as `row · seq_k`,
/// the optimizer's kernels read values as one run).
pub(crate) fn empty<R: CubeRuntime>(
    like: &CubeTensor<R>,
    shape: Shape,
    dtype: DType,
) -> CubeTensor<R> {
    let handle = like.client.empty(shape.num_elements() * dtype.size());
    CubeTensor::new_contiguous(
        like.client.clone(),
        like.device.clone(),
        shape,
        handle,
        dtype,
    )
}

/// `lanes` units per row, `UNITS_PER_CUBE / lanes` rows per cube, the cubes in as many launch
/// rows as needed.
pub(crate) fn launch_shape(rows: usize, lanes: u32) -> (CubeCount, CubeDim) {
    let rows_per_cube = (UNITS_PER_CUBE / lanes).max(1);
    let cubes = (rows as u32).div_ceil(rows_per_cube);
    let x = cubes.clamp(1, MAX_CUBES_X);
    let count = CubeCount::Static(x, cubes.div_ceil(x), 1);
    (count, CubeDim::new_2d(lanes, rows_per_cube))
}

/// The weights (in `weights_dtype`) of `scores: [.., seq_q, seq_k]` and, with `keep_probs`, the
/// probabilities before dropout (f32) for the backward pass.
pub fn forward<R: CubeRuntime>(
    scores: CubeTensor<R>,
    rows: Rows,
    dropout: Option<Dropout<R>>,
    weights_dtype: DType,
    keep_probs: bool,
) -> (CubeTensor<R>, Option<CubeTensor<R>>) {
    let scores = into_contiguous(scores);
    let client = scores.client.clone();
    let shape = scores.meta.shape().clone();
    let count = shape.num_elements() / rows.seq_k;
    let weights = empty(&scores, shape.clone(), weights_dtype);
    // Unused by the kernel without `keep_probs`, but an argument all the same.
    let probs_shape = if keep_probs { shape } else { Shape::new([1]) };
    let probs = empty(&scores, probs_shape, DType::F32);
    let (threshold, scale, dropped) = match &dropout {
        Some(dropout) => (dropout.threshold, dropout.scale, true),
        None => (0, 1.0, false),
    };
    let seed = match dropout {
        Some(dropout) => into_contiguous(dropout.seed),
        None => empty(&scores, Shape::new([2]), DType::F32),
    };
    let (cube_count, cube_dim) = launch_shape(count, TREE_LANES);
    forward_kernel::launch::<R>(
        &client,
        cube_count,
        cube_dim,
        scores.clone().into_tensor_arg(),
        seed.into_tensor_arg(),
        weights.clone().into_tensor_arg(),
        probs.clone().into_tensor_arg(),
        count as u32,
        rows.seq_q as u32,
        rows.seq_k as u32,
        rows.past as u32,
        rows.scale,
        threshold,
        scale,
        dropped,
        keep_probs,
        [scores.dtype.into(), weights_dtype.into()],
    );
    (weights, keep_probs.then_some(probs))
}

/// The scores' gradient (in `scores_dtype`) from the weights, the probabilities before dropout
/// (the weights themselves when they are f32 and nothing was dropped) and the weights'
/// gradient `grad` (in the weights' dtype).
pub fn backward<R: CubeRuntime>(
    weights: CubeTensor<R>,
    probs: CubeTensor<R>,
    grad: CubeTensor<R>,
    rows: Rows,
    scores_dtype: DType,
) -> CubeTensor<R> {
    let (weights, probs, grad) = (
        into_contiguous(weights),
        into_contiguous(probs),
        into_contiguous(grad),
    );
    let client = weights.client.clone();
    let shape = weights.meta.shape().clone();
    let count = shape.num_elements() / rows.seq_k;
    let grad_scores = empty(&weights, shape, scores_dtype);
    let (cube_count, cube_dim) = launch_shape(count, TREE_LANES);
    let weights_dtype = weights.dtype;
    backward_kernel::launch::<R>(
        &client,
        cube_count,
        cube_dim,
        weights.into_tensor_arg(),
        probs.into_tensor_arg(),
        grad.into_tensor_arg(),
        grad_scores.clone().into_tensor_arg(),
        count as u32,
        rows.seq_q as u32,
        rows.seq_k as u32,
        rows.past as u32,
        rows.scale,
        [scores_dtype.into(), weights_dtype.into()],
    );
    grad_scores
}
