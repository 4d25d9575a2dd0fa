//! `generate`: samples streamed to stdout, or an interactive prompt loop.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::bail;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use quill_generate::{LoadedRun, SampleOptions, generate};
use quill_train::RunDir;

use crate::args::WeightsArg;
use crate::errors::whole_number;

/// Printed between samples when `--num-samples` asks for several.
pub const SAMPLE_SEPARATOR: &str = "---------------";

/// Prints `num_samples` continuations of `prompt`, each character as it is produced. Sample `i`
/// uses seed `options.seed + i`, so it does not depend on how many are asked for.
pub fn print_samples<B: Backend>(
    run: &LoadedRun<B>,
    prompt: &str,
    options: &SampleOptions,
    num_samples: usize,
) -> anyhow::Result<()> {
    // Check the prompt before printing anything.
    run.tokenizer.encode(prompt)?;
    let mut out = std::io::stdout().lock();
    for i in 0..num_samples {
        if i > 0 {
            writeln!(out, "{SAMPLE_SEPARATOR}")?;
        }
        write!(out, "{prompt}")?;
        let options = SampleOptions {
            seed: options.seed.wrapping_add(i as u64),
            ..*options
        };
        stream(run, prompt, &options, &mut out)?;
        writeln!(out)?;
    }
    Ok(())
}

/// Reads prompts from stdin, one per line, and continues each until end of input. A line with
/// characters outside the vocabulary gets an error line and the loop goes on.
pub fn interactive<B: Backend>(run: &LoadedRun<B>, options: &SampleOptions) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let mut lines = stdin.lock().lines();
    let mut turn = 0u64;
    loop {
        write!(out, "> ")?;
        out.flush()?;
        let Some(line) = lines.next() else {
            writeln!(out)?;
            return Ok(());
        };
        let line = line?;
        if let Err(e) = run.tokenizer.encode(&line) {
            writeln!(out, "error: {e}")?;
            continue;
        }
        write!(out, "{line}")?;
        let options = SampleOptions {
            seed: options.seed.wrapping_add(turn),
            ..*options
        };
        stream(run, &line, &options, &mut out)?;
        writeln!(out)?;
        turn += 1;
    }
}

fn stream<B: Backend>(
    run: &LoadedRun<B>,
    prompt: &str,
    options: &SampleOptions,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut failed = None;
    generate(run, prompt, options, |c| {
        if failed.is_none() {
            failed = write!(out, "{c}").and_then(|_| out.flush()).err();
        }
    })?;
    if let Some(e) = failed {
        bail!("cannot write to stdout: {e}");
    }
    Ok(())
}

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct GenerateArgs {
    /// The run directory, e.g. artifacts/cpu-small-20260101-120000.
    #[arg(long)]
    run: PathBuf,
    /// Text to continue; empty starts from a newline.
    #[arg(long, default_value = "")]
    prompt: String,
    #[arg(long, default_value_t = 500, value_parser = whole_number::<usize>)]
    max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy (always the most likely character).
    #[arg(long, default_value_t = 0.8)]
    temperature: f64,
    /// Sample only among the K most likely characters.
    #[arg(long, value_parser = whole_number::<usize>)]
    top_k: Option<usize>,
    /// Sample only among the most likely characters whose probabilities add up to P.
    #[arg(long)]
    top_p: Option<f64>,
    /// Seed of the first sample; sample i uses SEED + i.
    #[arg(long, default_value_t = 1337, value_parser = whole_number::<u64>)]
    seed: u64,
    /// How many samples, separated by a line of dashes.
    #[arg(long, default_value_t = 1, value_parser = whole_number::<usize>)]
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

pub(crate) fn generate_command<B: AutodiffBackend>(
    args: GenerateArgs,
    device: B::Device,
    kernels: quill_model::Kernels,
) -> anyhow::Result<()> {
    let options = SampleOptions {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        seed: args.seed,
        use_cache: !args.no_cache,
    };
    // The flags are checked before the run is loaded.
    options.validate().map_err(anyhow::Error::msg)?;
    let run =
        LoadedRun::<B::InnerBackend>::load(&RunDir::new(&args.run), args.weights.into(), &device)?
            .with_kernels(kernels);
    if args.interactive {
        interactive(&run, &options)
    } else {
        print_samples(&run, &args.prompt, &options, args.num_samples)
    }
}
