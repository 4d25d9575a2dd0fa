//! `data prepare`: a corpus tokenized once into token files that training maps in place, as
//! nanoGPT's `prepare.py` writes `train.bin` and `val.bin`.
//!
//! The prepared folder sits beside the corpus, one per way of preparing it:
//! `<data.path>.prepared/<tokenizer>[-<vocab_size>]-val<val_fraction>/` holds `train.bin` and
//! `val.bin` (little-endian `u16` ids when the vocabulary fits, else `u32`), the tokenizer
//! (`vocab.json`, and `tokenizer.json` for a trained BPE) and `meta.json`: the tokenizer, the
//! vocabulary size, token and byte counts, and every source file with its size, modification
//! time and sha256. A corpus whose files changed (another size, or another time and another
//! hash) is prepared again, so stale tokens are never used. `meta.json` is written last: a
//! folder without it is unfinished and is prepared again.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Instant, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::DataConfig;
use crate::cuts::line_chunks;
use crate::partial_file::{PartialFile, WritersLock, write_error};
use crate::progress::{Quiet, Report};
use crate::stream::{Part, SplitPieces, TextBlocks, corpus_files};
use crate::tokenizer::BPE_TRAINING_PIECE;
use crate::vocab::CharSet;
use crate::{DataError, Tokenizer, TokenizerKind, Tokens, Vocab};

/// One source file as `meta.json` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    pub path: PathBuf,
    pub bytes: u64,
    /// Nanoseconds since the Unix epoch; a file with the same size and time is not re-hashed.
    pub modified_ns: u128,
    pub sha256: String,
}

/// `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub tokenizer: TokenizerKind,
    pub vocab_size: usize,
    pub val_fraction: f64,
    /// 2 (`u16`) or 4 (`u32`).
    pub bytes_per_token: usize,
    pub train_tokens: usize,
    pub val_tokens: usize,
    pub train_bytes: usize,
    pub val_bytes: usize,
    pub sources: Vec<SourceFile>,
}

/// A prepared corpus: its folder and what `meta.json` says.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub dir: PathBuf,
    pub meta: Meta,
    /// Whether this call tokenized the corpus (false: the files were fresh).
    pub written: bool,
}

impl Prepared {
    pub fn tokenizer(&self) -> Result<Tokenizer, DataError> {
        Tokenizer::load(&self.dir)
    }

    /// The two splits, read from their files.
    pub fn tokens(&self) -> Result<(Tokens, Tokens), DataError> {
        let map = |name: &str| {
            let path = self.dir.join(name);
            Tokens::open(&path, self.meta.bytes_per_token)
                .map_err(|source| DataError::CorpusRead { path, source })
        };
        Ok((map("train.bin")?, map("val.bin")?))
    }
}

/// The folder `config`'s corpus is prepared in.
pub fn prepared_dir(config: &DataConfig) -> PathBuf {
    let mut name = config.tokenizer.name().to_owned();
    if config.tokenizer == TokenizerKind::Bpe {
        name += &format!("-{}", config.vocab_size);
    }
    name += &format!("-val{}", config.val_fraction);
    let mut root = config.path.clone().into_os_string();
    root.push(".prepared");
    PathBuf::from(root).join(name)
}

/// Corpora from this size on take long enough to tokenize that [`prepare`] says what it does.
pub const ANNOUNCE_BYTES: u64 = 16 << 20;

/// The corpus of `config` prepared: the existing files when they are fresh, else tokenized
/// now (`report` hears of it when the corpus has [`ANNOUNCE_BYTES`] or more).
pub fn prepare(config: &DataConfig, report: &mut dyn Report) -> Result<Prepared, DataError> {
    prepare_in_pieces(config, report, PIECE_BYTES)
}

