//! Free disk space, for the checks before a run writes (quill-train's `disk`) and the
//! checkpoint writer's report of a full disk.

use std::path::Path;

/// The bytes free to an unprivileged user on the file system that holds `path`, or its
/// nearest existing ancestor (the run directory may not exist yet).
pub fn free_space(path: &Path) -> Option<u64> {
    // Test hook: `QUILL_FREE_DISK_BYTES=N` stands for a nearly full disk (with the
    // `fault-injection` feature only).
    #[cfg(feature = "fault-injection")]
    if let Some(free) = std::env::var("QUILL_FREE_DISK_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return Some(free);
    }
    // A relative path's last ancestor is "", which is the working directory.
    let existing = path
        .ancestors()
        .map(|p| match p.as_os_str().is_empty() {
            true => Path::new("."),
            false => p,
        })
        .find(|p| p.exists())?;
    #[cfg(unix)]
    {
        let stat = rustix::fs::statvfs(existing).ok()?;
        Some(stat.f_bavail.saturating_mul(stat.f_frsize))
    }
    #[cfg(not(unix))]
    {
        let _ = existing;
        None
    }
}
