//! What every fuzz target checks, shared by the targets in `fuzz_targets/`.
//!
//! A crash is any panic: an assertion below failing, or the code under test panicking.

use serde_json::Value;
use tincan_protocol::{response_json, ClientFrame, ErrCode, ServerFrame};

/// The server's side of one text frame: [`ClientFrame::parse`] either gives a request
/// that serialises and parses back to the same request, or an error with a frame-level
/// code and a message, which the server can answer with a valid JSON response.
pub fn check_client_frame(text: &str) {
    match ClientFrame::parse(text) {
        Ok(frame) => {
            let again = frame.to_json();
            let back = ClientFrame::parse(&again)
                .unwrap_or_else(|e| panic!("{again} (from {text:?}) does not parse: {e:?}"));
            assert_eq!(back, frame, "round trip through {again} changed the frame");
        }
        Err(e) => {
            assert!(
                matches!(
                    e.error.code,
                    ErrCode::MalformedFrame | ErrCode::UnknownMethod | ErrCode::Args
                ),
                "unexpected code {:?} for {text:?}",
                e.error.code
            );
            assert!(!e.error.message.is_empty(), "no message for {text:?}");
            // What the connection task sends back: must be one valid JSON object.
            let reply = response_json::<()>(e.request_id.as_ref(), &e.operation_id, Err(&e.error));
            let v: Value = serde_json::from_str(&reply)
                .unwrap_or_else(|err| panic!("error reply {reply:?} is not JSON: {err}"));
            assert_eq!(v["errCode"], e.error.code.code());
        }
    }
}

/// The client's side (the SDK's decoder) of one text frame: an event that parses
/// serialises and parses back to the same event.
pub fn check_server_frame(text: &str) {
    if let Ok(ServerFrame::Event(event)) = ServerFrame::parse(text) {
        let again = event.to_frame_json();
        match ServerFrame::parse(&again) {
            Ok(ServerFrame::Event(back)) => {
                assert_eq!(back, event, "round trip through {again} changed the event")
            }
            other => panic!("{again} (from {text:?}) does not parse back: {other:?}"),
        }
    }
}
