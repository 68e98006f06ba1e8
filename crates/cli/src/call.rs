//! `tincan call`: rings one user and prints events until the call ends.

use std::process::ExitCode;
use std::time::Duration;

use tincan_sdk::protocol::{
    ActionParams, Event, Invitation, InviteParams, MediaType, UserId, SESSION_SINGLE,
};
use tincan_sdk::{new_operation_id, ApiResult, Client, ConnectionState, SdkEvent};
use tokio::sync::mpsc;

use crate::media::{self, CliMedia, MediaOpts};
use crate::output::{emit, reply_line, sdk_event_line};
use crate::{close_and_drain, exit_code_for};

/// What an event means for the call in `room`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The callee answered; the call is on.
    Accepted,
    /// The call is over (declined, unanswered, withdrawn or hung up).
    Ended,
}

/// Reads an event as the caller of the one-to-one call in `room`.
pub fn outcome(event: &Event, room: &str) -> Option<Outcome> {
    let (info, outcome) = match event {
        Event::InviteeAccepted(i) => (i, Outcome::Accepted),
        Event::InviteeRejected(i)
        | Event::InvitationTimeout(i)
        | Event::InvitationCancelled(i)
        | Event::HangUp(i) => (i, Outcome::Ended),
        _ => return None,
    };
    (info.invitation.room_id == room).then_some(outcome)
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
    if reply.busy_line_user_id_list.contains(&callee) {
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
                        match outcome(e, &invitation.room_id) {
                            Some(Outcome::Accepted) => {
                                accepted = true;
                                hangup_timer = hangup_after.map(|d| Box::pin(tokio::time::sleep(d)));
                            }
                            Some(Outcome::Ended) => break,
                            None => {}
                        }
                    }
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
    use tincan_sdk::protocol::SignalingInfo;

    fn info(room: &str) -> SignalingInfo {
        let bob = UserId::new("bob").unwrap();
        SignalingInfo {
            invitation: Invitation {
                room_id: room.into(),
                ..Invitation::default()
            },
            op_user_id: bob.clone(),
            user_id: bob,
            op_user_platform_id: 7,
            participant: None,
            offline_push_info: None,
            event_time: 1,
        }
    }

    #[test]
    fn the_callee_answering_puts_the_call_on() {
        assert_eq!(
            outcome(&Event::InviteeAccepted(info("r1")), "r1"),
            Some(Outcome::Accepted)
        );
    }

    #[test]
    fn decline_timeout_cancel_and_hangup_end_the_call() {
        for e in [
            Event::InviteeRejected(info("r1")),
            Event::InvitationTimeout(info("r1")),
            Event::InvitationCancelled(info("r1")),
            Event::HangUp(info("r1")),
        ] {
            assert_eq!(outcome(&e, "r1"), Some(Outcome::Ended), "{e:?}");
        }
    }

    #[test]
    fn events_of_other_rooms_and_kinds_do_not_matter() {
        assert_eq!(outcome(&Event::HangUp(info("other")), "r1"), None);
        assert_eq!(
            outcome(&Event::ReceiveNewInvitation(info("r1")), "r1"),
            None
        );
    }
}
