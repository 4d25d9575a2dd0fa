//! quill-cuda's tests. Those of the command line run anywhere (CI has no GPU). Those of CUDA
//! against burn-ndarray need an NVIDIA GPU and the `cuda` feature: `just gpu-check`, or
//! `cargo test --release -p quill-cuda --features cuda`.

use std::process::Command;

/// `QUILL_MATMUL` takes `burn` or `cublas`; anything else is a one-line error, and so is
/// `cublas` where the cuBLAS library cannot be loaded (always so without a CUDA toolkit).
/// `QUILL_SOFTMAX` takes `burn` or `fused`, and so do `QUILL_DROPOUT`, `QUILL_ADAMW`,
/// `QUILL_LAYER_NORM` and `QUILL_SPLIT_HEADS`.
#[test]
fn the_matmul_and_kernel_choices_are_checked_before_anything_runs() {
    let quill = |variable: &str, value: &str| {
        Command::new(env!("CARGO_BIN_EXE_quill-cuda"))
            .args(["config", "show", "--config", "configs/tiny.toml"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .env(variable, value)
            .env(
                "QUILL_KERNEL_CACHE",
                std::env::temp_dir().join("quill-cuda-test-kernels"),
            )
            .output()
            .unwrap()
    };
    let run = |value: &str| quill("QUILL_MATMUL", value);
    let out = run("fastest");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "error: QUILL_MATMUL=fastest is not one of: burn, cublas"
    );
    let out = run("burn");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = run("cublas");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if quill_cublas::gemm::library_present() {
        assert!(out.status.success(), "{stderr}");
    } else {
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("QUILL_MATMUL=cublas") && stderr.contains("LD_LIBRARY_PATH"));
    }

    // The kernels' switches: a wrong value is a one-line error naming the choices.
    for (env, wrong, choices) in [
        ("QUILL_SOFTMAX", "flash", "fused, burn"),
        ("QUILL_DROPOUT", "bernoulli", "fused, burn"),
        ("QUILL_ADAMW", "foreach", "fused, burn"),
        ("QUILL_LAYER_NORM", "apex", "fused, burn"),
        ("QUILL_SPLIT_HEADS", "view", "fused, burn"),
    ] {
        let out = quill(env, wrong);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(
            stderr.trim(),
            format!("error: {env}={wrong} is not one of: {choices}")
        );
        for value in ["burn", "fused"] {
            let out = quill(env, value);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{env}={value}: {stderr}");
        }
    }
}

#[cfg(feature = "cuda")]
#[path = "fused_adamw/mod.rs"]
mod fused_adamw;
#[cfg(feature = "cuda")]
#[path = "fused_dropout/mod.rs"]
mod fused_dropout;
#[cfg(feature = "cuda")]
#[path = "fused_heads/mod.rs"]
mod fused_heads;
#[cfg(feature = "cuda")]
#[path = "fused_layer_norm/mod.rs"]
mod fused_layer_norm;
#[cfg(feature = "cuda")]
#[path = "fused_softmax/mod.rs"]
mod fused_softmax;
#[cfg(feature = "cuda")]
#[path = "parity/mod.rs"]
mod parity;

#[cfg(feature = "cuda")]
mod gpu {
    use super::{fused_adamw, fused_dropout, fused_heads, fused_layer_norm, fused_softmax, parity};
    use std::sync::{Mutex, MutexGuard};

    use burn::backend::cuda::CudaDevice;
    use burn::backend::{Autodiff, Cuda, NdArray};
    use burn::prelude::*;
    use burn::tensor::{Distribution, FloatDType};
    use quill_model::{Kernels, Matmul};

    type Trained = Autodiff<Cuda>;

    /// The softmax's dropout check seeds burn's generator, which the process shares: each test
    /// holds this lock. `just gpu-bench` runs each test in a
    /// process of its own (cuBLAS's first), so that one's failure does not hide the other's.
    static PROCESS: Mutex<()> = Mutex::new(());

