//! Test-only views of the hub's private state for the property test: its invariants,
//! a digest to compare states, and what rings for whom.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use tincan_protocol::{RoomId, UserId};

use crate::hub::call::InviteeState;
use crate::hub::{Hub, Timer};

impl Hub {
    /// Checks the hub's own bookkeeping; `Err` says which rule broke.
    pub(crate) fn check_invariants(&self) -> Result<(), String> {
        self.check_presence()?;
        // Connections and devices agree both ways.
        for (conn, info) in &self.conns {
            let p = self
                .users
                .get(&info.user)
                .ok_or(format!("conn {conn} of {} has no presence", info.user))?;
            if !p.devices.contains(&(info.device.clone(), *conn)) {
                return Err(format!("conn {conn} missing from {}'s devices", info.user));
            }
        }
        let mut participant_of: HashMap<&UserId, &RoomId> = HashMap::new();
        for (room, call) in &self.calls {
            if &call.room != room {
                return Err(format!("call {} filed under {room}", call.room));
            }
            if call.participants.is_empty() {
                return Err(format!("live call {room} has no participant"));
            }
            if call.was_connected && call.participants.len() < 2 {
                return Err(format!("connected call {room} has one participant left"));
            }
            if !call.was_connected && call.ringing().next().is_none() {
                return Err(format!("unanswered call {room} rings nobody"));
            }
            for p in &call.participants {
                if let Some(other) = participant_of.insert(&p.user, room) {
                    return Err(format!("{} is in two calls: {other} and {room}", p.user));
                }
                let presence_room = self.users.get(&p.user).and_then(|u| u.room.as_ref());
                if presence_room != Some(room) {
                    return Err(format!(
                        "{} is a participant of {room} but busy in {presence_room:?}",
                        p.user
                    ));
                }
                if call.invitee(&p.user).is_some_and(|i| i.is_ringing()) {
                    return Err(format!("{} rings for {room}, which they are in", p.user));
                }
                match (p.conn, p.grace_deadline) {
                    (Some(c), None) => {
                        let info = self
                            .conns
                            .get(&c)
                            .ok_or(format!("{} in {room} on closed conn {c}", p.user))?;
                        if info.user != p.user || info.device != p.device {
                            return Err(format!("{room}: conn {c} is not {}'s device", p.user));
                        }
                    }
                    (None, Some(d)) => {
                        let t = Timer::Grace {
                            room: room.clone(),
                            user: p.user.clone(),
                        };
                        if !self.timers.contains(&(d, t)) {
                            return Err(format!("{}'s grace in {room} has no timer", p.user));
                        }
                    }
                    other => return Err(format!("{} in {room}: conn/grace {other:?}", p.user)),
                }
            }
            for inv in &call.invitees {
                let listed = self
                    .users
                    .get(&inv.user)
                    .is_some_and(|u| u.ringing.contains(room));
                if let InviteeState::Ringing { deadline } = inv.state {
                    if !listed {
                        return Err(format!("{} Ringing in {room} but not listed", inv.user));
                    }
                    let t = Timer::Ring {
                        room: room.clone(),
                        user: inv.user.clone(),
                    };
                    if !self.timers.contains(&(deadline, t)) {
                        return Err(format!("{}'s ring in {room} has no timer", inv.user));
                    }
                } else if listed {
                    return Err(format!(
                        "{} rings for {room} but is {:?} there",
                        inv.user, inv.state
                    ));
                }
            }
            if let Some(g) = &call.group {
                if self.group_calls.get(g) != Some(room) {
                    return Err(format!("group call {room} not filed under {g}"));
                }
            }
        }
        for (user, p) in &self.users {
            if p.is_idle() {
                return Err(format!("idle presence of {user} kept"));
            }
            for room in &p.ringing {
                let ringing = self
                    .calls
                    .get(room)
                    .and_then(|c| c.invitee(user))
                    .is_some_and(|i| i.is_ringing());
                if !ringing {
                    return Err(format!("{user} rings for dead invitation {room}"));
                }
            }
            if let Some(room) = &p.room {
                if participant_of.get(user) != Some(&room) {
                    return Err(format!("{user} busy in {room} but not a participant"));
                }
            }
            for (_, c) in &p.devices {
                if self.conns.get(c).map(|i| &i.user) != Some(user) {
                    return Err(format!("{user}'s device on unknown conn {c}"));
                }
            }
        }
        for (g, room) in &self.group_calls {
            if self.calls.get(room).and_then(|c| c.group.as_ref()) != Some(g) {
                return Err(format!("group {g} points at {room}, not its call"));
            }
        }
        Ok(())
    }

    /// Every piece of call state, as text: equal digests, same state.
    pub(super) fn digest(&self) -> String {
        let mut s = String::new();
        let conns: BTreeMap<_, _> = self.conns.iter().collect();
        for (c, i) in conns {
            let _ = writeln!(s, "conn {c} {} {} {}", i.user, i.device, i.platform);
        }
        let users: BTreeMap<_, _> = self.users.iter().collect();
        for (u, p) in users {
            let _ = writeln!(s, "user {u} {:?} {:?} {:?}", p.devices, p.room, p.ringing);
        }
        let calls: BTreeMap<_, _> = self.calls.iter().collect();
        for (r, c) in calls {
            let _ = writeln!(s, "call {r} connected={}", c.was_connected);
            for p in &c.participants {
                let _ = writeln!(
                    s,
                    "  p {} {} {:?} {:?}",
                    p.user, p.device, p.conn, p.grace_deadline
                );
            }
            for i in &c.invitees {
                let _ = writeln!(
                    s,
                    "  i {} {:?} by {}/{}",
                    i.user, i.state, i.invited_by, i.invited_by_device
                );
            }
        }
        let _ = writeln!(
            s,
            "groups {:?}",
            self.group_calls.iter().collect::<BTreeMap<_, _>>()
        );
        s
    }

    pub(super) fn is_ringing_for(&self, user: &str, room: &str) -> bool {
        self.calls
            .iter()
            .find(|(r, _)| r.as_str() == room)
            .and_then(|(_, c)| c.invitees.iter().find(|i| i.user.as_str() == user))
            .is_some_and(|i| i.is_ringing())
    }

    pub(super) fn ringing_rooms(&self, user: &str) -> BTreeSet<String> {
        self.users
            .iter()
            .find(|(u, _)| u.as_str() == user)
            .map(|(_, p)| p.ringing.iter().map(|r| r.as_str().to_owned()).collect())
            .unwrap_or_default()
    }
}
