//! Who coordinates calls: the node's role, decided from what it last saw of the lease in
//! Redis. Pure: the driver (`cluster/mod.rs`) reads Redis and the clock and carries out
//! the [`Change`]s this returns.
//!
//! One node at a time holds the lease and runs the hub for every room; the others carry
//! their connections' frames to it and back (docs/deploy.md). The rules here are what
//! keeps that "one at a time" true when nodes die or Redis restarts:
//! - The leader renews every tick. When it cannot for [`Timing::step_down_after`] (less
//!   than the lease's lifetime, so it stops before anyone else may start), or finds
//!   another node holding the lease, it steps down.
//! - A follower that sees nobody holding the lease waits one more tick before taking it:
//!   after Redis restarts empty, the live leader puts its lease back on its next tick and
//!   keeps its calls, instead of a follower taking over and every call resuming.
//! - A follower that cannot read the lease for longer than a lease's lifetime treats the
//!   cluster as leaderless: whatever it knew may have changed.

use std::time::Duration;

use tokio::time::Instant;

/// A node's number in the cluster, given by Redis at start (`INCR`), never reused.
pub type NodeNo = u64;

/// How often the driver looks, and how long a lease lives.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Between looks at the lease (and renewals of this node's liveness key).
    pub tick: Duration,
    /// A lease (and a liveness key) expires this long after its last renewal.
    pub lease: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            tick: Duration::from_secs(1),
            lease: Duration::from_secs(5),
        }
    }
}

impl Timing {
    /// A leader that has not renewed for this long stops acting: a tick before its lease
    /// may have expired in Redis.
    pub fn step_down_after(&self) -> Duration {
        self.lease.saturating_sub(self.tick)
    }
}

/// What one look at the lease found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// This node holds it (renewed, or just taken).
    Mine,
    /// Another node holds it.
    Theirs(NodeNo),
    /// Nobody holds it.
    Nobody,
    /// Redis did not answer.
    Unreachable,
}

/// The node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// This node runs the hub.
    Leading,
    /// Node `n` runs the hub; this one carries frames to it.
    Following(NodeNo),
    /// No known leader: requests are refused until one is.
    Leaderless,
}

/// What the driver must do after a look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Take over: restore the calls from the store and run the hub.
    Lead,
    /// Follow node `n` (after leading or following someone else).
    Follow(NodeNo),
    /// Stop: no leader is known.
    Lose,
}

/// Whether the driver should try to take the lease on this look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Renew ours (we lead) or take it if free.
    Take,
    /// Only read who holds it.
    Read,
}

/// The role state machine. See the module docs.
#[derive(Debug)]
pub struct Roles {
    timing: Timing,
    role: Role,
    /// When the lease was last seen in a state we could act on (renewed by us, or held
    /// by a known node).
    last_sure: Instant,
    /// Looks in a row that found nobody holding the lease.
    vacant: u32,
}

impl Roles {
    /// A node that has not looked yet: leaderless.
    pub fn new(timing: Timing, now: Instant) -> Roles {
        Roles {
            timing,
            role: Role::Leaderless,
            last_sure: now,
            vacant: 0,
        }
    }

    /// The role now.
    pub fn role(&self) -> Role {
        self.role
    }

    /// What the next look should do: a leader renews; a follower takes a lease found
    /// vacant on the previous look (so a live leader gets one tick to put its lease back
    /// after Redis lost it); a leaderless node takes a free lease at once.
    pub fn attempt(&self) -> Attempt {
        match self.role {
            Role::Leading | Role::Leaderless => Attempt::Take,
            Role::Following(_) if self.vacant >= 1 => Attempt::Take,
            Role::Following(_) => Attempt::Read,
        }
    }

    /// This node could not take up the lead it was given (its calls could not be
    /// restored): leaderless until a later look, and its lease left to lapse.
    pub fn resign(&mut self, now: Instant) {
        self.role = Role::Leaderless;
        self.last_sure = now;
        self.vacant = 0;
    }

