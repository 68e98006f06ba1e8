//! The hub's operations: one method per API call, plus timers and the call's end.
//! Each checks who is asking against the call's state, then changes state only through
//! the choke points (`ring`, `set_invitee`, `join`, `leave`, `end_call`).

use tracing::{info, warn};

use tincan_protocol::{
    is_group_session, AcceptReply, ActionParams, ContactsReply, CustomSignalInfo,
    CustomSignalParams, Empty, EndReason, ErrCode, Event, GroupId, GroupInfo, GroupParams,
    HistoryParams, HistoryReply, Invitation, InviteParams, InviteReply, InviteeOutcome,
    MediaSignalInfo, MediaSignalParams, RoomByGroupReply, RoomId, RoomParams, RoomParticipantInfo,
    StartAppReply, UserId, WireError, SESSION_GROUP, SESSION_SINGLE,
};

use super::call::{Call, Invitee, InviteeState, Participant};
use super::{raw, store_failed, ConnId, ConnInfo, Handled, Hub, Now, Timer};

fn args(msg: impl Into<String>) -> WireError {
    WireError::new(ErrCode::Args, msg)
}

fn denied(msg: impl Into<String>) -> WireError {
    WireError::new(ErrCode::NoPermission, msg)
}

/// Refuses a request that names someone other than the signed-in user as the actor.
fn check_self(given: &str, me: &UserId, field: &str) -> Result<(), WireError> {
    if given.is_empty() || given == me.as_str() {
        Ok(())
    } else {
        Err(denied(format!(
            "{field} is {given:?} but you are signed in as {me}; you can only act as yourself"
        )))
    }
}

/// How many ended rooms are remembered, so a late answer hears "ended", not "unknown".
const ENDED_MEMORY: usize = 4096;

impl Hub {
    // ---- invite ------------------------------------------------------------------------

