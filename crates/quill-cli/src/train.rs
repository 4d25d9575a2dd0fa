//! `train`: one run into ARTIFACTS/NAME, fresh, resumed or fine-tuned.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use quill_data::Tokenizer;
use quill_train::checkpoint::newest_step;
use quill_train::disk;
use quill_train::failure::{self, Fatal, RunInProgress};
use quill_train::memory::MemoryEstimate;
use quill_train::nodes::{Cluster, NodeSecret};
use quill_train::run_lock::{self, FolderLock};
use quill_train::training::TrainOptions;
use quill_train::{RunConfig, RunDir, TrainError, interrupt, train_on};

use crate::Runner;
use crate::args::{ConfigArgs, WeightsArg};
use crate::devices::open_devices;
use crate::errors::{Interrupted, whole_number};
use crate::precision::use_precision;

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct TrainArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Run name; the run goes to ARTIFACTS/NAME. Default: the config's stem and a timestamp.
    #[arg(long, value_parser = crate::args::folder_name)]
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
    /// Train data-parallel on these devices: `0,1,2,3` (CUDA ordinals, wgpu adapters; on the
    /// CPU runner `0,0` is two replicas of the CPU) or `all`. Sets `train.devices`.
    #[arg(long, value_name = "LIST")]
    devices: Option<String>,
    /// Train across this many processes (machines), each on its own devices; every node runs
    /// the same command with its own --node-rank. See docs/scaling.md.
    #[arg(long, value_parser = whole_number::<usize>, requires_all = ["node_rank", "coordinator"])]
    nodes: Option<usize>,
    /// This node's number, from 0; node 0 runs the orchestrator at --coordinator.
    #[arg(long, value_parser = whole_number::<usize>, requires = "nodes")]
    node_rank: Option<usize>,
    /// HOST:PORT of the orchestrator, on node 0's machine.
    #[arg(long, value_name = "HOST:PORT", requires = "nodes")]
    coordinator: Option<String>,
    /// HOST:PORT where the other nodes reach this one. Default: the coordinator's host and
    /// port + 1 + --node-rank (right for nodes on one machine; name this machine's address
    /// otherwise).
    #[arg(long, value_name = "HOST:PORT", requires = "nodes")]
    node_address: Option<String>,
    /// A file holding the secret every node shares (at least 16 bytes, e.g. from `openssl
    /// rand -hex 32`); the environment's QUILL_NODE_SECRET otherwise. Required when an
    /// address is not a loopback one.
    #[arg(long, value_name = "FILE", requires = "nodes")]
    node_secret_file: Option<PathBuf>,
    /// Seconds a node waits for the others (to join, or for a step's gradients) before it
    /// stops with an error.
    #[arg(long, default_value_t = 120, value_parser = whole_number::<u64>)]
    node_timeout: u64,
    /// Show burn-train's dashboard instead of progress lines (in a terminal only). The
    /// dashboard takes the keyboard: stop the run there with `q`, not Ctrl-C.
    #[arg(long)]
    dashboard: bool,
    /// Run as a sweep's trial: after each evaluation, print `quill-trial-eval STEP LOSS` and
    /// read `continue` or `stop` from stdin (the sweep's pruner answers).
    #[arg(long, hide = true)]
    sweep_trial: bool,
}

