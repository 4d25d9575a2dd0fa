//! `train.precision`: the device's default float type, set before any tensor exists.

use anyhow::{anyhow, bail};
use burn::tensor::DType;
use burn::tensor::backend::{Backend, DeviceError, set_default_float_dtype};
use quill_train::config::Precision;

/// Makes `precision` the float type of every tensor created on `device` from now on; for
/// `bf16-mixed` (f32 weights), checks that the device computes in bf16.
pub fn use_precision<B: Backend>(device: &B::Device, precision: Precision) -> anyhow::Result<()> {
    match precision {
        Precision::F32 => return Ok(()),
        Precision::Bf16Mixed if B::supports_dtype(device, DType::BF16) => return Ok(()),
        Precision::Bf16Mixed => bail!(
            "train.precision = \"bf16-mixed\": {device:?} does not compute in bf16 with this backend; use \"f32\" (bf16 needs CUDA, or the CPU runner)"
        ),
        Precision::F16 | Precision::Bf16 => {}
    }
    let name = precision.name();
    set_default_float_dtype::<B>(device, precision.dtype()).map_err(|error| match error {
        DeviceError::UnsupportedDType { device, .. } => anyhow!(
            "train.precision = \"{name}\": {device} does not support {name} with this backend; use \"f32\"{}",
            if name == "bf16" { " (or \"f16\" on wgpu; bf16 needs CUDA)" } else { "" }
        ),
        other => anyhow!("train.precision = \"{name}\": {other}"),
    })
}
