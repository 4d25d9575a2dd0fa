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

/// A `--name`: one folder name under `--artifacts`, never a path (`../x`, `/tmp/x`), so a run
/// cannot be written, or `--force` remove anything, outside it; and one that Windows, macOS
/// and Linux all take, so a run folder can be copied anywhere.
pub(crate) fn folder_name(name: &str) -> Result<String, String> {
    let stem = name.split('.').next().unwrap_or(name).to_ascii_uppercase();
    let reserved = ["CON", "PRN", "AUX", "NUL"].contains(&stem.as_str())
        || (stem.len() == 4
            && (stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.as_bytes()[3].is_ascii_digit());
    let problem = if name.is_empty() {
        Some("it is empty".to_owned())
    } else if name.starts_with('.') {
        Some("it starts with `.` (hidden, or a folder above --artifacts)".to_owned())
    } else if let Some(c) = name.chars().find(|c| "/\\<>:\"|?*".contains(*c)) {
        Some(format!(
            "it holds `{c}`, a path separator or a character Windows refuses"
        ))
    } else if name.chars().any(char::is_control) {
        Some("it holds a control character".to_owned())
    } else if name.ends_with(['.', ' ']) {
        Some("it ends with `.` or a space, which Windows drops".to_owned())
    } else if reserved {
        Some(format!("`{stem}` is a device name on Windows"))
    } else if name.len() > 200 {
        Some(format!("it has {} bytes; at most 200", name.len()))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(format!(
            "{problem}; a name is one folder name under --artifacts (letters, digits, `-_.=,+`)"
        )),
        None => Ok(name.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::folder_name;

    #[test]
    fn names_are_folder_names() {
        for name in [
            "x",
            "lr=0.003_dropout=0.1",
            "run.2",
            "tiny-20261207-1530",
            "console",
            "com",
        ] {
            assert_eq!(folder_name(name).as_deref(), Ok(name));
        }
        for name in [
            "", ".", "..", ".hidden", "../../x", "/tmp/x", "a/b", "a\\b", "a\nb", "a:b", "a?",
            "x.", "x ", "con", "NUL.txt", "com1", "lpt9",
        ] {
            assert!(folder_name(name).is_err(), "{name:?} was taken");
        }
    }
}
