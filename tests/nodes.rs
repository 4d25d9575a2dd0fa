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

/// The ports of one two-node run: the orchestrator's and each node's data service, on `host`.
struct Ports([u16; 3], &'static str);

impl Ports {
    fn new() -> Self {
        Self([free_port(), free_port(), free_port()], "127.0.0.1")
    }

    fn args(&self, rank: usize) -> Vec<String> {
        let [coordinator, ..] = self.0;
        let host = self.1;
        [
            "--nodes",
            "2",
            "--node-rank",
            &rank.to_string(),
            "--coordinator",
            &format!("{host}:{coordinator}"),
            "--node-address",
            &format!("{host}:{}", self.0[1 + rank]),
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

/// A stranger at `address` (`HOST:PORT/ROUTE`): takes the server's challenge, answers with
/// `answer` and returns what came back until the server closed the connection.
fn stranger(address: &str, answer: Vec<u8>) -> Vec<tungstenite::Message> {
    let (mut socket, _) = tungstenite::connect(format!("ws://{address}")).unwrap();
    // A server that asks nothing (no authentication) would leave the read below waiting.
    if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = socket.get_ref() {
        tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    }
    let mut got = vec![socket.read().unwrap()];
    // A server that closes first may make the send fail: what came back says enough.
    let _ = socket.send(tungstenite::Message::Binary(answer.into()));
    while let Ok(message) = socket.read() {
        got.push(message);
    }
    got
}

/// Nodes listen on the host they were given, and a client that does not know the secret gets
/// a challenge and a closed connection, never a message of the run, which goes on unchanged.
#[cfg(target_os = "linux")]
#[test]
fn listeners_bind_their_host_and_strangers_are_refused() {
    let quill = Quill::new();
    ok(quill.train("tiny.toml", "one", &TWO_MICRO_BATCHES));
    let secret = quill.dir.path().join("node-secret");
    std::fs::write(&secret, "6b1f0c2d9e8a7b3c5d4e6f708192a3b4\n").unwrap();
    let secret = secret.to_str().unwrap();
    // 127.0.0.2 is loopback too (Linux routes all of 127/8), so a listener on every interface
    // would answer at 127.0.0.1 as well.
    let ports = Ports([free_port(), free_port(), free_port()], "127.0.0.2");
    let nodes =
        [0, 1].map(|rank| Node::start(&quill, rank, &ports, &["--node-secret-file", secret]));
    nodes[0].wait_for("epoch 1/");
    let [coordinator, data0, data1] = ports.0;
    for port in [coordinator, data0, data1] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} answers on 127.0.0.1"
        );
    }
    // The 64 random bytes that once ended a run on both nodes, and a frame larger than any
    // message of the run may be.
    let noise: Vec<u8> = (0..64u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let huge = vec![7u8; 64 << 20];
    for (route, answer) in [
        (format!("127.0.0.2:{coordinator}/request"), noise.clone()),
        (format!("127.0.0.2:{coordinator}/response"), noise.clone()),
        (format!("127.0.0.2:{data1}/data"), noise),
        (format!("127.0.0.2:{data0}/data"), huge),
    ] {
        let got = stranger(&route, answer);
        assert!(
            got[0].is_binary() && got[1..].iter().all(|m| m.is_close()),
            "{route}: {got:?}"
        );
    }
    let [node0, node1] = nodes;
    let ((status0, err0, _), (status1, err1, _)) = (node0.finish(), node1.finish());
    assert!(status0.success() && status1.success(), "{err0}\n{err1}");
    assert!(
        err0.contains("quill: refused a connection from 127.0.0."),
        "{err0}"
    );
    assert!(
        err0.contains("to /request: it does not know the node secret"),
        "{err0}"
    );
    assert!(
        err0.contains("to /response: it does not know the node secret"),
        "{err0}"
    );
    assert!(err0.contains("to /data: "), "{err0}");
    assert!(
        err1.contains("to /data: it does not know the node secret"),
        "{err1}"
    );
    let one = quill.val_losses("one");
    for rank in [0, 1] {
        assert_close(&quill.val_losses(&format!("node{rank}")), &one, 1e-4);
    }
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
    let remote = [
        "--nodes",
        "2",
        "--node-rank",
        "1",
        "--coordinator",
        "10.1.2.3:29500",
    ];
    fails_with(
        with(&remote),
        "--coordinator 10.1.2.3:29500 is not a loopback address: give every node the same secret with --node-secret-file FILE or QUILL_NODE_SECRET",
    );
    let short = quill.dir.path().join("short-secret");
    std::fs::write(&short, "hunter2\n").unwrap();
    let short = ["--node-secret-file", short.to_str().unwrap()];
    fails_with(
        with(&[&remote[..], &short].concat()),
        "the node secret has 7 bytes, fewer than 16",
    );
    assert!(!quill.artifacts().join("bad").exists());
}
