//! Calls that outlive the server process: what the hub saves of a call in progress, and
//! how a starting hub takes the saved calls back.
//!
//! With every open record update the hub hands the record writer a [`SavedCall`] (plain
//! data, serialised to JSON on the writer's thread, outside the hub's lock), and the
//! store keeps it beside the call's open record. At start-up [`Hub::restore`] rebuilds
//! each answered call with every participant disconnected and in grace until start-up +
//! `participant_grace`: a device that signs in again within it finds its call in the
//! login reply (`currentCall`) and carries on, as after any reconnect. Invitations that
//! still rang are dead (nobody can answer an invitation the server forgot it sent): they
//! are cancelled, never rung again. The JSON is engine-neutral, so the same state can
//! later live in Redis for cluster mode.

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use tincan_protocol::{
    DeviceId, EndReason, GroupId, Invitation, InviteeOutcome, OfflinePushInfo, RoomId, UserId,
};

use super::call::{Call, Invitee, InviteeState, Participant};
use super::{Hub, Now, RecordUpdate, Timer};

/// Version of the [`SavedCall`] layout; a saved call of another version is not resumed
/// (its record is closed as `serverRestart`, like any call cut off).
pub const SAVED_CALL_VERSION: u32 = 1;

/// What a restarted server needs to resume a call in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedCall {
    /// [`SAVED_CALL_VERSION`].
    pub version: u32,
    /// The room.
    pub room: RoomId,
    /// The invitation as the server completed it (media kind, group, invitees).
    pub invitation: Invitation,
    /// Push info sent with every event of the call.
    pub offline_push: Option<OfflinePushInfo>,
    /// The group of a group call.
    pub group: Option<GroupId>,
    /// The group's name as read when the call was placed.
    pub group_name: String,
    /// Who placed the call.
    pub inviter: UserId,
    /// Wall clock, Unix ms.
    pub initiate_time: i64,
    /// Wall clock, Unix ms, of the first answer.
    pub answer_time: Option<i64>,
    /// Whether two participants were ever connected.
    pub was_connected: bool,
    /// The participants and the device each is in the call on: the room token's inputs
    /// are the room and the user, so a resumed participant gets a fresh token signed with
    /// the same key.
    pub participants: Vec<SavedParticipant>,
    /// The invitees and where each stands (`None`: still ringing).
    pub invitees: Vec<SavedInvitee>,
    /// Everyone who joined at some point.
    pub joined: Vec<UserId>,
}

/// A participant of a saved call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedParticipant {
    /// Who.
    pub user: UserId,
    /// On which device.
    pub device: DeviceId,
    /// That device's platform id.
    pub platform: u8,
}

/// An invitee of a saved call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedInvitee {
    /// Who.
    pub user: UserId,
    /// How they answered; `None` while it still rang.
    pub outcome: Option<InviteeOutcome>,
    /// The participant who rang them.
    pub invited_by: UserId,
    /// From which device.
    pub invited_by_device: DeviceId,
    /// Wall clock, Unix ms.
    pub answer_time: Option<i64>,
}

impl Call {
    /// What a restarted server needs to resume this call.
    pub(super) fn saved(&self) -> SavedCall {
        SavedCall {
            version: SAVED_CALL_VERSION,
            room: self.room.clone(),
            invitation: self.invitation.clone(),
            offline_push: self.offline_push.clone(),
            group: self.group.clone(),
            group_name: self.group_name.clone(),
            inviter: self.inviter.clone(),
            initiate_time: self.initiate_time,
            answer_time: self.answer_time,
            was_connected: self.was_connected,
            participants: self
                .participants
                .iter()
                .map(|p| SavedParticipant {
                    user: p.user.clone(),
                    device: p.device.clone(),
                    platform: p.platform,
                })
                .collect(),
            invitees: self
                .invitees
                .iter()
                .map(|i| SavedInvitee {
                    user: i.user.clone(),
                    outcome: match i.state {
                        InviteeState::Done(o) => Some(o),
                        InviteeState::New | InviteeState::Ringing { .. } => None,
                    },
                    invited_by: i.invited_by.clone(),
                    invited_by_device: i.invited_by_device.clone(),
                    answer_time: i.answer_time,
                })
                .collect(),
            joined: self.joined.clone(),
        }
    }
}

/// Why a saved call was not resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotResumed {
    /// Saved by a build with another layout.
    Version,
    /// Nobody had answered it: its invitation is dead.
    Unanswered,
    /// Fewer than two participants, or one already in another resumed call.
    Participants,
    /// Another resumed call holds the room id.
    RoomTaken,
}

