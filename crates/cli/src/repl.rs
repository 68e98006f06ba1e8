//! `tincan repl`: commands on stdin, replies and events as JSON lines on stdout. This is
//! how end-to-end tests drive a far end, so its output is a contract (see `output`).
//!
//! Commands, one per line (blank lines and `#` comments are skipped):
//!
//! ```text
//! invite <user[,user…]> [audio|video] [timeout]
//! invite-group <groupID> <user[,user…]> [audio|video] [timeout]
//! accept|reject|cancel|hangup [roomID]     (default: the last invitation or call seen)
//! custom <roomID> <text…>
//! room-by-group <groupID>
//! token-by-room <roomID>
//! start-app | history | contacts | ping | quit
//! ```

use std::collections::HashMap;
use std::process::ExitCode;

use tincan_sdk::protocol::{
    ActionParams, CustomSignalParams, Event, GroupId, GroupParams, HistoryParams, Invitation,
    InviteParams, MediaType, RoomId, RoomParams, UserId, SESSION_GROUP, SESSION_SINGLE,
};
use tincan_sdk::{codes, new_operation_id, ApiResult, Client, ConnectionState, SdkEvent};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use crate::output::{emit, reply_line, sdk_event_line};
use crate::{close_and_drain, exit_code_for};

/// What a line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `invite` / `invite-group`.
    Invite {
        /// Set for `invite-group`.
        group: Option<GroupId>,
        invitees: Vec<UserId>,
        media: MediaType,
        timeout: u32,
    },
    /// `accept`, `reject`, `cancel`, `hangup`.
    Act {
        action: Action,
        room: Option<RoomId>,
    },
    /// `custom`.
    Custom {
        room: RoomId,
        text: String,
    },
    /// `room-by-group`.
    RoomByGroup(GroupId),
    /// `token-by-room`.
    TokenByRoom(RoomId),
    StartApp,
    History,
    Contacts,
    Ping,
    Quit,
}

/// The four answers to an invitation or call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Accept,
    Reject,
    Cancel,
    HangUp,
}

impl Action {
    fn method(self) -> &'static str {
        match self {
            Action::Accept => "signalingAccept",
            Action::Reject => "signalingReject",
            Action::Cancel => "signalingCancel",
            Action::HangUp => "signalingHungUp",
        }
    }
}

/// A line that is not a valid command: the reply line names `method`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub method: String,
    pub message: String,
}

const COMMANDS: &str = "invite, invite-group, accept, reject, cancel, hangup, custom, \
                        room-by-group, token-by-room, start-app, history, contacts, ping, quit";

/// The wire method a command word stands for (what its reply line is named).
fn method_of(word: &str) -> Option<&'static str> {
    Some(match word {
        "invite" => "signalingInvite",
        "invite-group" => "signalingInviteInGroup",
        "accept" => Action::Accept.method(),
        "reject" => Action::Reject.method(),
        "cancel" => Action::Cancel.method(),
        "hangup" => Action::HangUp.method(),
        "custom" => "signalingSendCustomSignal",
        "room-by-group" => "signalingGetRoomByGroupID",
        "token-by-room" => "signalingGetTokenByRoomID",
        "start-app" => "getSignalingInvitationInfoStartApp",
        "history" => "getCallHistory",
        "contacts" => "getContacts",
        "ping" => "ping",
        "quit" => "quit",
        _ => return None,
    })
}

