//! A [`MediaSession`] bound to a signed-in SDK client and one room: negotiation
//! messages go out with `signalingSendMediaSignal`, and the client's events say who is
//! in the call. The desktop app, the command-line client and the tests all use this,
//! so every client follows the same rule about when media starts.
//!
//! When to connect to whom:
//! - the inviter of a 1:1 call connects to the invitee on `onInviteeAccepted`;
//! - the invitee connects to the inviter once its own accept succeeded ([`CallMedia::add_peer`]);
//! - in a group call, everyone already in the room connects to a newcomer on
//!   `onRoomParticipantConnected`, and the newcomer answers whoever greets it first;
//! - `onRoomParticipantDisconnected` closes the connection with whoever left.

use serde_json::value::RawValue;
use std::collections::VecDeque;
use std::time::Duration;

use tincan_protocol::{
    ErrCode, Event, IceServer as WireIceServer, MediaSignalParams, RoomId, RoomParams, UserId,
};
use tincan_sdk::Client;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::census;
use crate::config::{AudioInput, AudioOutput, MediaConfig, VideoInput};
use crate::event::{MediaEvent, OutSignal};
use crate::peer::IceServer;
use crate::session::MediaSession;

/// The `iceServers` of an invite or accept reply, as the media layer takes them.
pub fn ice_servers(servers: &[WireIceServer]) -> Vec<IceServer> {
    servers
        .iter()
        .map(|s| IceServer {
            urls: s.urls.clone(),
            username: s.username.clone().unwrap_or_default(),
            credential: s.credential.clone().unwrap_or_default(),
        })
        .collect()
}