/// [`prepare`], encoding pieces of about `piece_bytes` (small ones in tests).
fn prepare_in_pieces(
    config: &DataConfig,
    report: &mut dyn Report,
    piece_bytes: usize,
) -> Result<Prepared, DataError> {
    let dir = prepared_dir(config);
    let files = corpus_files(&config.path)?;
    let old: Option<Meta> = std::fs::read(dir.join("meta.json"))
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok());
    let sources = files
        .iter()
        .map(|path| {
            let known = old
                .as_ref()
                .and_then(|m| m.sources.iter().find(|s| &s.path == path));
            describe(path, known)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let same = |a: &[SourceFile], b: &[SourceFile]| {
        let content = |s: &SourceFile| (s.path.clone(), s.bytes, s.sha256.clone());
        a.iter().map(content).eq(b.iter().map(content))
    };
    let fresh = |m: &Meta| {
        m.tokenizer == config.tokenizer
            && m.val_fraction == config.val_fraction
            && same(&m.sources, &sources)
            && ["train.bin", "val.bin"]
                .iter()
                .all(|f| dir.join(f).exists())
    };
    if let Some(meta) = old.filter(fresh) {
        return Ok(Prepared {
            dir,
            meta,
            written: false,
        });
    }
    let started = Instant::now();
    let total: u64 = sources.iter().map(|s| s.bytes).sum();
    let report = match total >= ANNOUNCE_BYTES {
        true => report,
        false => &mut Quiet,
    };
    report.line(&format!(
        "preparing {} ({} file{}, {:.1} MB) with the {} tokenizer into {}",
        config.path.display(),
        sources.len(),
        if sources.len() == 1 { "" } else { "s" },
        total as f64 / 1e6,
        config.tokenizer.name(),
        dir.display()
    ));
    let (train_chars, chars) = survey(config)?;
    let tokenizer = make_tokenizer(config, chars, train_chars, piece_bytes)?;
    let bytes_per_token = if tokenizer.len() <= 1 << 16 { 2 } else { 4 };
    let mut meta = Meta {
        tokenizer: tokenizer.kind(),
        vocab_size: tokenizer.len(),
        val_fraction: config.val_fraction,
        bytes_per_token,
        train_tokens: 0,
        val_tokens: 0,
        train_bytes: 0,
        val_bytes: 0,
        sources,
    };
    let pieces = SplitPieces::new(TextBlocks::open(&config.path)?, train_chars, piece_bytes);
    write(&dir, &tokenizer, pieces, &mut meta, total as usize, report)?;
    let seconds = started.elapsed().as_secs_f64();
    report.line(&format!(
        "prepared {} train and {} val tokens in {seconds:.1} s ({:.1} MB/s)",
        meta.train_tokens,
        meta.val_tokens,
        total as f64 / 1e6 / seconds.max(1e-9)
    ));
    Ok(Prepared {
        dir,
        meta,
        written: true,
    })
}

/// The text is encoded in pieces of about this many bytes: memory holds one piece, the block
/// read after it, and the ids of a few MB of text.
const PIECE_BYTES: usize = 16 << 20;

/// A first pass over the text: the characters of its training part (all of them less the
/// validation fraction: nanoGPT's cut, as `split::split_text` makes it) and, for `"char"`,
/// the vocabulary of its characters.
fn survey(config: &DataConfig) -> Result<(usize, Option<Vocab>), DataError> {
    let mut count = 0;
    let mut chars = (config.tokenizer == TokenizerKind::Char).then(CharSet::default);
    for block in TextBlocks::open(&config.path)? {
        let block = block?;
        // Every byte of UTF-8 that does not continue a character starts one.
        count += block.bytes().filter(|b| b & 0xC0 != 0x80).count();
        if let Some(chars) = &mut chars {
            chars.add(&block);
        }
    }
    let train_chars = (count as f64 * (1.0 - config.val_fraction)) as usize;
    Ok((train_chars, chars.map(CharSet::into_vocab)))
}

/// The corpus's tokenizer; a BPE is trained on the training part, in one more pass.
fn make_tokenizer(
    config: &DataConfig,
    chars: Option<Vocab>,
    train_chars: usize,
    piece_bytes: usize,
) -> Result<Tokenizer, DataError> {
    let failed = std::sync::Mutex::new(None);
    let train_pieces = match config.tokenizer {
        TokenizerKind::Bpe => Some(SplitPieces::new(
            TextBlocks::open(&config.path)?,
            train_chars,
            piece_bytes,
        )),
        _ => None,
    };
    let train_pieces = train_pieces
        .into_iter()
        .flatten()
        .map_while(|piece| match piece {
            Ok((Part::Train, text)) => Some(text),
            Ok((Part::Val, _)) => None,
            Err(error) => {
                *failed.lock().expect("error slot") = Some(error);
                None
            }
        })
        .flat_map(|text| {
            let pieces = line_chunks(&text, BPE_TRAINING_PIECE);
            pieces.into_iter().map(str::to_owned).collect::<Vec<_>>()
        });
    let tokenizer = Tokenizer::from_parts(config.tokenizer, config.vocab_size, chars, train_pieces);
    match failed.into_inner().expect("error slot") {
        Some(error) => Err(error),
        None => tokenizer,
    }
}

/// Writes the folder from the text's `pieces`: the old `meta.json` goes first (the folder is
/// unfinished from then on), each token file through a temporary file renamed into place when
/// complete, the new `meta.json` last (with the token and byte counts, filled in here). The ids
/// are written as they are encoded. Two processes preparing the same corpus write the same
/// bytes, so either may finish last.
fn write(
    dir: &Path,
    tokenizer: &Tokenizer,
    pieces: impl Iterator<Item = Result<(Part, String), DataError>>,
    meta: &mut Meta,
    total: usize,
    report: &mut dyn Report,
) -> Result<(), DataError> {
    std::fs::create_dir_all(dir).map_err(|e| write_error(dir, e))?;
    let _writers = WritersLock::join(dir)?;
    let meta_path = dir.join("meta.json");
    match std::fs::remove_file(&meta_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(write_error(&meta_path, e));
        }
        _ => {}
    }
    let width = meta.bytes_per_token;
    let mut files = [
        PartialFile::create(dir.join("train.bin"))?,
        PartialFile::create(dir.join("val.bin"))?,
    ];
    let mut tokens = [0; 2];
    let mut bytes = [0; 2];
    let mut done = 0;
    for piece in pieces {
        let (part, text) = piece?;
        let i = usize::from(part == Part::Val);
        bytes[i] += text.len();
        let file = &mut files[i];
        tokenizer.encode_in_order(&text, |ids, encoded| {
            tokens[i] += ids.len();
            done += encoded;
            report.encoded(done, total);
            let out: Vec<u8> = match width {
                2 => ids
                    .iter()
                    .flat_map(|&id| (id as u16).to_le_bytes())
                    .collect(),
                _ => ids.iter().flat_map(|&id| id.to_le_bytes()).collect(),
            };
            file.write_all(&out)
        })?;
    }
    for file in files {
        file.commit()?;
    }
    [meta.train_tokens, meta.val_tokens] = tokens;
    [meta.train_bytes, meta.val_bytes] = bytes;
    tokenizer.save(dir)?;
    let json = serde_json::to_vec_pretty(meta).expect("meta serializes");
    let mut meta_file = PartialFile::create(meta_path)?;
    meta_file.write_all(&json)?;
    meta_file.commit()
}

