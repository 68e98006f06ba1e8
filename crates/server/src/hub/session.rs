//! Sign-in, devices, resume after a reconnect, and disconnects.

use tracing::{debug, info};

use tincan_protocol::{
    ClientFrame, CurrentCall, ErrCode, Event, KickedInfo, LoginParams, LoginReply, RoomId,
    SignalingInfo, UserId, WireError, PROTOCOL_VERSION,
};

use super::call::Link;
use super::{raw, store_failed, ConnId, ConnInfo, Frame, Hub, Now, Output, Presence, Reply, Timer};
use crate::auth::TokenError;

impl Hub {
    pub(super) fn login(&mut self, now: Now, conn: ConnId, frame: &ClientFrame, p: LoginParams) {
        let result = self.try_login(now, conn, p);
        let (reply, pending) = match result {
            Ok((reply, pending)) => (raw(&reply), pending),
            Err(e) => {
                // A connection that failed to sign in is closed: its client has to get
                // a new token over HTTP anyway, and an unauthenticated socket should
                // not linger.
                info!(code = e.code.code(), error = %e.message, "login refused");
                self.out.push(Output::Close {
                    conn,
                    last: Frame::Reply(Reply::to(frame, Err(e))),
                    reason: "sign-in refused",
                });
                return;
            }
        };
        self.reply(conn, frame, reply);
        for info in pending {
            self.send(vec![conn], Event::ReceiveNewInvitation(info));
        }
    }

    pub(super) fn try_login(
        &mut self,
        now: Now,
        conn: ConnId,
        p: LoginParams,
    ) -> Result<(LoginReply, Vec<SignalingInfo>), WireError> {
        if p.protocol_version != PROTOCOL_VERSION {
            return Err(WireError::new(
                ErrCode::UnsupportedVersion,
                format!(
                    "this server speaks protocol version {PROTOCOL_VERSION}, the client {}",
                    p.protocol_version
                ),
            ));
        }
        let user = self
            .signer
            .verify_login(&p.token, now.wall_ms)
            .map_err(|e| match e {
                TokenError::Expired => WireError::new(
                    ErrCode::TokenExpired,
                    "your sign-in has expired; sign in again",
                ),
                _ => WireError::new(
                    ErrCode::TokenInvalid,
                    "the login token is not valid on this server; sign in again",
                ),
            })?;
        let row = self
            .store
            .user(&user)
            .map_err(store_failed)?
            .ok_or_else(|| {
                WireError::new(
                    ErrCode::TokenInvalid,
                    format!("user {user} no longer exists"),
                )
            })?;
        let presence = self.users.entry(user.clone()).or_default();
        presence.nickname = row.nickname;
        let replaced = presence
            .devices
            .iter()
            .position(|(d, _)| *d == p.device_id)
            .map(|i| presence.devices.remove(i).1);
        if replaced.is_none() && presence.devices.len() >= self.cfg.max_devices_per_user {
            return Err(WireError::new(
                ErrCode::TooManyDevices,
                format!(
                    "{user} is already signed in on {} devices, the most this server allows; sign out on one first",
                    presence.devices.len()
                ),
            ));
        }
        presence.devices.push((p.device_id.clone(), conn));
        if let Some(old) = replaced {
            info!(
                old_conn = old,
                "device signed in again; closing its old connection"
            );
            self.conns.remove(&old);
            self.unfollow_all(old);
            let last = Frame::Event(Box::new(Event::KickedOffline(KickedInfo {
                reason: "this device signed in again on another connection".into(),
            })));
            self.out.push(Output::Close {
                conn: old,
                last,
                reason: "replaced by a newer connection of this device",
            });
        }
        let me = ConnInfo {
            user: user.clone(),
            device: p.device_id.clone(),
            platform: p.platform_id.get(),
        };
        self.conns.insert(conn, me.clone());
        info!(user = %user, device = %p.device_id, platform = me.platform, "signed in");

        let current_call = self.resume(now, conn, &me);
        self.sync_presence(&user, "signed in");
        let pending = self.pending_for(&user);
        Ok((
            LoginReply {
                user_id: user,
                device_id: p.device_id,
                protocol_version: PROTOCOL_VERSION,
                server_time: now.wall_ms,
                current_call,
                pending_invitations: pending.clone(),
            },
            pending,
        ))
    }

