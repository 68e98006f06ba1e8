//! Answering and leaving: accept, reject, cancel, hang up, and the checks that decide
//! whether the one asking may.

use tincan_protocol::{
    AcceptReply, ActionParams, Empty, EndReason, ErrCode, Event, InviteeOutcome, RoomId, UserId,
    WireError,
};

use super::call::InviteeState;
use super::lifecycle::reason_words;
use super::{args, check_self, denied, raw, ConnId, ConnInfo, Handled, Hub, Now};

impl Hub {
    /// The live call an action (accept, reject, cancel, hang up) names, after checking
    /// that the one asking acts as themselves.
    pub(super) fn action_room(&self, me: &ConnInfo, p: &ActionParams) -> Result<RoomId, WireError> {
        check_self(&p.op_user_id, &me.user, "opUserID")?;
        let inv = &p.invitation;
        if inv.room_id.is_empty() {
            return Err(args(
                "invitation.roomID is required: pass the invitation you received or sent",
            ));
        }
        let room = RoomId::new(inv.room_id.as_str())
            .map_err(|e| args(format!("invitation.roomID: {e}")))?;
        self.live_room(room)
    }

    pub(super) fn live_room(&self, room: RoomId) -> Result<RoomId, WireError> {
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
    pub(super) fn check_answerable(&self, room: &RoomId, me: &ConnInfo) -> Result<(), WireError> {
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
        let room = self.action_room(me, &p)?;
        self.check_answerable(&room, me)?;
        self.check_not_in_call(&me.user)?;
        self.answer(now, conn, me, &room, InviteeOutcome::Accepted, "accepted");
        raw(&self.accept_reply(now, &room, &me.user))
    }

    pub(super) fn accept_reply(&self, now: Now, room: &RoomId, user: &UserId) -> AcceptReply {
        AcceptReply {
            room_id: room.clone(),
            token: self.room_token(now, room, user),
            live_url: self.cfg.live_url.clone(),
            ice_servers: self.cfg.ice.servers_for(user, now.wall_ms),
        }
    }

    /// `me` joins `room` answering their invitation; tells the inviting device and
    /// stops `me`'s other devices ringing.
    pub(super) fn answer(
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
        self.send(inviter, Event::InviteeAccepted(info.clone()));
        let others = self
            .user_conns(&me.user)
            .into_iter()
            .filter(|c| *c != conn)
            .collect();
        self.send(others, Event::InviteeAcceptedByOtherDevice(info));
        self.join(now, room, me, conn, reason);
    }

    pub(super) fn reject(
        &mut self,
        now: Now,
        conn: ConnId,
        me: &ConnInfo,
        p: ActionParams,
    ) -> Handled {
        let room = self.action_room(me, &p)?;
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
        self.send(inviter, Event::InviteeRejected(info.clone()));
        let others = self
            .user_conns(&me.user)
            .into_iter()
            .filter(|c| *c != conn)
            .collect();
        self.send(others, Event::InviteeRejectedByOtherDevice(info));
        self.maybe_end(now, &room, EndReason::Rejected);
        raw(&Empty {})
    }

    pub(super) fn cancel(&mut self, now: Now, me: &ConnInfo, p: ActionParams) -> Handled {
        let room = self.action_room(me, &p)?;
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
            self.send(to, Event::InvitationCancelled(info.clone()));
        }
        self.maybe_end(now, &room, EndReason::Cancelled);
        raw(&Empty {})
    }

    pub(super) fn hang_up(&mut self, now: Now, me: &ConnInfo, p: ActionParams) -> Handled {
        let room = self.action_room(me, &p)?;
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
}
