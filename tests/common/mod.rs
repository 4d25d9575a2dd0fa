//! Shared helpers of the end-to-end tests: run the `quill-cpu` binary in a scratch directory.

mod corpus;

pub use corpus::{corpus, repo_root};

use std::path::PathBuf;
use std::process::{Command, Output};

/// `--set` arguments for a one-epoch, 50-step run of configs/tiny.toml.
pub const QUICK: [&str; 4] = [
    "--set",
    "train.max_steps=50",
    "--set",
    "train.eval_interval=50",
];

pub struct Quill {
    pub dir: tempfile::TempDir,
    pub corpus: PathBuf,
}

impl Quill {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let corpus = corpus(dir.path());
        Self { dir, corpus }
    }

    pub fn artifacts(&self) -> PathBuf {
        self.dir.path().join("artifacts")
    }

    pub fn config(name: &str) -> PathBuf {
        repo_root().join("configs").join(name)
    }

    /// Runs `quill-cpu ARGS` in the scratch directory.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// `quill-cpu ARGS`, to run in the scratch directory.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_quill-cpu"));
        command.args(args).current_dir(self.dir.path());
        command
    }

    /// `train --config CONFIG --name NAME` into the scratch artifacts, on this test's corpus.
    pub fn train_command(&self, config: &str, name: &str, extra: &[&str]) -> Command {
        let config = Self::config(config);
        let data = format!("data.path={}", self.corpus.display());
        let artifacts = self.artifacts();
        let mut args = vec![
            "train",
            "--config",
            config.to_str().unwrap(),
            "--name",
            name,
            "--artifacts",
            artifacts.to_str().unwrap(),
            "--set",
            &data,
        ];
        args.extend_from_slice(extra);
        self.command(&args)
    }

    pub fn train(&self, config: &str, name: &str, extra: &[&str]) -> Output {
        self.train_command(config, name, extra).output().unwrap()
    }

    /// `quill-cpu COMMAND --config configs/CONFIG --set data.path=CORPUS EXTRA...` in the
    /// scratch directory, on this test's corpus.
    pub fn on_corpus(&self, command: &[&str], config: &str, extra: &[&str]) -> Output {
        let config = Self::config(config);
        let data = format!("data.path={}", self.corpus.display());
        let args = [
            command,
            &["--config", config.to_str().unwrap(), "--set", &data],
            extra,
        ]
        .concat();
        self.run(&args)
    }

    /// The val losses of a run's evaluations, from its metrics.csv.
    pub fn val_losses(&self, run: &str) -> Vec<f64> {
        self.metrics(run).iter().map(|row| row[3]).collect()
    }

    /// The rows of a run's metrics.csv as numbers (step, epoch, train loss, val loss, lr,
    /// tokens/s, elapsed s).
    pub fn metrics(&self, run: &str) -> Vec<Vec<f64>> {
        let path = self.artifacts().join(run).join("metrics.csv");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut lines = text.lines();
        if let Some(header) = lines.next() {
            assert_eq!(
                header,
                "step,epoch,train_loss,val_loss,lr,tokens_per_s,elapsed_s"
            );
        }
        lines
            .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
            .collect()
    }
}

/// Asserts that two runs' val losses agree, evaluation by evaluation, within `tolerance`.
pub fn assert_close(got: &[f64], expected: &[f64], tolerance: f64) {
    assert_eq!(got.len(), expected.len(), "{got:?} vs {expected:?}");
    for (a, b) in got.iter().zip(expected) {
        assert!((a - b).abs() <= tolerance, "{got:?} vs {expected:?}");
    }
}

/// The step of an `error: interrupted after step S; ...` line.
pub fn interrupted_step(err: &str) -> usize {
    let rest = err.strip_prefix("error: interrupted after step ");
    let step = rest.and_then(|rest| rest.split(';').next());
    step.and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an interrupted line: {err:?}"))
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts success and returns stdout, showing both streams on failure.
pub fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

/// Asserts a clean failure: non-zero exit, one `error:` line naming `expected`, no panic.
pub fn fails_with(output: Output, expected: &str) {
    let err = stderr(&output);
    assert!(
        !output.status.success(),
        "expected failure, got success: {err}"
    );
    assert_eq!(output.status.code(), Some(1), "stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "not one line: {err:?}");
    assert!(lines[0].starts_with("error: "), "{err:?}");
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{err:?}"
    );
    assert!(err.contains(expected), "expected {expected:?} in {err:?}");
}