    fn start() -> (MutexGuard<'static, ()>, CudaDevice) {
        let lock = PROCESS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // The kernel cache quill-cuda uses (which gpu_bench's --cache-from fills).
        quill_gpu_kernels::init_caches(quill_gpu::Runtime::Cuda);
        (lock, CudaDevice::new(0))
    }

    /// With burn's products: the model with burn's softmax (`QUILL_SOFTMAX=burn`; quill's other
    /// kernels on), quill's kernels each against burn's, then the model with the fused softmax
    /// (the default); the model against burn-ndarray.
    #[test]
    fn quills_kernels_and_the_model_match_burn_and_ndarray() {
        let (_lock, device) = start();
        let burn_softmax = Kernels {
            softmax: false,
            ..Kernels::QUILL
        };
        let parity = parity::compare_kernels::<Autodiff<NdArray>, Trained>(
            &Default::default(),
            Kernels::QUILL,
            &device,
            burn_softmax,
        );
        parity::assert_f32_parity(&parity);

        fused_softmax::check_all::<Trained>(&device, &[FloatDType::BF16, FloatDType::F16]);
        fused_dropout::check_all::<Trained>(&device, &[FloatDType::BF16, FloatDType::F16]);
        fused_adamw::check_all::<Cuda>(&device);
        fused_layer_norm::check_all::<Trained>(&device);
        fused_heads::check_all::<Trained>(&device, &[FloatDType::BF16]);
        let parity = parity::compare::<Autodiff<NdArray>, Trained>(&Default::default(), &device);
        parity::assert_f32_parity(&parity);
    }

    /// cuBLAS's products (what `QUILL_MATMUL=cublas` does): quill-cuda's start-up check, the
    /// products and their gradients against burn's, then the model against burn-ndarray.
    #[test]
    fn cublas_products_and_the_model_match_burn_and_ndarray() {
        let (_lock, device) = start();
        assert!(
            quill_cublas::available(),
            "libcublas not found: add /usr/local/cuda/lib64 to LD_LIBRARY_PATH"
        );
        if let Err(error) = quill_cublas::check(&device) {
            panic!("quill-cuda's start-up check: {error}");
        }
        cublas_products_equal_burns(&device);
        let cublas = Kernels {
            matmul: Matmul::Cublas,
            ..Kernels::QUILL
        };
        let parity = parity::compare_kernels::<Autodiff<NdArray>, Trained>(
            &Default::default(),
            Kernels::QUILL,
            &device,
            cublas,
        );
        // cuBLAS's f32 products run on TF32 tensor cores (10-bit mantissas), as burn's large
        // ones do; attention's products go through them too (no attention op with cuBLAS).
        parity::assert_parity(&parity, 3e-3, 2e-3, 1e-2);
    }

