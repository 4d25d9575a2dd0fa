use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use burn::tensor::backend::AutodiffBackend;
use clap::{Args, Parser, Subcommand, ValueEnum};
use quill_data::fetch;
use quill_generate::{LoadedRun, SampleOptions};
use quill_train::training::TrainOptions;
use quill_train::{RunConfig, RunDir, TrainError, Weights, interrupt, train};

use quill_sweep::runner::{Outcome, resolve};
use quill_sweep::{SweepFile, SweepOptions, run_sweep};

use crate::Runner;
use crate::bench::{BenchOptions, bench};
use crate::errors::Interrupted;
use crate::generate::{interactive, print_samples};
use crate::interop::{
    EvalArgs, ExportArgs, ImportArgs, eval_command, export_command, import_command,
};
use crate::precision::use_precision;

/// Train and sample character-level GPT models.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Which GPU, on a machine with several (CUDA: the device ordinal; wgpu: discrete GPUs
    /// first, then integrated, virtual and software adapters). Default: the first.
    #[arg(long, global = true, value_name = "N")]
    pub device: Option<usize>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a model; writes artifacts/NAME/.
    Train(TrainArgs),
    /// Continue a prompt with a trained run.
    Generate(GenerateArgs),
    /// Measure training and sampling speed at a config's shapes; prints one JSON line.
    Bench(BenchArgs),
    /// Train every run of a sweep file into artifacts/NAME/RUN/, then write the report.
    Sweep(SweepArgs),
    /// Write summary.md, summary.csv and loss plots for a sweep or run directory.
    Report(ReportArgs),
    /// Mean cross-entropy of a run's weights over fixed, seeded windows of a split.
    Eval(EvalArgs),
    /// Write a run's weights, model config and vocabulary to a safetensors file.
    Export(ExportArgs),
    /// Make a run directory from a nanoGPT checkpoint or an exported safetensors file.
    Import(ImportArgs),
    /// Get the training text.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Inspect configs.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// A TOML config, e.g. configs/cpu-small.toml.
    #[arg(long)]
    config: PathBuf,
    /// Override a key: --set optimizer.lr=3e-4 (repeatable, applied in order).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    overrides: Vec<String>,
}

#[derive(Debug, Args)]
struct TrainArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Run name; the run goes to ARTIFACTS/NAME. Default: the config's stem and a timestamp.
    #[arg(long)]
    name: Option<String>,
    /// Continue the run from its newest checkpoint (the run's own config.toml, plus --set).
    /// Without --name, the newest run of this config.
    #[arg(long, conflicts_with = "force")]
    resume: bool,
    /// Delete an existing run directory of the same name and start over.
    #[arg(long)]
    force: bool,
    /// Where run directories go.
    #[arg(long, default_value = "artifacts")]
    artifacts: PathBuf,
    /// Start from another run's weights (fine-tuning); optimizer and schedule start fresh.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "resume")]
    init_from: Option<PathBuf>,
    /// Which weights of the --init-from run.
    #[arg(long, value_enum, requires = "init_from")]
    weights: Option<WeightsArg>,
    /// Show burn-train's dashboard instead of progress lines (in a terminal only). The
    /// dashboard takes the keyboard: stop the run there with `q`, not Ctrl-C.
    #[arg(long)]
    dashboard: bool,
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

#[derive(Debug, Args)]
struct GenerateArgs {
    /// The run directory, e.g. artifacts/cpu-small-20260101-120000.
    #[arg(long)]
    run: PathBuf,
    /// Text to continue; empty starts from a newline.
    #[arg(long, default_value = "")]
    prompt: String,
    #[arg(long, default_value_t = 500)]
    max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy (always the most likely character).
    #[arg(long, default_value_t = 0.8)]
    temperature: f64,
    /// Sample only among the K most likely characters.
    #[arg(long)]
    top_k: Option<usize>,
    /// Sample only among the most likely characters whose probabilities add up to P.
    #[arg(long)]
    top_p: Option<f64>,
    /// Seed of the first sample; sample i uses SEED + i.
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// How many samples, separated by a line of dashes.
    #[arg(long, default_value_t = 1)]
    num_samples: usize,
    /// Re-run the whole context for every character instead of using the key/value cache.
    #[arg(long)]
    no_cache: bool,
    /// Read prompts from stdin, one per line, and continue each, until end of input.
    #[arg(long, conflicts_with_all = ["prompt", "num_samples"])]
    interactive: bool,
    /// Which weights to load.
    #[arg(long, value_enum, default_value = "best")]
    weights: WeightsArg,
}

