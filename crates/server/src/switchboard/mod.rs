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
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use serde_json::value::RawValue;
use tokio::sync::{Notify, Semaphore};
use tokio::time::{sleep_until, Instant};
use tracing::{info, warn};

use tincan_protocol::{ClientFrame, ErrCode, Request, WireError};

use crate::cluster::role::Role;
use crate::cluster::wire::{node_of, ToLeader, ToNode};
use crate::hub::{ConnId, Hub, Input, Now, Output, Reply};
use crate::metrics::Metrics;
use crate::queries;
use crate::records::Records;
use crate::store::Store;

mod cluster;
pub(crate) mod render;

use cluster::Membership;
pub use cluster::LEADER_CHANGED_REASON;

/// Frames queued for one connection's socket. A connection whose queue is full is too
/// slow to keep up: its sender is dropped, which closes it, and the hub treats it like
/// any other disconnect (grace period, then hang-up). The hub never waits on a client.
pub const OUTBOUND_CAPACITY: usize = 256;

/// What a connection's task is asked to write.
#[derive(Debug)]
pub enum Outbound {
    /// One text frame.
    Text(Utf8Bytes),
    /// Close the socket with this code and reason.
    Close(u16, Cow<'static, str>),
}

/// A connection's outbound queue, as its task reads it.
///
/// futures' bounded channel rather than tokio's: tokio's allocates a block of 32 slots
/// and a cache-padded channel up front (about 1 KiB for every connection, most of them
/// idle), futures' a node per queued frame and about 300 bytes otherwise.
pub type OutboundRx = futures_channel::mpsc::Receiver<Outbound>;
type OutboundTx = futures_channel::mpsc::Sender<Outbound>;

/// The server is stopping and takes no more input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopping;

struct Inner {
    hub: Hub,
    conns: HashMap<ConnId, OutboundTx>,
    stopping: bool,
    /// Cluster mode only (`cluster/`): this node's role and its way to the others.
    cluster: Option<Membership>,
}

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
        // A single server runs its own calls; a cluster node starts following.
        metrics.set_leading(true);
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

    /// Opens a new connection's outbound queue.
    pub fn open(&self, conn: ConnId) -> Result<OutboundRx, Stopping> {
        let mut inner = self.lock();
        if inner.stopping {
            return Err(Stopping);
        }
        // The channel holds its buffer plus one frame per sender.
        let (tx, rx) = futures_channel::mpsc::channel(OUTBOUND_CAPACITY - 1);
        inner.conns.insert(conn, tx);
        self.metrics.set_connections(inner.conns.len());
        Ok(rx)
    }

    /// This server's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// This server's metrics, to keep (the cluster driver's tasks count into them).
    pub fn metrics_handle(&self) -> Arc<Metrics> {
        self.metrics.clone()
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
        let text = render::reply(&Reply::to(frame, result));
        let mut inner = self.lock();
        inner.deliver(conn, Outbound::Text(text.into()));
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
                Output::Event { mut to, event } => {
                    let Some(text) = render::event(&event) else {
                        continue;
                    };
                    self.send_remote(&mut to, &text);
                    // One text, shared by every recipient's queue.
                    let text = Utf8Bytes::from(text);
                    for conn in to {
                        self.deliver(conn, Outbound::Text(text.clone()));
                    }
                }
                Output::Reply { conn, reply } => {
                    let text = render::reply(&reply);
                    self.deliver(conn, Outbound::Text(text.into()));
                }
                Output::Close { conn, last, reason } => {
                    let text = render::frame(&last);
                    if self.close_remote(conn, text.as_deref(), reason) {
                        continue;
                    }
                    if let Some(text) = text {
                        self.deliver(conn, Outbound::Text(text.into()));
                    }
                    self.deliver(conn, Outbound::Close(1008, reason.into()));
                    self.conns.remove(&conn);
                }
            }
        }
        metrics.set_connections(self.conns.len());
    }

    /// Closes every connection of this node with 1012 (the SDK reconnects and resumes).
    fn close_all(&mut self, reason: &'static str) {
        for (_, mut tx) in self.conns.drain() {
            let _ = tx.try_send(Outbound::Close(RESTART_CLOSE_CODE, Cow::Borrowed(reason)));
        }
    }

    fn deliver(&mut self, conn: ConnId, msg: Outbound) {
        let Some(tx) = self.conns.get_mut(&conn) else {
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
        if tx.try_send(msg).is_err_and(|e| e.is_full()) {
            warn!(
                conn,
                "connection is not reading its frames; disconnecting it"
            );
            self.conns.remove(&conn);
        }
    }
}
