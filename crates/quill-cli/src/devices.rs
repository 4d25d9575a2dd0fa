//! The devices a run trains on: `train.devices` (or `--devices`) resolved by the runner's
//! device picker.

use anyhow::bail;
use burn::tensor::backend::AutodiffBackend;
use quill_train::RunConfig;
use quill_train::config::{Devices, check_devices};

/// The devices `train.devices` names (the one `--device` picks by default), opened before
/// anything on disk changes.
pub(crate) fn open_devices<B: AutodiffBackend>(
    config: &RunConfig,
    device_index: Option<usize>,
    pick: &dyn Fn(Option<usize>) -> anyhow::Result<B::Device>,
) -> anyhow::Result<Vec<B::Device>> {
    let devices = match config.train.device_choice() {
        Devices::Default => vec![pick(device_index)?],
        // Every ordinal the runner accepts, from 0.
        Devices::All => (0..).map_while(|i| pick(Some(i)).ok()).collect(),
        Devices::List(list) => list
            .iter()
            .map(|&i| {
                pick(Some(i)).map_err(|e| {
                    anyhow::anyhow!("train.devices = \"{}\": {e:#}", config.train.devices)
                })
            })
            .collect::<anyhow::Result<_>>()?,
    };
    if devices.is_empty() {
        bail!("train.devices = \"all\": no device found");
    }
    check_devices(config.train.grad_accum, devices.len()).map_err(anyhow::Error::msg)?;
    Ok(devices)
}
