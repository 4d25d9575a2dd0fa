//! How text becomes token ids and back (`data.tokenizer`):
//!
//! - `"char"`: one id per distinct character of the corpus ([`Vocab`], nanoGPT's
//!   shakespeare_char), saved as the run's `vocab.json`;
//! - `"gpt2"`: GPT-2's byte-level BPE, 50257 tokens, exactly as OpenAI's tiktoken `gpt2`
//!   encoding's `encode_ordinary` (tiktoken-rs ships its merge ranks: nothing is downloaded);
//! - `"bpe"`: a byte-level BPE with `data.vocab_size` tokens trained on the corpus's training
//!   split with Hugging Face's `tokenizers`, saved as a standard `tokenizer.json`.
//!
//! Every token is a byte string ([`Tokenizer::token_bytes`]); a sub-word token may hold part of
//! a UTF-8 character, which is why streamed text goes through [`Utf8Stream`].

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tiktoken_rs::CoreBPE;

use crate::bpe::TrainedBpe;
use crate::cuts::line_chunks;
use crate::utf8_stream::{TokenBytes, Utf8Stream};
use crate::{DataError, Vocab};

/// `data.tokenizer`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenizerKind {
    #[default]
    Char,
    Gpt2,
    Bpe,
}

impl TokenizerKind {
    pub fn name(self) -> &'static str {
        match self {
            TokenizerKind::Char => "char",
            TokenizerKind::Gpt2 => "gpt2",
            TokenizerKind::Bpe => "bpe",
        }
    }
}

/// The smallest and largest `data.vocab_size` of a trained BPE: its 256 byte tokens plus at
/// least one merge; at most what a `u32` token file and a sane embedding table hold.
pub const BPE_VOCAB_SIZE: std::ops::RangeInclusive<usize> = 257..=1 << 20;

/// GPT-2's vocabulary size (tiktoken's `gpt2`, `r50k_base`).
pub const GPT2_VOCAB_SIZE: usize = 50257;

/// A run's tokenizer. Cloning is cheap (the BPE tables are shared).
#[derive(Clone)]
pub enum Tokenizer {
    Char(Vocab),
    Gpt2(Arc<CoreBPE>),
    Bpe(Arc<TrainedBpe>),
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tokenizer({}, {} tokens)",
            self.kind().name(),
            self.len()
        )
    }
}

impl PartialEq for Tokenizer {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Tokenizer::Char(a), Tokenizer::Char(b)) => a == b,
            (Tokenizer::Gpt2(_), Tokenizer::Gpt2(_)) => true,
            (Tokenizer::Bpe(a), Tokenizer::Bpe(b)) => a.bytes == b.bytes,
            _ => false,
        }
    }
}

/// What a run directory's `vocab.json` holds: the characters of a char vocabulary, or the name
/// of a tokenizer kept elsewhere (`gpt2` needs nothing more; `bpe` is in `tokenizer.json`).
#[derive(Deserialize)]
#[serde(untagged)]
enum VocabFile {
    Chars(Vocab),
    Named { tokenizer: TokenizerKind },
}

impl Tokenizer {
    /// The tokenizer `kind` for a corpus whose training split is `train_text`: the characters
    /// of the whole `text` (char), GPT-2's, or a BPE of `vocab_size` tokens trained on
    /// `train_text` (never on the validation text it will be scored on).
    pub fn for_corpus(
        kind: TokenizerKind,
        vocab_size: usize,
        text: &str,
        train_text: &str,
    ) -> Result<Self, DataError> {
        let chars = (kind == TokenizerKind::Char).then(|| Vocab::from_text(text));
        let train_pieces = line_chunks(train_text, BPE_TRAINING_PIECE).into_iter();
        Self::from_parts(kind, vocab_size, chars, train_pieces)
    }

