//! Presence: whether a user is online, in a call or offline, for the people who asked.
//!
//! A connection names the users it wants to follow with `subscribePresence` (the app:
//! its contact list); the reply carries their status now, and `onPresenceChanged` tells
//! of each change after that, on that connection only, until it subscribes again or
//! closes. Nothing else is told: no device count, platform or time last seen.

use serde::{Deserialize, Serialize};

use crate::ids::UserId;

/// Most users one connection may follow. A `subscribePresence` naming more is refused
/// (`Args`). It bounds the hub's memory per connection and, with the 64 KiB frame
/// limit, keeps both the request and its reply inside one frame whatever the ids.
pub const MAX_PRESENCE_WATCH: usize = 500;

/// A user's presence, as others see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PresenceStatus {
    /// No device signed in and in no call (also: no such user).
    #[default]
    Offline,
    /// At least one device signed in, in no call.
    Online,
    /// A participant of a call (also while their device reconnects within the call's
    /// grace period): a call to them now would find them busy.
    InCall,
}

/// One user's presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPresence {
    /// Who.
    #[serde(rename = "userID")]
    pub user_id: UserId,
    /// Their status.
    pub status: PresenceStatus,
}

/// `subscribePresence`: follow these users' presence on this connection. Replaces the
/// connection's previous list; an empty list stops following anyone. Duplicates count
/// once. At most [`MAX_PRESENCE_WATCH`] ids.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SubscribePresenceParams {
    /// Whom to follow.
    #[serde(rename = "userIDList", default)]
    pub user_id_list: Vec<UserId>,
}

/// Reply to `subscribePresence`: each followed user's status now, in the order asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceReply {
    /// One entry per distinct user asked for.
    pub presence: Vec<UserPresence>,
}