pub(crate) fn train_command<B: AutodiffBackend>(
    mut args: TrainArgs,
    runner: &Runner,
    device_index: Option<usize>,
    pick: &dyn Fn(Option<usize>) -> anyhow::Result<B::Device>,
) -> anyhow::Result<()> {
    if args.sweep_trial {
        quill_train::trial_link::follow_parent();
    }
    let cluster = cluster(&args)?;
    let nodes = cluster.as_ref().map_or(1, |c| c.nodes);
    if let Some(list) = &args.devices {
        // The same as `--set train.devices=LIST`, after the config's own and the --set ones.
        args.config.overrides.push(format!("train.devices={list}"));
    }
    let stem = args
        .config
        .config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    // Held until the command ends: one process at a time trains in a run folder.
    let lock;
    // A new run's folder, removed again if the command fails before writing anything to it.
    let _bare;
    let (run, config, devices) = if args.resume {
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
        lock = FolderLock::run(&run.path)?;
        let config = RunConfig::load(&run.config(), &args.config.overrides)?;
        let vocab = Tokenizer::load(&run.path).ok().map(|t| t.len());
        check_memory(&config, runner, device_index, vocab)?;
        // Its checkpoints are on disk already: room for one more and the final weights.
        check_disk(&config, vocab, &run.path, 0, 1)?;
        let devices = open_devices(&config, device_index, pick, nodes)?;
        (run, config, devices)
    } else {
        let mut config = RunConfig::load(&args.config.config, &args.config.overrides)?;
        if let Some(source) = &args.init_from {
            config.init.from = source.display().to_string();
        }
        if let Some(weights) = args.weights {
            config.init.weights = weights.into();
        }
        // Before anything on disk changes (`--force` removes the old run below).
        check_memory(&config, runner, device_index, None)?;
        let devices = open_devices(&config, device_index, pick, nodes)?;
        let name = args
            .name
            .clone()
            .unwrap_or_else(|| format!("{stem}-{}", timestamp()));
        let run = RunDir::new(args.artifacts.join(name));
        let freed = match args.force {
            true => disk::size_of_dir(&run.path),
            false => 0,
        };
        let checkpoints = disk::checkpoints_at_once(&config);
        check_disk(&config, None, &run.path, freed, checkpoints)?;
        let existed = run.path.exists() && !run_lock::holds_only_locks(&run.path);
        lock = FolderLock::run(&run.path)?;
        _bare = run_lock::RemoveIfBare(run.path.clone());
        if existed {
            if !args.force {
                bail!(
                    "run directory {} already exists; use --resume to continue it or --force to delete it and start over",
                    run.path.display()
                );
            }
            run_lock::clear_folder(&run.path)
                .with_context(|| format!("cannot remove {}", run.path.display()))?;
        }
        (run, config, devices)
    };

    let on = match devices.len() {
        1 => runner.backend.clone(),
        n => format!("{n} {} devices", runner.backend),
    };
    let on = match &cluster {
        Some(c) => format!("{on}, node {} of {}", c.rank, c.nodes),
        None => on,
    };
    println!(
        "{} {} on {on}: {} ({} steps; memory {})",
        runner.name,
        if args.resume { "resuming" } else { "training" },
        run.path.display(),
        config.train.max_steps,
        MemoryEstimate::of(&config, ASSUMED_VOCAB).describe(&config),
    );
    let options = TrainOptions {
        run: run.clone(),
        config,
        resume: args.resume,
        dashboard: args.dashboard,
        progress_to_stderr: false,
        cluster: cluster.clone(),
        sweep_trial: args.sweep_trial,
        kernels: runner.kernels,
    };
    interrupt::install_handlers().context("cannot install the Ctrl-C handler")?;
    for device in &devices {
        use_precision::<B>(device, options.config.train.precision)?;
    }
    let lr = options.config.optimizer.lr;
    let run_name = run.path.file_name().map_or_else(
        || run.path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    // The command that goes on from the newest checkpoint, or that starts over without one.
    let next = |has_checkpoint: bool| {
        let (config, how) = match has_checkpoint {
            true => (run.config(), "--resume"),
            false => (args.config.config.clone(), "--force"),
        };
        let nodes = match &cluster {
            Some(c) => {
                let secret = args
                    .node_secret_file
                    .as_ref()
                    .map_or_else(String::new, |f| {
                        format!(" --node-secret-file {}", f.display())
                    });
                format!(
                    " --nodes {} --node-rank {} --coordinator {} --node-address {}{secret}",
                    c.nodes, c.rank, c.coordinator, c.address
                )
            }
            None => String::new(),
        };
        format!(
            "{} train --config {} --artifacts {} --name {run_name} {how}{nodes}",
            runner.name,
            config.display(),
            args.artifacts.display(),
        )
    };
    let steps_per_epoch = options.config.train.eval_interval;
    let in_progress = failure::begin_run(RunInProgress {
        run: run.clone(),
        steps_per_epoch,
        resume: next(true),
        restart: next(false),
    });
    let summary = train_on::<B>(options, devices).map_err(|error| {
        if let Some(fatal) = Fatal::of(&error.to_string()) {
            return anyhow::anyhow!("{}", failure::message(fatal, ""));
        }
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
            TrainError::StoppedBySweep { .. } => {
                anyhow::Error::new(StoppedBySweep(error.to_string()))
            }
            TrainError::Failed { .. } => match newest_step(&run, steps_per_epoch) {
                Some(_) => anyhow::anyhow!("{error}; resume with: {}", next(true)),
                None => anyhow::anyhow!("{error}; start again with: {}", next(false)),
            },
            other => other.into(),
        }
    });
    drop(in_progress);
    let summary = match summary {
        Err(error) if error.is::<StoppedBySweep>() => {
            println!("{error}");
            return Ok(());
        }
        other => other?,
    };
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
    drop(lock);
    Ok(())
}

