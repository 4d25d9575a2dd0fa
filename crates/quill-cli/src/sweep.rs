//! `sweep` and `report`: many runs from one sweep file, and their summary tables and plots.

use std::path::PathBuf;

use anyhow::{Context, bail};
use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use quill_sweep::runner::{Outcome, resolve};
use quill_sweep::{SweepFile, SweepOptions, run_sweep};
use quill_train::interrupt;

use crate::errors::Interrupted;

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct SweepArgs {
    /// A sweep file, e.g. configs/sweeps/lr-dropout.toml.
    #[arg(long)]
    config: PathBuf,
    /// Override a key in every run (after the sweep file's [set]).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    overrides: Vec<String>,
    /// Sweep name; runs go to ARTIFACTS/NAME/RUN. Default: the sweep file's stem.
    #[arg(long)]
    name: Option<String>,
    /// List the runs and their resolved values without training.
    #[arg(long)]
    dry_run: bool,
    #[arg(long, default_value = "artifacts")]
    artifacts: PathBuf,
    /// Plot losses on a logarithmic axis.
    #[arg(long)]
    log_y: bool,
}

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct ReportArgs {
    /// A sweep directory (artifacts/NAME) or a run directory.
    dir: PathBuf,
    /// Plot losses on a logarithmic axis.
    #[arg(long)]
    log_y: bool,
}

pub(crate) fn sweep_command<B: AutodiffBackend>(
    args: SweepArgs,
    device: B::Device,
) -> anyhow::Result<()> {
    let sweep = SweepFile::load(&args.config)?;
    let name = args.name.clone().unwrap_or_else(|| {
        args.config
            .file_stem()
            .map_or_else(|| "sweep".into(), |s| s.to_string_lossy().into_owned())
    });
    let options = SweepOptions {
        dir: args.artifacts.join(name),
        overrides: args.overrides,
        log_y: args.log_y,
    };
    if args.dry_run {
        let runs = sweep.runs();
        println!("{} runs into {}:", runs.len(), options.dir.display());
        for run in &runs {
            let values: Vec<String> = run.overrides();
            let status = match resolve(&sweep, &options, run) {
                Ok(config) => format!("{} steps", config.train.max_steps),
                Err(e) => format!("invalid: {e}"),
            };
            println!("  {}  {}  ({status})", run.name, values.join(" "));
        }
        return Ok(());
    }
    interrupt::install_handlers().context("cannot install the Ctrl-C handler")?;
    let outcomes =
        run_sweep::<B>(&sweep, &options, device, |line| println!("{line}")).map_err(|message| {
            match interrupt::requested() {
                true => anyhow::Error::new(Interrupted(message)),
                false => anyhow::Error::msg(message),
            }
        })?;
    let failed = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
        .count();
    let runs = quill_report::collect(&options.dir)?;
    print!("{}", quill_report::table::markdown(&runs));
    println!(
        "{} runs ({failed} failed); report in {}/summary.md",
        outcomes.len(),
        options.dir.display()
    );
    if failed > 0 {
        bail!(
            "{failed} of {} runs failed (see summary.md)",
            outcomes.len()
        );
    }
    Ok(())
}

pub(crate) fn report_command(args: ReportArgs) -> anyhow::Result<()> {
    let runs = quill_report::report(&args.dir, args.log_y)?;
    print!("{}", quill_report::table::markdown(&runs));
    println!(
        "wrote {}/summary.md, summary.csv and loss plots",
        args.dir.display()
    );
    Ok(())
}
