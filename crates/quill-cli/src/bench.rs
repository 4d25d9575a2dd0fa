//! `bench`: training and sampling speed at a config's shapes, as one JSON line.

use std::time::Instant;

use anyhow::Context;
use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use quill_data::Corpus;
use quill_generate::{LoadedRun, SampleOptions, generate};
use quill_model::Gpt;
use quill_train::bench::{flops_per_token, median, time_train_steps};
use quill_train::config::Devices;
use quill_train::training::TrainOptions;
use quill_train::{RunConfig, RunDir, train_on};
use serde_json::{Value, json};

use crate::Runner;
use crate::args::ConfigArgs;
use crate::devices::pick_devices;
use crate::errors::whole_number;
use crate::precision::use_precision;

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Timed training steps (forward, backward, optimizer), run back to back in up to five
    /// groups; the median of the groups' ms per step is reported.
    #[arg(long, default_value_t = 20, value_parser = whole_number::<usize>)]
    steps: usize,
    /// Untimed steps first (allocation, kernel compilation, autotuning).
    #[arg(long, default_value_t = 3, value_parser = whole_number::<usize>)]
    warmup: usize,
    /// Size of the CPU thread pool (rayon) for CPU backends.
    #[arg(long, value_parser = whole_number::<usize>)]
    threads: Option<usize>,
    /// Peak FLOP/s of the device, for the model FLOPs utilization (`mfu`), e.g. 989e12.
    #[arg(long)]
    peak_flops: Option<f64>,
    /// Only measure sampling.
    #[arg(long)]
    generate_only: bool,
    /// Characters sampled for the generation figures.
    #[arg(long, default_value_t = 500, value_parser = whole_number::<usize>)]
    generate_tokens: usize,
    /// Also train `--warmup + --steps` steps on the first 1, 2, ... of these devices (those
    /// counts that share out `train.grad_accum`) and report the tokens/s of each (`scaling`).
    #[arg(long, value_name = "LIST")]
    devices: Option<String>,
}

impl BenchArgs {
    pub(crate) fn threads(&self) -> Option<usize> {
        self.threads
    }
}

pub(crate) fn bench_command<B: AutodiffBackend>(
    args: BenchArgs,
    runner: &Runner,
    device_index: Option<usize>,
    pick: &dyn Fn(Option<usize>) -> anyhow::Result<B::Device>,
) -> anyhow::Result<()> {
    let config = RunConfig::load(&args.config.config, &args.config.overrides)?;
    // Opened before any work; each count that shares out `grad_accum` is measured.
    let devices = match &args.devices {
        Some(list) => {
            let choice = Devices::parse(list).map_err(|e| anyhow::anyhow!("--devices: {e}"))?;
            pick_devices(&choice, device_index, pick)?
        }
        None => Vec::new(),
    };
    let options = BenchOptions {
        steps: args.steps.max(1),
        warmup: args.warmup,
        threads: args.threads,
        peak_flops: args.peak_flops,
        generate_only: args.generate_only,
        generate_tokens: args.generate_tokens,
    };
    let name = args.config.config.display().to_string();
    let device = match devices.first() {
        Some(first) => first.clone(),
        None => pick(device_index)?,
    };
    for device in devices.iter().chain([&device]) {
        use_precision::<B>(device, config.train.precision)?;
    }
    let mut report = bench::<B>(&config, &name, &options, runner, device)?;
    if !devices.is_empty() {
        report["scaling"] = scaling::<B>(
            &config,
            &devices,
            options.warmup + options.steps,
            runner.kernels,
        )?;
    }
    println!("{report}");
    Ok(())
}

/// The training throughput on the first 1, 2, ... of `devices` (each count that shares out
/// `train.grad_accum`): `steps` steps of real training (burn-train's learner, as `train`
/// runs it) into a scratch directory, and the run's own tokens/s (its clock starts after the
/// first micro-batch, so compilation is left out).
fn scaling<B: AutodiffBackend>(
    config: &RunConfig,
    devices: &[B::Device],
    steps: usize,
    kernels: quill_model::Kernels,
) -> anyhow::Result<Value> {
    let scratch = tempfile::tempdir().context("cannot make a scratch directory")?;
    let mut rows: Vec<Value> = Vec::new();
    let mut one = None;
    for count in (1..=devices.len()).filter(|k| config.train.grad_accum.is_multiple_of(*k)) {
        let mut config = config.clone();
        config.train.max_steps = steps;
        config.train.eval_interval = steps;
        config.train.eval_batches = 1;
        config.train.devices = "default".into();
        eprintln!(
            "bench [{:.1}s]: training {steps} steps on {count} device(s)",
            crate::since_start()
        );
        let options = TrainOptions {
            run: RunDir::new(scratch.path().join(format!("devices-{count}"))),
            config,
            resume: false,
            dashboard: false,
            progress_to_stderr: true,
            cluster: None,
            sweep_trial: false,
            kernels,
        };
        let summary = train_on::<B>(options, devices[..count].to_vec())?;
        let base = *one.get_or_insert(summary.tokens_per_s);
        rows.push(json!({
            "devices": count,
            "tokens_per_s": summary.tokens_per_s,
            "speedup": summary.tokens_per_s / base,
        }));
    }
    Ok(Value::Array(rows))
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub steps: usize,
    pub warmup: usize,
    pub threads: Option<usize>,
    pub peak_flops: Option<f64>,
    pub generate_only: bool,
    pub generate_tokens: usize,
}

