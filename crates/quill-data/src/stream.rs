//! The corpus read a block at a time, so that preparing it never holds the whole text:
//! [`TextBlocks`] yields its text as the files give it, [`SplitPieces`] re-cuts that into the
//! training and validation parts, in pieces that end where GPT-2's pre-tokenizer always
//! ends a piece, so encoding them one by one gives the ids of the whole text.
//! [`corpus_files`] lists the files a corpus is read from; it lives here, below
//! [`crate::corpus`] and [`crate::prepare`], which both read the text through this module.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::DataError;
use crate::cuts::last_safe_cut;

/// Bytes read from a file at a time.
const READ_BYTES: usize = 16 << 20;

/// The text of a corpus ([`crate::corpus::read_text`]'s, block by block): a file, or every
/// file under a folder in the byte order of their paths (hidden ones skipped), each followed
/// by a newline if it does not end with one. Errors name the file: missing, not UTF-8 (with
/// the offset of the first bad byte), or an empty corpus.
pub struct TextBlocks {
    root: PathBuf,
    files: std::vec::IntoIter<PathBuf>,
    /// A folder's files each end a line; a single file is read as it is.
    end_lines: bool,
    open: Option<OpenFile>,
    /// Whether any text came out yet (a corpus of empty files is an error).
    any_text: bool,
    /// Whether the iteration ended (after an error too).
    done: bool,
}

struct OpenFile {
    path: PathBuf,
    file: File,
    /// Bytes of the file read so far.
    offset: usize,
    /// The start of a UTF-8 character cut by the last read.
    pending: Vec<u8>,
    /// The last byte given out, if any.
    last: Option<u8>,
}

impl TextBlocks {
    /// The blocks of the corpus at `path`, a file or a folder.
    pub fn open(path: &Path) -> Result<Self, DataError> {
        Ok(Self {
            root: path.to_owned(),
            files: corpus_files(path)?.into_iter(),
            end_lines: path.is_dir(),
            open: None,
            any_text: false,
            done: false,
        })
    }

    /// The whole text in memory.
    pub fn read_all(path: &Path) -> Result<String, DataError> {
        let blocks = Self::open(path)?;
        let size = |file: &PathBuf| std::fs::metadata(file).map_or(0, |m| m.len() as usize + 1);
        let mut text = String::with_capacity(blocks.files.as_slice().iter().map(size).sum());
        for block in blocks {
            text.push_str(&block?);
        }
        Ok(text)
    }

    fn open_file(path: PathBuf) -> Result<OpenFile, DataError> {
        let file = File::open(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => DataError::CorpusMissing { path: path.clone() },
            _ => DataError::CorpusRead {
                path: path.clone(),
                source,
            },
        })?;
        Ok(OpenFile {
            path,
            file,
            offset: 0,
            pending: Vec::new(),
            last: None,
        })
    }

    /// The next text of the corpus: `Ok(None)` at its end.
    fn next_text(&mut self) -> Result<Option<String>, DataError> {
        loop {
            let open = match &mut self.open {
                Some(open) => open,
                None => match self.files.next() {
                    Some(path) => self.open.insert(Self::open_file(path)?),
                    None if self.any_text => return Ok(None),
                    None => {
                        return Err(DataError::CorpusEmpty {
                            path: self.root.clone(),
                        });
                    }
                },
            };
            let mut bytes = std::mem::take(&mut open.pending);
            let start = open.offset - bytes.len();
            let read = (&mut open.file)
                .take(READ_BYTES as u64)
                .read_to_end(&mut bytes)
                .map_err(|source| DataError::CorpusRead {
                    path: open.path.clone(),
                    source,
                })?;
            open.offset += read;
            if read == 0 {
                if !bytes.is_empty() {
                    // The file ends inside a character.
                    return Err(not_utf8(&open.path, start));
                }
                let last = open.last;
                let path = self.open.take().map(|open| open.path);
                match last {
                    None if !self.end_lines => {
                        return Err(DataError::CorpusEmpty {
                            path: path.unwrap_or_default(),
                        });
                    }
                    Some(byte) if byte != b'\n' && self.end_lines => {
                        return Ok(Some("\n".into()));
                    }
                    _ => continue,
                }
            }
            let valid = match std::str::from_utf8(&bytes) {
                Ok(_) => bytes.len(),
                // A character cut by the end of this read: kept for the next one.
                Err(e) if e.error_len().is_none() => e.valid_up_to(),
                Err(e) => return Err(not_utf8(&open.path, start + e.valid_up_to())),
            };
            open.pending = bytes.split_off(valid);
            if bytes.is_empty() {
                continue;
            }
            open.last = bytes.last().copied();
            self.any_text = true;
            return Ok(Some(String::from_utf8(bytes).expect("checked above")));
        }
    }
}

