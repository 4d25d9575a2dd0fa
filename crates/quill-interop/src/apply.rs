//! Loading tensors from a store into a GPT, with one readable error for what does not fit.

use burn::prelude::*;
use burn_store::{ApplyError, ModuleSnapshot, ModuleStore};
use quill_model::Gpt;

/// Loads every parameter of `gpt` from `store`. Tensors the store has and the model does not
/// (nanoGPT's tied `lm_head.weight`, old attention-mask buffers) are ignored.
pub fn load_all<B: Backend, S: ModuleStore>(gpt: &mut Gpt<B>, store: &mut S) -> Result<(), String>
where
    S::Error: std::fmt::Display,
{
    let result = gpt.load_from(store).map_err(|e| e.to_string())?;
    if let Some(error) = result.errors.first() {
        return Err(match error {
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => format!(
                "`{path}` is {:?} in the file, the model needs {:?}",
                found.as_slice(),
                expected.as_slice()
            ),
            other => format!("{other:?}"),
        });
    }
    if let Some((path, _)) = result.missing.first() {
        return Err(format!(
            "the file has no tensor for `{path}` ({} of the model's {} missing)",
            result.missing.len(),
            result.missing.len() + result.applied.len()
        ));
    }
    Ok(())
}
