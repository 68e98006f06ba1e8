//! What the SDK tells the app: server events and connection-state changes, on one
//! channel, in the order they happened.

use std::fmt;

use serde::{Serialize, Serializer};
use tincan_protocol::{Event, LoginReply, WireError};

/// One thing the app should know about, in order.
// Signaling events are both the big variant and the common one; boxing them would
// cost an allocation per event to save space on the rare state change.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SdkEvent {
    /// A server event (an OpenIM callback), after the SDK's resync bookkeeping: a
    /// pending invitation the server re-sends after a reconnect is not repeated, and an
    /// invitation that stopped ringing while the device was away arrives as
    /// `InvitationCancelled`.
    Signaling(Event),
    /// The connection changed state.
    Connection(ConnectionState),
    /// This device's current call changed (see [`crate::CallModel`]): a snapshot, right
    /// after the event, request or reconnect that changed it. Serialized for a page as
    /// `callStateChanged`.
    CallStateChanged(crate::CallState),
    /// A signal sent without waiting for its answer
    /// ([`crate::Client::signaling_send_custom_signal_unanswered`],
    /// [`crate::Client::signaling_send_media_signal_unanswered`]) failed at the server
    /// (the room is over, its token expired, a rate limit…). `operation_id` is the one
    /// it was sent with.
    SignalFailed {
        /// The operation id the signal was sent with.
        operation_id: String,
        /// The server's error.
        error: WireError,
    },
}

/// The connection's state, as the app sees it.
///
/// Serializes as `{"state": "connected"}`, `{"state": "reconnecting", "attempt": 1,
/// "reason": "…"}`, `{"state": "resynced", "login": {…}}` or `{"state": "closed",
/// "reason": {"kind": "…", "message": "…"}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
#[non_exhaustive]
pub enum ConnectionState {
    /// Signed in on the first connection. Sent once, first.
    Connected,
    /// The connection dropped; the SDK waits and tries again. Requests fail with
    /// [`crate::SdkError::Disconnected`] until `Resynced`.
    Reconnecting {
        /// 1 for the first try after a drop.
        attempt: u32,
        /// Why the previous connection or attempt failed.
        reason: String,
    },
    /// The server said it is restarting (it closed the connection with WebSocket's 1012,
    /// "service restart", on a clean stop): it keeps a call in progress for when its
    /// participants sign in again, and media goes on peer to peer meanwhile. Sent once,
    /// right before the first `Reconnecting`, when the client reconnects; apps say "the
    /// server is restarting" until `Resynced`.
    ServerRestarting,
    /// Signed in again after a drop. The invitation events that bring the app up to
    /// date follow right after; `login.current_call` says whether this device is still
    /// in a call (if the app thought it was and this is `None`, that call is over).
    Resynced {
        /// The new login reply.
        login: Box<LoginReply>,
    },
    /// The client stopped for good and will not reconnect. Always the last event.
    Closed {
        /// Why.
        reason: CloseReason,
    },
}

/// Why a client stopped for good.
///
/// Serializes as `{"kind": "kickedOffline", "message": "…"}` (the shape Tincan uses
/// for errors that reach a UI).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The app called [`crate::Client::close`] or dropped every `Client`.
    ClientClosed,
    /// Another connection with the same deviceID replaced this one (`onKickedOffline`).
    KickedOffline(String),
    /// The server refused the login on a reconnect (token expired or invalid, or an
    /// unsupported protocol version). Sign in again.
    LoginRefused(WireError),
    /// The connection dropped and reconnecting is disabled or gave up.
    ConnectionLost(String),
}

impl CloseReason {
    /// A stable camelCase name for the kind of reason.
    pub fn kind(&self) -> &'static str {
        match self {
            CloseReason::ClientClosed => "clientClosed",
            CloseReason::KickedOffline(_) => "kickedOffline",
            CloseReason::LoginRefused(_) => "loginRefused",
            CloseReason::ConnectionLost(_) => "connectionLost",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::ClientClosed => f.write_str("closed by the client"),
            CloseReason::KickedOffline(why) => write!(f, "kicked offline: {why}"),
            CloseReason::LoginRefused(e) => write!(f, "login refused: {e}"),
            CloseReason::ConnectionLost(why) => write!(f, "connection lost: {why}"),
        }
    }
}

impl Serialize for CloseReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shape<'a> {
            kind: &'a str,
            message: String,
        }
        Shape {
            kind: self.kind(),
            message: self.to_string(),
        }
        .serialize(s)
    }
}

/// An event's `data` as JSON, e.g. for emitting it to a UI under [`Event::name`].
///
/// ```
/// use tincan_sdk::{event_data, protocol::{Event, KickedInfo}};
/// let e = Event::KickedOffline(KickedInfo { reason: "replaced".into() });
/// assert_eq!(event_data(&e), serde_json::json!({"reason": "replaced"}));
/// ```
pub fn event_data(event: &Event) -> serde_json::Value {
    // The protocol crate exposes the whole frame only; take `data` back out of it.
    let mut frame: serde_json::Value =
        serde_json::from_str(&event.to_frame_json()).expect("an event frame is valid JSON");
    frame
        .get_mut("data")
        .map(serde_json::Value::take)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tincan_protocol::ErrCode;

    #[test]
    fn connection_states_serialize_with_a_state_tag() {
        let j = |s: ConnectionState| serde_json::to_string(&s).unwrap();
        assert_eq!(j(ConnectionState::Connected), r#"{"state":"connected"}"#);
        assert_eq!(
            j(ConnectionState::ServerRestarting),
            r#"{"state":"serverRestarting"}"#
        );
        assert_eq!(
            j(ConnectionState::Reconnecting {
                attempt: 2,
                reason: "reset".into()
            }),
            r#"{"state":"reconnecting","attempt":2,"reason":"reset"}"#
        );
        assert_eq!(
            j(ConnectionState::Closed {
                reason: CloseReason::KickedOffline("replaced".into())
            }),
            r#"{"state":"closed","reason":{"kind":"kickedOffline","message":"kicked offline: replaced"}}"#
        );
    }

    #[test]
    fn close_reasons_name_their_kind() {
        let refused = CloseReason::LoginRefused(WireError::new(ErrCode::TokenExpired, "old"));
        assert_eq!(refused.kind(), "loginRefused");
        assert!(refused.to_string().contains("TokenExpired"), "{refused}");
        assert_eq!(CloseReason::ClientClosed.kind(), "clientClosed");
        assert_eq!(
            CloseReason::ConnectionLost("x".into()).kind(),
            "connectionLost"
        );
    }
}