/// `path`'s size, time and hash; the hash is `known`'s when size and time are unchanged.
fn describe(path: &Path, known: Option<&SourceFile>) -> Result<SourceFile, DataError> {
    let fail = |source| DataError::CorpusRead {
        path: path.to_owned(),
        source,
    };
    let stat = std::fs::metadata(path).map_err(fail)?;
    let modified_ns = stat
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    if let Some(known) = known.filter(|k| k.bytes == stat.len() && k.modified_ns == modified_ns) {
        return Ok(known.clone());
    }
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::open(path).map_err(fail)?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer).map_err(fail)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(SourceFile {
        path: path.to_owned(),
        bytes: stat.len(),
        modified_ns,
        sha256: format!("{:x}", hasher.finalize()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Corpus;

    fn corpus(dir: &Path) -> PathBuf {
        let root = dir.join("books");
        std::fs::create_dir_all(root.join("more")).unwrap();
        let text = "First Citizen:\nBefore we proceed any further, hear me speak.\n\n";
        std::fs::write(root.join("a.txt"), text.repeat(40)).unwrap();
        std::fs::write(root.join("more/b.txt"), "Ça va? 日本語 😀\n".repeat(30)).unwrap();
        root
    }

    fn config(path: &Path, tokenizer: TokenizerKind, vocab_size: usize) -> DataConfig {
        DataConfig {
            path: path.to_owned(),
            tokenizer,
            vocab_size,
            ..DataConfig::default()
        }
    }

    #[test]
    fn prepared_splits_are_the_in_memory_ones() {
        let dir = tempfile::tempdir().unwrap();
        let root = corpus(dir.path());
        for (kind, size, piece_bytes) in [
            (TokenizerKind::Char, 0, PIECE_BYTES),
            (TokenizerKind::Gpt2, 0, PIECE_BYTES),
            (TokenizerKind::Bpe, 300, PIECE_BYTES),
            // Read and encoded in many pieces, as a large corpus is.
            (TokenizerKind::Gpt2, 0, 100),
            (TokenizerKind::Bpe, 300, 100),
        ] {
            let config = config(&root, kind, size);
            let _ = std::fs::remove_dir_all(prepared_dir(&config));
            prepare_in_pieces(&config, &mut Quiet, piece_bytes).unwrap();
            let mapped = Corpus::load(&config).unwrap();
            let memory = Corpus::load_in_memory(&config).unwrap();
            assert_eq!(mapped.tokenizer, memory.tokenizer, "{kind:?}");
            assert_eq!(mapped.split, memory.split, "{kind:?}");
            assert_eq!(
                (mapped.train_bytes, mapped.val_bytes),
                (memory.train_bytes, memory.val_bytes)
            );
            assert!(format!("{:?}", mapped.split.train).contains("file u16"));
            let prepared = prepared_dir(&config);
            assert!(prepared.starts_with(dir.path().join("books.prepared")));
            assert!(prepared.join("meta.json").exists());
        }
    }

    #[test]
    fn a_changed_corpus_is_prepared_again_and_an_unchanged_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = corpus(dir.path());
        let config = config(&root, TokenizerKind::Char, 0);
        let quiet = &mut Quiet;
        assert!(prepare(&config, quiet).unwrap().written);
        assert!(!prepare(&config, quiet).unwrap().written);
        // Rewritten with the same bytes (a new time): re-hashed, still fresh.
        let a = root.join("a.txt");
        let text = std::fs::read_to_string(&a).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&a, &text).unwrap();
        assert!(!prepare(&config, quiet).unwrap().written);
        // One character more: prepared again, and the new text is what training reads.
        std::fs::write(&a, text.clone() + "Z").unwrap();
        let again = prepare(&config, quiet).unwrap();
        assert!(again.written);
        assert!(again.tokenizer().unwrap().encode("Z").is_ok());
        assert_eq!(
            Corpus::load(&config).unwrap().split,
            Corpus::load_in_memory(&config).unwrap().split
        );
        // An unfinished folder (no meta.json) is prepared again too.
        std::fs::remove_file(again.dir.join("meta.json")).unwrap();
        assert!(prepare(&config, quiet).unwrap().written);
    }
}
