//! burn's recorder, writing each checkpoint file whole or not at all, and serving a mid-epoch
//! checkpoint where burn-train asks for an epoch's.

use std::path::{Path, PathBuf};

use burn::record::{
    BurnRecord, FileRecorder, FullPrecisionSettings, NamedMpkFileRecorder, Record, Recorder,
    RecorderError,
};
use burn::tensor::backend::Backend;

use super::files::{sync_dir, sync_file};
use super::{PARTS, SavesInFlight, StandIn};

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
        let saved = Recorder::<B>::save_item(self, item, file);
        if let (Err(error), Some(saves)) = (&saved, &self.saves) {
            saves.failed(error.to_string());
        }
        saved
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
        let written = Recorder::<B>::save_item(&self.inner, item, partial.with_extension(""))
            .map_err(|error| {
                // rmp-serde's message drops the I/O error; a failed write on a file system
                // with no room left is a full disk.
                match crate::free_space(&partial).is_some_and(|free| free < 1 << 20) {
                    true => disk_full(&target),
                    false => error,
                }
            });
        #[cfg(feature = "fault-injection")]
        let written = written.and_then(|()| {
            super::files::fault_injection::maybe_crash(&partial, &target);
            super::files::fault_injection::disk_full(&partial, &target)
                .map_err(|_| disk_full(&target))
        });
        if let Err(error) = written {
            // The space it took is given back; the previous checkpoint is complete.
            let _ = std::fs::remove_file(&partial);
            return Err(error);
        }
        sync_file(&partial).map_err(|e| RecorderError::Unknown(e.to_string()))?;
        std::fs::rename(&partial, &target).map_err(|e| RecorderError::Unknown(e.to_string()))?;
        sync_dir(&target);
        Ok(())
    }
}

fn disk_full(target: &Path) -> RecorderError {
    let error = std::io::Error::from_raw_os_error(28);
    RecorderError::Unknown(format!("writing {}: {error}", target.display()))
}

#[cfg(test)]
pub(crate) mod test_layer {
    use burn::backend::NdArray;
    use burn::nn::{Linear, LinearConfig};

    pub type B = NdArray;

    /// A layer with its (lazily initialized) weights drawn, so clones share them.
    pub fn drawn_layer() -> Linear<B> {
        let layer = LinearConfig::new(3, 2).init(&Default::default());
        let _ = layer.weight.val();
        let _ = layer.bias.as_ref().map(|b| b.val());
        layer
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Module;
    use burn::nn::Linear;

    use super::test_layer::{B, drawn_layer};
    use super::*;

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
}
