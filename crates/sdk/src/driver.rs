//! The driver task: with `connection`, the only code that touches the WebSocket and
//! the clock.
//!
//! One task per [`crate::Client`] owns the connection. It takes requests from the
//! client handles over a bounded channel, writes them through the connection's writer
//! task, matches replies to waiting callers by request id, passes events through the
//! ringing bookkeeping to the app's channel, sends keepalive pings, and reconnects
//! with backoff when the connection drops.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::StreamExt;
use serde_json::value::RawValue;
use tincan_protocol::{
    ClientFrame, ErrCode, Event, LoginParams, LoginReply, Request, RequestId, ServerFrame,
    WireError,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Duration, Instant, Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::{debug, info, warn};

use crate::backoff::{random_jitter, Backoff};
use crate::call::{CallModel, CallRequest, CallState, EndReason};
use crate::connection::{describe_close, establish, Connection, LOGIN_REQUEST_ID};
use crate::endpoint::Endpoint;
use crate::error::SdkError;
use crate::event::{CloseReason, ConnectionState, SdkEvent};
use crate::keepalive::{Liveness, TickAction};
use crate::options::ConnectOptions;
use crate::ringing::Ringing;

/// Requests from client handles to the driver. Backpressure: a caller waits in `send`
/// (its request timeout keeps running) while the driver is busy or its writer is full.
pub(crate) const COMMAND_CAPACITY: usize = 64;

/// Unanswered keepalive pings after which the connection counts as lost.
const MAX_MISSED_PONGS: u32 = 2;

/// How long a graceful close waits for the server to answer the close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The request ids of signals sent with `noReplyOnSuccess` start with this (their own
/// namespace: the server answers them only when they fail, and no caller waits).
const UNANSWERED_ID_PREFIX: &str = "unanswered-";

/// Past this many waiting requests, sweep out those whose callers gave up.
const SWEEP_THRESHOLD: usize = 256;

/// A request's answer as the driver hands it to the caller.
pub(crate) type Reply = Result<Box<RawValue>, SdkError>;

/// What client handles ask of the driver.
pub(crate) enum Command {
    /// Send a request and answer `reply` with its result. An `unanswered` one (a
    /// relayed signal sent with `noReplyOnSuccess`) is answered `null` once written; if
    /// it fails, the server's error arrives as [`SdkEvent::SignalFailed`].
    Request {
        operation_id: String,
        // Boxed: requests are large and the channel's slots are sized for them.
        request: Box<Request>,
        unanswered: bool,
        reply: oneshot::Sender<Reply>,
    },
    /// Close gracefully; `done` is dropped once the driver has stopped.
    Close { done: oneshot::Sender<()> },
}

/// What client handles may read without asking the driver.
#[derive(Debug)]
pub(crate) struct View {
    /// The latest login reply.
    pub(crate) session: LoginReply,
    /// Assigned only in [`Driver::set_state`] (and at construction).
    pub(crate) state: ConnectionState,
    /// Invitations ringing on this device.
    pub(crate) ringing: Ringing,
    /// This device's current call.
    pub(crate) call: CallModel,
}

/// Locks the view. No code panics or awaits while holding it.
pub(crate) fn lock(view: &Mutex<View>) -> MutexGuard<'_, View> {
    view.lock()
        .expect("the view lock is never held across a panic")
}

/// A request written to the socket, waiting for its reply.
struct Pending {
    reply: oneshot::Sender<Reply>,
    method: &'static str,
    operation_id: String,
    /// For accept and reject: the room whose ringing the reply may settle.
    answers_room: Option<String>,
    /// For invite and accept: what the call model learns from the reply.
    call: Option<CallReply>,
}

/// A request whose reply moves this device's call on.
enum CallReply {
    /// Our invite, as sent.
    Invite(Box<tincan_protocol::Invitation>),
    /// Our accept of this room, or our join of it by room id.
    Accept(String),
}

