//! Client → server: the request envelope, one params type per method, and the reply
//! data each method returns on success.
//!
//! A request is one JSON text frame:
//! `{"requestID": "7", "operationID": "op-1", "method": "signalingInvite", "data": {…}}`.
//! `requestID` (string or number) is echoed in the response; `operationID` is the
//! caller's trace id and appears in every server log line the request causes.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{ErrCode, WireError};
use crate::event::SignalingInfo;
use crate::ids::{DeviceId, GroupId, PlatformId, RoomId, UserId};
use crate::json_text::JsonText;
use crate::model::{
    CallRecord, CurrentCall, GroupInfo, IceServer, Invitation, OfflinePushInfo, ParticipantInfo,
    PublicUserInfo,
};
use crate::one_pass::{Data, Envelope};
use crate::presence::SubscribePresenceParams;

/// A request's correlation id, echoed back as given (string or number).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// A numeric id.
    Num(u64),
    /// A string id.
    Str(String),
}

/// `login`: the first request on every connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginParams {
    /// The token from `POST /api/login` (or `/api/register`).
    pub token: String,
    /// This device's id; keep it across restarts so a reconnect resumes the call.
    #[serde(rename = "deviceID")]
    pub device_id: DeviceId,
    /// OpenIM platform id of this device (Linux desktop is 7).
    #[serde(rename = "platformID")]
    pub platform_id: PlatformId,
    /// The protocol version the client speaks ([`crate::PROTOCOL_VERSION`]).
    #[serde(default = "default_version")]
    pub protocol_version: u32,
}

fn default_version() -> u32 {
    crate::PROTOCOL_VERSION
}

/// `signalingInvite` / `signalingInviteInGroup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InviteParams {
    /// The call.
    pub invitation: Invitation,
    /// Passed through to invitees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_push_info: Option<OfflinePushInfo>,
}

/// How a method's params are read from `data`.
trait FromData: Sized {
    fn from_data(data: Option<&RawValue>) -> Result<Self, WireError>;
}

/// The params read as they are declared (serde), with the bad field's path in errors.
macro_rules! from_data_as_declared {
    ($($params:ty),* $(,)?) => {
        $(impl FromData for $params {
            fn from_data(data: Option<&RawValue>) -> Result<Self, WireError> {
                parse_params::<$params>(data)
            }
        })*
    };
}

from_data_as_declared!(
    LoginParams,
    ActionParams,
    GroupParams,
    RoomParams,
    CustomSignalParams,
    MediaSignalParams,
    HistoryParams,
    ContactsParams,
    SubscribePresenceParams,
);

impl FromData for InviteParams {
    /// Reads `data` in either form a client sends: `{invitation, offlinePushInfo}` (OpenIM's
    /// `RtcInviteOptions`, what the SDKs send), or the invitation itself, as the seed's
    /// `openIM.signalingInvite(operationID, options)` example passes it (`options` is the
    /// `RtcInvite`). A top-level `invitation` field decides: with it, the wrapped form.
    fn from_data(data: Option<&RawValue>) -> Result<InviteParams, WireError> {
        /// Only whether there is an `invitation`; everything else is skipped unread.
        #[derive(Deserialize)]
        struct Form {
            invitation: Option<serde::de::IgnoredAny>,
        }
        let bare = data.is_some_and(|d| {
            serde_json::from_str::<Form>(d.get()).is_ok_and(|f| f.invitation.is_none())
        });
        if bare {
            Ok(InviteParams {
                invitation: parse_params::<Invitation>(data)?,
                offline_push_info: None,
            })
        } else {
            parse_params::<InviteParams>(data)
        }
    }
}

/// `signalingAccept`, `signalingReject`, `signalingCancel`, `signalingHungUp`
/// (OpenIM's `RtcActionParams`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionParams {
    /// Must be the signed-in user when given.
    #[serde(rename = "opUserID", default)]
    pub op_user_id: String,
    /// The invitation as received; only `roomID` is needed, and it must be set.
    pub invitation: Invitation,
}

