//! A byte-level BPE trained on the corpus (`data.tokenizer = "bpe"`), with Hugging Face's
//! `tokenizers`: GPT-2's pre-tokenization, no prefix space, no special tokens; kept as a
//! standard `tokenizer.json` and, for decoding one token at a time, the bytes of every token.

use crate::DataError;

/// A byte-level BPE from Hugging Face's `tokenizers`, with the bytes of each token.
pub struct TrainedBpe {
    pub(crate) tokenizer: tokenizers::Tokenizer,
    pub(crate) bytes: Vec<Vec<u8>>,
}

impl TrainedBpe {
    /// Hugging Face's `tokenizer.json` of this BPE.
    pub fn to_json(&self) -> String {
        self.tokenizer
            .to_string(false)
            .expect("a trained tokenizer serializes")
    }

    /// Trains a byte-level BPE of at most `vocab_size` tokens on the text in `pieces` (GPT-2's
    /// pre-tokenization, no prefix space, no special tokens), each cut where the
    /// pre-tokenizer cuts anyway (`cuts::line_chunks`), so that their words are the
    /// text's. A text with fewer distinct pairs to merge yields fewer tokens.
    pub(crate) fn train<S: AsRef<str> + Send>(
        pieces: impl Iterator<Item = S> + Send,
        vocab_size: usize,
    ) -> Result<Self, DataError> {
        use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
        use tokenizers::models::{ModelWrapper, TrainerWrapper};
        use tokenizers::pre_tokenizers::byte_level::ByteLevel;

        let byte_level = ByteLevel::new(false, true, true);
        let mut tokenizer = tokenizers::Tokenizer::new(ModelWrapper::BPE(BPE::default()));
        tokenizer
            .with_pre_tokenizer(Some(byte_level))
            .with_decoder(Some(byte_level));
        let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(0)
            .show_progress(false)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build()
            .into();
        tokenizer
            .train(&mut trainer, pieces)
            .map_err(|e| DataError::Tokenizer(e.to_string()))?;
        Self::new(tokenizer).map_err(DataError::Tokenizer)
    }

    pub(crate) fn new(tokenizer: tokenizers::Tokenizer) -> Result<Self, String> {
        let byte_of = unicode_to_byte();
        let size = tokenizer.get_vocab_size(true);
        let bytes = (0..size as u32)
            .map(|id| {
                let token = tokenizer
                    .id_to_token(id)
                    .ok_or_else(|| format!("token ids are not contiguous: {id} is missing"))?;
                token
                    .chars()
                    .map(|c| byte_of.get(&c).copied())
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(|| format!("token {token:?} is not byte-level"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { tokenizer, bytes })
    }
}

/// GPT-2's byte-level alphabet reversed: the printable character each byte is written as in a
/// byte-level BPE's vocabulary, mapped back to the byte (`bytes_to_unicode` in GPT-2's code).
fn unicode_to_byte() -> std::collections::HashMap<char, u8> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut next = 256u32;
    (0..=255u8)
        .map(|b| {
            if printable(b) {
                (char::from(b), b)
            } else {
                let c = char::from_u32(next).expect("below U+0200");
                next += 1;
                (c, b)
            }
        })
        .collect()
}
