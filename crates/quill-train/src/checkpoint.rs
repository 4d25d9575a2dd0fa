//! Checkpoints that survive a kill at any instant.
//!
//! burn-train writes epoch checkpoints (`checkpoint/{model,optim,scheduler}-E.mpk`) through a
//! recorder on background threads and deletes old ones as its strategy says. Two pieces here make
//! that safe: [`AtomicRecorder`] writes each file to a temporary name, syncs it and renames it,
//! so a file is either complete or absent; [`SafeRetention`] delays every deletion until a newer
//! complete set is on disk, so the previous complete checkpoint is never removed too early.
//!
//! A run stopped mid-epoch (Ctrl-C) leaves a [`MidEpoch`] checkpoint in `checkpoint/step-S/`,
//! with its `position.json` written last. burn-train only resumes at epoch boundaries, so on
//! resume the recorder serves that state as "the checkpoint of the last complete epoch"
//! ([`StandIn`]) while the data loader skips the batches already trained.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use burn::record::{
    BurnRecord, FileRecorder, FullPrecisionSettings, NamedMpkFileRecorder, Record, Recorder,
    RecorderError,
};
use burn::tensor::backend::Backend;
use burn::train::checkpoint::{CheckpointingAction, CheckpointingStrategy};
use burn::train::metric::store::EventStoreClient;
use serde::{Deserialize, Serialize};

use crate::run_dir::RunDir;

/// The three parts of a checkpoint, as burn-train names them.
pub const PARTS: [&str; 3] = ["model", "optim", "scheduler"];

/// Serves a mid-epoch checkpoint's files when burn-train asks for epoch `epoch`'s.
#[derive(Debug, Clone)]
pub struct StandIn {
    pub epoch: usize,
    pub dir: PathBuf,
}

/// Checkpoint files handed to burn-train's writer threads and not yet written.
///
/// burn-train converts each checkpoint's tensors to bytes on its own threads while training
/// goes on. On burn's fusion backends (`quill-wgpu`, `quill-cuda`) reading tensors from one
/// thread while another keeps queueing work on them can corrupt the fusion streams
/// ("Should have handle for tensor", tracel-ai/burn#4347, open in 0.21). So the training step
/// waits until the checkpoint started at the epoch's end is written: one pause per epoch, the
/// time of writing a checkpoint.
#[derive(Debug, Clone, Default)]
pub struct SavesInFlight(Arc<(Mutex<usize>, Condvar)>);

impl SavesInFlight {
    /// Counts a checkpoint (all its parts) about to be handed to the writer threads.
    fn started(&self) {
        *self.0.0.lock().expect("saves lock") += PARTS.len();
    }

    fn count_off_when_done(&self) -> CountOff<'_> {
        CountOff(self)
    }

    /// Blocks until every checkpoint file started is written (or failed).
    pub fn wait(&self) {
        let (lock, written) = &*self.0;
        let mut in_flight = lock.lock().expect("saves lock");
        while *in_flight > 0 {
            in_flight = written.wait(in_flight).expect("saves lock");
        }
    }
}

/// Counts one file of a [`SavesInFlight`] as written when dropped.
struct CountOff<'a>(&'a SavesInFlight);

impl Drop for CountOff<'_> {
    fn drop(&mut self) {
        let (lock, written) = &*self.0.0;
        // A writer thread that panicked may have poisoned the lock; the count is still right.
        let mut in_flight = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *in_flight = in_flight.saturating_sub(1);
        written.notify_all();
    }
}

/// burn's named-MessagePack format (the default recorder's), written atomically.
#[derive(Debug, Clone, Default)]
pub struct AtomicRecorder {
    inner: NamedMpkFileRecorder<FullPrecisionSettings>,
    stand_in: Option<StandIn>,
    /// Set on the recorder given to burn-train's checkpointer: each file it writes is counted
    /// off here.
    saves: Option<SavesInFlight>,
}

