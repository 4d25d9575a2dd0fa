//! The sum of squares of many tensors in one launch: gradient clipping's global norm.
//!
//! burn computes it tensor by tensor: square, sum, and add to the running total, three kernels
//! per parameter tensor (117 of a training step's ~770 kernel launches at shakespeare-char's
//! model on wgpu), each a launch for a few hundred values where the tensor is a bias or a layer
//! norm's gain. Here one launch reads every gradient (a sequence of tensors, as many as the
//! device allows in one kernel, more launches beyond that) and each cube writes the sum of
//! its share; one more launch adds those partial sums. The order of the additions is fixed, so
//! the result is the same from run to run (no atomics).

use burn::tensor::{DType, Shape};
use burn_cubecl::CubeRuntime;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use crate::launch::{UNITS_PER_CUBE, empty};

/// Cubes of the first pass: enough to keep a large GPU's multiprocessors busy, few enough that
/// their partial sums are one cube's work.
const FIRST_PASS_CUBES: u32 = 256;

/// Each cube writes to `sums[CUBE_POS_X]` the sum of its share of every tensor's values
/// (squared with `square`), its units striding over each tensor by the launch's unit count.
#[cube(launch)]
fn sum_kernel(tensors: &Sequence<Tensor<f32>>, sums: &mut Tensor<f32>, #[comptime] square: bool) {
    let stride = (CUBE_COUNT_X * CUBE_DIM_X) as usize;
    let mut total = f32::new(0.0);
    #[unroll]
    for i in 0..tensors.len() {
        let tensor = &tensors[i];
        let mut j = ABSOLUTE_POS_X as usize;
        while j < tensor.len() {
            let x = tensor[j];
            if square {
                total += x * x;
            } else {
                total += x;
            }
            j += stride;
        }
    }
    let unit = UNIT_POS_X as usize;
    let mut shared = SharedMemory::<f32>::new(UNITS_PER_CUBE as usize);
    shared[unit] = total;
    sync_cube();
    let mut half = CUBE_DIM_X as usize / 2;
    while half > 0 {
        if unit < half {
            shared[unit] = shared[unit] + shared[unit + half];
        }
        sync_cube();
        half /= 2;
    }
    if unit == 0 {
        sums[CUBE_POS_X as usize] = shared[0];
    }
}

/// `Σ x²` over every value of `tensors` (f32), as a `[1]` tensor.
pub fn total<R: CubeRuntime>(tensors: Vec<CubeTensor<R>>) -> CubeTensor<R> {
    let first = tensors.first().expect("at least one tensor").clone();
    // One binding is the output; at least two inputs per launch, so that each level shrinks.
    let per_launch = (first.client.properties().hardware.max_bindings as usize)
        .saturating_sub(1)
        .max(2);
    let mut level: Vec<_> = tensors.into_iter().map(into_contiguous).collect();
    let mut square = true;
    loop {
        let cubes = if square { FIRST_PASS_CUBES } else { 1 };
        level = level
            .chunks(per_launch)
            .map(|chunk| launch(&first, chunk, cubes, square))
            .collect();
        if !square && level.len() == 1 {
            return level.remove(0);
        }
        square = false;
    }
}

/// One launch of `cubes` cubes over `tensors`: their sums, `[cubes]`.
fn launch<R: CubeRuntime>(
    like: &CubeTensor<R>,
    tensors: &[CubeTensor<R>],
    cubes: u32,
    square: bool,
) -> CubeTensor<R> {
    let sums = empty(like, Shape::new([cubes as usize]), DType::F32);
    let args: SequenceArg<R, Tensor<f32>> = tensors
        .iter()
        .map(|tensor| tensor.clone().into_tensor_arg())
        .collect();
    sum_kernel::launch::<R>(
        &like.client,
        CubeCount::Static(cubes, 1, 1),
        CubeDim::new_1d(UNITS_PER_CUBE),
        args,
        sums.clone().into_tensor_arg(),
        square,
    );
    sums
}
