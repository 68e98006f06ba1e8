//! The switchboard's part in cluster mode (`crate::cluster`): while this node leads,
//! frames for other nodes' connections leave over the bus and their requests come in
//! from it; while it follows, its hub stays empty. The driver calls [`Switchboard::lead`]
//! and [`Switchboard::follow`] when the lease moves.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use tokio::time::Instant;
use tracing::{debug, warn};

use tincan_protocol::ClientFrame;

use super::{now, Inner, Outbound, Switchboard};
use crate::cluster::role::{NodeNo, Role};
use crate::cluster::wire::{node_of, ToLeader, ToNode};
use crate::cluster::Bus;
use crate::hub::{ConnId, Hub, Input};

/// A cluster node's part of the switchboard. While this node leads, its hub decides for
/// every node's clients; while it follows, its hub stays empty and its clients' requests
/// go to the leader over the bus.
pub(super) struct Membership {
    pub(super) bus: Bus,
    pub(super) role: Role,
    /// While leading: the other nodes' connections that sent something, by node, so that
    /// when a node dies its connections can be closed in the hub (the node cannot say).
    pub(super) remote: HashMap<NodeNo, HashSet<ConnId>>,
}

/// The close reason when leadership moves: the hub that knew the connection is gone or
/// elsewhere, so the client signs in again (the SDK resumes its call, as after a restart).
pub const LEADER_CHANGED_REASON: &str = "another node took over the calls; reconnect";

impl Inner {
    /// The membership, when `conn` is another node's connection.
    pub(super) fn remote_of(&self, conn: ConnId) -> Option<&Membership> {
        self.cluster
            .as_ref()
            .filter(|m| node_of(conn) != m.bus.node())
    }

    /// Takes the other nodes' connections out of `to` and sends them `text` over the
    /// bus, one message per node.
    pub(super) fn send_remote(&mut self, to: &mut Vec<ConnId>, text: &str) {
        let Some(m) = self.cluster.as_ref() else {
            return;
        };
        let me = m.bus.node();
        if to.iter().all(|c| node_of(*c) == me) {
            return;
        }
        let mut by_node: HashMap<NodeNo, Vec<ConnId>> = HashMap::new();
        to.retain(|c| {
            let n = node_of(*c);
            if n == me {
                return true;
            }
            by_node.entry(n).or_default().push(*c);
            false
        });
        for (node, conns) in by_node {
            m.bus.to_node(
                node,
                ToNode::Send {
                    to: conns,
                    text: text.to_owned(),
                },
            );
        }
    }

    /// Closes another node's connection over the bus, after `text` if any; false when
    /// `conn` is this node's.
    pub(super) fn close_remote(&mut self, conn: ConnId, text: Option<&str>, reason: &str) -> bool {
        let Some(m) = self
            .cluster
            .as_mut()
            .filter(|m| node_of(conn) != m.bus.node())
        else {
            return false;
        };
        if let Some(set) = m.remote.get_mut(&node_of(conn)) {
            set.remove(&conn);
        }
        m.bus.to_node(
            node_of(conn),
            ToNode::Close {
                conn,
                reason: reason.to_owned(),
                text: text.unwrap_or_default().to_owned(),
            },
        );
        true
    }
}

/// Cluster mode (`cluster/`): what the driver and the bus ask of the switchboard.
impl Switchboard {
    /// Makes this switchboard a cluster node's, leaderless until the driver finds the
    /// lease (`cluster::Driver`).
    pub fn join_cluster(&self, mut bus: Bus) {
        bus.count_drops_in(self.metrics.bus_dropped.clone());
        self.metrics.set_leading(false);
        self.lock().cluster = Some(Membership {
            bus,
            role: Role::Leaderless,
            remote: HashMap::new(),
        });
    }

    /// This node's role; `None` outside cluster mode.
    pub fn role(&self) -> Option<Role> {
        self.lock().cluster.as_ref().map(|m| m.role)
    }

    /// The last record number handed out (the next hub goes on from it).
    pub fn record_floor(&self) -> u64 {
        self.lock().hub.record_floor()
    }

    /// This node now leads, with `hub` (restored from the store): every client of this
    /// node signs in again, since the hub that knew them is gone.
    pub fn lead(&self, hub: Hub) {
        let mut inner = self.lock();
        if inner.stopping {
            return;
        }
        inner.close_all(LEADER_CHANGED_REASON);
        inner.hub = hub;
        if let Some(m) = inner.cluster.as_mut() {
            m.role = Role::Leading;
            m.remote.clear();
        }
        self.metrics.set_leading(true);
        self.metrics.set_connections(0);
        drop(inner);
        self.timers.notify_one();
    }

    /// This node follows node `leader`, or nobody (`None`): a hub this node ran stops as a
    /// stopping server's does (ringing invitations cancelled, answered calls kept in the
    /// store for the next leader), and every client of this node signs in again.
    pub fn follow(&self, leader: Option<NodeNo>) {
        let mut inner = self.lock();
        if inner.stopping {
            return;
        }
        let was_leading = inner.cluster.as_ref().map(|m| m.role) == Some(Role::Leading);
        if was_leading {
            warn!(
                calls = inner.hub.call_count(),
                "no longer leading: cancelling invitations, keeping answered calls for the next leader"
            );
            inner.hub.handle(now(), Input::Shutdown);
            inner.apply(&self.records, &self.metrics);
            let next = inner.hub.successor();
            inner.hub = next;
        }
        inner.close_all(LEADER_CHANGED_REASON);
        if let Some(m) = inner.cluster.as_mut() {
            m.role = match leader {
                Some(n) => Role::Following(n),
                None => Role::Leaderless,
            };
            m.remote.clear();
        }
        self.metrics.set_leading(false);
        self.metrics.set_connections(0);
    }

