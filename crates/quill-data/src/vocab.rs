//! The character vocabulary: the sorted set of distinct characters of the corpus (nanoGPT's
//! shakespeare_char convention), so ids are stable for a given text.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::DataError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "VocabFile", into = "VocabFile")]
pub struct Vocab {
    chars: Vec<char>,
    ids: HashMap<char, u32>,
}

/// The on-disk form of `vocab.json`: `{"chars": ["\n", " ", "!", ...]}`, id = position.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VocabFile {
    chars: Vec<char>,
}

impl TryFrom<VocabFile> for Vocab {
    type Error = String;

    fn try_from(file: VocabFile) -> Result<Self, String> {
        let vocab = Self::from_chars(file.chars.clone());
        if vocab.chars.len() != file.chars.len() || vocab.chars != file.chars {
            return Err("characters must be sorted and distinct".into());
        }
        Ok(vocab)
    }
}

impl From<Vocab> for VocabFile {
    fn from(vocab: Vocab) -> Self {
        Self { chars: vocab.chars }
    }
}

/// The distinct characters of a text read a part at a time. Collected one at a time:
/// `BTreeSet`'s `from_iter` would first gather every character of the text in a vector (4 GB
/// for a 1 GB corpus).
#[derive(Debug)]
pub struct CharSet {
    ascii: [bool; 128],
    other: BTreeSet<char>,
}

impl Default for CharSet {
    fn default() -> Self {
        Self {
            ascii: [false; 128],
            other: BTreeSet::new(),
        }
    }
}

impl CharSet {
    pub fn add(&mut self, text: &str) {
        for c in text.chars() {
            match self.ascii.get_mut(c as usize) {
                Some(seen) => *seen = true,
                None => {
                    self.other.insert(c);
                }
            }
        }
    }

    pub fn into_vocab(self) -> Vocab {
        let ascii = (0..128u8)
            .filter(|&b| self.ascii[b as usize])
            .map(char::from);
        Vocab::from_chars(ascii.chain(self.other).collect())
    }
}

impl Vocab {
    /// The distinct characters of `text`.
    pub fn from_text(text: &str) -> Self {
        let mut chars = CharSet::default();
        chars.add(text);
        chars.into_vocab()
    }

    fn from_chars(chars: Vec<char>) -> Self {
        let chars: Vec<char> = chars
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let ids = chars
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, i as u32))
            .collect();
        Self { chars, ids }
    }

    pub fn len(&self) -> usize {
        self.chars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    pub fn contains(&self, c: char) -> bool {
        self.ids.contains_key(&c)
    }

    /// Ids of every character of `text`; an error naming each character that has no id.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, DataError> {
        let mut unknown = BTreeSet::new();
        let ids = text
            .chars()
            .filter_map(|c| {
                let id = self.ids.get(&c).copied();
                if id.is_none() {
                    unknown.insert(c);
                }
                id
            })
            .collect();
        if unknown.is_empty() {
            Ok(ids)
        } else {
            let chars = unknown
                .iter()
                .map(|c| format!("{:?}", c))
                .collect::<Vec<_>>()
                .join(", ");
            Err(DataError::UnknownChars { chars })
        }
    }

    /// The text of `ids`. Ids come from the model, whose output width is the vocabulary size;
    /// any other id (a bug, or weights paired with the wrong vocab.json) decodes as U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter()
            .map(|&id| {
                self.chars
                    .get(id as usize)
                    .copied()
                    .unwrap_or(char::REPLACEMENT_CHARACTER)
            })
            .collect()
    }

    pub fn save(&self, path: &Path) -> Result<(), DataError> {
        let json = serde_json::to_string(self).expect("a vocabulary always serializes");
        std::fs::write(path, json).map_err(|e| DataError::VocabFile {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    pub fn load(path: &Path) -> Result<Self, DataError> {
        let error = |reason: String| DataError::VocabFile {
            path: path.to_owned(),
            reason,
        };
        let json = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        serde_json::from_str(&json).map_err(|e| error(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_sorted_distinct_characters() {
        let vocab = Vocab::from_text("hello world\n");
        assert_eq!(
            vocab.chars(),
            &['\n', ' ', 'd', 'e', 'h', 'l', 'o', 'r', 'w']
        );
        assert_eq!(vocab.encode("hold").unwrap(), vec![4, 6, 5, 2]);
    }

    #[test]
    fn encode_decode_round_trips() {
        let text = "First Citizen:\nBefore we proceed any further, hear me speak.";
        let vocab = Vocab::from_text(text);
        assert_eq!(vocab.decode(&vocab.encode(text).unwrap()), text);
    }

    #[test]
    fn unknown_characters_are_named() {
        let vocab = Vocab::from_text("abc");
        let err = vocab.encode("abzcé z").unwrap_err().to_string();
        assert_eq!(err, "characters not in the vocabulary: ' ', 'z', 'é'");
    }

    #[test]
    fn vocab_json_round_trips_and_rejects_unsorted_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vocab.json");
        let vocab = Vocab::from_text("Romeo, Juliet!\n");
        vocab.save(&path).unwrap();
        assert_eq!(Vocab::load(&path).unwrap(), vocab);

        std::fs::write(&path, r#"{"chars": ["b", "a"]}"#).unwrap();
        let err = Vocab::load(&path).unwrap_err().to_string();
        assert!(err.contains("sorted and distinct"), "{err}");
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn text_round_trips_through_its_own_vocabulary(text in "\\PC*") {
                let vocab = Vocab::from_text(&text);
                let ids = vocab.encode(&text).unwrap();
                prop_assert!(ids.iter().all(|&id| (id as usize) < vocab.len()));
                prop_assert_eq!(vocab.decode(&ids), text);
            }

            #[test]
            fn any_text_and_any_ids_are_handled_without_panicking(
                corpus in "\\PC{0,40}",
                text in any::<String>(),
                ids in proptest::collection::vec(any::<u32>(), 0..50),
            ) {
                let vocab = Vocab::from_text(&corpus);
                match vocab.encode(&text) {
                    Ok(encoded) => prop_assert_eq!(vocab.decode(&encoded), text),
                    Err(error) => prop_assert!(error.to_string().contains("not in the vocabulary")),
                }
                prop_assert_eq!(vocab.decode(&ids).chars().count(), ids.len());
            }

            #[test]
            fn any_vocab_file_loads_or_is_refused(json in any::<String>(), chars in "\\PC{0,20}") {
                let _ = serde_json::from_str::<Vocab>(&json);
                let listed: Vec<String> = chars.chars().map(String::from).collect();
                let file = serde_json::json!({ "chars": listed }).to_string();
                if let Ok(vocab) = serde_json::from_str::<Vocab>(&file) {
                    prop_assert_eq!(vocab, Vocab::from_text(&chars));
                }
            }
        }
    }
}
