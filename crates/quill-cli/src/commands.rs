//! The command line: `Cli`, its subcommands, and the dispatch to each one's module.
use burn::tensor::backend::AutodiffBackend;
use clap::{Parser, Subcommand};

use crate::Runner;
use crate::bench::{BenchArgs, bench_command};
use crate::config::{ConfigCommand, config_command};
use crate::data::{DataCommand, data_command};
use crate::errors::whole_number;
use crate::generate::{GenerateArgs, generate_command};
use crate::interop::{
    EvalArgs, ExportArgs, ImportArgs, eval_command, export_command, import_command,
};
use crate::sweep::{ReportArgs, SweepArgs, report_command, sweep_command};
use crate::train::{TrainArgs, train_command};

/// Train and sample character-level GPT models.
#[derive(Debug, Parser)]
#[command(version, allow_negative_numbers = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Which GPU, on a machine with several (CUDA: the device ordinal; wgpu: discrete GPUs
    /// first, then integrated, virtual and software adapters). Default: the first.
    #[arg(long, global = true, value_name = "N", value_parser = whole_number::<usize>)]
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

impl Cli {
    /// The thread count the command asks for (`bench --threads`).
    pub fn threads(&self) -> Option<usize> {
        match &self.command {
            Command::Bench(args) => args.threads(),
            _ => None,
        }
    }
}

/// Runs the command; `pick` opens device `--device N` (or the default one) for those that
/// compute.
pub fn run<B: AutodiffBackend>(
    cli: Cli,
    runner: &Runner,
    pick: &dyn Fn(Option<usize>) -> anyhow::Result<B::Device>,
) -> anyhow::Result<()> {
    let device = || pick(cli.device);
    match cli.command {
        Command::Train(args) => train_command::<B>(args, runner, cli.device, pick),
        Command::Generate(args) => generate_command::<B>(args, device()?, runner.kernels),
        Command::Sweep(args) => sweep_command::<B>(args, pick),
        Command::Eval(args) => eval_command::<B::InnerBackend>(args, &device()?, runner.kernels),
        Command::Export(args) => export_command::<B::InnerBackend>(args, &device()?),
        Command::Import(args) => import_command::<B::InnerBackend>(args, &device()?),
        Command::Report(args) => report_command(args),
        Command::Bench(args) => bench_command::<B>(args, runner, cli.device, pick),
        Command::Data { command } => data_command(command),
        Command::Config { command } => config_command(command),
    }
}