    /// [`Tokenizer::for_corpus`] from what a pass over the text gathered: the vocabulary of
    /// its characters (for `"char"`) and the training text in pieces cut where
    /// [`line_chunks`](crate::cuts::line_chunks) cuts (for `"bpe"`; neither is read for the other tokenizers).
    pub(crate) fn from_parts<S: AsRef<str> + Send>(
        kind: TokenizerKind,
        vocab_size: usize,
        chars: Option<Vocab>,
        train_pieces: impl Iterator<Item = S> + Send,
    ) -> Result<Self, DataError> {
        match kind {
            TokenizerKind::Char => Ok(Tokenizer::Char(
                chars.expect("the characters of a char corpus"),
            )),
            TokenizerKind::Gpt2 => Ok(Self::gpt2()),
            TokenizerKind::Bpe => Ok(Tokenizer::Bpe(Arc::new(TrainedBpe::train(
                train_pieces,
                vocab_size,
            )?))),
        }
    }

    /// GPT-2's tokenizer (built once per process: parsing its 50k ranks takes ~100 ms).
    pub fn gpt2() -> Self {
        static GPT2: std::sync::OnceLock<Arc<CoreBPE>> = std::sync::OnceLock::new();
        Tokenizer::Gpt2(
            GPT2.get_or_init(|| {
                Arc::new(tiktoken_rs::r50k_base().expect("tiktoken-rs ships GPT-2's ranks"))
            })
            .clone(),
        )
    }

    pub fn kind(&self) -> TokenizerKind {
        match self {
            Tokenizer::Char(_) => TokenizerKind::Char,
            Tokenizer::Gpt2(_) => TokenizerKind::Gpt2,
            Tokenizer::Bpe(_) => TokenizerKind::Bpe,
        }
    }

    /// The number of token ids: the model's input and output width.
    pub fn len(&self) -> usize {
        match self {
            Tokenizer::Char(vocab) => vocab.len(),
            Tokenizer::Gpt2(_) => GPT2_VOCAB_SIZE,
            Tokenizer::Bpe(bpe) => bpe.bytes.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `char (65 tokens)`, `gpt2 (50257 tokens)`.
    pub fn describe(&self) -> String {
        format!("{} ({} tokens)", self.kind().name(), self.len())
    }

    /// The ids of `text`. A char vocabulary refuses characters it has no id for; the BPEs
    /// encode any text. Long texts are cut at line starts and encoded in parallel, which gives
    /// the same ids: both BPEs split text into pieces before merging, and a newline followed
    /// by a non-space character always ends a piece.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, DataError> {
        if let Tokenizer::Char(vocab) = self {
            return vocab.encode(text);
        }
        self.encode_in_chunks(text, 1 << 20)
    }

    /// Encodes `text` as [`encode`](Self::encode) does, handing the ids to `sink` in order, a
    /// few pieces of about 1 MiB per thread at a time: memory holds those pieces' ids, not the
    /// whole text's (`data prepare` of a large corpus). `sink` also gets each piece's length
    /// in bytes of text.
    pub fn encode_in_order(
        &self,
        text: &str,
        sink: impl FnMut(&[u32], usize) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        self.each_chunk(text, 1 << 20, sink)
    }

    fn encode_in_chunks(&self, text: &str, size: usize) -> Result<Vec<u32>, DataError> {
        let mut all = Vec::with_capacity(text.len() / 2);
        self.each_chunk(text, size, |ids, _| {
            all.extend_from_slice(ids);
            Ok(())
        })?;
        Ok(all)
    }

    /// The ids of `text`'s line-aligned pieces of about `size` bytes, in order, a batch of
    /// pieces encoded in parallel at a time.
    fn each_chunk(
        &self,
        text: &str,
        size: usize,
        mut sink: impl FnMut(&[u32], usize) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        let chunks = line_chunks(text, size);
        for batch in chunks.chunks(2 * rayon::current_num_threads()) {
            let encoded: Vec<Vec<u32>> = batch
                .par_iter()
                .map(|chunk| self.encode_piece(chunk))
                .collect::<Result<_, _>>()?;
            for (ids, chunk) in encoded.iter().zip(batch) {
                sink(ids, chunk.len())?;
            }
        }
        Ok(())
    }

    fn encode_piece(&self, text: &str) -> Result<Vec<u32>, DataError> {
        match self {
            Tokenizer::Char(vocab) => vocab.encode(text),
            Tokenizer::Gpt2(bpe) => Ok(crate::gpt2::encode(bpe, text)),
            Tokenizer::Bpe(bpe) => bpe
                .tokenizer
                .encode_fast(text, false)
                .map(|encoding| encoding.get_ids().to_vec())
                .map_err(|e| DataError::Tokenizer(e.to_string())),
        }
    }

    /// The bytes token `id` stands for (`None` for an id outside the vocabulary).
    pub fn token_bytes(&self, id: u32) -> Option<Cow<'_, [u8]>> {
        match self {
            Tokenizer::Char(vocab) => vocab
                .chars()
                .get(id as usize)
                .map(|c| Cow::Owned(c.to_string().into_bytes())),
            Tokenizer::Gpt2(bpe) => bpe.decode_bytes(&[id]).ok().map(Cow::Owned),
            Tokenizer::Bpe(bpe) => bpe.bytes.get(id as usize).map(|b| Cow::Borrowed(&b[..])),
        }
    }

