//! Data-parallel training across processes and machines ("nodes") through burn-collective.
//!
//! Every node runs the same command. Each trains its share of every optimizer step's
//! micro-batches (on each of its own devices), then the nodes sum their gradients with
//! burn-collective's all-reduce, coordinated by its global orchestrator over websockets,
//! before the optimizer step; so every node takes the same step from the same weights, and
//! the run is the one a single device trains, up to the order of float additions.
//! burn-train 0.21 has no strategy for this (its `ddp` feature all-reduces between the
//! devices of one process), so the sum happens in `Trainee::optimize` ([`NodeLink::sum`]).
//!
//! burn-collective 0.21 as published completes one all-reduce between processes and then
//! waits forever; quill builds it with the fix in `vendor/` (see `vendor/README.md`).
//!
//! Every listener binds the host of the address it was given (`--coordinator` on node 0,
//! `--node-address` on each node), and with a [`NodeSecret`] every connection proves that both
//! ends know it before any message is read (burn-communication's `websocket::auth`, in
//! `vendor/`); a secret is required as soon as an address is not a loopback one.
//!
//! A node that dies leaves the others waiting in the all-reduce, or makes burn-collective's
//! tasks fail while they wait; either way they end with one line (`failure::Fatal::LostNode`),
//! after at most [`Cluster::timeout`], their checkpoints intact.

use std::str::FromStr;
use std::time::Duration;

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::backend::AutodiffBackend;
use burn_collective::{AllReduceStrategy, CollectiveConfig, PeerId, ReduceOperation};
use burn_communication::Address;

use crate::collective_wait::{waited, waiting};
use crate::failure::{Fatal, exit_with};

// These live in `collective_wait` now, so that `failure`'s panic hook need not depend on this
// module (which reports through `failure`); their old paths still work.
pub use crate::collective_wait::{CollectivePanic, collective_panic};

/// Where this process stands among the nodes of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// How many nodes train the run.
    pub nodes: usize,
    /// This node's number, 0 to `nodes - 1`; node 0 runs the orchestrator.
    pub rank: usize,
    /// `HOST:PORT` of the orchestrator, on node 0's machine.
    pub coordinator: String,
    /// `HOST:PORT` where the other nodes reach this one (its tensor data service).
    pub address: String,
    /// How long a node waits for the others (to join, or in an all-reduce) before it gives up.
    pub timeout: Duration,
    /// The secret every node of the run shares; `None` only where every address is a
    /// loopback one.
    pub secret: Option<NodeSecret>,
}

/// A shared secret, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeSecret(Vec<u8>);

impl std::fmt::Debug for NodeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeSecret(..)")
    }
}

impl NodeSecret {
    /// The shortest secret taken: 16 bytes, 128 bits if they are random.
    pub const MIN_BYTES: usize = 16;

    /// `text` without its surrounding whitespace (a file's final newline); `origin` names it
    /// in the error.
    pub fn new(text: &[u8], origin: &str) -> Result<Self, String> {
        let secret = text.trim_ascii();
        if secret.len() < Self::MIN_BYTES {
            return Err(format!(
                "{origin}: the node secret has {} bytes, fewer than {}; make one with `openssl rand -hex 32`",
                secret.len(),
                Self::MIN_BYTES
            ));
        }
        Ok(Self(secret.to_vec()))
    }
}

/// Whether `host` (of `HOST:PORT`) is this machine's loopback: `localhost`, `127.x.x.x`, `::1`.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn host(address: &str) -> &str {
    address.rsplit_once(':').map_or(address, |(host, _)| host)
}

impl Cluster {
    /// The port of `host:port`.
    fn port(address: &str) -> Result<u16, String> {
        address
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .ok_or_else(|| format!("`{address}` is not HOST:PORT"))
    }

    /// Where node `rank` listens when no address is given: the coordinator's host, its port
    /// + 1 + `rank` (right for nodes on one machine).
    pub fn default_address(coordinator: &str, rank: usize) -> Result<String, String> {
        let port = Self::port(coordinator).map_err(|e| format!("--coordinator: {e}"))?;
        let host = coordinator
            .rsplit_once(':')
            .map_or(coordinator, |(host, _)| host);
        let port = usize::from(port) + 1 + rank;
        match u16::try_from(port) {
            Ok(port) => Ok(format!("{host}:{port}")),
            Err(_) => Err(format!(
                "--node-address: the default port {port} is above 65535; give --node-address"
            )),
        }
    }