/// One call's media, wired to the signaling client.
pub struct CallMedia {
    room: RoomId,
    session: MediaSession,
    relay: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl CallMedia {
    /// Starts media for `room`; `token` is the room token from the invite or accept reply.
    pub fn start(
        client: Client,
        room: RoomId,
        token: String,
        mut config: MediaConfig,
    ) -> (CallMedia, mpsc::Receiver<MediaEvent>) {
        config.room = room.to_string();
        if config.peer.turn_tls.is_none() && config.peer.has_turns() {
            // `turns:` servers are trusted as the signaling server is.
            match client.tls_config() {
                Ok(tls) => config.peer.turn_tls = Some(tls),
                Err(e) => tracing::warn!(error = %e, "no TLS for turns: servers"),
            }
        }
        let (signal_tx, signal_rx) = mpsc::unbounded_channel();
        let (session, events) = MediaSession::start(config, signal_tx);
        let relay = tokio::spawn(census::task(relay_signals(
            client,
            room.clone(),
            token,
            signal_rx,
        )));
        (
            CallMedia {
                room,
                session,
                relay: tokio::sync::Mutex::new(Some(relay)),
            },
            events,
        )
    }

    pub fn room(&self) -> &RoomId {
        &self.room
    }

    /// Connect to `user` now (the invitee does this for the inviter after accepting).
    pub fn add_peer(&self, user: &str) {
        self.session.add_peer(user);
    }

    /// Feeds one signaling event; events of other rooms are ignored.
    pub fn on_event(&self, event: &Event) {
        if media_room(event) != Some(self.room.as_str()) {
            return;
        }
        match event {
            Event::ReceiveMediaSignal(m) => {
                self.session
                    .signal(m.from_user_id.as_str(), m.payload.get());
            }
            Event::InviteeAccepted(info) => self.session.add_peer(info.op_user_id.as_str()),
            Event::RoomParticipantConnected(info) => {
                self.session.add_peer(info.op_user_id.as_str());
            }
            Event::RoomParticipantDisconnected(info) => {
                self.session.remove_peer(info.op_user_id.as_str());
            }
            _ => {}
        }
    }

    pub fn set_mic(&self, on: bool) {
        self.session.set_mic(on);
    }

    pub fn set_camera(&self, on: bool) {
        self.session.set_camera(on);
    }

    /// Echo cancellation and noise suppression for the microphone, at once.
    pub fn set_processing(&self, processing: crate::processing::AudioProcessing) {
        self.session.set_processing(processing);
    }

    /// Switches the picture source during the call.
    pub fn set_camera_device(&self, input: VideoInput) {
        self.session.set_camera_device(input);
    }

    /// Switches sound devices during the call (`None`: keep the one in use).
    pub fn set_devices(&self, microphone: Option<AudioInput>, speakers: Option<AudioOutput>) {
        self.session.set_devices(microphone, speakers);
    }

    /// Ends media for this call and waits until everything it started is gone.
    /// Closing again does nothing.
    pub async fn close(&self) {
        self.session.close().await;
        // Messages still queued are for connections that no longer exist: drop them
        // rather than wait for each to be sent (or to time out, while reconnecting).
        // Held until the relay is gone, so that concurrent closers all wait for it.
        let mut relay = self.relay.lock().await;
        if let Some(handle) = relay.as_mut() {
            handle.abort();
            let _ = handle.await;
            *relay = None;
        }
    }
}

/// The room of a signaling event that [`CallMedia::on_event`] acts on; `None` for the
/// events media has no use for.
pub fn media_room(event: &Event) -> Option<&str> {
    match event {
        Event::ReceiveMediaSignal(m) => Some(m.room_id.as_str()),
        Event::InviteeAccepted(info) => Some(info.invitation.room_id.as_str()),
        Event::RoomParticipantConnected(info) | Event::RoomParticipantDisconnected(info) => {
            Some(info.invitation.room_id.as_str())
        }
        _ => None,
    }
}

/// At most this many early events are kept; the oldest go first.
const EARLY_EVENTS: usize = 64;

/// Media events of a call whose media has not started yet, kept until it does.
///
/// A client whose events and requests run in different tasks (the desktop app: one
/// task forwards events, each command awaits its own reply) can see the far end's
/// answer, `onInviteeAccepted` or its first negotiation message, before the invite's or
/// accept's reply has started media. Dropped, the inviter never learns whom to offer to,
/// and the call stays "connecting" until media gives up. Such a client keeps them here,
/// under the same lock as the media it runs, and feeds them to the media it starts.
#[derive(Debug, Default)]
pub struct EarlyEvents {
    events: VecDeque<Event>,
}

impl EarlyEvents {
    /// Keeps `event` if media acts on it and it is not for `running`, the room whose
    /// media runs (if any: that media takes it at once). Whether it was kept.
    pub fn keep(&mut self, event: &Event, running: Option<&RoomId>) -> bool {
        let Some(room) = media_room(event) else {
            return false;
        };
        if running.is_some_and(|r| r.as_str() == room) {
            return false;
        }
        if self.events.len() == EARLY_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event.clone());
        true
    }

    /// The kept events of `room`, oldest first; the others are forgotten (only one
    /// call's media runs at a time, so they are for calls that will not start).
    pub fn take(&mut self, room: &RoomId) -> Vec<Event> {
        self.events
            .drain(..)
            .filter(|e| media_room(e) == Some(room.as_str()))
            .collect()
    }
}

/// How often one negotiation message is tried before it is given up.
const SEND_ATTEMPTS: u32 = 6;
/// The wait before the second try; it doubles each time (0.1 s … 3.2 s).
const FIRST_RETRY: Duration = Duration::from_millis(100);

