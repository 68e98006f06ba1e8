//! Commands the page can `invoke`. Each one is an adapter: it reads its arguments,
//! forwards to the SDK or app state, and returns a serializable value.
//!
//! Every account and API command returns OpenIM's `{errCode, errMsg, data}`
//! ([`ApiResult`]) — never a Tauri error — so the page's OpenIM-style callbacks always
//! receive that shape. Arguments that carry OpenIM objects (`options`) are taken as JSON
//! and parsed here, so a malformed object is an `errCode` 10002 result too.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tauri::ipc::{Channel, InvokeResponseBody};
use tauri::{AppHandle, Manager};
use tincan_sdk::protocol::{
    AcceptReply, ActionParams, CustomSignalParams, GroupId, GroupParams, HistoryParams, IceServer,
    Invitation, InviteParams, InviteReply, MediaType, RoomId, RoomParams, SESSION_GROUP,
    SESSION_SINGLE,
};
use tincan_sdk::{codes, Accounts, ApiResult, Client, SdkError};

pub use crate::local_server::EMBEDDED_PORT;
use crate::state::AppState;
use crate::{local_server, media, session};

/// `errCode` when an API command runs while nobody is signed in (OpenIM's `LoginOut`).
pub const NOT_SIGNED_IN: u32 = codes::LOGGED_OUT;

/// What the page shows in its header, and how this instance was started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    /// Product name from `tauri.conf.json`.
    pub name: String,
    /// App version (the package version unless the config overrides it).
    pub version: String,
    /// `--server` / `TINCAN_SERVER`, to prefill the sign-in form.
    pub default_server: Option<String>,
    /// The profile directory in use.
    pub profile_dir: String,
}

/// Returns the app's name, version and start options.
#[tauri::command]
pub fn app_info(app: AppHandle) -> AppInfo {
    let package = app.package_info();
    let state = app.state::<AppState>();
    AppInfo {
        name: package.name.clone(),
        version: package.version.to_string(),
        default_server: state.default_server.clone(),
        profile_dir: state.profile_dir.display().to_string(),
    }
}

fn ok(data: serde_json::Value) -> ApiResult {
    ApiResult {
        err_code: 0,
        err_msg: String::new(),
        data,
    }
}

fn failure(err_code: u32, err_msg: impl Into<String>) -> ApiResult {
    ApiResult {
        err_code,
        err_msg: err_msg.into(),
        data: serde_json::Value::Null,
    }
}

fn not_signed_in() -> ApiResult {
    failure(NOT_SIGNED_IN, "not signed in: sign in first")
}

/// Starts the embedded server (once) and returns `{url}`: port 7070 on loopback when it
/// is free, else a random port. Its database is `server.db` in the profile directory.
/// Its secret stays on the Rust side (see [`crate::local_server`]).
#[tauri::command]
pub async fn start_embedded_server(app: AppHandle) -> ApiResult {
    let state = app.state::<AppState>();
    if let Some(url) = state.embedded_url() {
        return ok(serde_json::json!({ "url": url }));
    }
    match local_server::start(&state.profile_dir).await {
        Ok(server) => {
            let url = state.set_embedded(server);
            ok(serde_json::json!({ "url": url }))
        }
        Err((code, msg)) => failure(code, msg),
    }
}

/// The account endpoints of `server`, with the embedded server's secret when `server`
/// is that server.
fn accounts(state: &AppState, server: &str) -> Result<Accounts, SdkError> {
    let accounts = Accounts::with_ca_file(server, state.ca_file.as_deref())?;
    match state.local_secret_for(server) {
        Some(secret) => accounts.with_local_secret(secret.expose()),
        None => Ok(accounts),
    }
}

/// Creates an account on `server` and signs it in (same result as [`sign_in`]).
#[tauri::command]
pub async fn register(
    app: AppHandle,
    server: String,
    user_id: String,
    password: String,
    nickname: Option<String>,
) -> ApiResult {
    let nickname = nickname.filter(|n| !n.trim().is_empty());
    let accounts = match accounts(&app.state::<AppState>(), server.trim()) {
        Ok(a) => a,
        Err(e) => return ApiResult::from_error(&e),
    };
    match accounts
        .register(user_id.trim(), &password, nickname.as_deref())
        .await
    {
        Ok(token) => connect(&app, server.trim(), &token.token).await,
        Err(e) => ApiResult::from_error(&e),
    }
}

