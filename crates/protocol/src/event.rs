//! Server → client: events (OpenIM's callbacks) and the two frame kinds.
//!
//! A response: `{"type":"response","requestID":"7","operationID":"op-1","errCode":0,"errMsg":"","data":{…}}`.
//! An event: `{"type":"event","event":"onReceiveNewInvitation","data":{…}}`.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{ErrCode, WireError};
use crate::ids::{RoomId, UserId};
use crate::json_text::JsonText;
use crate::model::{Invitation, OfflinePushInfo, ParticipantInfo};
use crate::presence::UserPresence;
use crate::request::RequestId;

/// The payload of every invitation callback (OpenIM's `SignalingInfo` /
/// `SignalAcceptReq` shape): the invitation and who acted.
///
/// `opUserID` (v2 name) and `userID` (v3 name) are both set to the operator: the
/// invitee who answered, the inviter who cancelled, the participant who hung up, or
/// — for `onInvitationTimeout` — the invitee who did not answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignalingInfo {
    /// The call, as the server knows it (roomID, inviter and platform filled in).
    pub invitation: Invitation,
    /// The operator (OpenIM v2 name).
    #[serde(rename = "opUserID")]
    pub op_user_id: UserId,
    /// The operator (OpenIM v3 name); same value as `opUserID`.
    #[serde(rename = "userID")]
    pub user_id: UserId,
    /// The operator's platform id.
    #[serde(rename = "opUserPlatformID")]
    pub op_user_platform_id: u8,
    /// The operator's profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<ParticipantInfo>,
    /// The inviter's push info, on invitation events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_push_info: Option<OfflinePushInfo>,
    /// When it happened, Unix ms (server clock).
    pub event_time: i64,
}

/// `onRoomParticipantConnected` / `onRoomParticipantDisconnected` for group rooms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomParticipantInfo {
    /// The call.
    pub invitation: Invitation,
    /// The group.
    #[serde(rename = "groupID")]
    pub group_id: String,
    /// Everyone in the room after the change.
    pub participant: Vec<ParticipantInfo>,
    /// Who connected or disconnected.
    #[serde(rename = "opUserID")]
    pub op_user_id: UserId,
    /// Same as `opUserID`.
    #[serde(rename = "userID")]
    pub user_id: UserId,
    /// Unix ms.
    pub event_time: i64,
}

/// `onReceiveCustomSignal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomSignalInfo {
    /// The room.
    #[serde(rename = "roomID")]
    pub room_id: RoomId,
    /// As sent (in its JSON form, see [`JsonText`]).
    pub custom_info: JsonText,
    /// The sender.
    #[serde(rename = "opUserID")]
    pub op_user_id: UserId,
    /// Same as `opUserID`.
    #[serde(rename = "userID")]
    pub user_id: UserId,
    /// Unix ms.
    pub event_time: i64,
}

/// `onReceiveMediaSignal`: one negotiation message from a participant of the room.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaSignalInfo {
    /// The room.
    #[serde(rename = "roomID")]
    pub room_id: RoomId,
    /// The sender.
    #[serde(rename = "fromUserID")]
    pub from_user_id: UserId,
    /// As sent.
    pub payload: Box<RawValue>,
}

impl PartialEq for MediaSignalInfo {
    fn eq(&self, o: &Self) -> bool {
        self.room_id == o.room_id
            && self.from_user_id == o.from_user_id
            && self.payload.get() == o.payload.get()
    }
}

/// `onKickedOffline`: this connection was replaced by a newer login of the same device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KickedInfo {
    /// Why, for a person.
    pub reason: String,
}

/// Every event a server sends, named as OpenIM's callbacks.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// `onReceiveNewInvitation`: this user is being called.
    ReceiveNewInvitation(SignalingInfo),
    /// `onInviteeAccepted`: an invitee answered (to the inviting device).
    InviteeAccepted(SignalingInfo),
    /// `onInviteeAcceptedByOtherDevice`: this user answered on another device.
    InviteeAcceptedByOtherDevice(SignalingInfo),
    /// `onInviteeRejected`: an invitee declined (to the inviting device).
    InviteeRejected(SignalingInfo),
    /// `onInviteeRejectedByOtherDevice`: this user declined on another device.
    InviteeRejectedByOtherDevice(SignalingInfo),
    /// `onInvitationCancelled`: the call that rings here was withdrawn or ended.
    InvitationCancelled(SignalingInfo),
    /// `onInvitationTimeout`: nobody answered in time (inviter: once per invitee).
    InvitationTimeout(SignalingInfo),
    /// `onHangUp`: another participant left.
    HangUp(SignalingInfo),
    /// `onRoomParticipantConnected`: someone joined the group room.
    RoomParticipantConnected(RoomParticipantInfo),
    /// `onRoomParticipantDisconnected`: someone left the group room.
    RoomParticipantDisconnected(RoomParticipantInfo),
    /// `onReceiveCustomSignal`
    ReceiveCustomSignal(CustomSignalInfo),
    /// `onReceiveMediaSignal` (Tincan)
    ReceiveMediaSignal(MediaSignalInfo),
    /// `onKickedOffline`
    KickedOffline(KickedInfo),
    /// `onPresenceChanged`: a user this connection follows (`subscribePresence`) went
    /// online, into a call or offline. Tincan's extension.
    PresenceChanged(UserPresence),
}