/// Parses one line; `Ok(None)` for a blank line or a comment.
pub fn parse(line: &str) -> Result<Option<Command>, ParseError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    let args: Vec<&str> = rest.split_whitespace().collect();
    let Some(method) = method_of(word) else {
        return Err(ParseError {
            method: word.to_owned(),
            message: format!("unknown command {word:?}; commands: {COMMANDS}"),
        });
    };
    let fail = |message: String| ParseError {
        method: method.to_owned(),
        message,
    };
    let usage = |u: &str| fail(format!("usage: {u}"));
    let room = |s: &str| RoomId::new(s).map_err(|e| fail(e.to_string()));
    let group = |s: &str| GroupId::new(s).map_err(|e| fail(e.to_string()));
    let act = |action, args: &[&str]| match args {
        [] => Ok(Command::Act { action, room: None }),
        [r] => Ok(Command::Act {
            action,
            room: Some(room(r)?),
        }),
        _ => Err(usage(&format!("{word} [roomID]"))),
    };
    let command = match word {
        "invite" => match args.split_first() {
            Some((users, opts)) => invite(None, users, opts).map_err(fail)?,
            None => return Err(usage("invite <user[,user…]> [audio|video] [timeout]")),
        },
        "invite-group" => match args.as_slice() {
            [g, users, opts @ ..] => invite(Some(group(g)?), users, opts).map_err(fail)?,
            _ => {
                return Err(usage(
                    "invite-group <groupID> <user[,user…]> [audio|video] [timeout]",
                ))
            }
        },
        "accept" => act(Action::Accept, &args)?,
        "reject" => act(Action::Reject, &args)?,
        "cancel" => act(Action::Cancel, &args)?,
        "hangup" => act(Action::HangUp, &args)?,
        "custom" => match rest.split_once(char::is_whitespace) {
            Some((r, text)) if !text.trim().is_empty() => Command::Custom {
                room: room(r)?,
                text: text.trim().to_owned(),
            },
            _ => return Err(usage("custom <roomID> <text…>")),
        },
        "room-by-group" => match args.as_slice() {
            [g] => Command::RoomByGroup(group(g)?),
            _ => return Err(usage("room-by-group <groupID>")),
        },
        "token-by-room" => match args.as_slice() {
            [r] => Command::TokenByRoom(room(r)?),
            _ => return Err(usage("token-by-room <roomID>")),
        },
        simple => {
            if !args.is_empty() {
                return Err(usage(simple));
            }
            match simple {
                "start-app" => Command::StartApp,
                "history" => Command::History,
                "contacts" => Command::Contacts,
                "ping" => Command::Ping,
                _ => Command::Quit,
            }
        }
    };
    Ok(Some(command))
}

/// `<user[,user…]> [audio|video] [timeout]`, options in any order.
fn invite(group: Option<GroupId>, users: &str, opts: &[&str]) -> Result<Command, String> {
    let invitees = users
        .split(',')
        .filter(|u| !u.is_empty())
        .map(|u| UserId::new(u).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    if invitees.is_empty() {
        return Err("name at least one user to invite".into());
    }
    let mut media = MediaType::Video;
    let mut timeout = 0;
    for opt in opts {
        match *opt {
            "audio" => media = MediaType::Audio,
            "video" => media = MediaType::Video,
            n => {
                timeout = n.parse().map_err(|_| {
                    format!("{n:?} is neither audio, video nor a timeout in seconds")
                })?
            }
        }
    }
    Ok(Command::Invite {
        group,
        invitees,
        media,
        timeout,
    })
}

/// What the REPL remembers so that `accept` and friends can omit the roomID: the last
/// room seen, and the latest invitation seen per room (sent back in action params).
#[derive(Debug, Default)]
pub struct Memory {
    last_room: Option<String>,
    invitations: HashMap<String, Invitation>,
}

impl Memory {
    /// Notes what an event says about rooms.
    pub fn on_event(&mut self, event: &Event) {
        let info = match event {
            Event::ReceiveNewInvitation(i) => {
                self.last_room = Some(i.invitation.room_id.clone());
                i
            }
            Event::InviteeAccepted(i)
            | Event::InviteeAcceptedByOtherDevice(i)
            | Event::InviteeRejected(i)
            | Event::InviteeRejectedByOtherDevice(i)
            | Event::InvitationCancelled(i)
            | Event::InvitationTimeout(i)
            | Event::HangUp(i) => i,
            _ => return,
        };
        self.invitations
            .insert(info.invitation.room_id.clone(), info.invitation.clone());
    }

    /// Notes a call this user placed.
    pub fn on_invited(&mut self, mut invitation: Invitation, room: &RoomId) {
        invitation.room_id = room.to_string();
        self.last_room = Some(invitation.room_id.clone());
        self.invitations
            .insert(invitation.room_id.clone(), invitation);
    }

    /// Notes a room this user joined.
    pub fn on_joined(&mut self, room: &RoomId) {
        self.last_room = Some(room.to_string());
    }

    /// The params for an action on `room` (or the last room seen).
    pub fn action_params(
        &self,
        me: &UserId,
        room: Option<&RoomId>,
    ) -> Result<ActionParams, String> {
        let room = match room {
            Some(r) => r.to_string(),
            None => self
                .last_room
                .clone()
                .ok_or("no roomID given, and no invitation or call seen yet")?,
        };
        let invitation = self
            .invitations
            .get(&room)
            .cloned()
            .unwrap_or_else(|| Invitation {
                room_id: room,
                ..Invitation::default()
            });
        Ok(ActionParams {
            op_user_id: me.to_string(),
            invitation,
        })
    }
}

/// Runs the REPL until `quit`, end of input, or the client closing.
pub async fn run(client: Client, mut events: mpsc::Receiver<SdkEvent>) -> ExitCode {
    let mut memory = Memory::default();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { return ExitCode::FAILURE };
                emit(&sdk_event_line(&event));
                match &event {
                    SdkEvent::Signaling(e) => memory.on_event(e),
                    SdkEvent::Connection(ConnectionState::Closed { reason }) => {
                        return exit_code_for(reason);
                    }
                    _ => {}
                }
            }
            line = lines.next_line() => match line {
                Ok(Some(line)) => match parse(&line) {
                    Ok(None) => {}
                    Ok(Some(Command::Quit)) => break,
                    Ok(Some(command)) => execute(&client, &mut memory, command).await,
                    Err(e) => emit(&reply_line(&e.method, &ApiResult {
                        err_code: codes::ARGS,
                        err_msg: e.message,
                        data: serde_json::Value::Null,
                    })),
                },
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read stdin");
                    break;
                }
            },
        }
    }
    close_and_drain(&client, events).await
}