    /// The text of `ids`; bytes that are not UTF-8 (a cut character) and ids outside the
    /// vocabulary decode as U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut stream = Utf8Stream::default();
        let mut text: String = ids.iter().map(|&id| stream.push(self, id)).collect();
        text.push_str(&stream.finish());
        text
    }

    /// Writes the tokenizer into the run directory `dir`: `vocab.json`, and for a trained BPE
    /// its `tokenizer.json`.
    pub fn save(&self, dir: &Path) -> Result<(), DataError> {
        let vocab = dir.join("vocab.json");
        let error = |path: &Path, reason: String| DataError::VocabFile {
            path: path.to_owned(),
            reason,
        };
        match self {
            Tokenizer::Char(chars) => chars.save(&vocab),
            Tokenizer::Gpt2(_) | Tokenizer::Bpe(_) => {
                if let Tokenizer::Bpe(bpe) = self {
                    let path = dir.join("tokenizer.json");
                    bpe.tokenizer
                        .save(&path, false)
                        .map_err(|e| error(&path, e.to_string()))?;
                }
                let json = format!(r#"{{"tokenizer": "{}"}}"#, self.kind().name());
                std::fs::write(&vocab, json).map_err(|e| error(&vocab, e.to_string()))
            }
        }
    }

    /// The tokenizer [`save`](Self::save) wrote into `dir`.
    pub fn load(dir: &Path) -> Result<Self, DataError> {
        let vocab = dir.join("vocab.json");
        let error = |path: &Path, reason: String| DataError::VocabFile {
            path: path.to_owned(),
            reason,
        };
        let json = std::fs::read_to_string(&vocab).map_err(|e| error(&vocab, e.to_string()))?;
        match serde_json::from_str(&json).map_err(|e| error(&vocab, e.to_string()))? {
            VocabFile::Chars(chars) => Ok(Tokenizer::Char(chars)),
            VocabFile::Named {
                tokenizer: TokenizerKind::Gpt2,
            } => Ok(Self::gpt2()),
            VocabFile::Named {
                tokenizer: TokenizerKind::Bpe,
            } => {
                let path = dir.join("tokenizer.json");
                let tokenizer = tokenizers::Tokenizer::from_file(&path)
                    .map_err(|e| error(&path, e.to_string()))?;
                Ok(Tokenizer::Bpe(Arc::new(
                    TrainedBpe::new(tokenizer).map_err(|reason| error(&path, reason))?,
                )))
            }
            VocabFile::Named { tokenizer } => Err(error(
                &vocab,
                format!("\"{}\" has no vocabulary to name", tokenizer.name()),
            )),
        }
    }
}

impl Tokenizer {
    /// A trained BPE from the text of its `tokenizer.json`.
    pub fn from_bpe_json(json: &str) -> Result<Self, String> {
        let tokenizer: tokenizers::Tokenizer = json.parse().map_err(|e| format!("{e}"))?;
        Ok(Tokenizer::Bpe(Arc::new(TrainedBpe::new(tokenizer)?)))
    }
}

/// Streamed decoding ([`Utf8Stream`]) reads a token's bytes through this.
impl TokenBytes for Tokenizer {
    fn token_bytes(&self, id: u32) -> Option<Cow<'_, [u8]>> {
        Tokenizer::token_bytes(self, id)
    }
}

/// The size of the pieces a BPE is trained on (each one a sequence for its trainer).
pub(crate) const BPE_TRAINING_PIECE: usize = 1 << 16;

#[cfg(test)]
mod tests;
