//! quill-cpu's end-to-end tests: each module drives the `quill-cpu` binary in scratch
//! directories (`docs` checks the README and docs/ against the code). One test binary
//! (ripgrep's layout): burn is linked once, not once per file.

mod common;

mod cli_errors;
mod docs;
mod end_to_end;
mod generation;
mod interop;
mod interruption;
mod kernels;
mod modern;
mod nodes;
mod scaling;
mod sweeps;
mod tokenizers;

#[path = "parity/mod.rs"]
mod parity;
