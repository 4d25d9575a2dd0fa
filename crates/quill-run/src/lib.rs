//! A run's folder on disk: its layout and weights ([`run_dir`]), its lock ([`run_lock`]), and
//! burn-train's checkpoints written so that a crash, a kill or a full disk never leaves a
//! run without a complete one ([`checkpoint`]). quill-train trains into it; quill-generate,
//! quill-interop and quill-sweep read it.

pub mod checkpoint;
mod free_space;
pub mod run_dir;
pub mod run_lock;

pub use free_space::free_space;
pub use run_dir::{RunDir, Weights};
