/// The error and its causes on one line: `outer: inner: root`.
pub fn one_line(error: &anyhow::Error) -> String {
    format!("{error:#}").replace('\n', " ")
}

/// A command-line mistake as one line: clap's message with what it lists (missing
/// arguments, possible values) and its tips, without the usage block
/// (`error: invalid value '-1' for '--steps <N>': ...; tip: ...`).
pub fn usage_line(error: &clap::Error) -> String {
    let text = error.render().to_string();
    let mut line = String::new();
    for part in text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
    {
        if !line.is_empty() {
            line.push_str(if part.starts_with("tip:") { "; " } else { " " });
        }
        line.push_str(part);
    }
    line
}

/// A whole number of 0 or more, for numeric flags: clap's own message for `-1` would be
/// `invalid digit found in string`.
pub fn whole_number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    let text = text.trim();
    text.parse().map_err(|_| {
        let message = if text.starts_with('-') {
            "must be 0 or more"
        } else if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            "is too large"
        } else {
            "must be a whole number"
        };
        message.to_string()
    })
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
