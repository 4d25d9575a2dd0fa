//! What `prepare` shows while it works on a large corpus: a bar (indicatif) when stderr is a
//! terminal, a line every 2 s otherwise (logs and CI keep a readable record).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Where [`crate::prepare::prepare`] reports its work.
pub trait Report {
    /// A line: what is being prepared, and how it ended.
    fn line(&mut self, line: &str);
    /// `done` of `total` bytes of text encoded so far.
    fn encoded(&mut self, done: usize, total: usize);
}

/// Reports nothing (tests, and callers that print their own summary).
#[derive(Debug, Default)]
pub struct Quiet;

impl Report for Quiet {
    fn line(&mut self, _: &str) {}
    fn encoded(&mut self, _: usize, _: usize) {}
}

/// The report for stderr: a bar in a terminal, else lines starting with `prefix`.
pub fn to_stderr(prefix: &'static str) -> Box<dyn Report> {
    if std::io::stderr().is_terminal() {
        Box::new(Bar { bar: None, prefix })
    } else {
        Box::new(Lines::new(prefix))
    }
}

/// Lines on stderr, at most one every [`Lines::EVERY`] while encoding: the megabytes done, the
/// speed and the time left.
#[derive(Debug)]
pub struct Lines {
    prefix: &'static str,
    started: Option<Instant>,
    last: Instant,
}

impl Lines {
    pub const EVERY: Duration = Duration::from_secs(2);

    pub fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            started: None,
            last: Instant::now(),
        }
    }

    /// The line for `done` of `total` bytes, when one is due.
    fn due(&mut self, done: usize, total: usize) -> Option<String> {
        let started = *self.started.get_or_insert_with(Instant::now);
        if self.last.elapsed() < Self::EVERY || done >= total {
            return None;
        }
        self.last = Instant::now();
        let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
        Some(format!(
            "encoded {:.0} of {:.0} MB, {:.1} MB/s, {:.0} s left",
            done as f64 / 1e6,
            total as f64 / 1e6,
            rate / 1e6,
            (total - done) as f64 / rate
        ))
    }
}

impl Report for Lines {
    fn line(&mut self, line: &str) {
        eprintln!("{}{line}", self.prefix);
    }

    fn encoded(&mut self, done: usize, total: usize) {
        if let Some(line) = self.due(done, total) {
            eprintln!("{}{line}", self.prefix);
        }
    }
}

/// A bar, drawn while encoding and cleared before the next line.
struct Bar {
    bar: Option<ProgressBar>,
    prefix: &'static str,
}

impl Report for Bar {
    fn line(&mut self, line: &str) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!("{}{line}", self.prefix);
    }

    fn encoded(&mut self, done: usize, total: usize) {
        let bar = self.bar.get_or_insert_with(|| {
            let style = ProgressStyle::with_template(
                "encoding [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}, {eta} left",
            )
            .expect("a valid template")
            .progress_chars("=> ");
            ProgressBar::new(total as u64).with_style(style)
        });
        bar.set_position(done as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_every_two_seconds_with_speed_and_time_left() {
        let mut lines = Lines::new("");
        assert_eq!(lines.due(10, 100), None, "not yet");
        lines.started = Some(Instant::now() - Duration::from_secs(4));
        lines.last = Instant::now() - Lines::EVERY;
        let line = lines.due(40_000_000, 100_000_000).unwrap();
        assert!(
            line.starts_with("encoded 40 of 100 MB, 10.0 MB/s, 6 s left"),
            "{line}"
        );
        assert_eq!(lines.due(50_000_000, 100_000_000), None, "2 s apart");
    }
}
