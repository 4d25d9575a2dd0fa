//! One process at a time in a folder: an exclusive lock on a file in it (std's `File::try_lock`,
//! `flock` on Unix), held as long as a [`FolderLock`] lives.
//!
//! The operating system drops the lock when its holder exits, however it exits, so a lock left
//! by a killed process never blocks. The holder writes its process id into the file, which the
//! refusal names. A run folder's lock is [`RUN_LOCK`]; a sweep's study has its own.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file of a run folder.
pub const RUN_LOCK: &str = ".lock";
/// The lock a sweep holds in the folder of a trial it runs.
pub const SWEEP_LOCK: &str = ".sweep-lock";

/// An exclusive lock on a file, released when dropped.
#[derive(Debug)]
pub struct FolderLock {
    file: File,
    pub path: PathBuf,
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it; its process id as it wrote it, if readable.
    #[error("{} is in use by process {}", .folder.display(), .holder.map_or("(unknown)".into(), |p| p.to_string()))]
    Held {
        folder: PathBuf,
        holder: Option<u32>,
    },
    #[error("{}: {message}", .path.display())]
    File { path: PathBuf, message: String },
}

fn open(path: &Path) -> Result<File, LockError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| LockError::File {
            path: path.to_owned(),
            message: format!("cannot open the lock file: {e}"),
        })
}

fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

impl FolderLock {
    /// Takes the lock file `name` in `folder` (created, with the folder, when missing) without
    /// waiting: an error names the holder when another process has it.
    pub fn try_take(folder: &Path, name: &str) -> Result<Self, LockError> {
        std::fs::create_dir_all(folder).map_err(|e| LockError::File {
            path: folder.to_owned(),
            message: e.to_string(),
        })?;
        let path = folder.join(name);
        let mut file = open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    folder: folder.to_owned(),
                    holder: holder(&mut file),
                });
            }
            Err(TryLockError::Error(e)) => {
                return Err(LockError::File {
                    path,
                    message: format!("cannot lock: {e}"),
                });
            }
        }
        // Only the holder writes; a reader sees the previous holder's id or this one's.
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}", std::process::id()))
            .and_then(|()| file.flush());
        Ok(Self { file, path })
    }

    /// Takes the lock file `path`, waiting for its holder to let go.
    pub fn wait_for(path: &Path) -> Result<Self, LockError> {
        let file = open(path)?;
        file.lock().map_err(|e| LockError::File {
            path: path.to_owned(),
            message: format!("cannot lock: {e}"),
        })?;
        Ok(Self {
            file,
            path: path.to_owned(),
        })
    }

    /// The run folder's lock (see [`RUN_LOCK`]).
    pub fn run(folder: &Path) -> Result<Self, LockError> {
        Self::try_take(folder, RUN_LOCK)
    }

    /// Whether another process holds `name` in `folder` now (a missing file is free).
    pub fn is_held(folder: &Path, name: &str) -> bool {
        let path = folder.join(name);
        if !path.exists() {
            return false;
        }
        match open(&path) {
            Ok(file) => matches!(file.try_lock(), Err(TryLockError::WouldBlock)),
            Err(_) => false,
        }
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Whether `folder` holds nothing but lock files: a run that was refused before it started
/// (a bad corpus, say) leaves only its lock, and that folder is no run.
pub fn holds_only_locks(folder: &Path) -> bool {
    std::fs::read_dir(folder).is_ok_and(|entries| {
        entries
            .flatten()
            .all(|e| e.file_name() == RUN_LOCK || e.file_name() == SWEEP_LOCK)
    })
}

/// Removes `folder` on drop when it still holds nothing but lock files: a command that made
/// the folder to lock it and then failed before writing anything leaves nothing behind.
#[derive(Debug)]
pub struct RemoveIfBare(pub PathBuf);

impl Drop for RemoveIfBare {
    fn drop(&mut self) {
        if holds_only_locks(&self.0) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Removes everything in `folder` but its lock files (what `train --force` does while it holds
/// the lock: removing the folder would remove the lock with it).
pub fn clear_folder(folder: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        if entry.file_name() == RUN_LOCK || entry.file_name() == SWEEP_LOCK {
            continue;
        }
        match entry.file_type()?.is_dir() {
            true => std::fs::remove_dir_all(entry.path())?,
            false => std::fs::remove_file(entry.path())?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_refuses_a_second_taker_and_frees_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let first = FolderLock::run(&run).unwrap();
        assert!(FolderLock::is_held(&run, RUN_LOCK));
        let refused = FolderLock::run(&run).unwrap_err().to_string();
        assert_eq!(
            refused,
            format!(
                "{} is in use by process {}",
                run.display(),
                std::process::id()
            )
        );
        drop(first);
        assert!(!FolderLock::is_held(&run, RUN_LOCK));
        FolderLock::run(&run).unwrap();
    }

    #[test]
    fn clearing_keeps_only_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let _lock = FolderLock::run(dir.path()).unwrap();
        std::fs::create_dir_all(dir.path().join("checkpoint/step-3")).unwrap();
        std::fs::write(dir.path().join("metrics.csv"), "x").unwrap();
        clear_folder(dir.path()).unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [RUN_LOCK]);
    }
}