/// `signalingGetRoomByGroupID`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupParams {
    /// The group.
    #[serde(rename = "groupID")]
    pub group_id: GroupId,
}

/// `signalingGetTokenByRoomID`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomParams {
    /// The room.
    #[serde(rename = "roomID")]
    pub room_id: RoomId,
}

/// `signalingSendCustomSignal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomSignalParams {
    /// The room whose other participants receive it.
    #[serde(rename = "roomID")]
    pub room_id: RoomId,
    /// Free text (often JSON) passed through; kept in its JSON form so that the server
    /// relays it without decoding and re-encoding it.
    pub custom_info: JsonText,
}

/// `signalingSendMediaSignal`: one media-negotiation message (SDP or ICE) for one
/// participant of the same room. Tincan's extension; the room token proves membership.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaSignalParams {
    /// The room.
    #[serde(rename = "roomID")]
    pub room_id: RoomId,
    /// The room token from invite, accept or getTokenByRoomID.
    pub token: String,
    /// The participant to deliver to.
    #[serde(rename = "toUserID")]
    pub to_user_id: UserId,
    /// Opaque to the server: `{"type":"offer","sdp":…}`, `{"type":"candidate",…}`, ….
    pub payload: Box<RawValue>,
}

impl PartialEq for MediaSignalParams {
    fn eq(&self, o: &Self) -> bool {
        self.room_id == o.room_id
            && self.token == o.token
            && self.to_user_id == o.to_user_id
            && self.payload.get() == o.payload.get()
    }
}

/// `getCallHistory`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryParams {
    /// At most this many records, newest first (default 50, at most 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Only calls that ended before this Unix ms time (for paging).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_time: Option<i64>,
}

/// Most users one `getContacts` page holds, and the page size when none is asked for.
/// A page is also cut short before its users pass [`CONTACTS_PAGE_BYTES`].
pub const CONTACTS_PAGE_MAX: u32 = 500;
/// Users per `getContacts` page when the request gives no `count`.
pub const CONTACTS_PAGE_DEFAULT: u32 = 200;
/// The users of one `getContacts` page take at most this many bytes of JSON, so a reply
/// stays well inside the 64 KiB frame every client accepts whatever the names' lengths.
pub const CONTACTS_PAGE_BYTES: usize = 48 * 1024;

/// `getContacts`: one page of the other users (sorted by userID) and, on the first
/// page, this user's groups. Without params: the first page of the default size.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactsParams {
    /// The `nextCursor` of the previous page; absent for the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<UserId>,
    /// Users per page: 1 to [`CONTACTS_PAGE_MAX`] (larger asks get the maximum);
    /// [`CONTACTS_PAGE_DEFAULT`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

/// A parsed request. Serializes as its `data` (unit requests as `null`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Request {
    /// `login`
    Login(LoginParams),
    /// `signalingInvite`
    Invite(InviteParams),
    /// `signalingInviteInGroup`
    InviteInGroup(InviteParams),
    /// `signalingAccept`
    Accept(ActionParams),
    /// `signalingReject`
    Reject(ActionParams),
    /// `signalingCancel`
    Cancel(ActionParams),
    /// `signalingHungUp`
    HungUp(ActionParams),
    /// `signalingGetRoomByGroupID`
    GetRoomByGroupId(GroupParams),
    /// `signalingGetTokenByRoomID`
    GetTokenByRoomId(RoomParams),
    /// `getSignalingInvitationInfoStartApp`
    GetInvitationInfoStartApp,
    /// `signalingSendCustomSignal`
    SendCustomSignal(CustomSignalParams),
    /// `signalingSendMediaSignal`
    SendMediaSignal(MediaSignalParams),
    /// `getCallHistory`
    GetCallHistory(HistoryParams),
    /// `getContacts`
    GetContacts(ContactsParams),
    /// `subscribePresence`
    SubscribePresence(SubscribePresenceParams),
    /// `ping`
    Ping,
}

