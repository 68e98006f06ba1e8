//! The shapes shared by requests, replies and events: OpenIM's `RtcInvite` and friends.
//!
//! Field names are OpenIM's camelCase exactly (`inviteeUserIDList`, `opUserPlatformID`).
//! Optional fields are omitted when empty, as OpenIM's protobuf JSON does, and missing
//! keys are tolerated on input.

use serde::{Deserialize, Serialize};

use crate::ids::{GroupId, RoomId, UserId};

/// `sessionType` for a one-to-one call.
pub const SESSION_SINGLE: u8 = 1;
/// `sessionType` for a group call (OpenIM v2's `GroupChatType`).
pub const SESSION_GROUP: u8 = 2;
/// `sessionType` for a group call (OpenIM v3's `ReadGroupChatType`); treated like 2.
pub const SESSION_SUPER_GROUP: u8 = 3;

/// Whether a session type is a group call.
pub fn is_group_session(session_type: u8) -> bool {
    matches!(session_type, SESSION_GROUP | SESSION_SUPER_GROUP)
}

/// Audio-only or video call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaType {
    /// Voice only.
    Audio,
    /// Voice and camera.
    #[default]
    Video,
}

impl MediaType {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Audio => "audio",
            MediaType::Video => "video",
        }
    }
}

/// OpenIM's `RtcInvite` / `InvitationInfo`: what a call is about.
///
/// On input, `inviterUserID`, `roomID` and `platformID` may be empty or zero: the server
/// fills them from the login and generates the room. On output every field the server
/// knows is set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invitation {
    /// Who rings. Must be the signed-in user when given.
    #[serde(rename = "inviterUserID", default)]
    pub inviter_user_id: String,
    /// Who is rung.
    #[serde(rename = "inviteeUserIDList", default)]
    pub invitee_user_id_list: Vec<UserId>,
    /// The group of a group call; empty for one-to-one.
    #[serde(rename = "groupID", default)]
    pub group_id: String,
    /// The call's room; empty on invite means "make a new one".
    #[serde(rename = "roomID", default)]
    pub room_id: String,
    /// Seconds to ring before the invitation times out; 0 means the server's default.
    #[serde(default)]
    pub timeout: u32,
    /// `"audio"` or `"video"`.
    #[serde(default)]
    pub media_type: MediaType,
    /// 1 one-to-one; 2 or 3 group.
    #[serde(default)]
    pub session_type: u8,
    /// The inviter's platform; set by the server from the inviter's login.
    #[serde(rename = "platformID", default)]
    pub platform_id: u8,
    /// Free data the inviter attaches; passed through untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<String>,
    /// When the call was placed, in Unix milliseconds (server clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiate_time: Option<i64>,
    /// Invitees that were already in a call and were not rung.
    #[serde(
        rename = "busyLineUserIDList",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub busy_line_user_id_list: Vec<UserId>,
}

/// OpenIM's `OfflinePushInfo`; stored and passed through (Tincan has no push service).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OfflinePushInfo {
    /// Notification title.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    /// Notification body.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub desc: String,
    /// Extra data.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ex: String,
    /// iOS sound name.
    #[serde(
        rename = "iOSPushSound",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub ios_push_sound: String,
    /// iOS badge.
    #[serde(rename = "iOSBadgeCount", default, skip_serializing_if = "is_false")]
    pub ios_badge_count: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A user as others see them (OpenIM `PublicUserInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicUserInfo {
    /// The user's id.
    #[serde(rename = "userID")]
    pub user_id: UserId,
    /// Display name.
    #[serde(default)]
    pub nickname: String,
    /// Avatar URL.
    #[serde(rename = "faceURL", default, skip_serializing_if = "String::is_empty")]
    pub face_url: String,
}

/// A group, as its members see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupInfo {
    /// The group's id.
    #[serde(rename = "groupID")]
    pub group_id: GroupId,
    /// Display name.
    #[serde(default)]
    pub group_name: String,
    /// Member user ids.
    #[serde(
        rename = "memberUserIDList",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub member_user_id_list: Vec<UserId>,
}

/// OpenIM's `ParticipantMetaData`: who acted, with their group when the call is a group's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantInfo {
    /// The user.
    pub user_info: PublicUserInfo,
    /// The group of a group call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_info: Option<GroupInfo>,
}

/// One STUN or TURN server, in the browser's `RTCIceServer` shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:` / `turn:` URLs.
    pub urls: Vec<String>,
    /// TURN user name (time-limited: `<expiry>:<userID>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password for `username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The room a signed-in device is in, as the server knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CurrentCall {
    /// The call.
    pub invitation: Invitation,
    /// Its room.
    #[serde(rename = "roomID")]
    pub room_id: RoomId,
    /// A fresh room token for this device.
    pub token: String,
    /// Where media is negotiated.
    #[serde(rename = "liveURL")]
    pub live_url: String,
    /// STUN/TURN servers.
    pub ice_servers: Vec<IceServer>,
    /// Users in the room now (this device's user included).
    pub participant: Vec<ParticipantInfo>,
}

/// What became of one invitee of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum InviteeOutcome {
    /// Still ringing (only seen while the call lasts).
    Ringing,
    /// Answered.
    Accepted,
    /// Declined.
    Rejected,
    /// Did not answer in time.
    TimedOut,
    /// The inviter cancelled, or the call ended while ringing.
    Cancelled,
    /// Already in another call; not rung.
    Busy,
    /// Joined the call by room id (`signalingGetTokenByRoomID`) while it rang.
    AnsweredElsewhere,
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EndReason {
    /// A participant hung up and fewer than two remained.
    HungUp,
    /// The inviter cancelled before anyone answered.
    Cancelled,
    /// Every invitee declined.
    Rejected,
    /// Nobody answered in time.
    Timeout,
    /// Every invitee was busy.
    Busy,
    /// A participant's device dropped and did not come back within the grace period.
    Disconnected,
    /// The server shut down.
    ServerShutdown,
    /// The server stopped without ending the call (a crash, a kill, a power cut); the
    /// record was closed when it started again. Its end time is the last time the
    /// server saw the call going.
    ServerRestart,
}

/// One invitee's line in a call record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InviteeRecord {
    /// The invitee.
    #[serde(rename = "userID")]
    pub user_id: UserId,
    /// What became of the invitation.
    pub outcome: InviteeOutcome,
    /// When they answered (Unix ms), if they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_time: Option<i64>,
}

/// A finished call, as kept in the call history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    /// The room.
    #[serde(rename = "roomID")]
    pub room_id: RoomId,
    /// Who placed the call.
    #[serde(rename = "inviterUserID")]
    pub inviter_user_id: UserId,
    /// Group of a group call, else empty.
    #[serde(rename = "groupID", default)]
    pub group_id: String,
    /// Audio or video.
    pub media_type: MediaType,
    /// 1 one-to-one; 2 or 3 group.
    pub session_type: u8,
    /// Per-invitee outcome.
    pub invitees: Vec<InviteeRecord>,
    /// Everyone who was in the call at some point (the inviter, invitees who answered,
    /// members who joined a group call by room id), in joining order.
    #[serde(rename = "participantUserIDList", default)]
    pub participant_user_id_list: Vec<UserId>,
    /// When the call was placed (Unix ms).
    pub initiate_time: i64,
    /// When the first invitee answered (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_time: Option<i64>,
    /// When the call ended (Unix ms).
    pub end_time: i64,
    /// Why it ended.
    pub end_reason: EndReason,
}
