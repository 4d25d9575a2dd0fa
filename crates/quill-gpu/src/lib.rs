//! What quill's GPU runners (`quill-cuda`, `quill-wgpu`) share: kernels compiled once per
//! machine rather than once per process, and a notice while they compile.
//!
//! burn's GPU backends generate their kernels at run time (cubecl), compile them (NVRTC to PTX
//! on CUDA; SPIR-V on Vulkan) and pick the fastest variant of each matrix product and fused
//! kernel by timing them (autotune). cubecl can keep both results on disk, but its compilation
//! cache is off unless configured, and its default autotune cache lives in the `target/` folder
//! of whatever Cargo project the working directory is in. [`init`] points both at one per-user
//! folder ([`cache_dir`]) before any device exists, so a second run on the same machine, from
//! any working directory, starts with every kernel it compiled or tuned before.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cubecl_common::config::logger::LogCrateLevel;
use cubecl_runtime::config::cache::CacheConfig;
use cubecl_runtime::config::compilation::CompilationLogLevel;
use cubecl_runtime::config::{CubeClRuntimeConfig, RuntimeConfig};

/// The environment variable that moves the kernel cache (e.g. to a shared disk).
pub const CACHE_ENV: &str = "QUILL_KERNEL_CACHE";

/// Where compiled kernels and autotune results are kept: `$QUILL_KERNEL_CACHE`, else the
/// user's cache folder (`$XDG_CACHE_HOME` or `~/.cache` on Linux, `~/Library/Caches` on macOS)
/// under `quill/kernels`. Deleting it only costs the next run its compilation time again.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("quill")
        .join("kernels")
}

/// Where [`init`] keeps compiled kernels for the kernel sources hashed as `kernels`.
pub fn compiled_dir(dir: &Path, kernels: &str) -> PathBuf {
    dir.join(format!("compiled-{kernels}"))
}

/// The runtime a runner compiles kernels for: each tells of a compilation its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// cubecl-cuda traces each cache miss (`log::trace!`) before compiling it with NVRTC.
    /// Its compilation logger is left off: when on, it pipes every kernel's source through
    /// `clang-format` before compiling, a process per kernel.
    Cuda,
    /// cubecl-wgpu reports cache misses through its compilation logger only.
    Wgpu,
}

/// Turns on cubecl's persistent caches in `dir` and the compilation notice. Call first thing
/// in `main`, before any device or tensor exists; returns `false` (and changes nothing) when
/// cubecl's configuration was already fixed. Settings of a `cubecl.toml` (or the `[cubecl]`
/// section of a `burn.toml`) and `CUBECL_*` variables are kept, except the two cache folders.
///
/// Compiled kernels go to [`compiled_dir`]`(dir, kernels)`, a folder per value of `kernels`
/// (`quill_gpu_kernels::SOURCE_HASH`): cubecl keys a compiled kernel by its name and
/// compile-time arguments, not its code, so a build with changed kernels must not read an
/// older build's. Autotune results (timings of burn's kernels, keyed by burn's own versions)
/// stay in `dir`.
pub fn init(dir: &Path, kernels: &str, runtime: Runtime) -> bool {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    // cubecl creates its files' folders itself; a folder it cannot create disables the cache
    // with a warning, and training goes on.
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    config.compilation.cache = Some(CacheConfig::File(compiled_dir(&dir, kernels)));
    config.autotune.cache = CacheConfig::File(dir.clone());
    // A cache miss is logged (through the `log` crate) just before the kernel is compiled:
    // that is what tells the user why the first steps take long.
    if runtime == Runtime::Wgpu {
        if matches!(
            config.compilation.logger.level,
            CompilationLogLevel::Disabled
        ) {
            config.compilation.logger.level = CompilationLogLevel::Basic;
        }
        config.compilation.logger.log = Some(LogCrateLevel::Info);
    }
    {
        let mut slot = CubeClRuntimeConfig::storage().lock();
        if slot.is_some() {
            return false;
        }
        *slot = Some(std::sync::Arc::new(config));
    }
    let _ = CACHE.set(dir);
    install_notice(runtime);
    true
}

static CACHE: OnceLock<PathBuf> = OnceLock::new();
static COMPILED: AtomicUsize = AtomicUsize::new(0);

/// Kernels compiled by this process so far (cache misses); 0 on a warm start.
pub fn kernels_compiled() -> usize {
    COMPILED.load(Ordering::Relaxed)
}

/// What cubecl logs just before it compiles a kernel that is not in the cache: its compilation
/// logger (wgpu) writes `[Compiling kernel] NAME`, cubecl-cuda traces `Compiling kernel`.
const COMPILING: &str = "Compiling kernel";

