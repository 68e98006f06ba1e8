//! One call (room): its participants, its invitees and their states. Pure data with
//! small queries; every change goes through the hub's methods (choke points in `lifecycle.rs`).

use tokio::time::Instant;

use tincan_protocol::{
    CallRecord, DeviceId, EndReason, GroupId, Invitation, InviteeOutcome, InviteeRecord,
    OfflinePushInfo, RoomId, UserId,
};

use super::ConnId;

/// A user in the room, on one device.
#[derive(Debug, Clone)]
pub(crate) struct Participant {
    pub user: UserId,
    pub device: DeviceId,
    pub platform: u8,
    /// `None` while the device is disconnected and within its grace period.
    pub conn: Option<ConnId>,
    /// When the grace period of a disconnected device ends.
    pub grace_deadline: Option<Instant>,
}

/// A participant's link to their device: connected, or gone and waited for until a
/// deadline. Changed only through `Hub::set_link`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// On this connection.
    Connected(ConnId),
    /// Disconnected; the call waits for the device until then.
    InGrace {
        /// The grace period's end.
        until: Instant,
    },
}

impl Participant {
    /// The link now.
    pub fn link(&self) -> Option<Link> {
        match (self.conn, self.grace_deadline) {
            (Some(c), _) => Some(Link::Connected(c)),
            (None, Some(until)) => Some(Link::InGrace { until }),
            (None, None) => None,
        }
    }

    /// Sets the link (the fields behind it move together).
    pub fn set_link(&mut self, link: Link) {
        (self.conn, self.grace_deadline) = match link {
            Link::Connected(c) => (Some(c), None),
            Link::InGrace { until } => (None, Some(until)),
        };
    }
}

/// Where one invitee stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InviteeState {
    /// Listed, not rung yet (only between creating the entry and ringing or marking busy).
    New,
    Ringing {
        deadline: Instant,
    },
    Done(InviteeOutcome),
}

/// One invited user.
#[derive(Debug, Clone)]
pub(crate) struct Invitee {
    pub user: UserId,
    pub state: InviteeState,
    /// The participant who rang them and the device that did: that device receives
    /// onInviteeAccepted / Rejected / Timeout about this invitee.
    pub invited_by: UserId,
    pub invited_by_device: DeviceId,
    pub answer_time: Option<i64>,
}

impl Invitee {
    pub fn is_ringing(&self) -> bool {
        matches!(self.state, InviteeState::Ringing { .. })
    }
}

/// A call from invitation to end.
#[derive(Debug)]
pub(crate) struct Call {
    pub room: RoomId,
    /// The invitation as the server completed it; sent in every event of the call.
    pub invitation: Invitation,
    pub offline_push: Option<OfflinePushInfo>,
    pub group: Option<GroupId>,
    /// The group's display name, read once when the call is placed: every group event
    /// carries it, and it should not cost a store query each time.
    pub group_name: String,
    pub inviter: UserId,
    pub initiate_time: i64,
    pub answer_time: Option<i64>,
    /// Whether two participants were ever connected: from then on the call ends when
    /// fewer than two remain; before, it lasts while someone is still ringing.
    pub was_connected: bool,
    pub participants: Vec<Participant>,
    pub invitees: Vec<Invitee>,
    /// Everyone who joined at some point, for the record.
    pub joined: Vec<UserId>,
    /// Taken back after a server restart (`saved.rs`): if nobody comes back within the
    /// grace, it ends because of the restart.
    pub restored: bool,
}

impl Call {
    pub fn is_group(&self) -> bool {
        self.group.is_some()
    }

    pub fn participant(&self, user: &UserId) -> Option<&Participant> {
        self.participants.iter().find(|p| &p.user == user)
    }

    pub fn participant_mut(&mut self, user: &UserId) -> Option<&mut Participant> {
        self.participants.iter_mut().find(|p| &p.user == user)
    }

    pub fn invitee(&self, user: &UserId) -> Option<&Invitee> {
        self.invitees.iter().find(|i| &i.user == user)
    }

    pub fn invitee_mut(&mut self, user: &UserId) -> Option<&mut Invitee> {
        self.invitees.iter_mut().find(|i| &i.user == user)
    }

    pub fn ringing(&self) -> impl Iterator<Item = &Invitee> {
        self.invitees.iter().filter(|i| i.is_ringing())
    }

    /// Connections of every participant but `except`.
    pub fn other_participant_conns(&self, except: &UserId) -> Vec<ConnId> {
        self.participants
            .iter()
            .filter(|p| &p.user != except)
            .filter_map(|p| p.conn)
            .collect()
    }

    /// The record kept when the call ends.
    pub fn record(&self, end_time: i64, end_reason: EndReason) -> CallRecord {
        CallRecord {
            room_id: self.room.clone(),
            inviter_user_id: self.inviter.clone(),
            group_id: self.invitation.group_id.clone(),
            media_type: self.invitation.media_type,
            session_type: self.invitation.session_type,
            invitees: self
                .invitees
                .iter()
                .map(|i| InviteeRecord {
                    user_id: i.user.clone(),
                    outcome: match i.state {
                        InviteeState::New | InviteeState::Ringing { .. } => {
                            InviteeOutcome::Cancelled
                        }
                        InviteeState::Done(o) => o,
                    },
                    answer_time: i.answer_time,
                })
                .collect(),
            participant_user_id_list: self.joined.clone(),
            initiate_time: self.initiate_time,
            answer_time: self.answer_time,
            end_time,
            end_reason,
        }
    }
}
