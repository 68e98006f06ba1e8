//! `tincan listen`: prints every event; optionally answers invitations by itself.

use std::process::ExitCode;
use std::time::Duration;

use clap::ValueEnum;
use tincan_sdk::protocol::{
    AcceptReply, ActionParams, Event, Invitation, MediaType, SignalingInfo, SESSION_SINGLE,
};
use tincan_sdk::{new_operation_id, ApiResult, CallPhase, Client, ConnectionState, SdkEvent};
use tokio::sync::mpsc;

use crate::media::{self, CliMedia, MediaOpts};
use crate::output::{emit, reply_line, sdk_event_line};
use crate::{close_and_drain, exit_code_for};

/// What to do with an incoming invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Auto {
    /// Accept it.
    Accept,
    /// Reject it.
    Reject,
    /// Only print it.
    None,
}

/// Runs until Ctrl-C or the client closing.
pub async fn run(
    client: Client,
    mut events: mpsc::Receiver<SdkEvent>,
    auto: Auto,
    hangup_after: Option<Duration>,
    media_opts: MediaOpts,
) -> ExitCode {
    let mut media: Option<CliMedia> = None;
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { return ExitCode::FAILURE };
                emit(&sdk_event_line(&event));
                match event {
                    SdkEvent::Signaling(Event::ReceiveNewInvitation(info)) => {
                        let accepted = answer(&client, auto, hangup_after, info).await;
                        if let (Some((reply, invitation)), true) = (accepted, media_opts.media) {
                            if let Some(old) = media.take() {
                                old.close().await;
                            }
                            let video = invitation.media_type == MediaType::Video;
                            let mut m = CliMedia::start(&client, &media_opts, video, reply.room_id, reply.token, &reply.ice_servers);
                            m.add_peer(&invitation.inviter_user_id);
                            m.set_invitation(invitation);
                            media = Some(m);
                        }
                    }
                    SdkEvent::Signaling(e) => {
                        if let Some(m) = &media {
                            m.on_event(&e);
                        }
                    }
                    // The SDK's call model says the call is over, whoever ended it (the
                    // far end, or this client's own --hangup-after-ms).
                    SdkEvent::CallStateChanged(state) if state.phase == CallPhase::Ended
                        && media.as_ref().is_some_and(|m| m.room().as_str() == state.room_id) => {
                            media.take().expect("checked").close().await;
                        }
                    SdkEvent::Connection(ConnectionState::Closed { reason }) => {
                        return exit_code_for(&reason);
                    }
                    _ => {}
                }
            }
            failed = media::next(&mut media) => {
                let single = media.as_ref().and_then(|m| m.invitation()).filter(|i| i.session_type == SESSION_SINGLE).cloned();
                if let (true, Some(invitation)) = (failed, single) {
                    let params = ActionParams { op_user_id: client.user_id().to_string(), invitation };
                    let r = client.signaling_hung_up(&new_operation_id(), params).await;
                    emit(&reply_line("signalingHungUp", &ApiResult::from(r)));
                    media.take().expect("checked").close().await;
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    if let Some(m) = media.take() {
        m.close().await;
    }
    close_and_drain(&client, events).await
}

/// Answers as `auto` says; returns the accept reply and the invitation when accepted.
async fn answer(
    client: &Client,
    auto: Auto,
    hangup_after: Option<Duration>,
    info: SignalingInfo,
) -> Option<(AcceptReply, Invitation)> {
    let invitation = info.invitation.clone();
    let params = ActionParams {
        op_user_id: client.user_id().to_string(),
        invitation: info.invitation,
    };
    match auto {
        Auto::None => None,
        Auto::Reject => {
            let r = client.signaling_reject(&new_operation_id(), params).await;
            emit(&reply_line("signalingReject", &ApiResult::from(r)));
            None
        }
        Auto::Accept => {
            let r = client
                .signaling_accept(&new_operation_id(), params.clone())
                .await;
            emit(&reply_line("signalingAccept", &ApiResult::from(r.clone())));
            let reply = r.ok()?;
            if let Some(after) = hangup_after {
                // In its own task, so that events keep printing meanwhile.
                let client = client.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    let r = client.signaling_hung_up(&new_operation_id(), params).await;
                    emit(&reply_line("signalingHungUp", &ApiResult::from(r)));
                });
            }
            Some((reply, invitation))
        }
    }
}
