//! A split's token ids, in memory or memory-mapped from a prepared token file (`train.bin`,
//! `val.bin`: little-endian `u16` when the vocabulary fits, else `u32`). Mapped, only the pages
//! that windows touch are read, so resident memory does not grow with the corpus.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;

/// Token ids; cloning shares them.
#[derive(Clone)]
pub struct Tokens(Repr);

#[derive(Clone)]
enum Repr {
    Memory(Arc<[u32]>),
    Mapped { map: Arc<Mmap>, width: usize },
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Repr::Memory(ids) => write!(f, "Tokens(memory, {})", ids.len()),
            Repr::Mapped { width, .. } => {
                write!(f, "Tokens(mapped u{}, {})", width * 8, self.len())
            }
        }
    }
}

impl PartialEq for Tokens {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && (0..self.len()).all(|i| self.get(i) == other.get(i))
    }
}

impl From<Vec<u32>> for Tokens {
    fn from(ids: Vec<u32>) -> Self {
        Tokens(Repr::Memory(ids.into()))
    }
}

impl Tokens {
    /// Maps the token file at `path`, of ids `width` bytes wide (2 or 4).
    pub fn map(path: &Path, width: usize) -> std::io::Result<Self> {
        let file = File::open(path)?;
        // SAFETY: the map is read-only and quill never writes a token file it has mapped; a
        // prepared file is replaced by renaming a new one over it, which leaves this mapping
        // on the old contents. Another program truncating the file while it is mapped would
        // fault the process (SIGBUS), as with any memory-mapped reader.
        #[allow(unsafe_code)]
        let map = unsafe { Mmap::map(&file)? };
        if !matches!(width, 2 | 4) || map.len() % width != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} bytes is not a whole number of {width}-byte ids",
                    map.len()
                ),
            ));
        }
        Ok(Tokens(Repr::Mapped {
            map: Arc::new(map),
            width,
        }))
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Memory(ids) => ids.len(),
            Repr::Mapped { map, width } => map.len() / width,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The id at `index` (which must be below [`len`](Self::len)).
    pub fn get(&self, index: usize) -> u32 {
        match &self.0 {
            Repr::Memory(ids) => ids[index],
            Repr::Mapped { map, width: 2 } => {
                u16::from_le_bytes([map[2 * index], map[2 * index + 1]]) as u32
            }
            Repr::Mapped { map, .. } => {
                let at = 4 * index;
                u32::from_le_bytes([map[at], map[at + 1], map[at + 2], map[at + 3]])
            }
        }
    }

    /// Appends ids `start..start + len` to `out` as `i32` (a batch's tensor data).
    pub fn extend_i32(&self, start: usize, len: usize, out: &mut Vec<i32>) {
        match &self.0 {
            Repr::Memory(ids) => out.extend(ids[start..start + len].iter().map(|&t| t as i32)),
            Repr::Mapped { map, width: 2 } => out.extend(
                map[2 * start..2 * (start + len)]
                    .chunks_exact(2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]) as i32),
            ),
            Repr::Mapped { map, .. } => out.extend(
                map[4 * start..4 * (start + len)]
                    .chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i32),
            ),
        }
    }

    /// Every id, in memory (tests, small splits).
    pub fn to_vec(&self) -> Vec<u32> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_files_read_as_the_ids_written() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<u32> = (0..1000).map(|i| (i * 7919) % 65_000).collect();
        for width in [2usize, 4] {
            let path = dir.path().join(format!("u{width}.bin"));
            let bytes: Vec<u8> = ids
                .iter()
                .flat_map(|&id| match width {
                    2 => (id as u16).to_le_bytes().to_vec(),
                    _ => id.to_le_bytes().to_vec(),
                })
                .collect();
            std::fs::write(&path, bytes).unwrap();
            let mapped = Tokens::map(&path, width).unwrap();
            let memory = Tokens::from(ids.clone());
            assert_eq!(mapped, memory);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            mapped.extend_i32(13, 100, &mut a);
            memory.extend_i32(13, 100, &mut b);
            assert_eq!(a, b);
        }
        let odd = dir.path().join("odd.bin");
        std::fs::write(&odd, [1u8, 2, 3]).unwrap();
        let err = Tokens::map(&odd, 2).unwrap_err().to_string();
        assert!(err.contains("whole number"), "{err}");
    }
}
