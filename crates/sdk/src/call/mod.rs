//! This device's current call, as one state machine: the single answer to "am I ringing,
//! in a call, or was my call just ended, and why". No IO.
//!
//! Before this model, the app's Rust side, the CLI and the page each decided from the raw
//! OpenIM events whether a call was over, and they disagreed (the page kept showing the
//! incoming dialog after the call was answered through the `openIM` facade). Now the SDK
//! feeds every request this device makes, every reply to one, every server event and every
//! reconnect into [`CallModel`], and emits [`SdkEvent::CallStateChanged`] with a snapshot
//! whenever the state changes, right after the event that changed it. Everything that
//! shows a call follows the snapshot.
//!
//! Phases ([`CallPhase`]): `idle` → `connecting` (our invite or accept is on its way) →
//! `ringingOut` / `inCall`, or `idle` → `ringingIn` → `connecting` → `inCall`, and any of
//! them → `ended` with a [`CallEnd`] (who ended it and why). `ended` stays until the next
//! call starts (an invitation rings or we place a call).
//!
//! The rules, where the protocol leaves a choice:
//! - Hanging up, cancelling and declining end the call **when the request is sent**, not
//!   when the server answers: the person pressed the button, and the server ends the call
//!   anyway (at once, or after the grace period when the request never arrives).
//! - An accept that fails because the invitation was settled (answered on another device,
//!   no longer ringing) ends the call; one that fails for a passing reason (rate limit, no
//!   connection) goes back to ringing, so the person can try again.
//! - The first event or reply that settles a race wins; what arrives after it for the same
//!   call changes nothing (answered elsewhere while we accept, the caller cancels while we
//!   accept).
//! - While a call rings here, another invitation may ring too: it waits, and rings (as
//!   the current call) when the first one ends without being answered.
//! - A reconnect's login reply is the truth: no `currentCall` means a call we were in (or
//!   connecting to, or ringing out) ended while we were away.
//!
//! [`SdkEvent::CallStateChanged`]: crate::SdkEvent::CallStateChanged

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::Serialize;
use tincan_protocol::{
    AcceptReply, ErrCode, Event, Invitation, InviteReply, LoginReply, RoomParticipantInfo,
    SignalingInfo, UserId,
};

/// Where this device's current call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CallPhase {
    /// No call yet on this client.
    Idle,
    /// Our invitation rings the invitees.
    RingingOut,
    /// An invitation rings this device.
    RingingIn,
    /// Our invite or accept is on its way to the server.
    Connecting,
    /// In the call, with at least one other participant (or resuming after a reconnect).
    InCall,
    /// The call is over; [`CallState::end`] says why.
    Ended,
}

/// Who placed the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// We placed it.
    Outgoing,
    /// Someone called us.
    Incoming,
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum EndReason {
    /// We hung up.
    HungUp,
    /// The other side hung up (one-to-one), or everyone else left (group).
    RemoteHungUp,
    /// We cancelled our call before anyone answered.
    Cancelled,
    /// The caller cancelled, or the call ended while it rang here.
    RemoteCancelled,
    /// We declined.
    Declined,
    /// Every invitee declined (or, in a group call, declined or did not answer).
    RemoteDeclined,
    /// Nobody answered in time (our call).
    NoAnswer,
    /// We did not answer in time (a missed call).
    Missed,
    /// Answered on another of our devices.
    AnsweredElsewhere,
    /// Declined on another of our devices.
    DeclinedElsewhere,
    /// Every invitee was already in a call.
    Busy,
    /// The server refused our invite or accept ([`CallEnd::error`] says why).
    Refused,
    /// The call ended while this device was not connected.
    ConnectionLost,
    /// Another connection signed in with this device's id.
    SignedInElsewhere,
    /// The client was closed.
    ClientClosed,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallEnd {
    /// Why.
    pub reason: EndReason,
    /// Who did it, when someone did (the one who hung up, declined, answered elsewhere:
    /// ourselves for our own devices).
    #[serde(rename = "byUserID", skip_serializing_if = "Option::is_none")]
    pub by: Option<UserId>,
    /// The server's error, for [`EndReason::Refused`] (and settled accepts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<CallError>,
}

/// A server error that ended a call attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallError {
    /// The server's `errCode`.
    pub err_code: u32,
    /// The server's `errMsg`.
    pub err_msg: String,
}