/// Why [`Driver::serve`] stopped using a connection.
enum ConnEnd {
    /// The app closed the client (or dropped every handle).
    Close,
    /// `onKickedOffline`: another connection took this device's place.
    Kicked(String),
    /// The connection broke; the reason is for logs and `Reconnecting`.
    Lost(String),
    /// The server closed it because it is restarting ([`SERVER_RESTART_CLOSE_CODE`]).
    Restarting(String),
}

/// The close code of a server stopping to start again: WebSocket's 1012 "service
/// restart" (docs/protocol.md). The server keeps calls in progress across it.
pub const SERVER_RESTART_CLOSE_CODE: u16 = 1012;

/// How a reconnect ended.
enum Reconnect {
    Connected(Connection, Box<LoginReply>),
    Stop(CloseReason),
}

/// The task behind a [`crate::Client`].
pub(crate) struct Driver {
    endpoint: Endpoint,
    login: LoginParams,
    options: ConnectOptions,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<SdkEvent>,
    view: Arc<Mutex<View>>,
    pending: HashMap<u64, Pending>,
    next_id: u64,
    /// Callers of `close()` to release once the driver has stopped.
    close_acks: Vec<oneshot::Sender<()>>,
}

impl Driver {
    pub(crate) fn new(
        endpoint: Endpoint,
        login: LoginParams,
        options: ConnectOptions,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<SdkEvent>,
        view: Arc<Mutex<View>>,
    ) -> Self {
        Driver {
            endpoint,
            login,
            options,
            commands,
            events,
            view,
            pending: HashMap::new(),
            next_id: LOGIN_REQUEST_ID + 1,
            close_acks: Vec::new(),
        }
    }

    /// Runs until the client closes, is kicked, or gives up. `backlog` holds the
    /// first events that did not fit on the channel when `connect` returned.
    pub(crate) async fn run(mut self, mut conn: Connection, backlog: Vec<SdkEvent>) {
        for event in backlog {
            self.emit(event).await;
        }
        loop {
            match self.serve(&mut conn).await {
                ConnEnd::Close => {
                    self.close_gracefully(conn).await;
                    return self.finish(CloseReason::ClientClosed).await;
                }
                ConnEnd::Kicked(why) => {
                    conn.abort();
                    return self.finish(CloseReason::KickedOffline(why)).await;
                }
                end @ (ConnEnd::Lost(_) | ConnEnd::Restarting(_)) => {
                    let (why, restarting) = match end {
                        ConnEnd::Restarting(why) => (why, true),
                        ConnEnd::Lost(why) => (why, false),
                        _ => unreachable!("matched above"),
                    };
                    info!(reason = %why, restarting, "connection lost");
                    conn.abort();
                    self.fail_pending(&SdkError::Disconnected);
                    if !self.options.reconnect {
                        return self.finish(CloseReason::ConnectionLost(why)).await;
                    }
                    if restarting {
                        // The call model keeps our call: the server keeps it too.
                        self.set_state(ConnectionState::ServerRestarting).await;
                    }
                    match self.reconnect(why).await {
                        Reconnect::Connected(new_conn, login) => {
                            conn = new_conn;
                            self.resync(*login).await;
                        }
                        Reconnect::Stop(reason) => return self.finish(reason).await,
                    }
                }
            }
        }
    }

