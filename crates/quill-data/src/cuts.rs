//! Where a text may be cut so that each part encodes to the ids it has in the whole text:
//! long texts are encoded in parallel pieces, BPEs are trained on pieces, and `data prepare`
//! reads a corpus a block at a time. The tokenizer tests check every such cut on tricky text.

/// `text` cut into pieces of about `size` bytes, each cut where a run of white space starts
/// after a character that is not white space (`x| y`, `x|\r\n`, `日|\n`). GPT-2's
/// pre-tokenizer always ends a piece there: no piece but a white-space one holds white space
/// after other characters, and it reads on from a piece's end only forwards, so the rest
/// encodes alone as it does in the whole text. Cutting inside a run would not do: `\n\n`
/// before a word is two pieces, at the end of a text one.
pub(crate) fn line_chunks(text: &str, size: usize) -> Vec<&str> {
    let mut chunks = Vec::new();
    let mut rest = text;
    while rest.len() > size {
        let bytes = rest.as_bytes();
        let cut = (size.max(1)..bytes.len()).find(|&i| is_safe_cut(bytes, i));
        match cut {
            Some(i) => {
                chunks.push(&rest[..i]);
                rest = &rest[i..];
            }
            None => break,
        }
    }
    if !rest.is_empty() || chunks.is_empty() {
        chunks.push(rest);
    }
    chunks
}

/// Whether `text` may be cut before byte `i` (`x| `, see [`line_chunks`]).
pub(crate) fn is_safe_cut(text: &[u8], i: usize) -> bool {
    if i == 0 || i >= text.len() || !text[i].is_ascii_whitespace() {
        return false;
    }
    // The character that ends at `i`: its first byte is the last one that does not continue.
    let start = (i.saturating_sub(4)..i)
        .rev()
        .find(|&j| text[j] & 0xC0 != 0x80)
        .unwrap_or(0);
    std::str::from_utf8(&text[start..i])
        .ok()
        .and_then(|c| c.chars().next_back())
        .is_some_and(|c| !c.is_whitespace())
}

/// The last place `text` may be cut (see [`line_chunks`]), not before byte `from`.
pub(crate) fn last_safe_cut(text: &str, from: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    (from.max(1)..bytes.len())
        .rev()
        .find(|&i| is_safe_cut(bytes, i))
}
