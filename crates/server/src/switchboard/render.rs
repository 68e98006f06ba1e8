//! The hub's frames as text. Each output is rendered here once, whatever the number of
//! its recipients, after the hub has decided; the hub itself never writes JSON.

use serde_json::value::RawValue;
use tracing::warn;

use tincan_protocol::limits::MAX_SERVER_FRAME;
use tincan_protocol::{response_json, ErrCode, Event, WireError};

use crate::hub::{Frame, Reply};

/// The text of `frame`; `None` for an event too large to send (see [`event`]).
pub(crate) fn frame(frame: &Frame) -> Option<String> {
    match frame {
        Frame::Event(e) => event(e),
        Frame::Reply(r) => Some(reply(r)),
    }
}

/// An event's text. The field bounds keep events far below [`MAX_SERVER_FRAME`]; should
/// one still exceed it (say, a nickname stored before the bounds existed), it is dropped
/// with a warning rather than sent, because a frame its recipient cannot read would cost
/// the recipient its connection.
pub(crate) fn event(event: &Event) -> Option<String> {
    let text = event.to_frame_json();
    if text.len() > MAX_SERVER_FRAME {
        warn!(
            event = event.name(),
            bytes = text.len(),
            limit = MAX_SERVER_FRAME,
            "event larger than any client accepts; not sent"
        );
        return None;
    }
    Some(text)
}

/// A reply's text. One larger than any client accepts is answered with an error instead
/// (pages keep replies far below that; a user in very many large groups could still get
/// a first contacts page this big).
pub(crate) fn reply(reply: &Reply) -> String {
    let text = response_json(
        Some(&reply.request_id),
        &reply.operation_id,
        reply.result.as_ref().map(|b| &**b),
    );
    if text.len() <= MAX_SERVER_FRAME {
        return text;
    }
    warn!(
        bytes = text.len(),
        limit = MAX_SERVER_FRAME,
        "reply larger than any client accepts; answering with an error instead"
    );
    let e = WireError::new(
        ErrCode::Internal,
        "the answer is too large to send; ask for less (a smaller page or limit)",
    );
    response_json::<RawValue>(Some(&reply.request_id), &reply.operation_id, Err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tincan_protocol::{KickedInfo, RequestId};

    fn answer(data: &str) -> Reply {
        Reply {
            request_id: serde_json::from_str::<RequestId>("7").unwrap(),
            operation_id: "op".into(),
            result: Ok(RawValue::from_string(data.to_owned()).unwrap()),
        }
    }

    #[test]
    fn a_reply_too_large_for_any_client_becomes_an_error() {
        let big = format!("\"{}\"", "x".repeat(MAX_SERVER_FRAME));
        let text = reply(&answer(&big));
        assert!(text.len() < 1024, "{}", &text[..100]);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["errCode"], ErrCode::Internal.code());
        assert_eq!(v["requestID"], 7);
        assert_eq!(
            reply(&answer("{}")),
            r#"{"type":"response","requestID":7,"operationID":"op","errCode":0,"errMsg":"","data":{}}"#
        );
    }

    #[test]
    fn an_event_too_large_for_any_client_is_not_sent() {
        let kicked = |reason: String| Event::KickedOffline(KickedInfo { reason });
        assert!(event(&kicked("x".repeat(MAX_SERVER_FRAME))).is_none());
        let small = frame(&Frame::Event(Box::new(kicked("bye".into())))).unwrap();
        let v: serde_json::Value = serde_json::from_str(&small).unwrap();
        assert_eq!(v["event"], "onKickedOffline");
        assert_eq!(v["data"]["reason"], "bye");
    }
}
