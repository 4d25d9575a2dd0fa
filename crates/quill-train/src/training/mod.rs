//! One training run, from a resolved config to weights, metrics and a summary on disk:
//! `setup` reads what the run starts from, `learn` builds burn-train's learner and runs it,
//! `wrap_up` writes the final and best weights and the summary.

mod error;
mod setup;
mod wrap_up;

#[cfg(test)]
mod tests;

use std::io::IsTerminal;
use std::sync::Arc;

use burn::tensor::backend::AutodiffBackend;
use burn::train::checkpoint::{
    ComposedCheckpointingStrategy, KeepLastNCheckpoints, MetricCheckpointingStrategy,
};
use burn::train::logger::FileMetricLogger;
use burn::train::metric::store::{Aggregate, Direction, Split};
use burn::train::metric::{LearningRateMetric, LossMetric};
use burn::train::{
    ApplicationLoggerInstaller, ExecutionStrategy, FileApplicationLoggerInstaller, Learner,
    MultiDeviceOptim, SupervisedTraining,
};
use quill_data::{TrainingPosition, WindowLoader, Windows};
use quill_model::{Gpt, Kernels};

pub use error::TrainError;
use error::file_error;
use setup::Setup;

use crate::checkpoint::SafeRetention;
use crate::config::{RunConfig, check_devices};
use crate::failure::ExperimentLog;
use crate::metrics::{Perplexity, TokensPerSecond, TrainLoss};
use crate::metrics_csv::CsvMetricLogger;
use crate::muon::ModelOptimizer;
use crate::nodes::{Cluster, NodeLink};
use crate::progress::ProgressLines;
use crate::run_dir::RunDir;
use crate::schedule::LrSchedule;
use crate::step::{RunControl, Stop, Trained, Trainee};
use crate::summary::RunSummary;
use crate::trial_link::SweepLink;

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
    /// Progress lines on stderr instead of stdout (for `bench`, whose stdout is its report).
    pub progress_to_stderr: bool,
    /// Training across machines: this process's place among the nodes (see `nodes`).
    pub cluster: Option<Cluster>,
    /// A sweep's trial: report each evaluation and ask whether to go on (see `trial_link`).
    pub sweep_trial: bool,
    /// Which kernels the model and the optimizer run on (the runner's choice).
    pub kernels: Kernels,
}

/// Trains the run described by `options` on `device` and returns its summary.
pub fn train<B: AutodiffBackend>(
    options: TrainOptions,
    device: B::Device,
) -> Result<RunSummary, TrainError> {
    train_on::<B>(options, vec![device])
}

/// Trains the run data-parallel on `devices` (the first holds the weights and runs the
/// optimizer): each optimizer step's `grad_accum` micro-batches are shared out among them,
/// one per device per round, and their gradients summed, so the step is the one a single
/// device takes, up to the order of float additions. With `options.cluster`, the same holds
/// for the devices of all the nodes together.
pub fn train_on<B: AutodiffBackend>(
    options: TrainOptions,
    devices: Vec<B::Device>,
) -> Result<RunSummary, TrainError> {
    let nodes = options.cluster.as_ref().map_or(1, |c| c.nodes);
    check_devices(options.config.train.grad_accum, devices.len() * nodes)
        .map_err(TrainError::Invalid)?;
    let device = devices[0].clone();
    let setup = setup::prepare::<B>(&options, &device)?;
    let params = setup.params;
    let link = match &options.cluster {
        Some(cluster) => {
            // burn-collective's servers log to stdout unless a logger is in place already:
            // the experiment log goes in first (burn-train's learner installs it otherwise).
            if let Err(e) = experiment_log(&options.run).install() {
                eprintln!("warning: {e}");
            }
            let link = cluster
                .join::<B::InnerBackend>(&device, params)
                .map_err(TrainError::Invalid)?;
            link.agree_on_start::<B::InnerBackend>(setup.start.steps_done, &device)
                .map_err(TrainError::Invalid)?;
            Some(link)
        }
        None => None,
    };
    let trained = learn(&options, setup, &devices, link)?;
    wrap_up::finish(trained, &options.run, params, &device)
}

