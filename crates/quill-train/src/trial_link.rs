//! A training run that a sweep drives (`train --sweep-trial`): after each evaluation, once the
//! epoch's checkpoint is on disk, the run writes its validation loss to stdout as one
//! [`EVAL_PREFIX`] line and waits for the sweep's answer on stdin, `continue` or `stop`.
//!
//! This is burn-train's early-stopping hook, so the answer comes where stopping costs nothing:
//! the checkpoint of the step just evaluated is saved, and a promoted trial resumes from it
//! with the learning-rate schedule of its full length. A closed stdin (the sweep was killed)
//! counts as `stop`, so an orphaned trial ends at its next evaluation instead of training on
//! unwatched.

use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};

use burn::train::EarlyStoppingStrategy;
use burn::train::metric::store::{Aggregate, EventStoreClient, Split};

/// The start of the line a trial writes after each evaluation: `quill-trial-eval STEP LOSS`.
pub const EVAL_PREFIX: &str = "quill-trial-eval ";

/// The sweep's answer that lets the trial train on; anything else stops it.
pub const CONTINUE: &str = "continue";

/// Asks the operating system to send this process SIGTERM when the sweep that started it dies
/// (Linux), so a trial of a killed sweep stops at once, checkpoint saved, like on Ctrl-C.
pub fn follow_parent() {
    #[cfg(target_os = "linux")]
    if let Err(e) =
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))
    {
        eprintln!("warning: cannot follow the sweep process: {e}");
    }
}

/// One evaluation as the sweep reads it from a trial's stdout.
pub fn parse_eval(line: &str) -> Option<(usize, f64)> {
    let rest = line.strip_prefix(EVAL_PREFIX)?;
    let (step, loss) = rest.trim().split_once(' ')?;
    Some((step.parse().ok()?, loss.parse().ok()?))
}

/// The early-stopping strategy of a sweep's trial; see the module docs.
#[derive(Clone)]
pub struct SweepLink {
    steps_per_epoch: usize,
    /// The step after which the sweep stopped the run, once it has.
    stopped: Arc<Mutex<Option<usize>>>,
}

impl std::fmt::Debug for SweepLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SweepLink")
            .field("stopped", &self.stopped_at())
            .finish()
    }
}

impl SweepLink {
    pub fn new(steps_per_epoch: usize) -> Self {
        Self {
            steps_per_epoch,
            stopped: Arc::new(Mutex::new(None)),
        }
    }

    /// The step after which the sweep stopped the run, if it did.
    pub fn stopped_at(&self) -> Option<usize> {
        *self.stopped.lock().expect("sweep link lock")
    }

    /// Reports `loss` at `step` and reads the answer: whether to stop.
    fn ask(&self, step: usize, loss: f64) -> bool {
        let mut out = std::io::stdout().lock();
        let sent = writeln!(out, "{EVAL_PREFIX}{step} {loss}").and_then(|()| out.flush());
        drop(out);
        let mut answer = String::new();
        let heard = sent.is_ok()
            && std::io::stdin()
                .lock()
                .read_line(&mut answer)
                .is_ok_and(|n| n > 0);
        let stop = !heard || answer.trim() != CONTINUE;
        if stop {
            *self.stopped.lock().expect("sweep link lock") = Some(step);
        }
        stop
    }
}

impl EarlyStoppingStrategy for SweepLink {
    fn should_stop(&mut self, epoch: usize, store: &EventStoreClient) -> bool {
        let loss = store
            .find_metric("Loss", epoch, Aggregate::Mean, &Split::Valid)
            .unwrap_or(f64::NAN);
        self.ask(epoch * self.steps_per_epoch, loss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_lines_parse_back() {
        let line = format!("{EVAL_PREFIX}120 2.5312");
        assert_eq!(parse_eval(&line), Some((120, 2.5312)));
        assert_eq!(
            parse_eval(&format!("{EVAL_PREFIX}30 NaN")).map(|(s, l)| (s, l.is_nan())),
            Some((30, true))
        );
        assert_eq!(parse_eval("step 120 loss 2.5"), None);
        assert_eq!(parse_eval(&format!("{EVAL_PREFIX}x 2.5")), None);
    }
}
