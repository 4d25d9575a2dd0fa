/// The error and its causes on one line: `outer: inner: root`.
pub fn one_line(error: &anyhow::Error) -> String {
    format!("{error:#}").replace('\n', " ")
}

/// Replaces Rust's panic report with one line. A panic is a bug (input problems are errors),
/// but the user still deserves a readable message rather than a backtrace hint.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let location = info
            .location()
            .map(|l| format!(" (at {}:{})", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "error: internal error: {}{location}",
            message.replace('\n', " ")
        );
    }));
}

/// A run stopped by Ctrl-C: reported like any error, but with exit status 130 as shells expect.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Interrupted(pub String);

/// The exit status for `error`.
pub fn exit_status(error: &anyhow::Error) -> std::process::ExitCode {
    if error.downcast_ref::<Interrupted>().is_some() {
        std::process::ExitCode::from(quill_train::interrupt::EXIT_INTERRUPTED)
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// Runs `probe` with panics kept quiet: device discovery in burn's GPU backends panics (on a
/// worker thread) when there is no device, which here is an answer, not a bug.
pub fn quietly<T>(probe: impl FnOnce() -> T + std::panic::UnwindSafe) -> Option<T> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(probe).ok();
    std::panic::set_hook(hook);
    result
}
