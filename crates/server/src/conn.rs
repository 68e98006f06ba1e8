//! One task per WebSocket connection: reads frames, checks size and rate, parses them
//! and hands requests to the hub; writes what the switchboard queues for it.
//!
//! A single task does both directions (a `select!` over the socket and the outbound
//! queue), which keeps an idle connection to one small future, one queue and
//! tungstenite's buffers.

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::error::Elapsed;
use tokio::time::{sleep, sleep_until, timeout_at, Instant, Sleep};
use tracing::{debug, info};

use tincan_protocol::{response_json, ClientFrame, Empty, ErrCode, Request, WireError};

use crate::hub::{ConnId, Input};
use crate::liveness::{Due, Liveness};
use crate::switchboard::{Outbound, OutboundRx};
use crate::AppState;

/// Per-connection limits.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Largest frame answered normally; larger ones get `FrameTooLarge` (the connection
    /// stays). Frames over [`HARD_FRAME_LIMIT`] close the connection.
    pub max_frame_bytes: usize,
    /// Sustained requests per second.
    pub rate_per_sec: f64,
    /// Burst of requests allowed above the sustained rate.
    pub rate_burst: f64,
    /// Time to send `login` after connecting.
    pub login_timeout: Duration,
    /// Silence from the peer after which the server sends a WebSocket ping.
    pub ping_after: Duration,
    /// A peer that answers nothing this long after a ping is gone: its connection is
    /// closed and the hub counts its grace from the last frame it sent.
    pub pong_timeout: Duration,
    /// Longest time one write (or flush) to the socket may take; it is also cut short
    /// at the moment the peer would count as gone (see `liveness.rs`).
    pub write_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            rate_per_sec: 20.0,
            rate_burst: 40.0,
            login_timeout: Duration::from_secs(10),
            // 5 + 5: a silent peer is found 10 s after its last frame, within the
            // 10 s inviter grace and well within the 30 s participant grace.
            ping_after: Duration::from_secs(5),
            pong_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// Frames read from the peer in a row before the outbound queue gets a turn (see
/// `Task::run`).
const READ_BURST: u32 = 16;

/// Frames above this are refused by tungstenite itself, which closes the connection
/// (code 1009): reading them at all would let one client make the server buffer them.
pub const HARD_FRAME_LIMIT: usize = 1024 * 1024;

/// A token bucket: `burst` requests at once, refilled at `rate` per second.
#[derive(Debug)]
pub struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            rate,
            burst,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Serves one upgraded socket until it closes.
/// `ticket` is the connection's place among those not signed in (gate.rs): given back
/// when `login` goes to the hub (a refused login closes the socket at once).
///
/// Not an `async fn`: one would keep the socket it was given (368 bytes) in its state
/// for the connection's whole life, next to the task that holds it.
pub(crate) fn serve(
    socket: WebSocket,
    state: Arc<AppState>,
    permit: OwnedSemaphorePermit,
    ticket: Option<crate::gate::Ticket>,
) -> impl std::future::Future<Output = ()> + Send {
    let now = Instant::now();
    let limits = &state.limits;
    let mut task = Task {
        conn: state.next_conn(),
        bucket: TokenBucket::new(limits.rate_per_sec, limits.rate_burst, now),
        live: Liveness::new(limits.ping_after, limits.pong_timeout, now),
        login_deadline: Some(Box::pin(sleep(limits.login_timeout))),
        _done: state.done_tx.clone(),
        _permit: permit,
        socket,
        ticket,
        state,
    };
    // Borrowed in place: an `async fn` taking the task by value would hold it twice.
    async move { task.run().await }
}

/// One connection's task: what it holds for the connection's life. Kept small on
/// purpose (it is most of an idle connection's memory): decisions are made in plain
/// functions that return an [`Act`], and one `async fn` carries it out, so the task's
/// state holds one write in flight at most.
struct Task {
    conn: ConnId,
    state: Arc<AppState>,
    /// Read in the `select!` and written after it (its futures are gone by then), so
    /// the socket is not split: no lock between the halves, no waker clones for it.
    socket: WebSocket,
    bucket: TokenBucket,
    live: Liveness,
    /// Boxed, and dropped once `login` is sent, so a signed-in idle connection does not
    /// carry a dead timer.
    login_deadline: Option<Pin<Box<Sleep>>>,
    ticket: Option<crate::gate::Ticket>,
    _done: mpsc::Sender<()>,
    _permit: OwnedSemaphorePermit,
}

