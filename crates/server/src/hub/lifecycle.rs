//! Timers and the choke points every state change goes through: `ring`, `join`,
//! `leave`, `maybe_end`, `end_call`.

use tracing::info;

use tincan_protocol::{EndReason, Event, InviteeOutcome, RoomId, RoomParticipantInfo, UserId};

use super::call::{Invitee, InviteeState, Link, Participant};
use super::{ConnId, ConnInfo, Hub, Now, Timer};

/// How many ended rooms are remembered, so a late answer hears "ended", not "unknown".
/// At start-up the hub is given the rooms of the calls that ended last (those cut by a
/// crash included), so this holds across restarts too.
pub const ENDED_MEMORY: usize = 4096;

/// A call's record as it stands, for the record writer (`records.rs`). The hub makes one
/// when the call starts ringing and after every change to who rings or who is in it
/// (`open`: still going), and a last one when it ends; the writer keeps one row per
/// `call` and overwrites it. So a crash loses no call: at the next start-up the open
/// rows are closed with the end reason `serverRestart`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordUpdate {
    /// The hub's number for the call (room ids may repeat), unique for the hub's life.
    pub call: u64,
    /// The record; while `open`, its end is the time of the update and its end reason
    /// `serverRestart`, what it will say if the server never gets to end the call.
    pub record: tincan_protocol::CallRecord,
    /// Whether the call is still going.
    pub open: bool,
    /// While `open`, what a restarted server needs to resume the call (`saved.rs`),
    /// serialised by the writer, outside the hub's lock.
    pub saved: Option<Box<super::SavedCall>>,
}

impl Hub {
    // ---- timers ------------------------------------------------------------------------

    pub(super) fn ring_expired(&mut self, now: Now, room: RoomId, user: UserId) {
        let Some(call) = self.calls.get(&room) else {
            return;
        };
        let Some(inv) = call.invitee(&user) else {
            return;
        };
        match inv.state {
            InviteeState::Ringing { deadline } if deadline <= now.mono => {}
            _ => return,
        }
        let _span = tracing::info_span!("timeout", room = %room, invitee = %user).entered();
        let mut to: Vec<ConnId> = self
            .device_conn(&inv.invited_by, &inv.invited_by_device)
            .into_iter()
            .collect();
        to.extend(self.user_conns(&user));
        let info = self.info_as(call, &user, Some(0));
        self.set_invitee(
            &room,
            &user,
            InviteeState::Done(InviteeOutcome::TimedOut),
            "no answer in time",
        );
        self.send(to, Event::InvitationTimeout(info));
        self.maybe_end(now, &room, EndReason::Timeout);
    }

    pub(super) fn grace_expired(&mut self, now: Now, room: RoomId, user: UserId) {
        let Some(p) = self.calls.get(&room).and_then(|c| c.participant(&user)) else {
            return;
        };
        if p.conn.is_some() || p.grace_deadline.is_none_or(|d| d > now.mono) {
            return;
        }
        let _span = tracing::info_span!("grace", room = %room, user = %user).entered();
        let reason = self.grace_end_reason(&room);
        self.leave(&room, &user, "did not reconnect in time");
        self.maybe_end(now, &room, reason);
    }

    // ---- choke points ------------------------------------------------------------------

    pub(super) fn add_invitee(&mut self, room: &RoomId, user: &UserId, by: &ConnInfo) {
        let call = self.calls.get_mut(room).expect("adding to a live call");
        if call.invitee(user).is_none() {
            call.invitees.push(Invitee {
                user: user.clone(),
                state: InviteeState::New,
                invited_by: by.user.clone(),
                invited_by_device: by.device.clone(),
                answer_time: None,
            });
        } else {
            let inv = call.invitee_mut(user).expect("checked");
            inv.invited_by = by.user.clone();
            inv.invited_by_device = by.device.clone();
        }
    }