impl Hub {
    /// Takes back a call saved by the previous run (see the module docs), with every
    /// participant in grace until `now + participant_grace`. Returns the hub's record
    /// number for it, which the record writer must map to the call's stored row before
    /// the hub's next record update for it (`Records::adopt`), or why it was not resumed
    /// (its record stays as start-up closed it: `serverRestart`).
    pub fn restore(&mut self, now: Now, saved: SavedCall) -> Result<u64, NotResumed> {
        self.wall_ms = now.wall_ms;
        if saved.version != SAVED_CALL_VERSION {
            return Err(NotResumed::Version);
        }
        if !saved.was_connected {
            return Err(NotResumed::Unanswered);
        }
        let busy = |u: &UserId| self.users.get(u).is_some_and(|p| p.room.is_some());
        if saved.participants.len() < 2 || saved.participants.iter().any(|p| busy(&p.user)) {
            return Err(NotResumed::Participants);
        }
        if self.calls.contains_key(&saved.room) {
            return Err(NotResumed::RoomTaken);
        }
        let room = saved.room.clone();
        let deadline = now.mono + self.cfg.participant_grace;
        let call = Call {
            room: room.clone(),
            invitation: saved.invitation,
            offline_push: saved.offline_push,
            group: saved.group.clone(),
            group_name: saved.group_name,
            inviter: saved.inviter,
            initiate_time: saved.initiate_time,
            answer_time: saved.answer_time,
            was_connected: true,
            restored: true,
            participants: saved
                .participants
                .iter()
                .map(|p| Participant {
                    user: p.user.clone(),
                    device: p.device.clone(),
                    platform: p.platform,
                    conn: None,
                    grace_deadline: Some(deadline),
                })
                .collect(),
            // An invitation that still rang died with the old process: nobody is rung
            // for it again, and the record says cancelled.
            invitees: saved
                .invitees
                .into_iter()
                .map(|i| Invitee {
                    user: i.user,
                    state: InviteeState::Done(i.outcome.unwrap_or(InviteeOutcome::Cancelled)),
                    invited_by: i.invited_by,
                    invited_by_device: i.invited_by_device,
                    answer_time: i.answer_time,
                })
                .collect(),
            joined: saved.joined,
        };
        for p in &call.participants {
            self.users.entry(p.user.clone()).or_default().room = Some(room.clone());
            self.arm(
                deadline,
                Timer::Grace {
                    room: room.clone(),
                    user: p.user.clone(),
                },
            );
        }
        if let Some(g) = saved.group {
            self.group_calls.insert(g, room.clone());
        }
        info!(room = %room, participants = call.participants.len(), grace_ms = self.cfg.participant_grace.as_millis() as u64,
            "call resumed after a restart; waiting for its participants to sign in again");
        let users: Vec<UserId> = call.participants.iter().map(|p| p.user.clone()).collect();
        self.calls.insert(room.clone(), call);
        for u in &users {
            self.sync_presence(u, "call resumed after a restart");
        }
        let number = self.next_record_number();
        self.record_numbers.insert(room.clone(), number);
        self.record_changed(&room);
        self.flush_records(now);
        Ok(number)
    }

    /// The end reason when the grace of `room`'s last participants runs out: a call
    /// resumed after a restart that nobody came back to ended because of the restart.
    pub(super) fn grace_end_reason(&self, room: &RoomId) -> EndReason {
        match self.calls.get(room) {
            Some(c) if c.restored && c.participants.iter().all(|p| p.conn.is_none()) => {
                EndReason::ServerRestart
            }
            _ => EndReason::Disconnected,
        }
    }

    /// A clean stop (SIGTERM) before a restart: invitations still ringing are cancelled
    /// (their invitees told), calls nobody answered end with `serverShutdown`, and answered
    /// calls are kept — their saved state written once more — so the next start resumes
    /// them while media goes on peer to peer.
    pub(super) fn handle_shutdown(&mut self, now: Now) {
        let mut rooms: Vec<RoomId> = self.calls.keys().cloned().collect();
        rooms.sort();
        for room in rooms {
            if !self.calls[&room].was_connected {
                self.end_call(now, &room, EndReason::ServerShutdown);
                continue;
            }
            let ringing: Vec<(UserId, UserId)> = self.calls[&room]
                .ringing()
                .map(|i| (i.user.clone(), i.invited_by.clone()))
                .collect();
            for (u, by) in ringing {
                let info = self.info_as(&self.calls[&room], &by, None);
                self.set_invitee(
                    &room,
                    &u,
                    InviteeState::Done(InviteeOutcome::Cancelled),
                    "the server is restarting",
                );
                let to = self.user_conns(&u);
                self.send(to, tincan_protocol::Event::InvitationCancelled(info));
            }
            self.record_changed(&room);
        }
        if !self.calls.is_empty() {
            warn!(
                calls = self.calls.len(),
                "calls in progress are kept for the next start (media goes on peer to peer)"
            );
        }
    }
}

/// The update to write for a call's record: with the saved state while it is open.
pub(super) fn open_update(call: u64, c: &Call, now: Now) -> RecordUpdate {
    RecordUpdate {
        call,
        record: c.record(now.wall_ms, EndReason::ServerRestart),
        open: true,
        saved: Some(Box::new(c.saved())),
    }
}
