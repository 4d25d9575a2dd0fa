//! The devices a run trains on: `train.devices` (or `--devices`) resolved by the runner's
//! device picker.

use quill_train::RunConfig;
use quill_train::config::{Devices, check_devices};

/// Why a runner's device picker (the function it hands to [`crate::main`]) gave no device;
/// shown as the command's one-line error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickError {
    /// No device has this index, or there is no device at all: where `train.devices = "all"`
    /// stops counting.
    #[error("--device: {0}")]
    Missing(String),
    /// The device is there but cannot be used (a library the run needs does not work on it):
    /// an error whoever asked for it, `all` included, so that a run never trains on fewer
    /// devices than the machine has without saying why.
    #[error("{0}")]
    Unusable(String),
}

/// The runner's picker as the commands call it.
pub(crate) fn picker<D>(
    pick_device: impl Fn(Option<usize>) -> Result<D, PickError>,
) -> impl Fn(Option<usize>) -> anyhow::Result<D> {
    move |index| pick_device(index).map_err(anyhow::Error::new)
}

/// The devices `train.devices` names (the one `--device` picks by default), opened before
/// anything on disk changes, and checked to share out `train.grad_accum` (with as many on
/// each of `nodes` nodes).
pub(crate) fn open_devices<D>(
    config: &RunConfig,
    device_index: Option<usize>,
    pick: &dyn Fn(Option<usize>) -> anyhow::Result<D>,
    nodes: usize,
) -> anyhow::Result<Vec<D>> {
    let choice = config.train.device_choice();
    let devices = pick_devices(&choice, device_index, pick).map_err(|e| match choice {
        // `--device N` named it: the picker's own message says so.
        Devices::Default => e,
        _ => anyhow::anyhow!("train.devices = \"{}\": {e:#}", config.train.devices),
    })?;
    check_devices(config.train.grad_accum, devices.len() * nodes).map_err(anyhow::Error::msg)?;
    Ok(devices)
}

/// The devices `choice` names, through the runner's picker: `all` is every ordinal it
/// accepts from 0, up to the first it reports missing (on wgpu that includes software
/// adapters; name the GPUs to leave them out). Device 0's absence, and any device that
/// cannot be used, is an error with the picker's message.
pub(crate) fn pick_devices<D>(
    choice: &Devices,
    device_index: Option<usize>,
    pick: &dyn Fn(Option<usize>) -> anyhow::Result<D>,
) -> anyhow::Result<Vec<D>> {
    // Never empty: a list has at least one number (`Devices::parse`).
    Ok(match choice {
        Devices::Default => vec![pick(device_index)?],
        Devices::All => {
            let mut devices = vec![pick(Some(0))?];
            for index in 1.. {
                match pick(Some(index)) {
                    Ok(device) => devices.push(device),
                    Err(error) if matches!(error.downcast_ref(), Some(PickError::Missing(_))) => {
                        break;
                    }
                    Err(error) => return Err(error),
                }
            }
            devices
        }
        Devices::List(list) => list
            .iter()
            .map(|&i| pick(Some(i)))
            .collect::<anyhow::Result<_>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A machine with `count` devices, of which those in `unusable` fail their check.
    fn machine(
        count: usize,
        unusable: &'static [usize],
    ) -> impl Fn(Option<usize>) -> anyhow::Result<usize> {
        picker(move |index: Option<usize>| {
            let index = index.unwrap_or(0);
            if count == 0 {
                Err(PickError::Missing("no device found on this machine".into()))
            } else if index >= count {
                Err(PickError::Missing(format!(
                    "{index}: there are {count} devices"
                )))
            } else if unusable.contains(&index) {
                Err(PickError::Unusable(format!(
                    "device {index} fails its check"
                )))
            } else {
                Ok(index)
            }
        })
    }

    fn all(count: usize, unusable: &'static [usize]) -> Result<Vec<usize>, String> {
        pick_devices(&Devices::All, None, &machine(count, unusable)).map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn all_is_every_device_up_to_the_first_missing_one() {
        assert_eq!(all(1, &[]), Ok(vec![0]));
        assert_eq!(all(3, &[]), Ok(vec![0, 1, 2]));
    }

    #[test]
    fn all_fails_on_a_device_that_cannot_be_used_instead_of_training_on_fewer() {
        assert_eq!(all(4, &[2]), Err("device 2 fails its check".into()));
        assert_eq!(all(4, &[0]), Err("device 0 fails its check".into()));
    }

    #[test]
    fn all_without_a_device_gives_the_pickers_reason() {
        assert_eq!(
            all(0, &[]),
            Err("--device: no device found on this machine".into())
        );
    }

    #[test]
    fn a_list_and_the_default_report_missing_and_unusable_devices() {
        let pick = machine(2, &[1]);
        let list = |l: Vec<usize>| {
            pick_devices(&Devices::List(l), None, &pick).map_err(|e| format!("{e:#}"))
        };
        assert_eq!(list(vec![0]), Ok(vec![0]));
        assert_eq!(
            list(vec![0, 5]),
            Err("--device: 5: there are 2 devices".into())
        );
        assert_eq!(list(vec![1]), Err("device 1 fails its check".into()));
        let default = |i| pick_devices(&Devices::Default, i, &pick).map_err(|e| format!("{e:#}"));
        assert_eq!(default(None), Ok(vec![0]));
        assert_eq!(
            default(Some(3)),
            Err("--device: 3: there are 2 devices".into())
        );
    }
}