macro_rules! methods {
    ($( $name:literal => $variant:ident $( ( $params:ty ) )? ),* $(,)?) => {
        /// Every method name the server accepts.
        pub const METHODS: &[&str] = &[$($name),*];

        impl Request {
            /// The wire name of this request's method.
            pub fn method(&self) -> &'static str {
                match self {
                    $( Request::$variant $( (methods!(@ignore $params)) )? => $name, )*
                }
            }

            fn parse_data(method: &str, data: Option<&RawValue>) -> Result<Request, WireError> {
                match method {
                    $( $name => Ok(methods!(@build $variant data $( $params )?)), )*
                    other => Err(WireError::new(
                        ErrCode::UnknownMethod,
                        format!("unknown method {other:?}; known methods: {}", METHODS.join(", ")),
                    )),
                }
            }

        }
    };
    (@ignore $t:ty) => { _ };
    (@build $variant:ident $data:ident $params:ty) => { Request::$variant(<$params as FromData>::from_data($data)?) };
    (@build $variant:ident $data:ident) => { Request::$variant };
}

methods! {
    "login" => Login(LoginParams),
    "signalingInvite" => Invite(InviteParams),
    "signalingInviteInGroup" => InviteInGroup(InviteParams),
    "signalingAccept" => Accept(ActionParams),
    "signalingReject" => Reject(ActionParams),
    "signalingCancel" => Cancel(ActionParams),
    "signalingHungUp" => HungUp(ActionParams),
    "signalingGetRoomByGroupID" => GetRoomByGroupId(GroupParams),
    "signalingGetTokenByRoomID" => GetTokenByRoomId(RoomParams),
    "getSignalingInvitationInfoStartApp" => GetInvitationInfoStartApp,
    "signalingSendCustomSignal" => SendCustomSignal(CustomSignalParams),
    "signalingSendMediaSignal" => SendMediaSignal(MediaSignalParams),
    "getCallHistory" => GetCallHistory(HistoryParams),
    "getContacts" => GetContacts(ContactsParams),
    "subscribePresence" => SubscribePresence(SubscribePresenceParams),
    "ping" => Ping,
}

impl Request {
    /// Serializes `data` for this request (the inverse of parsing).
    pub fn data_json(&self) -> String {
        match serde_json::to_string(self).expect("params serialize") {
            s if s == "null" => String::from("{}"),
            s => s,
        }
    }
}

fn parse_params<T: serde::de::DeserializeOwned>(data: Option<&RawValue>) -> Result<T, WireError> {
    let text = data.map(RawValue::get).unwrap_or("{}");
    // serde would also fill a struct from an array, by position; a request whose fields
    // are not named is refused rather than guessed at.
    if !text.trim_start().starts_with('{') {
        return Err(WireError::new(
            ErrCode::Args,
            "data must be a JSON object with named fields",
        ));
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = if path == "." {
            format!("data: {inner}")
        } else {
            format!("data.{path}: {inner}")
        };
        WireError::new(ErrCode::Args, msg)
    })
}

/// A parsed request frame.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientFrame {
    /// Echoed in the response.
    pub request_id: RequestId,
    /// The caller's trace id (may be empty).
    pub operation_id: String,
    /// The request.
    pub request: Request,
    /// `"noReplyOnSuccess": true`: answer only when the request fails (signals a client
    /// sends and forgets; docs/protocol.md §1). Off by default, as in OpenIM.
    pub no_reply_on_success: bool,
}

/// The methods `noReplyOnSuccess` may be given with: signals relayed to others, whose
/// success the sender learns nothing from.
pub const QUIET_METHODS: [&str; 2] = ["signalingSendCustomSignal", "signalingSendMediaSignal"];

/// A frame that could not be turned into a request, with what is needed to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    /// The request id, when the frame carried a readable one.
    pub request_id: Option<RequestId>,
    /// The operation id, when readable.
    pub operation_id: String,
    /// What was wrong.
    pub error: WireError,
}

#[derive(Deserialize)]
struct RawFrame<'a> {
    #[serde(rename = "requestID")]
    request_id: Option<RequestId>,
    #[serde(rename = "operationID", default)]
    operation_id: Option<String>,
    method: Option<String>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(rename = "noReplyOnSuccess", default)]
    no_reply_on_success: bool,
}

