//! burn-train's checkpoint retention, with every deletion held back until a newer checkpoint
//! is complete on disk.

use burn::train::checkpoint::{CheckpointingAction, CheckpointingStrategy};
use burn::train::metric::store::EventStoreClient;

use super::SavesInFlight;
use crate::run_dir::RunDir;

/// Wraps burn-train's retention strategies so that no checkpoint is deleted before a newer one
/// is complete on disk (burn writes the three parts on their own threads, and a kill between
/// "delete the old set" and "the new set is written" would otherwise leave nothing to resume).
pub struct SafeRetention<S> {
    inner: S,
    run: RunDir,
    pending: Vec<usize>,
    saves: SavesInFlight,
}

impl<S> SafeRetention<S> {
    /// `saves` counts the checkpoints this strategy starts (see [`SavesInFlight`]).
    pub fn new(inner: S, run: RunDir, saves: SavesInFlight) -> Self {
        Self {
            inner,
            run,
            pending: Vec::new(),
            saves,
        }
    }
}

impl<S: CheckpointingStrategy> CheckpointingStrategy for SafeRetention<S> {
    fn checkpointing(
        &mut self,
        epoch: usize,
        collector: &EventStoreClient,
    ) -> Vec<CheckpointingAction> {
        let mut actions = Vec::new();
        for action in self.inner.checkpointing(epoch, collector) {
            match action {
                CheckpointingAction::Delete(old) => self.pending.push(old),
                CheckpointingAction::Save => {
                    // burn-train hands the parts to its writers right after this returns.
                    self.saves.started();
                    actions.push(CheckpointingAction::Save);
                }
            }
        }
        let newest_complete = self.run.latest_checkpoint().unwrap_or(0);
        self.pending.retain(|&old| {
            let safe = old < newest_complete;
            if safe {
                actions.push(CheckpointingAction::Delete(old));
            }
            !safe
        });
        actions
    }
}