    pub(super) fn invite(
        &mut self,
        now: Now,
        conn: ConnId,
        me: &ConnInfo,
        p: InviteParams,
        group: bool,
    ) -> Handled {
        let mut inv = p.invitation;
        check_self(&inv.inviter_user_id, &me.user, "invitation.inviterUserID")?;
        let mut invitees: Vec<UserId> = Vec::new();
        for u in inv.invitee_user_id_list.drain(..) {
            if !invitees.contains(&u) {
                invitees.push(u);
            }
        }
        if invitees.is_empty() {
            return Err(args(
                "invitation.inviteeUserIDList is empty: name who to call",
            ));
        }
        if invitees.contains(&me.user) {
            return Err(args("you cannot invite yourself"));
        }
        if invitees.len() >= self.cfg.max_room_size {
            return Err(args(format!(
                "at most {} people can be invited to one call",
                self.cfg.max_room_size - 1
            )));
        }
        let group_id = GroupId::optional(&inv.group_id)
            .map_err(|e| args(format!("invitation.groupID: {e}")))?;
        if group {
            if inv.session_type == 0 {
                inv.session_type = SESSION_GROUP;
            }
            if !is_group_session(inv.session_type) {
                return Err(args(format!(
                    "signalingInviteInGroup needs sessionType 2 or 3 (group), got {}",
                    inv.session_type
                )));
            }
            let g = group_id
                .as_ref()
                .ok_or_else(|| args("invitation.groupID is required for a group call"))?;
            let row = self.store.group(g).map_err(store_failed)?.ok_or_else(|| {
                WireError::new(ErrCode::NotFound, format!("group {g} does not exist"))
            })?;
            if !row.members.contains(&me.user) {
                return Err(denied(format!("you are not a member of group {g}")));
            }
            if let Some(u) = invitees.iter().find(|u| !row.members.contains(u)) {
                return Err(denied(format!("{u} is not a member of group {g}")));
            }
        } else {
            if inv.session_type == 0 {
                inv.session_type = SESSION_SINGLE;
            }
            if inv.session_type != SESSION_SINGLE {
                return Err(args(format!(
                    "signalingInvite is for one-to-one calls (sessionType 1), got {}; use signalingInviteInGroup for a group",
                    inv.session_type
                )));
            }
            if group_id.is_some() {
                return Err(args(
                    "a one-to-one invitation has no groupID; use signalingInviteInGroup for a group",
                ));
            }
            if invitees.len() != 1 {
                return Err(args(format!(
                    "a one-to-one invitation names exactly one invitee, got {}",
                    invitees.len()
                )));
            }
            if self
                .store
                .user(&invitees[0])
                .map_err(store_failed)?
                .is_none()
            {
                return Err(WireError::new(
                    ErrCode::NotFound,
                    format!("user {} does not exist", invitees[0]),
                ));
            }
        }
        let timeout = match inv.timeout {
            0 => self.cfg.default_timeout,
            s => std::time::Duration::from_secs(s.into()).min(self.cfg.max_timeout),
        };
        let room_given =
            RoomId::optional(&inv.room_id).map_err(|e| args(format!("invitation.roomID: {e}")))?;
        if let Some(room) = &room_given {
            if let Some(call) = self.calls.get(room) {
                if group && call.group == group_id && call.participant(&me.user).is_some() {
                    return self.add_invitees(now, me, room.clone(), invitees, timeout);
                }
                return Err(denied(format!(
                    "room {room} belongs to another call; leave roomID empty to start a new one"
                )));
            }
        }
        if let Some(r) = self.users.get(&me.user).and_then(|p| p.room.as_ref()) {
            return Err(WireError::new(
                ErrCode::Busy,
                format!("you are already in a call (room {r}); hang up first"),
            ));
        }
        // Glare: the one we call is calling us. Checked after "busy", so that nobody
        // ends up in two calls.
        if !group {
            if let Some(room) = self.crossing_invitation(&me.user, &invitees[0]) {
                return self.merge_crossing(now, conn, me, room);
            }
        }
        if let Some(r) = group_id.as_ref().and_then(|g| self.group_calls.get(g)) {
            return Err(WireError::new(
                ErrCode::Busy,
                format!(
                    "group {} already has a call in progress (room {r}); join it with signalingGetTokenByRoomID",
                    inv.group_id
                ),
            ));
        }

        let room = room_given.unwrap_or_else(|| {
            RoomId::new(uuid::Uuid::new_v4().simple().to_string()).expect("uuids are valid ids")
        });
        let (busy, ring): (Vec<UserId>, Vec<UserId>) = invitees
            .iter()
            .cloned()
            .partition(|u| self.users.get(u).is_some_and(|p| p.room.is_some()));
        inv.inviter_user_id = me.user.to_string();
        inv.invitee_user_id_list = invitees.clone();
        inv.room_id = room.to_string();
        inv.timeout = timeout.as_secs() as u32;
        inv.platform_id = me.platform;
        inv.initiate_time = Some(now.wall_ms);
        inv.busy_line_user_id_list = busy.clone();
        let call = Call {
            room: room.clone(),
            invitation: inv,
            offline_push: p.offline_push_info,
            group: group_id.clone(),
            inviter: me.user.clone(),
            initiate_time: now.wall_ms,
            answer_time: None,
            was_connected: false,
            participants: Vec::new(),
            invitees: Vec::new(),
            joined: Vec::new(),
        };
        info!(room = %room, invitees = ?invitees, busy = ?busy, "call placed");
        self.calls.insert(room.clone(), call);
        if let Some(g) = group_id {
            self.group_calls.insert(g, room.clone());
        }
        self.join(now, &room, me, conn, "placed the call");
        for u in &busy {
            self.add_invitee(&room, u, me);
            self.set_invitee(
                &room,
                u,
                InviteeState::Done(InviteeOutcome::Busy),
                "already in a call",
            );
        }
        let deadline = now.mono + timeout;
        for u in &ring {
            self.ring(&room, u, me, deadline);
        }
        if ring.is_empty() {
            self.end_call(now, &room, EndReason::Busy);
        }
        raw(&InviteReply {
            room_id: room.clone(),
            token: self.room_token(now, &room, &me.user),
            live_url: self.cfg.live_url.clone(),
            busy_line_user_id_list: busy,
            ice_servers: self.cfg.ice.servers_for(&me.user, now.wall_ms),
        })
    }