/// Signs in over HTTP, connects with this installation's deviceID, and starts
/// forwarding the session's events. Replaces any current session.
/// Data: `{userID, server, deviceID, currentCall}`; `currentCall` is the call this
/// device was in when it last dropped, if the server kept it (else `null`).
#[tauri::command]
pub async fn sign_in(
    app: AppHandle,
    server: String,
    user_id: String,
    password: String,
) -> ApiResult {
    let accounts = match accounts(&app.state::<AppState>(), server.trim()) {
        Ok(a) => a,
        Err(e) => return ApiResult::from_error(&e),
    };
    match accounts.sign_in(user_id.trim(), &password).await {
        Ok(token) => connect(&app, server.trim(), &token.token).await,
        Err(e) => ApiResult::from_error(&e),
    }
}

async fn connect(app: &AppHandle, server: &str, token: &str) -> ApiResult {
    match session::open(app, server, token).await {
        Ok(opened) => ok(serde_json::json!({
            "userID": opened.user_id,
            "server": server,
            "deviceID": opened.device_id,
            "currentCall": opened.current_call,
        })),
        Err(session::OpenError::Sdk(e)) => ApiResult::from_error(&e),
        Err(e) => failure(codes::INTERNAL, e.to_string()),
    }
}

/// Signs out: closes the connection. Data: `{}`.
#[tauri::command]
pub async fn sign_out(app: AppHandle) -> ApiResult {
    session::close(&app).await;
    ok(serde_json::json!({}))
}

/// The signed-in user: `{userID, server, deviceID, connection, currentCall}` or `null`.
#[tauri::command]
pub fn session(app: AppHandle) -> serde_json::Value {
    let state = app.state::<AppState>();
    match (state.signed_in(), state.client()) {
        (Some((user_id, server)), Some(client)) => serde_json::json!({
            "userID": user_id,
            "server": server,
            "deviceID": client.device().device_id,
            "connection": client.connection_state(),
            "currentCall": client.session().current_call,
        }),
        _ => serde_json::Value::Null,
    }
}

/// Parses an OpenIM options object, answering `ArgsError` (10002) when it does not fit.
fn parse<T: DeserializeOwned>(what: &str, value: serde_json::Value) -> Result<T, ApiResult> {
    serde_json::from_value(value).map_err(|e| failure(codes::ARGS, format!("invalid {what}: {e}")))
}

/// OpenIM's examples pass the invitation's fields at the top level of `options`
/// (`{inviterUserID, inviteeUserIDList, …}`); the wire wants `{invitation: {…}}`.
/// Accepts both.
pub fn invite_params(options: serde_json::Value) -> Result<InviteParams, ApiResult> {
    let wrapped = match options {
        serde_json::Value::Object(map) if !map.contains_key("invitation") => {
            let mut map = map;
            let push = map.remove("offlinePushInfo");
            let mut outer = serde_json::Map::new();
            outer.insert("invitation".into(), serde_json::Value::Object(map));
            if let Some(push) = push {
                outer.insert("offlinePushInfo".into(), push);
            }
            serde_json::Value::Object(outer)
        }
        other => other,
    };
    parse("invitation", wrapped)
}

async fn with_client<F, Fut, T>(app: &AppHandle, f: F) -> ApiResult
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Result<T, SdkError>>,
    T: Serialize,
{
    match app.state::<AppState>().client() {
        Some(client) => f(client).await.into(),
        None => not_signed_in(),
    }
}

macro_rules! try_args {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(result) => return result,
        }
    };
}

/// A reply that puts this device in a call: media starts with it.
trait Joined {
    fn room(&self) -> &RoomId;
    fn token(&self) -> &str;
    fn ice_servers(&self) -> &[IceServer];
}

/// Invite and accept replies carry the same three fields.
macro_rules! joined {
    ($($reply:ty),*) => {$(
        impl Joined for $reply {
            fn room(&self) -> &RoomId {
                &self.room_id
            }
            fn token(&self) -> &str {
                &self.token
            }
            fn ice_servers(&self) -> &[IceServer] {
                &self.ice_servers
            }
        }
    )*};
}
joined!(InviteReply, AcceptReply);

/// Runs a request that joins a call (invite, accept) and starts its media when it succeeds;
/// `peer` is connected to at once.
async fn joining<F, Fut, R>(
    app: AppHandle,
    mut invitation: Invitation,
    peer: Option<String>,
    f: F,
) -> ApiResult
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Result<R, SdkError>>,
    R: Serialize + Joined,
{
    with_client(&app.clone(), |c| async move {
        let reply = f(c.clone()).await;
        if let Ok(r) = &reply {
            invitation.room_id = r.room().to_string();
            media::start(
                &app,
                c,
                invitation,
                r.room().clone(),
                r.token().to_owned(),
                r.ice_servers(),
                peer,
            );
        }
        reply
    })
    .await
}

