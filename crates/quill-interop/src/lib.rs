//! Moving weights between quill and other tools.
//!
//! [`names`] is the one table between quill's parameter paths and nanoGPT's state-dict keys;
//! [`safetensors`] exports a run's weights under those names (PyTorch layout) with its model
//! config and vocabulary as metadata, and imports such a file back; [`nanogpt`] reads a nanoGPT
//! `ckpt.pt`. Both go through burn-store, which checks every tensor's shape; [`write_run`]
//! turns an import into a run directory that every quill command accepts.

pub mod names;
pub mod nanogpt;
pub mod safetensors;
pub mod write_run;

mod apply;

use std::path::{Path, PathBuf};

/// A file that could not be read, written or used, and why.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct InteropError {
    pub path: PathBuf,
    pub message: String,
}

impl InteropError {
    pub fn new(path: &Path, message: impl std::fmt::Display) -> Self {
        Self {
            path: path.to_owned(),
            message: message.to_string().replace('\n', " "),
        }
    }
}
