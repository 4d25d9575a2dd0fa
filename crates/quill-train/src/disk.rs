//! Disk room for a run, checked before anything is written: a checkpoint's size follows from
//! the config. A run keeps `checkpoint.keep` checkpoints and the best one, and a checkpoint
//! is only deleted once a newer one is complete (`checkpoint::SafeRetention`): up to
//! `keep + 2` at once, besides the final and best weights.

use std::path::Path;

pub use quill_run::free_space;

use crate::config::RunConfig;
use crate::memory::{bytes, parameters};

/// The bytes of the files under `dir` (0 when it does not exist): what `--force` frees.
pub fn size_of_dir(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => size_of_dir(&entry.path()),
            _ => entry.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// The checkpoints a run can hold at once: the newest `checkpoint.keep`, the best one, and
/// the one being written.
pub fn checkpoints_at_once(config: &RunConfig) -> u64 {
    config.checkpoint.keep as u64 + 2
}

/// A one-line error when `free` bytes (where `dir` goes) cannot hold `count` more
/// checkpoints of the run and its final and best weights. burn's records keep the weights
/// and AdamW's two moments in f32 whatever the run computes in: 12 bytes per parameter a
/// checkpoint (the schedule's record is tiny), 4 for each of the weights files.
pub fn check_room(
    config: &RunConfig,
    vocab_size: usize,
    dir: &Path,
    free: u64,
    count: u64,
) -> Result<(), String> {
    let params = parameters(config, vocab_size);
    let each = params.saturating_mul(12);
    let weights = params.saturating_mul(8);
    let needed = each.saturating_mul(count).saturating_add(weights);
    if needed <= free {
        return Ok(());
    }
    Err(format!(
        "{} has {} free, and this run needs {}: {count} checkpoint{} of {} each and its final and best weights; free space or choose another --artifacts",
        dir.display(),
        bytes(free),
        bytes(needed),
        if count == 1 { "" } else { "s" },
        bytes(each),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_is_twelve_bytes_per_parameter_and_all_a_run_keeps_must_fit() {
        let config = RunConfig::default();
        let each = parameters(&config, 65) * 12;
        // keep = 2 by default: two kept, the best, and the one being written.
        assert_eq!(checkpoints_at_once(&config), 4);
        let needed = 4 * each + parameters(&config, 65) * 8;
        assert!(check_room(&config, 65, Path::new("runs"), needed, 4).is_ok());
        let error = check_room(&config, 65, Path::new("runs"), needed - 1, 4).unwrap_err();
        assert!(
            error.starts_with("runs has ")
                && error.contains(": 4 checkpoints of")
                && error.contains("and its final and best weights"),
            "{error}"
        );
    }

    #[test]
    fn free_space_is_read_from_the_nearest_existing_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![0u8; 1000]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), vec![0u8; 24]).unwrap();
        assert_eq!(size_of_dir(dir.path()), 1024);
        assert_eq!(size_of_dir(&dir.path().join("missing")), 0);
        #[cfg(unix)]
        assert!(free_space(&dir.path().join("not/yet/there")).is_some_and(|free| free > 0));
        // A relative path whose first part does not exist either: the working directory's.
        #[cfg(unix)]
        assert!(free_space(Path::new("surely/not/here")).is_some());
    }
}
