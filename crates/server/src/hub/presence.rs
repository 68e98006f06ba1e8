//! Presence: who follows whom (`subscribePresence`), and the one choke point through
//! which a user's online / in-call / offline status changes and is told.
//!
//! The status is derived from the hub's own state (devices signed in, the room a user is
//! in); [`Hub::sync_presence`] compares it with the status last told and, when it
//! differs, logs `old -> new (reason)` and sends `onPresenceChanged` to the connections
//! that follow the user. Call it after any change to a user's devices or room.
//!
//! Who is told (docs/decisions.md): only connections that asked, for at most
//! [`MAX_PRESENCE_WATCH`] users each — not every signed-in user, which on a big server
//! would make each sign-in cost one frame per signed-in user.

use std::collections::{BTreeSet, HashMap};

use tincan_protocol::{
    Event, PresenceReply, PresenceStatus, SubscribePresenceParams, UserId, UserPresence,
    MAX_PRESENCE_WATCH,
};
use tracing::info;

use super::{args, raw, ConnId, Handled, Hub};

/// The follow tables and the statuses last told.
#[derive(Debug, Default)]
pub(super) struct Watch {
    /// The connections following each user.
    followers: HashMap<UserId, BTreeSet<ConnId>>,
    /// The users each connection follows (for replacing and dropping its list).
    following: HashMap<ConnId, Vec<UserId>>,
    /// The status last told for each user who is not offline. Kept apart from the
    /// user's `Presence`, which is dropped when they go idle, so that the change to
    /// offline is still seen.
    shown: HashMap<UserId, PresenceStatus>,
}

impl Watch {
    /// Stops `conn` following anyone.
    fn unfollow_all(&mut self, conn: ConnId) {
        for user in self.following.remove(&conn).unwrap_or_default() {
            if let Some(set) = self.followers.get_mut(&user) {
                set.remove(&conn);
                if set.is_empty() {
                    self.followers.remove(&user);
                }
            }
        }
    }

    /// Connections following someone (for tests and the property test's invariants).
    #[cfg(test)]
    pub(super) fn follower_count(&self, user: &UserId) -> usize {
        self.followers.get(user).map_or(0, BTreeSet::len)
    }
}

impl Hub {
    /// A user's status as derived from the hub's state.
    pub(super) fn presence_of(&self, user: &UserId) -> PresenceStatus {
        match self.users.get(user) {
            Some(p) if p.room.is_some() => PresenceStatus::InCall,
            Some(p) if !p.devices.is_empty() => PresenceStatus::Online,
            _ => PresenceStatus::Offline,
        }
    }

    /// The choke point for presence: tells `user`'s followers when their status is no
    /// longer the one last told.
    pub(super) fn sync_presence(&mut self, user: &UserId, reason: &str) {
        let new = self.presence_of(user);
        let old = self.watch.shown.get(user).copied().unwrap_or_default();
        if old == new {
            return;
        }
        if new == PresenceStatus::Offline {
            self.watch.shown.remove(user);
        } else {
            self.watch.shown.insert(user.clone(), new);
        }
        let to: Vec<ConnId> = self
            .watch
            .followers
            .get(user)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        info!(user = %user, ?old, ?new, reason, followers = to.len(), "presence");
        self.send(
            to,
            Event::PresenceChanged(UserPresence {
                user_id: user.clone(),
                status: new,
            }),
        );
    }

    /// `subscribePresence`: replaces the list `conn` follows and answers each user's
    /// status now. Following needs no relation to the user: every signed-in user may
    /// list every user (`getContacts`), and a status says nothing more than that.
    pub(super) fn subscribe_presence(
        &mut self,
        conn: ConnId,
        p: SubscribePresenceParams,
    ) -> Handled {
        // The parser bounds the list; checked again so that a caller inside the server
        // cannot break the bound either.
        if p.user_id_list.len() > MAX_PRESENCE_WATCH {
            return Err(args(format!(
                "data.userIDList has {} users; one connection may follow at most {MAX_PRESENCE_WATCH}",
                p.user_id_list.len()
            )));
        }
        self.watch.unfollow_all(conn);
        let mut seen = BTreeSet::new();
        let mut list = Vec::with_capacity(p.user_id_list.len());
        let mut presence = Vec::with_capacity(p.user_id_list.len());
        for user in p.user_id_list {
            if !seen.insert(user.clone()) {
                continue;
            }
            self.watch
                .followers
                .entry(user.clone())
                .or_default()
                .insert(conn);
            presence.push(UserPresence {
                status: self.presence_of(&user),
                user_id: user.clone(),
            });
            list.push(user);
        }
        if !list.is_empty() {
            self.watch.following.insert(conn, list);
        }
        raw(&PresenceReply { presence })
    }

    /// Every status last told is the status the hub's state gives (so no change went
    /// around [`Hub::sync_presence`]), and the follow tables agree both ways.
    #[cfg(test)]
    pub(super) fn check_presence(&self) -> Result<(), String> {
        for user in self.users.keys().chain(self.watch.shown.keys()) {
            let told = self.watch.shown.get(user).copied().unwrap_or_default();
            if told != self.presence_of(user) {
                return Err(format!(
                    "{user} was last told as {told:?} but is {:?}",
                    self.presence_of(user)
                ));
            }
        }
        for (conn, users) in &self.watch.following {
            if !self.conns.contains_key(conn) {
                return Err(format!("closed conn {conn} still follows {users:?}"));
            }
            for u in users {
                if !self
                    .watch
                    .followers
                    .get(u)
                    .is_some_and(|s| s.contains(conn))
                {
                    return Err(format!(
                        "conn {conn} follows {u} but is not among its followers"
                    ));
                }
            }
        }
        Ok(())
    }

    /// A closed connection follows nobody.
    pub(super) fn unfollow_all(&mut self, conn: ConnId) {
        self.watch.unfollow_all(conn);
    }
}