    /// Rings more members in a group call that is already going.
    fn add_invitees(
        &mut self,
        now: Now,
        me: &ConnInfo,
        room: RoomId,
        invitees: Vec<UserId>,
        timeout: std::time::Duration,
    ) -> Handled {
        let call = &self.calls[&room];
        if call.participants.len() + call.ringing().count() + invitees.len()
            > self.cfg.max_room_size
        {
            return Err(args(format!(
                "a call holds at most {} people",
                self.cfg.max_room_size
            )));
        }
        let mut busy = Vec::new();
        let deadline = now.mono + timeout;
        for u in invitees {
            let call = &self.calls[&room];
            if call.participant(&u).is_some() || call.invitee(&u).is_some_and(Invitee::is_ringing) {
                continue;
            }
            if self.users.get(&u).is_some_and(|p| p.room.is_some()) {
                let call = self.calls.get_mut(&room).expect("room checked above");
                if !call.invitation.busy_line_user_id_list.contains(&u) {
                    call.invitation.busy_line_user_id_list.push(u.clone());
                }
                self.add_invitee(&room, &u, me);
                self.set_invitee(
                    &room,
                    &u,
                    InviteeState::Done(InviteeOutcome::Busy),
                    "already in a call",
                );
                busy.push(u);
                continue;
            }
            let call = self.calls.get_mut(&room).expect("room checked above");
            if !call.invitation.invitee_user_id_list.contains(&u) {
                call.invitation.invitee_user_id_list.push(u.clone());
            }
            self.ring(&room, &u, me, deadline);
        }
        info!(room = %room, busy = ?busy, "more members invited");
        raw(&InviteReply {
            room_id: room.clone(),
            token: self.room_token(now, &room, &me.user),
            live_url: self.cfg.live_url.clone(),
            busy_line_user_id_list: busy,
            ice_servers: self.cfg.ice.servers_for(&me.user, now.wall_ms),
        })
    }

    /// A one-to-one invitation from `other` to `me` that is still ringing.
    fn crossing_invitation(&self, me: &UserId, other: &UserId) -> Option<RoomId> {
        let presence = self.users.get(me)?;
        presence
            .ringing
            .iter()
            .find(|room| {
                self.calls
                    .get(*room)
                    .is_some_and(|c| !c.is_group() && &c.inviter == other)
            })
            .cloned()
    }

    /// Glare: `me` calls someone whose call to `me` is ringing. The two become one call:
    /// `me` answers the other's invitation, and the invite's reply describes that room.
    fn merge_crossing(&mut self, now: Now, conn: ConnId, me: &ConnInfo, room: RoomId) -> Handled {
        info!(room = %room, "crossing invitations merged into one call");
        self.answer(
            now,
            conn,
            me,
            &room,
            InviteeOutcome::Accepted,
            "called back while ringing",
        );
        raw(&InviteReply {
            room_id: room.clone(),
            token: self.room_token(now, &room, &me.user),
            live_url: self.cfg.live_url.clone(),
            busy_line_user_id_list: Vec::new(),
            ice_servers: self.cfg.ice.servers_for(&me.user, now.wall_ms),
        })
    }

    // ---- answers ---------------------------------------------------------------------

    /// The live call an action names, or why there is none.
    fn action_room(&self, inv: &Invitation) -> Result<RoomId, WireError> {
        if inv.room_id.is_empty() {
            return Err(args(
                "invitation.roomID is required: pass the invitation you received or sent",
            ));
        }
        let room = RoomId::new(inv.room_id.as_str())
            .map_err(|e| args(format!("invitation.roomID: {e}")))?;
        self.live_room(room)
    }

    fn live_room(&self, room: RoomId) -> Result<RoomId, WireError> {
        if self.calls.contains_key(&room) {
            return Ok(room);
        }
        match self.ended.get(&room) {
            Some(reason) => Err(WireError::new(
                ErrCode::NotRinging,
                format!(
                    "the call in room {room} has already ended ({})",
                    reason_words(*reason)
                ),
            )),
            None => Err(WireError::new(
                ErrCode::NotFound,
                format!("no call with roomID {room}"),
            )),
        }
    }