/// What woke the task.
enum Wake {
    /// A frame (or the end) from the outbound queue.
    Out(Option<Outbound>),
    /// A message (or the end) from the peer.
    In(Option<Result<Message, axum::Error>>),
    /// The time to sign in ran out.
    LoginLate,
    /// Time to look at the peer's silence.
    LiveCheck,
}

/// What the task writes next, decided without awaiting.
enum Act {
    /// Nothing.
    Nothing,
    /// This frame from the queue, and whatever else the queue holds, in one flush.
    Deliver(Outbound),
    /// One frame.
    Send(Message),
    /// One frame, then close with this code and reason, and stop.
    SendThenClose(Message, u16, Cow<'static, str>),
    /// Close with this code and reason, and stop.
    Close(u16, Cow<'static, str>),
    /// Stop without writing.
    Stop,
}

/// Whether the task goes on.
#[derive(PartialEq)]
enum Then {
    Go,
    Stop,
}

fn close_frame(code: u16, reason: Cow<'static, str>) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: match reason {
            Cow::Borrowed(r) => r.into(),
            Cow::Owned(r) => r.into(),
        },
    }))
}

impl Task {
    async fn run(&mut self) {
        let mut rx = match self.state.board.open(self.conn) {
            Ok(rx) => rx,
            Err(_) => return,
        };
        // Lazy: frames from the peer only update `live`; when this fires, `live` says
        // whether to ping, give up, or sleep again.
        let live_timer = sleep_until(self.live.next_check());
        tokio::pin!(live_timer);
        // Frames read in a row since the outbound queue last had a turn.
        let mut streak = 0;
        loop {
            // In this order: the deadlines first (a peer that never stops sending must not
            // outrun them), then the peer's frames, so that the replies to a burst of
            // requests queue up and leave in one write, then what is queued — first
            // after READ_BURST frames in a row, so the queue is drained at least that
            // often and never overflows because its own peer keeps sending.
            let wake = if streak < READ_BURST {
                tokio::select! {
                    biased;
                    _ = async { self.login_deadline.as_mut().expect("branch enabled only while set").await },
                        if self.login_deadline.is_some() => Wake::LoginLate,
                    _ = &mut live_timer => Wake::LiveCheck,
                    msg = self.socket.next() => Wake::In(msg),
                    out = rx.next() => Wake::Out(out),
                }
            } else {
                tokio::select! {
                    biased;
                    _ = async { self.login_deadline.as_mut().expect("branch enabled only while set").await },
                        if self.login_deadline.is_some() => Wake::LoginLate,
                    _ = &mut live_timer => Wake::LiveCheck,
                    out = rx.next() => Wake::Out(out),
                    msg = self.socket.next() => Wake::In(msg),
                }
            };
            streak = if matches!(wake, Wake::In(_)) {
                streak + 1
            } else {
                0
            };
            let act = match wake {
                Wake::Out(Some(out)) => Act::Deliver(out),
                // Our queue was dropped: too slow, replaced, or the server stopped.
                Wake::Out(None) => {
                    info!(
                        conn = self.conn,
                        "connection too slow to keep up with its frames; dropping it"
                    );
                    Act::Close(1008, "connection too slow to keep up".into())
                }
                Wake::In(msg) => self.heard(msg),
                Wake::LoginLate => Act::Close(
                    1008,
                    "sign in (send \"login\") within 10 seconds of connecting".into(),
                ),
                Wake::LiveCheck => match self.live.check(Instant::now()) {
                    Due::Wait(at) => {
                        live_timer.as_mut().reset(at);
                        Act::Nothing
                    }
                    Due::Ping => {
                        live_timer.as_mut().reset(self.live.next_check());
                        Act::Send(Message::Ping(Default::default()))
                    }
                    Due::Dead => {
                        info!(
                            conn = self.conn,
                            "no answer to a ping; dropping the connection"
                        );
                        Act::Close(1001, "no answer to ping".into())
                    }
                },
            };
            // Boxed: a write in flight (a timeout around the sink's future) is most of
            // what the task would otherwise keep between frames; one allocation per
            // write costs far less than that memory on every idle connection. Most
            // requests write nothing here (their replies come through the queue).
            if matches!(act, Act::Nothing) {
                continue;
            }
            if Box::pin(self.perform(act, &mut rx)).await == Then::Stop {
                break;
            }
        }
        debug!(conn = self.conn, "connection task ends");
        let _ = self.state.board.input(Input::Closed {
            conn: self.conn,
            last_heard: self.live.last_heard(),
        });
    }

