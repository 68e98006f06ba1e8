//! `tincan listen`: prints every event; optionally answers invitations by itself.

use std::process::ExitCode;
use std::time::Duration;

use clap::ValueEnum;
use tincan_sdk::protocol::{ActionParams, Event, SignalingInfo};
use tincan_sdk::{new_operation_id, ApiResult, Client, ConnectionState, SdkEvent};
use tokio::sync::mpsc;

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
) -> ExitCode {
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { return ExitCode::FAILURE };
                emit(&sdk_event_line(&event));
                match event {
                    SdkEvent::Signaling(Event::ReceiveNewInvitation(info)) => {
                        answer(&client, auto, hangup_after, info).await;
                    }
                    SdkEvent::Connection(ConnectionState::Closed { reason }) => {
                        return exit_code_for(&reason);
                    }
                    _ => {}
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    close_and_drain(&client, events).await
}

async fn answer(client: &Client, auto: Auto, hangup_after: Option<Duration>, info: SignalingInfo) {
    let params = ActionParams {
        op_user_id: client.user_id().to_string(),
        invitation: info.invitation,
    };
    match auto {
        Auto::None => {}
        Auto::Reject => {
            let r = client.signaling_reject(&new_operation_id(), params).await;
            emit(&reply_line("signalingReject", &ApiResult::from(r)));
        }
        Auto::Accept => {
            let r = client
                .signaling_accept(&new_operation_id(), params.clone())
                .await;
            let accepted = r.is_ok();
            emit(&reply_line("signalingAccept", &ApiResult::from(r)));
            if let (true, Some(after)) = (accepted, hangup_after) {
                // In its own task, so that events keep printing meanwhile.
                let client = client.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    let r = client.signaling_hung_up(&new_operation_id(), params).await;
                    emit(&reply_line("signalingHungUp", &ApiResult::from(r)));
                });
            }
        }
    }
}
