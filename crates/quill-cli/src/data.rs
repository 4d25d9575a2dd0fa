//! `data fetch`: the training text, downloaded or copied, and verified.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use quill_data::fetch;

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
}

pub(crate) fn data_command(command: DataCommand) -> anyhow::Result<()> {
    match command {
        DataCommand::Fetch { from, out, url } => fetch_command(from.as_deref(), &out, &url),
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