impl AtomicRecorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The recorder for burn-train's checkpointer: serves `stand_in` for its epoch, and counts
    /// each written file off `saves`.
    pub fn for_checkpointer(stand_in: Option<StandIn>, saves: SavesInFlight) -> Self {
        Self {
            inner: NamedMpkFileRecorder::new(),
            stand_in,
            saves: Some(saves),
        }
    }

    /// The file to read for `file` (a path without extension).
    pub fn source(&self, file: &Path) -> PathBuf {
        if let (Some(stand_in), Some(name)) = (&self.stand_in, file.file_name()) {
            for part in PARTS {
                if name.to_str() == Some(&format!("{part}-{}", stand_in.epoch)) {
                    return stand_in.dir.join(part);
                }
            }
        }
        file.to_path_buf()
    }
}

impl<B: Backend> FileRecorder<B> for AtomicRecorder {
    fn file_extension() -> &'static str {
        "mpk"
    }
}

impl<B: Backend> Recorder<B> for AtomicRecorder {
    type Settings = FullPrecisionSettings;
    type RecordArgs = PathBuf;
    type RecordOutput = ();
    type LoadArgs = PathBuf;

    fn record<R: Record<B>>(&self, record: R, file: PathBuf) -> Result<(), RecorderError> {
        // Counted off even if converting the tensors panics, so that no step waits forever.
        let _counted = self.saves.as_ref().map(SavesInFlight::count_off_when_done);
        let item = BurnRecord::<_, B>::new::<Self>(record.into_item::<FullPrecisionSettings>());
        Recorder::<B>::save_item(self, item, file)
    }

    fn save_item<I: serde::Serialize>(&self, item: I, file: PathBuf) -> Result<(), RecorderError> {
        self.write_atomically::<B, I>(item, file)
    }

    fn load_item<I: serde::de::DeserializeOwned>(
        &self,
        file: &mut PathBuf,
    ) -> Result<I, RecorderError> {
        let mut source = self.source(file);
        Recorder::<B>::load_item(&self.inner, &mut source)
    }
}

impl AtomicRecorder {
    fn write_atomically<B: Backend, I: serde::Serialize>(
        &self,
        item: I,
        file: PathBuf,
    ) -> Result<(), RecorderError> {
        let target = file.with_extension("mpk");
        let name = target
            .file_name()
            .map_or_else(|| "checkpoint".into(), |n| n.to_string_lossy().into_owned());
        // No dot in the stem: burn's recorder replaces anything after one with its extension.
        let partial = target.with_file_name(format!("partial-{name}"));
        Recorder::<B>::save_item(&self.inner, item, partial.with_extension(""))?;
        fault_injection::maybe_crash(&partial, &target);
        sync_file(&partial).map_err(|e| RecorderError::Unknown(e.to_string()))?;
        std::fs::rename(&partial, &target).map_err(|e| RecorderError::Unknown(e.to_string()))?;
        sync_dir(&target);
        Ok(())
    }
}

fn sync_file(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

/// Makes a rename durable. Best effort: not every platform can open a directory.
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(dir) = std::fs::File::open(dir)
    {
        let _ = dir.sync_all();
    }
}

/// Writes `contents` to `path` through a synced temporary file and a rename, so a reader (or a
/// run resumed after a power cut) never sees a half-written file.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    sync_dir(path);
    Ok(())
}

/// Removes what writes cut short by a kill left behind (their temporary files).
pub fn remove_partial_files(run: &RunDir) {
    let Ok(entries) = std::fs::read_dir(run.checkpoints()) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with("partial-") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Test hook: `QUILL_CRASH_WRITING=model-2` aborts the process halfway through writing
/// `model-2.mpk` (after its temporary file, before the rename), as a kill or power cut would.
mod fault_injection {
    use std::path::Path;

    pub fn maybe_crash(partial: &Path, target: &Path) {
        let Ok(name) = std::env::var("QUILL_CRASH_WRITING") else {
            return;
        };
        if target.file_stem().and_then(|s| s.to_str()) == Some(name.as_str()) {
            if let Ok(bytes) = std::fs::read(partial) {
                let _ = std::fs::write(partial, &bytes[..bytes.len() / 2]);
            }
            std::process::abort();
        }
    }
}

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

/// Where a run stopped mid-epoch: `step` optimizer steps are done. Saved as `position.json`
/// next to the model, optimizer and scheduler records, after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MidEpoch {
    pub step: usize,
}

impl MidEpoch {
    pub fn dir(run: &RunDir, step: usize) -> PathBuf {
        run.checkpoints().join(format!("step-{step}"))
    }