    /// A one-line error when the settings cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.nodes < 2 {
            return Err(format!("--nodes {} must be at least 2", self.nodes));
        }
        if self.rank >= self.nodes {
            return Err(format!(
                "--node-rank {} must be below --nodes {}",
                self.rank, self.nodes
            ));
        }
        Self::port(&self.coordinator).map_err(|e| format!("--coordinator: {e}"))?;
        Self::port(&self.address).map_err(|e| format!("--node-address: {e}"))?;
        for (flag, address) in [
            ("--coordinator", &self.coordinator),
            ("--node-address", &self.address),
        ] {
            if self.secret.is_none() && !is_loopback(host(address)) {
                return Err(format!(
                    "{flag} {address} is not a loopback address: give every node the same secret with --node-secret-file FILE or QUILL_NODE_SECRET (docs/scaling.md)"
                ));
            }
        }
        Ok(())
    }

    /// Starts the orchestrator (on node 0) and registers this node's `device` with it; waits
    /// for every node to join, up to the timeout. `params` (the model's parameter count)
    /// bounds the size of a peer's message: one step's gradients, laid end to end.
    pub fn join<B: Backend>(&self, device: &B::Device, params: usize) -> Result<NodeLink, String> {
        self.validate()?;
        // rmp-serde writes a byte as one or two bytes, and a gradient has at most 8.
        let max_message_bytes = params.saturating_add(64).saturating_mul(16) + (1 << 20);
        burn_communication::websocket::auth::configure(
            self.secret.as_ref().map(|s| s.0.clone()),
            max_message_bytes,
        )?;
        if self.rank == 0 {
            let port = Self::port(&self.coordinator)?;
            let host = host(&self.coordinator).to_owned();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the orchestrator: {e}"))?;
            std::thread::spawn(move || {
                runtime.block_on(burn_collective::start_global_orchestrator_on(&host, port))
            });
        }
        let config = CollectiveConfig::default()
            .with_num_devices(1)
            .with_num_nodes(self.nodes as u32)
            .with_global_address(ws(&self.coordinator))
            .with_node_address(ws(&self.address))
            .with_data_service_port(Self::port(&self.address)?)
            .with_global_all_reduce_strategy(AllReduceStrategy::Centralized);
        watchdog(self.timeout);
        let link = NodeLink {
            peer: PeerId(0),
            rank: self.rank,
        };
        waiting("the other nodes did not join", || {
            burn_collective::register::<B>(link.peer, device.clone(), config)
                .map_err(|e| format!("cannot join the other nodes: {e:?}"))
        })?;
        Ok(link)
    }
}

fn ws(address: &str) -> Address {
    Address::from_str(&format!("ws://{address}")).expect("any text is an address")
}

/// Ends the process with one line when a wait for the other nodes outlasts `timeout`.
fn watchdog(timeout: Duration) {
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(100));
            if let Some((since, what)) = waited()
                && since.elapsed() > timeout
            {
                let detail = format!("{what} within {} s", timeout.as_secs());
                exit_with(Fatal::LostNode, &detail);
            }
        }
    });
}

/// This node's membership, for the all-reduces of a run.
#[derive(Debug, Clone)]
pub struct NodeLink {
    peer: PeerId,
    rank: usize,
}

impl NodeLink {
    /// The element-wise sum of `values` over all nodes (every node gets the same sum).
    fn all_reduce<B: Backend>(&self, values: Tensor<B, 1>, what: &'static str) -> Tensor<B, 1> {
        let peer = self.peer;
        let summed = waiting(what, || {
            let values = values.into_primitive().tensor();
            burn_collective::all_reduce::<B>(peer, values, ReduceOperation::Sum)
        })
        .unwrap_or_else(|e| exit_with(Fatal::LostNode, &format!("the all-reduce failed: {e:?}")));
        Tensor::from_primitive(TensorPrimitive::Float(summed))
    }

    /// Checks that every node starts from optimizer step `steps_done` (a resume on one node
    /// from an older checkpoint than on the others would pair different steps' gradients).
    pub fn agree_on_start<B: Backend>(
        &self,
        steps_done: usize,
        device: &B::Device,
    ) -> Result<(), String> {
        // Node 0's step, and then how many nodes differ from it: two exchanges, so that
        // every node reaches the same verdict. The step goes as four base-256 digits, whole
        // numbers that even bf16 (which a run may compute in) holds exactly.
        let digits: Vec<f32> = match self.rank {
            0 => (0..4)
                .map(|i| ((steps_done >> (8 * i)) & 0xff) as f32)
                .collect(),
            _ => vec![0.0; 4],
        };
        let first = Tensor::<B, 1>::from_floats(digits.as_slice(), device);
        let first = self.all_reduce(first, "the other nodes did not start");
        let first = first
            .into_data()
            .iter::<f64>()
            .enumerate()
            .map(|(i, digit)| (digit as usize) << (8 * i))
            .sum::<usize>();
        let differs = Tensor::<B, 1>::from_floats([f32::from(first != steps_done)], device);
        let differ = self.all_reduce(differs, "the other nodes did not start");
        let differ = differ.into_scalar().elem::<f64>() as usize;
        if differ == 0 {
            return Ok(());
        }
        Err(format!(
            "the nodes start from different steps: node 0 from step {first}, this node (rank {}) from step {steps_done}, {differ} node(s) differ from node 0; resume every node from the same checkpoint",
            self.rank
        ))
    }

