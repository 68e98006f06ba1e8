//! Bounds on every field a client sends that the server stores or relays.
//!
//! Why: whatever one client sends, the server repeats to others: a nickname goes into
//! every contact list and invitation, `customData` into every ringing device's event. A
//! field without a bound lets one account make frames no client accepts, breaking every
//! user who receives them. With these bounds the largest frame the server can produce
//! stays far below [`MAX_SERVER_FRAME`], the size every client must accept; the server
//! also checks each frame it sends against that size (docs/protocol.md §1.4).
//!
//! Sizes are in bytes of UTF-8 unless a name says characters.

use crate::model::{Invitation, OfflinePushInfo};
use crate::request::{ClientFrame, Request, RequestId};

/// `operationID`: a trace id, printed in log lines.
pub const MAX_OPERATION_ID: usize = 128;
/// A string `requestID`, echoed in the response.
pub const MAX_REQUEST_ID: usize = 128;
/// A display name, in characters.
pub const MAX_NICKNAME_CHARS: usize = 64;
/// A login or room token.
pub const MAX_TOKEN: usize = 1024;
/// `invitation.customData`, relayed to every invitee.
pub const MAX_CUSTOM_DATA: usize = 8 * 1024;
/// `offlinePushInfo.title` and `.iOSPushSound`.
pub const MAX_PUSH_TITLE: usize = 256;
/// `offlinePushInfo.desc`.
pub const MAX_PUSH_DESC: usize = 1024;
/// `offlinePushInfo.ex`.
pub const MAX_PUSH_EX: usize = 4 * 1024;
/// `inviteeUserIDList` entries (the server's room size is usually smaller).
pub const MAX_INVITEES: usize = 256;
/// `customInfo` of `signalingSendCustomSignal`.
pub const MAX_CUSTOM_INFO: usize = 16 * 1024;
/// `payload` of `signalingSendMediaSignal` (an SDP with every codec is ~10 KB).
pub const MAX_MEDIA_PAYLOAD: usize = 32 * 1024;
/// The largest text frame a Tincan server sends; every client must accept frames this
/// large. The bounds above keep every event and reply far below it.
pub const MAX_SERVER_FRAME: usize = 256 * 1024;

/// Crates that print whole WebSocket frames or HTTP requests in their `trace` output,
/// and with them login tokens, room tokens, passwords and TURN credentials. Every
/// Tincan binary drops `trace` events from these crates, whatever `RUST_LOG` asks for
/// (their `debug` output holds no frame contents).
pub const FRAME_LOGGING_CRATES: [&str; 6] = [
    "tungstenite",
    "tokio_tungstenite",
    "hyper",
    "hyper_util",
    "reqwest",
    "h2",
];

/// Whether a `trace` event from the log target `target` must be dropped because its
/// crate prints frames (see [`FRAME_LOGGING_CRATES`]).
pub fn is_frame_logging(target: &str) -> bool {
    let krate = target.split("::").next().unwrap_or(target);
    FRAME_LOGGING_CRATES.contains(&krate)
}

/// Why a field was refused: its path in the request and what was wrong.
pub(crate) type FieldError = String;

fn at_most(path: &str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.len() > max {
        Err(format!(
            "{path} is {} bytes; at most {max} are allowed",
            value.len()
        ))
    } else {
        Ok(())
    }
}

/// A string that is printed in logs: bounded, and with no control characters, so that
/// it can neither flood a log nor forge a line.
fn printable(path: &str, value: &str, max: usize) -> Result<(), FieldError> {
    at_most(path, value, max)?;
    match value.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!(
            "{path} holds the control character {c:?}; only printable characters are allowed"
        )),
        None => Ok(()),
    }
}

/// Checks a display name: 1 to [`MAX_NICKNAME_CHARS`] printable characters.
pub fn check_nickname(nickname: &str) -> Result<(), String> {
    check_name("nickname", nickname)
}