pub fn bench<B: AutodiffBackend>(
    config: &RunConfig,
    config_name: &str,
    options: &BenchOptions,
    runner: &Runner,
    device: B::Device,
) -> anyhow::Result<Value> {
    let corpus = Corpus::load(&config.data)?;
    corpus.check_block_size(config.model.block_size)?;
    let vocab_size = corpus.tokenizer.len();
    let params = burn::module::Module::num_params(&Gpt::<B::InnerBackend>::new(
        &config.model,
        vocab_size,
        &device,
    ));

    let mut report = json!({
        "runner": runner.name,
        "backend": runner.backend,
        "config": config_name,
        "params": params,
        "batch_size": config.train.batch_size,
        "block_size": config.model.block_size,
        "grad_accum": config.train.grad_accum,
        "threads": options.threads.unwrap_or_else(rayon::current_num_threads),
    });
    report["precision"] = json!(config.train.precision.name());
    if !options.generate_only {
        let train = corpus.split.train.clone();
        let before_training = crate::since_start();
        eprintln!(
            "bench [{before_training:.1}s]: {} warm-up steps, then {} timed steps",
            options.warmup, options.steps
        );
        let times = time_train_steps::<B>(
            config,
            train,
            vocab_size,
            options.warmup,
            options.steps,
            runner.kernels,
            &device,
        );
        let ms_per_step = median(&mut times.ms_per_step.clone());
        eprintln!(
            "bench [{:.1}s]: first step {:.1} s, {ms_per_step:.1} ms/step",
            crate::since_start(),
            times.first_step_s
        );
        let tokens_per_step =
            (config.train.batch_size * config.model.block_size * config.train.grad_accum) as f64;
        let tokens_per_s = tokens_per_step / (ms_per_step / 1e3);
        let flops_per_token = flops_per_token(config, params);
        let flops_per_s = flops_per_token * tokens_per_s;
        report["steps"] = json!(options.steps);
        report["warmup"] = json!(options.warmup);
        report["first_step_s"] = json!(times.first_step_s);
        report["warmup_s"] = json!(times.warmup_s);
        // From the process's start to the end of the first step: what a user waits for.
        report["startup_s"] = json!(before_training + times.first_step_s);
        report["ms_per_step"] = json!(ms_per_step);
        report["ms_per_step_groups"] = json!(times.ms_per_step);
        report["tokens_per_s"] = json!(tokens_per_s);
        report["flops_per_token"] = json!(flops_per_token);
        report["flops_per_s"] = json!(flops_per_s);
        report["mfu"] = json!(options.peak_flops.map(|peak| flops_per_s / peak));
    }
    if let Some(compiled) = runner.kernels_compiled {
        report["kernels_compiled_training"] = json!(compiled());
    }

    eprintln!(
        "bench [{:.1}s]: sampling {} characters with and without the cache",
        crate::since_start(),
        options.generate_tokens
    );
    B::seed(&device, config.train.seed);
    let run = LoadedRun {
        model: Gpt::<B::InnerBackend>::new(&config.model, vocab_size, &device)
            .with_kernels(runner.kernels),
        tokenizer: corpus.tokenizer.clone(),
        config: config.clone(),
    };
    for (key, use_cache) in [
        ("generate_tokens_per_s", true),
        ("generate_tokens_per_s_uncached", false),
    ] {
        let sample = SampleOptions {
            max_new_tokens: options.generate_tokens,
            temperature: 1.0,
            use_cache,
            ..SampleOptions::default()
        };
        let started = Instant::now();
        generate(&run, "", &sample, |_| {})?;
        report[key] = json!(options.generate_tokens as f64 / started.elapsed().as_secs_f64());
    }
    report["generate_tokens"] = json!(options.generate_tokens);
    report["peak_rss_mb"] = json!(peak_rss_mb());
    if let Some(compiled) = runner.kernels_compiled {
        report["kernels_compiled"] = json!(compiled());
    }
    Ok(report)
}

/// The process's peak resident memory (Linux `VmHWM`), in MiB; `None` elsewhere.
fn peak_rss_mb() -> Option<f64> {
    quill_train::memory::proc_kib("/proc/self/status", "VmHWM:").map(|kib| kib as f64 / 1024.0)
}
