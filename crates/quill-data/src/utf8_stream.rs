//! Streamed decoding: text printed as tokens come, never half a UTF-8 character.

use crate::tokenizer::Tokenizer;

/// Decoding one token at a time: a token's bytes may end inside a UTF-8 character, so bytes are
/// held back until the character is complete; bytes that can never form one become U+FFFD.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// The text token `id` completes (often empty, never half a character).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> String {
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
    use crate::tokenizer::tests::WORLD;

    #[test]
    fn streamed_decoding_never_prints_half_a_character() {
        let gpt2 = Tokenizer::gpt2();
        let ids = gpt2.encode(WORLD).unwrap();
        // Some tokens end inside a character (emoji and CJK are split into bytes).
        assert!(
            ids.iter()
                .any(|&id| std::str::from_utf8(&gpt2.token_bytes(id).unwrap()).is_err())
        );
        let mut stream = Utf8Stream::default();
        let pieces: Vec<String> = ids.iter().map(|&id| stream.push(&gpt2, id)).collect();
        assert!(
            pieces
                .iter()
                .all(|p| !p.contains(char::REPLACEMENT_CHARACTER))
        );
        assert_eq!(pieces.concat() + &stream.finish(), WORLD);
        // A cut character at the end, and an id outside the vocabulary.
        let emoji = gpt2.encode("😀").unwrap();
        assert_eq!(gpt2.decode(&emoji[..emoji.len() - 1]), "\u{FFFD}");
        assert_eq!(gpt2.decode(&[31373, 60000]), "hello\u{FFFD}");
    }
}
