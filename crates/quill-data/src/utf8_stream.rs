//! Streamed decoding: text printed as tokens come, never half a UTF-8 character.
//!
//! [`Utf8Stream`] reads each token's bytes through [`TokenBytes`] (which
//! [`crate::Tokenizer`] implements) rather than naming the tokenizer: the tokenizer decodes
//! through this module, so this one depends on nothing of the crate.

use std::borrow::Cow;

/// What streamed decoding needs of a tokenizer: the bytes each token stands for.
pub trait TokenBytes {
    /// The bytes token `id` stands for (`None` for an id outside the vocabulary).
    fn token_bytes(&self, id: u32) -> Option<Cow<'_, [u8]>>;
}

/// Decoding one token at a time: a token's bytes may end inside a UTF-8 character, so bytes are
/// held back until the character is complete; bytes that can never form one become U+FFFD.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// The text token `id` of `tokenizer` completes (often empty, never half a character).
    pub fn push(&mut self, tokenizer: &(impl TokenBytes + ?Sized), id: u32) -> String {
        match tokenizer.token_bytes(id) {
            Some(bytes) => self.pending.extend_from_slice(&bytes),
            None => {
                let mut text = self.finish();
                text.push(char::REPLACEMENT_CHARACTER);
                return text;
            }
        }
        let mut text = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(valid) => {
                    text.push_str(valid);
                    self.pending.clear();
                    return text;
                }
                Err(error) => {
                    let valid = error.valid_up_to();
                    text.push_str(std::str::from_utf8(&self.pending[..valid]).expect("valid"));
                    match error.error_len() {
                        // An incomplete character at the end: wait for the next token.
                        None => {
                            self.pending.drain(..valid);
                            return text;
                        }
                        Some(bad) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Whatever is held back, at the end of the text (U+FFFD for an unfinished character).
    pub fn finish(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vocabulary of byte strings: id `i` is `self[i]`.
    impl TokenBytes for [&[u8]] {
        fn token_bytes(&self, id: u32) -> Option<Cow<'_, [u8]>> {
            self.get(id as usize).map(|&bytes| Cow::Borrowed(bytes))
        }
    }

    /// Each id's text, streamed, and what is held back at the end.
    fn stream(vocab: &[&[u8]], ids: &[u32]) -> (Vec<String>, String) {
        let mut stream = Utf8Stream::default();
        let pieces = ids.iter().map(|&id| stream.push(vocab, id)).collect();
        (pieces, stream.finish())
    }

    #[test]
    fn streamed_decoding_never_prints_half_a_character() {
        // Tokens that end inside a character, as a byte-level BPE's do (emoji and CJK split
        // into bytes): "😀" is F0 9F 98 80, "日" E6 97 A5.
        let vocab: &[&[u8]] = &[
            b"Hi ",
            b"\xF0",
            b"\x9F\x98",
            b"\x80 \xE6\x97",
            b"\xA5!",
            b"\xFF",
        ];
        let (pieces, rest) = stream(vocab, &[0, 1, 2, 3, 4]);
        assert_eq!(pieces, ["Hi ", "", "", "😀 ", "日!"]);
        assert_eq!(rest, "");
        // A cut character at the end, a byte that never forms one, an id outside the
        // vocabulary: each is U+FFFD, and what came before it is kept.
        let (pieces, rest) = stream(vocab, &[0, 1, 2]);
        assert_eq!(pieces.concat(), "Hi ");
        assert_eq!(rest, "\u{FFFD}");
        assert_eq!(stream(vocab, &[0, 5, 0]).0.concat(), "Hi \u{FFFD}Hi ");
        assert_eq!(stream(vocab, &[1, 9]).0, ["", "\u{FFFD}\u{FFFD}"]);
    }
}
