//! The devices a run trains on: `train.devices` (or `--devices`) resolved by the runner's
//! device picker.

use anyhow::bail;
use burn::tensor::backend::AutodiffBackend;
use quill_train::RunConfig;
use quill_train::config::{Devices, check_devices};

/// The devices `train.devices` names (the one `--device` picks by default), opened before
/// anything on disk changes, and checked to share out `train.grad_accum` (with as many on
/// each of `nodes` nodes).
pub(crate) fn open_devices<B: AutodiffBackend>(
    config: &RunConfig,
    device_index: Option<usize>,
    pick: &dyn Fn(Option<usize>) -> anyhow::Result<B::Device>,
    nodes: usize,
) -> anyhow::Result<Vec<B::Device>> {
    let choice = config.train.device_choice();
    let devices = pick_devices::<B>(&choice, device_index, pick).map_err(|e| match choice {
        // `--device N` named it: the picker's own message says so.
        Devices::Default => e,
        _ => anyhow::anyhow!("train.devices = \"{}\": {e:#}", config.train.devices),
    })?;
    check_devices(config.train.grad_accum, devices.len() * nodes).map_err(anyhow::Error::msg)?;
    Ok(devices)
}

/// The devices `choice` names, through the runner's picker: `all` is every ordinal it
/// accepts from 0 (on wgpu that includes software adapters; name the GPUs to leave them out).
pub(crate) fn pick_devices<B: AutodiffBackend>(
    choice: &Devices,
    device_index: Option<usize>,
    pick: &dyn Fn(Option<usize>) -> anyhow::Result<B::Device>,
) -> anyhow::Result<Vec<B::Device>> {
    let devices: Vec<B::Device> = match choice {
        Devices::Default => vec![pick(device_index)?],
        Devices::All => (0..).map_while(|i| pick(Some(i)).ok()).collect(),
        Devices::List(list) => list
            .iter()
            .map(|&i| pick(Some(i)))
            .collect::<anyhow::Result<_>>()?,
    };
    if devices.is_empty() {
        bail!("no device found");
    }
    Ok(devices)
}
