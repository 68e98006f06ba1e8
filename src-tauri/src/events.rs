//! The one module that emits to the window.
//!
//! Every server event is emitted under its OpenIM callback name (`onReceiveNewInvitation`,
//! `onInviteeAccepted`, … exactly [`Event::name`]) with the OpenIM payload
//! ([`tincan_sdk::event_data`]); connection-state changes are emitted as
//! [`CONNECTION_STATE_CHANGED`] with the SDK's serialized [`ConnectionState`]
//! (`{"state": "reconnecting", "attempt": 1, "reason": "…"}` …), and the SDK's model of
//! this device's call as [`CALL_STATE_CHANGED`] (its [`tincan_sdk::CallState`]), which
//! decides for the page and for media when a call starts and ends.

use tauri::{AppHandle, Emitter};
use tincan_media::MediaEvent;
use tincan_sdk::{event_data, ConnectionState, SdkEvent};

/// Event name for connection-state changes.
pub const CONNECTION_STATE_CHANGED: &str = "connectionStateChanged";
/// Event name for the SDK's call-state snapshots.
pub const CALL_STATE_CHANGED: &str = "callStateChanged";

/// What one SDK event becomes in the window: `(event name, payload)`, or `None` for
/// kinds this app does not know.
pub fn to_window_event(event: &SdkEvent) -> Option<(&'static str, serde_json::Value)> {
    match event {
        SdkEvent::Signaling(e) => Some((e.name(), event_data(e))),
        SdkEvent::Connection(state) => Some((CONNECTION_STATE_CHANGED, connection_json(state))),
        SdkEvent::CallStateChanged(state) => Some((
            CALL_STATE_CHANGED,
            serde_json::to_value(state).expect("a call state serializes"),
        )),
        _ => None,
    }
}

fn connection_json(state: &ConnectionState) -> serde_json::Value {
    serde_json::to_value(state).expect("a connection state serializes")
}

/// Emits one SDK event to the window, if it is one the window gets.
pub fn emit_to_window(app: &AppHandle, event: &SdkEvent) {
    if let Some((name, payload)) = to_window_event(event) {
        if let Err(e) = app.emit(name, payload) {
            tracing::warn!("cannot emit {name}: {e}");
        }
    }
}

/// The media events the window gets (pictures go through the frame channel instead; see
/// [`crate::media`]). The page listens for exactly these names (`MEDIA_EVENTS` in
/// ui/media.js; a test checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaWindowEvent {
    PeerState,
    RemoteState,
    Quality,
    Failed,
    Ended,
    DeviceUnavailable,
    AudioOnly,
    Verification,
    /// A participant's sound level (`{userID, dbfs}`, ~4 a second; [`crate::levels`]).
    AudioLevel,
}

impl MediaWindowEvent {
    pub const ALL: [MediaWindowEvent; 9] = [
        MediaWindowEvent::PeerState,
        MediaWindowEvent::RemoteState,
        MediaWindowEvent::Quality,
        MediaWindowEvent::Failed,
        MediaWindowEvent::Ended,
        MediaWindowEvent::DeviceUnavailable,
        MediaWindowEvent::AudioOnly,
        MediaWindowEvent::Verification,
        MediaWindowEvent::AudioLevel,
    ];

    /// The event's name in the window.
    pub fn name(self) -> &'static str {
        match self {
            MediaWindowEvent::PeerState => "mediaPeerState",
            MediaWindowEvent::RemoteState => "mediaRemoteState",
            MediaWindowEvent::Quality => "mediaQuality",
            MediaWindowEvent::Failed => "mediaFailed",
            MediaWindowEvent::Ended => "mediaEnded",
            MediaWindowEvent::DeviceUnavailable => "mediaDeviceUnavailable",
            MediaWindowEvent::AudioOnly => "mediaAudioOnly",
            MediaWindowEvent::Verification => "mediaVerification",
            MediaWindowEvent::AudioLevel => "mediaAudioLevel",
        }
    }
}