    /// Takes one look's result; returns the change to carry out, if any.
    pub fn observe(&mut self, seen: Seen, now: Instant) -> Option<Change> {
        self.vacant = if seen == Seen::Nobody {
            self.vacant + 1
        } else {
            0
        };
        let next = match (self.role, seen) {
            (_, Seen::Mine) => Role::Leading,
            (_, Seen::Theirs(n)) => Role::Following(n),
            (Role::Leading, Seen::Nobody | Seen::Unreachable) => {
                // A leader that reads "nobody" could not put its lease back: the same as
                // failing to renew.
                if now.duration_since(self.last_sure) >= self.timing.step_down_after() {
                    Role::Leaderless
                } else {
                    Role::Leading
                }
            }
            (Role::Following(n), Seen::Nobody | Seen::Unreachable) => {
                if now.duration_since(self.last_sure) >= self.timing.lease {
                    Role::Leaderless
                } else {
                    Role::Following(n)
                }
            }
            (Role::Leaderless, _) => Role::Leaderless,
        };
        if matches!(seen, Seen::Mine | Seen::Theirs(_)) {
            self.last_sure = now;
        }
        if next == self.role {
            return None;
        }
        self.role = next;
        Some(match next {
            Role::Leading => Change::Lead,
            Role::Following(n) => Change::Follow(n),
            Role::Leaderless => Change::Lose,
        })
    }
}

/// Which nodes the leader should count as gone: a node whose liveness key has been
/// missing on every look for at least a lease's lifetime. The key lapses a lease after the
/// node's last renewal, so a dead node is counted gone about two leases after it died.
/// A single miss proves nothing: Redis restarted empty loses every key until each node's
/// next renewal, and a node cut off from Redis for a lease closes its own connections
/// first (it finds itself leaderless: [`Roles::observe`]), so a node counted gone has no
/// client left that still thinks it is connected.
#[derive(Debug, Default)]
pub struct Deaths {
    /// Since when each node's key has been missing.
    missing: std::collections::HashMap<NodeNo, Instant>,
}