/// Runs a request that leaves a call (reject, cancel, hang up) and ends its media,
/// whatever the server answered: the person asked to leave, and the window says the
/// call is over, so the microphone and camera must stop even if the request failed.
async fn leaving<F, Fut, R>(app: AppHandle, params: &ActionParams, f: F) -> ApiResult
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Result<R, SdkError>>,
    R: Serialize,
{
    let room = RoomId::new(params.invitation.room_id.clone()).ok();
    with_client(&app.clone(), |c| async move {
        let reply = f(c).await;
        media::end(&app, room.as_ref());
        reply
    })
    .await
}

/// `signalingInvite`. `options`: `{invitation, offlinePushInfo?}` or a bare RtcInvite.
#[tauri::command]
pub async fn signaling_invite(
    app: AppHandle,
    operation_id: String,
    options: serde_json::Value,
) -> ApiResult {
    let params = try_args!(invite_params(options));
    let invitation = params.invitation.clone();
    joining(app, invitation, None, |c| async move {
        c.signaling_invite(&operation_id, params).await
    })
    .await
}

/// `signalingInviteInGroup`. `options` as for [`signaling_invite`].
#[tauri::command]
pub async fn signaling_invite_in_group(
    app: AppHandle,
    operation_id: String,
    options: serde_json::Value,
) -> ApiResult {
    let params = try_args!(invite_params(options));
    let invitation = params.invitation.clone();
    joining(app, invitation, None, |c| async move {
        c.signaling_invite_in_group(&operation_id, params).await
    })
    .await
}

/// `signalingAccept`. `options`: `{opUserID, invitation}`.
#[tauri::command]
pub async fn signaling_accept(
    app: AppHandle,
    operation_id: String,
    options: serde_json::Value,
) -> ApiResult {
    let params: ActionParams = try_args!(parse("options", options));
    accept(app, operation_id, params).await
}

/// Accepts an invitation and starts the call's media: what `signalingAccept` does, and
/// what the incoming call notification's Accept action calls ([`crate::alerting`]).
pub async fn accept(app: AppHandle, operation_id: String, params: ActionParams) -> ApiResult {
    let invitation = params.invitation.clone();
    // One-to-one: connect to the inviter now. In a group, those already in the call
    // greet us (they learn of us from onRoomParticipantConnected).
    let peer =
        (invitation.session_type == SESSION_SINGLE).then(|| invitation.inviter_user_id.clone());
    joining(app, invitation, peer, |c| async move {
        c.signaling_accept(&operation_id, params).await
    })
    .await
}

/// `signalingReject`. `options`: `{opUserID, invitation}`.
#[tauri::command]
pub async fn signaling_reject(
    app: AppHandle,
    operation_id: String,
    options: serde_json::Value,
) -> ApiResult {
    let params: ActionParams = try_args!(parse("options", options));
    reject(app, operation_id, params).await
}

/// Declines an invitation: what `signalingReject` does, and what the incoming call
/// notification's Decline action calls ([`crate::alerting`]).
pub async fn reject(app: AppHandle, operation_id: String, params: ActionParams) -> ApiResult {
    leaving(app, &params.clone(), |c| async move {
        c.signaling_reject(&operation_id, params).await
    })
    .await
}

/// `signalingCancel`. `options`: `{opUserID, invitation}`.
#[tauri::command]
pub async fn signaling_cancel(
    app: AppHandle,
    operation_id: String,
    options: serde_json::Value,
) -> ApiResult {
    let params: ActionParams = try_args!(parse("options", options));
    leaving(app, &params.clone(), |c| async move {
        c.signaling_cancel(&operation_id, params).await
    })
    .await
}

/// `signalingHungUp`. `options`: `{opUserID, invitation}`.
#[tauri::command]
pub async fn signaling_hung_up(
    app: AppHandle,
    operation_id: String,
    options: serde_json::Value,
) -> ApiResult {
    let params: ActionParams = try_args!(parse("options", options));
    leaving(app, &params.clone(), |c| async move {
        c.signaling_hung_up(&operation_id, params).await
    })
    .await
}

