//! `config show`: a config with defaults and overrides resolved.

use clap::Subcommand;
use quill_train::RunConfig;
use quill_train::memory::MemoryEstimate;

use crate::args::ConfigArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print the resolved config: defaults, the file, then --set overrides.
    Show(ConfigArgs),
}

pub(crate) fn config_command(command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Show(args) => {
            let config = RunConfig::load(&args.config, &args.overrides)?;
            print!("{}", config.to_toml());
            // A comment, so the output stays a config that loads.
            let estimate = MemoryEstimate::of(&config, crate::train::ASSUMED_VOCAB);
            println!("\n# memory to train: {}", estimate.describe(&config));
            Ok(())
        }
    }
}
