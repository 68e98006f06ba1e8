//! `tincan call`: rings one user and prints events until the call ends.

use std::process::ExitCode;
use std::time::Duration;

use tincan_sdk::protocol::{
    ActionParams, Invitation, InviteParams, MediaType, UserId, SESSION_SINGLE,
};
use tincan_sdk::{
    new_operation_id, ApiResult, CallPhase, CallState, Client, ConnectionState, SdkEvent,
};
use tokio::sync::mpsc;

use crate::media::{self, CliMedia, MediaOpts};
use crate::output::{emit, reply_line, sdk_event_line};
use crate::{close_and_drain, exit_code_for};

/// What a call-state snapshot means for the call in `room`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The callee answered; the call is on.
    Accepted,
    /// The call is over (declined, unanswered, withdrawn or hung up).
    Ended,
}

/// Reads the SDK's call model (the one judge of whether the call is over) for `room`.
pub fn outcome(state: &CallState, room: &str) -> Option<Outcome> {
    if state.room_id != room {
        return None;
    }
    match state.phase {
        CallPhase::InCall => Some(Outcome::Accepted),
        CallPhase::Ended => Some(Outcome::Ended),
        _ => None,
    }
}

/// Places the call and follows it to its end. Ctrl-C cancels a ringing call and hangs
/// up an answered one; so does `hangup_after` once answered.
pub async fn run(
    client: Client,
    mut events: mpsc::Receiver<SdkEvent>,
    callee: UserId,
    media: MediaType,
    timeout: u32,
    hangup_after: Option<Duration>,
    media_opts: MediaOpts,
) -> ExitCode {
    let mut invitation = Invitation {
        inviter_user_id: client.user_id().to_string(),
        invitee_user_id_list: vec![callee.clone()],
        timeout,
        media_type: media,
        session_type: SESSION_SINGLE,
        platform_id: client.device().platform_id.get(),
        ..Invitation::default()
    };
    let params = InviteParams {
        invitation: invitation.clone(),
        offline_push_info: None,
    };
    let reply = client.signaling_invite(&new_operation_id(), params).await;
    emit(&reply_line(
        "signalingInvite",
        &ApiResult::from(reply.clone()),
    ));
    let reply = match reply {
        Ok(reply) => reply,
        Err(_) => {
            close_and_drain(&client, events).await;
            return ExitCode::FAILURE;
        }
    };
    if client.call_state().phase == CallPhase::Ended {
        // Busy: the server did not ring anyone, so the call is already over.
        return close_and_drain(&client, events).await;
    }
    invitation.room_id = reply.room_id.to_string();
    let mut media = media_opts.media.then(|| {
        CliMedia::start(
            &client,
            &media_opts,
            media == MediaType::Video,
            reply.room_id.clone(),
            reply.token.clone(),
            &reply.ice_servers,
        )
    });

    let mut accepted = false;
    let mut hangup_timer = None;
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { return ExitCode::FAILURE };
                emit(&sdk_event_line(&event));
                match &event {
                    SdkEvent::Signaling(e) => {
                        if let Some(m) = &media {
                            m.on_event(e);
                        }
                    }
                    SdkEvent::CallStateChanged(state) => match outcome(state, &invitation.room_id) {
                        Some(Outcome::Accepted) if !accepted => {
                            accepted = true;
                            hangup_timer = hangup_after.map(|d| Box::pin(tokio::time::sleep(d)));
                        }
                        Some(Outcome::Ended) => break,
                        _ => {}
                    },
                    SdkEvent::Connection(ConnectionState::Closed { reason }) => {
                        return exit_code_for(reason);
                    }
                    _ => {}
                }
            }
            _ = async { hangup_timer.as_mut().expect("guarded").await }, if hangup_timer.is_some() => {
                end_call(&client, &invitation, accepted).await;
                break;
            }
            failed = media::next(&mut media) => {
                if failed && accepted {
                    end_call(&client, &invitation, accepted).await;
                    break;
                }
            }
            _ = tokio::signal::ctrl_c() => {
                end_call(&client, &invitation, accepted).await;
                break;
            }
        }
    }
    if let Some(m) = media.take() {
        m.close().await;
    }
    close_and_drain(&client, events).await
}

async fn end_call(client: &Client, invitation: &Invitation, accepted: bool) {
    let params = ActionParams {
        op_user_id: client.user_id().to_string(),
        invitation: invitation.clone(),
    };
    let op = new_operation_id();
    if accepted {
        let r = client.signaling_hung_up(&op, params).await;
        emit(&reply_line("signalingHungUp", &ApiResult::from(r)));
    } else {
        let r = client.signaling_cancel(&op, params).await;
        emit(&reply_line("signalingCancel", &ApiResult::from(r)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tincan_sdk::protocol::LoginReply;
    use tincan_sdk::CallModel;

    fn idle() -> CallState {
        let login: LoginReply = serde_json::from_value(serde_json::json!({
            "userID": "alice", "deviceID": "d1", "protocolVersion": 1, "serverTime": 1,
            "pendingInvitations": []}))
        .unwrap();
        CallModel::new(login.user_id.clone(), &login)
            .state()
            .clone()
    }

    fn at(phase: CallPhase, room: &str) -> CallState {
        CallState {
            phase,
            room_id: room.into(),
            ..idle()
        }
    }

    #[test]
    fn the_call_model_says_when_the_call_is_on_and_when_it_is_over() {
        assert_eq!(
            outcome(&at(CallPhase::InCall, "r1"), "r1"),
            Some(Outcome::Accepted)
        );
        assert_eq!(
            outcome(&at(CallPhase::Ended, "r1"), "r1"),
            Some(Outcome::Ended)
        );
        assert_eq!(outcome(&at(CallPhase::RingingOut, "r1"), "r1"), None);
    }

    #[test]
    fn other_rooms_do_not_matter() {
        assert_eq!(outcome(&at(CallPhase::Ended, "other"), "r1"), None);
    }
}
