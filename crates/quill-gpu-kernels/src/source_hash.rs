//! A hash of this crate's sources, computed by `build.rs` (which includes this file) and kept
//! in [`crate::SOURCE_HASH`].
//!
//! cubecl keys a compiled kernel by its type's name and its compile-time arguments, not by its
//! code: after a change to a kernel here, a persistent cache would hand back the old kernel.
//! The GPU runners therefore keep compiled kernels in a folder per value of this hash.

use std::path::Path;

/// FNV-1a (64 bits) over the `.rs` files in `dir` and its subfolders, in path order, each as
/// its path (relative to `dir`, `/`-separated) then its bytes; 16 hexadecimal digits. FNV
/// because its value is fixed by its definition, so a build script and a test compute the same
/// one.
pub fn of_folder(dir: &Path) -> std::io::Result<String> {
    let mut files = Vec::new();
    collect_sources(dir, "", &mut files)?;
    files.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, path) in files {
        for byte in name.into_bytes().into_iter().chain(std::fs::read(&path)?) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    Ok(format!("{hash:016x}"))
}

/// Pushes `(relative path, path)` for each `.rs` file under `dir`, whose path relative to the
/// hashed folder starts with `prefix`.
fn collect_sources(
    dir: &Path,
    prefix: &str,
    files: &mut Vec<(String, std::path::PathBuf)>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = format!(
            "{prefix}{}",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        if path.is_dir() {
            collect_sources(&path, &format!("{name}/"), files)?;
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push((name, path));
        }
    }
    Ok(())
}
