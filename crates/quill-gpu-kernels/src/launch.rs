//! How this crate's kernels are laid out over a device: units per cube, cube counts within
//! every backend's limits, and new output tensors.

use burn::tensor::{DType, Shape};
use burn_cubecl::CubeRuntime;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

/// Units per row where rows are reduced in shared memory (a power of two).
pub(crate) const TREE_LANES: u32 = 32;
/// Units per cube (a power of two: reductions halve it): `256 / lanes` rows each where rows
/// are reduced (8 with 32 units per row).
pub(crate) const UNITS_PER_CUBE: u32 = 256;
/// The most cubes along one dimension of a launch that every backend takes (wgpu's limit).
pub(crate) const MAX_CUBES_X: u32 = 65535;

/// A new row-major tensor (no padded rows: the row kernels index rows as `row · width`, the
/// elementwise ones read values as one run).
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

/// One unit per value of `count`, [`UNITS_PER_CUBE`] per cube, the cubes over two launch
/// dimensions past [`MAX_CUBES_X`]: a unit's index is [`unit_index`].
pub(crate) fn elementwise_launch(count: usize) -> (CubeCount, CubeDim) {
    let cubes = (count as u32).div_ceil(UNITS_PER_CUBE).max(1);
    let x = cubes.min(MAX_CUBES_X);
    (
        CubeCount::Static(x, cubes.div_ceil(x), 1),
        CubeDim::new_1d(UNITS_PER_CUBE),
    )
}

/// This unit's value in an [`elementwise_launch`].
#[cube]
pub(crate) fn unit_index() -> u32 {
    (CUBE_POS_Y * CUBE_COUNT_X + CUBE_POS_X) * CUBE_DIM_X + UNIT_POS_X
}