    /// Checks that `me` may answer the invitation of `room` now.
    fn check_answerable(&self, room: &RoomId, me: &ConnInfo) -> Result<(), WireError> {
        let call = &self.calls[room];
        let invitee = call
            .invitee(&me.user)
            .ok_or_else(|| denied(format!("you were not invited to room {room}")))?;
        let answered_here = call
            .participant(&me.user)
            .is_some_and(|p| p.device == me.device);
        let state_err = |code, msg: &str| Err(WireError::new(code, msg.to_owned()));
        match invitee.state {
            InviteeState::Ringing { .. } => Ok(()),
            InviteeState::Done(InviteeOutcome::Accepted | InviteeOutcome::AnsweredElsewhere) => {
                if answered_here {
                    state_err(ErrCode::AlreadyAnswered, "you already answered this call")
                } else {
                    state_err(
                        ErrCode::AlreadyAnswered,
                        "this call was already answered on another of your devices",
                    )
                }
            }
            InviteeState::Done(InviteeOutcome::Rejected) => state_err(
                ErrCode::AlreadyAnswered,
                "this call was already declined (on this or another of your devices)",
            ),
            InviteeState::Done(InviteeOutcome::TimedOut) => {
                state_err(ErrCode::NotRinging, "this invitation timed out")
            }
            InviteeState::Done(InviteeOutcome::Busy) => state_err(
                ErrCode::NotRinging,
                "you were in another call when this one came in",
            ),
            InviteeState::Done(_) | InviteeState::New => {
                state_err(ErrCode::NotRinging, "this invitation was cancelled")
            }
        }
    }

    pub(super) fn accept(
        &mut self,
        now: Now,
        conn: ConnId,
        me: &ConnInfo,
        p: ActionParams,
    ) -> Handled {
        check_self(&p.op_user_id, &me.user, "opUserID")?;
        let room = self.action_room(&p.invitation)?;
        self.check_answerable(&room, me)?;
        if let Some(r) = self.users.get(&me.user).and_then(|u| u.room.as_ref()) {
            return Err(WireError::new(
                ErrCode::Busy,
                format!("you are already in a call (room {r}); hang up first"),
            ));
        }
        self.answer(now, conn, me, &room, InviteeOutcome::Accepted, "accepted");
        raw(&self.accept_reply(now, &room, &me.user))
    }

    fn accept_reply(&self, now: Now, room: &RoomId, user: &UserId) -> AcceptReply {
        AcceptReply {
            room_id: room.clone(),
            token: self.room_token(now, room, user),
            live_url: self.cfg.live_url.clone(),
            ice_servers: self.cfg.ice.servers_for(user, now.wall_ms),
        }
    }

    /// `me` joins `room` answering their invitation; tells the inviting device and
    /// stops `me`'s other devices ringing.
    fn answer(
        &mut self,
        now: Now,
        conn: ConnId,
        me: &ConnInfo,
        room: &RoomId,
        outcome: InviteeOutcome,
        reason: &str,
    ) {
        self.set_invitee(room, &me.user, InviteeState::Done(outcome), reason);
        let call = self.calls.get_mut(room).expect("answering a live call");
        call.answer_time.get_or_insert(now.wall_ms);
        let inv = call.invitee_mut(&me.user).expect("answering an invitee");
        inv.answer_time = Some(now.wall_ms);
        let (by, by_device) = (inv.invited_by.clone(), inv.invited_by_device.clone());
        let info = self.info_as(&self.calls[room], &me.user, Some(me.platform));
        let inviter = self.device_conn(&by, &by_device).into_iter().collect();
        self.send(inviter, &Event::InviteeAccepted(info.clone()));
        let others = self
            .user_conns(&me.user)
            .into_iter()
            .filter(|c| *c != conn)
            .collect();
        self.send(others, &Event::InviteeAcceptedByOtherDevice(info));
        self.join(now, room, me, conn, reason);
    }

