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

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::corpus::{DataConfig, collect_files, read_text};
use crate::split::split_text;
use crate::{DataError, Tokenizer, TokenizerKind, Tokens};

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
/// now (`progress` gets a line per stage when the corpus has [`ANNOUNCE_BYTES`] or more).
pub fn prepare(config: &DataConfig, progress: &mut dyn FnMut(&str)) -> Result<Prepared, DataError> {
    let dir = prepared_dir(config);
    let files = source_files(&config.path)?;
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
    let progress = &mut |line: &str| {
        if total >= ANNOUNCE_BYTES {
            progress(line)
        }
    };
    progress(&format!(
        "preparing {} ({} file{}, {:.1} MB) with the {} tokenizer into {}",
        config.path.display(),
        sources.len(),
        if sources.len() == 1 { "" } else { "s" },
        total as f64 / 1e6,
        config.tokenizer.name(),
        dir.display()
    ));
    let text = read_text(&config.path)?;
    let (train, val) = split_text(&text, config.val_fraction);
    let tokenizer = Tokenizer::for_corpus(config.tokenizer, config.vocab_size, &text, train)?;
    let bytes_per_token = if tokenizer.len() <= 1 << 16 { 2 } else { 4 };
    let mut meta = Meta {
        tokenizer: tokenizer.kind(),
        vocab_size: tokenizer.len(),
        val_fraction: config.val_fraction,
        bytes_per_token,
        train_tokens: 0,
        val_tokens: 0,
        train_bytes: train.len(),
        val_bytes: val.len(),
        sources,
    };
    write(&dir, &tokenizer, [train, val], &mut meta, progress)?;
    let seconds = started.elapsed().as_secs_f64();
    progress(&format!(
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

/// Writes the folder: the old `meta.json` goes first (the folder is unfinished from then on),
/// each file through a temporary file and a rename, the new `meta.json` last (with the token
/// counts, filled in here). The ids are written as they are encoded, a batch of pieces at a
/// time, so memory holds the text and one batch of ids. Two processes preparing the same
/// corpus write the same bytes, so either may finish last.
fn write(
    dir: &Path,
    tokenizer: &Tokenizer,
    [train, val]: [&str; 2],
    meta: &mut Meta,
    progress: &mut dyn FnMut(&str),
) -> Result<(), DataError> {
    let fail = |path: &Path, source: std::io::Error| DataError::PreparedWrite {
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
    let meta_path = dir.join("meta.json");
    match std::fs::remove_file(&meta_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail(&meta_path, e)),
        _ => {}
    }
    let width = meta.bytes_per_token;
    let mut counts = [0; 2];
    let mut tracker = Progress::new(train.len() + val.len());
    for ((name, text), count) in [("train.bin", train), ("val.bin", val)]
        .into_iter()
        .zip(&mut counts)
    {
        let path = dir.join(name);
        write_renamed(&path, |out| {
            tokenizer.encode_in_order(text, |ids, bytes| {
                *count += ids.len();
                if let Some(line) = tracker.advance(bytes) {
                    progress(&line);
                }
                let bytes: Vec<u8> = match width {
                    2 => ids
                        .iter()
                        .flat_map(|&id| (id as u16).to_le_bytes())
                        .collect(),
                    _ => ids.iter().flat_map(|&id| id.to_le_bytes()).collect(),
                };
                out.write_all(&bytes).map_err(|e| fail(&path, e))
            })
        })?;
    }
    [meta.train_tokens, meta.val_tokens] = counts;
    tokenizer.save(dir)?;
    let json = serde_json::to_vec_pretty(meta).expect("meta serializes");
    write_renamed(&meta_path, |out| {
        out.write_all(&json).map_err(|e| fail(&meta_path, e))
    })
}

/// Progress lines for a long preparation: at most one every 2 s, with the megabytes encoded,
/// the speed and the time left.
struct Progress {
    total: usize,
    done: usize,
    started: Instant,
    last: Instant,
}

impl Progress {
    fn new(total: usize) -> Self {
        let now = Instant::now();
        Self {
            total,
            done: 0,
            started: now,
            last: now,
        }
    }

    /// Counts `bytes` more of text encoded; a line when it is time for one.
    fn advance(&mut self, bytes: usize) -> Option<String> {
        self.done += bytes;
        if self.last.elapsed().as_secs_f64() < 2.0 || self.done >= self.total {
            return None;
        }
        self.last = Instant::now();
        let rate = self.done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        Some(format!(
            "encoded {:.0} of {:.0} MB, {:.1} MB/s, {:.0} s left",
            self.done as f64 / 1e6,
            self.total as f64 / 1e6,
            rate / 1e6,
            (self.total - self.done) as f64 / rate
        ))
    }
}

/// Writes `path` through `fill` into a temporary file (one per process) that is renamed into
/// place when complete and removed when not.
fn write_renamed(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let fail = |source| DataError::PreparedWrite {
        path: path.to_owned(),
        source,
    };
    let mut temp = path.as_os_str().to_owned();
    temp.push(format!(".partial-{}", std::process::id()));
    let temp = PathBuf::from(temp);
    let written = std::fs::File::create(&temp).map_err(fail).and_then(|file| {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        fill(&mut out)?;
        out.into_inner().map_err(|e| fail(e.into_error()))?;
        std::fs::rename(&temp, path).map_err(fail)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// The corpus's files in reading order (one for a file).
fn source_files(path: &Path) -> Result<Vec<PathBuf>, DataError> {
    if !path.is_dir() {
        if !path.exists() {
            return Err(DataError::CorpusMissing {
                path: path.to_owned(),
            });
        }
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    collect_files(path, &mut files)?;
    files.sort();
    Ok(files)
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
        for (kind, size) in [
            (TokenizerKind::Char, 0),
            (TokenizerKind::Gpt2, 0),
            (TokenizerKind::Bpe, 300),
        ] {
            let config = config(&root, kind, size);
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
        let quiet = &mut |_: &str| {};
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