    /// Serves one connection until it ends.
    async fn serve(&mut self, conn: &mut Connection) -> ConnEnd {
        let mut keepalive = self.options.keepalive_interval.map(|period| {
            let mut i = tokio::time::interval_at(Instant::now() + period, period);
            i.set_missed_tick_behavior(MissedTickBehavior::Delay);
            i
        });
        let mut liveness = Liveness::new(MAX_MISSED_PONGS);
        loop {
            // Biased: a frame that is already readable counts before a keepalive tick
            // that fires at the same moment.
            tokio::select! {
                biased;
                msg = conn.reader.next() => {
                    liveness.on_frame();
                    if let Some(end) = self.on_message(msg).await {
                        return end;
                    }
                }
                command = self.commands.recv() => match command {
                    None => return ConnEnd::Close,
                    Some(Command::Close { done }) => {
                        self.close_acks.push(done);
                        return ConnEnd::Close;
                    }
                    Some(Command::Request { operation_id, request, unanswered: true, reply }) => {
                        if let Err(why) = self.send_unanswered(conn, operation_id, *request, reply).await {
                            return ConnEnd::Lost(why);
                        }
                    }
                    Some(Command::Request { operation_id, request, reply, .. }) => {
                        let changes = note_request(&self.view, &request);
                        self.emit_calls(changes).await;
                        if let Err(why) = self.send_request(conn, operation_id, request, reply).await {
                            return ConnEnd::Lost(why);
                        }
                    }
                },
                _ = &mut conn.writer_task => return ConnEnd::Lost("write failed".into()),
                _ = tick(&mut keepalive) => {
                    self.sweep_abandoned();
                    match liveness.on_tick() {
                        TickAction::Alive => {}
                        TickAction::Ping => {
                            if conn.writer.send(Message::Ping(Default::default())).await.is_err() {
                                return ConnEnd::Lost("write failed".into());
                            }
                        }
                        TickAction::Dead => {
                            return ConnEnd::Lost(format!(
                                "no answer to {MAX_MISSED_PONGS} keepalive pings"
                            ));
                        }
                    }
                }
            }
        }
    }

    /// Handles one item from the socket.
    async fn on_message(&mut self, msg: Option<Result<Message, WsError>>) -> Option<ConnEnd> {
        match msg {
            None => Some(ConnEnd::Lost("the connection closed".into())),
            Some(Err(e)) => Some(ConnEnd::Lost(format!("read failed: {e}"))),
            Some(Ok(Message::Text(text))) => self.on_text(&text).await,
            Some(Ok(Message::Close(Some(frame))))
                if u16::from(frame.code) == SERVER_RESTART_CLOSE_CODE =>
            {
                Some(ConnEnd::Restarting(describe_close(Some(&frame))))
            }
            Some(Ok(Message::Close(frame))) => Some(ConnEnd::Lost(describe_close(frame.as_ref()))),
            // tungstenite answers pings itself; pongs only prove liveness.
            Some(Ok(_)) => None,
        }
    }

    async fn send_request(
        &mut self,
        conn: &Connection,
        operation_id: String,
        request: Box<Request>,
        reply: oneshot::Sender<Reply>,
    ) -> Result<(), String> {
        if reply.is_closed() {
            return Ok(()); // The caller timed out while the request was queued.
        }
        let id = self.next_id;
        self.next_id += 1;
        let method = request.method();
        let answers_room = match &*request {
            Request::Accept(p) | Request::Reject(p) => Some(p.invitation.room_id.clone()),
            _ => None,
        };
        let call = match &*request {
            Request::Invite(p) | Request::InviteInGroup(p) => {
                Some(CallReply::Invite(Box::new(p.invitation.clone())))
            }
            Request::Accept(p) => Some(CallReply::Accept(p.invitation.room_id.clone())),
            Request::GetTokenByRoomId(p) => Some(CallReply::Accept(p.room_id.to_string())),
            _ => None,
        };
        let text = ClientFrame {
            request_id: RequestId::Num(id),
            operation_id: operation_id.clone(),
            request: *request,
            no_reply_on_success: false,
        }
        .to_json();
        debug!(%operation_id, method, id, "request");
        self.pending.insert(
            id,
            Pending {
                reply,
                method,
                operation_id,
                answers_room,
                call,
            },
        );
        if self.pending.len() > SWEEP_THRESHOLD {
            self.sweep_abandoned();
        }
        // On failure the request stays pending and fails with the connection.
        conn.writer
            .send(Message::text(text))
            .await
            .map_err(|_| "write failed".to_owned())
    }

