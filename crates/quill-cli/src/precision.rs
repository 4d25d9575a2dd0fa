//! `train.precision`: the device's default float type, set before any tensor exists.

use anyhow::anyhow;
use burn::tensor::backend::{Backend, DeviceError, set_default_float_dtype};
use quill_train::config::Precision;

/// Makes `precision` the float type of every tensor created on `device` from now on.
pub fn use_precision<B: Backend>(device: &B::Device, precision: Precision) -> anyhow::Result<()> {
    if precision == Precision::F32 {
        return Ok(());
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
