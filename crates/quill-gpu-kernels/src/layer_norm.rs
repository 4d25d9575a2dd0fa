//! Layer norm over the last dimension, `y = (x − mean)·rstd·γ (+ β)` with
//! `rstd = 1/√(var + ε)`, as one kernel forward and two backward, over `x: [rows, width]`.
//!
//! burn composes it from a mean and a variance (two reductions), a subtraction, a square root,
//! a division, a product and a sum forward, and about as many reductions and elementwise
//! kernels backward, each a pass over the whole `[batch, seq, n_embd]` tensor: about a dozen
//! launches per layer norm, 13 layer norms in shakespeare-char's model. Here:
//! - forward: each row's units sum the row, then its squared deviations (two passes over the
//!   row, the second from cache), and write `y`, the row's mean and `rstd` (kept for the
//!   backward pass instead of the normalized row);
//! - backward, rows: `dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))` with `dx̂ = dy·γ`, the two
//!   means reduced over the row's units;
//! - backward, parameters: `dγ = Σ dy·x̂` and `dβ = Σ dy` over the rows, each unit summing
//!   one column over a chunk of rows into a `[chunks, width]` partial sum, whose few rows
//!   burn then adds up.
//!
//! A row's units combine their values in a tree in shared memory ([`crate::softmax`]'s),
//! on every device: the same code runs in CI on lavapipe.

use burn::tensor::{DType, Shape};
use burn_cubecl::CubeRuntime;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use crate::launch::{TREE_LANES, UNITS_PER_CUBE, empty, launch_shape};
use crate::softmax;

/// Units per column chunk of the parameters' gradient kernel.
const COLUMNS_PER_CUBE: u32 = 64;
/// The fewest rows a unit of the parameters' gradient kernel sums (more where there would
/// otherwise be more chunks than one launch dimension holds).
const ROWS_PER_CHUNK: usize = 64;
/// The most cubes along one dimension of a launch that every backend takes (wgpu's limit).
const MAX_CUBES: usize = 65535;

/// This unit's row (one per `CUBE_DIM_Y`, the cubes over two launch dimensions) and how far
/// its units read: `width`, or 0 past the last row, whose units stay to the end, idle, since
/// the tree's barriers need every unit of the cube.
#[cube]
fn row_of(rows: u32, width: u32) -> (u32, usize) {
    let row = (CUBE_POS_Y * CUBE_COUNT_X + CUBE_POS_X) * CUBE_DIM_Y + UNIT_POS_Y;
    let mut end = 0usize;
    if row < rows {
        end = width as usize;
    }
    (row, end)
}

/// `y`, and each row's mean and `rstd`: see the module's documentation.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn forward_kernel(
    x: &Tensor<f32>,
    gamma: &Tensor<f32>,
    beta: &Tensor<f32>,
    y: &mut Tensor<f32>,
    mean: &mut Tensor<f32>,
    rstd: &mut Tensor<f32>,
    rows: u32,
    width: u32,
    epsilon: f32,
    #[comptime] shifted: bool,
) {
    let lanes = CUBE_DIM_X as usize;
    let (row, end) = row_of(rows, width);
    let start = row as usize * width as usize;
    let count = f32::cast_from(width);
    let mut shared = SharedMemory::<f32>::new(UNITS_PER_CUBE as usize);

    let mut local = f32::new(0.0);
    let mut j = UNIT_POS_X as usize;
    while j < end {
        local += x[start + j];
        j += lanes;
    }
    let mu = softmax::tree(local, &mut shared, false) / count;

    let mut local = f32::new(0.0);
    let mut j = UNIT_POS_X as usize;
    while j < end {
        let centered = x[start + j] - mu;
        local += centered * centered;
        j += lanes;
    }
    let variance = softmax::tree(local, &mut shared, false) / count;
    let r = f32::new(1.0) / (variance + epsilon).sqrt();

    let mut j = UNIT_POS_X as usize;
    while j < end {
        let mut out = (x[start + j] - mu) * r * gamma[j];
        if shifted {
            out += beta[j];
        }
        y[start + j] = out;
        j += lanes;
    }
    if end > 0 && UNIT_POS_X == 0 {
        mean[row as usize] = mu;
        rstd[row as usize] = r;
    }
}

