//! `generate`: samples streamed to stdout, or an interactive prompt loop.

use std::io::{BufRead, Write};

use anyhow::bail;
use burn::prelude::*;
use quill_generate::{LoadedRun, SampleOptions, generate};

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
    run.vocab.encode(prompt)?;
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
        if let Err(e) = run.vocab.encode(&line) {
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
