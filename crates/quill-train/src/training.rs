//! One training run, from a resolved config to weights, metrics and a summary on disk.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use burn::optim::Optimizer;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::prelude::*;
use burn::record::{DefaultRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use burn::train::checkpoint::{
    ComposedCheckpointingStrategy, KeepLastNCheckpoints, MetricCheckpointingStrategy,
};
use burn::train::logger::FileMetricLogger;
use burn::train::metric::store::{Aggregate, Direction, Split};
use burn::train::metric::{LearningRateMetric, LossMetric};
use burn::train::{Learner, SupervisedTraining};
use quill_data::{Corpus, DataError, TrainingPosition, Vocab, WindowLoader};
use quill_model::{Gpt, ModelConfig};

use crate::checkpoint::{
    AtomicRecorder, MidEpoch, SafeRetention, SavesInFlight, StandIn, remove_partial_files,
    write_atomic,
};
use crate::config::RunConfig;
use crate::metrics::{Perplexity, TokensPerSecond, TrainLoss};
use crate::metrics_csv::{self, CsvMetricLogger};
use crate::optimizer::MatrixDecayAdamW;
use crate::progress::ProgressLines;
use crate::run_dir::{RunDir, Weights};
use crate::schedule::WarmupCosine;
use crate::step::{RunControl, Stop, Trainee, TraineeRecord};
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
    #[error(
        "train.precision = \"{wanted}\" is not in effect on this device (its tensors are {actual:?}); the runner sets it before any tensor exists"
    )]
    Precision {
        wanted: &'static str,
        actual: burn::tensor::DType,
    },
    #[error("--init-from {dir}: {message}")]
    InitFrom { dir: PathBuf, message: String },
    #[error("--resume: cannot use checkpoint {file}: {reason}")]
    BadCheckpoint { file: PathBuf, reason: String },
    /// Ctrl-C (or the dashboard's stop).
    #[error("interrupted {}", match (saved, resume_step) {
        (true, _) => format!("after step {step}; its checkpoint is saved"),
        (false, Some(from)) => format!("at step {step}; the run resumes from its newest checkpoint, step {from}"),
        (false, None) => format!("at step {step}, before its first checkpoint"),
    })]
    Interrupted {
        dir: PathBuf,
        step: usize,
        saved: bool,
        resume_step: Option<usize>,
    },
    #[error(
        "the loss became {loss} at step {step} (learning rate {lr:.3e}); training stopped without saving weights from that step on{}",
        match checkpoint_step {
            Some(s) => format!(" and kept the checkpoint of step {s}"),
            None => " (there is no checkpoint yet)".into(),
        }
    )]
    Diverged {
        dir: PathBuf,
        step: usize,
        lr: f64,
        loss: f64,
        /// The step of the newest checkpoint, which a resumed run starts from.
        checkpoint_step: Option<usize>,
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
    /// Show burn-train's dashboard when stdout is a terminal, instead of progress lines. It
    /// puts the terminal in raw mode, where Ctrl-C is a key press the dashboard ignores.
    pub dashboard: bool,
}

/// Where a session starts: the optimizer steps already done, and when they end mid-epoch the
/// checkpoint that holds them.
#[derive(Debug, Clone, Default)]
struct Start {
    steps_done: usize,
    mid_epoch: Option<StandIn>,
}

impl Start {
    fn resume(run: &RunDir, config: &RunConfig) -> Result<Self, TrainError> {
        remove_partial_files(run);
        let per_epoch = config.train.eval_interval;
        let epoch = run.latest_checkpoint();
        let mid = MidEpoch::latest(run).filter(|m| m.step > epoch.unwrap_or(0) * per_epoch);
        match (epoch, mid) {
            (_, Some(mid)) => Ok(Self {
                steps_done: mid.step,
                mid_epoch: Some(StandIn {
                    epoch: mid.step / per_epoch,
                    dir: MidEpoch::dir(run, mid.step),
                }),
            }),
            (Some(epoch), None) => {
                MidEpoch::remove_older_than(run, usize::MAX);
                Ok(Self {
                    steps_done: epoch * per_epoch,
                    mid_epoch: None,
                })
            }
            (None, None) => Err(TrainError::NoCheckpoint {
                dir: run.path.clone(),
            }),
        }
    }

    /// Epochs complete (burn-train's checkpoint number to resume from).
    fn epochs_done(&self, per_epoch: usize) -> usize {
        self.steps_done / per_epoch
    }
}