async fn execute(client: &Client, memory: &mut Memory, command: Command) {
    let op = new_operation_id();
    let me = client.user_id().clone();
    let (method, result): (&str, ApiResult) = match command {
        Command::Invite {
            group,
            invitees,
            media,
            timeout,
        } => {
            let invitation = Invitation {
                inviter_user_id: me.to_string(),
                invitee_user_id_list: invitees,
                group_id: group.as_ref().map(ToString::to_string).unwrap_or_default(),
                timeout,
                media_type: media,
                session_type: if group.is_some() {
                    SESSION_GROUP
                } else {
                    SESSION_SINGLE
                },
                platform_id: client.device().platform_id.get(),
                ..Invitation::default()
            };
            let params = InviteParams {
                invitation: invitation.clone(),
                offline_push_info: None,
            };
            let (method, reply) = if group.is_some() {
                let r = client.signaling_invite_in_group(&op, params).await;
                ("signalingInviteInGroup", r)
            } else {
                (
                    "signalingInvite",
                    client.signaling_invite(&op, params).await,
                )
            };
            if let Ok(r) = &reply {
                memory.on_invited(invitation, &r.room_id);
            }
            (method, reply.into())
        }
        Command::Act { action, room } => {
            let result = match memory.action_params(&me, room.as_ref()) {
                Err(message) => ApiResult {
                    err_code: codes::ARGS,
                    err_msg: message,
                    data: serde_json::Value::Null,
                },
                Ok(params) => match action {
                    Action::Accept => {
                        let r = client.signaling_accept(&op, params).await;
                        if let Ok(r) = &r {
                            memory.on_joined(&r.room_id);
                        }
                        r.into()
                    }
                    Action::Reject => client.signaling_reject(&op, params).await.into(),
                    Action::Cancel => client.signaling_cancel(&op, params).await.into(),
                    Action::HangUp => client.signaling_hung_up(&op, params).await.into(),
                },
            };
            (action.method(), result)
        }
        Command::Custom { room, text } => {
            let params = CustomSignalParams {
                room_id: room,
                custom_info: text.into(),
            };
            let r = client.signaling_send_custom_signal(&op, params).await;
            ("signalingSendCustomSignal", r.into())
        }
        Command::RoomByGroup(group_id) => {
            let r = client
                .signaling_get_room_by_group_id(&op, GroupParams { group_id })
                .await;
            ("signalingGetRoomByGroupID", r.into())
        }
        Command::TokenByRoom(room_id) => {
            let r = client
                .signaling_get_token_by_room_id(&op, RoomParams { room_id })
                .await;
            if let Ok(r) = &r {
                memory.on_joined(&r.room_id);
            }
            ("signalingGetTokenByRoomID", r.into())
        }
        Command::StartApp => {
            let r = client.get_signaling_invitation_info_start_app(&op).await;
            ("getSignalingInvitationInfoStartApp", r.into())
        }
        Command::History => {
            let r = client.get_call_history(&op, HistoryParams::default()).await;
            ("getCallHistory", r.into())
        }
        Command::Contacts => ("getContacts", client.get_contacts(&op).await.into()),
        Command::Ping => ("ping", client.ping(&op).await.into()),
        Command::Quit => unreachable!("quit is handled by the loop"),
    };
    emit(&reply_line(method, &result));
}

#[cfg(test)]
mod tests {
    use super::*;
    use tincan_sdk::protocol::SignalingInfo;

    fn ok(line: &str) -> Command {
        parse(line).unwrap().unwrap()
    }

    fn err(line: &str) -> ParseError {
        parse(line).unwrap_err()
    }