    fn position(dir: &Path) -> PathBuf {
        dir.join("position.json")
    }

    /// Marks the records already written in `dir` as a complete checkpoint, then removes the
    /// run's older mid-epoch checkpoints.
    pub fn commit(self, run: &RunDir) -> std::io::Result<()> {
        let dir = Self::dir(run, self.step);
        let json = serde_json::to_string(&self).expect("a position serializes");
        write_atomic(&Self::position(&dir), json.as_bytes())?;
        Self::remove_older_than(run, self.step);
        Ok(())
    }

    /// The newest complete mid-epoch checkpoint of `run`.
    pub fn latest(run: &RunDir) -> Option<Self> {
        Self::all(run)
            .into_iter()
            .filter_map(|(_, dir)| {
                let text = std::fs::read_to_string(Self::position(&dir)).ok()?;
                serde_json::from_str::<Self>(&text).ok()
            })
            .max_by_key(|m| m.step)
    }

    /// Removes mid-epoch checkpoints (complete or not) from before step `step`.
    pub fn remove_older_than(run: &RunDir, step: usize) {
        for (old, dir) in Self::all(run) {
            if old < step {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    fn all(run: &RunDir) -> Vec<(usize, PathBuf)> {
        let Ok(entries) = std::fs::read_dir(run.checkpoints()) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| {
                let e = e.ok()?;
                let step = e
                    .file_name()
                    .to_str()?
                    .strip_prefix("step-")?
                    .parse()
                    .ok()?;
                Some((step, e.path()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::module::Module;
    use burn::nn::{Linear, LinearConfig};

    type B = NdArray;

    /// A layer with its (lazily initialized) weights drawn, so clones share them.
    fn drawn_layer() -> Linear<B> {
        let layer = LinearConfig::new(3, 2).init(&Default::default());
        let _ = layer.weight.val();
        let _ = layer.bias.as_ref().map(|b| b.val());
        layer
    }

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

    #[test]
    fn files_appear_whole_and_stand_ins_are_served_for_their_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let layer = drawn_layer();
        let recorder = AtomicRecorder::new();
        let path = dir.path().join("model-3");
        Recorder::<B>::record(&recorder, layer.clone().into_record(), path.clone()).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["model-3.mpk"]);

        let stand_in_dir = dir.path().join("step-7");
        let other = drawn_layer();
        Recorder::<B>::record(
            &recorder,
            other.clone().into_record(),
            stand_in_dir.join("model"),
        )
        .unwrap();
        let serving = AtomicRecorder::for_checkpointer(
            Some(StandIn {
                epoch: 3,
                dir: stand_in_dir,
            }),
            SavesInFlight::default(),
        );
        let loaded: <Linear<B> as Module<B>>::Record =
            Recorder::<B>::load(&serving, path.clone(), &Default::default()).unwrap();
        let loaded = layer.clone().load_record(loaded);
        loaded
            .weight
            .val()
            .into_data()
            .assert_eq(&other.weight.val().into_data(), true);
        // Other epochs come from their own files.
        let plain: <Linear<B> as Module<B>>::Record =
            Recorder::<B>::load(&recorder, path, &Default::default()).unwrap();
        layer
            .clone()
            .load_record(plain)
            .weight
            .val()
            .into_data()
            .assert_eq(&layer.weight.val().into_data(), true);
    }

    #[test]
    fn only_committed_mid_epoch_checkpoints_count() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        std::fs::create_dir_all(MidEpoch::dir(&run, 30)).unwrap();
        assert_eq!(MidEpoch::latest(&run), None);
        std::fs::create_dir_all(MidEpoch::dir(&run, 10)).unwrap();
        MidEpoch { step: 10 }.commit(&run).unwrap();
        assert_eq!(MidEpoch::latest(&run), Some(MidEpoch { step: 10 }));
        std::fs::create_dir_all(MidEpoch::dir(&run, 40)).unwrap();
        MidEpoch { step: 40 }.commit(&run).unwrap();
        assert_eq!(MidEpoch::latest(&run), Some(MidEpoch { step: 40 }));
        // Older ones, committed or not, are gone.
        assert!(!MidEpoch::dir(&run, 10).exists());
        assert!(!MidEpoch::dir(&run, 30).exists());
    }
}
