use std::path::PathBuf;

use burn::prelude::*;
use quill_data::{DataError, Tokenizer};
use quill_model::Gpt;
use quill_train::{RunConfig, RunDir, Weights};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0} is not a run directory (it has no config.toml)")]
    NotARun(PathBuf),
    #[error(
        "{dir} has no {weights} weights ({file} is missing); train it first, or pick --weights {other}"
    )]
    NoWeights {
        dir: PathBuf,
        weights: &'static str,
        file: PathBuf,
        other: &'static str,
    },
    #[error(transparent)]
    Config(#[from] quill_train::config::ConfigError),
    #[error(transparent)]
    Vocab(#[from] DataError),
    #[error("cannot load weights {file}: {reason}")]
    Weights { file: PathBuf, reason: String },
}

/// A trained model with what it needs to read and write text.
#[derive(Debug)]
pub struct LoadedRun<B: Backend> {
    pub config: RunConfig,
    pub tokenizer: Tokenizer,
    pub model: Gpt<B>,
}

impl<B: Backend> LoadedRun<B> {
    pub fn load(run: &RunDir, weights: Weights, device: &B::Device) -> Result<Self, LoadError> {
        if !run.config().exists() {
            return Err(LoadError::NotARun(run.path.clone()));
        }
        let config = RunConfig::load(&run.config(), &[])?;
        let tokenizer = Tokenizer::load(&run.path)?;
        let file = run.weights_file(weights);
        if !file.exists() {
            return Err(LoadError::NoWeights {
                dir: run.path.clone(),
                weights: weights.name(),
                file,
                other: match weights {
                    Weights::Best => "final",
                    Weights::Final => "best",
                },
            });
        }
        let model = run
            .load_weights(
                Gpt::new(&config.model, tokenizer.len(), device),
                weights,
                device,
            )
            .map_err(|reason| LoadError::Weights { file, reason })?;
        Ok(Self {
            config,
            tokenizer,
            model,
        })
    }

    /// The run with its model's operations on `kernels` (the runner's choice).
    pub fn with_kernels(self, kernels: quill_model::Kernels) -> Self {
        Self {
            model: self.model.with_kernels(kernels),
            ..self
        }
    }
}
