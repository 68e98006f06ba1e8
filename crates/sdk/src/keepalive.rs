//! When to ping and when to give up on a silent connection. No IO, no clock: the
//! driver calls [`Liveness::on_frame`] for everything it receives and
//! [`Liveness::on_tick`] once per keepalive interval.

/// What to do at a keepalive tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TickAction {
    /// Something arrived since the last tick: the connection is alive, no ping needed.
    Alive,
    /// Nothing arrived: send a ping.
    Ping,
    /// Nothing arrived, and the last pings went unanswered: the connection is dead.
    Dead,
}

/// Tracks whether the server is still there.
#[derive(Debug, Clone)]
pub(crate) struct Liveness {
    max_missed: u32,
    heard: bool,
    unanswered: u32,
}

impl Liveness {
    /// Gives up after `max_missed` pings in a row go unanswered.
    pub(crate) fn new(max_missed: u32) -> Self {
        Liveness {
            max_missed,
            heard: false,
            unanswered: 0,
        }
    }

    /// Any frame (pong, reply, event) proves the connection alive.
    pub(crate) fn on_frame(&mut self) {
        self.heard = true;
        self.unanswered = 0;
    }

    /// One keepalive interval passed.
    pub(crate) fn on_tick(&mut self) -> TickAction {
        if std::mem::take(&mut self.heard) {
            TickAction::Alive
        } else if self.unanswered >= self.max_missed {
            TickAction::Dead
        } else {
            self.unanswered += 1;
            TickAction::Ping
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TickAction::*;

    #[test]
    fn a_silent_connection_dies_after_two_unanswered_pings() {
        let mut l = Liveness::new(2);
        assert_eq!([l.on_tick(), l.on_tick(), l.on_tick()], [Ping, Ping, Dead]);
    }

    #[test]
    fn traffic_means_no_ping() {
        let mut l = Liveness::new(2);
        l.on_frame();
        assert_eq!(l.on_tick(), Alive);
        assert_eq!(l.on_tick(), Ping, "idle again");
    }

    #[test]
    fn a_late_pong_resets_the_count() {
        let mut l = Liveness::new(2);
        assert_eq!(l.on_tick(), Ping);
        assert_eq!(l.on_tick(), Ping);
        l.on_frame();
        assert_eq!(
            [l.on_tick(), l.on_tick(), l.on_tick(), l.on_tick()],
            [Alive, Ping, Ping, Dead]
        );
    }
}