impl Deaths {
    /// Takes one look at the nodes the leader has connections on; returns the nodes now
    /// counted as gone, each with how long ago it was last alive (at the latest).
    pub fn observe(
        &mut self,
        alive: &[(NodeNo, bool)],
        now: Instant,
        lease: Duration,
    ) -> Vec<(NodeNo, Duration)> {
        let mut gone = Vec::new();
        let mut missing = std::collections::HashMap::new();
        for &(node, is_alive) in alive {
            if is_alive {
                continue;
            }
            let since = self.missing.get(&node).copied().unwrap_or(now);
            let for_how_long = now.duration_since(since);
            if for_how_long >= lease {
                gone.push((node, for_how_long + lease));
            } else {
                missing.insert(node, since);
            }
        }
        self.missing = missing;
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> Timing {
        Timing {
            tick: Duration::from_secs(1),
            lease: Duration::from_secs(5),
        }
    }

    fn at(start: Instant, secs: u64) -> Instant {
        start + Duration::from_secs(secs)
    }

    #[test]
    fn a_new_node_takes_a_free_lease_at_once_and_leads() {
        let t0 = Instant::now();
        let mut r = Roles::new(timing(), t0);
        assert_eq!(r.attempt(), Attempt::Take);
        assert_eq!(r.observe(Seen::Mine, t0), Some(Change::Lead));
        assert_eq!(r.observe(Seen::Mine, at(t0, 1)), None);
        assert_eq!(r.role(), Role::Leading);
    }

    #[test]
    fn a_node_that_finds_another_leader_follows_it_and_follows_the_next_one() {
        let t0 = Instant::now();
        let mut r = Roles::new(timing(), t0);
        assert_eq!(r.observe(Seen::Theirs(3), t0), Some(Change::Follow(3)));
        assert_eq!(r.attempt(), Attempt::Read);
        assert_eq!(r.observe(Seen::Theirs(3), at(t0, 1)), None);
        assert_eq!(
            r.observe(Seen::Theirs(4), at(t0, 2)),
            Some(Change::Follow(4))
        );
    }

    #[test]
    fn a_follower_waits_one_look_before_taking_a_vacant_lease() {
        let t0 = Instant::now();
        let mut r = Roles::new(timing(), t0);
        r.observe(Seen::Theirs(3), t0);
        assert_eq!(r.observe(Seen::Nobody, at(t0, 1)), None);
        assert_eq!(r.attempt(), Attempt::Take, "vacant twice: take it");
        assert_eq!(r.observe(Seen::Mine, at(t0, 2)), Some(Change::Lead));
    }

    #[test]
    fn the_leader_back_on_its_lease_after_redis_lost_it_is_still_followed() {
        let t0 = Instant::now();
        let mut r = Roles::new(timing(), t0);
        r.observe(Seen::Theirs(3), t0);
        assert_eq!(r.observe(Seen::Unreachable, at(t0, 1)), None);
        assert_eq!(r.observe(Seen::Nobody, at(t0, 2)), None);
        assert_eq!(r.observe(Seen::Theirs(3), at(t0, 3)), None);
        assert_eq!(r.attempt(), Attempt::Read);
    }

    #[test]
    fn a_leader_that_cannot_renew_steps_down_before_its_lease_can_expire() {
        let t0 = Instant::now();
        let mut r = Roles::new(timing(), t0);
        r.observe(Seen::Mine, t0);
        for s in 1..4 {
            assert_eq!(r.observe(Seen::Unreachable, at(t0, s)), None, "at {s} s");
        }
        assert_eq!(r.observe(Seen::Unreachable, at(t0, 4)), Some(Change::Lose));
        assert!(timing().step_down_after() < timing().lease);
    }

    #[test]
    fn a_leader_that_finds_another_holding_the_lease_follows_it_at_once() {
        let t0 = Instant::now();
        let mut r = Roles::new(timing(), t0);
        r.observe(Seen::Mine, t0);
        assert_eq!(
            r.observe(Seen::Theirs(9), at(t0, 1)),
            Some(Change::Follow(9))
        );
    }

    #[test]
    fn a_follower_cut_off_from_redis_for_a_lease_is_leaderless_then_follows_again() {
        let t0 = Instant::now();
        let mut r = Roles::new(timing(), t0);
        r.observe(Seen::Theirs(3), t0);
        for s in 1..5 {
            assert_eq!(r.observe(Seen::Unreachable, at(t0, s)), None);
        }
        assert_eq!(r.observe(Seen::Unreachable, at(t0, 5)), Some(Change::Lose));
        assert_eq!(r.attempt(), Attempt::Take);
        assert_eq!(
            r.observe(Seen::Theirs(3), at(t0, 6)),
            Some(Change::Follow(3))
        );
    }

    #[test]
    fn a_node_is_gone_once_its_key_stayed_missing_for_a_lease() {
        let t0 = Instant::now();
        let lease = timing().lease;
        let mut d = Deaths::default();
        assert!(d.observe(&[(1, false), (2, true)], t0, lease).is_empty());
        assert!(d
            .observe(&[(1, false), (2, false)], at(t0, 4), lease)
            .is_empty());
        assert_eq!(
            d.observe(&[(1, false), (2, false)], at(t0, 5), lease),
            vec![(1, Duration::from_secs(10))],
            "1 missing for a lease; 2 only for a second"
        );
        // 2's key came back (Redis restarted and 2 renewed): it starts over.
        assert!(d.observe(&[(2, true)], at(t0, 6), lease).is_empty());
        assert!(d.observe(&[(2, false)], at(t0, 7), lease).is_empty());
        assert!(d.observe(&[(2, false)], at(t0, 11), lease).is_empty());
        assert_eq!(d.observe(&[(2, false)], at(t0, 12), lease).len(), 1);
    }
}
