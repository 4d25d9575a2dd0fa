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
mod tests {
    use super::*;
    use crate::cuts::is_safe_cut;

    /// Text with what tokenizers trip on: accents, CJK, emoji (joined and flags), CRLF, tabs,
    /// odd spaces.
    const WORLD: &str = "Hello world! Ça va? Grüße aus Köln.\n\n日本語のテキスト、中文文本。\n\
        Emoji: 😀🎉👩‍👩‍👧 and a flag 🇫🇷.\n  indented\n\n\nend\r\nCRLF lines\r\n\r\nit's\t\ttabs \
        don't \u{3000}wide space\u{a0}nbsp 42 \n";

    fn shakespeare() -> Option<String> {
        [
            "../../data/tinyshakespeare.txt",
            "../../../shared/data/tinyshakespeare.txt",
        ]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
    }

    #[test]
    fn gpt2_encodes_as_tiktoken_does() {
        let gpt2 = Tokenizer::gpt2();
        assert_eq!(gpt2.len(), 50257);
        // tiktoken.get_encoding("gpt2").encode_ordinary(...)
        assert_eq!(gpt2.encode("Hello world").unwrap(), [15496, 995]);
        assert_eq!(gpt2.encode("hello world").unwrap(), [31373, 995]);
        assert_eq!(gpt2.encode("\n").unwrap(), [198]);
        // Two newlines before a word are two tokens, at the end of a text one.
        assert_eq!(gpt2.encode("a\n\nb").unwrap()[1..3], [198, 198]);
        assert_eq!(gpt2.encode("a\n\n").unwrap()[1..], [628]);
        let ids = gpt2.encode(WORLD).unwrap();
        assert_eq!(gpt2.decode(&ids), WORLD);
        // Some tokens end inside a character (emoji and CJK are split into bytes), which
        // decoding holds back; a cut character at the end and an unknown id are U+FFFD.
        let cut = |&id: &u32| std::str::from_utf8(&gpt2.token_bytes(id).unwrap()).is_err();
        assert!(ids.iter().any(cut));
        let emoji = gpt2.encode("😀").unwrap();
        assert_eq!(gpt2.decode(&emoji[..emoji.len() - 1]), "\u{FFFD}");
        assert_eq!(gpt2.decode(&[31373, 60000]), "hello\u{FFFD}");
    }

    #[test]
    fn long_texts_encode_in_parallel_pieces_as_one() {
        let text = shakespeare().unwrap_or_else(|| WORLD.repeat(500));
        let text = &text[..text.len().min(200_000)];
        let bpe = Tokenizer::for_corpus(TokenizerKind::Bpe, 400, text, text).unwrap();
        for tokenizer in [Tokenizer::gpt2(), bpe] {
            let whole = tokenizer.encode_piece(text).unwrap();
            assert!(line_chunks(text, 4096).len() > 10);
            assert_eq!(tokenizer.encode_in_chunks(text, 4096).unwrap(), whole);
            let tricky = WORLD.repeat(40);
            let whole = tokenizer.encode_piece(&tricky).unwrap();
            assert_eq!(tokenizer.encode_in_chunks(&tricky, 8).unwrap(), whole);
        }
        assert_eq!(line_chunks(WORLD, 8).concat(), WORLD);
    }

    #[test]
    fn every_safe_cut_splits_the_ids_of_the_whole_text() {
        let text = WORLD.repeat(2);
        let bpe = Tokenizer::for_corpus(TokenizerKind::Bpe, 300, &text, &text).unwrap();
        let cuts: Vec<usize> = (0..text.len())
            .filter(|&i| is_safe_cut(text.as_bytes(), i))
            .collect();
        assert!(cuts.len() > 20, "{cuts:?}");
        for tokenizer in [Tokenizer::gpt2(), bpe] {
            let whole = tokenizer.encode_piece(&text).unwrap();
            for &i in &cuts {
                let mut parts = tokenizer.encode_piece(&text[..i]).unwrap();
                parts.extend(tokenizer.encode_piece(&text[i..]).unwrap());
                assert_eq!(
                    parts,
                    whole,
                    "cut at {i}: {:?}|{:?}",
                    &text[..i],
                    &text[i..]
                );
            }
        }
    }

    #[test]
    fn a_trained_bpe_has_its_size_round_trips_and_saves_as_tokenizer_json() {
        let text = shakespeare().unwrap_or_else(|| WORLD.repeat(200));
        let bpe = Tokenizer::for_corpus(TokenizerKind::Bpe, 512, &text, &text).unwrap();
        assert_eq!(bpe.len(), 512);
        let ids = bpe.encode(&text[..5000]).unwrap();
        assert!(
            ids.len() < 5000 * 6 / 10,
            "merges shorten the text: {}",
            ids.len()
        );
        assert_eq!(bpe.decode(&ids), &text[..5000]);
        // Any text, even characters the training text never had.
        assert_eq!(bpe.decode(&bpe.encode(WORLD).unwrap()), WORLD);

        let dir = tempfile::tempdir().unwrap();
        bpe.save(dir.path()).unwrap();
        let standard = tokenizers::Tokenizer::from_file(dir.path().join("tokenizer.json")).unwrap();
        let back = Tokenizer::load(dir.path()).unwrap();
        assert_eq!(back, bpe);
        assert_eq!(back.encode(WORLD).unwrap(), bpe.encode(WORLD).unwrap());
        let theirs = standard.encode(WORLD, false).unwrap().get_ids().to_vec();
        assert_eq!(theirs, bpe.encode(WORLD).unwrap());
        assert_eq!(standard.decode(&theirs, false).unwrap(), WORLD);
    }

    #[test]
    fn every_tokenizer_round_trips_and_saves() {
        let dir = tempfile::tempdir().unwrap();
        for kind in [TokenizerKind::Char, TokenizerKind::Gpt2, TokenizerKind::Bpe] {
            let tokenizer = Tokenizer::for_corpus(kind, 300, WORLD, WORLD).unwrap();
            let ids = tokenizer.encode(WORLD).unwrap();
            assert!(ids.iter().all(|&id| (id as usize) < tokenizer.len()));
            assert_eq!(tokenizer.decode(&ids), WORLD, "{kind:?}");
            let path = dir.path().join(kind.name());
            std::fs::create_dir(&path).unwrap();
            tokenizer.save(&path).unwrap();
            assert_eq!(Tokenizer::load(&path).unwrap(), tokenizer);
        }
        assert_eq!(
            Tokenizer::for_corpus(TokenizerKind::Char, 0, WORLD, WORLD)
                .unwrap()
                .len(),
            WORLD
                .chars()
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        );
    }
}
