//! Ctrl-C as a clean stop: the first SIGINT (or SIGTERM) asks the run to stop after its current
//! step and save a checkpoint; another one more than [`SAME_REQUEST`] later exits at once with
//! status 130.
//!
//! Signals that arrive together are one request: GNU `timeout` signals the child and then its
//! process group, and a terminal's Ctrl-C reaches every process of the foreground group, so one
//! request can arrive as two signals microseconds apart. A listening thread (signal-hook's
//! iterator, no code runs inside the signal handler itself) tells the two cases apart by time.
//! The training step reads the flag after each optimizer step, see `run_control::RunControl`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The exit status of a run stopped by a signal (128 + SIGINT), as shells report it.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Signals closer together than this are one request to stop.
pub const SAME_REQUEST: Duration = Duration::from_secs(1);

fn flag() -> &'static AtomicBool {
    static FLAG: AtomicBool = AtomicBool::new(false);
    &FLAG
}

/// Routes SIGINT and SIGTERM to [`requested`]. Call once, from a binary's `main`; later calls
/// do nothing.
pub fn install_handlers() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    static INSTALLED: OnceLock<()> = OnceLock::new();
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    INSTALLED.get_or_init(|| ());
    std::thread::Builder::new()
        .name("quill-signals".into())
        .spawn(move || {
            let mut requests = Requests::default();
            for _ in signals.forever() {
                match requests.on_signal(Instant::now()) {
                    Request::Stop => request(),
                    Request::Same => {}
                    Request::ExitNow => std::process::exit(i32::from(EXIT_INTERRUPTED)),
                }
            }
        })?;
    Ok(())
}

/// What a signal asks for, given the signals before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// The first: stop after the current step and save it.
    Stop,
    /// Part of the first request (within [`SAME_REQUEST`] of it).
    Same,
    /// A second request: exit now.
    ExitNow,
}

/// The signals seen so far.
#[derive(Debug, Default)]
pub struct Requests {
    first: Option<Instant>,
}

impl Requests {
    pub fn on_signal(&mut self, now: Instant) -> Request {
        match self.first {
            None => {
                self.first = Some(now);
                Request::Stop
            }
            Some(first) if now.saturating_duration_since(first) < SAME_REQUEST => Request::Same,
            Some(_) => Request::ExitNow,
        }
    }
}

/// Whether the user asked the run to stop.
pub fn requested() -> bool {
    flag().load(Ordering::SeqCst)
}

/// Asks the run to stop, as a first Ctrl-C does (the signal thread's only way in).
fn request() {
    flag().store(true, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_within_a_second_are_one_request() {
        let start = Instant::now();
        let mut requests = Requests::default();
        assert_eq!(requests.on_signal(start), Request::Stop);
        assert_eq!(
            requests.on_signal(start + Duration::from_micros(5)),
            Request::Same
        );
        assert_eq!(
            requests.on_signal(start + Duration::from_millis(999)),
            Request::Same
        );
        assert_eq!(
            requests.on_signal(start + Duration::from_millis(1001)),
            Request::ExitNow
        );
    }
}