/// What one media event becomes in the window, or `None` for those it does not get
/// (pictures, sound levels, the end of the session's events).
pub fn to_media_window_event(event: &MediaEvent) -> Option<(MediaWindowEvent, serde_json::Value)> {
    use serde_json::json;
    Some(match event {
        MediaEvent::Failed { user, reason } => (
            MediaWindowEvent::Failed,
            json!({"userID": user, "reason": reason}),
        ),
        MediaEvent::PeerState { user, state, .. } => (
            MediaWindowEvent::PeerState,
            json!({"userID": user, "state": state}),
        ),
        MediaEvent::RemoteState {
            user,
            mic,
            camera,
            screen,
        } => (
            MediaWindowEvent::RemoteState,
            json!({"userID": user, "mic": mic, "camera": camera, "screen": screen}),
        ),
        MediaEvent::Quality { user, quality } => (
            MediaWindowEvent::Quality,
            json!({"userID": user, "quality": quality}),
        ),
        MediaEvent::DeviceUnavailable { device, reason } => (
            MediaWindowEvent::DeviceUnavailable,
            json!({"device": device, "reason": reason}),
        ),
        MediaEvent::AudioOnly { on, target_kbps } => (
            MediaWindowEvent::AudioOnly,
            json!({"on": on, "targetKbps": target_kbps}),
        ),
        MediaEvent::Verification { user, code } => (
            MediaWindowEvent::Verification,
            json!({"userID": user, "code": code}),
        ),
        _ => return None,
    })
}

/// Emits a media event to the window.
pub fn emit_media(app: &AppHandle, event: MediaWindowEvent, payload: serde_json::Value) {
    let name = event.name();
    if let Err(e) = app.emit(name, payload) {
        tracing::warn!("cannot emit {name}: {e}");
    }
}

/// `mediaEnded`: the media of the call in `room` has stopped.
pub fn emit_media_ended(app: &AppHandle, room: &str) {
    emit_media(
        app,
        MediaWindowEvent::Ended,
        serde_json::json!({ "roomID": room }),
    );
}

/// Tells the window the session ended because the user signed out.
pub fn emit_signed_out(app: &AppHandle) {
    let state = serde_json::json!({"state": "closed", "reason": {"kind": "signedOut", "message": "signed out"}});
    if let Err(e) = app.emit(CONNECTION_STATE_CHANGED, state) {
        tracing::warn!("cannot emit {CONNECTION_STATE_CHANGED}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tincan_sdk::protocol::{Event, KickedInfo};

    #[test]
    fn server_events_keep_their_openim_name_and_payload() {
        let e = SdkEvent::Signaling(Event::KickedOffline(KickedInfo {
            reason: "replaced".into(),
        }));
        let (name, payload) = to_window_event(&e).unwrap();
        assert_eq!(name, "onKickedOffline");
        assert_eq!(payload, serde_json::json!({"reason": "replaced"}));
    }

    #[test]
    fn call_states_are_call_state_changed_with_the_sdks_snapshot() {
        let login: tincan_sdk::protocol::LoginReply = serde_json::from_value(serde_json::json!({
            "userID": "bob", "deviceID": "d1", "protocolVersion": 1, "serverTime": 1,
            "pendingInvitations": []}))
        .unwrap();
        let model = tincan_sdk::CallModel::new(login.user_id.clone(), &login);
        let e = SdkEvent::CallStateChanged(model.state().clone());
        let (name, payload) = to_window_event(&e).unwrap();
        assert_eq!(name, "callStateChanged");
        assert_eq!(payload["phase"], "idle");
    }

    #[test]
    fn the_page_listens_for_every_media_event_by_its_name() {
        const MEDIA_JS: &str = include_str!("../../ui/media.js");
        let list = MEDIA_JS
            .split("const MEDIA_EVENTS = [")
            .nth(1)
            .and_then(|rest| rest.split(']').next())
            .expect("ui/media.js declares MEDIA_EVENTS");
        for e in MediaWindowEvent::ALL {
            assert!(
                list.contains(&format!("'{}'", e.name())),
                "{e:?} missing from MEDIA_EVENTS"
            );
        }
        assert_eq!(
            list.matches('\'').count(),
            2 * MediaWindowEvent::ALL.len(),
            "{list}"
        );
    }

    #[test]
    fn media_events_carry_what_the_page_reads() {
        let e = MediaEvent::AudioOnly {
            on: true,
            target_kbps: 80.0,
        };
        let (name, payload) = to_media_window_event(&e).unwrap();
        assert_eq!(name.name(), "mediaAudioOnly");
        assert_eq!(payload, serde_json::json!({"on": true, "targetKbps": 80.0}));
        assert!(to_media_window_event(&MediaEvent::Ended).is_none());
    }

    #[test]
    fn connection_changes_are_connection_state_changed() {
        let e = SdkEvent::Connection(ConnectionState::Reconnecting {
            attempt: 1,
            reason: "reset".into(),
        });
        let (name, payload) = to_window_event(&e).unwrap();
        assert_eq!(name, "connectionStateChanged");
        assert_eq!(
            payload,
            serde_json::json!({"state": "reconnecting", "attempt": 1, "reason": "reset"})
        );
    }
}