    /// Products and their gradients through cuBLAS equal burn's own, for the ways the model hands
    /// them operands: plain, batched, transposed views read in place, strided batches that need
    /// a copy, single rows, a transposed 2-D weight (the tied head), bf16 and f16, one operand
    /// tracked. (Padded rows are checked against a model of cuBLAS in quill-cublas's plan.rs.)
    fn cublas_products_equal_burns(device: &CudaDevice) {
        let random = |dims: [usize; 4]| {
            Tensor::<Trained, 4>::random(dims, Distribution::Normal(0.0, 1.0), device)
        };
        // (a, b) pairs, as built from contiguous tensors.
        let plain = (random([2, 3, 17, 8]), random([2, 3, 8, 13]));
        let key_transposed = (random([2, 3, 17, 8]), random([2, 3, 13, 8]).swap_dims(2, 3));
        let query_transposed = (random([2, 3, 8, 17]).swap_dims(2, 3), random([2, 3, 8, 13]));
        let strided_batch = (
            random([2, 17, 3, 8]).swap_dims(1, 2),
            random([2, 8, 3, 13]).swap_dims(1, 2),
        );
        let single_rows = (random([2, 3, 1, 8]), random([2, 3, 8, 1]));
        for (case, (a, b)) in [
            plain,
            key_transposed,
            query_transposed,
            strided_batch,
            single_rows,
        ]
        .into_iter()
        .enumerate()
        {
            check(&format!("case {case}"), a, b, 3e-3);
        }
        for (dtype, tolerance) in [(FloatDType::BF16, 3e-2), (FloatDType::F16, 5e-3)] {
            let (a, b) = (random([2, 3, 17, 8]), random([2, 3, 13, 8]).swap_dims(2, 3));
            check(
                &format!("{dtype:?}"),
                a.cast(dtype),
                b.cast(dtype),
                tolerance,
            );
        }
        // Only one operand tracked (a frozen weight): its gradient alone, as burn's, through
        // either branch of the backward pass.
        let gradients = |a: &Tensor<Trained, 4>, b: &Tensor<Trained, 4>| {
            let expected = a.clone().matmul(b.clone()).sum().backward();
            let actual = match quill_cublas::matmul(a.clone(), b.clone()) {
                Ok(product) => product.sum().backward(),
                Err(_) => panic!("one tracked operand: not routed to cuBLAS"),
            };
            (expected, actual)
        };
        let close = |case: &str, expected: Tensor<Cuda, 4>, actual: Tensor<Cuda, 4>| {
            let diff = (expected.clone() - actual).abs().max().into_scalar();
            assert!(
                diff <= 3e-3 * expected.abs().max().into_scalar(),
                "{case}: {diff}"
            );
        };
        let (a, b) = (random([2, 3, 17, 8]).require_grad(), random([2, 3, 8, 13]));
        let (expected, actual) = gradients(&a, &b);
        close(
            "one tracked",
            a.grad(&expected).unwrap(),
            a.grad(&actual).unwrap(),
        );
        let (a, b) = (a.detach(), b.require_grad());
        let (expected, actual) = gradients(&a, &b);
        assert!(a.grad(&actual).is_none());
        close(
            "other tracked",
            b.grad(&expected).unwrap(),
            b.grad(&actual).unwrap(),
        );
        // The tied head: x · Eᵀ, with Eᵀ a transposed view of a 2-D weight.
        let x = Tensor::<Trained, 2>::random([37, 19], Distribution::Normal(0.0, 1.0), device);
        let embedding =
            Tensor::<Trained, 2>::random([23, 19], Distribution::Normal(0.0, 1.0), device);
        check("tied head", x, embedding.transpose(), 3e-3);
    }

    /// cuBLAS's `a·b`, its value and both gradients, against burn's, to `tolerance` of the largest.
    fn check<const D: usize>(
        case: &str,
        a: Tensor<Trained, D>,
        b: Tensor<Trained, D>,
        tolerance: f32,
    ) {
        let (a, b) = (a.require_grad(), b.require_grad());
        let expected = a.clone().matmul(b.clone());
        let actual = match quill_cublas::matmul(a.clone(), b.clone()) {
            Ok(product) => product,
            Err(_) => panic!("{case}: not routed to cuBLAS"),
        };
        let close = |name: &str, x: Tensor<Trained, D>, y: Tensor<Trained, D>| {
            let (x, y) = (x.cast(FloatDType::F32), y.cast(FloatDType::F32));
            let scale = y.clone().abs().max().into_scalar();
            let diff = (x - y).abs().max().into_scalar();
            assert!(
                diff <= tolerance * scale,
                "{case}, {name}: {diff} vs {scale}"
            );
        };
        close("product", actual.clone(), expected.clone());
        let weights = expected.random_like(Distribution::Normal(0.0, 1.0));
        let grads_expected = (expected * weights.clone())
            .cast(FloatDType::F32)
            .sum()
            .backward();
        let grads_actual = (actual * weights).cast(FloatDType::F32).sum().backward();
        for (name, input) in [("dA", &a), ("dB", &b)] {
            let actual = input.grad(&grads_actual).expect("a gradient");
            let expected = input.grad(&grads_expected).expect("a gradient");
            close(
                name,
                Tensor::from_inner(actual),
                Tensor::from_inner(expected),
            );
        }
    }
}
