//! Whether this node is waiting for the others in a collective call, and what a panic of
//! burn-collective's tasks therefore means ([`collective_panic`]).
//!
//! `nodes` marks its collective calls (`waiting`), and its watchdog ends a wait that lasts too
//! long (`waited`) through `failure`; `failure`'s panic hook asks [`collective_panic`] what a
//! panic means. The state lives here, depending on neither, so that `failure` need not depend
//! on `nodes`, which depends on `failure`.

use std::sync::Mutex;
use std::time::Instant;

/// What a panic of burn-collective's or burn-communication's tasks means; they panic when a
/// peer's connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectivePanic {
    /// While this node waits for the others (joining, or a step's exchange): one is gone.
    LostNode,
    /// Between exchanges: another node may simply have finished first (its last checkpoint
    /// written while this one still writes), so nothing to report here; a node that is really
    /// gone fails the next exchange.
    Between,
}

/// What a panic at `file` means, when it is burn-collective's or burn-communication's.
pub fn collective_panic(file: &str) -> Option<CollectivePanic> {
    if !(file.contains("burn-collective") || file.contains("burn-communication")) {
        return None;
    }
    match waited().is_some() {
        true => Some(CollectivePanic::LostNode),
        false => Some(CollectivePanic::Between),
    }
}

/// What the watchdog watches: since when this node waits for the others, and for what.
static WAITING: Mutex<Option<(Instant, &'static str)>> = Mutex::new(None);

/// Runs `work` (a collective call) under the watchdog.
pub(crate) fn waiting<T>(what: &'static str, work: impl FnOnce() -> T) -> T {
    *WAITING.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), what));
    let result = work();
    *WAITING.lock().unwrap_or_else(|e| e.into_inner()) = None;
    result
}

/// Since when this node waits for the others, and for what (`None`: it is not waiting).
pub(crate) fn waited() -> Option<(Instant, &'static str)> {
    *WAITING.lock().unwrap_or_else(|e| e.into_inner())
}
