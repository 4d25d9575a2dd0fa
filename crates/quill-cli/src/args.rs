//! Arguments that several commands take: a config with its `--set` overrides, and which of a
//! run's weights to use.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use quill_train::Weights;

#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    /// A TOML config, e.g. configs/cpu-small.toml.
    #[arg(long)]
    pub(crate) config: PathBuf,
    /// Override a key: --set optimizer.lr=3e-4 (repeatable, applied in order).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub(crate) overrides: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum WeightsArg {
    Best,
    Final,
}

impl From<WeightsArg> for Weights {
    fn from(weights: WeightsArg) -> Self {
        match weights {
            WeightsArg::Best => Weights::Best,
            WeightsArg::Final => Weights::Final,
        }
    }
}