/// burn-train's learner over the run's windows, with quill's metrics, checkpoints, progress
/// lines and stop requests; returns the trained model once every step is done.
fn learn<B: AutodiffBackend>(
    options: &TrainOptions,
    setup: Setup<B>,
    devices: &[B::Device],
    link: Option<NodeLink>,
) -> Result<Gpt<B::InnerBackend>, TrainError> {
    let device = &devices[0];
    let TrainOptions { run, config, .. } = options;
    let t = &config.train;
    let Setup {
        start,
        first_epoch,
        corpus,
        gpt,
        recorder,
        saves,
        elapsed_before,
        ..
    } = setup;
    let epochs = config.epochs();
    let windows = |tokens, batches| Windows {
        tokens,
        block_size: config.model.block_size,
        batch_size: t.batch_size,
        batches,
        seed: t.seed,
    };
    let mut train_loader = WindowLoader::<B>::training(
        windows(corpus.split.train, t.eval_interval * t.grad_accum),
        TrainingPosition {
            epoch: first_epoch as u64,
            batches: (start.steps_done - first_epoch * t.eval_interval) * t.grad_accum,
        },
        device.clone(),
    );
    // Every micro-batch trains once, on one device of one node.
    let nodes = options.cluster.as_ref().map_or(1, |c| c.nodes);
    if let Some(cluster) = &options.cluster {
        train_loader = train_loader.shard(cluster.rank, cluster.nodes);
    }
    let replicas = devices.len() * nodes;
    let valid_loader = WindowLoader::<B::InnerBackend>::fixed(
        windows(corpus.split.val, t.eval_batches),
        device.clone(),
    );

    let schedule = LrSchedule {
        lr: config.optimizer.lr,
        min_lr: config.schedule.min_lr,
        warmup_steps: config.schedule.warmup_steps,
        decay_steps: config.decay_steps(),
        cooldown_steps: config.cooldown_steps(),
        grad_accum: t.grad_accum,
        micro_batches: 0,
        devices: replicas,
    };
    let optimizer = ModelOptimizer::<Trained<B>, B>::init(&config.optimizer, options.kernels);

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
            .metric_train_numeric(TokensPerSecond::across(nodes))
            .with_application_logger(match &link {
                Some(_) => None,
                None => Some(Box::new(experiment_log(run))),
            })
            .with_metric_logger(FileMetricLogger::new(&run.path))
            .with_metric_logger(csv)
            .with_file_checkpointer(recorder)
            .with_checkpointing_strategy(SafeRetention::new(retention, run.clone(), saves.clone()))
            .num_epochs(epochs);
    // Rounds per optimizer step: one micro-batch on each device of each node per round.
    let rounds = t.grad_accum / replicas;
    if rounds > 1 {
        training = training.grads_accumulation(rounds);
    }
    if devices.len() > 1 {
        let strategy =
            ExecutionStrategy::MultiDevice(devices.to_vec(), MultiDeviceOptim::OptimMainDevice);
        training = training.with_training_strategy(strategy.into());
    }
    if options.resume {
        training = training.checkpoint(first_epoch);
    }
    if !(options.dashboard && std::io::stdout().is_terminal()) {
        training = training.renderer(
            ProgressLines::new(t.eval_interval, t.max_steps, start.steps_done)
                .on_stderr(options.progress_to_stderr),
        );
    }

    let control = Arc::new(
        RunControl::new(
            training.interrupter(),
            run.clone(),
            t.eval_interval,
            t.grad_accum,
            start.steps_done,
            saves,
        )
        .with_nodes(link),
    );
    let sweep_link = options.sweep_trial.then(|| SweepLink::new(t.eval_interval));
    if let Some(link) = &sweep_link {
        training = training.early_stopping(link.clone());
    }
    let trainee = Trainee {
        control: Some(control.clone()),
        ..Trainee::detached(gpt, config.optimizer.grad_clip, t.grad_accum)
    };
    let result = training.launch(Learner::new(trainee, optimizer, schedule));
    let trained = result.model;
    drop(result.renderer);
    if let Some(stop) = control.stop() {
        return Err(wrap_up::stopped_early(stop, run, t.eval_interval));
    }
    if let Some(step) = sweep_link.and_then(|link| link.stopped_at())
        && step < epochs * t.eval_interval
    {
        return Err(TrainError::StoppedBySweep {
            dir: run.path.clone(),
            step,
        });
    }
    if let Some(reason) = control.failure() {
        return Err(TrainError::Failed {
            dir: run.path.clone(),
            reason,
        });
    }
    let steps_done = control.steps_done();
    if steps_done < epochs * t.eval_interval {
        // Stopped from the dashboard, which saves nothing mid-epoch.
        let stop = Stop::Interrupted {
            step: steps_done,
            saved: false,
        };
        return Err(wrap_up::stopped_early(stop, run, t.eval_interval));
    }

    Ok(trained.gpt)
}

/// burn-train's application log, into the run's `experiment.log`.
fn experiment_log(run: &RunDir) -> ExperimentLog {
    ExperimentLog(FileApplicationLoggerInstaller::new(
        run.path.join("experiment.log"),
    ))
}
