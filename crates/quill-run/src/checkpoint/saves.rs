//! Waiting for the checkpoint files burn-train's writer threads still hold.

use std::sync::{Arc, Condvar, Mutex};

use super::PARTS;

/// Checkpoint files handed to burn-train's writer threads and not yet written.
///
/// burn-train converts each checkpoint's tensors to bytes on its own threads while training
/// goes on. On burn's fusion backends (`quill-wgpu`, `quill-cuda`) reading tensors from one
/// thread while another keeps queueing work on them can corrupt the fusion streams
/// ("Should have handle for tensor", tracel-ai/burn#4347, open in 0.21). So the training step
/// waits until the checkpoint started at the epoch's end is written: one pause per epoch, the
/// time of writing a checkpoint.
///
/// It also keeps the first write that failed: burn-train only passes that on as a stop of its
/// interrupter, indistinguishable from a user's stop.
#[derive(Debug, Clone, Default)]
pub struct SavesInFlight(Arc<(Mutex<Saves>, Condvar)>);

#[derive(Debug, Default)]
struct Saves {
    in_flight: usize,
    failed: Option<String>,
}

impl SavesInFlight {
    /// Counts a checkpoint (all its parts) about to be handed to the writer threads.
    pub(super) fn started(&self) {
        self.0.0.lock().expect("saves lock").in_flight += PARTS.len();
    }

    /// Keeps `error` if it is the first checkpoint write that failed.
    pub(super) fn failed(&self, error: String) {
        let mut saves = self
            .0
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        saves.failed.get_or_insert(error);
    }

    /// Why a checkpoint could not be written, if one could not.
    pub fn failure(&self) -> Option<String> {
        let saves = self
            .0
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        saves.failed.clone()
    }

    pub(super) fn count_off_when_done(&self) -> CountOff<'_> {
        CountOff(self)
    }

    /// Blocks until every checkpoint file started is written (or failed).
    pub fn wait(&self) {
        let (lock, written) = &*self.0;
        let mut saves = lock.lock().expect("saves lock");
        while saves.in_flight > 0 {
            saves = written.wait(saves).expect("saves lock");
        }
    }
}

/// Counts one file of a [`SavesInFlight`] as written when dropped.
pub(super) struct CountOff<'a>(&'a SavesInFlight);

impl Drop for CountOff<'_> {
    fn drop(&mut self) {
        let (lock, written) = &*self.0.0;
        // A writer thread that panicked may have poisoned the lock; the count is still right.
        let mut saves = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        saves.in_flight = saves.in_flight.saturating_sub(1);
        written.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Module;
    use burn::record::Recorder;

    use super::*;
    use crate::checkpoint::AtomicRecorder;
    use crate::checkpoint::recorder::test_layer::{B, drawn_layer};

    #[test]
    fn a_step_waits_until_every_part_of_a_started_checkpoint_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let saves = SavesInFlight::default();
        let recorder = AtomicRecorder::for_checkpointer(None, saves.clone());
        saves.started();
        let writer = {
            let dir = dir.path().to_path_buf();
            std::thread::spawn(move || {
                for part in PARTS {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    Recorder::<B>::record(&recorder, drawn_layer().into_record(), dir.join(part))
                        .unwrap();
                }
            })
        };
        saves.wait();
        for part in PARTS {
            assert!(
                dir.path().join(format!("{part}.mpk")).exists(),
                "{part} not written"
            );
        }
        writer.join().unwrap();
        // Nothing in flight: no wait.
        saves.wait();
    }
}