/// The `log` front end of the process: counts kernel compilations, prints a notice at the
/// first, and hands every record on to `tracing` (where burn-train's `experiment.log` file
/// logger takes it), as `tracing-log`'s own `LogTracer` would.
struct KernelNotice;

impl log::Log for KernelNotice {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        if record.target().starts_with("cubecl") && contains(record, COMPILING) {
            if COMPILED.fetch_add(1, Ordering::Relaxed) == 0 {
                eprintln!("{}", notice());
                report_progress();
            }
            return;
        }
        // Trace and debug records are enabled only for cubecl-cuda's compilation trace.
        if record.level() > log::Level::Info {
            return;
        }
        // burn-train installs its experiment.log subscriber, then fails to make `log` forward
        // to it because this logger already does: the file logger works, the warning is false.
        if record.target().starts_with("burn_train") && contains(record, FALSE_WARNING) {
            return;
        }
        let _ = tracing_log::format_trace(record);
    }

    fn flush(&self) {}
}

/// What burn-train logs when its `log` bridge cannot be installed (see [`KernelNotice`]).
const FALSE_WARNING: &str = "Failed to install the experiment logger";

fn contains(record: &log::Record, text: &str) -> bool {
    match record.args().as_str() {
        Some(message) => message.contains(text),
        None => record.args().to_string().contains(text),
    }
}

fn notice() -> String {
    let dir = CACHE.get().map_or_else(cache_dir, Clone::clone);
    format!(
        "note: compiling GPU kernels (a first run on this machine, or new shapes); they are cached in {} for the next run",
        dir.display()
    )
}

/// How often the count of compiled kernels is printed while compilation goes on.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(20);

/// Prints the count of kernels compiled so far every [`PROGRESS_INTERVAL`] in which more were
/// compiled: a cold start on a GPU compiles and tunes for minutes, and should be seen to move.
fn report_progress() {
    let started = Instant::now();
    let spawned = std::thread::Builder::new()
        .name("quill-kernel-progress".into())
        .spawn(move || {
            let mut shown = kernels_compiled();
            loop {
                std::thread::sleep(PROGRESS_INTERVAL);
                let now = kernels_compiled();
                if now != shown {
                    eprintln!(
                        "note: {now} GPU kernels compiled so far ({:.0} s)",
                        started.elapsed().as_secs_f64()
                    );
                    shown = now;
                }
            }
        });
    // Without the thread, only the progress lines are missing.
    drop(spawned);
}

fn install_notice(runtime: Runtime) {
    if log::set_boxed_logger(Box::new(KernelNotice)).is_ok() {
        log::set_max_level(match runtime {
            // For cubecl-cuda's compilation trace; the few other trace sites of burn and
            // cubecl are off the per-step path, and `KernelNotice` drops them at once.
            Runtime::Cuda => log::LevelFilter::Trace,
            // wgpu traces much, per command; its compilation notice comes at info level.
            Runtime::Wgpu => log::LevelFilter::Info,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cache_folder_is_per_user() {
        if std::env::var_os(CACHE_ENV).is_none() {
            let dir = cache_dir();
            assert!(dir.ends_with("quill/kernels"), "{}", dir.display());
        }
    }

    #[test]
    fn the_first_configuration_wins_and_cubecl_reads_it() {
        let scratch = tempfile::tempdir().unwrap();
        assert!(init(scratch.path(), "0123456789abcdef", Runtime::Cuda));
        assert!(!init(
            Path::new("elsewhere"),
            "fedcba9876543210",
            Runtime::Wgpu
        ));
        let config = CubeClRuntimeConfig::get();
        let root = |cache: &CacheConfig| cache.root();
        // Compiled kernels per version of quill's kernel sources, autotune results beside.
        assert_eq!(
            root(config.compilation.cache.as_ref().unwrap()),
            scratch.path().join("compiled-0123456789abcdef")
        );
        assert_eq!(root(&config.autotune.cache), scratch.path());
        // On CUDA the compilation logger stays off (it would run clang-format per kernel).
        assert!(matches!(
            config.compilation.logger.level,
            CompilationLogLevel::Disabled
        ));
        // A compilation message is counted and not passed on; others are.
        let log = |target: &str, level, message: &str| {
            log::logger().log(
                &log::Record::builder()
                    .target(target)
                    .level(level)
                    .args(format_args!("{message}"))
                    .build(),
            )
        };
        // wgpu's compilation logger, then cubecl-cuda's trace.
        log(
            "cubecl_common::config::logger",
            log::Level::Info,
            "[Compiling kernel] matmul",
        );
        log(
            "cubecl_cuda::compute::context",
            log::Level::Trace,
            "Compiling kernel",
        );
        assert_eq!(kernels_compiled(), 2);
    }
}