impl ClientFrame {
    /// Parses one text frame. Every failure carries an error code and, when the frame
    /// had a readable `requestID`, that id, so that the server can answer it.
    pub fn parse(text: &str) -> Result<ClientFrame, FrameError> {
        // A relayed signal in one pass when it can be (`one_pass.rs`); every other frame,
        // and every frame with something wrong, the general way.
        Self::parse_from(text, crate::one_pass::read(text))
    }

    /// The general way only (tests compare it with the one-pass reader).
    #[cfg(test)]
    pub(crate) fn parse_general(text: &str) -> Result<ClientFrame, FrameError> {
        Self::parse_from(text, None)
    }

    fn parse_from(text: &str, read: Option<Envelope<'_>>) -> Result<ClientFrame, FrameError> {
        let raw = match read {
            Some(envelope) => envelope,
            None => match serde_json::from_str::<RawFrame<'_>>(text) {
                Ok(raw) => Envelope {
                    request_id: raw.request_id,
                    operation_id: raw.operation_id,
                    method: raw.method,
                    data: Data::Raw(raw.data),
                    no_reply_on_success: raw.no_reply_on_success,
                },
                Err(e) => return Err(envelope_error(text, e)),
            },
        };
        let operation_id = raw.operation_id.unwrap_or_default();
        if let Err(why) = crate::limits::check_envelope(raw.request_id.as_ref(), &operation_id) {
            // Neither id is echoed when one of them is refused: they may be what is wrong.
            let request_id = match &raw.request_id {
                Some(RequestId::Str(s)) if s.len() > crate::limits::MAX_REQUEST_ID => None,
                Some(RequestId::Str(s)) if s.chars().any(char::is_control) => None,
                other => other.clone(),
            };
            return Err(FrameError {
                request_id,
                operation_id: String::new(),
                error: WireError::new(ErrCode::MalformedFrame, why),
            });
        }
        let fail = |request_id: Option<RequestId>, error| FrameError {
            request_id,
            operation_id: operation_id.clone(),
            error,
        };
        let Some(request_id) = raw.request_id else {
            return Err(fail(
                None,
                WireError::new(ErrCode::MalformedFrame, "frame has no \"requestID\""),
            ));
        };
        let Some(method) = raw.method else {
            return Err(fail(
                Some(request_id),
                WireError::new(ErrCode::MalformedFrame, "frame has no \"method\""),
            ));
        };
        if raw.no_reply_on_success && !QUIET_METHODS.contains(&method.as_str()) {
            return Err(fail(
                Some(request_id),
                WireError::new(
                    ErrCode::Args,
                    format!(
                        "noReplyOnSuccess is for {} only; {method} is always answered",
                        QUIET_METHODS.join(" and ")
                    ),
                ),
            ));
        }
        let data = match raw.data {
            Data::Read(request) => Ok(request),
            Data::Raw(data) => Request::parse_data(&method, data),
        };
        match data.and_then(|request| {
            request
                .check_bounds()
                .map_err(|why| WireError::new(ErrCode::Args, why))?;
            Ok(request)
        }) {
            Ok(request) => Ok(ClientFrame {
                request_id,
                operation_id,
                request,
                no_reply_on_success: raw.no_reply_on_success,
            }),
            Err(error) => Err(fail(Some(request_id), error)),
        }
    }

    /// Serializes the frame (clients use this; the server only parses).
    pub fn to_json(&self) -> String {
        format!(
            "{{\"requestID\":{},\"operationID\":{},\"method\":\"{}\",{}\"data\":{}}}",
            serde_json::to_string(&self.request_id).expect("id serializes"),
            serde_json::to_string(&self.operation_id).expect("string serializes"),
            self.request.method(),
            if self.no_reply_on_success {
                "\"noReplyOnSuccess\":true,"
            } else {
                ""
            },
            self.request.data_json()
        )
    }
}

