use std::path::PathBuf;

/// Every way the data pipeline can refuse its input. Messages are one line and name the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(
        "corpus file {path} does not exist (run `just data` to download Tiny Shakespeare, or set data.path)"
    )]
    CorpusMissing { path: PathBuf },
    #[error("cannot read corpus file {path}: {source}")]
    CorpusRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corpus file {path} is empty")]
    CorpusEmpty { path: PathBuf },
    #[error("corpus file {path} is not valid UTF-8 (first bad byte at offset {offset})")]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error(
        "corpus file {path}: the {split} split has {len} tokens, but block_size {block_size} needs at least {need}"
    )]
    SplitTooShort {
        path: PathBuf,
        split: &'static str,
        len: usize,
        block_size: usize,
        need: usize,
    },
    #[error("characters not in the vocabulary: {chars}")]
    UnknownChars { chars: String },
    #[error("cannot write prepared data {path}: {source}")]
    PreparedWrite {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("vocabulary file {path}: {reason}")]
    VocabFile { path: PathBuf, reason: String },
}
