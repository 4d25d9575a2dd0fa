//! quill-gpu-kernels' AdamW step against burn's `AdamW` on the same GPU backend, and its sum
//! of squares (gradient clipping's) against the host's: wgpu (lavapipe in CI) and CUDA.

use burn::optim::{AdamWConfig, AdamWState, SimpleOptimizer};
use burn::prelude::*;
use burn::tensor::Distribution;
use quill_gpu_kernels::{AdamWConstants, StepRequest, adamw_step, sum_of_squares};

/// Two steps in a row (the first without moments) for each shape, decayed (matrices) or not
/// (vectors), with and without clipping's scale: the kernel's parameter and moments against
/// burn's. The largest shape needs more cubes than one launch dimension holds (65535 of 256).
pub fn check_all<B: Backend>(device: &B::Device) {
    for (dims, scaled) in [
        (vec![7, 5], false),
        (vec![13], true),
        (vec![1000, 37], true),
        (vec![4097, 4097], false),
    ] {
        match dims[..] {
            [n] => matches_burn::<B, 1>(device, [n], scaled),
            [m, n] => matches_burn::<B, 2>(device, [m, n], scaled),
            _ => unreachable!(),
        }
    }
    squares_match_host::<B>(device);
}

/// The sum of squares of one tensor, of a model's worth (more tensors than a Vulkan device
/// may bind to one kernel, so several launches and a second level of partial sums), of a deep
/// model's worth (more than one launch takes on any device), and of tensors longer than the
/// first launch's units (an MLP weight's 589824 values among them).
fn squares_match_host<B: Backend>(device: &B::Device) {
    let normal = Distribution::Normal(0.0, 1.0);
    let deep: Vec<usize> = (1..=300).map(|i| i * 37 % 1001 + 1).collect();
    let sizes: [&[usize]; 4] = [
        &[5],
        &deep,
        &[
            384, 1152, 384, 384, 1536, 384, 65, 7, 1, 300, 24960, 3, 9, 11, 13, 17, 19, 23, 29, 31,
            37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101, 103, 107, 109, 113, 127,
        ],
        &[589_824, 70_000, 65_537],
    ];
    for sizes in sizes {
        let tensors: Vec<Tensor<B, 1>> = sizes
            .iter()
            .map(|&n| Tensor::random([n], normal, device))
            .collect();
        // Against the host's sum in f64, not burn's: burn reduces a long axis in one loop per
        // unit, and lavapipe's shader compiler (Mesa's gallivm) ends a shader's loops after
        // 65535 iterations in all (`LP_MAX_TGSI_LOOP_ITERATIONS`), so there burn's sum of the
        // 589824-value tensor below comes out short (a real GPU runs the loop through).
        let expected = tensors
            .iter()
            .flat_map(|t| t.clone().into_data().to_vec::<f32>().unwrap())
            .map(|x| f64::from(x) * f64::from(x))
            .sum::<f64>() as f32;
        let Ok(total) = sum_of_squares(tensors) else {
            panic!("the kernel takes this backend's f32 tensors");
        };
        assert_eq!(total.dims(), [1]);
        let total = total.into_scalar().elem::<f32>();
        let error = (total - expected).abs() / expected;
        assert!(
            error < 1e-5,
            "{} tensors: {total} against {expected}",
            sizes.len()
        );
    }
}

fn matches_burn<B: Backend, const D: usize>(device: &B::Device, dims: [usize; D], scaled: bool) {
    let weight_decay = if D >= 2 { 0.1 } else { 0.0 };
    let constants = AdamWConstants {
        beta_1: 0.9,
        beta_2: 0.99,
        epsilon: 1e-8,
        weight_decay,
    };
    let burns = AdamWConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.99)
        .with_epsilon(1e-8)
        .with_weight_decay(weight_decay)
        .build();
    let normal = Distribution::Normal(0.0, 1.0);
    let scale = scaled.then(|| Tensor::<B, 1>::from_floats([0.37], device));
    let mut burn_param = Tensor::<B, D>::random(dims, normal, device);
    let mut burn_state: Option<AdamWState<B, D>> = None;
    let mut param = burn_param.clone();
    let mut moments: Option<(Tensor<B, D>, Tensor<B, D>)> = None;
    for (time, lr) in [(1, 1e-3), (2, 6e-4)] {
        let grad = Tensor::<B, D>::random(dims, normal, device) * 0.01;
        let before = burn_param.clone();
        let burn_grad = match &scale {
            Some(scale) => grad.clone() * scale.clone().reshape([1; D]),
            None => grad.clone(),
        };
        let (stepped, state) =
            SimpleOptimizer::<B>::step(&burns, lr, burn_param, burn_grad, burn_state);
        let state = state.expect("AdamW keeps a state");
        let request = StepRequest {
            constants,
            lr,
            time,
        };
        let Ok([p, m, v]) = adamw_step(request, (param, grad, moments, scale.clone())) else {
            panic!("the kernel takes this backend's f32 tensors");
        };
        let what = format!("{dims:?}, step {time}, scaled {scaled}");
        assert_eq!(state.momentum.time, time, "{what}");
        // On the host (burn's reductions of long axes are cut short on lavapipe, see below). A GPU compiler may
        // fuse a multiply and an add where burn's kernels do not, so the values may differ by
        // a rounding: a few units in the last place of the largest value, and for the
        // parameter a small fraction of its update.
        let update = host(stepped.clone() - before)
            .iter()
            .fold(0f32, |max, x| max.max(x.abs()));
        for (name, ours, theirs) in [
            ("parameter", &p, &stepped),
            ("first moment", &m, &state.momentum.moment_1),
            ("second moment", &v, &state.momentum.moment_2),
        ] {
            let (ours, theirs) = (host(ours.clone()), host(theirs.clone()));
            let largest = theirs.iter().fold(0f32, |max, x| max.max(x.abs()));
            let error = ours
                .iter()
                .zip(&theirs)
                .fold(0f32, |max, (a, b)| max.max((a - b).abs()));
            let allowed = 4.0 * f32::EPSILON * largest;
            assert!(
                error <= allowed,
                "{what}: {name} differs by {error:e} (allowed {allowed:e})"
            );
            if name == "parameter" {
                assert!(
                    error <= 0.01 * update,
                    "{what}: {error:e} of an update of {update:e}"
                );
            }
        }
        (burn_param, burn_state) = (stepped, Some(state));
        (param, moments) = (p, Some((m, v)));
    }
}

/// `tensor`'s values on the host.
fn host<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor.into_data().to_vec::<f32>().unwrap()
}
