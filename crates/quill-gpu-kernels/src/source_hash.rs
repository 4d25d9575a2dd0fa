//! A hash of this crate's sources, computed by `build.rs` (which includes this file) and kept
//! in [`crate::SOURCE_HASH`].
//!
//! cubecl keys a compiled kernel by its type's name and its compile-time arguments, not by its
//! code: after a change to a kernel here, a persistent cache would hand back the old kernel.
//! The GPU runners therefore keep compiled kernels in a folder per value of this hash.

use std::path::Path;

/// FNV-1a (64 bits) over the `.rs` files directly in `dir`, in name order, each as its name
/// then its bytes; 16 hexadecimal digits. FNV because its value is fixed by its definition, so
/// a build script and a test compute the same one.
pub fn of_folder(dir: &Path) -> std::io::Result<String> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for path in files {
        let name = path
            .file_name()
            .unwrap_or_default()
            .as_encoded_bytes()
            .to_vec();
        for byte in name.into_iter().chain(std::fs::read(&path)?) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    Ok(format!("{hash:016x}"))
}
