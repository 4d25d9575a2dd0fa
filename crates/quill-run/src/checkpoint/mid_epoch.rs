//! Checkpoints of a run stopped mid-epoch (Ctrl-C): `checkpoint/step-S/`, complete once its
//! `position.json` is written.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::write_atomic;
use crate::run_dir::RunDir;

/// Where a run stopped mid-epoch: `step` optimizer steps are done. Saved as `position.json`
/// next to the model, optimizer and scheduler records, after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MidEpoch {
    pub step: usize,
}

impl MidEpoch {
    pub fn dir(run: &RunDir, step: usize) -> PathBuf {
        run.checkpoints().join(format!("step-{step}"))
    }

    fn position(dir: &Path) -> PathBuf {
        dir.join("position.json")
    }

    /// Marks the records already written in `dir` as a complete checkpoint, then removes the
    /// run's older mid-epoch checkpoints.
    pub fn commit(self, run: &RunDir) -> std::io::Result<()> {
        let dir = Self::dir(run, self.step);
        let json = serde_json::to_string(&self).expect("a position serializes");
        write_atomic(&Self::position(&dir), json.as_bytes())?;
        Self::remove_older_than(run, self.step);
        Ok(())
    }

    /// The newest complete mid-epoch checkpoint of `run`.
    pub fn latest(run: &RunDir) -> Option<Self> {
        Self::all(run)
            .into_iter()
            .filter_map(|(_, dir)| {
                let text = std::fs::read_to_string(Self::position(&dir)).ok()?;
                serde_json::from_str::<Self>(&text).ok()
            })
            .max_by_key(|m| m.step)
    }

    /// Removes mid-epoch checkpoints (complete or not) from before step `step`.
    pub fn remove_older_than(run: &RunDir, step: usize) {
        for (old, dir) in Self::all(run) {
            if old < step {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    fn all(run: &RunDir) -> Vec<(usize, PathBuf)> {
        let Ok(entries) = std::fs::read_dir(run.checkpoints()) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| {
                let e = e.ok()?;
                let step = e
                    .file_name()
                    .to_str()?
                    .strip_prefix("step-")?
                    .parse()
                    .ok()?;
                Some((step, e.path()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_committed_mid_epoch_checkpoints_count() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        std::fs::create_dir_all(MidEpoch::dir(&run, 30)).unwrap();
        assert_eq!(MidEpoch::latest(&run), None);
        std::fs::create_dir_all(MidEpoch::dir(&run, 10)).unwrap();
        MidEpoch { step: 10 }.commit(&run).unwrap();
        assert_eq!(MidEpoch::latest(&run), Some(MidEpoch { step: 10 }));
        std::fs::create_dir_all(MidEpoch::dir(&run, 40)).unwrap();
        MidEpoch { step: 40 }.commit(&run).unwrap();
        assert_eq!(MidEpoch::latest(&run), Some(MidEpoch { step: 40 }));
        // Older ones, committed or not, are gone.
        assert!(!MidEpoch::dir(&run, 10).exists());
        assert!(!MidEpoch::dir(&run, 30).exists());
    }
}