    pub(super) fn reject(
        &mut self,
        now: Now,
        conn: ConnId,
        me: &ConnInfo,
        p: ActionParams,
    ) -> Handled {
        check_self(&p.op_user_id, &me.user, "opUserID")?;
        let room = self.action_room(&p.invitation)?;
        self.check_answerable(&room, me)?;
        self.set_invitee(
            &room,
            &me.user,
            InviteeState::Done(InviteeOutcome::Rejected),
            "rejected",
        );
        let call = &self.calls[&room];
        let inv = call.invitee(&me.user).expect("checked above");
        let inviter: Vec<ConnId> = self
            .device_conn(&inv.invited_by, &inv.invited_by_device)
            .into_iter()
            .collect();
        let info = self.info_as(call, &me.user, Some(me.platform));
        self.send(inviter, &Event::InviteeRejected(info.clone()));
        let others = self
            .user_conns(&me.user)
            .into_iter()
            .filter(|c| *c != conn)
            .collect();
        self.send(others, &Event::InviteeRejectedByOtherDevice(info));
        self.maybe_end(now, &room, EndReason::Rejected);
        raw(&Empty {})
    }

    pub(super) fn cancel(&mut self, now: Now, me: &ConnInfo, p: ActionParams) -> Handled {
        check_self(&p.op_user_id, &me.user, "opUserID")?;
        let room = self.action_room(&p.invitation)?;
        let call = &self.calls[&room];
        if call.participant(&me.user).is_none() {
            return Err(denied(format!(
                "only a participant who rang someone can cancel; you are not in room {room}"
            )));
        }
        let named = &p.invitation.invitee_user_id_list;
        let targets: Vec<UserId> = call
            .ringing()
            .filter(|i| i.invited_by == me.user)
            .filter(|i| named.is_empty() || named.contains(&i.user))
            .map(|i| i.user.clone())
            .collect();
        if targets.is_empty() {
            return Err(WireError::new(
                ErrCode::NotRinging,
                format!("nobody you invited in room {room} is still ringing"),
            ));
        }
        let info = self.info_as(call, &me.user, Some(me.platform));
        for u in &targets {
            self.set_invitee(
                &room,
                u,
                InviteeState::Done(InviteeOutcome::Cancelled),
                "cancelled by the caller",
            );
            let to = self.user_conns(u);
            self.send(to, &Event::InvitationCancelled(info.clone()));
        }
        self.maybe_end(now, &room, EndReason::Cancelled);
        raw(&Empty {})
    }

    pub(super) fn hang_up(&mut self, now: Now, me: &ConnInfo, p: ActionParams) -> Handled {
        check_self(&p.op_user_id, &me.user, "opUserID")?;
        let room = self.action_room(&p.invitation)?;
        let call = &self.calls[&room];
        if call.participant(&me.user).is_none() {
            return Err(denied(match call.invitee(&me.user) {
                Some(i) if i.is_ringing() => {
                    format!("you have not answered the call in room {room}; use signalingReject")
                }
                _ => format!("you are not in the call in room {room}"),
            }));
        }
        self.leave(&room, &me.user, "hung up");
        self.maybe_end(now, &room, EndReason::HungUp);
        raw(&Empty {})
    }

    // ---- joining a call in progress, queries ----------------------------------------

    pub(super) fn room_by_group(&mut self, me: &ConnInfo, p: GroupParams) -> Handled {
        let row = self
            .store
            .group(&p.group_id)
            .map_err(store_failed)?
            .ok_or_else(|| {
                WireError::new(
                    ErrCode::NotFound,
                    format!("group {} does not exist", p.group_id),
                )
            })?;
        if !row.members.contains(&me.user) {
            return Err(denied(format!(
                "you are not a member of group {}",
                p.group_id
            )));
        }
        let reply = match self
            .group_calls
            .get(&p.group_id)
            .and_then(|r| self.calls.get(r))
        {
            Some(call) => RoomByGroupReply {
                invitation: Some(call.invitation.clone()),
                participant: self.participant_list(call),
                room_id: call.room.to_string(),
            },
            None => RoomByGroupReply {
                invitation: None,
                participant: Vec::new(),
                room_id: String::new(),
            },
        };
        raw(&reply)
    }