/// Sends negotiation messages one at a time, in order: a candidate must never overtake
/// the offer it belongs to. A message refused for a passing reason (rate limit, timeout,
/// reconnecting) is tried again with backoff; an expired room token is renewed with
/// `signalingGetTokenByRoomID` (tokens last an hour, calls may last longer).
async fn relay_signals(
    client: Client,
    room: RoomId,
    mut token: String,
    mut signals: mpsc::UnboundedReceiver<OutSignal>,
) {
    while let Some(out) = signals.recv().await {
        let (Ok(to), Ok(payload)) = (
            UserId::new(out.to.clone()),
            RawValue::from_string(out.payload),
        ) else {
            tracing::warn!(to = %out.to, "media signal not sendable");
            continue;
        };
        let mut wait = FIRST_RETRY;
        for attempt in 1..=SEND_ATTEMPTS {
            let params = MediaSignalParams {
                room_id: room.clone(),
                token: token.clone(),
                to_user_id: to.clone(),
                payload: payload.clone(),
            };
            let op = tincan_sdk::new_operation_id();
            let err = match client.signaling_send_media_signal(&op, params).await {
                Ok(_) => break,
                Err(e) => e,
            };
            let expired = err
                .server_error()
                .is_some_and(|w| w.code == ErrCode::RoomTokenInvalid);
            if expired {
                let renewed = client
                    .signaling_get_token_by_room_id(
                        &tincan_sdk::new_operation_id(),
                        RoomParams {
                            room_id: room.clone(),
                        },
                    )
                    .await;
                match renewed {
                    Ok(reply) => token = reply.token,
                    Err(e) => tracing::warn!(error = %e, "room token not renewed"),
                }
            }
            if attempt == SEND_ATTEMPTS || !(expired || err.is_retryable()) {
                tracing::warn!(to = %out.to, error = %err, attempt, "media signal not delivered");
                break;
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tincan_protocol::{Invitation, MediaSignalInfo, SignalingInfo};

    fn room(id: &str) -> RoomId {
        RoomId::new(id.to_owned()).expect("room id")
    }

    fn accepted(room: &str, by: &str) -> Event {
        let by = UserId::new(by.to_owned()).expect("user id");
        Event::InviteeAccepted(SignalingInfo {
            invitation: Invitation {
                room_id: room.to_owned(),
                ..Invitation::default()
            },
            op_user_id: by.clone(),
            user_id: by,
            op_user_platform_id: 7,
            participant: None,
            offline_push_info: None,
            event_time: 0,
        })
    }

    fn signal(room_id: &str, from: &str, payload: &str) -> Event {
        Event::ReceiveMediaSignal(MediaSignalInfo {
            room_id: room(room_id),
            from_user_id: UserId::new(from.to_owned()).expect("user id"),
            payload: RawValue::from_string(payload.to_owned()).expect("json"),
        })
    }

    fn names(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                Event::ReceiveMediaSignal(m) => m.payload.get().to_owned(),
                Event::InviteeAccepted(i) => format!("accepted by {}", i.op_user_id.as_str()),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn an_answer_that_overtakes_the_invite_reply_reaches_the_media_started_after_it() {
        let mut early = EarlyEvents::default();
        assert!(early.keep(&accepted("r1", "bob"), None));
        assert!(early.keep(&signal("r1", "bob", r#"{"type":"hello"}"#), None));
        assert_eq!(
            names(&early.take(&room("r1"))),
            ["accepted by bob", r#"{"type":"hello"}"#]
        );
        assert!(early.take(&room("r1")).is_empty(), "taken once");
    }

    #[test]
    fn events_of_the_running_call_and_events_media_ignores_are_not_kept() {
        let mut early = EarlyEvents::default();
        assert!(!early.keep(&accepted("r1", "bob"), Some(&room("r1"))));
        let hung_up = match accepted("r1", "bob") {
            Event::InviteeAccepted(info) => Event::HangUp(info),
            other => other,
        };
        assert!(!early.keep(&hung_up, None), "media ignores hang-ups");
        assert!(early.take(&room("r1")).is_empty());
    }

    #[test]
    fn another_calls_events_are_forgotten_and_the_oldest_go_first() {
        let mut early = EarlyEvents::default();
        assert!(early.keep(&accepted("old", "carol"), Some(&room("r0"))));
        for n in 0..EARLY_EVENTS + 3 {
            early.keep(&signal("r1", "bob", &n.to_string()), None);
        }
        let kept = names(&early.take(&room("r1")));
        assert_eq!(kept.len(), EARLY_EVENTS);
        assert_eq!(kept.first().map(String::as_str), Some("3"));
        assert!(early.take(&room("old")).is_empty(), "forgotten by the take");
    }
}
