//! `quill-<backend>`: the command line every runner shares. A runner picks a backend and a
//! device and calls [`main`]; everything else is here, written once for any backend.

mod args;
mod bench;
mod commands;
mod config;
mod data;
mod errors;
mod generate;
mod interop;
mod precision;
mod sweep;
mod train;

use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use clap::Parser;

pub use commands::Cli;
pub use errors::quietly;

/// What a runner tells the CLI about itself.
#[derive(Debug, Clone)]
pub struct Runner {
    /// The binary's name, e.g. `quill-cpu`.
    pub name: &'static str,
    /// The backend in use, e.g. `flex` or `cuda`, shown in messages.
    pub backend: String,
    /// GPU runners: how many kernels this process compiled so far (reported by `bench`).
    pub kernels_compiled: Option<fn() -> usize>,
    /// Whether the device computes in the host's memory (the CPU runners): `train` then checks
    /// its memory estimate against what the host has available before it starts.
    pub host_memory: bool,
}

static STARTED: OnceLock<Instant> = OnceLock::new();

/// Seconds since [`main`] started.
pub(crate) fn since_start() -> f64 {
    STARTED.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// Parses the process arguments and runs the command on backend `B`, on the device
/// `pick_device` returns for `--device N` (`None` without the flag). Errors are printed as one
/// line on stderr with a non-zero exit status.
pub fn main<B: AutodiffBackend>(
    runner: Runner,
    pick_device: impl FnOnce(Option<usize>) -> Result<B::Device, String>,
) -> ExitCode {
    STARTED.get_or_init(Instant::now);
    errors::install_panic_hook();
    let cli = Cli::parse();
    let index = cli.device;
    // Only the commands that compute open a device (so `config show` works on any machine).
    let device =
        move || pick_device(index).map_err(|message| anyhow::anyhow!("--device: {message}"));
    match commands::run::<B>(cli, &runner, device) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", errors::one_line(&error));
            errors::exit_status(&error)
        }
    }
}
