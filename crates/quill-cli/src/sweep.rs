//! `sweep` and `report`: many trials from one sweep file, and their summary tables and plots.

use std::path::PathBuf;

use anyhow::{Context, bail};
use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use quill_sweep::file::{PrunerKind, parse_devices};
use quill_sweep::planner::Planner;
use quill_sweep::progress::Progress;
use quill_sweep::pruner::Pruner;
use quill_sweep::report::{status_table, write_report};
use quill_sweep::scheduler::{check_study, slots};
use quill_sweep::{SweepFile, SweepOptions, run_sweep};
use quill_train::{RunConfig, interrupt};

use crate::errors::{Interrupted, whole_number};

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct SweepArgs {
    /// A sweep file, e.g. configs/sweeps/lr-dropout.toml.
    #[arg(long, required_unless_present = "status")]
    config: Option<PathBuf>,
    /// Override a key in every trial (after the sweep file's [set]).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    overrides: Vec<String>,
    /// Sweep name; trials go to ARTIFACTS/NAME/TRIAL. Default: the sweep file's stem.
    #[arg(long, value_parser = crate::args::folder_name)]
    name: Option<String>,
    /// List the trials and every dropped point, with the reason, without training.
    #[arg(long)]
    dry_run: bool,
    #[arg(long, default_value = "artifacts")]
    artifacts: PathBuf,
    /// Plot losses on a logarithmic axis.
    #[arg(long)]
    log_y: bool,
    /// Trials at once on the CPU (over `resources.workers`).
    #[arg(long, value_parser = whole_number::<usize>)]
    workers: Option<usize>,
    /// Devices to run trials on, e.g. `0,1,2,3` (over `resources.devices`).
    #[arg(long, value_name = "LIST")]
    devices: Option<String>,
    /// Print the study's table of a sweep directory (artifacts/NAME), also while another
    /// process runs it, and exit.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["config", "dry_run"])]
    status: Option<PathBuf>,
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
    pick: &dyn Fn(Option<usize>) -> anyhow::Result<B::Device>,
) -> anyhow::Result<()> {
    if let Some(dir) = &args.status {
        print!("{}", status_table(dir).map_err(anyhow::Error::msg)?);
        return Ok(());
    }
    let path = args.config.clone().expect("clap requires --config");
    let sweep = SweepFile::load(&path)?;
    let fail = |message: String| anyhow::anyhow!("{}: {message}", path.display());
    if args.workers == Some(0) {
        bail!("--workers: 0: a sweep needs at least one worker");
    }
    let devices = match &args.devices {
        Some(list) => Some(parse_devices(list).map_err(|e| anyhow::anyhow!("--devices: {e}"))?),
        None => None,
    };
    let name = match &args.name {
        Some(name) => name.clone(),
        None => {
            let stem = path
                .file_stem()
                .map_or_else(|| "sweep".into(), |s| s.to_string_lossy().into_owned());
            crate::args::folder_name(&stem).map_err(|e| {
                anyhow::anyhow!(
                    "{}: the sweep's name `{stem}`: {e}; give --name",
                    path.display()
                )
            })?
        }
    };
    let options = SweepOptions {
        dir: args.artifacts.join(&name),
        overrides: args.overrides.clone(),
        log_y: args.log_y,
        workers: args.workers,
        devices,
        runner: std::env::current_exe().context("cannot find this program's path")?,
    };
    // Everything is checked before anything is written.
    let planner = Planner::new(&sweep, &options.overrides).map_err(fail)?;
    let base_overrides: Vec<String> = sweep
        .set
        .iter()
        .chain(&options.overrides)
        .cloned()
        .collect();
    let base = RunConfig::load_unvalidated(&sweep.base, &base_overrides)?;
    let pruner = Pruner {
        spec: sweep.pruner.clone(),
        max_steps: base.train.max_steps,
        eval_interval: base.train.eval_interval,
    };
    if sweep.pruner.kind != PrunerKind::None && sweep.pruner.min_steps >= base.train.max_steps {
        return Err(fail(format!(
            "pruner.min_steps = {} is not below train.max_steps = {}: nothing could be pruned",
            sweep.pruner.min_steps, base.train.max_steps
        )));
    }
    let slots = slots(&sweep, &options);
    for device in slots
        .iter()
        .filter_map(|s| s.device)
        .collect::<std::collections::BTreeSet<_>>()
    {
        pick(Some(device)).with_context(|| format!("{}: device {device}", path.display()))?;
    }
    check_study(&options.dir, &sweep).map_err(anyhow::Error::msg)?;

    if args.dry_run {
        let trials = planner.preview().map_err(fail)?;
        println!(
            "{} trials into {} ({} at a time):",
            trials.len(),
            options.dir.display(),
            slots.len()
        );
        for trial in &trials {
            let values: Vec<String> = trial
                .values
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            println!(
                "  {}  {}  ({} steps)",
                trial.name,
                values.join(" "),
                trial.config.train.max_steps
            );
        }
        if sweep.sampler.kind == quill_sweep::file::SamplerKind::Tpe {
            let more = sweep
                .budget
                .max_trials
                .unwrap_or(0)
                .saturating_sub(trials.len());
            println!("  then {more} trials proposed by TPE from the results");
        }
        if !planner.dropped.is_empty() {
            println!("{} points dropped:", planner.dropped.len());
            for dropped in &planner.dropped {
                println!("  {}: {}", dropped.values, dropped.reason);
            }
        }
        return Ok(());
    }
    interrupt::install_handlers().context("cannot install the Ctrl-C handler")?;
    let mut progress = Progress::new(slots.len(), true);
    let outcome = run_sweep(&sweep, &planner, &pruner, &options, &mut progress)
        .map_err(anyhow::Error::msg)?;
    let runs = write_report(&sweep, &options.dir, args.log_y).map_err(anyhow::Error::msg)?;
    print!("{}", quill_report::table::markdown(&runs));
    let ended = match (&outcome.budget, outcome.interrupted) {
        (_, true) => "interrupted".to_string(),
        (Some(budget), _) => format!("budget reached: {budget}"),
        (None, _) => "done".to_string(),
    };
    println!(
        "{ended}: {} finished, {} pruned, {} failed; report in {}/summary.md",
        outcome.finished,
        outcome.pruned,
        outcome.failed,
        options.dir.display()
    );
    if outcome.interrupted {
        return Err(anyhow::Error::new(Interrupted(
            "sweep interrupted; run the same command again to resume it: every trial is resumable"
                .to_owned(),
        )));
    }
    if outcome.failed > 0 {
        bail!(
            "{} trials failed (see {}/summary.md)",
            outcome.failed,
            options.dir.display()
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