/// The files of the corpus at `path` in reading order: the file itself, or every file under
/// the folder in the byte order of their paths, hidden ones skipped.
pub fn corpus_files(path: &Path) -> Result<Vec<PathBuf>, DataError> {
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

/// The files under `dir`, hidden ones (and hidden directories) skipped, in the order the
/// folder lists them ([`corpus_files`] sorts them).
fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), DataError> {
    let entries = std::fs::read_dir(dir).map_err(|source| DataError::CorpusRead {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| DataError::CorpusRead {
            path: dir.to_owned(),
            source,
        })?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

fn not_utf8(path: &Path, offset: usize) -> DataError {
    DataError::NotUtf8 {
        path: path.to_owned(),
        offset,
    }
}

impl Iterator for TextBlocks {
    type Item = Result<String, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_text().transpose();
        self.done = !matches!(next, Some(Ok(_)));
        next
    }
}

/// Which part of the corpus a piece belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Train,
    Val,
}

/// The corpus's text as pieces of [`Part::Train`] (its first `train_chars` characters), then
/// of [`Part::Val`]; each piece is at least `size` bytes where the text allows, and ends
/// where GPT-2's pre-tokenizer always ends a piece (see [`crate::cuts::line_chunks`]),
/// at the end of its part, or at the end of the text.
pub struct SplitPieces<I> {
    blocks: I,
    size: usize,
    /// Characters of the training part not yet taken.
    train_left: usize,
    part: Part,
    pending: String,
    /// `pending` has no place to cut before this byte (searched already).
    searched: usize,
    /// The text of the other part that came with the block where the training part ends.
    val_start: Option<String>,
}

impl<I: Iterator<Item = Result<String, DataError>>> SplitPieces<I> {
    pub fn new(blocks: I, train_chars: usize, size: usize) -> Self {
        Self {
            blocks,
            size,
            train_left: train_chars,
            part: Part::Train,
            pending: String::new(),
            searched: 0,
            val_start: None,
        }
    }

    /// The pending text up to `end`, as a piece of the current part.
    fn take(&mut self, end: usize) -> (Part, String) {
        let rest = self.pending.split_off(end);
        self.searched = 0;
        (self.part, std::mem::replace(&mut self.pending, rest))
    }
}

