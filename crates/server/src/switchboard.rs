//! The hub behind one lock, with the timer task that wakes it.
//!
//! Connection tasks hand their input to [`Switchboard::input`], which locks the hub,
//! lets it decide, and puts its output frames straight on the recipients' outbound
//! queues — so an invitation goes from the caller's connection task to the callee's in
//! one step, like a bare relay, without a hop through a separate hub task. The lock is
//! held for the hub's decision only (microseconds, no awaits); delivery never blocks.
//!
//! One task, [`Switchboard::run_timers`], sleeps until the hub's next deadline and is
//! woken early when an input sets an earlier one. It is the only code that reads the
//! clock for timers; the hub itself never does.
//!
//! No store IO happens under the lock but the hub's reads by key (see `store`): the
//! call records the hub queues go to the record writer (`records.rs`) without waiting,
//! and `getContacts` / `getCallHistory` are answered on a task of their own
//! (`queries.rs`), for the user the hub says the connection signed in as.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::time::{sleep_until, Instant};
use tracing::{info, warn};

use tincan_protocol::limits::MAX_SERVER_FRAME;
use tincan_protocol::{response_json, ClientFrame, ErrCode, Request, WireError};

use crate::cluster::role::{NodeNo, Role};
use crate::cluster::wire::{node_of, ToLeader, ToNode};
use crate::cluster::Bus;
use crate::hub::{ConnId, Hub, Input, Now, Output};
use crate::metrics::Metrics;
use crate::queries;
use crate::records::Records;
use crate::store::Store;

/// Frames queued for one connection's socket. A connection whose queue is full is too
/// slow to keep up: its sender is dropped, which closes it, and the hub treats it like
/// any other disconnect (grace period, then hang-up). The hub never waits on a client.
pub const OUTBOUND_CAPACITY: usize = 256;

