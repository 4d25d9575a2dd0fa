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

use burn::prelude::*;
use burn::record::{DefaultRecorder, Recorder};
use quill_model::Gpt;

/// Which weights of a run to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
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

    /// Saves `gpt` as the run's `weights` file, through a temporary file and a rename.
    pub fn save_weights<B: Backend>(&self, gpt: &Gpt<B>, weights: Weights) -> Result<(), String> {
        let target = self.weights_file(weights);
        let partial = self.path.join(format!("{}-partial", weights.name()));
        let describe = |e: &dyn std::fmt::Display| format!("{}: {e}", target.display());
        gpt.clone()
            .save_file(&partial, &DefaultRecorder::new())
            .map_err(|e| describe(&e))?;
        // Test hook (the `fault-injection` feature): `QUILL_DISK_FULL_WRITING=final`.
        #[cfg(feature = "fault-injection")]
        if std::env::var("QUILL_DISK_FULL_WRITING").is_ok_and(|name| name == weights.name()) {
            let _ = std::fs::remove_file(partial.with_extension("mpk"));
            return Err(describe(&std::io::Error::from_raw_os_error(28)));
        }
        std::fs::rename(partial.with_extension("mpk"), &target).map_err(|e| describe(&e))
    }

    /// Loads the run's `weights` file into `template` (a model built from the run's config),
    /// checking that every parameter fits.
    pub fn load_weights<B: Backend>(
        &self,
        template: Gpt<B>,
        weights: Weights,
        device: &B::Device,
    ) -> Result<Gpt<B>, String> {
        let record =
            Recorder::<B>::load(&DefaultRecorder::new(), self.weights_stem(weights), device)
                .map_err(|e| format!("it is truncated or corrupted ({e})").replace('\n', " "))?;
        template.load_checked(record).map_err(|reason| {
            format!("{reason}; they do not match the run's config.toml and vocab.json")
        })
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