#[derive(Debug, Args)]
struct SweepArgs {
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
struct ReportArgs {
    /// A sweep directory (artifacts/NAME) or a run directory.
    dir: PathBuf,
    /// Plot losses on a logarithmic axis.
    #[arg(long)]
    log_y: bool,
}

#[derive(Debug, Args)]
struct BenchArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Timed training steps (forward, backward, optimizer), run back to back in up to five
    /// groups; the median of the groups' ms per step is reported.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Untimed steps first (allocation, kernel compilation, autotuning).
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Size of the CPU thread pool (rayon) for CPU backends.
    #[arg(long)]
    threads: Option<usize>,
    /// Peak FLOP/s of the device, for the model FLOPs utilization (`mfu`), e.g. 989e12.
    #[arg(long)]
    peak_flops: Option<f64>,
    /// Only measure sampling.
    #[arg(long)]
    generate_only: bool,
    /// Characters sampled for the generation figures.
    #[arg(long, default_value_t = 500)]
    generate_tokens: usize,
}

#[derive(Debug, Subcommand)]
enum DataCommand {
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

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the resolved config: defaults, the file, then --set overrides.
    Show(ConfigArgs),
}

/// Runs the command; `device` opens the device for those that compute.
pub fn run<B: AutodiffBackend>(
    cli: Cli,
    runner: &Runner,
    device: impl FnOnce() -> anyhow::Result<B::Device>,
) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(args) => train_command::<B>(args, runner, device()?),
        Command::Generate(args) => generate_command::<B>(args, device()?),
        Command::Sweep(args) => sweep_command::<B>(args, device()?),
        Command::Eval(args) => eval_command::<B::InnerBackend>(args, &device()?),
        Command::Export(args) => export_command::<B::InnerBackend>(args, &device()?),
        Command::Import(args) => import_command::<B::InnerBackend>(args, &device()?),
        Command::Report(args) => {
            let runs = quill_report::report(&args.dir, args.log_y)?;
            print!("{}", quill_report::table::markdown(&runs));
            println!(
                "wrote {}/summary.md, summary.csv and loss plots",
                args.dir.display()
            );
            Ok(())
        }
        Command::Bench(args) => {
            let config = RunConfig::load(&args.config.config, &args.config.overrides)?;
            let options = BenchOptions {
                steps: args.steps.max(1),
                warmup: args.warmup,
                threads: args.threads,
                peak_flops: args.peak_flops,
                generate_only: args.generate_only,
                generate_tokens: args.generate_tokens,
            };
            let name = args.config.config.display().to_string();
            let device = device()?;
            use_precision::<B>(&device, config.train.precision)?;
            let report = bench::<B>(&config, &name, &options, runner, device)?;
            println!("{report}");
            Ok(())
        }
        Command::Data {
            command: DataCommand::Fetch { from, out, url },
        } => fetch_command(from.as_deref(), &out, &url),
        Command::Config {
            command: ConfigCommand::Show(args),
        } => {
            let config = RunConfig::load(&args.config, &args.overrides)?;
            print!("{}", config.to_toml());
            Ok(())
        }
    }
}