/// `dx` of each row: see the module's documentation.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn backward_rows_kernel(
    x: &Tensor<f32>,
    gamma: &Tensor<f32>,
    mean: &Tensor<f32>,
    rstd: &Tensor<f32>,
    grad: &Tensor<f32>,
    pending: &Tensor<f32>,
    grad_x: &mut Tensor<f32>,
    rows: u32,
    width: u32,
    #[comptime] accumulate: bool,
) {
    let lanes = CUBE_DIM_X as usize;
    let (row, end) = row_of(rows, width);
    let start = row as usize * width as usize;
    let count = f32::cast_from(width);
    let mut shared = SharedMemory::<f32>::new(UNITS_PER_CUBE as usize);
    let mut mu = f32::new(0.0);
    let mut r = f32::new(0.0);
    if end > 0 {
        mu = mean[row as usize];
        r = rstd[row as usize];
    }

    let mut local_sum = f32::new(0.0);
    let mut local_dot = f32::new(0.0);
    let mut j = UNIT_POS_X as usize;
    while j < end {
        let normalized = (x[start + j] - mu) * r;
        let g = grad[start + j] * gamma[j];
        local_sum += g;
        local_dot += g * normalized;
        j += lanes;
    }
    let mean_g = softmax::tree(local_sum, &mut shared, false) / count;
    let mean_gx = softmax::tree(local_dot, &mut shared, false) / count;

    let mut j = UNIT_POS_X as usize;
    while j < end {
        let normalized = (x[start + j] - mu) * r;
        let g = grad[start + j] * gamma[j];
        let mut dx = r * (g - mean_g - normalized * mean_gx);
        if accumulate {
            dx += pending[start + j];
        }
        grad_x[start + j] = dx;
        j += lanes;
    }
}

/// `Σ dy·x̂` (and `Σ dy` when `shifted`) of each column over each chunk of `rows_per_chunk`
/// rows: a unit per column and chunk, reading along its column (its cube's units read
/// neighbouring columns of the same row).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn backward_params_kernel(
    x: &Tensor<f32>,
    mean: &Tensor<f32>,
    rstd: &Tensor<f32>,
    grad: &Tensor<f32>,
    gamma_parts: &mut Tensor<f32>,
    beta_parts: &mut Tensor<f32>,
    rows: u32,
    width: u32,
    rows_per_chunk: u32,
    #[comptime] shifted: bool,
) {
    let column = CUBE_POS_X * CUBE_DIM_X + UNIT_POS_X;
    if column < width {
        let chunk = CUBE_POS_Y;
        let first = chunk * rows_per_chunk;
        let last = min(first + rows_per_chunk, rows);
        let mut scaled = f32::new(0.0);
        let mut plain = f32::new(0.0);
        let mut row = first;
        while row < last {
            let at = row as usize * width as usize + column as usize;
            let dy = grad[at];
            scaled += dy * (x[at] - mean[row as usize]) * rstd[row as usize];
            plain += dy;
            row += 1;
        }
        let out = chunk as usize * width as usize + column as usize;
        gamma_parts[out] = scaled;
        if shifted {
            beta_parts[out] = plain;
        }
    }
}

/// `(rows per chunk, chunks)` of the parameters' gradient kernel over `rows` rows.
pub fn chunking(rows: usize) -> (usize, usize) {
    let rows_per_chunk = ROWS_PER_CHUNK.max(rows.div_ceil(MAX_CUBES));
    (rows_per_chunk, rows.div_ceil(rows_per_chunk).max(1))
}

/// `(rows, width)` of `x`'s shape, its last dimension the width.
pub fn rows_and_width(shape: &[usize]) -> (usize, usize) {
    let width = shape.last().copied().unwrap_or(1);
    (shape.iter().product::<usize>() / width.max(1), width)
}

