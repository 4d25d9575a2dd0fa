//! `[data]`, the data section of a run's config ([`DataConfig`]): where the text comes from,
//! how it is split and which tokenizer encodes it, with its defaults and the checks the types
//! cannot make.
//!
//! It has a module of its own, apart from [`crate::corpus`] which loads what it names, because
//! preparing the token files ([`crate::prepare`]) reads it too and `corpus` calls `prepare`:
//! here both depend on it, and `prepare` need not depend on its caller.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::tokenizer::{BPE_VOCAB_SIZE, TokenizerKind};

/// `[data]`: where the text comes from and how it is split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// A UTF-8 text file, or a directory of them (read recursively, in the byte order of
    /// their paths, hidden files skipped), relative to the working directory. `just data`
    /// places Tiny Shakespeare at the default path.
    pub path: PathBuf,
    /// Fraction of the text, taken from its end, held out for validation (nanoGPT: 0.1).
    pub val_fraction: f64,
    /// `"char"` (one token per character), `"gpt2"` (GPT-2's BPE) or `"bpe"` (a BPE trained
    /// on the training split, `vocab_size` tokens).
    pub tokenizer: TokenizerKind,
    /// The number of tokens of a trained BPE (`tokenizer = "bpe"` only; 0 for the others,
    /// whose vocabulary is fixed by the text or by GPT-2).
    pub vocab_size: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data/tinyshakespeare.txt"),
            val_fraction: 0.1,
            tokenizer: TokenizerKind::Char,
            vocab_size: 0,
        }
    }
}

impl DataConfig {
    /// Checks what the types cannot: a validation share strictly between nothing and all.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.val_fraction > 0.0 && self.val_fraction < 1.0) {
            return Err(format!(
                "invalid value for `data.val_fraction`: {} is outside (0, 1)",
                self.val_fraction
            ));
        }
        let (low, high) = (BPE_VOCAB_SIZE.start(), BPE_VOCAB_SIZE.end());
        match (self.tokenizer, self.vocab_size) {
            (TokenizerKind::Bpe, 0) => Err(format!(
                "`data.tokenizer = \"bpe\"` needs `data.vocab_size` (from {low} to {high})"
            )),
            (TokenizerKind::Bpe, n) if !BPE_VOCAB_SIZE.contains(&n) => Err(format!(
                "invalid value for `data.vocab_size`: {n} is outside {low}..={high} (256 byte \
                 tokens and at least one merge)"
            )),
            (TokenizerKind::Bpe, _) | (_, 0) => Ok(()),
            (kind, _) => Err(format!(
                "`data.vocab_size` is only for `data.tokenizer = \"bpe\"`; \"{}\" has a fixed \
                 vocabulary",
                kind.name()
            )),
        }
    }
}