    fn user(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    #[test]
    fn invite_takes_users_and_options_in_any_order() {
        assert_eq!(
            ok("invite bob"),
            Command::Invite {
                group: None,
                invitees: vec![user("bob")],
                media: MediaType::Video,
                timeout: 0
            }
        );
        assert_eq!(
            ok("  invite bob,carol 15 audio "),
            Command::Invite {
                group: None,
                invitees: vec![user("bob"), user("carol")],
                media: MediaType::Audio,
                timeout: 15
            }
        );
        assert_eq!(
            ok("invite-group g1 bob,carol video"),
            Command::Invite {
                group: Some(GroupId::new("g1").unwrap()),
                invitees: vec![user("bob"), user("carol")],
                media: MediaType::Video,
                timeout: 0
            }
        );
    }

    #[test]
    fn actions_take_an_optional_room() {
        assert_eq!(
            ok("accept"),
            Command::Act {
                action: Action::Accept,
                room: None
            }
        );
        assert_eq!(
            ok("hangup r-1"),
            Command::Act {
                action: Action::HangUp,
                room: Some(RoomId::new("r-1").unwrap())
            }
        );
    }

    #[test]
    fn custom_keeps_the_rest_of_the_line() {
        assert_eq!(
            ok("custom r1 {\"mute\": true}  x"),
            Command::Custom {
                room: RoomId::new("r1").unwrap(),
                text: "{\"mute\": true}  x".into()
            }
        );
    }

    #[test]
    fn simple_commands_and_blank_lines() {
        assert_eq!(ok("ping"), Command::Ping);
        assert_eq!(ok("start-app"), Command::StartApp);
        assert_eq!(ok("quit"), Command::Quit);
        assert_eq!(
            ok("token-by-room r9"),
            Command::TokenByRoom(RoomId::new("r9").unwrap())
        );
        assert_eq!(parse("   ").unwrap(), None);
        assert_eq!(parse("# a comment").unwrap(), None);
    }

    #[test]
    fn bad_lines_name_the_method_and_say_what_is_wrong() {
        let e = err("invite");
        assert_eq!(e.method, "signalingInvite");
        assert!(e.message.starts_with("usage: invite"), "{}", e.message);
        let e = err("invite bob loud");
        assert!(e.message.contains("\"loud\""), "{}", e.message);
        let e = err("invite b@d!");
        assert!(e.message.contains("may only hold"), "{}", e.message);
        let e = err("accept r1 r2");
        assert_eq!(e.method, "signalingAccept");
        let e = err("ping now");
        assert_eq!(e.method, "ping");
        let e = err("dance");
        assert_eq!(e.method, "dance");
        assert!(e.message.contains("unknown command"), "{}", e.message);
        assert_eq!(err("custom r1").method, "signalingSendCustomSignal");
    }

    fn info(room: &str) -> SignalingInfo {
        SignalingInfo {
            invitation: Invitation {
                inviter_user_id: "alice".into(),
                room_id: room.into(),
                timeout: 30,
                ..Invitation::default()
            },
            op_user_id: user("alice"),
            user_id: user("alice"),
            op_user_platform_id: 7,
            participant: None,
            offline_push_info: None,
            event_time: 1,
        }
    }

    #[test]
    fn actions_default_to_the_last_room_seen_with_its_invitation() {
        let me = user("bob");
        let mut m = Memory::default();
        assert!(m.action_params(&me, None).is_err());
        m.on_event(&Event::ReceiveNewInvitation(info("r1")));
        let p = m.action_params(&me, None).unwrap();
        assert_eq!(p.op_user_id, "bob");
        assert_eq!(p.invitation.room_id, "r1");
        assert_eq!(
            p.invitation.inviter_user_id, "alice",
            "the invitation as received"
        );

        m.on_invited(Invitation::default(), &RoomId::new("r2").unwrap());
        assert_eq!(m.action_params(&me, None).unwrap().invitation.room_id, "r2");

        // An explicit room wins; an unknown one is sent with just its id.
        let r9 = RoomId::new("r9").unwrap();
        let p = m.action_params(&me, Some(&r9)).unwrap();
        assert_eq!(
            p.invitation,
            Invitation {
                room_id: "r9".into(),
                ..Invitation::default()
            }
        );
    }

    #[test]
    fn other_events_update_the_invitation_but_not_the_default_room() {
        let me = user("bob");
        let mut m = Memory::default();
        m.on_event(&Event::ReceiveNewInvitation(info("r1")));
        m.on_event(&Event::HangUp(info("r0")));
        assert_eq!(m.action_params(&me, None).unwrap().invitation.room_id, "r1");
    }
}