    /// What to do about a message from the peer.
    fn heard(&mut self, msg: Option<Result<Message, axum::Error>>) -> Act {
        // Anything from the peer, even a close or an error, ends its silence.
        let now = Instant::now();
        self.live.heard(now);
        let limits = &self.state.limits;
        match msg {
            Some(Ok(Message::Text(text))) => self.frame(&text, now),
            Some(Ok(Message::Binary(_))) => {
                let e = if self.bucket.take(now) {
                    WireError::new(
                        ErrCode::MalformedFrame,
                        "binary frames are not supported; send JSON text frames",
                    )
                } else {
                    rate_limited(limits)
                };
                self.state.board.metrics().error(e.code);
                Act::Send(Message::Text(error_reply(None, "", &e).into()))
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Act::Nothing,
            Some(Err(e)) => {
                // tungstenite refuses frames over the hard limit; say so before closing
                // (after other read errors the socket is gone anyway).
                let text = e.to_string();
                if text.contains("too long") || text.contains("Space limit") {
                    Act::Close(1009, "frame larger than 1 MiB".into())
                } else {
                    Act::Stop
                }
            }
            Some(Ok(Message::Close(_))) | None => Act::Stop,
        }
    }

    /// Checks a text frame and hands it to the switchboard, or answers why not.
    fn frame(&mut self, text: &str, now: Instant) -> Act {
        let frame = match check_frame(text, &self.state.limits, &mut self.bucket, now) {
            Ok(frame) => frame,
            Err((code, reply)) => {
                self.state.board.metrics().error(code);
                return Act::Send(Message::Text(reply.into()));
            }
        };
        if matches!(frame.request, Request::Login(_)) {
            self.login_deadline = None;
            if let Some(t) = &self.ticket {
                t.release();
            }
        }
        let (id, op) = (frame.request_id.clone(), frame.operation_id.clone());
        match self.state.board.request(self.conn, frame, text) {
            Ok(()) => Act::Nothing,
            Err(_) => {
                let e = WireError::new(
                    ErrCode::ShuttingDown,
                    "the server is restarting; reconnect in a moment",
                );
                Act::SendThenClose(
                    Message::Text(error_reply(Some(&id), &op, &e).into()),
                    crate::switchboard::RESTART_CLOSE_CODE,
                    crate::switchboard::RESTART_CLOSE_REASON.into(),
                )
            }
        }
    }

    /// Carries out `act`. Every write is bounded, so a peer that stops reading cannot
    /// hold this task (and with it the liveness checks) in a flush for ever.
    async fn perform(&mut self, act: Act, rx: &mut OutboundRx) -> Then {
        match act {
            Act::Nothing => Then::Go,
            Act::Stop => Then::Stop,
            Act::Send(msg) => self.write(msg, true).await,
            Act::SendThenClose(msg, code, reason) => {
                if self.write(msg, true).await == Then::Go {
                    self.write(close_frame(code, reason), true).await;
                }
                Then::Stop
            }
            Act::Close(code, reason) => {
                self.write(close_frame(code, reason), true).await;
                Then::Stop
            }
            Act::Deliver(first) => {
                // What we send proves nothing about the peer: it does not touch `live`.
                // Whatever else is queued goes out in the same flush.
                let mut next = Some(first);
                while let Some(out) = next.take() {
                    match out {
                        Outbound::Text(text) => {
                            if self.write(Message::Text(text), false).await == Then::Stop {
                                return Then::Stop;
                            }
                        }
                        Outbound::Close(code, reason) => {
                            if self.flush().await == Then::Go {
                                self.write(close_frame(code, reason), true).await;
                            }
                            return Then::Stop;
                        }
                    }
                    next = rx.try_recv().ok();
                }
                self.flush().await
            }
        }
    }

    /// Writes one frame, flushed or only buffered.
    async fn write(&mut self, msg: Message, flush: bool) -> Then {
        let deadline = self.write_deadline();
        let result = if flush {
            timeout_at(deadline, self.socket.send(msg)).await
        } else {
            timeout_at(deadline, self.socket.feed(msg)).await
        };
        self.written(result)
    }

    async fn flush(&mut self) -> Then {
        let deadline = self.write_deadline();
        let result = timeout_at(deadline, self.socket.flush()).await;
        self.written(result)
    }

    fn write_deadline(&self) -> Instant {
        self.live
            .write_deadline(Instant::now(), self.state.limits.write_timeout)
    }

    fn written(&self, result: Result<Result<(), axum::Error>, Elapsed>) -> Then {
        match result {
            Ok(Ok(())) => Then::Go,
            Ok(Err(e)) => {
                info!(conn = self.conn, error = %e, "writing to the peer failed; dropping its connection");
                Then::Stop
            }
            Err(_) => {
                info!(
                    conn = self.conn,
                    "the peer takes no data (write timed out); dropping its connection"
                );
                Then::Stop
            }
        }
    }
}

fn error_reply(request_id: Option<&tincan_protocol::RequestId>, op: &str, e: &WireError) -> String {
    response_json::<Empty>(request_id, op, Err(e))
}

fn rate_limited(limits: &ConnLimits) -> WireError {
    WireError::new(
        ErrCode::RateLimited,
        format!(
            "too many requests: at most {} per second on one connection; slow down and retry",
            limits.rate_per_sec
        ),
    )
}

/// Rate, size and parse checks. `Err` is the error's code and the reply to send instead
/// of forwarding. Every frame, good or bad, takes a token from the bucket.
fn check_frame(
    text: &str,
    limits: &ConnLimits,
    bucket: &mut TokenBucket,
    now: Instant,
) -> Result<ClientFrame, (ErrCode, String)> {
    let allowed = bucket.take(now);
    if text.len() > limits.max_frame_bytes {
        let e = if allowed {
            WireError::new(
                ErrCode::FrameTooLarge,
                format!(
                    "frame of {} bytes exceeds this server's limit of {} bytes",
                    text.len(),
                    limits.max_frame_bytes
                ),
            )
        } else {
            rate_limited(limits)
        };
        return Err((e.code, error_reply(None, "", &e)));
    }
    let parsed = ClientFrame::parse(text);
    if !allowed {
        let (id, op) = match &parsed {
            Ok(f) => (Some(&f.request_id), f.operation_id.as_str()),
            Err(fe) => (fe.request_id.as_ref(), fe.operation_id.as_str()),
        };
        return Err((
            ErrCode::RateLimited,
            error_reply(id, op, &rate_limited(limits)),
        ));
    }
    parsed.map_err(|fe| {
        let reply = error_reply(fe.request_id.as_ref(), &fe.operation_id, &fe.error);
        (fe.error.code, reply)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_refills_at_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 3.0, t0);
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert!(b.take(t0 + Duration::from_millis(100)));
        assert!(!b.take(t0 + Duration::from_millis(100)));
    }

    #[test]
    fn oversized_frames_are_refused_with_a_code() {
        let limits = ConnLimits {
            max_frame_bytes: 10,
            ..ConnLimits::default()
        };
        let mut b = TokenBucket::new(1.0, 1.0, Instant::now());
        let (code, reply) =
            check_frame(&"x".repeat(11), &limits, &mut b, Instant::now()).unwrap_err();
        assert_eq!(code, ErrCode::FrameTooLarge);
        assert!(reply.contains("\"errCode\":1005"), "{reply}");
    }
}

#[cfg(test)]
mod size {
    /// The size of what `f` returns, without calling it.
    fn returned<A, B, C, D, R>(_: &impl FnOnce(A, B, C, D) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    /// Every connection, idle or not, keeps one of these (inside axum's upgrade task):
    /// it is a good part of an idle connection's memory (docs/benchmarks.md). 1,920
    /// bytes before the decisions moved out of the `async` code; 752 now, of which the
    /// socket is 368.
    #[test]
    fn the_connection_task_is_small() {
        let bytes = returned(&super::serve);
        assert!(bytes <= 768, "the connection task takes {bytes} bytes");
    }
}
