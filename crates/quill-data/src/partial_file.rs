//! Files that appear whole or not at all: written under a temporary name, renamed into
//! place when complete (`data prepare`'s token files and `meta.json`).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::DataError;

/// The error of a prepared file that could not be written.
pub(crate) fn write_error(path: &Path, source: std::io::Error) -> DataError {
    DataError::PreparedWrite {
        path: path.to_owned(),
        source,
    }
}

/// A file written under a temporary name (one per process), renamed into place by
/// [`PartialFile::commit`] and removed when dropped before that.
pub(crate) struct PartialFile {
    path: PathBuf,
    temp: PathBuf,
    out: Option<std::io::BufWriter<std::fs::File>>,
}

impl PartialFile {
    pub(crate) fn create(path: PathBuf) -> Result<Self, DataError> {
        let mut temp = path.as_os_str().to_owned();
        temp.push(format!(".partial-{}", std::process::id()));
        let temp = PathBuf::from(temp);
        let file = std::fs::File::create(&temp).map_err(|e| write_error(&path, e))?;
        Ok(Self {
            out: Some(std::io::BufWriter::with_capacity(1 << 20, file)),
            path,
            temp,
        })
    }

    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> Result<(), DataError> {
        let out = self.out.as_mut().expect("open until committed");
        out.write_all(bytes).map_err(|e| write_error(&self.path, e))
    }

    pub(crate) fn commit(mut self) -> Result<(), DataError> {
        let out = self.out.take().expect("open until committed");
        out.into_inner()
            .map_err(|e| write_error(&self.path, e.into_error()))?;
        std::fs::rename(&self.temp, &self.path).map_err(|e| write_error(&self.path, e))?;
        self.temp = PathBuf::new();
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            self.out = None;
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}
