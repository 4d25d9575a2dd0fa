//! Ctrl-C as a clean stop: the first SIGINT (or SIGTERM) asks the run to stop after its current
//! step and save a checkpoint; a second one exits at once with status 130.
//!
//! The signal handler only sets a flag (nothing else is safe inside one); the training step
//! reads it after each optimizer step, see [`crate::step::RunControl`].

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// The exit status of a run stopped by a signal (128 + SIGINT), as shells report it.
pub const EXIT_INTERRUPTED: u8 = 130;

fn flag() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Routes SIGINT and SIGTERM to [`requested`]. Call once, from a binary's `main`.
pub fn install_handlers() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for signal in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag as it was before this signal: set means a
        // second signal, which exits now.
        signal_hook::flag::register_conditional_shutdown(
            signal,
            i32::from(EXIT_INTERRUPTED),
            Arc::clone(flag()),
        )?;
        signal_hook::flag::register(signal, Arc::clone(flag()))?;
    }
    Ok(())
}

/// Whether the user asked the run to stop.
pub fn requested() -> bool {
    flag().load(Ordering::SeqCst)
}

/// Asks the run to stop, as a first Ctrl-C does.
pub fn request() {
    flag().store(true, Ordering::SeqCst);
}