/// A snapshot of this device's current call, as [`crate::SdkEvent::CallStateChanged`]
/// carries it. Serialized (camelCase) for the page as `callStateChanged`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallState {
    /// Where the call stands.
    pub phase: CallPhase,
    /// `None` while idle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// The call's room; empty while our invite is on its way.
    #[serde(rename = "roomID")]
    pub room_id: String,
    /// The call's invitation as last seen (`None` while idle and while our invite is on
    /// its way).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invitation: Option<Invitation>,
    /// The other participants connected to the call, in the order we learnt of them (one
    /// who joins a group call learns of those already there as they come and go).
    #[serde(rename = "peerUserIDs")]
    pub peers: Vec<UserId>,
    /// For our call: invitees still ringing.
    #[serde(rename = "ringingUserIDs")]
    pub ringing: Vec<UserId>,
    /// Set in [`CallPhase::Ended`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<CallEnd>,
}

impl CallState {
    fn idle() -> CallState {
        CallState {
            phase: CallPhase::Idle,
            direction: None,
            room_id: String::new(),
            invitation: None,
            peers: Vec::new(),
            ringing: Vec::new(),
            end: None,
        }
    }

    /// Whether a call is going on (ringing, connecting or in it).
    pub fn is_active(&self) -> bool {
        !matches!(self.phase, CallPhase::Idle | CallPhase::Ended)
    }
}

/// A request of ours that the call model follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CallRequest {
    Invite,
    Accept(String),
    /// `signalingGetTokenByRoomID`: joining a (group) call by its room, or a token for
    /// the call we are in.
    Join(String),
    Reject(String),
    Cancel(String),
    HangUp(String),
}

impl CallRequest {
    /// The call request `request` is, if it is one.
    pub(crate) fn of(request: &tincan_protocol::Request) -> Option<CallRequest> {
        use tincan_protocol::Request as R;
        let room = |p: &tincan_protocol::ActionParams| p.invitation.room_id.clone();
        Some(match request {
            R::Invite(_) | R::InviteInGroup(_) => CallRequest::Invite,
            R::Accept(p) => CallRequest::Accept(room(p)),
            R::GetTokenByRoomId(p) => CallRequest::Join(p.room_id.to_string()),
            R::Reject(p) => CallRequest::Reject(room(p)),
            R::Cancel(p) => CallRequest::Cancel(room(p)),
            R::HungUp(p) => CallRequest::HangUp(room(p)),
            _ => return None,
        })
    }
}

/// See the module docs. Every method returns the snapshots to emit, oldest first (empty
/// when nothing changed).
#[derive(Debug, Clone)]
pub struct CallModel {
    me: UserId,
    state: CallState,
    /// Other invitations ringing here while the current call rings, by room.
    waiting: BTreeMap<String, SignalingInfo>,
    /// The call in `Connecting` is a join by room id that never rang here: a passing
    /// failure ends it rather than ringing.
    joining_unrung: bool,
}

impl CallModel {
    /// The model for a client signed in as `me`, resuming the call the login reply says
    /// this device is in.
    pub fn new(me: UserId, login: &LoginReply) -> CallModel {
        let mut model = CallModel {
            me,
            state: CallState::idle(),
            waiting: BTreeMap::new(),
            joining_unrung: false,
        };
        model.resync(login);
        model
    }

    /// The current snapshot.
    pub fn state(&self) -> &CallState {
        &self.state
    }

    /// A request of ours is being sent.
    pub(crate) fn on_request(&mut self, request: &CallRequest) -> Vec<CallState> {
        let before = self.state.clone();
        match request {
            CallRequest::Invite if !self.state.is_active() => {
                self.state = CallState {
                    phase: CallPhase::Connecting,
                    direction: Some(Direction::Outgoing),
                    ..CallState::idle()
                };
            }
            // Placing a call while one rings here: the server answers (busy, or the
            // call-back merges with the ringing invitation); the reply decides.
            CallRequest::Accept(room) | CallRequest::Join(room)
                if self.is(room, &[CallPhase::RingingIn]) =>
            {
                self.joining_unrung = false;
                self.state.phase = CallPhase::Connecting;
            }
            CallRequest::Join(room) if !self.state.is_active() => {
                self.joining_unrung = true;
                self.state = CallState {
                    phase: CallPhase::Connecting,
                    direction: Some(Direction::Incoming),
                    room_id: room.clone(),
                    ..CallState::idle()
                };
            }
            CallRequest::Reject(room) if self.is(room, &[CallPhase::RingingIn]) => {
                self.end(EndReason::Declined, Some(self.me.clone()), None);
            }
            CallRequest::Cancel(room)
                if self.is(room, &[CallPhase::RingingOut, CallPhase::Connecting])
                    && self.state.peers.is_empty() =>
            {
                self.end(EndReason::Cancelled, Some(self.me.clone()), None);
            }
            CallRequest::HangUp(room)
                if self.is(
                    room,
                    &[
                        CallPhase::InCall,
                        CallPhase::RingingOut,
                        CallPhase::Connecting,
                    ],
                ) =>
            {
                let reason = if self.state.phase == CallPhase::InCall {
                    EndReason::HungUp
                } else {
                    EndReason::Cancelled
                };
                self.end(reason, Some(self.me.clone()), None);
            }
            _ => {}
        }
        self.changes(before)
    }