/// A trial that its sweep's pruner stopped: not an error (the sweep asked for it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct StoppedBySweep(String);

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

/// The vocabulary assumed before the corpus is read: a character-level one is rarely larger,
/// and the logits are a small part of the estimate.
pub(crate) const ASSUMED_VOCAB: usize = 256;

/// The node settings of a run across machines, checked before anything is written.
fn cluster(args: &TrainArgs) -> anyhow::Result<Option<Cluster>> {
    let (Some(nodes), Some(rank), Some(coordinator)) =
        (args.nodes, args.node_rank, args.coordinator.clone())
    else {
        return Ok(None);
    };
    let address = match &args.node_address {
        Some(address) => address.clone(),
        None => Cluster::default_address(&coordinator, rank).map_err(anyhow::Error::msg)?,
    };
    let secret = match &args.node_secret_file {
        Some(file) => {
            let text = std::fs::read(file)
                .with_context(|| format!("--node-secret-file {}", file.display()))?;
            Some(NodeSecret::new(&text, &file.display().to_string()))
        }
        None => std::env::var_os("QUILL_NODE_SECRET")
            .map(|text| NodeSecret::new(text.as_encoded_bytes(), "QUILL_NODE_SECRET")),
    };
    let cluster = Cluster {
        nodes,
        rank,
        coordinator,
        address,
        timeout: std::time::Duration::from_secs(args.node_timeout),
        secret: secret.transpose().map_err(anyhow::Error::msg)?,
    };
    cluster.validate().map_err(anyhow::Error::msg)?;
    Ok(Some(cluster))
}

/// Refuses a run whose directory `dir` cannot hold `count` more checkpoints, counting the
/// `freed` bytes of a run that `--force` replaces.
fn check_disk(
    config: &RunConfig,
    vocab: Option<usize>,
    dir: &Path,
    freed: u64,
    count: u64,
) -> anyhow::Result<()> {
    let Some(free) = disk::free_space(dir) else {
        return Ok(());
    };
    let vocab = vocab.unwrap_or(ASSUMED_VOCAB);
    disk::check_room(config, vocab, dir, free.saturating_add(freed), count)
        .map_err(anyhow::Error::msg)
}

/// Refuses a run that cannot fit in the memory of the device it computes on, where the
/// runner knows how much is free.
fn check_memory(
    config: &RunConfig,
    runner: &Runner,
    device_index: Option<usize>,
    vocab: Option<usize>,
) -> anyhow::Result<()> {
    let Some((available, place)) = (runner.free_memory)(device_index) else {
        return Ok(());
    };
    MemoryEstimate::of(config, vocab.unwrap_or(ASSUMED_VOCAB))
        .check(config, available, &place)
        .map_err(anyhow::Error::msg)
}