fn train_command<B: AutodiffBackend>(
    args: TrainArgs,
    runner: &Runner,
    device: B::Device,
) -> anyhow::Result<()> {
    let stem = args
        .config
        .config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    let (run, config) = if args.resume {
        let run = match &args.name {
            Some(name) => RunDir::new(args.artifacts.join(name)),
            None => newest_run(&args.artifacts, &stem)?,
        };
        if !run.config().exists() {
            bail!(
                "--resume: {} is not a run directory (no config.toml)",
                run.path.display()
            );
        }
        let config = RunConfig::load(&run.config(), &args.config.overrides)?;
        (run, config)
    } else {
        let mut config = RunConfig::load(&args.config.config, &args.config.overrides)?;
        if let Some(source) = &args.init_from {
            config.init.from = source.display().to_string();
        }
        if let Some(weights) = args.weights {
            config.init.weights = weights.into();
        }
        let name = args
            .name
            .clone()
            .unwrap_or_else(|| format!("{stem}-{}", timestamp()));
        let run = RunDir::new(args.artifacts.join(name));
        if run.path.exists() {
            if !args.force {
                bail!(
                    "run directory {} already exists; use --resume to continue it or --force to delete it and start over",
                    run.path.display()
                );
            }
            std::fs::remove_dir_all(&run.path)
                .with_context(|| format!("cannot remove {}", run.path.display()))?;
        }
        (run, config)
    };

    println!(
        "{} {} on {}: {} ({} steps)",
        runner.name,
        if args.resume { "resuming" } else { "training" },
        runner.backend,
        run.path.display(),
        config.train.max_steps
    );
    let options = TrainOptions {
        run: run.clone(),
        config,
        resume: args.resume,
        dashboard: args.dashboard,
    };
    interrupt::install_handlers().context("cannot install the Ctrl-C handler")?;
    use_precision::<B>(&device, options.config.train.precision)?;
    let lr = options.config.optimizer.lr;
    let run_name = run.path.file_name().map_or_else(
        || run.path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let summary = train::<B>(options, device).map_err(|error| {
        // The command that goes on from the newest checkpoint, or that starts over without one.
        let next = |has_checkpoint: bool| {
            let (config, how) = match has_checkpoint {
                true => (run.config(), "--resume"),
                false => (args.config.config.clone(), "--force"),
            };
            format!(
                "{} train --config {} --artifacts {} --name {run_name} {how}",
                runner.name,
                config.display(),
                args.artifacts.display(),
            )
        };
        match error {
            TrainError::Interrupted {
                saved, resume_step, ..
            } => {
                let message = match saved || resume_step.is_some() {
                    true => format!("{error}; resume with: {}", next(true)),
                    false => format!("{error}; start again with: {}", next(false)),
                };
                anyhow::Error::new(Interrupted(message))
            }
            TrainError::Diverged {
                checkpoint_step, ..
            } => {
                let lower = format!("--set optimizer.lr={:.1e}", lr / 3.0);
                match checkpoint_step {
                    Some(_) => anyhow::anyhow!(
                        "{error}; resume from it with a lower learning rate: {} {lower}",
                        next(true)
                    ),
                    None => anyhow::anyhow!(
                        "{error}; start again with a lower learning rate: {} {lower}",
                        next(false)
                    ),
                }
            }
            other => other.into(),
        }
    })?;
    quill_report::report(&run.path, false)?;
    println!(
        "done: best val loss {:.4} (epoch {}), final {:.4}, {} steps in {:.1}s, {:.0} tokens/s, {} parameters",
        summary.best_val_loss,
        summary.best_epoch,
        summary.final_val_loss,
        summary.steps,
        summary.wall_s,
        summary.tokens_per_s,
        summary.params
    );
    println!(
        "sample it: {} generate --run {} --prompt \"O Romeo\"",
        runner.name,
        run.path.display()
    );
    Ok(())
}

fn sweep_command<B: AutodiffBackend>(args: SweepArgs, device: B::Device) -> anyhow::Result<()> {
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

/// The newest `ARTIFACTS/STEM-*` run directory.
fn newest_run(artifacts: &Path, stem: &str) -> anyhow::Result<RunDir> {
    let prefix = format!("{stem}-");
    let mut runs: Vec<PathBuf> = std::fs::read_dir(artifacts)
        .with_context(|| format!("--resume: cannot read {}", artifacts.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.join("config.toml").exists()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .collect();
    runs.sort();
    match runs.pop() {
        Some(path) => Ok(RunDir::new(path)),
        None => bail!(
            "--resume: no run of {stem} in {} (name one with --name)",
            artifacts.display()
        ),
    }
}

/// `20261125-143000`, UTC: sortable, so the newest run sorts last.
fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

fn generate_command<B: AutodiffBackend>(
    args: GenerateArgs,
    device: B::Device,
) -> anyhow::Result<()> {
    let weights = args.weights.into();
    if !args.temperature.is_finite() || args.temperature < 0.0 {
        bail!(
            "--temperature {} must be 0 (greedy) or positive",
            args.temperature
        );
    }
    if let Some(p) = args.top_p
        && !(p > 0.0 && p <= 1.0)
    {
        bail!("--top-p {p} must be in (0, 1]");
    }
    if args.top_k == Some(0) {
        bail!("--top-k 0 would keep no character; use 1 or more");
    }
    let run = LoadedRun::<B::InnerBackend>::load(&RunDir::new(&args.run), weights, &device)?;
    let options = SampleOptions {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        seed: args.seed,
        use_cache: !args.no_cache,
    };
    if args.interactive {
        interactive(&run, &options)
    } else {
        print_samples(&run, &args.prompt, &options, args.num_samples)
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
