//! How much memory a training run needs, from its config alone, and whether the machine has it.
//!
//! Counted: the weights, their gradients and AdamW's two moments (in the weights' type), and the
//! activations the backward pass keeps for one micro-batch: per layer and per token, the inputs
//! and outputs of the layer norms, projections, GELU, residual branches and dropout masks, and
//! the attention weights (`n_head × block_size` per token, several copies where they are
//! materialized: scores, softmax, dropout mask, dropped weights); then the logits with their
//! softmax and gradient. burn's allocators keep freed buffers for reuse and the process has its
//! own baseline, which [`BASELINE`] covers; the estimate is checked against measured peaks in
//! docs/performance.md (`bench`'s `peak_rss_mb`).

use crate::config::{Precision, RunConfig};

/// What the process needs besides the run's tensors (code, burn's runtime, allocator slack).
pub const BASELINE: u64 = 64 << 20;

/// How far over the available memory an estimate may be before the run is refused.
pub const MARGIN: u64 = 2;

/// The parts of a run's memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryEstimate {
    pub weights: u64,
    pub gradients: u64,
    pub optimizer: u64,
    pub activations: u64,
}

impl MemoryEstimate {
    /// The estimate for `config` with a vocabulary of `vocab_size` tokens.
    pub fn of(config: &RunConfig, vocab_size: usize) -> Self {
        let params = parameters(config, vocab_size);
        // The weights' type: f32 under bf16-mixed, half in f16/bf16 runs.
        let weight_bytes = config.train.precision.dtype().size() as u64;
        let weights = params.saturating_mul(weight_bytes);
        Self {
            weights,
            gradients: weights,
            optimizer: weights.saturating_mul(2),
            activations: activations(config, vocab_size),
        }
    }

    /// Everything, the process baseline included.
    pub fn total(&self) -> u64 {
        [
            self.weights,
            self.gradients,
            self.optimizer,
            self.activations,
        ]
        .into_iter()
        .fold(BASELINE, u64::saturating_add)
    }

    /// `about 5.1 GiB: weights 41 MiB, gradients 41 MiB, optimizer 82 MiB, activations 4.9 GiB
    /// (batch 64 × block 256)`.
    pub fn describe(&self, config: &RunConfig) -> String {
        format!(
            "about {}: weights {}, gradients {}, optimizer {}, activations {} (batch {} × block {})",
            bytes(self.total()),
            bytes(self.weights),
            bytes(self.gradients),
            bytes(self.optimizer),
            bytes(self.activations),
            config.train.batch_size,
            config.model.block_size,
        )
    }

    /// A one-line error when the run needs more than [`MARGIN`] times the `available` bytes,
    /// saying what to change. The estimate runs high (up to 1.7× the measured peak, see
    /// docs/performance.md), so a run within the margin is let through rather than refused.
    /// `place` names where `available` was measured (`this machine`, `CUDA device 0`).
    pub fn check(&self, config: &RunConfig, available: u64, place: &str) -> Result<(), String> {
        if self.total() <= available.saturating_mul(MARGIN) {
            return Ok(());
        }
        // Would one window per micro-batch fit? Then the batch is what to change.
        let one_window = self.activations / config.train.batch_size.max(1) as u64;
        let smallest = self.total() - self.activations + one_window;
        let fix = if smallest <= available.saturating_mul(MARGIN) {
            "lower train.batch_size (and raise train.grad_accum to keep the tokens per step) or model.block_size"
        } else {
            "make the model smaller (model.n_layer, model.n_embd)"
        };
        Err(format!(
            "the run needs {}, more than {MARGIN} times the {} {place} has available; {fix}",
            self.describe(config),
            bytes(available)
        ))
    }
}

/// The model's parameter count, as `Gpt::new` builds it.
pub fn parameters(config: &RunConfig, vocab_size: usize) -> u64 {
    let m = &config.model;
    let (c, f, v, t) = (
        m.n_embd as u64,
        m.ff_hidden() as u64,
        vocab_size as u64,
        m.block_size as u64,
    );
    let bias = u64::from(m.bias);
    let layer_norm = c + bias * c;
    let linear = |inputs: u64, outputs: u64| inputs * outputs + bias * outputs;
    // SwiGLU's gate is a third feed-forward matrix.
    let gate = match m.activation {
        quill_model::Activation::Swiglu => linear(c, f),
        _ => 0,
    };
    let block =
        2 * layer_norm + linear(c, 3 * c) + linear(c, c) + linear(c, f) + gate + linear(f, c);
    let positions = match m.positional {
        quill_model::Positional::Learned => t * c,
        quill_model::Positional::Sinusoidal | quill_model::Positional::Rotary => 0,
    };
    // The head has no bias; tied, it is the token embedding.
    let head = if m.tie_weights { 0 } else { c * v };
    let blocks = (m.n_layer as u64).saturating_mul(block);
    (v * c + positions + layer_norm + head).saturating_add(blocks)
}