impl<I: Iterator<Item = Result<String, DataError>>> Iterator for SplitPieces<I> {
    type Item = Result<(Part, String), DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.pending.len() >= self.size {
                match last_safe_cut(&self.pending, self.searched) {
                    Some(cut) => return Some(Ok(self.take(cut))),
                    None => self.searched = self.pending.len(),
                }
            }
            if let Some(val) = self.val_start.take() {
                // The training part is complete: its last piece, then the validation part.
                let last = self.take(self.pending.len());
                self.part = Part::Val;
                self.pending = val;
                if !last.1.is_empty() {
                    return Some(Ok(last));
                }
                continue;
            }
            let block = match self.blocks.next() {
                Some(Ok(block)) => block,
                Some(Err(e)) => return Some(Err(e)),
                None if self.pending.is_empty() => return None,
                None => return Some(Ok(self.take(self.pending.len()))),
            };
            if self.part == Part::Val {
                self.pending.push_str(&block);
                continue;
            }
            match block.char_indices().nth(self.train_left) {
                None => {
                    self.train_left -= block.chars().count();
                    self.pending.push_str(&block);
                    if self.train_left == 0 {
                        self.val_start = Some(String::new());
                    }
                }
                Some((cut, _)) => {
                    self.train_left = 0;
                    self.pending.push_str(&block[..cut]);
                    self.val_start = Some(block[cut..].to_owned());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuts::is_safe_cut;
    use crate::split::split_text;

    #[test]
    fn pieces_are_the_two_parts_cut_where_lines_are() {
        let text = "First Citizen:\nBefore we proceed, hear me.\nÇa va? 日本語 😀\nAll:\nSpeak.\n"
            .repeat(50);
        let chars: Vec<char> = text.chars().collect();
        for (val_fraction, size, block) in [(0.1, 64, 7), (0.5, 1, 1000), (0.02, 4096, 13)] {
            // Whole characters, as TextBlocks gives them.
            let blocks = chars.chunks(block).map(|c| Ok(c.iter().collect()));
            let train_chars = (chars.len() as f64 * (1.0 - val_fraction)) as usize;
            let pieces: Vec<(Part, String)> = SplitPieces::new(blocks, train_chars, size)
                .collect::<Result<_, _>>()
                .unwrap();
            let (train, val) = split_text(&text, val_fraction);
            for (part, expected) in [(Part::Train, train), (Part::Val, val)] {
                let ours: Vec<&str> = pieces
                    .iter()
                    .filter(|(p, _)| *p == part)
                    .map(|(_, s)| s.as_str())
                    .collect();
                assert_eq!(ours.concat(), expected);
                // Each cut inside a part is one GPT-2's pre-tokenizer makes too.
                let mut at = 0;
                for piece in &ours[..ours.len() - 1] {
                    at += piece.len();
                    assert!(is_safe_cut(expected.as_bytes(), at), "{part:?} at {at}");
                }
            }
            let train_pieces = pieces.iter().take_while(|(p, _)| *p == Part::Train);
            assert_eq!(
                train_pieces.count(),
                pieces.iter().filter(|(p, _)| *p == Part::Train).count()
            );
        }
    }

    #[test]
    fn blocks_give_the_files_text_and_name_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b")).unwrap();
        let long = "日本語 and more 😀\n".repeat(READ_BYTES / 20 + 7);
        std::fs::write(root.join("a.txt"), &long).unwrap();
        std::fs::write(root.join("b/c.txt"), "no newline").unwrap();
        std::fs::write(root.join("b/d.txt"), "").unwrap();
        let blocks: Vec<String> = TextBlocks::open(root)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(blocks.len() > 2, "read more than once");
        assert_eq!(blocks.concat(), format!("{long}no newline\n"));

        // Past the first read, so the offset counts the bytes before it.
        let mut bad = "ascii line\n".repeat(READ_BYTES / 10).into_bytes();
        bad[READ_BYTES + 5] = 0xff;
        std::fs::write(root.join("b/c.txt"), &bad).unwrap();
        let err = TextBlocks::read_all(root).unwrap_err().to_string();
        assert!(
            err.contains("c.txt") && err.contains("not valid UTF-8"),
            "{err}"
        );
        assert!(err.contains(&format!("offset {}", READ_BYTES + 5)), "{err}");
        std::fs::write(
            root.join("b/c.txt"),
            "cut é".as_bytes().split_last().unwrap().1,
        )
        .unwrap();
        let err = TextBlocks::read_all(root).unwrap_err().to_string();
        assert!(err.contains("c.txt") && err.contains("offset 4"), "{err}");
    }
}