    /// While leading: the nodes this node has heard connections from.
    pub fn remote_nodes(&self) -> Vec<NodeNo> {
        let inner = self.lock();
        inner
            .cluster
            .as_ref()
            .map(|m| {
                m.remote
                    .iter()
                    .filter(|(_, s)| !s.is_empty())
                    .map(|(n, _)| *n)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// While leading: node `node` is gone; each of its connections is closed in the hub
    /// as heard from `silent` ago (their grace periods count from then).
    pub fn node_gone(self: &Arc<Self>, node: NodeNo, silent: Duration) {
        let conns = {
            let mut inner = self.lock();
            match inner.cluster.as_mut() {
                Some(m) if m.role == Role::Leading => m.remote.remove(&node).unwrap_or_default(),
                _ => return,
            }
        };
        warn!(
            node,
            connections = conns.len(),
            "a node is gone; its connections are closed"
        );
        let last_heard = Instant::now()
            .checked_sub(silent)
            .unwrap_or_else(Instant::now);
        for conn in conns {
            let _ = self.input(Input::Closed { conn, last_heard });
        }
    }

    /// A message for the leader from another node.
    pub fn from_follower(self: &Arc<Self>, msg: ToLeader) {
        let conn = match &msg {
            ToLeader::Request { conn, .. } | ToLeader::Closed { conn, .. } => *conn,
        };
        {
            let mut inner = self.lock();
            let Some(m) = inner.cluster.as_mut().filter(|m| m.role == Role::Leading) else {
                return;
            };
            let known = m.remote.entry(node_of(conn)).or_default();
            match &msg {
                ToLeader::Request { .. } => known.insert(conn),
                ToLeader::Closed { .. } => known.remove(&conn),
            };
        }
        match msg {
            ToLeader::Request { conn, text } => match ClientFrame::parse(&text) {
                Ok(frame) => {
                    let _ = self.input(Input::Request { conn, frame });
                }
                Err(e) => {
                    warn!(conn, error = ?e.error.code, "a forwarded request does not parse; dropped")
                }
            },
            ToLeader::Closed { conn, silent_ms } => {
                let last_heard = Instant::now()
                    .checked_sub(Duration::from_millis(silent_ms))
                    .unwrap_or_else(Instant::now);
                let _ = self.input(Input::Closed { conn, last_heard });
            }
        }
    }

    /// A message for this node's clients from node `leader`; dropped unless this node
    /// follows that node (a leader replaced while it stood still may send for a moment
    /// before it learns so; its frames would contradict the new leader's).
    pub fn from_leader(&self, leader: NodeNo, msg: ToNode) {
        let mut inner = self.lock();
        let followed = inner.cluster.as_ref().map(|m| m.role);
        if followed != Some(Role::Following(leader)) {
            debug!(
                from = leader,
                role = ?followed,
                "frames from a node this one does not follow; dropped"
            );
            return;
        }
        match msg {
            ToNode::Send { to, text } => {
                let text = Utf8Bytes::from(text);
                for conn in to {
                    if inner.conns.contains_key(&conn) {
                        inner.deliver(conn, Outbound::Text(text.clone()));
                    }
                }
            }
            ToNode::Close { conn, reason, text } => {
                if inner.conns.contains_key(&conn) {
                    if !text.is_empty() {
                        inner.deliver(conn, Outbound::Text(text.into()));
                    }
                    inner.deliver(conn, Outbound::Close(1008, reason.into()));
                    inner.conns.remove(&conn);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::cluster::wire::first_conn;
    use crate::hub::HubConfig;
    use crate::records::Records;
    use crate::store::SqliteStore;
    use crate::TokenSigner;

    #[test]
    fn a_follower_takes_frames_only_from_the_leader_it_follows() {
        let store = Arc::new(SqliteStore::open_in_memory().unwrap());
        let (records, _finished) = Records::start(store.clone());
        let hub = Hub::new(HubConfig::default(), store.clone(), TokenSigner::new(b"k"));
        let board = Switchboard::new(hub, store, records);
        let (bus, _outbox) = Bus::detached(5);
        board.join_cluster(bus);
        board.follow(Some(1));
        let conn = first_conn(5);
        let mut rx = board.open(conn).unwrap();
        let send = |text: &str| ToNode::Send {
            to: vec![conn],
            text: text.into(),
        };
        // Node 2 led before node 1 and has not learned it was replaced.
        board.from_leader(2, send("stale"));
        board.from_leader(1, send("fresh"));
        board.from_leader(
            2,
            ToNode::Close {
                conn,
                reason: "stale".into(),
                text: String::new(),
            },
        );
        let mut got = Vec::new();
        while let Ok(frame) = rx.try_recv() {
            got.push(match frame {
                Outbound::Text(t) => t.to_string(),
                Outbound::Close(code, reason) => format!("close {code} {reason}"),
            });
        }
        assert_eq!(got, ["fresh"]);
    }
}