    pub(super) fn token_by_room(
        &mut self,
        now: Now,
        conn: ConnId,
        me: &ConnInfo,
        p: RoomParams,
    ) -> Handled {
        let room = self.live_room(p.room_id)?;
        let call = &self.calls[&room];
        if call.participant(&me.user).is_some() {
            return raw(&self.accept_reply(now, &room, &me.user));
        }
        let Some(group) = call.group.clone() else {
            return Err(denied(format!(
                "room {room} is a one-to-one call you are not part of"
            )));
        };
        let is_member = self
            .store
            .group(&group)
            .map_err(store_failed)?
            .is_some_and(|g| g.members.contains(&me.user));
        if !is_member {
            return Err(denied(format!("you are not a member of group {group}")));
        }
        if let Some(r) = self.users.get(&me.user).and_then(|u| u.room.as_ref()) {
            return Err(WireError::new(
                ErrCode::Busy,
                format!("you are already in a call (room {r}); hang up first"),
            ));
        }
        if call.participants.len() >= self.cfg.max_room_size {
            return Err(WireError::new(
                ErrCode::Busy,
                format!("room {room} is full ({} people)", self.cfg.max_room_size),
            ));
        }
        if call.invitee(&me.user).is_some_and(Invitee::is_ringing) {
            self.answer(
                now,
                conn,
                me,
                &room,
                InviteeOutcome::AnsweredElsewhere,
                "joined by room id",
            );
        } else {
            self.join(now, &room, me, conn, "joined by room id");
            let call = self.calls.get_mut(&room).expect("room checked above");
            call.answer_time.get_or_insert(now.wall_ms);
        }
        raw(&self.accept_reply(now, &room, &me.user))
    }

    pub(super) fn start_app(&mut self, me: &ConnInfo) -> Handled {
        let newest = self
            .users
            .get(&me.user)
            .and_then(|p| p.ringing.last())
            .and_then(|r| self.calls.get(r));
        raw(&match newest {
            Some(call) => StartAppReply {
                invitation: Some(call.invitation.clone()),
                offline_push_info: call.offline_push.clone(),
            },
            None => StartAppReply::default(),
        })
    }

    pub(super) fn custom_signal(
        &mut self,
        _now: Now,
        me: &ConnInfo,
        p: CustomSignalParams,
    ) -> Handled {
        let room = self.live_room(p.room_id)?;
        let call = &self.calls[&room];
        if call.participant(&me.user).is_none() {
            return Err(denied(format!("you are not in the call in room {room}")));
        }
        let to = call.other_participant_conns(&me.user);
        let event = Event::ReceiveCustomSignal(CustomSignalInfo {
            room_id: room,
            custom_info: p.custom_info,
            op_user_id: me.user.clone(),
            user_id: me.user.clone(),
            event_time: self.wall_ms,
        });
        self.send(to, &event);
        raw(&Empty {})
    }

    pub(super) fn media_signal(
        &mut self,
        now: Now,
        me: &ConnInfo,
        p: MediaSignalParams,
    ) -> Handled {
        self.signer
            .verify_room(&p.token, &p.room_id, &me.user, now.wall_ms)
            .map_err(|e| {
                WireError::new(
                    ErrCode::RoomTokenInvalid,
                    format!(
                        "{e}: use the token you got for room {} when you joined it",
                        p.room_id
                    ),
                )
            })?;
        let room = self.live_room(p.room_id)?;
        let call = &self.calls[&room];
        match call.participant(&me.user) {
            None => return Err(denied(format!("you are not in the call in room {room}"))),
            // Media runs on the device that answered; another device of the same user
            // has no peer connection to negotiate.
            Some(p) if p.device != me.device => {
                return Err(denied(format!(
                    "the call in room {room} is on your device {}; negotiate media from there",
                    p.device
                )))
            }
            Some(_) => {}
        }
        let to = call.participant(&p.to_user_id).ok_or_else(|| {
            WireError::new(
                ErrCode::NotFound,
                format!("{} is not in the call in room {room}", p.to_user_id),
            )
        })?;
        let conn = to.conn.ok_or_else(|| {
            WireError::new(
                ErrCode::NotFound,
                format!(
                    "{} is reconnecting; send again when they are back",
                    p.to_user_id
                ),
            )
        })?;
        let event = Event::ReceiveMediaSignal(MediaSignalInfo {
            room_id: room,
            from_user_id: me.user.clone(),
            payload: p.payload,
        });
        self.send(vec![conn], &event);
        raw(&Empty {})
    }