    /// Rings `user` on every device until `deadline`.
    pub(super) fn ring(
        &mut self,
        room: &RoomId,
        user: &UserId,
        by: &ConnInfo,
        deadline: tokio::time::Instant,
    ) {
        self.add_invitee(room, user, by);
        self.set_invitee(room, user, InviteeState::Ringing { deadline }, "invited");
        self.arm(
            deadline,
            Timer::Ring {
                room: room.clone(),
                user: user.clone(),
            },
        );
        let info = self.info_as(&self.calls[room], &by.user, Some(by.platform));
        let to = self.user_conns(user);
        self.send(to, Event::ReceiveNewInvitation(info));
    }

    /// Makes `me` a participant of `room` on this device.
    pub(super) fn join(
        &mut self,
        now: Now,
        room: &RoomId,
        me: &ConnInfo,
        conn: ConnId,
        reason: &str,
    ) {
        let call = self.calls.get_mut(room).expect("joining a live call");
        call.participants.push(Participant {
            user: me.user.clone(),
            device: me.device.clone(),
            platform: me.platform,
            conn: Some(conn),
            grace_deadline: None,
        });
        if call.participants.len() >= 2 {
            call.was_connected = true;
        }
        if !call.joined.contains(&me.user) {
            call.joined.push(me.user.clone());
        }
        // "call placed" and "call ended" are the operator's lines; joins and leaves are
        // for following one call.
        tracing::debug!(room = %room, user = %me.user, participants = call.participants.len(), reason, "joined");
        self.record_changed(room);
        self.users.entry(me.user.clone()).or_default().room = Some(room.clone());
        self.sync_presence(&me.user, reason);
        let _ = now;
        self.notify_room_change(room, &me.user, true);
    }

    /// Removes `user` from `room` and tells the others.
    pub(super) fn leave(&mut self, room: &RoomId, user: &UserId, reason: &str) {
        let call = self.calls.get_mut(room).expect("leaving a live call");
        let i = call
            .participants
            .iter()
            .position(|p| &p.user == user)
            .expect("leaving as a participant");
        let left = call.participants.remove(i);
        tracing::debug!(room = %room, user = %user, participants = call.participants.len(), reason, "left");
        self.record_changed(room);
        if let Some(p) = self.users.get_mut(user) {
            p.room = None;
        }
        self.forget_if_idle(user);
        self.sync_presence(user, reason);
        let call = &self.calls[room];
        let info = self.info_as(call, user, Some(left.platform));
        let to = call.other_participant_conns(user);
        self.send(to, Event::HangUp(info));
        self.notify_room_change(room, user, false);
    }

    pub(super) fn notify_room_change(&mut self, room: &RoomId, user: &UserId, connected: bool) {
        let call = &self.calls[room];
        if !call.is_group() {
            return;
        }
        let to = call.other_participant_conns(user);
        if to.is_empty() {
            return;
        }
        let info = RoomParticipantInfo {
            invitation: call.invitation.clone(),
            group_id: call.invitation.group_id.clone(),
            participant: self.participant_list(call),
            op_user_id: user.clone(),
            user_id: user.clone(),
            event_time: self.wall_ms,
        };
        let event = if connected {
            Event::RoomParticipantConnected(info)
        } else {
            Event::RoomParticipantDisconnected(info)
        };
        self.send(to, event);
    }

    /// Ends the call if its rules say so: once two people were connected, when fewer
    /// than two remain; before that, when the caller is gone or nobody rings any more.
    pub(super) fn maybe_end(&mut self, now: Now, room: &RoomId, reason: EndReason) {
        let call = &self.calls[room];
        let n = call.participants.len();
        let over = if call.was_connected {
            n < 2
        } else {
            n == 0 || call.ringing().next().is_none()
        };
        if over {
            self.end_call(now, room, reason);
        }
    }

