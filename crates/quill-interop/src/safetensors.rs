//! A run's weights as a safetensors file: nanoGPT's tensor names in PyTorch's layout (see
//! [`crate::names`]), and the model config and vocabulary in the header's metadata:
//!
//! - `format`: `quill-gpt`
//! - `quill.model`: the `[model]` table as JSON (n_layer, n_head, n_embd, block_size, ...)
//! - `quill.tokenizer`: `char`, `gpt2` or `bpe` (a file without it is `char`)
//! - `quill.vocab`: a char vocabulary as a JSON list of characters; token id = position
//! - `quill.tokenizer_json`: a trained BPE as Hugging Face's `tokenizer.json`
//!
//! nanoGPT can read such a file with `model.load_state_dict(safetensors.torch.load_file(f),
//! strict=False)` (its tied `lm_head.weight` is the embedding, not stored twice).

use std::path::Path;

use burn::prelude::*;
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use quill_data::{Tokenizer, TokenizerKind, Vocab};
use quill_model::{Gpt, ModelConfig};

use crate::{InteropError, apply, names};

pub const FORMAT: &str = "quill-gpt";

/// Writes `gpt` with its config and vocabulary to `out`, which must not exist yet.
pub fn export<B: Backend>(
    gpt: &Gpt<B>,
    model: &ModelConfig,
    tokenizer: &Tokenizer,
    out: &Path,
) -> Result<(), InteropError> {
    let fail = |e: &dyn std::fmt::Display| InteropError::new(out, e);
    if out.exists() {
        return Err(fail(&"already exists; choose another --out or remove it"));
    }
    let model_json = serde_json::to_string(model).expect("a model config serializes");
    // Written beside the target and renamed, so a reader never sees half a file.
    let partial = out.with_extension("safetensors.partial");
    let mut store = SafetensorsStore::from_file(&partial)
        .overwrite(true)
        .with_to_adapter(BurnToPyTorchAdapter)
        .remap(names::to_nanogpt())
        .metadata("format", FORMAT)
        .metadata("quill.model", model_json)
        .metadata("quill.tokenizer", tokenizer.kind().name());
    store = match tokenizer {
        Tokenizer::Char(vocab) => store.metadata(
            "quill.vocab",
            serde_json::to_string(vocab.chars()).expect("characters serialize"),
        ),
        Tokenizer::Gpt2(_) => store,
        Tokenizer::Bpe(bpe) => store.metadata("quill.tokenizer_json", bpe.to_json()),
    };
    gpt.save_into(&mut store).map_err(|e| fail(&e))?;
    std::fs::rename(&partial, out).map_err(|e| fail(&e))
}

/// The model config and vocabulary in the metadata of a file [`export`] wrote.
pub fn read_metadata(path: &Path) -> Result<(ModelConfig, Tokenizer), InteropError> {
    let fail = |e: &dyn std::fmt::Display| InteropError::new(path, e);
    let bytes = std::fs::read(path).map_err(|e| fail(&e))?;
    let (_, header) = ::safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| fail(&format!("not a safetensors file ({e})")))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let field = |key: &str| {
        metadata.get(key).ok_or_else(|| {
            fail(&format!(
                "has no `{key}` metadata; only files written by `export` carry the model config and vocabulary"
            ))
        })
    };
    let model: ModelConfig = serde_json::from_str(field("quill.model")?)
        .map_err(|e| fail(&format!("`quill.model` metadata: {e}")))?;
    // A model that cannot work (a width the heads do not divide) is refused before one is built.
    model
        .validate()
        .map_err(|e| fail(&format!("`quill.model` metadata: {e}")))?;
    let kind = match metadata.get("quill.tokenizer") {
        None => TokenizerKind::Char,
        Some(name) => serde_json::from_value(serde_json::Value::String(name.clone()))
            .map_err(|e| fail(&format!("`quill.tokenizer` metadata: {e}")))?,
    };
    let tokenizer = match kind {
        TokenizerKind::Char => {
            let chars: Vec<char> = serde_json::from_str(field("quill.vocab")?)
                .map_err(|e| fail(&format!("`quill.vocab` metadata: {e}")))?;
            let vocab: Vocab = serde_json::from_value(serde_json::json!({ "chars": chars }))
                .map_err(|e| fail(&format!("`quill.vocab` metadata: {e}")))?;
            Tokenizer::Char(vocab)
        }
        TokenizerKind::Gpt2 => Tokenizer::gpt2(),
        TokenizerKind::Bpe => Tokenizer::from_bpe_json(field("quill.tokenizer_json")?)
            .map_err(|e| fail(&format!("`quill.tokenizer_json` metadata: {e}")))?,
    };
    Ok((model, tokenizer))
}

/// The model stored in `path` by [`export`], with its config and vocabulary.
pub fn import<B: Backend>(
    path: &Path,
    device: &B::Device,
) -> Result<(ModelConfig, Tokenizer, Gpt<B>), InteropError> {
    let (model, tokenizer) = read_metadata(path)?;
    let mut gpt = Gpt::new(&model, tokenizer.len(), device);
    let mut store = SafetensorsStore::from_file(path)
        .with_from_adapter(PyTorchToBurnAdapter)
        .remap(names::from_nanogpt())
        .validate(false)
        .allow_partial(true);
    apply::load_all(&mut gpt, &mut store).map_err(|e| InteropError::new(path, e))?;
    Ok((model, tokenizer, gpt))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn metadata_with_an_unusable_model_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.safetensors");
        let model = ModelConfig {
            n_embd: 100,
            ..ModelConfig::default()
        };
        let metadata = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("quill.model".into(), serde_json::to_string(&model).unwrap()),
            ("quill.vocab".into(), "[\"a\", \"b\"]".into()),
        ]);
        let no_tensors: Vec<(&str, ::safetensors::tensor::TensorView)> = Vec::new();
        ::safetensors::serialize_to_file(no_tensors, Some(metadata), &path).unwrap();
        let error = read_metadata(&path).unwrap_err().to_string();
        assert!(
            error.contains(
                "invalid value for `model.n_embd`: 100 is not divisible by model.n_head = 6"
            ),
            "{error}"
        );
    }
}
