//! One training run, from a resolved config to weights, metrics and a summary on disk.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use burn::prelude::*;
use burn::record::DefaultRecorder;
use burn::tensor::backend::AutodiffBackend;
use burn::train::checkpoint::{
    ComposedCheckpointingStrategy, KeepLastNCheckpoints, MetricCheckpointingStrategy,
};
use burn::train::logger::FileMetricLogger;
use burn::train::metric::store::{Aggregate, Direction, Split};
use burn::train::metric::{LearningRateMetric, LossMetric};
use burn::train::{Learner, SupervisedTraining};
use quill_data::{Corpus, DataError, Vocab, WindowLoader};
use quill_model::Gpt;

use crate::config::RunConfig;
use crate::metrics::{Perplexity, TokensPerSecond};
use crate::metrics_csv::{self, CsvMetricLogger};
use crate::optimizer::MatrixDecayAdamW;
use crate::progress::ProgressLines;
use crate::run_dir::{RunDir, Weights, write_atomic};
use crate::schedule::WarmupCosine;
use crate::step::Trainee;
use crate::summary::RunSummary;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error(
        "--resume: {dir} has no complete checkpoint to resume from (start it again without --resume, or with --force)"
    )]
    NoCheckpoint { dir: PathBuf },
    #[error(
        "{dir} already finished its {steps} steps; to train further, raise train.max_steps (e.g. --resume --set train.max_steps={more})"
    )]
    AlreadyComplete {
        dir: PathBuf,
        steps: usize,
        more: usize,
    },
}

fn file_error(path: impl Into<PathBuf>, message: impl ToString) -> TrainError {
    TrainError::File {
        path: path.into(),
        message: message.to_string(),
    }
}

/// What to run and how.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub run: RunDir,
    pub config: RunConfig,
    /// Continue from the newest complete checkpoint in `run` instead of starting fresh.
    pub resume: bool,
    /// Print progress lines even in a terminal (they are always used when stdout is not one).
    pub progress_lines: bool,
}

