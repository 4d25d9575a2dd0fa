//! The sections of the run configuration that belong to training (`[train]`, `[optimizer]`,
//! `[schedule]`, `[checkpoint]`, `[init]`), each with its defaults and its range rules;
//! `[model]` and `[data]` live in quill-model and quill-data.

use serde::{Deserialize, Serialize};

use crate::run_dir::Weights;

/// The one-line message of a value out of range: ``invalid value for `KEY`: PROBLEM``.
fn invalid(key: &str, problem: impl std::fmt::Display) -> Result<(), String> {
    Err(format!("invalid value for `{key}`: {problem}"))
}

/// `[train]`: how long, how big, how often.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimizer steps in the whole run; a multiple of `eval_interval`.
    pub max_steps: usize,
    /// Optimizer steps per epoch: the loss on the validation windows is measured, a row of
    /// `metrics.csv` written and a checkpoint saved after each epoch.
    pub eval_interval: usize,
    /// Batches of fixed validation windows averaged for each val loss.
    pub eval_batches: usize,
    /// Windows per micro-batch.
    pub batch_size: usize,
    /// Micro-batches whose gradients are summed into one optimizer step.
    pub grad_accum: usize,
    /// Seeds the initial weights, the training windows, dropout and the validation windows.
    pub seed: u64,
    /// Float types of the run: `"f32"`; `"bf16-mixed"` (f32 weights and optimizer, matrix
    /// products in bf16, as nanoGPT trains on GPUs); or `"f16"` / `"bf16"`, every tensor in
    /// that type, where the backend and device support it (CUDA: both; wgpu: f16 on devices
    /// with shader-f16).
    pub precision: Precision,
    /// Which devices train the run, data-parallel: `"default"` (the one `--device` picks),
    /// `"all"`, or ordinals such as `"0,1,2,3"`; on the CPU runner each `0` is a replica of
    /// the one CPU device. Each optimizer step's `grad_accum` micro-batches are shared out
    /// among the devices, so `grad_accum` must be a multiple of their number.
    pub devices: String,
}

/// A parsed `train.devices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Devices {
    /// The one device `--device` picks.
    Default,
    /// Every device the runner finds.
    All,
    /// These ordinals, in this order (the first is where the optimizer runs).
    List(Vec<usize>),
}

impl Devices {
    pub fn parse(text: &str) -> Result<Devices, String> {
        match text.trim() {
            "default" | "" => Ok(Devices::Default),
            "all" => Ok(Devices::All),
            list => list
                .split(',')
                .map(|n| n.trim().parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
                .map(Devices::List)
                .map_err(|_| {
                    format!(
                        "\"{text}\" is not \"default\", \"all\" or device numbers such as \"0,1\""
                    )
                }),
        }
    }

    /// How many devices, where the config alone says.
    pub fn count(&self) -> Option<usize> {
        match self {
            Devices::Default => Some(1),
            Devices::All => None,
            Devices::List(list) => Some(list.len()),
        }
    }
}

/// The one-line error when `grad_accum` micro-batches cannot be shared out evenly among
/// `devices` devices.
pub fn check_devices(grad_accum: usize, devices: usize) -> Result<(), String> {
    if grad_accum.is_multiple_of(devices) {
        return Ok(());
    }
    invalid(
        "train.grad_accum",
        format!(
            "{grad_accum} micro-batches per step cannot be shared out among {devices} devices; make it a multiple of {devices} (and lower train.batch_size to keep the tokens per step)"
        ),
    )
}

/// The float types a run computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precision {
    #[serde(rename = "f32")]
    F32,
    /// f32 weights, optimizer state, layer norm, softmax and loss; bf16 matrix products.
    #[serde(rename = "bf16-mixed")]
    Bf16Mixed,
    #[serde(rename = "f16")]
    F16,
    #[serde(rename = "bf16")]
    Bf16,
}

impl Precision {
    /// The device's default float type: that of the weights and the optimizer state.
    pub fn dtype(self) -> burn::tensor::DType {
        match self {
            Precision::F32 | Precision::Bf16Mixed => burn::tensor::DType::F32,
            Precision::F16 => burn::tensor::DType::F16,
            Precision::Bf16 => burn::tensor::DType::BF16,
        }
    }

