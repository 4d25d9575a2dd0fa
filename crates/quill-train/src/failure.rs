//! How a run ends when its failure never reaches quill as an error: one line on stderr naming
//! the cause, the checkpoint that survives and the command that goes on, then exit status 1.
//!
//! Three failures arrive that way. burn-train writes its metric logs on its own threads and
//! panics when a write fails (a full disk); cubecl panics when the GPU is out of memory; and
//! Rust aborts the process when the allocator has nothing left. [`install_panic_hook`] and
//! [`ReportingAllocator`] catch each one and report it with the run [`begin_run`] registered.
//! Checkpoint files are written whole or not at all (`checkpoint::AtomicRecorder`), so the
//! newest complete checkpoint is intact whatever was being written when it happened.

// The allocator below is the workspace's one `unsafe`: `GlobalAlloc` is an unsafe trait, and
// each method forwards to `System` unchanged.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::checkpoint::newest_step;
use crate::collective_wait::{CollectivePanic, collective_panic};
use crate::memory::bytes;
use crate::run_dir::RunDir;

/// A failure that ends the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fatal {
    DiskFull,
    OutOfMemory,
    /// Training across machines: the other nodes stopped answering (`nodes`).
    LostNode,
}

impl Fatal {
    /// The failure `message` (a panic's or an error's) reports, if it is one of these.
    pub fn of(message: &str) -> Option<Fatal> {
        const DISK_FULL: [&str; 4] = [
            "no space left on device",
            "storagefull",
            "os error 28",
            "disk quota exceeded",
        ];
        // cubecl's and the CUDA driver's words for it.
        const OUT_OF_MEMORY: [&str; 4] = [
            "out of memory",
            "out-of-memory",
            "outofmemory",
            "can't allocate buffer of size",
        ];
        let lower = message
            .to_lowercase()
            .replace("out_of_memory", "out of memory");
        let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
        if has(&DISK_FULL) {
            Some(Fatal::DiskFull)
        } else if has(&OUT_OF_MEMORY) {
            Some(Fatal::OutOfMemory)
        } else {
            None
        }
    }
}

/// The training run in progress, for the message.
#[derive(Debug, Clone)]
pub struct RunInProgress {
    pub run: RunDir,
    pub steps_per_epoch: usize,
    /// The command that continues from the newest checkpoint.
    pub resume: String,
    /// The command that starts the run over, for a failure before its first checkpoint.
    pub restart: String,
}

static RUN: Mutex<Option<RunInProgress>> = Mutex::new(None);

/// Registers `run` as the one in progress until the returned guard is dropped.
pub fn begin_run(run: RunInProgress) -> RunGuard {
    *RUN.lock().unwrap_or_else(|e| e.into_inner()) = Some(run);
    RunGuard(())
}

/// Ends the registration of [`begin_run`] when dropped.
#[must_use]
pub struct RunGuard(());

impl Drop for RunGuard {
    fn drop(&mut self) {
        *RUN.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

fn run_in_progress() -> Option<RunInProgress> {
    // `try_lock`: the failure may have happened while this thread held the lock.
    RUN.try_lock().ok().and_then(|run| run.clone())
}

/// The line (without `error: `) for `fatal`, with `detail` in parentheses; during a run it
/// names the newest checkpoint and the command that continues the run.
pub fn message(fatal: Fatal, detail: &str) -> String {
    let what = match fatal {
        Fatal::DiskFull => "no space left on device",
        Fatal::OutOfMemory => "out of memory",
        Fatal::LostNode => "lost contact with the other nodes",
    };
    let detail = match detail {
        "" => String::new(),
        detail => format!(" ({detail})"),
    };
    let Some(run) = run_in_progress() else {
        return format!("{what}{detail}");
    };
    let dir = run.run.path.display();
    let (checkpoint, how, command) = match newest_step(&run.run, run.steps_per_epoch) {
        Some(step) => (
            format!("; the checkpoint of step {step} is intact"),
            "resume",
            &run.resume,
        ),
        None => (
            ", before its first checkpoint".into(),
            "start again",
            &run.restart,
        ),
    };
    let remedy = match (fatal, how) {
        (Fatal::DiskFull, _) => format!("free space and {how} with"),
        (Fatal::OutOfMemory, "start again") => format!(
            "lower train.batch_size (a higher train.grad_accum keeps the tokens per step) and {how} with"
        ),
        (Fatal::OutOfMemory, _) => format!("{how} with"),
        (Fatal::LostNode, _) => format!("{how} every node with"),
    };
    format!("{what} while training {dir}{detail}{checkpoint}; {remedy}: {command}")
}

/// Prints [`message`] and exits with status 1. Of threads failing together, the first
/// reports and the others wait for the exit.
pub fn exit_with(fatal: Fatal, detail: &str) -> ! {
    static REPORTED: AtomicBool = AtomicBool::new(false);
    // An allocation that fails while this reports is left to Rust's abort, not reported again.
    REPORTING.store(true, Ordering::SeqCst);
    if REPORTED.swap(true, Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
    let line = message(fatal, detail);
    let _ = writeln!(std::io::stderr(), "error: {line}");
    std::process::exit(1)
}

static HOOK_INSTALLED: AtomicBool = AtomicBool::new(false);

/// Replaces Rust's panic report with one line. During a run, a full disk or an exhausted
/// device ends the process with [`exit_with`]'s line; any other panic is a bug, reported as
/// `error: internal error: ...` while it unwinds as usual.
pub fn install_panic_hook() {
    HOOK_INSTALLED.store(true, Ordering::SeqCst);
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        if let Some(fatal) = Fatal::of(&message)
            && run_in_progress().is_some()
        {
            exit_with(fatal, "");
        }
        // burn-collective's tasks panic when a peer's connection closes.
        match info.location().and_then(|l| collective_panic(l.file())) {
            Some(CollectivePanic::LostNode) => {
                exit_with(Fatal::LostNode, &message.replace('\n', " "))
            }
            Some(CollectivePanic::Between) => return,
            None => {}
        }
        let location = info
            .location()
            .map(|l| format!(" (at {}:{})", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "error: internal error: {}{location}",
            message.replace('\n', " ")
        );
    }));
}

/// burn-train's experiment log, without the panic banner its installer adds: the hook of
/// [`install_panic_hook`] stays in charge where it was installed.
pub(crate) struct ExperimentLog(pub burn::train::FileApplicationLoggerInstaller);

impl burn::train::ApplicationLoggerInstaller for ExperimentLog {
    fn install(&self) -> Result<(), String> {
        self.0.install()?;
        if HOOK_INSTALLED.load(Ordering::SeqCst) {
            install_panic_hook();
        }
        Ok(())
    }
}

/// The system allocator, reporting an allocation it cannot serve with [`exit_with`] instead
/// of Rust's abort (`memory allocation of N bytes failed` and a core dump).
pub struct ReportingAllocator;

static REPORTING: AtomicBool = AtomicBool::new(false);

/// What `allocate` returns for `size` bytes (nothing under an injected failure), after
/// reporting a failure.
fn serve(size: usize, allocate: impl FnOnce() -> *mut u8) -> *mut u8 {
    let pointer = match injected_failure() {
        true => std::ptr::null_mut(),
        false => allocate(),
    };
    if pointer.is_null() && !REPORTING.swap(true, Ordering::SeqCst) {
        // Reporting allocates a little; should that fail too, Rust's own abort follows.
        exit_with(
            Fatal::OutOfMemory,
            &format!("an allocation of {} failed", bytes(size as u64)),
        );
    }
    pointer
}

// SAFETY: every call is forwarded to `System` with the caller's arguments; a null result is
// returned as is after reporting (or instead of `System`'s under fault injection).
unsafe impl GlobalAlloc for ReportingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        serve(layout.size(), || unsafe { System.alloc(layout) })
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        serve(layout.size(), || unsafe { System.alloc_zeroed(layout) })
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        serve(new_size, || unsafe {
            System.realloc(pointer, layout, new_size)
        })
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) }
    }
}

