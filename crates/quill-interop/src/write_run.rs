//! An imported model as a run directory: `config.toml`, its tokenizer (`vocab.json`), and the weights as both
//! `best.mpk` and `final.mpk`, so `generate`, `eval`, `bench` and `train --init-from` take it.

use burn::prelude::*;
use quill_data::Tokenizer;
use quill_model::Gpt;
use quill_train::checkpoint::write_atomic;
use quill_train::{RunConfig, RunDir, Weights};

use crate::InteropError;

/// Writes the run `run` (a directory that must not exist yet).
pub fn write_run<B: Backend>(
    run: &RunDir,
    config: &RunConfig,
    tokenizer: &Tokenizer,
    gpt: &Gpt<B>,
) -> Result<(), InteropError> {
    let fail = |e: &dyn std::fmt::Display| InteropError::new(&run.path, e);
    if run.path.exists() {
        return Err(fail(&"already exists; choose another --out or remove it"));
    }
    config.validate().map_err(|e| fail(&e))?;
    std::fs::create_dir_all(&run.path).map_err(|e| fail(&e))?;
    write_atomic(&run.config(), config.to_toml().as_bytes()).map_err(|e| fail(&e))?;
    tokenizer.save(&run.path).map_err(|e| fail(&e))?;
    for weights in [Weights::Final, Weights::Best] {
        run.save_weights(gpt, weights).map_err(|e| fail(&e))?;
    }
    Ok(())
}