/// Explains a frame whose envelope did not parse, keeping its ids when readable.
fn envelope_error(text: &str, e: serde_json::Error) -> FrameError {
    let (request_id, operation_id) = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => (
            map.get("requestID")
                .and_then(|v| serde_json::from_value(v.clone()).ok()),
            map.get("operationID")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned(),
        ),
        _ => (None, String::new()),
    };
    let (request_id, operation_id) =
        match crate::limits::check_envelope(request_id.as_ref(), &operation_id) {
            Ok(()) => (request_id, operation_id),
            Err(_) => (None, String::new()),
        };
    let message = if e.is_syntax() || e.is_eof() {
        format!("frame is not valid JSON: {e}")
    } else if !text.trim_start().starts_with('{') {
        "frame must be a JSON object with requestID, operationID, method and data".to_owned()
    } else {
        format!("frame envelope is wrong: {e} (requestID is a string or number, operationID and method are strings)")
    };
    FrameError {
        request_id,
        operation_id,
        error: WireError::new(ErrCode::MalformedFrame, message),
    }
}

/// Reply to `login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginReply {
    /// Who the token says this is.
    #[serde(rename = "userID")]
    pub user_id: UserId,
    /// Echo of the device id.
    #[serde(rename = "deviceID")]
    pub device_id: DeviceId,
    /// The server's protocol version.
    pub protocol_version: u32,
    /// Server clock, Unix ms.
    pub server_time: i64,
    /// The call this device was in, when it reconnected within the grace period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_call: Option<CurrentCall>,
    /// Invitations ringing for this user now (also sent as `onReceiveNewInvitation`).
    #[serde(default)]
    pub pending_invitations: Vec<SignalingInfo>,
}

/// Reply to `signalingInvite` / `signalingInviteInGroup` (OpenIM's "AV service
/// connection config").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InviteReply {
    /// The call's room (generated when the request left it empty).
    #[serde(rename = "roomID")]
    pub room_id: RoomId,
    /// This user's room token.
    pub token: String,
    /// Where media is negotiated for the room.
    #[serde(rename = "liveURL")]
    pub live_url: String,
    /// Invitees already in a call, not rung.
    #[serde(rename = "busyLineUserIDList")]
    pub busy_line_user_id_list: Vec<UserId>,
    /// STUN/TURN servers for the call.
    pub ice_servers: Vec<IceServer>,
}

/// Reply to `signalingAccept` and `signalingGetTokenByRoomID`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceptReply {
    /// The room.
    #[serde(rename = "roomID")]
    pub room_id: RoomId,
    /// This user's room token.
    pub token: String,
    /// Where media is negotiated for the room.
    #[serde(rename = "liveURL")]
    pub live_url: String,
    /// STUN/TURN servers for the call.
    pub ice_servers: Vec<IceServer>,
}

/// Reply to `signalingGetRoomByGroupID`. Empty `roomID` when the group has no call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomByGroupReply {
    /// The group's call, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitation: Option<Invitation>,
    /// Who is in it.
    #[serde(default)]
    pub participant: Vec<ParticipantInfo>,
    /// Its room; empty when there is no call.
    #[serde(rename = "roomID", default)]
    pub room_id: String,
}

/// Reply to `getSignalingInvitationInfoStartApp`: the newest invitation still ringing
/// for this user, or none.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartAppReply {
    /// The invitation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitation: Option<Invitation>,
    /// Its push info.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_push_info: Option<OfflinePushInfo>,
}

/// Reply to `getCallHistory`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryReply {
    /// Calls the user placed or was invited to, newest first.
    pub records: Vec<CallRecord>,
}

/// Reply to `getContacts`: one page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactsReply {
    /// Other users on this server, sorted by userID: one page of them.
    pub users: Vec<PublicUserInfo>,
    /// Groups the user is a member of, with their members: on the first page only.
    pub groups: Vec<GroupInfo>,
    /// Whether more users follow; ask again with `after: nextCursor`.
    #[serde(default)]
    pub has_more: bool,
    /// Where the next page starts (present when `hasMore`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<UserId>,
}

