//! The layout of a run directory, `artifacts/NAME/`:
//!
//! ```text
//! config.toml      the resolved config          vocab.json     the vocabulary
//! metrics.csv      one row per evaluation       summary.json   written when the run ends
//! best.mpk         weights with the best val loss
//! final.mpk        weights after the last step
//! checkpoint/      burn-train's model-E / optim-E / scheduler-E records, per epoch E, and
//!                  step-S/ when the run stopped mid-epoch (see `checkpoint`)
//! train/ valid/    burn-train's per-batch metric logs
//! ```

use std::path::PathBuf;

/// Which weights of a run to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    Best,
    Final,
}

impl Weights {
    pub fn name(self) -> &'static str {
        match self {
            Weights::Best => "best",
            Weights::Final => "final",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn config(&self) -> PathBuf {
        self.path.join("config.toml")
    }

    pub fn vocab(&self) -> PathBuf {
        self.path.join("vocab.json")
    }

    pub fn metrics(&self) -> PathBuf {
        self.path.join("metrics.csv")
    }

    pub fn summary(&self) -> PathBuf {
        self.path.join("summary.json")
    }

    pub fn checkpoints(&self) -> PathBuf {
        self.path.join("checkpoint")
    }

    /// The weights file without its extension (burn's recorders add `.mpk`).
    pub fn weights_stem(&self, weights: Weights) -> PathBuf {
        self.path.join(weights.name())
    }

    pub fn weights_file(&self, weights: Weights) -> PathBuf {
        self.path.join(format!("{}.mpk", weights.name()))
    }

    /// The checkpoint of epoch `epoch` for `part` (`model`, `optim`, `scheduler`).
    pub fn checkpoint_file(&self, part: &str, epoch: usize) -> PathBuf {
        self.checkpoints().join(format!("{part}-{epoch}.mpk"))
    }

    /// The newest epoch whose model, optimizer and scheduler checkpoints are all on disk.
    pub fn latest_checkpoint(&self) -> Option<usize> {
        let entries = std::fs::read_dir(self.checkpoints()).ok()?;
        entries
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_prefix("model-")?
                    .strip_suffix(".mpk")?
                    .parse::<usize>()
                    .ok()
            })
            .filter(|&epoch| {
                ["optim", "scheduler"]
                    .iter()
                    .all(|part| self.checkpoint_file(part, epoch).exists())
            })
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_checkpoint_needs_all_three_parts() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        assert_eq!(run.latest_checkpoint(), None);
        std::fs::create_dir_all(run.checkpoints()).unwrap();
        for (part, epoch) in [
            ("model", 1),
            ("optim", 1),
            ("scheduler", 1),
            ("model", 2),
            ("optim", 2),
        ] {
            std::fs::write(run.checkpoint_file(part, epoch), b"x").unwrap();
        }
        assert_eq!(run.latest_checkpoint(), Some(1));
    }
}