    /// The server answered our invite.
    pub(crate) fn on_invite_reply(
        &mut self,
        sent: &Invitation,
        reply: Result<&InviteReply, (ErrCode, &str)>,
    ) -> Vec<CallState> {
        let before = self.state.clone();
        match reply {
            Ok(reply) => {
                let room = reply.room_id.to_string();
                if self.is(&room, &[CallPhase::RingingIn]) {
                    // We called back the caller whose invitation rings here: the server
                    // answered their invitation instead of placing a second call.
                    self.state.phase = CallPhase::InCall;
                    let inviter = self.inviter();
                    self.join(inviter);
                } else if self.state.phase == CallPhase::Connecting
                    && self.state.direction == Some(Direction::Outgoing)
                    && self.state.room_id.is_empty()
                {
                    let mut invitation = sent.clone();
                    invitation.room_id = room.clone();
                    invitation.inviter_user_id = self.me.to_string();
                    invitation.busy_line_user_id_list = reply.busy_line_user_id_list.clone();
                    let ringing: Vec<UserId> = sent
                        .invitee_user_id_list
                        .iter()
                        .filter(|u| **u != self.me && !reply.busy_line_user_id_list.contains(u))
                        .cloned()
                        .collect();
                    self.state.room_id = room;
                    self.state.invitation = Some(invitation);
                    if ringing.is_empty() {
                        self.end(EndReason::Busy, None, None);
                    } else {
                        self.state.phase = CallPhase::RingingOut;
                        self.state.ringing = ringing;
                    }
                }
            }
            Err((code, message)) => {
                if self.state.phase == CallPhase::Connecting
                    && self.state.direction == Some(Direction::Outgoing)
                    && self.state.room_id.is_empty()
                {
                    self.end(EndReason::Refused, None, Some(error(code, message)));
                }
            }
        }
        self.changes(before)
    }

    /// The server answered our accept of `room`, or our join of it by room id.
    pub(crate) fn on_accept_reply(
        &mut self,
        room: &str,
        reply: Result<&AcceptReply, (ErrCode, &str)>,
    ) -> Vec<CallState> {
        let before = self.state.clone();
        if self.is(room, &[CallPhase::Connecting]) {
            match reply {
                Ok(_) => {
                    self.state.phase = CallPhase::InCall;
                    let inviter = self.inviter();
                    self.join(inviter);
                }
                Err((ErrCode::AlreadyAnswered, message)) => self.end(
                    EndReason::AnsweredElsewhere,
                    Some(self.me.clone()),
                    Some(error(ErrCode::AlreadyAnswered, message)),
                ),
                Err((code @ (ErrCode::NotRinging | ErrCode::NotFound), message)) => {
                    self.end(EndReason::RemoteCancelled, None, Some(error(code, message)))
                }
                Err((code @ (ErrCode::Busy | ErrCode::RoomFull), message)) => {
                    self.end(EndReason::Refused, None, Some(error(code, message)))
                }
                Err((code, message)) if self.joining_unrung => {
                    self.end(EndReason::Refused, None, Some(error(code, message)))
                }
                // A passing failure: it still rings; the person may try again.
                Err(_) => self.state.phase = CallPhase::RingingIn,
            }
        }
        self.changes(before)
    }

