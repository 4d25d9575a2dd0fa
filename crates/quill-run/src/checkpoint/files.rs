//! Files written whole or not at all, and what a kill in the middle of one leaves behind.

use std::io::Write;
use std::path::Path;

use crate::run_dir::RunDir;

pub(super) fn sync_file(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

/// Makes a rename durable. Best effort: not every platform can open a directory.
pub(super) fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(dir) = std::fs::File::open(dir)
    {
        let _ = dir.sync_all();
    }
}

/// Writes `contents` to `path` through a synced temporary file and a rename, so a reader (or a
/// run resumed after a power cut) never sees a half-written file.
/// A failed write (a full disk) leaves `path` as it was and removes the temporary file.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed?;
    sync_dir(path);
    Ok(())
}

/// Removes what writes cut short by a kill left behind (their temporary files).
pub fn remove_partial_files(run: &RunDir) {
    let Ok(entries) = std::fs::read_dir(run.checkpoints()) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with("partial-") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Test hooks: `QUILL_CRASH_WRITING=model-2` aborts the process halfway through writing
/// `model-2.mpk` (after its temporary file, before the rename), as a kill or power cut would.
/// Only in builds with the `fault-injection` feature, which the tests turn on: a user's
/// binary has no variable that can make it abort.
#[cfg(feature = "fault-injection")]
pub(super) mod fault_injection {
    use std::path::Path;

    pub fn maybe_crash(partial: &Path, target: &Path) {
        let Ok(name) = std::env::var("QUILL_CRASH_WRITING") else {
            return;
        };
        if target.file_stem().and_then(|s| s.to_str()) == Some(name.as_str()) {
            if let Ok(bytes) = std::fs::read(partial) {
                let _ = std::fs::write(partial, &bytes[..bytes.len() / 2]);
            }
            std::process::abort();
        }
    }

    /// Test hook: `QUILL_DISK_FULL_WRITING=optim-3` fails the write of `optim-3.mpk` halfway
    /// with the error of a full disk.
    pub fn disk_full(partial: &Path, target: &Path) -> std::io::Result<()> {
        let Ok(name) = std::env::var("QUILL_DISK_FULL_WRITING") else {
            return Ok(());
        };
        if target.file_stem().and_then(|s| s.to_str()) == Some(name.as_str()) {
            if let Ok(bytes) = std::fs::read(partial) {
                let _ = std::fs::write(partial, &bytes[..bytes.len() / 2]);
            }
            return Err(std::io::Error::from_raw_os_error(28));
        }
        Ok(())
    }
}
