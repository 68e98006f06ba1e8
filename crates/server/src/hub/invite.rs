//! Placing calls: `signalingInvite`, `signalingInviteInGroup` (including ringing more
//! members into a group call in progress), and glare.

use tracing::info;

use tincan_protocol::{
    is_group_session, EndReason, ErrCode, GroupId, InviteParams, InviteReply, InviteeOutcome,
    RoomId, UserId, WireError, SESSION_GROUP, SESSION_SINGLE,
};

use super::call::{Call, Invitee, InviteeState};
use super::{args, check_self, denied, raw, store_failed, ConnId, ConnInfo, Handled, Hub, Now};

impl Hub {
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
        let mut group_name = String::new();
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
            group_name = row.name;
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
        self.check_not_in_call(&me.user)?;
        // Glare: the one we call is calling us. Checked after "busy", so that nobody
        // ends up in two calls.
        if !group {
            if let Some(room) = self.crossing_invitation(&me.user, &invitees[0]) {
                return self.merge_crossing(now, conn, me, room);
            }
        }
        if let Some(r) = group_id.as_ref().and_then(|g| self.group_calls.get(g)) {
            return Err(WireError::new(
                ErrCode::GroupCallInProgress,
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
            group_name,
            inviter: me.user.clone(),
            initiate_time: now.wall_ms,
            answer_time: None,
            was_connected: false,
            participants: Vec::new(),
            invitees: Vec::new(),
            joined: Vec::new(),
            restored: false,
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
        raw(&self.invite_reply(now, &room, &me.user, busy))
    }

    /// Rings more members in a group call that is already going.
    pub(super) fn add_invitees(
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
        raw(&self.invite_reply(now, &room, &me.user, busy))
    }

    /// A one-to-one invitation from `other` to `me` that is still ringing.
    pub(super) fn crossing_invitation(&self, me: &UserId, other: &UserId) -> Option<RoomId> {
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
    pub(super) fn merge_crossing(
        &mut self,
        now: Now,
        conn: ConnId,
        me: &ConnInfo,
        room: RoomId,
    ) -> Handled {
        info!(room = %room, "crossing invitations merged into one call");
        self.answer(
            now,
            conn,
            me,
            &room,
            InviteeOutcome::Accepted,
            "called back while ringing",
        );
        raw(&self.invite_reply(now, &room, &me.user, Vec::new()))
    }

    /// The "AV service connection config" an invite returns.
    fn invite_reply(
        &self,
        now: Now,
        room: &RoomId,
        user: &UserId,
        busy: Vec<UserId>,
    ) -> InviteReply {
        InviteReply {
            room_id: room.clone(),
            token: self.room_token(now, room, user),
            live_url: self.cfg.live_url.clone(),
            busy_line_user_id_list: busy,
            ice_servers: self.cfg.ice.servers_for(user, now.wall_ms),
        }
    }
}