/// Trains the run described by `options` on `device` and returns its summary.
pub fn train<B: AutodiffBackend>(
    options: TrainOptions,
    device: B::Device,
) -> Result<RunSummary, TrainError> {
    let TrainOptions { run, config, .. } = &options;
    let t = &config.train;
    let start = if options.resume {
        Start::resume(run, config)?
    } else {
        Start::default()
    };
    let first_epoch = start.epochs_done(t.eval_interval);
    let epochs = config.epochs();
    if first_epoch >= epochs {
        return Err(TrainError::AlreadyComplete {
            dir: run.path.clone(),
            steps: start.steps_done,
            more: 2 * config.train.max_steps,
        });
    }

    // A fine-tuning run starts from another run's weights, in that run's vocabulary.
    let source =
        (!options.resume && !config.init.from.is_empty()).then(|| RunDir::new(&config.init.from));
    let corpus = match &source {
        _ if options.resume => Corpus::load_with_vocab(&config.data, Vocab::load(&run.vocab())?)?,
        Some(source) => init_corpus(source, config)?,
        None => Corpus::load(&config.data)?,
    };
    corpus.check_block_size(config.model.block_size)?;

    let actual = Tensor::<B, 1>::zeros([1], &device).dtype();
    if actual != config.train.precision.dtype() {
        return Err(TrainError::Precision {
            wanted: config.train.precision.name(),
            actual,
        });
    }
    B::seed(&device, config.train.seed);
    let mut gpt = Gpt::<B>::new(&config.model, corpus.vocab.len(), &device)
        .with_autocast(config.train.precision.autocast());
    if let Some(source) = &source {
        gpt = source
            .load_weights(gpt, config.init.weights, &device)
            .map_err(|reason| TrainError::InitFrom {
                dir: source.path.clone(),
                message: format!(
                    "{}: {reason}",
                    source.weights_file(config.init.weights).display()
                ),
            })?;
    }
    let params = gpt.num_params();
    let saves = SavesInFlight::default();
    let recorder = AtomicRecorder::for_checkpointer(start.mid_epoch.clone(), saves.clone());
    if options.resume {
        check_checkpoint(&recorder, run, first_epoch, &gpt, &device)?;
    }

    std::fs::create_dir_all(&run.path).map_err(|e| file_error(&run.path, e))?;
    write_atomic(&run.config(), config.to_toml().as_bytes())
        .map_err(|e| file_error(run.config(), e))?;
    if !options.resume {
        corpus.vocab.save(&run.vocab())?;
    }
    let earlier_rows = metrics_csv::truncate_after(&run.metrics(), first_epoch)
        .map_err(|e| file_error(run.metrics(), e))?;
    let elapsed_before = earlier_rows.last().map_or(0.0, |r| r.elapsed_s);

    let train_loader = WindowLoader::<B>::training(
        corpus.split.train.into(),
        config.model.block_size,
        t.batch_size,
        t.eval_interval * t.grad_accum,
        t.seed,
        TrainingPosition {
            epoch: first_epoch as u64,
            batches: (start.steps_done - first_epoch * t.eval_interval) * t.grad_accum,
        },
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
    let retention = ComposedCheckpointingStrategy::builder()
        .add(KeepLastNCheckpoints::new(config.checkpoint.keep))
        .add(keep_best)
        .build();
    let mut training =
        SupervisedTraining::new(&run.path, Arc::new(train_loader), Arc::new(valid_loader))
            // The same "Loss" on both splits: burn-train's on validation (the best-checkpoint
            // strategy reads it), one that reads the device seldom on training.
            .metric_valid_numeric(LossMetric::<B::InnerBackend>::new())
            .metric_valid_numeric(Perplexity::default())
            .metric_train_numeric(TrainLoss::<B::InnerBackend>::default())
            .metric_train_numeric(LearningRateMetric::new())
            .metric_train_numeric(TokensPerSecond::default())
            .with_metric_logger(FileMetricLogger::new(&run.path))
            .with_metric_logger(csv)
            .with_file_checkpointer(recorder)
            .with_checkpointing_strategy(SafeRetention::new(retention, run.clone(), saves.clone()))
            .num_epochs(epochs);
    if t.grad_accum > 1 {
        training = training.grads_accumulation(t.grad_accum);
    }
    if options.resume {
        training = training.checkpoint(first_epoch);
    }
    if !(options.dashboard && std::io::stdout().is_terminal()) {
        training = training.renderer(ProgressLines::new(
            t.eval_interval,
            t.max_steps,
            start.steps_done,
        ));
    }

    let control = Arc::new(RunControl::new(
        training.interrupter(),
        run.clone(),
        t.eval_interval,
        t.grad_accum,
        start.steps_done,
        saves,
    ));
    let trainee = Trainee {
        control: Some(control.clone()),
        ..Trainee::detached(gpt, config.optimizer.grad_clip, t.grad_accum)
    };
    let result = training.launch(Learner::new(trainee, optimizer, schedule));
    let trained = result.model;
    drop(result.renderer);
    if let Some(stop) = control.stop() {
        return Err(stopped_early(stop, run, t.eval_interval));
    }
    let steps_done = control.steps_done();
    if steps_done < epochs * t.eval_interval {
        // Stopped from the dashboard, which saves nothing mid-epoch.
        let stop = Stop::Interrupted {
            step: steps_done,
            saved: false,
        };
        return Err(stopped_early(stop, run, t.eval_interval));
    }

    save_weights(&trained.gpt, run, Weights::Final)?;
    MidEpoch::remove_older_than(run, usize::MAX);
    let rows = metrics_csv::read_rows(&run.metrics()).map_err(|e| file_error(run.metrics(), e))?;
    let summary = RunSummary::from_rows(&rows, params)
        .ok_or_else(|| file_error(run.metrics(), "no evaluation was recorded"))?;
    save_best_weights::<B::InnerBackend>(trained.gpt, run, &summary, &rows, &device)?;
    let json = serde_json::to_string_pretty(&summary).expect("a summary serializes");
    write_atomic(&run.summary(), json.as_bytes()).map_err(|e| file_error(run.summary(), e))?;
    Ok(summary)
}

fn stopped_early(stop: Stop, run: &RunDir, per_epoch: usize) -> TrainError {
    match stop {
        Stop::Interrupted { step, saved } => TrainError::Interrupted {
            dir: run.path.clone(),
            step,
            saved,
            resume_step: newest_checkpoint_step(run, per_epoch),
        },
        Stop::Diverged { step, lr, loss } => TrainError::Diverged {
            dir: run.path.clone(),
            step,
            lr,
            loss,
            checkpoint_step: newest_checkpoint_step(run, per_epoch),
        },
    }
}

/// The corpus of a run initialized from `source`, encoded with `source`'s vocabulary, once
/// `source` is known to hold a model of this config's shape.
fn init_corpus(source: &RunDir, config: &RunConfig) -> Result<Corpus, TrainError> {
    let fail = |message: String| TrainError::InitFrom {
        dir: source.path.clone(),
        message,
    };
    if !source.config().exists() {
        return Err(fail("not a run directory (it has no config.toml)".into()));
    }
    let theirs = RunConfig::load(&source.config(), &[]).map_err(|e| fail(e.to_string()))?;
    if let Some(difference) = shape_difference(&theirs.model, &config.model) {
        return Err(fail(format!(
            "{difference}; a run starting from its weights must keep its model's shape"
        )));
    }
    let vocab = Vocab::load(&source.vocab()).map_err(|e| fail(e.to_string()))?;
    Corpus::load_with_vocab(&config.data, vocab).map_err(|e| match e {
        DataError::UnknownChars { chars } => fail(format!(
            "{} has characters its vocabulary lacks: {chars}",
            config.data.path.display()
        )),
        other => TrainError::Data(other),
    })
}

/// The first setting that makes two models' parameters differ in shape, if any.
fn shape_difference(theirs: &ModelConfig, ours: &ModelConfig) -> Option<String> {
    let describe = |m: &ModelConfig| {
        [
            ("n_layer", m.n_layer.to_string()),
            ("n_head", m.n_head.to_string()),
            ("n_embd", m.n_embd.to_string()),
            ("block_size", m.block_size.to_string()),
            ("positional", format!("{:?}", m.positional).to_lowercase()),
            ("ff_width", m.ff_hidden().to_string()),
            ("bias", m.bias.to_string()),
            ("tie_weights", m.tie_weights.to_string()),
        ]
    };
    describe(theirs)
        .into_iter()
        .zip(describe(ours))
        .find(|(a, b)| a.1 != b.1)
        .map(|((key, a), (_, b))| format!("model.{key} is {a} there but {b} here"))
}

/// The step a resumed run would start from, if it has a checkpoint at all.
fn newest_checkpoint_step(run: &RunDir, per_epoch: usize) -> Option<usize> {
    let epoch_step = run.latest_checkpoint().map(|e| e * per_epoch);
    let mid_step = MidEpoch::latest(run).map(|m| m.step);
    epoch_step.max(mid_step)
}

/// Loads the model, optimizer and scheduler records a resume would use, so that a truncated,
/// corrupted or mismatched checkpoint is a clear error before training starts.
fn check_checkpoint<B: AutodiffBackend>(
    recorder: &AtomicRecorder,
    run: &RunDir,
    epoch: usize,
    gpt: &Gpt<B>,
    device: &B::Device,
) -> Result<(), TrainError> {
    let stem = |part: &str| run.checkpoints().join(format!("{part}-{epoch}"));
    let bad = |part: &str, reason: String| TrainError::BadCheckpoint {
        file: recorder.source(&stem(part)).with_extension("mpk"),
        reason: reason.replace('\n', " "),
    };
    let model: TraineeRecord<B> = Recorder::<B>::load(recorder, stem("model"), device)
        .map_err(|e| bad("model", format!("it is truncated or corrupted ({e})")))?;
    gpt.clone().load_checked(model.gpt).map_err(|reason| {
        bad(
            "model",
            format!(
                "{reason}; the run's config.toml and the checkpoint must describe the same model"
            ),
        )
    })?;
    type OptimRecord<B> =
        <OptimizerAdaptor<MatrixDecayAdamW, Trainee<B>, B> as Optimizer<Trainee<B>, B>>::Record;
    Recorder::<B>::load::<OptimRecord<B>>(recorder, stem("optim"), device)
        .map_err(|e| bad("optim", format!("it is truncated or corrupted ({e})")))?;
    Recorder::<B>::load::<usize>(recorder, stem("scheduler"), device)
        .map_err(|e| bad("scheduler", format!("it is truncated or corrupted ({e})")))?;
    Ok(())
}

fn save_weights<B: Backend>(
    gpt: &Gpt<B>,
    run: &RunDir,
    weights: Weights,
) -> Result<(), TrainError> {
    run.save_weights(gpt, weights)
        .map_err(|message| file_error(run.weights_file(weights), message))
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
    let trainee = Trainee::detached(final_gpt, 0.0, 1)
        .load_file(
            checkpoint.with_extension(""),
            &DefaultRecorder::new(),
            device,
        )
        .map_err(|e| file_error(&checkpoint, e))?;
    save_weights(&trainee.gpt, run, Weights::Best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::host_reads;
    use burn::backend::{Autodiff, NdArray};

    /// A short run on a small made-up corpus, in this process, so its reads can be counted.
    fn small_run(dir: &std::path::Path, steps: usize) -> TrainOptions {
        let corpus = dir.join("corpus.txt");
        let text: String = (0..4000)
            .map(|i| ["to be ", "or not ", "that is ", "the question\n"][i % 4])
            .collect();
        std::fs::write(&corpus, text).unwrap();
        let mut config = RunConfig::default();
        config.model = ModelConfig {
            n_layer: 1,
            n_head: 2,
            n_embd: 16,
            block_size: 8,
            dropout: 0.0,
            ..config.model
        };
        config.data.path = corpus;
        config.train.max_steps = steps;
        config.train.eval_interval = steps / 2;
        config.train.eval_batches = 2;
        config.train.batch_size = 4;
        config.schedule.warmup_steps = 5;
        config.schedule.decay_steps = steps;
        TrainOptions {
            run: RunDir::new(dir.join("run")),
            config,
            resume: false,
            dashboard: false,
        }
    }

    #[test]
    fn training_reads_the_device_a_few_times_per_epoch_not_every_step() {
        // Before: three reads per step (the divergence check, burn-train's LossMetric and the
        // perplexity of the training loss). Now: the training loss at the epoch's first and
        // last batch (and every 5 s), and the divergence check every CHECK_EVERY steps.
        let dir = tempfile::tempdir().unwrap();
        let steps = 200;
        let before = host_reads();
        let summary = train::<Autodiff<NdArray>>(small_run(dir.path(), steps), Default::default())
            .expect("the run trains");
        let reads = host_reads() - before;
        println!(
            "{reads} host reads in {steps} steps (before: {})",
            3 * steps
        );
        assert_eq!(summary.steps, steps);
        let epochs = 2;
        let checks = steps / crate::step::CHECK_EVERY;
        assert!(reads >= epochs, "{reads} reads");
        // A slow machine may add a read per 5 s; allow a few.
        assert!(
            reads <= 2 * epochs + checks + 4,
            "{reads} reads in {steps} steps"
        );

        // The epoch's training loss still reaches metrics.csv.
        let rows = metrics_csv::read_rows(&dir.path().join("run/metrics.csv")).unwrap();
        assert_eq!(rows.len(), epochs);
        assert!(
            rows.iter()
                .all(|r| r.train_loss.is_finite() && r.train_loss > 0.0)
        );
    }
}
