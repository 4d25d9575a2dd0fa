//! Training across machines, as two `quill-cpu` processes on 127.0.0.1 joined through
//! burn-collective's orchestrator (`train --nodes 2 --node-rank R --coordinator HOST:PORT`):
//! the same val losses as one process with the same tokens per step; a lost node ends the
//! other with one line and the run resumes; Ctrl-C on one node stops both after the same step.

#![cfg(unix)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Quill, assert_close, fails_with, interrupted_step, ok};

/// Two micro-batches per step, one on each node.
const TWO_MICRO_BATCHES: [&str; 2] = ["--set", "train.grad_accum=2"];

/// How long a node process may take before the test gives up on it.
const BOUND: Duration = Duration::from_secs(120);

/// A port no one listens on (the OS's pick, released at once).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The ports of one two-node run: the orchestrator's and each node's data service.
struct Ports([u16; 3]);

impl Ports {
    fn new() -> Self {
        Self([free_port(), free_port(), free_port()])
    }

    fn args(&self, rank: usize) -> Vec<String> {
        let [coordinator, ..] = self.0;
        [
            "--nodes",
            "2",
            "--node-rank",
            &rank.to_string(),
            "--coordinator",
            &format!("127.0.0.1:{coordinator}"),
            "--node-address",
            &format!("127.0.0.1:{}", self.0[1 + rank]),
            "--node-timeout",
            "20",
        ]
        .map(String::from)
        .to_vec()
    }
}

/// One node's process; its stdout lines go to a channel as they come.
struct Node {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Node {
    fn start(quill: &Quill, rank: usize, ports: &Ports, extra: &[&str]) -> Self {
        let node_args = ports.args(rank);
        let node_args: Vec<&str> = node_args.iter().map(String::as_str).collect();
        let args = [&TWO_MICRO_BATCHES[..], extra, &node_args].concat();
        let mut child = quill
            .train_command("tiny.toml", &format!("node{rank}"), &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = send.send(line);
            }
        });
        Self { child, lines }
    }

    /// Waits until the node printed a line starting with `prefix`; returns when.
    fn wait_for(&self, prefix: &str) -> Instant {
        let deadline = Instant::now() + BOUND;
        while let Ok(line) = self.lines.recv_timeout(deadline - Instant::now()) {
            if line.starts_with(prefix) {
                return Instant::now();
            }
        }
        panic!("no line starting with {prefix:?} within {BOUND:?}");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the exit, killing the node if it outlives the bound; returns the status,
    /// stderr and how long the wait took.
    fn finish(mut self) -> (ExitStatus, String, Duration) {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > BOUND {
                self.child.kill().unwrap();
                panic!("a node still ran after {BOUND:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        let stderr = self.child.stderr.as_mut().unwrap();
        stderr.read_to_string(&mut err).unwrap();
        (status, err, start.elapsed())
    }
}

/// Trains both nodes of a run to the end; asserts both succeed.
fn both(quill: &Quill, ports: &Ports, extra: &[&str]) {
    let nodes = [0, 1].map(|rank| Node::start(quill, rank, ports, extra));
    for node in nodes {
        let (status, err, _) = node.finish();
        assert!(status.success(), "{status}: {err}");
    }
}

#[test]
fn two_nodes_train_one_device_s_run_and_resume_after_a_lost_node_or_ctrl_c() {
    let quill = Quill::new();
    let steps = ["--set", "train.max_steps=300"];
    ok(quill.train(
        "tiny.toml",
        "one",
        &[&TWO_MICRO_BATCHES[..], &steps].concat(),
    ));
    let one = quill.val_losses("one");
    assert_eq!(one.len(), 6);

    // Node 1 is killed in the middle of epoch 3 (away from the checkpoint writes at the
    // epochs' ends): node 0 ends with one line, soon, and both resume.
    let ports = Ports::new();
    let nodes = [0, 1].map(|rank| Node::start(&quill, rank, &ports, &steps));
    let first = nodes[0].wait_for("epoch 1/");
    let epoch = nodes[0].wait_for("epoch 2/") - first;
    std::thread::sleep(epoch / 2);
    let [node0, node1] = nodes;
    node1.signal("-KILL");
    node1.finish();
    let (status, err, waited) = node0.finish();
    assert_eq!(status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: lost contact with the other nodes while training "),
        "{err}"
    );
    assert!(err.contains("is intact; resume every node with: "), "{err}");
    assert!(waited < Duration::from_secs(30), "{waited:?}");
    both(&quill, &ports, &["--resume"]);
    for rank in [0, 1] {
        assert_close(&quill.val_losses(&format!("node{rank}")), &one, 1e-4);
    }

    // Ctrl-C on node 0 alone (which also stops the orchestrator it hosts): both nodes stop
    // after the same step, saved, and resume to the end.
    let ports = Ports::new();
    let again = ["--force"];
    let nodes =
        [0, 1].map(|rank| Node::start(&quill, rank, &ports, &[&steps[..], &again].concat()));
    nodes[0].wait_for("epoch 2/");
    nodes[0].signal("-INT");
    let stopped: Vec<String> = nodes
        .into_iter()
        .map(|node| {
            let (status, err, _) = node.finish();
            assert_eq!(status.code(), Some(130), "{err}");
            assert!(err.starts_with("error: interrupted after step "), "{err}");
            err.split(';').next().unwrap().to_string()
        })
        .collect();
    assert_eq!(stopped[0], stopped[1]);
    both(&quill, &ports, &["--resume"]);
    for rank in [0, 1] {
        assert_close(&quill.val_losses(&format!("node{rank}")), &one, 1e-4);
    }
}

#[test]
fn a_bf16_run_resumes_across_nodes_from_a_step_bf16_cannot_hold() {
    // The start check exchanges the step in the run's precision: step 301 is not a bf16 number.
    let quill = Quill::new();
    let ports = Ports::new();
    let args = [
        "--set",
        "train.max_steps=400",
        "--set",
        "train.precision=bf16",
    ];
    let nodes = [0, 1].map(|rank| Node::start(&quill, rank, &ports, &args));
    nodes[0].wait_for("epoch 6/");
    nodes[0].signal("-INT");
    for node in nodes {
        let (status, err, _) = node.finish();
        assert_eq!(status.code(), Some(130), "{err}");
        assert!(interrupted_step(&err) > 300, "{err}");
    }
    both(&quill, &ports, &["--resume"]);
    assert_eq!(quill.val_losses("node0").len(), 8);
}

#[test]
fn node_settings_that_cannot_work_are_one_line() {
    let quill = Quill::new();
    let with = |extra: &[&str]| quill.train("tiny.toml", "bad", extra);
    fails_with(
        with(&[
            "--nodes",
            "1",
            "--node-rank",
            "0",
            "--coordinator",
            "127.0.0.1:1",
        ]),
        "--nodes 1 must be at least 2",
    );
    fails_with(
        with(&[
            "--nodes",
            "2",
            "--node-rank",
            "2",
            "--coordinator",
            "127.0.0.1:1",
        ]),
        "--node-rank 2 must be below --nodes 2",
    );
    fails_with(
        with(&["--nodes", "2", "--node-rank", "0", "--coordinator", "here"]),
        "--coordinator: `here` is not HOST:PORT",
    );
    fails_with(
        with(&[
            "--nodes",
            "2",
            "--node-rank",
            "0",
            "--coordinator",
            "127.0.0.1:1",
        ]),
        "1 micro-batches per step cannot be shared out among 2 devices",
    );
    assert!(!quill.artifacts().join("bad").exists());
}
