//! The sum of squares of many tensors in one launch: gradient clipping's global norm.
//!
//! burn computes it tensor by tensor: square, sum, and add to the running total, three kernels
//! per parameter tensor (117 of a training step's ~770 kernel launches at shakespeare-char's
//! model on wgpu), each a launch for a few hundred values where the tensor is a bias or a layer
//! norm's gain. Here one launch reads every gradient (a sequence of up to 128 tensors, fewer
//! where the device binds fewer to one kernel, more launches beyond that) and each cube writes
//! the sum of its share; one more launch adds those partial sums. The order of the additions
//! is fixed, so the result is the same from run to run (no atomics).

use burn::tensor::{DType, Shape};
use burn_cubecl::CubeRuntime;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use crate::launch::{UNITS_PER_CUBE, empty};

/// Cubes of the first pass: enough to keep a large GPU's multiprocessors busy, few enough that
/// their partial sums are one cube's work.
const FIRST_PASS_CUBES: u32 = 256;

/// The most tensors one launch reads, whatever the device's binding limit says. On CUDA,
/// cubecl's `max_bindings` (1024) is the size of a ring of argument slots that every launch
/// writes into, not a limit per kernel: a launch with more bindings than slots would overwrite
/// its own first arguments. 128 tensors stay far inside it and inside CUDA's 4 KiB of kernel
/// parameters, and shakespeare-char's model (about 80 parameter tensors) is still one launch.
const MAX_TENSORS_PER_LAUNCH: usize = 128;

/// Tensors per launch on a device that binds `max_bindings` buffers to one kernel: two of them
/// are the output and cubecl's metadata, and at least two inputs so that each level shrinks.
fn tensors_per_launch(max_bindings: u32) -> usize {
    (max_bindings as usize)
        .saturating_sub(2)
        .clamp(2, MAX_TENSORS_PER_LAUNCH)
}

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
    let per_launch = tensors_per_launch(first.client.properties().hardware.max_bindings);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launches_take_fewer_tensors_than_the_device_binds_and_at_most_the_cap() {
        // CUDA's ring of 1024 argument slots: capped.
        assert_eq!(tensors_per_launch(1024), MAX_TENSORS_PER_LAUNCH);
        // WebGPU's default of 8 storage buffers per stage, which cubecl-wgpu reports as 7
        // (wgpu keeps one for itself): the output and metadata take two more.
        assert_eq!(tensors_per_launch(7), 5);
        assert_eq!(tensors_per_launch(130), 128);
        // Devices that bind almost nothing still halve each level.
        assert_eq!(tensors_per_launch(3), 2);
        assert_eq!(tensors_per_launch(0), 2);
    }
}
