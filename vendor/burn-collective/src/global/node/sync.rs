use std::{
    marker::PhantomData,
    sync::{Arc, Mutex},
    vec,
};

use burn_communication::{CommunicationChannel, Message, Protocol, ProtocolClient};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, RwLock};

use crate::{NodeId, node::base::NodeState};

/// Handles the status of sync requests from other nodes
pub(crate) struct SyncService<P: Protocol> {
    /// Current node's state, shared with the thread that does aggregations
    node_state: Arc<RwLock<Option<NodeState>>>,
    /// The number of peers that have requested to sync with us since the last successful sync.
    syncing_peers: Mutex<Vec<NodeId>>,
    /// Notification on each incoming sync request
    sync_notif: Notify,

    _p: PhantomData<P>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SyncRequest(NodeId);

impl<P: Protocol> SyncService<P> {
    pub fn new(node_state: Arc<RwLock<Option<NodeState>>>) -> Self {
        Self {
            node_state,
            syncing_peers: Mutex::new(vec![]),
            sync_notif: Notify::new(),
            _p: PhantomData,
        }
    }

    fn add_syncing_peer(&self, peer: NodeId) {
        let mut syncing_peers = self.syncing_peers.lock().unwrap();
        syncing_peers.push(peer);
    }

    /// Sync with all peers.
    pub async fn sync(&self) {
        // we can't sync while we register
        let node_state = self.node_state.read().await;
        let node_state = node_state
            .as_ref()
            .expect("Trying to sync a node before having registered to the orchestrator");

        // this peer is syncing
        self.add_syncing_peer(node_state.node_id);
        for (id, addr) in &node_state.nodes {
            if *id == node_state.node_id {
                continue;
            }

            let mut connection = P::Client::connect(addr.clone(), "sync")
                .await
                .expect("Couldn't connect to peer for sync");
            let msg = SyncRequest(node_state.node_id);
            let sync_bytes = rmp_serde::to_vec(&msg).unwrap();
            connection
                .send(Message::new(sync_bytes.into()))
                .await
                .expect("Peer closed connection unexpectedly");
        }
        let all_node_ids = node_state.nodes.keys().cloned().collect::<Vec<_>>();
        loop {
            // quill: the future exists before the check, so a request that comes in after
            // the check wakes it (`notify_waiters` only wakes futures that already exist).
            let next_request = self.sync_notif.notified();
            if self.take_round(&all_node_ids) {
                return;
            }
            // Wait for the next sync to come in
            next_request.await
        }
    }

    /// quill: when every node has asked to sync, removes one request of each and returns
    /// true. burn-collective 0.21 cleared a copy of the list instead, so the requests of the
    /// first sync stayed and no later sync ever completed. A faster node's request for the
    /// next sync may already be there; it stays for that sync.
    fn take_round(&self, all_node_ids: &[NodeId]) -> bool {
        let mut syncing_peers = self.syncing_peers.lock().unwrap();
        if !all_node_ids.iter().all(|id| syncing_peers.contains(id)) {
            return false;
        }
        for id in all_node_ids {
            let at = syncing_peers.iter().position(|peer| peer == id);
            syncing_peers.remove(at.expect("checked above"));
        }
        true
    }

    pub async fn handle_sync_connection<C: CommunicationChannel>(&self, mut channel: C) {
        // quill: a failed or malformed message names its peer instead of a panic.
        let msg = match channel.recv().await {
            Ok(Some(msg)) => msg,
            Ok(None) => return,
            Err(err) => {
                log::error!("quill: /sync from {}: {err:?}", channel.peer());
                return;
            }
        };
        let Ok(msg) = rmp_serde::from_slice::<SyncRequest>(&msg.data) else {
            let peer = channel.peer();
            let message = format!("quill: malformed message from {peer} on /sync; closing");
            burn_communication::util::report(log::Level::Error, &message);
            return;
        };

        self.add_syncing_peer(msg.0);

        self.sync_notif.notify_waiters();
    }
}
