//! Everything between text on disk and batches of token ids on a device.
//!
//! The pipeline, one module each: [`corpus`] reads a UTF-8 file or a folder of them, as `[data]`
//! ([`config`]) says, [`tokenizer`] maps text to ids (characters through [`vocab`], GPT-2's BPE
//! through [`gpt2`], a BPE trained on the corpus through [`bpe`]; [`cuts`] says where a text may be
//! cut, and [`utf8_stream`] decodes a token at a time), [`split`] cuts train and validation
//! (nanoGPT's convention), [`prepare`] writes the ids to token files once, reading the text a block
//! at a time ([`stream`]) and showing how far it is ([`progress`]), [`tokens`] reads them back a
//! window at a time, [`windows`] draws `(input, target)` windows where the target is the input
//! shifted by one, and [`loader`] turns them into burn data loaders. [`fetch`] downloads and
//! verifies Tiny Shakespeare.

pub mod bpe;
pub mod config;
pub mod corpus;
pub mod cuts;
pub mod error;
pub mod fetch;
pub mod gpt2;
pub mod loader;
mod partial_file;
pub mod prepare;
pub mod progress;
pub mod split;
pub mod stream;
pub mod tokenizer;
pub mod tokens;
pub mod utf8_stream;
pub mod vocab;
pub mod windows;

pub use config::DataConfig;
pub use corpus::Corpus;
pub use error::DataError;
pub use loader::{TokenBatch, TrainingPosition, WindowLoader, Windows};
pub use split::Split;
pub use tokenizer::{Tokenizer, TokenizerKind};
pub use tokens::Tokens;
pub use utf8_stream::Utf8Stream;
pub use vocab::Vocab;
