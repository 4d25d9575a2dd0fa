//! The environment variables that pick, on the GPU runners, between this crate's kernels and
//! burn's own operations, read once at start-up; each wrong value is a one-line error.

use std::sync::atomic::{AtomicBool, Ordering};

/// The environment variable that picks attention's softmax on the GPU runners.
pub const SOFTMAX_ENV: &str = "QUILL_SOFTMAX";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Makes the model use [`causal_softmax`] from now on.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether the model uses [`causal_softmax`].
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Reads [`SOFTMAX_ENV`]: `burn` (or unset: burn's composed operations) or `fused` (this
/// crate's kernels, then [`enable`]d); `Ok(true)` for the fused kernels, or a one-line error.
pub fn choose_from_env() -> Result<bool, String> {
    let fused = fused_from_env(SOFTMAX_ENV, false)?;
    if fused {
        enable();
    }
    Ok(fused)
}

/// `env`'s choice between this crate's kernels (`fused`) and burn's operations (`burn`);
/// `fused_by_default` when it is unset or empty; a one-line error for any other value.
fn fused_from_env(env: &str, fused_by_default: bool) -> Result<bool, String> {
    let value = std::env::var(env).unwrap_or_default();
    let options = match fused_by_default {
        true => "fused, burn",
        false => "burn, fused",
    };
    match value.trim() {
        "" => Ok(fused_by_default),
        "fused" => Ok(true),
        "burn" => Ok(false),
        _ => Err(format!("{env}={value} is not one of: {options}")),
    }
}

/// The environment variable that picks the optimizer's step on the GPU runners.
pub const ADAMW_ENV: &str = "QUILL_ADAMW";

static ADAMW_BURN: AtomicBool = AtomicBool::new(false);

/// Reads [`ADAMW_ENV`]: `fused` (or unset: [`adamw_step`]'s and [`sum_of_squares`]'s kernels)
/// or `burn` (burn's `AdamW` and clipping, then both decline every tensor); `Ok(true)` for the
/// kernels, or a one-line error.
pub fn choose_adamw_from_env() -> Result<bool, String> {
    let fused = fused_from_env(ADAMW_ENV, true)?;
    ADAMW_BURN.store(!fused, Ordering::Relaxed);
    Ok(fused)
}

/// The environment variable that picks the layer norm on the GPU runners.
pub const LAYER_NORM_ENV: &str = "QUILL_LAYER_NORM";

static LAYER_NORM_BURN: AtomicBool = AtomicBool::new(false);

/// Reads [`LAYER_NORM_ENV`]: `fused` (or unset: [`layer_norm`]'s kernels) or `burn` (burn's
/// `LayerNorm`, then [`layer_norm`] declines every tensor); `Ok(true)` for the kernels, or a
/// one-line error.
pub fn choose_layer_norm_from_env() -> Result<bool, String> {
    let fused = fused_from_env(LAYER_NORM_ENV, true)?;
    LAYER_NORM_BURN.store(!fused, Ordering::Relaxed);
    Ok(fused)
}

/// The environment variable that picks how attention splits its heads on the GPU runners.
pub const SPLIT_HEADS_ENV: &str = "QUILL_SPLIT_HEADS";

static SPLIT_HEADS_BURN: AtomicBool = AtomicBool::new(false);

/// Reads [`SPLIT_HEADS_ENV`]: `fused` (or unset: [`split_heads`]'s kernels) or `burn` (burn's
/// slices and views, then [`split_heads`] declines every tensor); `Ok(true)` for the kernels,
/// or a one-line error.
pub fn choose_split_heads_from_env() -> Result<bool, String> {
    let fused = fused_from_env(SPLIT_HEADS_ENV, true)?;
    SPLIT_HEADS_BURN.store(!fused, Ordering::Relaxed);
    Ok(fused)
}

/// Reads every switch above: the suffix of the backend's name for those not at their default
/// (`+fused-softmax`, `+burn-adamw`, `+burn-layer-norm`, `+burn-split-heads`, in that order), or
/// the first one-line error.
pub fn choose_all_from_env() -> Result<String, String> {
    let switches = [
        (choose_from_env()?, "+fused-softmax"),
        (!choose_adamw_from_env()?, "+burn-adamw"),
        (!choose_layer_norm_from_env()?, "+burn-layer-norm"),
        (!choose_split_heads_from_env()?, "+burn-split-heads"),
    ];
    Ok(switches
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect())
}

/// Whether `QUILL_ADAMW=burn` was chosen.
pub(crate) fn adamw_burn() -> bool {
    ADAMW_BURN.load(Ordering::Relaxed)
}

/// Whether `QUILL_LAYER_NORM=burn` was chosen.
pub(crate) fn layer_norm_burn() -> bool {
    LAYER_NORM_BURN.load(Ordering::Relaxed)
}

/// Whether `QUILL_SPLIT_HEADS=burn` was chosen.
pub(crate) fn split_heads_burn() -> bool {
    SPLIT_HEADS_BURN.load(Ordering::Relaxed)
}