    /// Writes a relayed signal with `noReplyOnSuccess` and answers `reply` with `null`
    /// once it is written. Nothing waits for the server: it answers only a failure, under
    /// an id of [`UNANSWERED_ID_PREFIX`], which [`Driver::on_text`] turns into an event.
    async fn send_unanswered(
        &mut self,
        conn: &mut Connection,
        operation_id: String,
        request: Request,
        reply: oneshot::Sender<Reply>,
    ) -> Result<(), String> {
        let id = self.next_id;
        self.next_id += 1;
        debug!(%operation_id, method = request.method(), id, "unanswered request");
        let text = ClientFrame {
            request_id: RequestId::Str(format!("{UNANSWERED_ID_PREFIX}{id}")),
            operation_id,
            request,
            no_reply_on_success: true,
        }
        .to_json();
        if conn.writer.send(Message::text(text)).await.is_err() {
            // As a waiting request fails with its connection.
            let _ = reply.send(Err(SdkError::Disconnected));
            return Err("write failed".to_owned());
        }
        let _ = reply.send(Ok(null_value()));
        Ok(())
    }

    async fn on_text(&mut self, text: &str) -> Option<ConnEnd> {
        match ServerFrame::parse(text) {
            Ok(ServerFrame::Response {
                request_id: Some(RequestId::Str(id)),
                operation_id,
                result: Err(error),
            }) if id.starts_with(UNANSWERED_ID_PREFIX) => {
                debug!(%operation_id, %error, "an unanswered signal failed");
                self.emit(SdkEvent::SignalFailed {
                    operation_id,
                    error,
                })
                .await;
                None
            }
            Ok(ServerFrame::Response {
                request_id,
                operation_id,
                result,
            }) => {
                let changes = self.on_response(request_id, &operation_id, result);
                self.emit_calls(changes).await;
                None
            }
            Ok(ServerFrame::Event(event)) => self.on_event(event).await,
            Err(e) => {
                // One unreadable frame (a newer server's event, say) must not cost the
                // connection.
                warn!(error = %e, "ignoring a frame this SDK cannot read");
                None
            }
        }
    }

    /// Answers the waiting caller; returns the call states the reply led to.
    fn on_response(
        &mut self,
        request_id: Option<RequestId>,
        operation_id: &str,
        result: Result<Box<RawValue>, WireError>,
    ) -> Vec<CallState> {
        let pending = match &request_id {
            Some(RequestId::Num(id)) => self.pending.remove(id),
            _ => None,
        };
        let Some(p) = pending else {
            match result {
                Err(e) => {
                    warn!(?request_id, %operation_id, error = %e, "error reply to no waiting request")
                }
                Ok(_) => debug!(?request_id, %operation_id, "reply to no waiting request"),
            }
            return Vec::new();
        };
        if let Some(room) = &p.answers_room {
            let outcome = result.as_ref().map(|_| ()).map_err(|e| e.code);
            lock(&self.view).ringing.on_answer_reply(room, outcome);
        }
        let changes = match &p.call {
            Some(call) => call_reply(&mut lock(&self.view).call, call, &result),
            None => Vec::new(),
        };
        match &result {
            Ok(_) => debug!(operation_id = %p.operation_id, method = p.method, "reply ok"),
            Err(e) => {
                debug!(operation_id = %p.operation_id, method = p.method, error = %e, "reply error")
            }
        }
        // The caller may have timed out meanwhile; the bookkeeping above still counts.
        let _ = p.reply.send(result.map_err(SdkError::Server));
        changes
    }

    async fn on_event(&mut self, event: Event) -> Option<ConnEnd> {
        if let Event::KickedOffline(info) = &event {
            let why = info.reason.clone();
            warn!(reason = %why, "kicked offline: another connection took this deviceID");
            self.deliver(event).await;
            return Some(ConnEnd::Kicked(why));
        }
        let deliver = lock(&self.view).ringing.on_event(&event);
        if deliver {
            self.deliver(event).await;
        } else {
            debug!(event = event.name(), "dropping a repeated invitation");
        }
        None
    }

    /// Emits a server event, then the call states it led to.
    async fn deliver(&mut self, event: Event) {
        let changes = lock(&self.view).call.on_event(&event);
        self.emit(SdkEvent::Signaling(event)).await;
        self.emit_calls(changes).await;
    }

    async fn emit_calls(&mut self, changes: Vec<CallState>) {
        for state in changes {
            self.emit(SdkEvent::CallStateChanged(state)).await;
        }
    }

