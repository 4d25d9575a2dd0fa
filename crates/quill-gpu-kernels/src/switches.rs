//! The environment variables that pick, on the GPU runners, between this crate's kernels and
//! burn's own operations, read once at start-up; each wrong value is a one-line error.

use std::sync::atomic::{AtomicBool, Ordering};

/// One kernel's choice: `fused` (this crate's) or `burn` (burn's operations), from its
/// environment variable; until that is read, the default.
pub struct Switch {
    pub env: &'static str,
    fused_by_default: bool,
    fused: AtomicBool,
}

impl Switch {
    const fn new(env: &'static str, fused_by_default: bool) -> Self {
        Self {
            env,
            fused_by_default,
            fused: AtomicBool::new(fused_by_default),
        }
    }

    /// Reads [`Self::env`]: `fused`, `burn`, or unset or empty for the default; `Ok(true)`
    /// for the kernels, or a one-line error naming the choices.
    pub fn choose_from_env(&self) -> Result<bool, String> {
        let value = std::env::var(self.env).unwrap_or_default();
        let fused = match value.trim() {
            "" => self.fused_by_default,
            "fused" => true,
            "burn" => false,
            _ => {
                let choices = match self.fused_by_default {
                    true => "fused, burn",
                    false => "burn, fused",
                };
                return Err(format!("{}={value} is not one of: {choices}", self.env));
            }
        };
        self.set(fused);
        Ok(fused)
    }

    /// Chooses the kernels (`true`) or burn's operations from now on.
    pub fn set(&self, fused: bool) {
        self.fused.store(fused, Ordering::Relaxed);
    }

    /// Whether the kernels are chosen.
    pub fn fused(&self) -> bool {
        self.fused.load(Ordering::Relaxed)
    }
}

/// Attention's softmax with dropout ([`causal_softmax`]).
pub static SOFTMAX: Switch = Switch::new("QUILL_SOFTMAX", true);
/// Residual dropout ([`residual_dropout`]).
pub static DROPOUT: Switch = Switch::new("QUILL_DROPOUT", true);
/// The optimizer's step and clipping's sum of squares ([`adamw_step`], [`sum_of_squares`]).
pub static ADAMW: Switch = Switch::new("QUILL_ADAMW", true);
/// The layer norm ([`layer_norm`]).
pub static LAYER_NORM: Switch = Switch::new("QUILL_LAYER_NORM", true);
/// Attention's head split ([`split_heads`]).
pub static SPLIT_HEADS: Switch = Switch::new("QUILL_SPLIT_HEADS", true);

/// Reads every switch above: the suffix of the backend's name for those not at their default
/// (`+burn-softmax`, `+burn-dropout`, `+burn-adamw`, `+burn-layer-norm`, `+burn-split-heads`, in
/// that order), or the first one-line error.
pub fn choose_all_from_env() -> Result<String, String> {
    let switches = [
        (!SOFTMAX.choose_from_env()?, "+burn-softmax"),
        (!DROPOUT.choose_from_env()?, "+burn-dropout"),
        (!ADAMW.choose_from_env()?, "+burn-adamw"),
        (!LAYER_NORM.choose_from_env()?, "+burn-layer-norm"),
        (!SPLIT_HEADS.choose_from_env()?, "+burn-split-heads"),
    ];
    Ok(switches
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect())
}
