//! GPT-2's encoding (tiktoken's `gpt2`, `encode_ordinary`), fast: the text is cut into GPT-2's
//! pieces by the `regex` crate and each distinct piece is encoded once per chunk of text.
//!
//! tiktoken-rs runs GPT-2's pattern through `fancy-regex`, a backtracking engine, because of one
//! look-ahead: `\s+(?!\S)`, a whitespace run that is not followed by text. Here the pattern runs
//! without it on `regex`'s automata, and the look-ahead is applied by hand: a whitespace run of
//! two characters or more that is followed by text gives its last character to the next piece,
//! which is what the backtracking engine ends up matching. Words repeat, so most pieces are
//! found in a table rather than merged again. Measured on 100 MB of shuffled Tiny Shakespeare
//! (2 cores): tiktoken-rs's `encode_ordinary` 14.6 MB/s, this (see docs/performance.md). The
//! ids are tiktoken's: tests compare them on Shakespeare, multilingual text and random strings.

use std::sync::OnceLock;

use regex_automata::meta::Regex;
use regex_automata::{Anchored, Input};
use rustc_hash::FxHashMap;
use tiktoken_rs::CoreBPE;

/// GPT-2's pre-tokenization pattern, less the look-ahead alternative `\s+(?!\S)`.
const PATTERN: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+";

fn pattern() -> &'static Regex {
    static PATTERN_RE: OnceLock<Regex> = OnceLock::new();
    PATTERN_RE.get_or_init(|| Regex::new(PATTERN).expect("a valid pattern"))
}

/// Calls `piece` with each of GPT-2's pieces of `text`, in order; together they are `text`.
/// Each search is anchored where the last piece ended (a forward scan only) and uses this
/// call's own cache (no pool shared between threads).
pub fn pieces<'t>(text: &'t str, mut piece: impl FnMut(&'t str)) {
    let re = pattern();
    let mut cache = re.create_cache();
    let mut start = 0;
    while start < text.len() {
        let input = Input::new(text).range(start..).anchored(Anchored::Yes);
        let found = re
            .search_with(&mut cache, &input)
            .expect("the last alternatives match any character");
        let mut end = found.end();
        let run = &text[start..end];
        // Only the `\s+` alternative matches whitespace alone (the others hold a letter, a
        // digit or another visible character); followed by text, it is the look-ahead's case.
        if end < text.len() && run.chars().all(char::is_whitespace) {
            let last = run.chars().next_back().expect("non-empty");
            if run.len() > last.len_utf8() {
                end -= last.len_utf8();
            }
        }
        piece(&text[start..end]);
        start = end;
    }
}

/// The GPT-2 ids of `text`, as `bpe.encode_ordinary(text)` gives them.
pub fn encode(bpe: &CoreBPE, text: &str) -> Vec<u32> {
    let mut known: FxHashMap<&str, Vec<u32>> = FxHashMap::default();
    let mut ids = Vec::with_capacity(text.len() / 3);
    pieces(text, |piece| {
        let encoded = known
            .entry(piece)
            .or_insert_with(|| bpe.encode_ordinary(piece));
        ids.extend_from_slice(encoded);
    });
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn gpt2() -> &'static CoreBPE {
        static GPT2: OnceLock<CoreBPE> = OnceLock::new();
        GPT2.get_or_init(|| tiktoken_rs::r50k_base().unwrap())
    }

    #[test]
    fn the_ids_are_tiktokens() {
        let shakespeare = [
            "../../data/tinyshakespeare.txt",
            "../../../shared/data/tinyshakespeare.txt",
        ]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
        let texts = [
            &shakespeare[..shakespeare.len().min(300_000)],
            "Hello world!  Two  spaces,\ttab\t\tand\n\n\nnewlines \n end  ",
            "Ça va? 日本語のテキスト、中文。 😀🎉👩‍👩‍👧 🇫🇷 I'm, you'll, they'd 'S 123 4.5e6\u{3000}x\u{a0}y",
            "   ",
            "\n",
            "x \u{2028}\u{2029} y",
        ];
        for text in texts {
            assert_eq!(
                encode(gpt2(), text),
                gpt2().encode_ordinary(text),
                "{text:?}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn any_text_encodes_as_tiktoken_does(text in "[ \\t\\n\\u{a0}\\u{3000}a-cA'0-9.,!é日😀]{0,40}") {
            prop_assert_eq!(encode(gpt2(), &text), gpt2().encode_ordinary(&text));
        }

        #[test]
        fn any_unicode_encodes_as_tiktoken_does(text in "\\PC{0,30}") {
            prop_assert_eq!(encode(gpt2(), &text), gpt2().encode_ordinary(&text));
        }
    }
}
