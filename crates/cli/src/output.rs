//! The CLI's stdout: one JSON object per line, flushed at once, so that scripts and
//! tests can drive the CLI as a far end. Logs go to stderr.
//!
//! - events: `{"event":"onReceiveNewInvitation","data":{…}}`
//! - connection changes: `{"event":"connection","state":"reconnecting","attempt":1,"reason":"…"}`
//! - replies: `{"reply":"signalingAccept","errCode":0,"errMsg":"","data":{…}}`

use std::io::Write;

use serde::Serialize;
use tincan_sdk::protocol::Event;
use tincan_sdk::{event_data, ApiResult, ConnectionState, SdkEvent};

/// The line for a server event.
pub fn event_line(event: &Event) -> String {
    #[derive(Serialize)]
    struct Line<'a> {
        event: &'a str,
        data: serde_json::Value,
    }
    to_line(&Line {
        event: event.name(),
        data: event_data(event),
    })
}

/// The line for a connection-state change.
pub fn connection_line(state: &ConnectionState) -> String {
    #[derive(Serialize)]
    struct Line<'a> {
        event: &'a str,
        #[serde(flatten)]
        state: &'a ConnectionState,
    }
    to_line(&Line {
        event: "connection",
        state,
    })
}

/// The line for any SDK event.
pub fn sdk_event_line(event: &SdkEvent) -> String {
    match event {
        SdkEvent::Signaling(e) => event_line(e),
        SdkEvent::Connection(s) => connection_line(s),
        SdkEvent::CallStateChanged(state) => {
            #[derive(Serialize)]
            struct Line<'a> {
                event: &'a str,
                #[serde(flatten)]
                state: &'a tincan_sdk::CallState,
            }
            to_line(&Line {
                event: "callStateChanged",
                state,
            })
        }
        other => to_line(&serde_json::json!({ "event": "unknown", "debug": format!("{other:?}") })),
    }
}

/// The line for the reply to `method` (a wire method name, or `login`).
pub fn reply_line(method: &str, result: &ApiResult) -> String {
    #[derive(Serialize)]
    struct Line<'a> {
        reply: &'a str,
        #[serde(flatten)]
        result: &'a ApiResult,
    }
    to_line(&Line {
        reply: method,
        result,
    })
}

fn to_line<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("CLI output serializes")
}

/// Writes one line to stdout and flushes it. A closed stdout is ignored: the reader
/// went away, and there is nobody left to tell.
pub fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tincan_sdk::protocol::{ErrCode, KickedInfo, WireError};
    use tincan_sdk::{CloseReason, SdkError};

    #[test]
    fn events_print_their_openim_name_and_data() {
        let e = Event::KickedOffline(KickedInfo {
            reason: "replaced".into(),
        });
        assert_eq!(
            event_line(&e),
            r#"{"event":"onKickedOffline","data":{"reason":"replaced"}}"#
        );
    }

    #[test]
    fn connection_states_print_flat() {
        assert_eq!(
            connection_line(&ConnectionState::Connected),
            r#"{"event":"connection","state":"connected"}"#
        );
        assert_eq!(
            connection_line(&ConnectionState::Reconnecting {
                attempt: 3,
                reason: "reset".into()
            }),
            r#"{"event":"connection","state":"reconnecting","attempt":3,"reason":"reset"}"#
        );
        assert_eq!(
            connection_line(&ConnectionState::Closed {
                reason: CloseReason::ClientClosed
            }),
            r#"{"event":"connection","state":"closed","reason":{"kind":"clientClosed","message":"closed by the client"}}"#
        );
    }

    #[test]
    fn replies_print_openim_result_fields() {
        let ok = ApiResult::from(Ok::<_, SdkError>(serde_json::json!({"serverTime": 5})));
        assert_eq!(
            reply_line("ping", &ok),
            r#"{"reply":"ping","errCode":0,"errMsg":"","data":{"serverTime":5}}"#
        );
        let err = ApiResult::from(Err::<(), _>(SdkError::Server(WireError::new(
            ErrCode::NotRinging,
            "over",
        ))));
        assert_eq!(
            reply_line("signalingAccept", &err),
            r#"{"reply":"signalingAccept","errCode":1602,"errMsg":"over","data":null}"#
        );
    }
}