#[cfg(feature = "fault-injection")]
static FAIL_NEXT_ALLOCATION: AtomicBool = AtomicBool::new(false);

#[inline]
fn injected_failure() -> bool {
    #[cfg(feature = "fault-injection")]
    if FAIL_NEXT_ALLOCATION.load(Ordering::Relaxed) {
        return FAIL_NEXT_ALLOCATION.swap(false, Ordering::SeqCst);
    }
    false
}

/// Test hook: `QUILL_FAIL_ALLOCATION_AT_STEP=S` makes the first allocation after step S's
/// forward pass fail, as on a machine out of memory. Only with the `fault-injection` feature.
#[cfg(feature = "fault-injection")]
pub(crate) fn maybe_fail_allocation(step: usize) {
    if std::env::var("QUILL_FAIL_ALLOCATION_AT_STEP").is_ok_and(|s| s == step.to_string()) {
        FAIL_NEXT_ALLOCATION.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_recognized_by_their_messages() {
        let disk = "Can log an item.: Os { code: 28, kind: StorageFull, message: \"No space left on device\" }";
        assert_eq!(Fatal::of(disk), Some(Fatal::DiskFull));
        assert_eq!(
            Fatal::of("runs/x/final.mpk: No space left on device (os error 28)"),
            Some(Fatal::DiskFull)
        );
        // cubecl's allocator and the CUDA driver.
        assert_eq!(
            Fatal::of("can't allocate buffer of size: 81604378624\n"),
            Some(Fatal::OutOfMemory)
        );
        assert_eq!(
            Fatal::of("DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")"),
            Some(Fatal::OutOfMemory)
        );
        assert_eq!(Fatal::of("index out of bounds: the len is 3"), None);
    }

    #[test]
    fn the_message_names_the_newest_checkpoint_and_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path().join("r"));
        assert_eq!(
            message(Fatal::OutOfMemory, "an allocation of 1.0 GiB failed"),
            "out of memory (an allocation of 1.0 GiB failed)"
        );
        let guard = begin_run(RunInProgress {
            run: run.clone(),
            steps_per_epoch: 50,
            resume: "quill-cpu train ... --resume".into(),
            restart: "quill-cpu train ... --force".into(),
        });
        let before = message(Fatal::DiskFull, "");
        assert!(before.contains("before its first checkpoint"), "{before}");
        assert!(before.ends_with("start again with: quill-cpu train ... --force"));
        std::fs::create_dir_all(run.path.join("checkpoint")).unwrap();
        for part in crate::checkpoint::PARTS {
            std::fs::write(run.path.join(format!("checkpoint/{part}-2.mpk")), b"x").unwrap();
        }
        let after = message(Fatal::DiskFull, "");
        assert!(
            after.contains("the checkpoint of step 100 is intact"),
            "{after}"
        );
        assert!(after.ends_with("free space and resume with: quill-cpu train ... --resume"));
        drop(guard);
        assert_eq!(message(Fatal::DiskFull, ""), "no space left on device");
    }
}
