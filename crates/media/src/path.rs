//! Whether one participant's network path works, and when to give up on it — without IO.
//!
//! A path starts out not working. ICE reports come in as [`PeerState`]s; the first loss
//! after a working spell asks for an ICE restart (once — further reports of the same
//! loss change nothing). A path that never came up is given up after `connect_within`,
//! one that was lost after `recover_within`. Time is passed in, so the rules are tested
//! here with plain `Instant`s and the session only feeds it and acts on the answers.

use std::time::{Duration, Instant};

use crate::peer::PeerState;

/// What the session should do after an ICE report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathChange {
    /// Nothing changed that needs acting on.
    None,
    /// The path works (again): count this participant as an audience, send a key frame.
    Up,
    /// The path was just lost: restart ICE, and stop counting this participant.
    Lost,
}

/// Why a path was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// It never worked within `connect_within`.
    NeverConnected,
    /// It worked, was lost, and did not come back within `recover_within`.
    NotRecovered,
}

impl GiveUp {
    /// The words the session reports.
    pub fn reason(self) -> &'static str {
        match self {
            GiveUp::NeverConnected => "no network path to them could be found",
            GiveUp::NotRecovered => "the network path was lost and did not come back",
        }
    }
}

/// One participant's path.
#[derive(Debug, Clone)]
pub struct PathWatch {
    connected: bool,
    ever_connected: bool,
    /// Since when there has been no working path: from creation until the first
    /// `Connected`, and from a loss until ICE recovers it.
    down_since: Option<Instant>,
}

impl PathWatch {
    /// A path being set up, from `now`.
    pub fn new(now: Instant) -> PathWatch {
        PathWatch {
            connected: false,
            ever_connected: false,
            down_since: Some(now),
        }
    }

    /// Whether media can flow to this participant now.
    pub fn is_up(&self) -> bool {
        self.connected
    }

    /// Takes an ICE report.
    pub fn on_state(&mut self, state: PeerState, now: Instant) -> PathChange {
        match state {
            PeerState::Connected => {
                self.connected = true;
                self.ever_connected = true;
                self.down_since = None;
                PathChange::Up
            }
            PeerState::Disconnected | PeerState::Failed => {
                self.connected = false;
                if self.down_since.is_some() {
                    // Already down (never up yet, or a restart is under way).
                    return PathChange::None;
                }
                self.down_since = Some(now);
                PathChange::Lost
            }
            PeerState::Connecting | PeerState::Closed => PathChange::None,
        }
    }

    /// Whether the path has been down too long, at `now`.
    pub fn given_up(
        &self,
        now: Instant,
        connect_within: Duration,
        recover_within: Duration,
    ) -> Option<GiveUp> {
        let down_since = self.down_since?;
        let (allowed, why) = if self.ever_connected {
            (recover_within, GiveUp::NotRecovered)
        } else {
            (connect_within, GiveUp::NeverConnected)
        };
        (now.saturating_duration_since(down_since) > allowed).then_some(why)
    }
}

/// How a candidate pair reaches the far end, named by the furthest of its two ends'
/// kinds: `relay` if either end is a TURN relay, `srflx`/`prflx` if either end is an
/// address a NAT mapped, `host` only when both are. A pair seen from behind a NAT is
/// often our host socket paired with the far end's server-reflexive address (the same
/// socket's srflx candidate is pruned), so the local kind alone would say "host" for a
/// path that crosses two NATs.
pub(crate) fn kind<'a>(local: &'a str, remote: &'a str) -> &'a str {
    let rank = |kind: &str| match kind {
        "relay" => 3,
        "srflx" | "prflx" => 2,
        _ => 1,
    };
    if rank(remote) > rank(local) {
        remote
    } else {
        local
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONNECT: Duration = Duration::from_secs(20);
    const RECOVER: Duration = Duration::from_secs(15);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_path_that_never_comes_up_is_given_up_after_connect_within() {
        let t0 = Instant::now();
        let mut path = PathWatch::new(t0);
        assert!(!path.is_up());
        // Failures before the first connection do not ask for a restart.
        assert_eq!(
            path.on_state(PeerState::Failed, t0 + secs(5)),
            PathChange::None
        );
        assert_eq!(path.given_up(t0 + secs(20), CONNECT, RECOVER), None);
        assert_eq!(
            path.given_up(t0 + secs(21), CONNECT, RECOVER),
            Some(GiveUp::NeverConnected)
        );
    }

    #[test]
    fn the_first_loss_restarts_once_and_recovery_clears_the_clock() {
        let t0 = Instant::now();
        let mut path = PathWatch::new(t0);
        assert_eq!(
            path.on_state(PeerState::Connected, t0 + secs(1)),
            PathChange::Up
        );
        assert!(path.is_up());
        assert_eq!(path.given_up(t0 + secs(100), CONNECT, RECOVER), None);

        let lost = t0 + secs(100);
        assert_eq!(
            path.on_state(PeerState::Disconnected, lost),
            PathChange::Lost
        );
        assert!(!path.is_up());
        // `Failed` following `Disconnected` is the same loss: no second restart.
        assert_eq!(
            path.on_state(PeerState::Failed, lost + secs(5)),
            PathChange::None
        );
        assert_eq!(path.given_up(lost + secs(15), CONNECT, RECOVER), None);

        assert_eq!(
            path.on_state(PeerState::Connected, lost + secs(6)),
            PathChange::Up
        );
        assert_eq!(path.given_up(lost + secs(60), CONNECT, RECOVER), None);
        // A later loss is a new one, with its own restart and clock.
        let again = lost + secs(60);
        assert_eq!(path.on_state(PeerState::Failed, again), PathChange::Lost);
        assert_eq!(
            path.given_up(again + secs(16), CONNECT, RECOVER),
            Some(GiveUp::NotRecovered)
        );
    }

    #[test]
    fn connecting_and_closed_reports_change_nothing() {
        let t0 = Instant::now();
        let mut path = PathWatch::new(t0);
        assert_eq!(path.on_state(PeerState::Connecting, t0), PathChange::None);
        path.on_state(PeerState::Connected, t0);
        assert_eq!(path.on_state(PeerState::Closed, t0), PathChange::None);
    }

    #[test]
    fn a_path_is_named_by_its_furthest_end() {
        assert_eq!(kind("host", "host"), "host");
        // Our socket towards the far end's NAT mapping crosses a NAT.
        assert_eq!(kind("host", "srflx"), "srflx");
        assert_eq!(kind("prflx", "host"), "prflx");
        assert_eq!(kind("host", "relay"), "relay");
        assert_eq!(kind("relay", "srflx"), "relay");
    }
}