    /// A server event (after the ringing view's filter).
    pub(crate) fn on_event(&mut self, event: &Event) -> Vec<CallState> {
        let before = self.state.clone();
        match event {
            Event::ReceiveNewInvitation(info) => self.ring(info),
            Event::InvitationCancelled(info) => {
                self.waiting.remove(&info.invitation.room_id);
                if self.is_current(info, &[CallPhase::RingingIn, CallPhase::Connecting]) {
                    self.end(
                        EndReason::RemoteCancelled,
                        Some(info.op_user_id.clone()),
                        None,
                    );
                }
            }
            Event::InvitationTimeout(info) => {
                self.waiting.remove(&info.invitation.room_id);
                if self.is_current(info, &[CallPhase::RingingIn, CallPhase::Connecting])
                    && self.state.direction == Some(Direction::Incoming)
                {
                    self.end(EndReason::Missed, None, None);
                } else if self.is_current(info, &[CallPhase::RingingOut, CallPhase::InCall]) {
                    self.stop_ringing(&info.op_user_id, EndReason::NoAnswer);
                }
            }
            Event::InviteeAccepted(info)
                if self.is_current(info, &[CallPhase::RingingOut, CallPhase::InCall]) =>
            {
                self.state.ringing.retain(|u| *u != info.op_user_id);
                self.state.phase = CallPhase::InCall;
                self.join(Some(info.op_user_id.clone()));
            }
            Event::InviteeRejected(info)
                if self.is_current(info, &[CallPhase::RingingOut, CallPhase::InCall]) =>
            {
                self.stop_ringing(&info.op_user_id, EndReason::RemoteDeclined);
            }
            Event::InviteeAcceptedByOtherDevice(info) => {
                self.waiting.remove(&info.invitation.room_id);
                if self.is_current(info, &[CallPhase::RingingIn, CallPhase::Connecting]) {
                    self.end(EndReason::AnsweredElsewhere, Some(self.me.clone()), None);
                }
            }
            Event::InviteeRejectedByOtherDevice(info) => {
                self.waiting.remove(&info.invitation.room_id);
                if self.is_current(info, &[CallPhase::RingingIn, CallPhase::Connecting]) {
                    self.end(EndReason::DeclinedElsewhere, Some(self.me.clone()), None);
                }
            }
            Event::HangUp(info) if self.is_current(info, &[CallPhase::InCall]) => {
                self.state.peers.retain(|u| *u != info.op_user_id);
                let group =
                    !info.invitation.group_id.is_empty() || info.invitation.session_type >= 2;
                // One-to-one: the call is over. A group call is over when the list in
                // onRoomParticipantDisconnected (right after) holds only us: someone
                // who joined may not know everyone who is there.
                if !group {
                    self.end(EndReason::RemoteHungUp, Some(info.op_user_id.clone()), None);
                }
            }
            Event::RoomParticipantConnected(info) | Event::RoomParticipantDisconnected(info) => {
                self.participants(info, matches!(event, Event::RoomParticipantConnected(_)))
            }
            Event::KickedOffline(_) if self.state.is_active() => {
                self.end(EndReason::SignedInElsewhere, None, None);
            }
            _ => {}
        }
        let mut out = self.changes(before);
        out.extend(self.next_waiting());
        out
    }

    /// A (re)connect's login reply: the server's truth about our call.
    pub(crate) fn on_resync(&mut self, login: &LoginReply) -> Vec<CallState> {
        let before = self.state.clone();
        self.resync(login);
        self.changes(before)
    }

    /// The client stopped for good.
    pub(crate) fn on_closed(&mut self, reason: EndReason) -> Vec<CallState> {
        let before = self.state.clone();
        self.waiting.clear();
        if self.state.is_active() {
            self.end(reason, None, None);
        }
        self.changes(before)
    }

    fn resync(&mut self, login: &LoginReply) {
        match &login.current_call {
            Some(call) => {
                let room = call.room_id.to_string();
                if self.state.room_id != room || !self.state.is_active() {
                    self.state = CallState {
                        phase: CallPhase::InCall,
                        direction: Some(if call.invitation.inviter_user_id == self.me.as_str() {
                            Direction::Outgoing
                        } else {
                            Direction::Incoming
                        }),
                        room_id: room,
                        invitation: Some(call.invitation.clone()),
                        ..CallState::idle()
                    };
                }
                self.state.phase = CallPhase::InCall;
                self.state.peers = call
                    .participant
                    .iter()
                    .map(|p| p.user_info.user_id.clone())
                    .filter(|u| *u != self.me)
                    .collect();
            }
            // An accept lost with the connection never reached the server: it rings
            // again, or the ringing view's catch-up events say it stopped.
            None if self.state.phase == CallPhase::Connecting
                && self.state.direction == Some(Direction::Incoming) =>
            {
                self.state.phase = CallPhase::RingingIn
            }
            // Ringing here is settled by the ringing view's catch-up events; anything
            // further along ended while we were away.
            None if matches!(self.state.phase, CallPhase::InCall | CallPhase::RingingOut)
                || (self.state.phase == CallPhase::Connecting
                    && self.state.direction == Some(Direction::Outgoing)) =>
            {
                self.end(EndReason::ConnectionLost, None, None)
            }
            None => {}
        }
    }

