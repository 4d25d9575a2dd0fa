//! `quill-<backend>`: the command line every runner shares. A runner picks a backend and a
//! device and calls [`main`]; everything else is here, written once for any backend.

mod args;
mod bench;
mod commands;
mod config;
mod data;
mod devices;
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
pub use devices::PickError;
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
    /// The memory free where `--device N` computes, in bytes, and what that place is called
    /// (`this machine`, `CUDA device 0`); `train` checks its estimate against it before it
    /// starts. `None` where it cannot be known.
    pub free_memory: fn(Option<usize>) -> Option<(u64, String)>,
    /// Which kernels the model and the optimizer run on, read once from the environment by
    /// the runner (`Kernels::from_env`): quill's or burn's per operation, cuBLAS's products,
    /// the weight-gradient split (1 on the CPU, more on GPUs, whose matrix-product kernels need
    /// many output tiles).
    pub kernels: quill_model::Kernels,
}

/// Every runner's allocator: an allocation the system cannot serve ends the process with one
/// line and the command that resumes the run, instead of an abort.
#[global_allocator]
static ALLOCATOR: quill_train::failure::ReportingAllocator =
    quill_train::failure::ReportingAllocator;

/// [`Runner::free_memory`] of the runners that compute in the host's memory.
pub fn host_free_memory(_device: Option<usize>) -> Option<(u64, String)> {
    Some((
        quill_train::memory::host_available()?,
        "this machine".into(),
    ))
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
    pick_device: impl Fn(Option<usize>) -> Result<B::Device, PickError> + Sync,
) -> ExitCode {
    STARTED.get_or_init(Instant::now);
    quill_train::failure::install_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help, --version, and a bare command that shows its help.
        Err(error)
            if !error.use_stderr()
                || error.kind()
                    == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            error.exit()
        }
        Err(error) => {
            eprintln!("{}", errors::usage_line(&error));
            return ExitCode::from(error.exit_code() as u8);
        }
    };
    // Only the commands that compute open a device (so `config show` works on any machine).
    let pick = devices::picker(pick_device);
    // The command runs on a worker of its own thread pool: see `worker_pool`.
    let pool = match worker_pool(cli.threads()) {
        Ok(pool) => pool,
        Err(error) => {
            eprintln!("error: --threads: cannot start the thread pool: {error}");
            return ExitCode::FAILURE;
        }
    };
    match pool.install(|| commands::run::<B>(cli, &runner, &pick)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", errors::one_line(&error));
            errors::exit_status(&error)
        }
    }
}

/// The thread pool the command runs in: `threads` workers (`bench --threads`; else
/// `RAYON_NUM_THREADS`, else one per core), one of which runs the command itself.
///
/// The CPU backends split each operation's work over rayon's threads. Called from a thread
/// outside the pool, every such operation hands its work to a sleeping worker and waits to be
/// woken in turn: about 80 µs per operation after a millisecond's pause, on a 2-core VM, and a
/// training step has hundreds. Run by a worker, an operation keeps half the work on its own
/// thread and wakes only the others (16 µs), and with 2 threads there is no third thread
/// competing for the 2 cores. Other threads (burn-train's, a checkpoint's writer) still use
/// rayon's global pool, so no work of theirs ever waits for a worker busy with the command.
fn worker_pool(threads: Option<usize>) -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .thread_name(|i| format!("quill-{i}"))
        // The main thread's stack size (deep module trees and autodiff graphs recurse).
        .stack_size(8 << 20)
        .build()
}