/// Bytes of the activations one micro-batch keeps for its backward pass.
fn activations(config: &RunConfig, vocab_size: usize) -> u64 {
    let m = &config.model;
    let tokens = (config.train.batch_size as u64).saturating_mul(m.block_size as u64);
    let (c, f, h, t) = (
        m.n_embd as u64,
        m.ff_hidden() as u64,
        m.n_head as u64,
        m.block_size as u64,
    );
    // Attention weights are materialized with dropout or mixed precision (see the model's
    // attention); otherwise the fused path keeps one copy.
    let materialized = m.dropout > 0.0 || config.train.precision == Precision::Bf16Mixed;
    let attention_copies = if materialized { 4 } else { 1 };
    let per_token_layer = 16 * c + 3 * f + attention_copies * h * t;
    let per_token = (m.n_layer as u64)
        .saturating_mul(per_token_layer)
        .saturating_add(4 * c + 3 * vocab_size as u64);
    // Activations are counted in the weights' type (bf16-mixed keeps f32 between products).
    let element = config.train.precision.dtype().size() as u64;
    tokens.saturating_mul(per_token).saturating_mul(element)
}

/// `n` bytes in KiB, MiB or GiB, one decimal.
pub fn bytes(n: u64) -> String {
    let units = [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];
    for (unit, shift) in units {
        if n >= 1 << shift {
            return format!("{:.1} {unit}", n as f64 / (1u64 << shift) as f64);
        }
    }
    format!("{n} bytes")
}

/// The memory the operating system can still give this process (Linux's `MemAvailable`);
/// `None` where it cannot be read.
pub fn host_available() -> Option<u64> {
    proc_kib("/proc/meminfo", "MemAvailable:").map(|kib| kib * 1024)
}

/// The value of a `KEY: N kB` line of a Linux `/proc` file (`/proc/meminfo`,
/// `/proc/self/status`), in KiB; `None` elsewhere.
pub fn proc_kib(file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::module::Module;
    use quill_model::{Activation, Gpt, ModelConfig, Positional};

    #[test]
    fn the_parameter_count_is_the_model_s() {
        let shapes = [
            (false, true, Positional::Learned, 0, Activation::Gelu),
            (true, false, Positional::Sinusoidal, 40, Activation::Gelu),
            (true, true, Positional::Learned, 24, Activation::Relu2),
            (false, true, Positional::Rotary, 0, Activation::Swiglu),
            (true, false, Positional::Rotary, 24, Activation::Swiglu),
        ];
        for (bias, tie_weights, positional, ff_width, activation) in shapes {
            let config = RunConfig {
                model: ModelConfig {
                    n_layer: 2,
                    n_head: 2,
                    n_embd: 8,
                    block_size: 6,
                    bias,
                    tie_weights,
                    positional,
                    ff_width,
                    activation,
                    ..ModelConfig::default()
                },
                ..RunConfig::default()
            };
            let gpt = Gpt::<NdArray>::new(&config.model, 11, &Default::default());
            assert_eq!(
                parameters(&config, 11),
                gpt.num_params() as u64,
                "{config:?}"
            );
        }
    }

    #[test]
    fn a_run_that_cannot_fit_is_refused_with_what_to_change() {
        let mut config = RunConfig::default();
        config.train.batch_size = 100_000_000;
        let estimate = MemoryEstimate::of(&config, 65);
        let error = estimate
            .check(&config, 16 << 30, "this machine")
            .unwrap_err();
        assert!(error.starts_with("the run needs about "), "{error}");
        assert!(
            error.contains("more than 2 times the 16.0 GiB this machine has available; lower"),
            "{error}"
        );
        assert!(!error.contains('\n'));

        let mut deep = RunConfig::default();
        deep.model.n_layer = 100_000;
        let error = MemoryEstimate::of(&deep, 65)
            .check(&deep, 16 << 30, "this machine")
            .unwrap_err();
        assert!(error.contains("make the model smaller"), "{error}");

        // The shipped default (shakespeare-char): about 6.6 GiB estimated, 5.5 GiB measured on
        // burn-flex; within the margin of 4 GiB, refused under 3 GiB.
        let default = RunConfig::default();
        let fits = MemoryEstimate::of(&default, 65);
        assert!(fits.total() < 7 << 30, "{}", fits.describe(&default));
        assert_eq!(fits.check(&default, 4 << 30, "this machine"), Ok(()));
        assert!(fits.check(&default, 3 << 30, "this machine").is_err());
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes(512), "512 bytes");
        assert_eq!(bytes(41 << 20), "41.0 MiB");
        assert_eq!(bytes((5 << 30) + (1 << 29)), "5.5 GiB");
        assert_eq!(bytes(3 << 40), "3.0 TiB");
    }
}