    fn ring(&mut self, info: &SignalingInfo) {
        let room = &info.invitation.room_id;
        if self.state.room_id == *room && self.state.is_active() {
            self.state.invitation = Some(info.invitation.clone());
            return;
        }
        if self.state.is_active() {
            self.waiting.insert(room.clone(), info.clone());
            return;
        }
        self.state = CallState {
            phase: CallPhase::RingingIn,
            direction: Some(Direction::Incoming),
            room_id: room.clone(),
            invitation: Some(info.invitation.clone()),
            ..CallState::idle()
        };
    }

    /// When the current call ended while others rang: the oldest of those rings now.
    fn next_waiting(&mut self) -> Vec<CallState> {
        if self.state.is_active() {
            return Vec::new();
        }
        let Some(room) = self.waiting.keys().next().cloned() else {
            return Vec::new();
        };
        let info = self.waiting.remove(&room).expect("the key is there");
        self.ring(&info);
        vec![self.state.clone()]
    }

    fn participants(&mut self, info: &RoomParticipantInfo, connected: bool) {
        if info.invitation.room_id != self.state.room_id || !self.state.is_active() {
            return;
        }
        if self.state.invitation.is_none() {
            // Joined by room id: the call's invitation is first seen here.
            self.state.invitation = Some(info.invitation.clone());
        }
        self.state.peers = info
            .participant
            .iter()
            .map(|p| p.user_info.user_id.clone())
            .filter(|u| *u != self.me)
            .collect();
        if connected {
            self.state.ringing.retain(|u| *u != info.op_user_id);
            if self.state.phase == CallPhase::RingingOut {
                self.state.phase = CallPhase::InCall;
            }
        } else if self.state.phase == CallPhase::InCall && self.state.peers.is_empty() {
            self.end(EndReason::RemoteHungUp, Some(info.op_user_id.clone()), None);
        }
    }

    /// An invitee of our call stopped ringing without answering; with nobody left
    /// ringing or connected, the call is over for `reason`.
    fn stop_ringing(&mut self, who: &UserId, reason: EndReason) {
        self.state.ringing.retain(|u| u != who);
        if self.state.phase == CallPhase::RingingOut
            && self.state.ringing.is_empty()
            && self.state.peers.is_empty()
        {
            self.end(reason, Some(who.clone()), None);
        }
    }

    /// The one place a call ends.
    fn end(&mut self, reason: EndReason, by: Option<UserId>, error: Option<CallError>) {
        self.state.phase = CallPhase::Ended;
        self.state.ringing.clear();
        self.state.end = Some(CallEnd { reason, by, error });
        tracing::info!(room = %self.state.room_id, ?reason, "call ended");
    }

    fn join(&mut self, who: Option<UserId>) {
        if let Some(who) = who.filter(|u| *u != self.me) {
            if !self.state.peers.contains(&who) {
                self.state.peers.push(who);
            }
        }
    }

    fn inviter(&self) -> Option<UserId> {
        let inviter = &self.state.invitation.as_ref()?.inviter_user_id;
        UserId::new(inviter).ok()
    }

    /// Whether the current call is `room` and in one of `phases`.
    fn is(&self, room: &str, phases: &[CallPhase]) -> bool {
        self.state.room_id == room && phases.contains(&self.state.phase)
    }

    fn is_current(&self, info: &SignalingInfo, phases: &[CallPhase]) -> bool {
        self.is(&info.invitation.room_id, phases)
    }

    /// The snapshot to emit, if the state changed since `before`.
    fn changes(&self, before: CallState) -> Vec<CallState> {
        if before == self.state {
            return Vec::new();
        }
        tracing::debug!(
            room = %self.state.room_id,
            "call {:?} -> {:?}",
            before.phase,
            self.state.phase
        );
        vec![self.state.clone()]
    }
}

fn error(code: ErrCode, message: &str) -> CallError {
    CallError {
        err_code: code.code(),
        err_msg: message.to_owned(),
    }
}