macro_rules! events {
    ($( $name:literal => $variant:ident ),* $(,)?) => {
        /// Every event name a server sends.
        pub const EVENTS: &[&str] = &[$($name),*];

        impl Event {
            /// The OpenIM callback name.
            pub fn name(&self) -> &'static str {
                match self { $( Event::$variant(_) => $name, )* }
            }

            fn data_json(&self) -> String {
                match self {
                    $( Event::$variant(d) => serde_json::to_string(d).expect("event serializes"), )*
                }
            }

            /// Parses an event from its name and data.
            pub fn from_parts(name: &str, data: &str) -> Result<Event, WireError> {
                match name {
                    $( $name => serde_json::from_str(data).map(Event::$variant)
                        .map_err(|e| WireError::new(ErrCode::Args, format!("{name}: {e}"))), )*
                    other => Err(WireError::new(ErrCode::UnknownMethod, format!("unknown event {other:?}"))),
                }
            }
        }
    };
}

events! {
    "onReceiveNewInvitation" => ReceiveNewInvitation,
    "onInviteeAccepted" => InviteeAccepted,
    "onInviteeAcceptedByOtherDevice" => InviteeAcceptedByOtherDevice,
    "onInviteeRejected" => InviteeRejected,
    "onInviteeRejectedByOtherDevice" => InviteeRejectedByOtherDevice,
    "onInvitationCancelled" => InvitationCancelled,
    "onInvitationTimeout" => InvitationTimeout,
    "onHangUp" => HangUp,
    "onRoomParticipantConnected" => RoomParticipantConnected,
    "onRoomParticipantDisconnected" => RoomParticipantDisconnected,
    "onReceiveCustomSignal" => ReceiveCustomSignal,
    "onReceiveMediaSignal" => ReceiveMediaSignal,
    "onKickedOffline" => KickedOffline,
    "onPresenceChanged" => PresenceChanged,
}

impl Event {
    /// The whole event frame as JSON text: the data serialized, then copied once into a
    /// string of the exact size (cheaper than `format!`, and than checking a buffer
    /// written by hand for UTF-8; a relayed signal's payload is kilobytes).
    pub fn to_frame_json(&self) -> String {
        const HEAD: &str = "{\"type\":\"event\",\"event\":\"";
        const MID: &str = "\",\"data\":";
        let data = self.data_json();
        let name = self.name();
        let mut out = String::with_capacity(HEAD.len() + name.len() + MID.len() + data.len() + 1);
        out.push_str(HEAD);
        out.push_str(name);
        out.push_str(MID);
        out.push_str(&data);
        out.push('}');
        out
    }
}

/// Builds a response frame's JSON text.
pub fn response_json<T: Serialize + ?Sized>(
    request_id: Option<&RequestId>,
    operation_id: &str,
    result: Result<&T, &WireError>,
) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Frame<'a, T: ?Sized> {
        #[serde(rename = "type")]
        ty: &'static str,
        #[serde(rename = "requestID")]
        request_id: Option<&'a RequestId>,
        #[serde(rename = "operationID")]
        operation_id: &'a str,
        err_code: u32,
        err_msg: &'a str,
        data: Option<&'a T>,
    }
    let (err_code, err_msg, data) = match result {
        Ok(data) => (0, "", Some(data)),
        Err(e) => (e.code.code(), e.message.as_str(), None),
    };
    serde_json::to_string(&Frame {
        ty: "response",
        request_id,
        operation_id,
        err_code,
        err_msg,
        data,
    })
    .expect("response serializes")
}

/// A frame from the server, as a client reads it.
// Frames are parsed and taken apart at once; boxing the event would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum ServerFrame {
    /// The answer to a request.
    Response {
        /// As sent (absent when the request's id was unreadable).
        request_id: Option<RequestId>,
        /// As sent.
        operation_id: String,
        /// `Ok(data)` for errCode 0.
        result: Result<Box<RawValue>, WireError>,
    },
    /// A callback.
    Event(Event),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawServerFrame<'a> {
    #[serde(rename = "type")]
    ty: &'a str,
    #[serde(rename = "requestID", default)]
    request_id: Option<RequestId>,
    #[serde(rename = "operationID", default)]
    operation_id: String,
    #[serde(default)]
    err_code: u32,
    #[serde(default)]
    err_msg: String,
    #[serde(default)]
    event: Option<&'a str>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

impl ServerFrame {
    /// Parses a frame a server sent.
    pub fn parse(text: &str) -> Result<ServerFrame, WireError> {
        let raw: RawServerFrame<'_> = serde_json::from_str(text).map_err(|e| {
            WireError::new(ErrCode::MalformedFrame, format!("bad server frame: {e}"))
        })?;
        let data = raw.data.map(RawValue::get).unwrap_or("null");
        match raw.ty {
            "response" => {
                let result = if raw.err_code == 0 {
                    Ok(RawValue::from_string(data.to_owned()).expect("valid JSON stays valid"))
                } else {
                    let code = ErrCode::from_code(raw.err_code).unwrap_or(ErrCode::Internal);
                    Err(WireError::new(code, raw.err_msg))
                };
                Ok(ServerFrame::Response {
                    request_id: raw.request_id,
                    operation_id: raw.operation_id,
                    result,
                })
            }
            "event" => {
                let name = raw.event.ok_or_else(|| {
                    WireError::new(ErrCode::MalformedFrame, "event frame without \"event\"")
                })?;
                Event::from_parts(name, data).map(ServerFrame::Event)
            }
            other => Err(WireError::new(
                ErrCode::MalformedFrame,
                format!("unknown frame type {other:?}"),
            )),
        }
    }
}