    /// How the model computes: its matrix products' type relative to the weights, on the
    /// runner's `kernels`.
    pub fn compute(self, kernels: quill_model::Kernels) -> quill_model::Compute {
        match self {
            Precision::Bf16Mixed => quill_model::Compute::to(burn::tensor::FloatDType::BF16),
            _ => quill_model::Compute::OFF,
        }
        .with_kernels(kernels)
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16Mixed => "bf16-mixed",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (key, count) in [
            ("train.max_steps", self.max_steps),
            ("train.eval_interval", self.eval_interval),
        ] {
            if count == 0 {
                return invalid(key, "must be at least 1");
            }
        }
        if !self.max_steps.is_multiple_of(self.eval_interval) {
            let problem = format!(
                "{} is not a multiple of train.eval_interval = {}",
                self.max_steps, self.eval_interval
            );
            return invalid("train.max_steps", problem);
        }
        for (key, count) in [
            ("train.eval_batches", self.eval_batches),
            ("train.batch_size", self.batch_size),
            ("train.grad_accum", self.grad_accum),
        ] {
            if count == 0 {
                return invalid(key, "must be at least 1");
            }
        }
        match Devices::parse(&self.devices).map(|d| d.count()) {
            Err(problem) => invalid("train.devices", problem),
            Ok(Some(count)) => check_devices(self.grad_accum, count),
            Ok(None) => Ok(()),
        }
    }

    /// The parsed `devices` (valid once `validate` passed).
    pub fn device_choice(&self) -> Devices {
        Devices::parse(&self.devices).unwrap_or(Devices::Default)
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            max_steps: 5000,
            eval_interval: 250,
            eval_batches: 20,
            batch_size: 64,
            grad_accum: 1,
            seed: 1337,
            precision: Precision::F32,
            devices: "default".into(),
        }
    }
}

/// Which optimizer steps the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// AdamW on every parameter (nanoGPT).
    Adamw,
    /// Muon on the blocks' weight matrices, AdamW (the keys above) on the rest: embeddings,
    /// head, norms and biases (modded-nanogpt).
    Muon,
}

/// `[optimizer.muon]`: Muon's settings (`optimizer.kind = "muon"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MuonConfig {
    /// Peak learning rate of the blocks' matrices; the schedule scales it as it scales
    /// `optimizer.lr`.
    pub lr: f64,
    /// Nesterov momentum.
    pub momentum: f64,
    /// Decoupled weight decay of the matrices Muon steps.
    pub weight_decay: f64,
    /// Newton-Schulz iterations that orthogonalize each update.
    pub ns_steps: usize,
}

impl Default for MuonConfig {
    /// Keller Jordan's settings.
    fn default() -> Self {
        Self {
            lr: 0.02,
            momentum: 0.95,
            weight_decay: 0.0,
            ns_steps: 5,
        }
    }
}

impl MuonConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            let problem = format!("{} must be greater than 0", self.lr);
            return invalid("optimizer.muon.lr", problem);
        }
        if !(0.0..1.0).contains(&self.momentum) {
            let problem = format!("{} must be in [0, 1)", self.momentum);
            return invalid("optimizer.muon.momentum", problem);
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            let problem = format!("{} must not be negative", self.weight_decay);
            return invalid("optimizer.muon.weight_decay", problem);
        }
        if !(1..=20).contains(&self.ns_steps) {
            let problem = format!("{} must be in 1..=20", self.ns_steps);
            return invalid("optimizer.muon.ns_steps", problem);
        }
        Ok(())
    }
}

/// `[optimizer]`: AdamW with decoupled weight decay on matrices only, or Muon on the blocks'
/// matrices with AdamW on the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimizerConfig {
    /// `"adamw"` or `"muon"`.
    pub kind: OptimizerKind,
    /// Peak learning rate, reached at the end of warmup.
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// Decoupled weight decay applied to weight matrices (not to biases, norms or positions'
    /// gains); 0 turns it off.
    pub weight_decay: f64,
    /// Clip the global gradient norm to this value; 0 turns clipping off.
    pub grad_clip: f64,
    /// Muon's settings, used when `kind = "muon"`.
    pub muon: MuonConfig,
}