/// Checks a display name given as `field` (a nickname, a group's name): 1 to
/// [`MAX_NICKNAME_CHARS`] printable characters.
pub fn check_name(field: &str, name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    if chars == 0 || name.trim().is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if chars > MAX_NICKNAME_CHARS {
        return Err(format!(
            "{field} is {chars} characters; at most {MAX_NICKNAME_CHARS} are allowed"
        ));
    }
    printable(field, name, MAX_NICKNAME_CHARS * 4)
}

/// A nickname as others see it. Stores written before names were bounded (or edited by
/// hand) may hold longer ones; they are cut rather than repeated into every frame that
/// names the user.
pub fn bounded_nickname(mut nickname: String) -> String {
    if let Some((cut, _)) = nickname.char_indices().nth(MAX_NICKNAME_CHARS) {
        nickname.truncate(cut);
    }
    nickname
}

/// Checks the envelope fields that are echoed and logged.
pub(crate) fn check_envelope(
    request_id: Option<&RequestId>,
    operation_id: &str,
) -> Result<(), FieldError> {
    printable("operationID", operation_id, MAX_OPERATION_ID)?;
    if let Some(RequestId::Str(id)) = request_id {
        printable("requestID", id, MAX_REQUEST_ID)?;
    }
    Ok(())
}

fn check_invitation(path: &str, inv: &Invitation) -> Result<(), FieldError> {
    if inv.invitee_user_id_list.len() > MAX_INVITEES {
        return Err(format!(
            "{path}.inviteeUserIDList has {} entries; at most {MAX_INVITEES} are allowed",
            inv.invitee_user_id_list.len()
        ));
    }
    // Ids are validated where they are used; bounding them here keeps the error early.
    at_most(&format!("{path}.inviterUserID"), &inv.inviter_user_id, 64)?;
    at_most(&format!("{path}.groupID"), &inv.group_id, 128)?;
    at_most(&format!("{path}.roomID"), &inv.room_id, 128)?;
    if let Some(data) = &inv.custom_data {
        at_most(&format!("{path}.customData"), data, MAX_CUSTOM_DATA)?;
    }
    Ok(())
}

fn check_push(path: &str, push: &OfflinePushInfo) -> Result<(), FieldError> {
    at_most(&format!("{path}.title"), &push.title, MAX_PUSH_TITLE)?;
    at_most(&format!("{path}.desc"), &push.desc, MAX_PUSH_DESC)?;
    at_most(&format!("{path}.ex"), &push.ex, MAX_PUSH_EX)?;
    at_most(
        &format!("{path}.iOSPushSound"),
        &push.ios_push_sound,
        MAX_PUSH_TITLE,
    )
}