/// `signalingGetRoomByGroupID`.
#[tauri::command]
pub async fn signaling_get_room_by_group_id(
    app: AppHandle,
    operation_id: String,
    group_id: String,
) -> ApiResult {
    let group_id =
        try_args!(GroupId::new(group_id)
            .map_err(|e| failure(codes::ARGS, format!("invalid groupID: {e}"))));
    with_client(&app, |c| async move {
        c.signaling_get_room_by_group_id(&operation_id, GroupParams { group_id })
            .await
    })
    .await
}

/// `signalingGetTokenByRoomID`: joins a group call in progress (and starts its media:
/// those already in the call greet the newcomer).
#[tauri::command]
pub async fn signaling_get_token_by_room_id(
    app: AppHandle,
    operation_id: String,
    room_id: String,
) -> ApiResult {
    let room_id = try_args!(
        RoomId::new(room_id).map_err(|e| failure(codes::ARGS, format!("invalid roomID: {e}")))
    );
    // The reply names no media type: video, and the page turns the camera off for an
    // audio call when it shows the call.
    let invitation = Invitation {
        room_id: room_id.to_string(),
        session_type: SESSION_GROUP,
        media_type: MediaType::Video,
        ..Invitation::default()
    };
    joining(app, invitation, None, |c| async move {
        c.signaling_get_token_by_room_id(&operation_id, RoomParams { room_id })
            .await
    })
    .await
}

/// Ends the media of the call in `roomID` (the window left that call without a request
/// to the server: it ended while disconnected, was answered elsewhere, …). Data: `{}`.
#[tauri::command]
pub fn media_end(app: AppHandle, room_id: String) -> ApiResult {
    let room = try_args!(
        RoomId::new(room_id).map_err(|e| failure(codes::ARGS, format!("invalid roomID: {e}")))
    );
    media::end(&app, Some(&room));
    ok(serde_json::json!({}))
}

/// `getSignalingInvitationInfoStartApp`.
#[tauri::command]
pub async fn get_signaling_invitation_info_start_app(
    app: AppHandle,
    operation_id: String,
) -> ApiResult {
    with_client(&app, |c| async move {
        c.get_signaling_invitation_info_start_app(&operation_id)
            .await
    })
    .await
}

/// `signalingSendCustomSignal`.
#[tauri::command]
pub async fn signaling_send_custom_signal(
    app: AppHandle,
    operation_id: String,
    room_id: String,
    custom_info: String,
) -> ApiResult {
    let room_id = try_args!(
        RoomId::new(room_id).map_err(|e| failure(codes::ARGS, format!("invalid roomID: {e}")))
    );
    with_client(&app, |c| async move {
        c.signaling_send_custom_signal(
            &operation_id,
            CustomSignalParams {
                room_id,
                custom_info: custom_info.into(),
            },
        )
        .await
    })
    .await
}

/// `getCallHistory`. `options` (optional): `{limit?, beforeTime?}`.
#[tauri::command]
pub async fn get_call_history(
    app: AppHandle,
    operation_id: String,
    options: Option<serde_json::Value>,
) -> ApiResult {
    let params: HistoryParams = match options {
        None | Some(serde_json::Value::Null) => HistoryParams::default(),
        Some(v) => try_args!(parse("options", v)),
    };
    with_client(&app, |c| async move {
        c.get_call_history(&operation_id, params).await
    })
    .await
}

/// Registers the page's channel for decoded pictures (see [`crate::media`] for the
/// message layout). Data: `{}`.
#[tauri::command]
pub fn media_frames(app: AppHandle, channel: Channel<InvokeResponseBody>) -> ApiResult {
    app.state::<media::MediaState>().set_frames(channel);
    ok(serde_json::json!({}))
}

/// Mutes or unmutes the microphone of the call in progress. Data: `{}`.
#[tauri::command]
pub fn media_set_mic(app: AppHandle, on: bool) -> ApiResult {
    if media::set_mic(&app, on) {
        ok(serde_json::json!({}))
    } else {
        failure(codes::ARGS, "no call in progress")
    }
}

/// Turns the camera of the call in progress on or off. Data: `{}`.
#[tauri::command]
pub fn media_set_camera(app: AppHandle, on: bool) -> ApiResult {
    if media::set_camera(&app, on) {
        ok(serde_json::json!({}))
    } else {
        failure(codes::ARGS, "no call in progress")
    }
}

/// The machine's microphones, speakers and cameras, and what it can share. Data:
/// `{microphones: [{id, name}], speakers: [...], cameras: [...], screens: [{id, name,
/// kind}]}` (empty lists for what the machine lacks).
#[tauri::command]
pub async fn media_devices() -> ApiResult {
    match tauri::async_runtime::spawn_blocking(tincan_media::devices).await {
        Ok(devices) => ok(serde_json::to_value(devices).expect("devices serialize")),
        Err(e) => failure(codes::INTERNAL, format!("cannot list devices: {e}")),
    }
}

