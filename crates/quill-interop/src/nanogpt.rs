//! nanoGPT checkpoints (`ckpt.pt`, as its train.py saves them): `model` holds the state dict,
//! `model_args` the shape. Read with burn-store's PyTorch reader; no Python needed.

use std::path::Path;

use burn::prelude::*;
use burn_store::PytorchStore;
use burn_store::pytorch::PytorchReader;
use quill_data::{Tokenizer, TokenizerKind};
use quill_model::{Gpt, ModelConfig, Positional};
use serde::Deserialize;

use crate::{InteropError, apply, names};

/// nanoGPT's `model_args`.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelArgs {
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub block_size: usize,
    pub bias: bool,
    pub vocab_size: usize,
    pub dropout: f64,
}

impl ModelArgs {
    /// The quill model that computes nanoGPT's function: learned positions, 4x MLP, tied head.
    pub fn model_config(&self) -> ModelConfig {
        ModelConfig {
            n_layer: self.n_layer,
            n_head: self.n_head,
            n_embd: self.n_embd,
            block_size: self.block_size,
            dropout: self.dropout,
            positional: Positional::Learned,
            ff_width: 0,
            bias: self.bias,
            tie_weights: true,
            ..ModelConfig::default()
        }
    }
}

/// The vocabulary sizes of nanoGPT's GPT-2-BPE checkpoints: GPT-2's 50257 tokens (as
/// `from_pretrained` loads them) or padded to 50304, a multiple of 64 (its train.py's default).
pub const GPT2_VOCAB_SIZES: [usize; 2] = [50257, 50304];

/// The checkpoint's `model_args`.
pub fn read_args(ckpt: &Path) -> Result<ModelArgs, InteropError> {
    PytorchReader::load_config(ckpt, Some("model_args")).map_err(|e| {
        InteropError::new(
            ckpt,
            format!("cannot read `model_args` of a nanoGPT checkpoint ({e})"),
        )
    })
}

/// Reads `ckpt` into a model for `tokenizer`. A character vocabulary must have the
/// checkpoint's size (nanoGPT's shakespeare_char vocabulary is the sorted distinct characters
/// of the corpus, as quill's); GPT-2's may be padded in the checkpoint, and the padding rows
/// are left out ([`Gpt::truncate_vocab`]).
pub fn import<B: Backend>(
    ckpt: &Path,
    tokenizer: &Tokenizer,
    device: &B::Device,
) -> Result<(ModelConfig, Gpt<B>), InteropError> {
    let fail = |e: &dyn std::fmt::Display| InteropError::new(ckpt, e);
    let args = read_args(ckpt)?;
    let vocab = tokenizer.len();
    match tokenizer.kind() {
        TokenizerKind::Gpt2 if args.vocab_size >= vocab => {}
        TokenizerKind::Gpt2 => {
            return Err(fail(&format!(
                "the model has a vocabulary of {} tokens, fewer than GPT-2's {vocab}",
                args.vocab_size
            )));
        }
        _ if args.vocab_size != vocab => {
            return Err(fail(&format!(
                "the model has a vocabulary of {} tokens, the corpus has {vocab} distinct \
                 characters; give --data the text it was trained on",
                args.vocab_size,
            )));
        }
        _ => {}
    }
    let model = args.model_config();
    model
        .validate()
        .map_err(|e| fail(&format!("`model_args`: {e}")))?;
    let mut gpt = Gpt::new(&model, args.vocab_size, device);
    let mut store = PytorchStore::from_file(ckpt)
        .with_top_level_key("model")
        .remap(names::from_nanogpt())
        .validate(false)
        .allow_partial(true);
    apply::load_all(&mut gpt, &mut store).map_err(|e| fail(&e))?;
    Ok((model, gpt.truncate_vocab(vocab)))
}