impl Request {
    /// Checks every stored or relayed field against its bound. The error names the
    /// field's path (`data.invitation.customData`) and the limit.
    pub(crate) fn check_bounds(&self) -> Result<(), FieldError> {
        match self {
            Request::Login(p) => at_most("data.token", &p.token, MAX_TOKEN),
            Request::Invite(p) | Request::InviteInGroup(p) => {
                check_invitation("data.invitation", &p.invitation)?;
                match &p.offline_push_info {
                    Some(push) => check_push("data.offlinePushInfo", push),
                    None => Ok(()),
                }
            }
            Request::Accept(p) | Request::Reject(p) | Request::Cancel(p) | Request::HungUp(p) => {
                at_most("data.opUserID", &p.op_user_id, 64)?;
                check_invitation("data.invitation", &p.invitation)
            }
            // Decoded only when its JSON form is over the bound (escapes are longer
            // than what they stand for), so the bound is the decoded length, as before.
            Request::SendCustomSignal(p) if p.custom_info.max_len() > MAX_CUSTOM_INFO => {
                at_most("data.customInfo", &p.custom_info.text(), MAX_CUSTOM_INFO)
            }
            Request::SendMediaSignal(p) => {
                at_most("data.token", &p.token, MAX_TOKEN)?;
                at_most("data.payload", p.payload.get(), MAX_MEDIA_PAYLOAD)
            }
            Request::SubscribePresence(p) => {
                let max = crate::presence::MAX_PRESENCE_WATCH;
                if p.user_id_list.len() > max {
                    Err(format!(
                        "data.userIDList has {} users; one connection may follow at most {max}",
                        p.user_id_list.len()
                    ))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }
}

impl ClientFrame {
    /// The frame's envelope and fields are within bounds (for clients that build
    /// frames, so they fail before sending).
    pub fn check_bounds(&self) -> Result<(), String> {
        check_envelope(Some(&self.request_id), &self.operation_id)?;
        self.request.check_bounds()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrCode;

    fn parse_err(text: &str) -> (ErrCode, String) {
        let e = ClientFrame::parse(text).expect_err("refused");
        (e.error.code, e.error.message)
    }

    #[test]
    fn custom_data_over_its_bound_is_refused_with_its_path() {
        let big = "x".repeat(MAX_CUSTOM_DATA + 1);
        let text = format!(
            r#"{{"requestID":1,"operationID":"op","method":"signalingInvite","data":{{"invitation":{{"inviteeUserIDList":["bob"],"sessionType":1,"customData":"{big}"}}}}}}"#
        );
        let (code, msg) = parse_err(&text);
        assert_eq!(code, ErrCode::Args);
        assert!(msg.contains("data.invitation.customData"), "{msg}");
        assert!(msg.contains("8192"), "{msg}");
    }

    #[test]
    fn custom_info_is_bounded_by_its_decoded_length_not_its_escapes() {
        // Each `\"` is two bytes on the wire and one decoded: at the bound decoded, the
        // JSON form is over it, and the frame is still accepted.
        let ok = "\\\"".repeat(MAX_CUSTOM_INFO);
        let text = format!(
            r#"{{"requestID":1,"method":"signalingSendCustomSignal","data":{{"roomID":"r1","customInfo":"{ok}"}}}}"#
        );
        match ClientFrame::parse(&text).expect("accepted").request {
            Request::SendCustomSignal(p) => assert_eq!(p.custom_info.text().len(), MAX_CUSTOM_INFO),
            other => panic!("{other:?}"),
        }
        let over = "\\\"".repeat(MAX_CUSTOM_INFO + 1);
        let text = format!(
            r#"{{"requestID":1,"method":"signalingSendCustomSignal","data":{{"roomID":"r1","customInfo":"{over}"}}}}"#
        );
        let (code, msg) = parse_err(&text);
        assert_eq!(code, ErrCode::Args);
        assert!(msg.contains("data.customInfo is"), "{msg}");
    }

    #[test]
    fn custom_info_that_is_not_a_string_is_refused_with_its_path() {
        let (code, msg) = parse_err(
            r#"{"requestID":1,"method":"signalingSendCustomSignal","data":{"roomID":"r1","customInfo":{"a":1}}}"#,
        );
        assert_eq!(code, ErrCode::Args);
        assert!(
            msg.contains("data.customInfo") && msg.contains("expected a string"),
            "{msg}"
        );
    }

    #[test]
    fn custom_data_at_its_bound_is_accepted() {
        let ok = "x".repeat(MAX_CUSTOM_DATA);
        let text = format!(
            r#"{{"requestID":1,"operationID":"op","method":"signalingInvite","data":{{"invitation":{{"inviteeUserIDList":["bob"],"sessionType":1,"customData":"{ok}"}}}}}}"#
        );
        ClientFrame::parse(&text).expect("accepted");
    }

    #[test]
    fn push_info_and_signals_are_bounded() {
        let long = "y".repeat(MAX_PUSH_EX + 1);
        let text = format!(
            r#"{{"requestID":1,"method":"signalingInvite","data":{{"invitation":{{"inviteeUserIDList":["bob"]}},"offlinePushInfo":{{"ex":"{long}"}}}}}}"#
        );
        assert!(parse_err(&text).1.contains("data.offlinePushInfo.ex"));
        let long = "z".repeat(MAX_CUSTOM_INFO + 1);
        let text = format!(
            r#"{{"requestID":1,"method":"signalingSendCustomSignal","data":{{"roomID":"r1","customInfo":"{long}"}}}}"#
        );
        assert!(parse_err(&text).1.contains("data.customInfo"));
        let long = "p".repeat(MAX_MEDIA_PAYLOAD);
        let text = format!(
            r#"{{"requestID":1,"method":"signalingSendMediaSignal","data":{{"roomID":"r1","token":"t","toUserID":"bob","payload":"{long}"}}}}"#
        );
        assert!(parse_err(&text).1.contains("data.payload"));
    }

    #[test]
    fn a_presence_list_over_its_bound_is_refused_with_its_path() {
        let max = crate::presence::MAX_PRESENCE_WATCH;
        let ids = |n: usize| {
            (0..n)
                .map(|i| format!("\"u{i}\""))
                .collect::<Vec<_>>()
                .join(",")
        };
        let text = format!(
            r#"{{"requestID":1,"method":"subscribePresence","data":{{"userIDList":[{}]}}}}"#,
            ids(max + 1)
        );
        let (code, msg) = parse_err(&text);
        assert_eq!(code, ErrCode::Args);
        assert!(
            msg.contains("data.userIDList") && msg.contains("500"),
            "{msg}"
        );
        let text = format!(
            r#"{{"requestID":1,"method":"subscribePresence","data":{{"userIDList":[{}]}}}}"#,
            ids(max)
        );
        ClientFrame::parse(&text).expect("the bound itself is accepted");
    }

    #[test]
    fn operation_id_with_a_newline_is_refused_and_not_echoed() {
        let e = ClientFrame::parse(
            r#"{"requestID":1,"operationID":"op\nINFO forged line","method":"ping"}"#,
        )
        .expect_err("refused");
        assert_eq!(e.error.code, ErrCode::MalformedFrame);
        assert!(
            e.error.message.contains("operationID"),
            "{}",
            e.error.message
        );
        assert_eq!(e.operation_id, "", "a refused operationID is not echoed");
        assert_eq!(e.request_id, Some(RequestId::Num(1)));
    }

    #[test]
    fn long_operation_and_request_ids_are_refused() {
        let long = "o".repeat(MAX_OPERATION_ID + 1);
        let text = format!(r#"{{"requestID":1,"operationID":"{long}","method":"ping"}}"#);
        assert_eq!(parse_err(&text).0, ErrCode::MalformedFrame);
        let text = format!(r#"{{"requestID":"{long}","method":"ping"}}"#);
        let e = ClientFrame::parse(&text).expect_err("refused");
        assert_eq!(e.error.code, ErrCode::MalformedFrame);
        assert_eq!(e.request_id, None, "a refused requestID is not echoed");
    }

    #[test]
    fn params_given_as_an_array_are_refused() {
        let (code, msg) = parse_err(
            r#"{"requestID":1,"method":"signalingInvite","data":[{"inviteeUserIDList":["bob"]}]}"#,
        );
        assert_eq!(code, ErrCode::Args);
        assert!(msg.contains("JSON object"), "{msg}");
        let (code, _) = parse_err(r#"{"requestID":1,"method":"getCallHistory","data":[10]}"#);
        assert_eq!(code, ErrCode::Args);
    }

    #[test]
    fn nicknames_are_bounded_and_printable() {
        check_nickname("Ada Lovelace").expect("ok");
        check_nickname(&"é".repeat(MAX_NICKNAME_CHARS)).expect("64 characters");
        assert!(check_nickname(&"n".repeat(MAX_NICKNAME_CHARS + 1)).is_err());
        assert!(check_nickname("two\nlines").is_err());
        assert!(check_nickname("  ").is_err());
    }
}