/// What a connection's task is asked to write. Boxed so that the queue's slots are
/// small: tokio allocates a queue's first block of slots up front, and for an idle
/// connection that block is a good part of its memory.
#[derive(Debug)]
pub enum Outbound {
    /// One text frame.
    Text(Box<Utf8Bytes>),
    /// Close the socket with this code and reason.
    Close(Box<(u16, Cow<'static, str>)>),
}

/// The server is stopping and takes no more input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopping;

struct Inner {
    hub: Hub,
    conns: HashMap<ConnId, mpsc::Sender<Outbound>>,
    stopping: bool,
    /// Cluster mode only (`cluster/`): this node's role and its way to the others.
    cluster: Option<Membership>,
}

/// A cluster node's part of the switchboard. While this node leads, its hub decides for
/// every node's clients; while it follows, its hub stays empty and its clients' requests
/// go to the leader over the bus.
struct Membership {
    bus: Bus,
    role: Role,
    /// While leading: the other nodes' connections that sent something, by node, so that
    /// when a node dies its connections can be closed in the hub (the node cannot say).
    remote: HashMap<NodeNo, HashSet<ConnId>>,
}

/// The close reason when leadership moves: the hub that knew the connection is gone or
/// elsewhere, so the client signs in again (the SDK resumes its call, as after a restart).
pub const LEADER_CHANGED_REASON: &str = "another node took over the calls; reconnect";

/// The shared hub. See the module docs.
pub struct Switchboard {
    inner: Mutex<Inner>,
    /// Wakes the timer task when a deadline earlier than the one it sleeps for is set,
    /// or when the server stops.
    timers: Notify,
    store: Arc<dyn Store>,
    records: Records,
    /// Queries (`queries.rs`) running at once.
    query_slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

/// The wall clock in Unix ms.
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The close code a stopping server sends: WebSocket's 1012 "service restart" (RFC 6455
/// registry), which the SDK reports as the server restarting rather than a lost link.
pub const RESTART_CLOSE_CODE: u16 = 1012;
/// The close reason sent with [`RESTART_CLOSE_CODE`].
pub const RESTART_CLOSE_REASON: &str = "the server is restarting";

fn now() -> Now {
    Now {
        mono: Instant::now(),
        wall_ms: wall_ms(),
    }
}

impl Switchboard {
    /// A switchboard around `hub`, answering queries from `store` and handing call
    /// records to `records`.
    pub fn new(hub: Hub, store: Arc<dyn Store>, records: Records) -> Arc<Switchboard> {
        let metrics = Metrics::new(records.write_seconds());
        Arc::new(Switchboard {
            metrics,
            inner: Mutex::new(Inner {
                hub,
                conns: HashMap::new(),
                stopping: false,
                cluster: None,
            }),
            timers: Notify::new(),
            store,
            records,
            query_slots: Arc::new(Semaphore::new(queries::QUERY_CONCURRENCY)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .expect("the hub lock is never poisoned: the hub does not panic on input")
    }

    /// Registers a new connection's outbound queue.
    pub fn open(&self, conn: ConnId, tx: mpsc::Sender<Outbound>) -> Result<(), Stopping> {
        let mut inner = self.lock();
        if inner.stopping {
            return Err(Stopping);
        }
        inner.conns.insert(conn, tx);
        self.metrics.set_connections(inner.conns.len());
        Ok(())
    }

    /// This server's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The metrics as Prometheus text, with the calls now.
    pub fn render_metrics(&self) -> String {
        let (ringing, connected) = self.lock().hub.calls_by_state();
        self.metrics.render(ringing, connected)
    }

    /// Hands a client's request to the hub, or in cluster mode on a node that does not
    /// lead, to the leader (`raw`: the frame's text, forwarded as it came).
    pub fn request(
        self: &Arc<Self>,
        conn: ConnId,
        frame: ClientFrame,
        raw: &str,
    ) -> Result<(), Stopping> {
        {
            let inner = self.lock();
            if inner.stopping {
                return Err(Stopping);
            }
            match inner.cluster.as_ref().map(|m| (m.role, &m.bus)) {
                None | Some((Role::Leading, _)) => {}
                Some((Role::Following(_), bus)) => {
                    bus.to_leader(ToLeader::Request {
                        conn,
                        text: raw.to_owned(),
                    });
                    return Ok(());
                }
                Some((Role::Leaderless, _)) => return Err(Stopping),
            }
        }
        self.input(Input::Request { conn, frame })
    }

    /// Hands one input to the hub and delivers what it decides.
    pub fn input(self: &Arc<Self>, input: Input) -> Result<(), Stopping> {
        if let Input::Closed { conn, last_heard } = &input {
            let mut inner = self.lock();
            if let Some(m) = inner.cluster.as_ref().filter(|m| m.role != Role::Leading) {
                if matches!(m.role, Role::Following(_)) {
                    m.bus.to_leader(ToLeader::Closed {
                        conn: *conn,
                        silent_ms: last_heard.elapsed().as_millis() as u64,
                    });
                }
                inner.conns.remove(conn);
                self.metrics.set_connections(inner.conns.len());
                return Ok(());
            }
        }
        let input = match input {
            Input::Request { conn, frame } if queries::is_query(&frame.request) => {
                return self.query(conn, frame)
            }
            Input::Request { conn, frame } if self.records_backlogged(&frame.request) => {
                let e = WireError::new(
                    ErrCode::Internal,
                    "the server is behind on saving call records; try the call again in a moment",
                );
                warn!(
                    conn,
                    backlog = self.records.backlog(),
                    "invitation refused: call records are not being written"
                );
                self.reply(conn, &frame, Err(e));
                return Ok(());
            }
            other => other,
        };
        let arrived = std::time::Instant::now();
        let method = match &input {
            Input::Request { frame, .. } => Some(frame.request.method()),
            _ => None,
        };
        let mut inner = self.lock();
        if inner.stopping {
            return Err(Stopping);
        }
        if let Input::Closed { conn, .. } = &input {
            inner.conns.remove(conn);
        }
        let before = inner.hub.next_deadline();
        inner.hub.handle(now(), input);
        inner.apply(&self.records, &self.metrics);
        let after = inner.hub.next_deadline();
        drop(inner);
        if let Some(method) = method {
            self.metrics.request(method, arrived.elapsed());
        }
        if after.is_some() && (before.is_none() || after < before) {
            self.timers.notify_one();
        }
        Ok(())
    }

    /// Users with a signed-in device now.
    pub fn signed_in_users(&self) -> Vec<tincan_protocol::UserId> {
        self.lock().hub.signed_in_users()
    }

    /// Fires the hub's timers until the server stops.
    pub async fn run_timers(self: Arc<Self>) {
        loop {
            let (deadline, stopping) = {
                let inner = self.lock();
                (inner.hub.next_deadline(), inner.stopping)
            };
            if stopping {
                return;
            }
            match deadline {
                Some(at) => {
                    tokio::select! {
                        _ = sleep_until(at) => {
                            let mut inner = self.lock();
                            if inner.stopping {
                                return;
                            }
                            inner.hub.handle_timeout(now());
                            inner.apply(&self.records, &self.metrics);
                        }
                        _ = self.timers.notified() => {}
                    }
                }
                None => self.timers.notified().await,
            }
        }
    }

    /// Cancels what rings and keeps answered calls for the next start (the hub saves
    /// them, `hub/saved.rs`), closes every connection with 1012 "service restart" (the
    /// SDK shows "the server is restarting" and reconnects) and refuses further input.
    pub fn shutdown(&self) {
        let mut inner = self.lock();
        if inner.stopping {
            return;
        }
        info!(
            calls = inner.hub.call_count(),
            "hub stopping: cancelling invitations, keeping answered calls for the next start"
        );
        inner.hub.handle(now(), Input::Shutdown);
        inner.apply(&self.records, &self.metrics);
        inner.close_all(RESTART_CLOSE_REASON);
        inner.stopping = true;
        drop(inner);
        self.timers.notify_one();
    }
}

impl Switchboard {
    /// New calls wait while the record writer is far behind (see `records.rs`).
    fn records_backlogged(&self, request: &Request) -> bool {
        matches!(request, Request::Invite(_) | Request::InviteInGroup(_))
            && self.records.is_backlogged()
    }

    /// Answers a query on a task of its own, for the user `conn` signed in as.
    fn query(self: &Arc<Self>, conn: ConnId, frame: ClientFrame) -> Result<(), Stopping> {
        let user = {
            let inner = self.lock();
            if inner.stopping {
                return Err(Stopping);
            }
            inner.hub.user_of(conn)
        };
        let Some(user) = user else {
            let e = WireError::new(
                ErrCode::NotLoggedIn,
                "sign in first: the first request on a connection must be \"login\"",
            );
            self.reply(conn, &frame, Err(e));
            return Ok(());
        };
        let board = self.clone();
        tokio::spawn(async move {
            let span = tracing::info_span!("query", op = %frame.operation_id, conn, method = frame.request.method());
            let result = queries::answer(
                board.store.clone(),
                &board.query_slots,
                &board.records,
                user,
                frame.request.clone(),
            )
            .await;
            if let Err(e) = &result {
                span.in_scope(|| info!(code = e.code.code(), error = %e.message, "refused"));
            }
            board.reply(conn, &frame, result);
        });
        Ok(())
    }

    /// Sends the reply to `frame` to `conn`, through its queue like every other frame.
    fn reply(&self, conn: ConnId, frame: &ClientFrame, result: Result<Box<RawValue>, WireError>) {
        if let Err(e) = &result {
            self.metrics.error(e.code);
        }
        let mut text = response_json(
            Some(&frame.request_id),
            &frame.operation_id,
            result.as_ref().map(|b| &**b),
        );
        if text.len() > MAX_SERVER_FRAME {
            // Pages keep replies far below this; a user in very large groups could still
            // get a first contacts page this big.
            warn!(
                conn,
                bytes = text.len(),
                "reply larger than any client accepts; answering with an error instead"
            );
            let e = WireError::new(
                ErrCode::Internal,
                "the answer is too large to send; ask for less (a smaller page or limit)",
            );
            text = response_json::<RawValue>(Some(&frame.request_id), &frame.operation_id, Err(&e));
        }
        let mut inner = self.lock();
        inner.deliver(conn, Outbound::Text(Box::new(text.into())));
    }
}

impl Inner {
    fn apply(&mut self, records: &Records, metrics: &Metrics) {
        for update in self.hub.take_records() {
            metrics.record(&update.record, update.open);
            records.push(update);
        }
        for code in self.hub.take_errors() {
            metrics.error(code);
        }
        for out in self.hub.take_outputs() {
            match out {
                Output::Send { mut to, text } => {
                    self.send_remote(&mut to, &text);
                    let text = Utf8Bytes::from(text);
                    for conn in to {
                        self.deliver(conn, Outbound::Text(Box::new(text.clone())));
                    }
                }
                Output::Close { conn, text, reason } => {
                    if self.close_remote(conn, &text, reason) {
                        continue;
                    }
                    self.deliver(conn, Outbound::Text(Box::new(text.into())));
                    self.deliver(conn, Outbound::Close(Box::new((1008, reason.into()))));
                    self.conns.remove(&conn);
                }
            }
        }
        metrics.set_connections(self.conns.len());
    }

    fn deliver(&mut self, conn: ConnId, msg: Outbound) {
        let Some(tx) = self.conns.get(&conn) else {
            if let (Some(m), Outbound::Text(text)) = (self.remote_of(conn), &msg) {
                m.bus.to_node(
                    node_of(conn),
                    ToNode::Send {
                        to: vec![conn],
                        text: text.as_str().to_owned(),
                    },
                );
            }
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(msg) {
            warn!(
                conn,
                "connection is not reading its frames; disconnecting it"
            );
            self.conns.remove(&conn);
        }
    }
}

impl Inner {
    /// Closes every connection of this node with 1012 (the SDK reconnects and resumes).
    fn close_all(&mut self, reason: &'static str) {
        for (_, tx) in self.conns.drain() {
            let _ = tx.try_send(Outbound::Close(Box::new((
                RESTART_CLOSE_CODE,
                Cow::Borrowed(reason),
            ))));
        }
    }

    /// The membership, when `conn` is another node's connection.
    fn remote_of(&self, conn: ConnId) -> Option<&Membership> {
        self.cluster
            .as_ref()
            .filter(|m| node_of(conn) != m.bus.node())
    }

    /// Takes the other nodes' connections out of `to` and sends them `text` over the
    /// bus, one message per node.
    fn send_remote(&mut self, to: &mut Vec<ConnId>, text: &str) {
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

    /// Closes another node's connection over the bus; false when `conn` is this node's.
    fn close_remote(&mut self, conn: ConnId, text: &str, reason: &str) -> bool {
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
                text: text.to_owned(),
            },
        );
        true
    }
}

/// Cluster mode (`cluster/`): what the driver and the bus ask of the switchboard.
impl Switchboard {
    /// Makes this switchboard a cluster node's, leaderless until the driver finds the
    /// lease (`cluster::Driver`).
    pub fn join_cluster(&self, bus: Bus) {
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

    /// A message for this node's clients from the leader.
    pub fn from_leader(&self, msg: ToNode) {
        let mut inner = self.lock();
        match msg {
            ToNode::Send { to, text } => {
                let text = Utf8Bytes::from(text);
                for conn in to {
                    if inner.conns.contains_key(&conn) {
                        inner.deliver(conn, Outbound::Text(Box::new(text.clone())));
                    }
                }
            }
            ToNode::Close { conn, reason, text } => {
                if inner.conns.contains_key(&conn) {
                    inner.deliver(conn, Outbound::Text(Box::new(text.into())));
                    inner.deliver(conn, Outbound::Close(Box::new((1008, reason.into()))));
                    inner.conns.remove(&conn);
                }
            }
        }
    }
}