/// Trains the run described by `options` on `device` and returns its summary.
pub fn train<B: AutodiffBackend>(
    options: TrainOptions,
    device: B::Device,
) -> Result<RunSummary, TrainError> {
    let TrainOptions { run, config, .. } = &options;
    let resume_epoch = if options.resume {
        Some(
            run.latest_checkpoint()
                .ok_or_else(|| TrainError::NoCheckpoint {
                    dir: run.path.clone(),
                })?,
        )
    } else {
        None
    };
    let first_epoch = resume_epoch.unwrap_or(0);
    let epochs = config.epochs();
    if first_epoch >= epochs {
        return Err(TrainError::AlreadyComplete {
            dir: run.path.clone(),
            steps: first_epoch * config.train.eval_interval,
            more: 2 * config.train.max_steps,
        });
    }

    let corpus = if options.resume {
        Corpus::load_with_vocab(&config.data, Vocab::load(&run.vocab())?)?
    } else {
        Corpus::load(&config.data)?
    };
    corpus.check_block_size(config.model.block_size)?;

    std::fs::create_dir_all(&run.path).map_err(|e| file_error(&run.path, e))?;
    write_atomic(&run.config(), config.to_toml().as_bytes())
        .map_err(|e| file_error(run.config(), e))?;
    if !options.resume {
        corpus.vocab.save(&run.vocab())?;
    }
    let earlier_rows = metrics_csv::truncate_after(&run.metrics(), first_epoch)
        .map_err(|e| file_error(run.metrics(), e))?;
    let elapsed_before = earlier_rows.last().map_or(0.0, |r| r.elapsed_s);

    B::seed(&device, config.train.seed);
    let gpt = Gpt::<B>::new(&config.model, corpus.vocab.len(), &device);
    let params = gpt.num_params();
    let trainee = Trainee {
        gpt,
        grad_clip: config.optimizer.grad_clip,
        grad_accum: config.train.grad_accum,
    };

    let t = &config.train;
    let train_loader = WindowLoader::<B>::training(
        corpus.split.train.into(),
        config.model.block_size,
        t.batch_size,
        t.eval_interval * t.grad_accum,
        t.seed,
        first_epoch as u64,
        device.clone(),
    );
    let valid_loader = WindowLoader::<B::InnerBackend>::fixed(
        corpus.split.val.into(),
        config.model.block_size,
        t.batch_size,
        t.eval_batches,
        t.seed,
        device.clone(),
    );

    let schedule = WarmupCosine {
        lr: config.optimizer.lr,
        min_lr: config.schedule.min_lr,
        warmup_steps: config.schedule.warmup_steps,
        decay_steps: config.decay_steps(),
        grad_accum: t.grad_accum,
        micro_batches: 0,
    };
    let optimizer = MatrixDecayAdamW::init::<B, Trainee<B>>(&config.optimizer);

    let csv = CsvMetricLogger::new(&run.metrics(), t.eval_interval, elapsed_before)
        .map_err(|e| file_error(run.metrics(), e))?;
    let keep_best = MetricCheckpointingStrategy::new(
        &LossMetric::<B::InnerBackend>::new(),
        Aggregate::Mean,
        Direction::Lowest,
        Split::Valid,
    );
    let mut training =
        SupervisedTraining::new(&run.path, Arc::new(train_loader), Arc::new(valid_loader))
            .metrics((LossMetric::<B::InnerBackend>::new(), Perplexity::default()))
            .metric_train_numeric(LearningRateMetric::new())
            .metric_train_numeric(TokensPerSecond::default())
            .with_metric_logger(FileMetricLogger::new(&run.path))
            .with_metric_logger(csv)
            .with_file_checkpointer(DefaultRecorder::new())
            .with_checkpointing_strategy(
                ComposedCheckpointingStrategy::builder()
                    .add(KeepLastNCheckpoints::new(config.checkpoint.keep))
                    .add(keep_best)
                    .build(),
            )
            .num_epochs(epochs);
    if t.grad_accum > 1 {
        training = training.grads_accumulation(t.grad_accum);
    }
    if let Some(epoch) = resume_epoch {
        training = training.checkpoint(epoch);
    }
    if options.progress_lines || !std::io::stdout().is_terminal() {
        training = training.renderer(ProgressLines::new(
            t.eval_interval,
            t.max_steps,
            t.grad_accum,
            first_epoch * t.eval_interval,
        ));
    }

    let result = training.launch(Learner::new(trainee, optimizer, schedule));
    let trained = result.model;
    drop(result.renderer);

    save_weights(&trained.gpt, run, Weights::Final)?;
    let rows = metrics_csv::read_rows(&run.metrics()).map_err(|e| file_error(run.metrics(), e))?;
    let summary = RunSummary::from_rows(&rows, params)
        .ok_or_else(|| file_error(run.metrics(), "no evaluation was recorded"))?;
    save_best_weights::<B::InnerBackend>(trained.gpt, run, &summary, &rows, &device)?;
    let json = serde_json::to_string_pretty(&summary).expect("a summary serializes");
    write_atomic(&run.summary(), json.as_bytes()).map_err(|e| file_error(run.summary(), e))?;
    Ok(summary)
}

/// Saves `gpt` as the run's `weights` file, through a temporary file and a rename.
fn save_weights<B: Backend>(
    gpt: &Gpt<B>,
    run: &RunDir,
    weights: Weights,
) -> Result<(), TrainError> {
    let partial = run.path.join(format!("{}-partial", weights.name()));
    gpt.clone()
        .save_file(&partial, &DefaultRecorder::new())
        .map_err(|e| file_error(&partial, e))?;
    std::fs::rename(partial.with_extension("mpk"), run.weights_file(weights))
        .map_err(|e| file_error(run.weights_file(weights), e))
}

/// `best.mpk` holds the weights of the epoch with the lowest val loss: the final weights when
/// that is the last epoch, else that epoch's checkpoint (burn-train keeps it).
fn save_best_weights<B: Backend>(
    final_gpt: Gpt<B>,
    run: &RunDir,
    summary: &RunSummary,
    rows: &[metrics_csv::MetricsRow],
    device: &B::Device,
) -> Result<(), TrainError> {
    let last_epoch = rows.last().map_or(0, |r| r.epoch);
    if summary.best_epoch == last_epoch {
        return save_weights(&final_gpt, run, Weights::Best);
    }
    let checkpoint = run.checkpoint_file("model", summary.best_epoch);
    if !checkpoint.exists() {
        // An earlier session already wrote best.mpk for an epoch whose checkpoint is gone.
        return Ok(());
    }
    let trainee = Trainee {
        gpt: final_gpt,
        grad_clip: 0.0,
        grad_accum: 1,
    }
    .load_file(
        checkpoint.with_extension(""),
        &DefaultRecorder::new(),
        device,
    )
    .map_err(|e| file_error(&checkpoint, e))?;
    save_weights(&trainee.gpt, run, Weights::Best)
}