    /// Ends a call: stops every device still ringing, frees the participants, keeps
    /// the record.
    pub(super) fn end_call(&mut self, now: Now, room: &RoomId, mut reason: EndReason) {
        let call = &self.calls[room];
        if reason == EndReason::HungUp && !call.was_connected {
            reason = EndReason::Cancelled;
        }
        let ringing: Vec<(UserId, UserId)> = call
            .ringing()
            .map(|i| (i.user.clone(), i.invited_by.clone()))
            .collect();
        for (u, by) in ringing {
            let info = self.info_as(&self.calls[room], &by, None);
            self.set_invitee(
                room,
                &u,
                InviteeState::Done(InviteeOutcome::Cancelled),
                "the call ended",
            );
            let to = self.user_conns(&u);
            self.send(to, Event::InvitationCancelled(info));
        }
        let call = self.calls.remove(room).expect("ending a live call");
        for p in &call.participants {
            if let Some(presence) = self.users.get_mut(&p.user) {
                presence.room = None;
            }
            self.forget_if_idle(&p.user);
            self.sync_presence(&p.user, "the call ended");
        }
        if let Some(g) = &call.group {
            self.group_calls.remove(g);
        }
        self.remember_ended([(room.clone(), reason)]);
        info!(room = %room, ?reason, "call ended");
        let number = match self.record_numbers.remove(room) {
            Some(n) => n,
            None => self.next_record_number(),
        };
        self.records.push(RecordUpdate {
            call: number,
            record: call.record(now.wall_ms, reason),
            open: false,
            saved: None,
        });
    }

    // ---- records -----------------------------------------------------------------------

    /// Remembers rooms whose calls ended (oldest first), so that late actions on them
    /// hear "ended" (`NotRinging`) rather than "unknown" (`NotFound`).
    pub fn remember_ended(&mut self, rooms: impl IntoIterator<Item = (RoomId, EndReason)>) {
        for (room, reason) in rooms {
            if self.ended.insert(room.clone(), reason).is_none() {
                self.ended_order.push_back(room);
            }
            if self.ended_order.len() > ENDED_MEMORY {
                let old = self.ended_order.pop_front().expect("non-empty");
                self.ended.remove(&old);
            }
        }
    }

    /// The choke point for a participant's link to their device (connected, or in grace
    /// until a deadline), logged `old -> new (reason)` like the others.
    pub(super) fn set_link(&mut self, room: &RoomId, user: &UserId, link: Link, reason: &str) {
        let p = self
            .calls
            .get_mut(room)
            .and_then(|c| c.participant_mut(user))
            .expect("a link is set for a participant of a live call");
        let old = p.link();
        p.set_link(link);
        tracing::debug!(room = %room, participant = %user, ?old, new = ?link, reason, "participant link");
    }

    pub(super) fn next_record_number(&mut self) -> u64 {
        self.record_count += 1;
        self.record_count
    }

    /// Notes that the record of the call in `room` changed; [`Hub::flush_records`] writes
    /// it once the input is handled, however many changes the input made.
    pub(super) fn record_changed(&mut self, room: &RoomId) {
        if !self.records_changed.contains(room) {
            self.records_changed.push(room.clone());
        }
    }

    /// Queues the record of every call still going that changed during this input.
    pub(super) fn flush_records(&mut self, now: Now) {
        for room in std::mem::take(&mut self.records_changed) {
            if !self.calls.contains_key(&room) {
                continue; // ended: its last record is queued already
            }
            let number = match self.record_numbers.get(&room) {
                Some(n) => *n,
                None => {
                    let n = self.next_record_number();
                    self.record_numbers.insert(room.clone(), n);
                    n
                }
            };
            let update = super::saved::open_update(number, &self.calls[&room], now);
            self.records.push(update);
        }
    }

    /// Takes the record updates queued so far, oldest first.
    pub fn take_records(&mut self) -> Vec<RecordUpdate> {
        std::mem::take(&mut self.records)
    }
}

pub(super) fn reason_words(r: EndReason) -> &'static str {
    match r {
        EndReason::HungUp => "hung up",
        EndReason::Cancelled => "cancelled",
        EndReason::Rejected => "declined",
        EndReason::Timeout => "not answered in time",
        EndReason::Busy => "busy",
        EndReason::Disconnected => "a participant lost their connection",
        EndReason::ServerShutdown => "the server shut down",
        EndReason::ServerRestart => "the server stopped and started again",
    }
}