    /// Tries again until signed in, told to stop, or out of attempts.
    async fn reconnect(&mut self, mut reason: String) -> Reconnect {
        let mut backoff = Backoff::new(self.options.backoff_initial, self.options.backoff_max);
        loop {
            let attempt = backoff.attempt() + 1;
            if let Some(max) = self.options.max_reconnect_attempts {
                if attempt > max {
                    return Reconnect::Stop(CloseReason::ConnectionLost(format!(
                        "gave up after {max} reconnect attempts: {reason}"
                    )));
                }
            }
            self.set_state(ConnectionState::Reconnecting {
                attempt,
                reason: reason.clone(),
            })
            .await;
            let delay = backoff.next_delay(random_jitter());
            let waited = while_offline(
                &mut self.commands,
                &mut self.close_acks,
                (&self.view, &self.events),
                tokio::time::sleep(delay),
            )
            .await;
            if waited.is_none() {
                return Reconnect::Stop(CloseReason::ClientClosed);
            }
            let result = while_offline(
                &mut self.commands,
                &mut self.close_acks,
                (&self.view, &self.events),
                establish(&self.endpoint, &self.login, &self.options),
            )
            .await;
            match result {
                None => return Reconnect::Stop(CloseReason::ClientClosed),
                Some(Ok((conn, login))) => return Reconnect::Connected(conn, Box::new(login)),
                Some(Err(e)) if e.is_fatal_for_login() => {
                    let refusal = e
                        .server_error()
                        .cloned()
                        .expect("only server errors are fatal for login");
                    return Reconnect::Stop(CloseReason::LoginRefused(refusal));
                }
                Some(Err(e)) => {
                    debug!(attempt, error = %e, "reconnect attempt failed");
                    reason = e.to_string();
                }
            }
        }
    }

    /// Adopts a reconnect's login reply and tells the app what changed meanwhile.
    async fn resync(&mut self, login: LoginReply) {
        let (catch_up, changes) = {
            let mut view = lock(&self.view);
            view.session = login.clone();
            let catch_up = view
                .ringing
                .resync(&login.pending_invitations, login.server_time);
            (catch_up, view.call.on_resync(&login))
        };
        self.set_state(ConnectionState::Resynced {
            login: Box::new(login),
        })
        .await;
        self.emit_calls(changes).await;
        for event in catch_up {
            self.deliver(event).await;
        }
    }

    /// Sends a close frame and waits briefly for the server's answer, so the server
    /// sees a sign-off rather than a drop.
    async fn close_gracefully(&mut self, conn: Connection) {
        self.fail_pending(&SdkError::Closed);
        let Connection {
            mut reader,
            writer,
            writer_task,
        } = conn;
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "client closed".into(),
        };
        let _ = writer.send(Message::Close(Some(frame))).await;
        drop(writer); // The writer finishes the handshake and exits.
        let abort = writer_task.abort_handle();
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async move {
            let _ = writer_task.await;
            while let Some(Ok(msg)) = reader.next().await {
                if msg.is_close() {
                    break;
                }
            }
        })
        .await;
        abort.abort();
    }

    /// The end: fails everything still waiting, reports `Closed`, releases `close()`.
    async fn finish(&mut self, reason: CloseReason) {
        self.fail_pending(&SdkError::Closed);
        let ended = match reason {
            CloseReason::ClientClosed => EndReason::ClientClosed,
            CloseReason::KickedOffline(_) => EndReason::SignedInElsewhere,
            _ => EndReason::ConnectionLost,
        };
        let changes = lock(&self.view).call.on_closed(ended);
        self.emit_calls(changes).await;
        self.set_state(ConnectionState::Closed { reason }).await;
        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Request { reply, .. } => {
                    let _ = reply.send(Err(SdkError::Closed));
                }
                Command::Close { done } => self.close_acks.push(done),
            }
        }
        for done in self.close_acks.drain(..) {
            let _ = done.send(());
        }
    }

    /// The one place the connection state changes.
    async fn set_state(&mut self, new: ConnectionState) {
        let old = std::mem::replace(&mut lock(&self.view).state, new.clone());
        info!(
            "connection {} -> {}",
            describe_state(&old),
            describe_state(&new)
        );
        self.emit(SdkEvent::Connection(new)).await;
    }

    async fn emit(&mut self, event: SdkEvent) {
        // Waits when the app is behind (see EVENT_CAPACITY); an error only means the
        // app dropped its receiver and does not want events.
        let _ = self.events.send(event).await;
    }

    fn fail_pending(&mut self, error: &SdkError) {
        for (_, p) in self.pending.drain() {
            debug!(operation_id = %p.operation_id, method = p.method, %error, "request failed");
            let _ = p.reply.send(Err(error.clone()));
        }
    }

    /// Forgets requests whose callers stopped waiting (timed out or dropped).
    fn sweep_abandoned(&mut self) {
        self.pending.retain(|_, p| !p.reply.is_closed());
    }
}