    /// The sum over all nodes of each parameter's gradient in `grads`, and of `extra`, as
    /// one all-reduce of all of them laid end to end: one exchange per step. A failed
    /// all-reduce ends the process like a lost node.
    pub fn sum<B: AutodiffBackend, M: AutodiffModule<B>>(
        &self,
        module: &M,
        grads: GradientsParams,
        extra: Tensor<B::InnerBackend, 1>,
    ) -> (GradientsParams, Tensor<B::InnerBackend, 1>) {
        let mut gather = Gather::<B> {
            grads,
            flat: Vec::new(),
        };
        module.visit(&mut gather);
        let Gather { grads, mut flat } = gather;
        let mut lengths: Vec<usize> = flat.iter().map(|t| t.dims()[0]).collect();
        lengths.push(extra.dims()[0]);
        // `extra` may come from another of this node's devices than the gradients.
        let device = flat.first().map_or_else(|| extra.device(), |t| t.device());
        flat.push(extra.to_device(&device));
        let summed = self.all_reduce(
            Tensor::cat(flat, 0),
            "no gradients came from the other nodes",
        );
        let mut pieces = summed.split_with_sizes(lengths, 0);
        let extra = pieces.pop().expect("`extra` is the last piece");
        let mut scatter = Scatter::<B> {
            grads,
            pieces: pieces.into_iter(),
        };
        module.visit(&mut scatter);
        (scatter.grads, extra)
    }
}

/// Takes each parameter's gradient out of `grads`, flattened, in the module's order.
struct Gather<B: AutodiffBackend> {
    grads: GradientsParams,
    flat: Vec<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Gather<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = self.grads.get::<B::InnerBackend, D>(param.id) {
            self.flat.push(grad.flatten::<1>(0, D - 1));
        }
    }
}

/// Puts the summed pieces back as the gradients, in the same order, in their shapes.
struct Scatter<B: AutodiffBackend> {
    grads: GradientsParams,
    pieces: std::vec::IntoIter<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Scatter<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            let piece = self.pieces.next().expect("one piece per gradient");
            self.grads
                .register::<B::InnerBackend, D>(param.id, piece.reshape(grad.shape()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(nodes: usize, rank: usize, coordinator: &str) -> Cluster {
        Cluster {
            nodes,
            rank,
            coordinator: coordinator.into(),
            address: "127.0.0.1:7001".into(),
            timeout: Duration::from_secs(5),
            secret: Some(NodeSecret::new(b"0123456789abcdef\n", "test").unwrap()),
        }
    }

    #[test]
    fn settings_that_cannot_work_are_one_line() {
        assert_eq!(cluster(2, 1, "10.0.0.1:7000").validate(), Ok(()));
        assert_eq!(
            cluster(2, 2, "h:1").validate(),
            Err("--node-rank 2 must be below --nodes 2".into())
        );
        assert_eq!(
            cluster(1, 0, "h:1").validate(),
            Err("--nodes 1 must be at least 2".into())
        );
        assert_eq!(
            cluster(2, 0, "nohost").validate(),
            Err("--coordinator: `nohost` is not HOST:PORT".into())
        );
        assert_eq!(
            Cluster::default_address("10.0.0.1:29500", 1),
            Ok("10.0.0.1:29502".into())
        );
        assert!(
            Cluster::default_address("h:65535", 0)
                .unwrap_err()
                .contains("default port 65536 is above 65535")
        );
    }

    #[test]
    fn a_secret_is_needed_beyond_loopback_and_must_be_long_enough() {
        let open = |coordinator: &str, address: &str| Cluster {
            address: address.into(),
            secret: None,
            ..cluster(2, 0, coordinator)
        };
        for loopback in [
            "127.0.0.1:7000",
            "localhost:7000",
            "[::1]:7000",
            "127.0.0.2:7000",
        ] {
            assert_eq!(
                open(loopback, "127.0.0.1:7001").validate(),
                Ok(()),
                "{loopback}"
            );
        }
        for (coordinator, address, flag) in [
            (
                "0.0.0.0:7000",
                "127.0.0.1:7001",
                "--coordinator 0.0.0.0:7000",
            ),
            (
                "10.0.0.1:7000",
                "127.0.0.1:7001",
                "--coordinator 10.0.0.1:7000",
            ),
            (
                "127.0.0.1:7000",
                "gpu2.lan:7001",
                "--node-address gpu2.lan:7001",
            ),
        ] {
            let error = open(coordinator, address).validate().unwrap_err();
            assert!(
                error.starts_with(flag) && error.contains("QUILL_NODE_SECRET"),
                "{error}"
            );
        }
        assert!(
            NodeSecret::new(b"  hunter2\n", "QUILL_NODE_SECRET")
                .unwrap_err()
                .contains("7 bytes")
        );
        assert_eq!(
            format!("{:?}", cluster(2, 0, "h:1").secret),
            "Some(NodeSecret(..))"
        );
    }
}
