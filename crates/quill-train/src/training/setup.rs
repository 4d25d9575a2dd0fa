//! Before the learner starts: where the run resumes (or that it starts fresh), the corpus in
//! the right vocabulary, the model (random, or another run's weights), a check of the
//! checkpoint a resume will load, and the run directory's config, vocabulary and metrics
//! brought up to date.

use burn::prelude::*;
use burn::record::Recorder;
use burn::tensor::backend::AutodiffBackend;
use quill_data::{Corpus, DataError, Tokenizer};
use quill_model::{Gpt, ModelConfig};

use super::{TrainError, TrainOptions, file_error};
use crate::checkpoint::{
    AtomicRecorder, MidEpoch, SavesInFlight, StandIn, remove_partial_files, write_atomic,
};
use crate::config::OptimizerKind;
use crate::config::RunConfig;
use crate::metrics_csv;
use crate::muon::ModelOptimizerRecord;
use crate::run_dir::RunDir;
use crate::step::TraineeRecord;

/// Everything the learner needs that the run's files decide.
pub(super) struct Setup<B: AutodiffBackend> {
    pub start: Start,
    /// Epochs complete before this session (burn-train's checkpoint number to resume from).
    pub first_epoch: usize,
    pub corpus: Corpus,
    pub gpt: Gpt<B>,
    pub params: usize,
    /// Writes burn-train's checkpoints whole or not at all (and serves a mid-epoch one).
    pub recorder: AtomicRecorder,
    pub saves: SavesInFlight,
    /// Seconds of training in earlier sessions, from `metrics.csv`.
    pub elapsed_before: f64,
}

/// Reads and checks what the run starts from, and brings its directory up to date.
pub(super) fn prepare<B: AutodiffBackend>(
    options: &TrainOptions,
    device: &B::Device,
) -> Result<Setup<B>, TrainError> {
    let TrainOptions { run, config, .. } = options;
    let t = &config.train;
    let start = if options.resume {
        Start::resume(run, config)?
    } else {
        Start::default()
    };
    let first_epoch = start.epochs_done(t.eval_interval);
    // A run whose steps are all done but whose wrap-up failed (a full disk while writing its
    // final weights) resumes into the wrap-up alone: burn-train loads the last checkpoint and
    // trains no epoch.
    if first_epoch >= config.epochs() && run.summary().exists() {
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
        _ if options.resume => {
            Corpus::load_with_tokenizer(&config.data, Tokenizer::load(&run.path)?)?
        }
        Some(source) => init_corpus(source, config)?,
        None => Corpus::load(&config.data)?,
    };
    corpus.check_block_size(config.model.block_size)?;

    let actual = Tensor::<B, 1>::zeros([1], device).dtype();
    if actual != config.train.precision.dtype() {
        return Err(TrainError::Precision {
            wanted: config.train.precision.name(),
            actual,
        });
    }
    B::seed(device, config.train.seed);
    let mut gpt = Gpt::<B>::new(&config.model, corpus.tokenizer.len(), device)
        .with_compute(config.train.precision.compute(options.kernels));
    if let Some(source) = &source {
        gpt = source
            .load_weights(gpt, config.init.weights, device)
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
        check_checkpoint(
            &recorder,
            run,
            first_epoch,
            &gpt,
            config.optimizer.kind,
            device,
        )?;
    }

    std::fs::create_dir_all(&run.path).map_err(|e| file_error(&run.path, e))?;
    write_atomic(&run.config(), config.to_toml().as_bytes())
        .map_err(|e| file_error(run.config(), e))?;
    if !options.resume {
        corpus.tokenizer.save(&run.path)?;
    }
    let earlier_rows = metrics_csv::truncate_after(&run.metrics(), first_epoch)
        .map_err(|e| file_error(run.metrics(), e))?;
    let elapsed_before = earlier_rows.last().map_or(0.0, |r| r.elapsed_s);

    Ok(Setup {
        start,
        first_epoch,
        corpus,
        gpt,
        params,
        recorder,
        saves,
        elapsed_before,
    })
}

/// Where a session starts: the optimizer steps already done, and when they end mid-epoch the
/// checkpoint that holds them.
#[derive(Debug, Clone, Default)]
pub(super) struct Start {
    pub steps_done: usize,
    pub mid_epoch: Option<StandIn>,
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
    pub fn epochs_done(&self, per_epoch: usize) -> usize {
        self.steps_done / per_epoch
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
    let tokenizer = Tokenizer::load(&source.path).map_err(|e| fail(e.to_string()))?;
    if tokenizer.kind() != config.data.tokenizer {
        return Err(fail(format!(
            "it was trained with data.tokenizer = \"{}\", this run asks for \"{}\"; a run \
             starting from its weights must keep its tokenizer",
            tokenizer.kind().name(),
            config.data.tokenizer.name()
        )));
    }
    Corpus::load_with_tokenizer(&config.data, tokenizer).map_err(|e| match e {
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

/// Loads the model, optimizer and scheduler records a resume would use, so that a truncated,
/// corrupted or mismatched checkpoint is a clear error before training starts.
fn check_checkpoint<B: AutodiffBackend>(
    recorder: &AtomicRecorder,
    run: &RunDir,
    epoch: usize,
    gpt: &Gpt<B>,
    kind: OptimizerKind,
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
    let optim: ModelOptimizerRecord<B> = Recorder::<B>::load(recorder, stem("optim"), device)
        .map_err(|e| bad("optim", format!("it is truncated or corrupted ({e})")))?;
    if optim.kind() != kind {
        let name = |kind| match kind {
            OptimizerKind::Adamw => "adamw",
            OptimizerKind::Muon => "muon",
        };
        let reason = format!(
            "it holds the state of `optimizer.kind = \"{}\"`, and the config says \"{}\"; \
             resume with the kind it was trained with, or start a new run with --init-from",
            name(optim.kind()),
            name(kind)
        );
        return Err(bad("optim", reason));
    }
    Recorder::<B>::load::<usize>(recorder, stem("scheduler"), device)
        .map_err(|e| bad("scheduler", format!("it is truncated or corrupted ({e})")))?;
    Ok(())
}