    pub(super) fn history(&mut self, me: &ConnInfo, p: HistoryParams) -> Handled {
        let limit = p.limit.unwrap_or(50).clamp(1, 200);
        let records = self
            .store
            .call_history(&me.user, limit, p.before_time)
            .map_err(store_failed)?;
        raw(&HistoryReply { records })
    }

    pub(super) fn contacts(&mut self, me: &ConnInfo) -> Handled {
        let users = self
            .store
            .users()
            .map_err(store_failed)?
            .into_iter()
            .filter(|u| u.user_id != me.user)
            .map(|u| tincan_protocol::PublicUserInfo {
                user_id: u.user_id,
                nickname: u.nickname,
                face_url: String::new(),
            })
            .collect();
        let groups = self
            .store
            .groups_of(&me.user)
            .map_err(store_failed)?
            .into_iter()
            .map(|g| GroupInfo {
                group_id: g.group_id,
                group_name: g.name,
                member_user_id_list: g.members,
            })
            .collect();
        raw(&ContactsReply { users, groups })
    }

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
        self.send(to, &Event::InvitationTimeout(info));
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
        self.leave(&room, &user, "did not reconnect in time");
        self.maybe_end(now, &room, EndReason::Disconnected);
    }

    // ---- choke points ------------------------------------------------------------------

    fn add_invitee(&mut self, room: &RoomId, user: &UserId, by: &ConnInfo) {
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
    fn ring(
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
        self.send(to, &Event::ReceiveNewInvitation(info));
    }

    /// Makes `me` a participant of `room` on this device.
    fn join(&mut self, now: Now, room: &RoomId, me: &ConnInfo, conn: ConnId, reason: &str) {
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
        info!(room = %room, user = %me.user, participants = call.participants.len(), reason, "joined");
        self.users.entry(me.user.clone()).or_default().room = Some(room.clone());
        let _ = now;
        self.notify_room_change(room, &me.user, true);
    }

    /// Removes `user` from `room` and tells the others.
    fn leave(&mut self, room: &RoomId, user: &UserId, reason: &str) {
        let call = self.calls.get_mut(room).expect("leaving a live call");
        let i = call
            .participants
            .iter()
            .position(|p| &p.user == user)
            .expect("leaving as a participant");
        let left = call.participants.remove(i);
        info!(room = %room, user = %user, participants = call.participants.len(), reason, "left");
        if let Some(p) = self.users.get_mut(user) {
            p.room = None;
        }
        self.forget_if_idle(user);
        let call = &self.calls[room];
        let info = self.info_as(call, user, Some(left.platform));
        let to = call.other_participant_conns(user);
        self.send(to, &Event::HangUp(info));
        self.notify_room_change(room, user, false);
    }

    fn notify_room_change(&mut self, room: &RoomId, user: &UserId, connected: bool) {
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
        self.send(to, &event);
    }

    /// Ends the call if its rules say so: once two people were connected, when fewer
    /// than two remain; before that, when the caller is gone or nobody rings any more.
    fn maybe_end(&mut self, now: Now, room: &RoomId, reason: EndReason) {
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
            self.send(to, &Event::InvitationCancelled(info));
        }
        let call = self.calls.remove(room).expect("ending a live call");
        for p in &call.participants {
            if let Some(presence) = self.users.get_mut(&p.user) {
                presence.room = None;
            }
            self.forget_if_idle(&p.user);
        }
        if let Some(g) = &call.group {
            self.group_calls.remove(g);
        }
        self.ended.insert(room.clone(), reason);
        self.ended_order.push_back(room.clone());
        if self.ended_order.len() > ENDED_MEMORY {
            let old = self.ended_order.pop_front().expect("non-empty");
            self.ended.remove(&old);
        }
        info!(room = %room, ?reason, "call ended");
        if let Err(e) = self.store.save_call(&call.record(now.wall_ms, reason)) {
            warn!(room = %room, error = %e, "could not save the call record");
        }
    }
}

fn reason_words(r: EndReason) -> &'static str {
    match r {
        EndReason::HungUp => "hung up",
        EndReason::Cancelled => "cancelled",
        EndReason::Rejected => "declined",
        EndReason::Timeout => "not answered in time",
        EndReason::Busy => "busy",
        EndReason::Disconnected => "a participant lost their connection",
        EndReason::ServerShutdown => "the server shut down",
    }
}