impl OptimizerConfig {
    pub fn validate(&self) -> Result<(), String> {
        // Written so that NaN fails each rule.
        let positive_lr = self.lr > 0.0;
        if !positive_lr {
            return invalid(
                "optimizer.lr",
                format!("{} must be greater than 0", self.lr),
            );
        }
        if !((0.0..1.0).contains(&self.beta1) && (0.0..1.0).contains(&self.beta2)) {
            let problem = format!("{} and {} must both be in [0, 1)", self.beta1, self.beta2);
            return invalid("optimizer.beta1/beta2", problem);
        }
        let decay_ok = self.weight_decay >= 0.0;
        if !decay_ok {
            let problem = format!("{} must not be negative", self.weight_decay);
            return invalid("optimizer.weight_decay", problem);
        }
        let clip_ok = self.grad_clip >= 0.0;
        if !clip_ok {
            let problem = format!(
                "{} must not be negative (0 turns clipping off)",
                self.grad_clip
            );
            return invalid("optimizer.grad_clip", problem);
        }
        self.muon.validate()
    }
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            kind: OptimizerKind::Adamw,
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.99,
            weight_decay: 0.1,
            grad_clip: 1.0,
            muon: MuonConfig::default(),
        }
    }
}

/// The learning rate's shape after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// Cosine decay to `min_lr` (nanoGPT).
    Cosine,
    /// Warmup-stable-decay: the peak held, then a linear cool-down to `min_lr` over the last
    /// `cooldown_fraction` of the steps.
    Wsd,
}

/// `[schedule]`: linear warmup from 0 to `optimizer.lr`, then cosine decay to `min_lr`, or
/// (`kind = "wsd"`) the peak held and a linear cool-down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// `"cosine"` or `"wsd"`.
    pub kind: ScheduleKind,
    /// Steps of linear warmup.
    pub warmup_steps: usize,
    /// Step at which the cosine reaches `min_lr` (nanoGPT's `lr_decay_iters`); the rate stays at
    /// `min_lr` afterwards. 0 means `train.max_steps`.
    pub decay_steps: usize,
    /// Final learning rate; at most `optimizer.lr`.
    pub min_lr: f64,
    /// WSD only: the share of the decay steps spent cooling down, in [0, 1].
    pub cooldown_fraction: f64,
}

impl ScheduleConfig {
    /// `min_lr` is bounded by the optimizer's peak rate.
    pub fn validate(&self, optimizer: &OptimizerConfig) -> Result<(), String> {
        let min_lr_ok = self.min_lr >= 0.0 && self.min_lr <= optimizer.lr;
        if !min_lr_ok {
            let problem = format!(
                "{} must be in [0, optimizer.lr = {}]",
                self.min_lr, optimizer.lr
            );
            return invalid("schedule.min_lr", problem);
        }
        if self.decay_steps != 0 && self.decay_steps < self.warmup_steps {
            let problem = format!(
                "{} is before the end of warmup (schedule.warmup_steps = {})",
                self.decay_steps, self.warmup_steps
            );
            return invalid("schedule.decay_steps", problem);
        }
        if !(0.0..=1.0).contains(&self.cooldown_fraction) {
            let problem = format!("{} must be in [0, 1]", self.cooldown_fraction);
            return invalid("schedule.cooldown_fraction", problem);
        }
        Ok(())
    }
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            kind: ScheduleKind::Cosine,
            warmup_steps: 100,
            decay_steps: 0,
            min_lr: 1e-4,
            cooldown_fraction: 0.2,
        }
    }
}

/// `[checkpoint]`: what is kept on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Epoch checkpoints kept (the newest ones); the best and final weights are always kept.
    pub keep: usize,
}

impl CheckpointConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.keep == 0 {
            return invalid("checkpoint.keep", "must be at least 1");
        }
        Ok(())
    }
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self { keep: 2 }
    }
}

/// `[init]`: where the weights start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InitConfig {
    /// A run directory whose weights this run starts from (fine-tuning; `train --init-from`).
    /// Its model must have the same shape, and every character of this run's corpus must be
    /// in its vocabulary, which this run then uses. Empty: GPT-2's random initialization.
    pub from: String,
    /// Which of its weights: `"best"` or `"final"`.
    pub weights: Weights,
}

impl Default for InitConfig {
    fn default() -> Self {
        Self {
            from: String::new(),
            weights: Weights::Best,
        }
    }
}
