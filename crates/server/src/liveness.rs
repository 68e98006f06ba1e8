//! When a connection's peer counts as gone. No IO and no clock of its own: the
//! connection task reports every frame it reads ([`Liveness::heard`]), asks what to do
//! when its timer fires ([`Liveness::check`]) and bounds its writes with
//! [`Liveness::write_deadline`].
//!
//! Only frames *from* the peer prove it alive: what the server sends may sit unread in
//! socket buffers for ever. After `ping_after` of silence the server sends a WebSocket
//! ping; a peer that answers nothing (no pong, no request) within `pong_timeout` of that
//! ping is gone. The pong deadline counts from the ping actually sent, so a connection
//! whose task was late to send it (a busy server, a test's clock jumping ahead) is not
//! cut before it had the chance to answer.

use std::time::Duration;

use tokio::time::Instant;

/// What the connection task should do when its liveness timer fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing yet: sleep until this moment and check again.
    Wait(Instant),
    /// The peer has been silent for `ping_after`: send a WebSocket ping, then sleep
    /// until [`Liveness::next_check`].
    Ping,
    /// The ping went unanswered for `pong_timeout`: the peer is gone.
    Dead,
}

/// Tracks one connection's peer. See the module docs.
#[derive(Debug, Clone)]
pub struct Liveness {
    ping_after: Duration,
    pong_timeout: Duration,
    last_heard: Instant,
    pinged_at: Option<Instant>,
}

impl Liveness {
    /// A peer just heard from (the connection was just opened).
    pub fn new(ping_after: Duration, pong_timeout: Duration, now: Instant) -> Self {
        Self {
            ping_after,
            pong_timeout,
            last_heard: now,
            pinged_at: None,
        }
    }

    /// A frame (of any kind, control frames included) arrived from the peer.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = now;
        self.pinged_at = None;
    }

    /// When the peer was last heard from: the moment it went silent, if it is gone.
    pub fn last_heard(&self) -> Instant {
        self.last_heard
    }

    /// When the timer should fire next.
    pub fn next_check(&self) -> Instant {
        match self.pinged_at {
            Some(p) => p + self.pong_timeout,
            None => self.last_heard + self.ping_after,
        }
    }

    /// The timer fired at `now`.
    pub fn check(&mut self, now: Instant) -> Due {
        if now < self.next_check() {
            return Due::Wait(self.next_check());
        }
        match self.pinged_at {
            None => {
                self.pinged_at = Some(now);
                Due::Ping
            }
            Some(_) => Due::Dead,
        }
    }

    /// The latest moment a write started at `now` may finish: `write_timeout` from now,
    /// and never after the moment the peer would count as gone — a peer whose socket
    /// takes nothing is as gone as one that says nothing, and the connection task
    /// cannot notice either while it waits on a write.
    pub fn write_deadline(&self, now: Instant, write_timeout: Duration) -> Instant {
        let gone_at = match self.pinged_at {
            Some(p) => p + self.pong_timeout,
            None => self.last_heard + self.ping_after + self.pong_timeout,
        };
        (now + write_timeout).min(gone_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn live(t0: Instant) -> Liveness {
        Liveness::new(5 * S, 5 * S, t0)
    }

    #[test]
    fn a_silent_peer_is_pinged_then_gone_ten_seconds_after_its_last_frame() {
        let t0 = Instant::now();
        let mut l = live(t0);
        assert_eq!(l.check(t0 + 4 * S), Due::Wait(t0 + 5 * S));
        assert_eq!(l.check(t0 + 5 * S), Due::Ping);
        assert_eq!(l.next_check(), t0 + 10 * S);
        assert_eq!(l.check(t0 + 9 * S), Due::Wait(t0 + 10 * S));
        assert_eq!(l.check(t0 + 10 * S), Due::Dead);
        assert_eq!(l.last_heard(), t0);
    }

    #[test]
    fn any_frame_from_the_peer_restarts_the_count() {
        let t0 = Instant::now();
        let mut l = live(t0);
        assert_eq!(l.check(t0 + 5 * S), Due::Ping);
        l.heard(t0 + 6 * S);
        assert_eq!(l.check(t0 + 10 * S), Due::Wait(t0 + 11 * S));
        assert_eq!(l.check(t0 + 11 * S), Due::Ping);
    }

    #[test]
    fn the_pong_deadline_counts_from_the_ping_actually_sent() {
        let t0 = Instant::now();
        let mut l = live(t0);
        // The timer fired late (a busy runtime): the peer still gets its full answer time.
        assert_eq!(l.check(t0 + 30 * S), Due::Ping);
        assert_eq!(l.check(t0 + 34 * S), Due::Wait(t0 + 35 * S));
        assert_eq!(l.check(t0 + 35 * S), Due::Dead);
    }

    #[test]
    fn writes_may_not_outlast_the_moment_the_peer_counts_as_gone() {
        let t0 = Instant::now();
        let mut l = live(t0);
        assert_eq!(l.write_deadline(t0, 10 * S), t0 + 10 * S);
        assert_eq!(l.write_deadline(t0 + 8 * S, 10 * S), t0 + 10 * S);
        l.heard(t0 + 8 * S);
        assert_eq!(l.write_deadline(t0 + 8 * S, 3 * S), t0 + 11 * S);
        assert_eq!(l.check(t0 + 13 * S), Due::Ping);
        assert_eq!(l.write_deadline(t0 + 13 * S, 10 * S), t0 + 18 * S);
    }
}