/// `[y, mean, rstd]` of `x: [.., width]` (`mean`, `rstd`: `[rows]`), with `beta` or without.
pub fn forward<R: CubeRuntime>(
    x: CubeTensor<R>,
    gamma: CubeTensor<R>,
    beta: Option<CubeTensor<R>>,
    epsilon: f32,
) -> [CubeTensor<R>; 3] {
    let (x, gamma) = (into_contiguous(x), into_contiguous(gamma));
    let shape = x.meta.shape().clone();
    let (rows, width) = rows_and_width(&shape);
    let y = empty(&x, shape, DType::F32);
    let [mean, rstd] = [(); 2].map(|_| empty(&x, Shape::new([rows]), DType::F32));
    let shifted = beta.is_some();
    // Unread without a shift, but an argument all the same.
    let beta = beta.map_or_else(|| gamma.clone(), into_contiguous);
    let (cube_count, cube_dim) = launch_shape(rows, TREE_LANES);
    forward_kernel::launch::<R>(
        &x.client,
        cube_count,
        cube_dim,
        x.clone().into_tensor_arg(),
        gamma.into_tensor_arg(),
        beta.into_tensor_arg(),
        y.clone().into_tensor_arg(),
        mean.clone().into_tensor_arg(),
        rstd.clone().into_tensor_arg(),
        rows as u32,
        width as u32,
        epsilon,
        shifted,
    );
    [y, mean, rstd]
}

/// What the backward pass reads: the forward pass's input, gain and per-row statistics.
pub struct Saved<R: CubeRuntime> {
    pub x: CubeTensor<R>,
    pub gamma: CubeTensor<R>,
    pub mean: CubeTensor<R>,
    pub rstd: CubeTensor<R>,
}

/// `dx` (`x`'s shape; plus `pending`, a gradient of `x` from its other uses, when there is
/// one), and the per-chunk partial sums of `dγ` and, when `shifted`, of `dβ` (`[chunks, width]`
/// each; add their rows for the gradients), from the output's gradient.
pub fn backward<R: CubeRuntime>(
    saved: Saved<R>,
    grad: CubeTensor<R>,
    pending: Option<CubeTensor<R>>,
    shifted: bool,
) -> (CubeTensor<R>, CubeTensor<R>, Option<CubeTensor<R>>) {
    let Saved {
        x,
        gamma,
        mean,
        rstd,
    } = saved;
    let (x, gamma, grad) = (
        into_contiguous(x),
        into_contiguous(gamma),
        into_contiguous(grad),
    );
    let client = x.client.clone();
    let shape = x.meta.shape().clone();
    let (rows, width) = rows_and_width(&shape);
    let grad_x = empty(&x, shape, DType::F32);
    let accumulate = pending.is_some();
    // Unread without `accumulate`, but an argument all the same.
    let pending = pending.map_or_else(|| grad.clone(), into_contiguous);
    let (cube_count, cube_dim) = launch_shape(rows, TREE_LANES);
    backward_rows_kernel::launch::<R>(
        &client,
        cube_count,
        cube_dim,
        x.clone().into_tensor_arg(),
        gamma.into_tensor_arg(),
        mean.clone().into_tensor_arg(),
        rstd.clone().into_tensor_arg(),
        grad.clone().into_tensor_arg(),
        pending.into_tensor_arg(),
        grad_x.clone().into_tensor_arg(),
        rows as u32,
        width as u32,
        accumulate,
    );

    let (rows_per_chunk, chunks) = chunking(rows);
    let parts = Shape::new([chunks, width]);
    let gamma_parts = empty(&x, parts.clone(), DType::F32);
    // Unwritten without a shift, but an argument all the same.
    let beta_parts = empty(
        &x,
        if shifted { parts } else { Shape::new([1]) },
        DType::F32,
    );
    backward_params_kernel::launch::<R>(
        &client,
        CubeCount::Static((width as u32).div_ceil(COLUMNS_PER_CUBE), chunks as u32, 1),
        CubeDim::new_1d(COLUMNS_PER_CUBE),
        x.into_tensor_arg(),
        mean.into_tensor_arg(),
        rstd.into_tensor_arg(),
        grad.into_tensor_arg(),
        gamma_parts.clone().into_tensor_arg(),
        beta_parts.clone().into_tensor_arg(),
        rows as u32,
        width as u32,
        rows_per_chunk as u32,
        shifted,
    );
    (grad_x, gamma_parts, shifted.then_some(beta_parts))
}
