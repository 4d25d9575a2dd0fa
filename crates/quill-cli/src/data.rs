//! `data fetch`: the training text, downloaded or copied, and verified. `data prepare`: the
//! text tokenized into the token files training maps (`quill_data::prepare`).

use std::path::{Path, PathBuf};

use clap::Subcommand;
use quill_data::progress::to_stderr;
use quill_data::{fetch, prepare};
use quill_train::RunConfig;

use crate::args::ConfigArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum DataCommand {
    /// Download Tiny Shakespeare (or copy a local file) and verify its size and sha256.
    Fetch {
        /// Copy this local file instead of downloading.
        #[arg(long)]
        from: Option<PathBuf>,
        #[arg(long, default_value = "data/tinyshakespeare.txt")]
        out: PathBuf,
        /// Download from this address instead of the canonical one.
        #[arg(long, default_value = fetch::TINY_SHAKESPEARE_URL, hide = true)]
        url: String,
    },
    /// Tokenize the config's data.path (a file or a directory) into train.bin, val.bin and
    /// meta.json beside it; training does this itself when they are missing or stale.
    Prepare(ConfigArgs),
}

pub(crate) fn data_command(command: DataCommand) -> anyhow::Result<()> {
    match command {
        DataCommand::Fetch { from, out, url } => fetch_command(from.as_deref(), &out, &url),
        DataCommand::Prepare(args) => {
            let config = RunConfig::load(&args.config, &args.overrides)?;
            let prepared = prepare::prepare(&config.data, &mut *to_stderr(""))?;
            let meta = &prepared.meta;
            println!(
                "{} {}: {} train and {} val tokens, {} tokenizer with {} tokens, u{} ids",
                if prepared.written {
                    "prepared"
                } else {
                    "up to date:"
                },
                prepared.dir.display(),
                meta.train_tokens,
                meta.val_tokens,
                meta.tokenizer.name(),
                meta.vocab_size,
                meta.bytes_per_token * 8
            );
            Ok(())
        }
    }
}

fn fetch_command(from: Option<&Path>, out: &Path, url: &str) -> anyhow::Result<()> {
    let expected = fetch::TINY_SHAKESPEARE;
    if fetch::is_present(out, expected) {
        println!("{} is present and verified", out.display());
        return Ok(());
    }
    match from {
        Some(from) => fetch::copy_from(from, out, expected)?,
        None => {
            println!("downloading {url}");
            fetch::download(url, out, expected)?
        }
    }
    println!(
        "{} written and verified (sha256 {})",
        out.display(),
        expected.sha256
    );
    Ok(())
}
