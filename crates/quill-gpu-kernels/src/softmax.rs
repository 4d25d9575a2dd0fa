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
//! weight's index, the forward pass's seed and this use's salt ([`crate::dropout`]),
//! recomputed where needed.
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

use crate::dropout::{Dropout, device_seeds, kept};
use crate::launch::{TREE_LANES, UNITS_PER_CUBE, empty, launch_shape};

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
    salt: u32,
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
        let (a, b) = device_seeds(seed, salt);
        seed_a = a;
        seed_b = b;
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
    let (salt, threshold, scale, dropped) = match &dropout {
        Some(dropout) => (dropout.salt, dropout.threshold, dropout.scale, true),
        None => (0, 0, 1.0, false),
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
        salt,
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
