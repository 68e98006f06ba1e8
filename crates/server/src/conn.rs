//! One task per WebSocket connection: reads frames, checks size and rate, parses them
//! and hands requests to the hub; writes what the switchboard queues for it.
//!
//! A single task does both directions (a `select!` over the socket and the outbound
//! queue), which keeps an idle connection to one small future, one queue and
//! tungstenite's buffers.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::{sleep, sleep_until, timeout_at, Instant};
use tracing::{debug, info};

use tincan_protocol::{response_json, ClientFrame, Empty, ErrCode, Request, WireError};

use crate::hub::Input;
use crate::liveness::{Due, Liveness};
use crate::switchboard::{Outbound, OUTBOUND_CAPACITY};
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
pub(crate) async fn serve(
    socket: WebSocket,
    state: Arc<AppState>,
    permit: OwnedSemaphorePermit,
    ticket: Option<crate::gate::Ticket>,
) {
    let _permit = permit;
    let _done = state.done_tx.clone();
    let conn = state.next_conn();
    let (tx, mut rx) = mpsc::channel(OUTBOUND_CAPACITY);
    if state.board.open(conn, tx).is_err() {
        return;
    }
    let limits = &state.limits;
    let (mut sink, mut stream) = socket.split();
    let mut bucket = TokenBucket::new(limits.rate_per_sec, limits.rate_burst, Instant::now());
    // Boxed, and dropped once `login` is sent, so a signed-in idle connection does not
    // carry a dead timer.
    let mut login_deadline = Some(Box::pin(sleep(limits.login_timeout)));
    let mut live = Liveness::new(limits.ping_after, limits.pong_timeout, Instant::now());
    // Lazy: frames from the peer only update `live`; when this fires, `live` says whether
    // to ping, give up, or sleep again.
    let live_timer = sleep_until(live.next_check());
    tokio::pin!(live_timer);
    // Every write is bounded, so a peer that stops reading cannot hold this task (and
    // with it the liveness checks) in a flush for ever.
    macro_rules! bounded {
        ($e:expr) => {{
            let deadline = live.write_deadline(Instant::now(), limits.write_timeout);
            match timeout_at(deadline, $e).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => {
                    info!(conn, error = %e, "writing to the peer failed; dropping its connection");
                    Err(())
                }
                Err(_) => {
                    info!(
                        conn,
                        "the peer takes no data (write timed out); dropping its connection"
                    );
                    Err(())
                }
            }
        }};
    }

    let close = |code: u16, reason: std::borrow::Cow<'static, str>| {
        Message::Close(Some(CloseFrame {
            code,
            reason: match reason {
                std::borrow::Cow::Borrowed(r) => r.into(),
                std::borrow::Cow::Owned(r) => r.into(),
            },
        }))
    };

    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Outbound::Text(text)) => {
                    // What we send proves nothing about the peer: it does not touch
                    // `live`.
                    if bounded!(sink.feed(Message::Text(*text))).is_err() { break; }
                    // Coalesce whatever else is queued into one flush.
                    let mut closing = None;
                    while let Ok(more) = rx.try_recv() {
                        match more {
                            Outbound::Text(t) => if bounded!(sink.feed(Message::Text(*t))).is_err() { break },
                            Outbound::Close(c) => { closing = Some(*c); break }
                        }
                    }
                    if bounded!(sink.flush()).is_err() { break; }
                    if let Some((code, reason)) = closing {
                        let _ = bounded!(sink.send(close(code, reason)));
                        break;
                    }
                }
                Some(Outbound::Close(c)) => {
                    let (code, reason) = *c;
                    let _ = bounded!(sink.send(close(code, reason)));
                    break;
                }
                // Our queue was dropped: too slow, replaced, or the server stopped.
                None => {
                    info!(conn, "connection too slow to keep up with its frames; dropping it");
                    let _ = bounded!(sink.send(close(1008, "connection too slow to keep up".into())));
                    break;
                }
            },
            msg = stream.next() => {
                // Anything from the peer, even a close or an error, ends its silence.
                live.heard(Instant::now());
                let text = match msg {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        let e = if bucket.take(Instant::now()) {
                            WireError::new(ErrCode::MalformedFrame, "binary frames are not supported; send JSON text frames")
                        } else {
                            rate_limited(limits)
                        };
                        state.board.metrics().error(e.code);
                        if bounded!(sink.send(Message::Text(error_reply(None, "", &e).into()))).is_err() { break; }
                        continue;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Err(e)) => {
                        // tungstenite refuses frames over the hard limit; say so before
                        // closing (after other read errors the socket is gone anyway).
                        let text = e.to_string();
                        if text.contains("too long") || text.contains("Space limit") {
                            let _ = bounded!(sink.send(close(1009, "frame larger than 1 MiB".into())));
                        }
                        break;
                    }
                    Some(Ok(Message::Close(_))) | None => break,
                };
                match check_frame(&text, limits, &mut bucket) {
                    Ok(frame) => {
                        if matches!(frame.request, Request::Login(_)) {
                            login_deadline = None;
                            if let Some(t) = &ticket { t.release(); }
                        }
                        let (id, op) = (frame.request_id.clone(), frame.operation_id.clone());
                        if state.board.request(conn, frame, &text).is_err() {
                            let e = WireError::new(ErrCode::ShuttingDown, "the server is restarting; reconnect in a moment");
                            let _ = bounded!(sink.send(Message::Text(error_reply(Some(&id), &op, &e).into())));
                            let _ = bounded!(sink.send(close(crate::switchboard::RESTART_CLOSE_CODE, crate::switchboard::RESTART_CLOSE_REASON.into())));
                            break;
                        }
                    }
                    Err((code, reply)) => {
                        state.board.metrics().error(code);
                        if bounded!(sink.send(Message::Text(reply.into()))).is_err() { break; }
                    }
                }
            }
            _ = async { login_deadline.as_mut().expect("branch enabled only while set").await }, if login_deadline.is_some() => {
                let _ = bounded!(sink.send(close(1008, "sign in (send \"login\") within 10 seconds of connecting".into())));
                break;
            }
            _ = &mut live_timer => match live.check(Instant::now()) {
                Due::Wait(at) => live_timer.as_mut().reset(at),
                Due::Ping => {
                    if bounded!(sink.send(Message::Ping(Default::default()))).is_err() { break; }
                    live_timer.as_mut().reset(live.next_check());
                }
                Due::Dead => {
                    info!(conn, "no answer to a ping; dropping the connection");
                    let _ = bounded!(sink.send(close(1001, "no answer to ping".into())));
                    break;
                }
            },
        }
    }
    debug!(conn, "connection task ends");
    let _ = state.board.input(Input::Closed {
        conn,
        last_heard: live.last_heard(),
    });
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
) -> Result<ClientFrame, (ErrCode, String)> {
    let allowed = bucket.take(Instant::now());
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
        let (code, reply) = check_frame(&"x".repeat(11), &limits, &mut b).unwrap_err();
        assert_eq!(code, ErrCode::FrameTooLarge);
        assert!(reply.contains("\"errCode\":1005"), "{reply}");
    }
}
