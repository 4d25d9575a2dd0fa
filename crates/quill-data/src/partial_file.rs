//! Files that appear whole or not at all: written under a temporary name, renamed into
//! place when complete (`data prepare`'s token files and `meta.json`), and the lock that lets
//! a later prepare remove what a killed one left half-written.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::DataError;

/// The error of a prepared file that could not be written.
pub(crate) fn write_error(path: &Path, source: std::io::Error) -> DataError {
    DataError::PreparedWrite {
        path: path.to_owned(),
        source,
    }
}

/// A file written under a temporary name (one per process), renamed into place by
/// [`PartialFile::commit`] and removed when dropped before that.
pub(crate) struct PartialFile {
    path: PathBuf,
    temp: PathBuf,
    out: Option<std::io::BufWriter<std::fs::File>>,
}

impl PartialFile {
    pub(crate) fn create(path: PathBuf) -> Result<Self, DataError> {
        let mut temp = path.as_os_str().to_owned();
        temp.push(format!(".partial-{}", std::process::id()));
        let temp = PathBuf::from(temp);
        let file = std::fs::File::create(&temp).map_err(|e| write_error(&path, e))?;
        Ok(Self {
            out: Some(std::io::BufWriter::with_capacity(1 << 20, file)),
            path,
            temp,
        })
    }

    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> Result<(), DataError> {
        let out = self.out.as_mut().expect("open until committed");
        out.write_all(bytes).map_err(|e| write_error(&self.path, e))
    }

    pub(crate) fn commit(mut self) -> Result<(), DataError> {
        let out = self.out.take().expect("open until committed");
        out.into_inner()
            .map_err(|e| write_error(&self.path, e.into_error()))?;
        std::fs::rename(&self.temp, &self.path).map_err(|e| write_error(&self.path, e))?;
        self.temp = PathBuf::new();
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            self.out = None;
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Held (shared) by every process writing partial files into a folder, so that a process that
/// finds it free knows every partial file there is a killed writer's. The OS releases it when
/// its holder dies, however it dies.
pub(crate) struct WritersLock {
    _file: std::fs::File,
}

const WRITERS_LOCK: &str = "prepare.lock";

impl WritersLock {
    /// Joins the writers of `dir`; when no other writer is there, first removes the partial
    /// files (`NAME.partial-PID`) that killed ones left.
    pub(crate) fn join(dir: &Path) -> Result<Self, DataError> {
        let path = dir.join(WRITERS_LOCK);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| write_error(&path, e))?;
        if file.try_lock().is_ok() {
            remove_stale_partials(dir);
            file.unlock().map_err(|e| write_error(&path, e))?;
        }
        // Between the unlock and here another writer may remove partial files: none of ours
        // exist yet.
        file.lock_shared().map_err(|e| write_error(&path, e))?;
        Ok(Self { _file: file })
    }
}

/// Removes `dir`'s files named `NAME.partial-PID`, best effort.
fn remove_stale_partials(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let stale = name
            .rsplit_once(".partial-")
            .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_folder_loses_its_partial_files_and_a_busy_one_keeps_them() {
        let dir = std::env::temp_dir().join(format!("quill-partials-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let left = dir.join("train.bin.partial-4242");
        let kept = ["train.bin", "notes.partial-draft", "meta.json"];
        std::fs::write(&left, b"half").unwrap();
        for name in kept {
            std::fs::write(dir.join(name), b"x").unwrap();
        }
        let busy = WritersLock::join(&dir).unwrap();
        std::fs::write(&left, b"half").unwrap();
        // Another writer is at work (`busy`): its partial files stay.
        let second = WritersLock::join(&dir).unwrap();
        assert!(left.exists());
        drop((busy, second));
        let _third = WritersLock::join(&dir).unwrap();
        assert!(!left.exists());
        for name in kept {
            assert!(dir.join(name).exists(), "{name} was removed");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