/// Reply to `ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PongReply {
    /// Server clock, Unix ms.
    pub server_time: i64,
}

/// What `POST /api/register` and `POST /api/login` return in `data`: a login token and
/// whom it is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    /// The signed-in user.
    #[serde(rename = "userID")]
    pub user_id: UserId,
    /// The token for the WebSocket `login` request.
    pub token: String,
    /// When the token expires, Unix ms (server clock).
    pub expires_at: i64,
}

/// Reply data of methods that return nothing (`{}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Empty {}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(data: &str) -> Result<InviteParams, WireError> {
        let text = format!(r#"{{"requestID":1,"method":"signalingInvite","data":{data}}}"#);
        match ClientFrame::parse(&text) {
            Ok(ClientFrame {
                request: Request::Invite(p),
                ..
            }) => Ok(p),
            Ok(other) => panic!("not an invite: {other:?}"),
            Err(e) => Err(e.error),
        }
    }

    #[test]
    fn no_reply_on_success_is_read_for_signals_and_refused_for_everything_else() {
        let custom = r#"{"requestID":1,"method":"signalingSendCustomSignal","noReplyOnSuccess":true,"data":{"roomID":"r1","customInfo":"x"}}"#;
        let frame = ClientFrame::parse(custom).unwrap();
        assert!(frame.no_reply_on_success);
        assert_eq!(
            ClientFrame::parse(&frame.to_json()),
            Ok(frame),
            "written back as read"
        );
        let plain = custom.replace(r#""noReplyOnSuccess":true,"#, "");
        assert!(!ClientFrame::parse(&plain).unwrap().no_reply_on_success);
        let e = ClientFrame::parse(
            r#"{"requestID":7,"method":"signalingHungUp","noReplyOnSuccess":true,"data":{"invitation":{"roomID":"r1"}}}"#,
        )
        .unwrap_err();
        assert_eq!(e.error.code, ErrCode::Args);
        assert_eq!(
            e.request_id,
            Some(RequestId::Num(7)),
            "answered with its id"
        );
        assert!(
            e.error.message.contains("signalingSendCustomSignal"),
            "{}",
            e.error.message
        );
        let e = ClientFrame::parse(&custom.replace("true", "\"yes\"")).unwrap_err();
        assert_eq!(e.error.code, ErrCode::MalformedFrame, "{}", e.error.message);
    }

    #[test]
    fn the_seeds_bare_invitation_is_read_as_the_invitation() {
        // The seed's example: `options` is the RtcInvite itself.
        let bare = invite(
            r#"{"inviterUserID":"alice","inviteeUserIDList":["bob"],"groupID":"","roomID":"","timeout":30,"mediaType":"audio","sessionType":1,"platformID":5}"#,
        )
        .expect("the bare form is accepted");
        let wrapped = invite(
            r#"{"invitation":{"inviterUserID":"alice","inviteeUserIDList":["bob"],"groupID":"","roomID":"","timeout":30,"mediaType":"audio","sessionType":1,"platformID":5}}"#,
        )
        .expect("the wrapped form is accepted");
        assert_eq!(bare, wrapped);
        assert_eq!(bare.invitation.invitee_user_id_list[0].as_str(), "bob");
        assert_eq!(bare.invitation.timeout, 30);
    }

    #[test]
    fn a_bad_field_names_its_path_in_either_form() {
        let e = invite(r#"{"inviteeUserIDList":["bob"],"timeout":"30"}"#).unwrap_err();
        assert!(
            e.message.starts_with("data.timeout: invalid type"),
            "{}",
            e.message
        );
        let e =
            invite(r#"{"invitation":{"inviteeUserIDList":["bob"],"timeout":"30"}}"#).unwrap_err();
        assert!(
            e.message
                .starts_with("data.invitation.timeout: invalid type"),
            "{}",
            e.message
        );
        let e = invite(r#"{"invitation":5}"#).unwrap_err();
        assert!(
            e.message.starts_with("data.invitation: invalid type"),
            "{}",
            e.message
        );
    }
}
