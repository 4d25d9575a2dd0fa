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
/// rows as needed; one cube for no rows (CUDA rejects a launch dimension of 0; the kernels
/// skip rows past the last).
pub(crate) fn launch_shape(rows: usize, lanes: u32) -> (CubeCount, CubeDim) {
    let rows_per_cube = (UNITS_PER_CUBE / lanes).max(1);
    let cubes = (rows as u32).div_ceil(rows_per_cube).max(1);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(count: CubeCount) -> (u32, u32, u32) {
        match count {
            CubeCount::Static(x, y, z) => (x, y, z),
            CubeCount::Dynamic(_) => unreachable!("these launches are static"),
        }
    }

    #[test]
    fn launches_cover_every_row_and_value_and_no_dimension_is_zero() {
        // No rows, no values: one cube, not a launch dimension of 0.
        assert_eq!(dims(launch_shape(0, TREE_LANES).0), (1, 1, 1));
        assert_eq!(dims(elementwise_launch(0).0), (1, 1, 1));
        // 8 rows of 32 lanes per cube; past 65535 cubes, a second launch dimension.
        assert_eq!(dims(launch_shape(17, TREE_LANES).0), (3, 1, 1));
        let (x, y, z) = dims(launch_shape(8 * 70_000, TREE_LANES).0);
        assert_eq!((x, z), (MAX_CUBES_X, 1));
        assert!(x * y >= 70_000);
        let (x, y, _) = dims(elementwise_launch(256 * 70_000 + 1).0);
        assert!(x * y > 70_000);
    }
}
