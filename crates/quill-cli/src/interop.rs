//! `eval`, `export` and `import`: scoring a run, and moving its weights in and out.

use std::path::PathBuf;

use anyhow::Context;
use burn::prelude::*;
use clap::{Args, ValueEnum};
use quill_data::corpus::read_text;
use quill_data::{Corpus, DataConfig, Tokenizer, TokenizerKind, Vocab, Windows};
use quill_generate::LoadedRun;
use quill_interop::write_run::write_run;
use quill_interop::{nanogpt, safetensors};
use quill_train::evaluate::evaluate;
use quill_train::{RunConfig, RunDir};

use crate::args::WeightsArg;
use crate::errors::whole_number;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum SplitArg {
    Train,
    Val,
}

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct EvalArgs {
    /// The run directory.
    #[arg(long)]
    run: PathBuf,
    #[arg(long, value_enum, default_value = "val")]
    split: SplitArg,
    /// Batches of windows to score; default: the run's train.eval_batches, which makes the
    /// `val` figure the val loss the run logged for these weights.
    #[arg(long, value_parser = whole_number::<usize>)]
    batches: Option<usize>,
    #[arg(long, value_enum, default_value = "best")]
    weights: WeightsArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum FormatArg {
    Safetensors,
}

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct ExportArgs {
    /// The run directory.
    #[arg(long)]
    run: PathBuf,
    #[arg(long, value_enum, default_value = "safetensors")]
    format: FormatArg,
    /// The file to write; it must not exist.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "best")]
    weights: WeightsArg,
}

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct ImportArgs {
    /// A nanoGPT checkpoint (ckpt.pt): character-level, its vocabulary from --data, or
    /// GPT-2-BPE (a vocabulary of 50257 or 50304 tokens), with GPT-2's tokenizer.
    #[arg(long, value_name = "CKPT", required_unless_present = "safetensors")]
    nanogpt: Option<PathBuf>,
    /// A safetensors file written by `export` (it carries its config and vocabulary).
    #[arg(long, value_name = "FILE", conflicts_with = "nanogpt")]
    safetensors: Option<PathBuf>,
    /// The corpus the model was trained on; recorded as the run's data.path (needed for a
    /// character-level checkpoint: its vocabulary is the corpus's characters).
    #[arg(long)]
    data: Option<PathBuf>,
    /// The run directory to create; it must not exist.
    #[arg(long)]
    out: PathBuf,
}

pub(crate) fn eval_command<B: Backend>(
    args: EvalArgs,
    device: &B::Device,
    kernels: quill_model::Kernels,
) -> anyhow::Result<()> {
    let run = LoadedRun::<B>::load(&RunDir::new(&args.run), args.weights.into(), device)?
        .with_kernels(kernels);
    let corpus = Corpus::load_with_tokenizer(&run.config.data, run.tokenizer.clone())?;
    corpus.check_block_size(run.config.model.block_size)?;
    let (name, tokens, bytes) = match args.split {
        SplitArg::Train => ("train", corpus.split.train, corpus.train_bytes),
        SplitArg::Val => ("val", corpus.split.val, corpus.val_bytes),
    };
    let token_count = tokens.len();
    let t = &run.config.train;
    let batches = args.batches.unwrap_or(t.eval_batches);
    if batches == 0 {
        anyhow::bail!("--batches 0 would score nothing; use 1 or more");
    }
    let windows = Windows {
        tokens,
        block_size: run.config.model.block_size,
        batch_size: t.batch_size,
        batches,
        seed: t.seed,
    };
    let (block_size, seed) = (windows.block_size, windows.seed);
    let result = evaluate(&run.model, windows, device);
    println!(
        "{name} loss {:.4} nats/token, {:.4} bits/token, {:.4} bits/byte ({} windows of {} tokens, seed {}, {} weights, tokenizer {})",
        result.loss,
        result.bits_per_token(),
        result.bits_per_byte(token_count, bytes),
        result.windows,
        block_size,
        seed,
        quill_train::Weights::from(args.weights).name(),
        run.tokenizer.describe(),
    );
    Ok(())
}

pub(crate) fn export_command<B: Backend>(
    args: ExportArgs,
    device: &B::Device,
) -> anyhow::Result<()> {
    let FormatArg::Safetensors = args.format;
    let run = LoadedRun::<B>::load(&RunDir::new(&args.run), args.weights.into(), device)?;
    safetensors::export(&run.model, &run.config.model, &run.tokenizer, &args.out)?;
    println!(
        "wrote {} (nanoGPT tensor names, PyTorch layout; model config and vocabulary in its metadata)",
        args.out.display()
    );
    Ok(())
}

pub(crate) fn import_command<B: Backend>(
    args: ImportArgs,
    device: &B::Device,
) -> anyhow::Result<()> {
    // Kept as given (a relative path stays relative), so the run directory can be moved to
    // another machine along with its corpus.
    let data_path = match &args.data {
        Some(path) => {
            std::fs::metadata(path).with_context(|| format!("--data {}", path.display()))?;
            Some(path.clone())
        }
        None => None,
    };
    let mut config = RunConfig::default();
    if let Some(path) = &data_path {
        config.data = DataConfig {
            path: path.clone(),
            ..config.data
        };
    }
    let run = RunDir::new(&args.out);
    let (source, tokenizer, model, gpt) = match (&args.nanogpt, &args.safetensors) {
        (Some(ckpt), _) => {
            let args = nanogpt::read_args(ckpt)?;
            let tokenizer = if nanogpt::GPT2_VOCAB_SIZES.contains(&args.vocab_size) {
                Tokenizer::gpt2()
            } else {
                let path = data_path.as_ref().with_context(|| {
                    format!(
                        "--nanogpt {}: a character-level checkpoint ({} tokens) needs --data, the text it was trained on",
                        ckpt.display(),
                        args.vocab_size
                    )
                })?;
                Tokenizer::Char(Vocab::from_text(&read_text(path)?))
            };
            let (model, gpt) = nanogpt::import::<B>(ckpt, &tokenizer, device)?;
            (ckpt, tokenizer, model, gpt)
        }
        (None, Some(file)) => {
            let (model, tokenizer, gpt) = safetensors::import::<B>(file, device)?;
            (file, tokenizer, model, gpt)
        }
        (None, None) => unreachable!("clap requires --nanogpt or --safetensors"),
    };
    config.model = model;
    config.data.tokenizer = tokenizer.kind();
    config.data.vocab_size = match tokenizer.kind() {
        TokenizerKind::Bpe => tokenizer.len(),
        _ => 0,
    };
    write_run(&run, &config, &tokenizer, &gpt)?;
    println!(
        "imported {} into {}: {} layers, {} heads, {} wide, block {}, tokenizer {}",
        source.display(),
        run.path.display(),
        config.model.n_layer,
        config.model.n_head,
        config.model.n_embd,
        config.model.block_size,
        tokenizer.describe()
    );
    Ok(())
}