/// The screens and windows that can be shared (`kind`: `screen`, `monitor`, `window`,
/// or `portal`: the system's own dialog chooses). Data: `[{id, name, kind}]`, empty
/// where there is neither an X11 session nor the desktop portal.
#[tauri::command]
pub async fn media_screens() -> ApiResult {
    match tauri::async_runtime::spawn_blocking(tincan_media::screens).await {
        Ok(list) => ok(serde_json::to_value(list).expect("screens serialize")),
        Err(e) => failure(codes::INTERNAL, format!("cannot list screens: {e}")),
    }
}

/// Shares the screen or window `id` (from [`media_screens`]) in the call in progress
/// instead of the camera; `id` null stops sharing and goes back to the camera. A source
/// that cannot be opened is reported as `mediaDeviceUnavailable` (device `screen`).
/// Data: `{}`.
#[tauri::command]
pub fn media_share_screen(app: AppHandle, id: Option<String>) -> ApiResult {
    if app.state::<media::MediaState>().share_screen(id) {
        ok(serde_json::json!({}))
    } else {
        failure(codes::ARGS, "no call in progress")
    }
}

/// Chooses the devices, for the call in progress and the next ones:
/// `{microphone, speakers, camera}`, each `default`, a device id from [`media_devices`],
/// or `tone` / `none` / `pattern`. Data: `{}`.
#[tauri::command]
pub fn media_set_devices(app: AppHandle, options: serde_json::Value) -> ApiResult {
    let choice: media::DeviceChoice = try_args!(parse("options", options));
    app.state::<media::MediaState>().set_devices(choice);
    ok(serde_json::json!({}))
}

/// Echo cancellation and noise suppression (with gain control) for the microphone, for
/// the call in progress (the far end hears the change at once) and the next ones:
/// `{echoCancellation, noiseSuppression}`. Data: `{}`.
#[tauri::command]
pub fn media_set_processing(app: AppHandle, options: serde_json::Value) -> ApiResult {
    let processing: tincan_media::AudioProcessing = try_args!(parse("options", options));
    app.state::<media::MediaState>().set_processing(processing);
    ok(serde_json::json!({}))
}

/// `getContacts`: the other users and this user's groups.
#[tauri::command]
pub async fn get_contacts(app: AppHandle, operation_id: String) -> ApiResult {
    with_client(&app, |c| async move { c.get_contacts(&operation_id).await }).await
}

/// `subscribePresence`: follow these users' presence (`userIDs`, an array of userIDs;
/// replaces the list followed before). Answers their status now; changes arrive as
/// `onPresenceChanged`. The list lives as long as the connection: the page subscribes
/// again after `resynced`.
#[tauri::command]
pub async fn subscribe_presence(
    app: AppHandle,
    operation_id: String,
    user_ids: serde_json::Value,
) -> ApiResult {
    let user_ids: Vec<tincan_sdk::protocol::UserId> = try_args!(parse("userIDs", user_ids));
    with_client(&app, |c| async move {
        c.subscribe_presence(&operation_id, user_ids).await
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bare_rtc_invite_is_wrapped() {
        let p = invite_params(json!({
            "inviterUserID": "alice",
            "inviteeUserIDList": ["bob"],
            "groupID": "",
            "roomID": "",
            "timeout": 30,
            "mediaType": "video",
            "sessionType": 1,
            "platformID": 5,
        }))
        .unwrap();
        assert_eq!(p.invitation.inviter_user_id, "alice");
        assert_eq!(p.invitation.invitee_user_id_list[0], "bob");
        assert_eq!(p.invitation.timeout, 30);
    }

    #[test]
    fn wrapped_invitation_is_taken_as_is() {
        let p = invite_params(json!({
            "invitation": {"inviteeUserIDList": ["bob"], "mediaType": "audio", "sessionType": 1},
            "offlinePushInfo": {"title": "hi"},
        }))
        .unwrap();
        assert_eq!(p.invitation.invitee_user_id_list.len(), 1);
        assert_eq!(p.offline_push_info.unwrap().title, "hi");
    }

    #[test]
    fn malformed_options_are_an_args_error() {
        let r = invite_params(json!({"inviteeUserIDList": "bob"})).unwrap_err();
        assert_eq!(r.err_code, codes::ARGS);
        assert_eq!(r.data, serde_json::Value::Null);
    }
}