/// Runs `fut` while there is no connection, refusing requests with `Disconnected`.
/// `None` when the app closed the client meanwhile. A hang-up, cancel or decline refused
/// this way still ends the call here (`calls`: the view and the app's channel): the
/// person pressed the button, and the server ends the call when the grace runs out.
async fn while_offline<F: Future>(
    commands: &mut mpsc::Receiver<Command>,
    close_acks: &mut Vec<oneshot::Sender<()>>,
    calls: (&Mutex<View>, &mpsc::Sender<SdkEvent>),
    fut: F,
) -> Option<F::Output> {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => return Some(out),
            command = commands.recv() => match command {
                None => return None,
                Some(Command::Close { done }) => {
                    close_acks.push(done);
                    return None;
                }
                Some(Command::Request { request, reply, .. }) => {
                    let _ = reply.send(Err(SdkError::Disconnected));
                    for state in note_request(calls.0, &request) {
                        let _ = calls.1.send(SdkEvent::CallStateChanged(state)).await;
                    }
                }
            },
        }
    }
}

/// `null`, the answer to a request that has none.
fn null_value() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).expect("null is JSON")
}

/// Tells the call model about a request of ours; returns the call states it led to.
fn note_request(view: &Mutex<View>, request: &Request) -> Vec<CallState> {
    match CallRequest::of(request) {
        Some(call) => lock(view).call.on_request(&call),
        None => Vec::new(),
    }
}

/// Tells the call model what the server answered to our invite or accept.
fn call_reply(
    model: &mut CallModel,
    call: &CallReply,
    result: &Result<Box<RawValue>, WireError>,
) -> Vec<CallState> {
    /// A successful reply's data; `None` (logged) when this SDK cannot read it.
    fn read<T: serde::de::DeserializeOwned>(raw: &RawValue) -> Option<T> {
        serde_json::from_str(raw.get())
            .map_err(|e| warn!(error = %e, "a call reply this SDK cannot read"))
            .ok()
    }
    fn refused(e: &WireError) -> (ErrCode, &str) {
        (e.code, e.message.as_str())
    }
    match (call, result) {
        (CallReply::Invite(sent), Ok(raw)) => read(raw)
            .map(|reply| model.on_invite_reply(sent, Ok(&reply)))
            .unwrap_or_default(),
        (CallReply::Invite(sent), Err(e)) => model.on_invite_reply(sent, Err(refused(e))),
        (CallReply::Accept(room), Ok(raw)) => read(raw)
            .map(|reply| model.on_accept_reply(room, Ok(&reply)))
            .unwrap_or_default(),
        (CallReply::Accept(room), Err(e)) => model.on_accept_reply(room, Err(refused(e))),
    }
}

async fn tick(keepalive: &mut Option<Interval>) {
    match keepalive {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn describe_state(state: &ConnectionState) -> String {
    match state {
        ConnectionState::Connected => "connected".into(),
        ConnectionState::Reconnecting { attempt, reason } => {
            format!("reconnecting (attempt {attempt}: {reason})")
        }
        ConnectionState::ServerRestarting => "server restarting".into(),
        ConnectionState::Resynced { .. } => "resynced".into(),
        ConnectionState::Closed { reason } => format!("closed ({reason})"),
    }
}
