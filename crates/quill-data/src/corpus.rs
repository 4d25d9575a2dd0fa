//! Reading the training text and cutting it into token splits: [`Corpus`], loaded as `[data]`
//! ([`DataConfig`], in [`crate::config`]) says, from the prepared token files or in memory.

use std::path::{Path, PathBuf};

use crate::prepare::{Prepared, prepare};
use crate::progress::to_stderr;
use crate::split::split_text;
use crate::stream::TextBlocks;
use crate::{DataError, Split, Tokenizer};

// `DataConfig` lives in `config` now, so that `prepare` need not depend on this module (which
// calls `prepare`); its old path still works.
pub use crate::config::DataConfig;

/// A loaded corpus: its tokenizer and its token ids split into train and validation.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub path: PathBuf,
    pub tokenizer: Tokenizer,
    pub split: Split,
    /// The UTF-8 bytes of the training and validation texts (for bits per byte, which
    /// compares across tokenizers).
    pub train_bytes: usize,
    pub val_bytes: usize,
}

impl Corpus {
    /// Reads the text, makes its tokenizer (`data.tokenizer`) and splits it: by characters, the
    /// end held out, then each part encoded on its own.
    /// The splits are read in place from the prepared token files ([`prepare`]), which are
    /// written first when missing or stale. Where they cannot be written (a read-only folder),
    /// the text is encoded in memory, as before there were token files.
    pub fn load(config: &DataConfig) -> Result<Self, DataError> {
        match prepare(config, &mut *to_stderr("note: ")) {
            Ok(prepared) => Self::from_prepared(config, &prepared, prepared.tokenizer()?),
            Err(error @ DataError::PreparedWrite { .. }) => {
                eprintln!("note: {error}; encoding the corpus in memory instead");
                Self::load_in_memory(config)
            }
            Err(error) => Err(error),
        }
    }

    /// Like [`Corpus::load`], but encodes with an existing tokenizer (a resumed run keeps the
    /// one it was trained with): the prepared files when they were made by the same
    /// tokenizer, else the text encoded in memory (a char vocabulary of an older corpus).
    pub fn load_with_tokenizer(
        config: &DataConfig,
        tokenizer: Tokenizer,
    ) -> Result<Self, DataError> {
        match prepare(config, &mut *to_stderr("note: ")) {
            Ok(prepared) if prepared.tokenizer()? == tokenizer => {
                return Self::from_prepared(config, &prepared, tokenizer);
            }
            Ok(_) | Err(DataError::PreparedWrite { .. }) => {}
            Err(error) => return Err(error),
        }
        let text = read_text(&config.path)?;
        Self::with_tokenizer(config, &text, tokenizer)
    }

    fn from_prepared(
        config: &DataConfig,
        prepared: &Prepared,
        tokenizer: Tokenizer,
    ) -> Result<Self, DataError> {
        let (train, val) = prepared.tokens()?;
        Ok(Self {
            path: config.path.clone(),
            tokenizer,
            split: Split { train, val },
            train_bytes: prepared.meta.train_bytes,
            val_bytes: prepared.meta.val_bytes,
        })
    }

    /// The corpus encoded in memory, nothing written (tests compare it with the prepared one).
    pub fn load_in_memory(config: &DataConfig) -> Result<Self, DataError> {
        let text = read_text(&config.path)?;
        let (train, _) = split_text(&text, config.val_fraction);
        let tokenizer = Tokenizer::for_corpus(config.tokenizer, config.vocab_size, &text, train)?;
        Self::with_tokenizer(config, &text, tokenizer)
    }

    fn with_tokenizer(
        config: &DataConfig,
        text: &str,
        tokenizer: Tokenizer,
    ) -> Result<Self, DataError> {
        let (train, val) = split_text(text, config.val_fraction);
        Ok(Self {
            path: config.path.clone(),
            split: Split {
                train: tokenizer.encode(train)?.into(),
                val: tokenizer.encode(val)?.into(),
            },
            tokenizer,
            train_bytes: train.len(),
            val_bytes: val.len(),
        })
    }

    /// Checks that both splits hold at least one window of `block_size + 1` tokens.
    pub fn check_block_size(&self, block_size: usize) -> Result<(), DataError> {
        for (split, len) in [
            ("train", self.split.train.len()),
            ("val", self.split.val.len()),
        ] {
            if len < block_size + 1 {
                return Err(DataError::SplitTooShort {
                    path: self.path.clone(),
                    split,
                    len,
                    block_size,
                    need: block_size + 1,
                });
            }
        }
        Ok(())
    }
}

/// Reads the corpus at `path`: a UTF-8 text file, or every file under a directory in a stable
/// order (the byte order of their paths below it; names starting with `.` skipped), each
/// followed by a newline if it does not end with one, so that no two documents run together.
/// The validation split is then the end of the last files. Errors name the file at fault.
pub fn read_text(path: &Path) -> Result<String, DataError> {
    TextBlocks::read_all(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, bytes: &[u8]) -> PathBuf {
        let path = dir.path().join("corpus.txt");
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn missing_empty_and_non_utf8_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.txt");
        let err = read_text(&missing).unwrap_err().to_string();
        assert!(
            err.contains("does not exist") && err.contains("nope.txt"),
            "{err}"
        );

        let empty = write(&dir, b"");
        let err = read_text(&empty).unwrap_err().to_string();
        assert!(err.contains("is empty"), "{err}");

        let bad = write(&dir, b"abc\xff\xfe");
        let err = read_text(&bad).unwrap_err().to_string();
        assert!(
            err.contains("not valid UTF-8") && err.contains("offset 3"),
            "{err}"
        );
    }

    #[test]
    fn a_directory_is_its_files_in_path_order_each_ending_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/inner")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        for (name, text) in [
            ("b/inner/3.txt", "three\n"),
            ("a.txt", "one"),
            ("b/2.md", "two\n"),
            ("c.txt", ""),
            (".hidden", "never"),
            (".git/config", "never"),
        ] {
            std::fs::write(root.join(name), text).unwrap();
        }
        assert_eq!(read_text(root).unwrap(), "one\ntwo\nthree\n");

        std::fs::write(root.join("b/bad.txt"), b"ok\xff").unwrap();
        let err = read_text(root).unwrap_err().to_string();
        assert!(
            err.contains("bad.txt") && err.contains("not valid UTF-8"),
            "{err}"
        );

        let empty = tempfile::tempdir().unwrap();
        std::fs::write(empty.path().join("blank.txt"), "").unwrap();
        let err = read_text(empty.path()).unwrap_err().to_string();
        assert!(err.contains("is empty"), "{err}");
    }

    #[test]
    fn a_split_shorter_than_a_window_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "abcdefghijklmnopqrstuvwxyz".repeat(4).as_bytes());
        let config = DataConfig {
            path,
            ..DataConfig::default()
        };
        let corpus = Corpus::load(&config).unwrap();
        assert_eq!(corpus.split.val.len(), 11);
        corpus.check_block_size(10).unwrap();
        let err = corpus.check_block_size(11).unwrap_err().to_string();
        assert!(
            err.contains("val split has 11") && err.contains("needs at least 12"),
            "{err}"
        );
    }
}
