//! Joining a call in progress and everything asked of a room or a user: room by group,
//! token by room, the start-up invitation, custom and media signals. (History and
//! contacts are answered outside the hub: `queries.rs`.)

use tincan_protocol::{
    CustomSignalInfo, CustomSignalParams, Empty, ErrCode, Event, GroupParams, InviteeOutcome,
    MediaSignalInfo, MediaSignalParams, RoomByGroupReply, RoomParams, StartAppReply, WireError,
};

use super::call::Invitee;
use super::{denied, raw, store_failed, ConnId, ConnInfo, Handled, Hub, Now};

impl Hub {
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
        self.check_not_in_call(&me.user)?;
        if call.participants.len() >= self.cfg.max_room_size {
            return Err(WireError::new(
                ErrCode::RoomFull,
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
        self.send(to, event);
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
        self.send(vec![conn], event);
        raw(&Empty {})
    }
}