    /// Re-attaches a reconnecting device to the call it was in.
    pub(super) fn resume(&mut self, now: Now, conn: ConnId, me: &ConnInfo) -> Option<CurrentCall> {
        let room = self.users.get(&me.user)?.room.clone()?;
        let call = self
            .calls
            .get_mut(&room)
            .expect("a user's room is a live call");
        let p = call
            .participant_mut(&me.user)
            .expect("a user's room lists them");
        if p.device != me.device {
            return None;
        }
        p.platform = me.platform;
        info!(room = %room, "device resumed its call");
        self.set_link(
            &room,
            &me.user,
            Link::Connected(conn),
            "device resumed its call",
        );
        Some(self.current_call(now, &room, &me.user))
    }

    pub(super) fn current_call(&self, now: Now, room: &RoomId, user: &UserId) -> CurrentCall {
        let call = &self.calls[room];
        CurrentCall {
            invitation: call.invitation.clone(),
            room_id: room.clone(),
            token: self.room_token(now, room, user),
            live_url: self.cfg.live_url.clone(),
            ice_servers: self.cfg.ice.servers_for(user, now.wall_ms),
            participant: self.participant_list(call),
        }
    }

    /// The invitations ringing for `user`, as onReceiveNewInvitation payloads.
    pub(super) fn pending_for(&self, user: &UserId) -> Vec<SignalingInfo> {
        let Some(presence) = self.users.get(user) else {
            return Vec::new();
        };
        presence
            .ringing
            .iter()
            .filter_map(|room| {
                let call = self.calls.get(room)?;
                let inv = call.invitee(user)?;
                Some(self.info_as(call, &inv.invited_by, None))
            })
            .collect()
    }

    /// `last_heard`: when the peer last sent anything. The grace period counts from then,
    /// not from when the server noticed; if it is already over, the device is treated as
    /// gone at once.
    pub(super) fn handle_closed(
        &mut self,
        now: Now,
        conn: ConnId,
        last_heard: tokio::time::Instant,
    ) {
        let Some(me) = self.conns.remove(&conn) else {
            return;
        };
        self.unfollow_all(conn);
        let _span = tracing::info_span!("closed", conn, user = %me.user).entered();
        let presence = self
            .users
            .get_mut(&me.user)
            .expect("signed-in users have presence");
        presence.devices.retain(|(_, c)| *c != conn);
        if let Some(room) = presence.room.clone() {
            let call = self
                .calls
                .get_mut(&room)
                .expect("a user's room is a live call");
            let answered = call.was_connected;
            let p = call
                .participant_mut(&me.user)
                .expect("a user's room lists them");
            if p.conn == Some(conn) {
                let grace = if answered {
                    self.cfg.participant_grace
                } else {
                    self.cfg.inviter_grace
                };
                let silent_for = now.mono.saturating_duration_since(last_heard);
                let deadline = last_heard.min(now.mono) + grace;
                info!(room = %room, grace_ms = grace.as_millis() as u64, silent_ms = silent_for.as_millis() as u64, "call device disconnected; waiting for it to come back");
                self.set_link(
                    &room,
                    &me.user,
                    Link::InGrace { until: deadline },
                    "connection closed",
                );
                if deadline <= now.mono {
                    // Found silent only after its grace was over: no more waiting.
                    self.grace_expired(now, room, me.user.clone());
                } else {
                    self.arm(
                        deadline,
                        Timer::Grace {
                            room,
                            user: me.user.clone(),
                        },
                    );
                }
            }
        }
        self.forget_if_idle(&me.user);
        self.sync_presence(&me.user, "connection closed");
        debug!("connection closed");
    }

    /// An account removed from the store (`tincan-server user delete`) keeps no open
    /// connection: each device is told why and closed, and the user leaves their call at
    /// once (they could not sign in again to resume it, so a grace period would only keep
    /// the others waiting). Invitations to them ring out as for anyone offline.
    pub(super) fn account_removed(&mut self, now: Now, user: UserId) {
        let conns = self.user_conns(&user);
        if conns.is_empty() {
            return;
        }
        let _span = tracing::info_span!("account removed", user = %user).entered();
        info!(
            devices = conns.len(),
            "account removed from the store; signing it out"
        );
        let last = Frame::Event(Box::new(Event::KickedOffline(KickedInfo {
            reason: "your account was removed from this server".into(),
        })));
        for conn in conns {
            self.out.push(Output::Close {
                conn,
                last: last.clone(),
                reason: "account removed",
            });
            self.handle_closed(now, conn, now.mono);
        }
        if let Some(room) = self.users.get(&user).and_then(|p| p.room.clone()) {
            self.leave(&room, &user, "account removed");
            self.maybe_end(now, &room, tincan_protocol::EndReason::HungUp);
        }
        self.forget_if_idle(&user);
    }

    pub(super) fn forget_if_idle(&mut self, user: &UserId) {
        if self.users.get(user).is_some_and(Presence::is_idle) {
            self.users.remove(user);
        }
    }
}
